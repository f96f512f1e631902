//! The policy snapshot and its hot reload.
//!
//! Requests load the current [`Snapshot`] once (an atomic pointer load) and finish on it. A reload reads
//! and compiles the files off the request path and swaps the new snapshot in; a file that fails keeps the
//! old snapshot, logs why and counts a failed reload. Reloads are triggered by changes in the policy
//! folders (the folder is watched, not the file: a Kubernetes ConfigMap update swaps a `..data` symlink),
//! by SIGHUP, and by a periodic re-read as a backstop; identical content (same hash) is not recompiled.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use notify::Watcher as _;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};

use crate::authn::Authenticator;
use crate::metrics::METRICS;
use crate::policy_files;

/// How long file events are collected before a reload.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Re-read period when nothing signals a change.
const BACKSTOP: Duration = Duration::from_secs(30);

/// A compiled policy and where it came from.
#[derive(Debug)]
pub struct Snapshot {
    /// The policy.
    pub policy: policy::Policy,
    /// First 12 hex digits of the SHA-256 of the files' names and contents.
    pub revision: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Are any rules limited to tags (then tag lists are filtered per caller)?
    pub has_tag_rules: bool,
}

/// Outcome of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Same content as the current snapshot.
    Unchanged,
    /// A new snapshot is in place.
    Swapped(String),
    /// The files did not load; the old snapshot stays.
    Failed(String),
}

/// The current policy.
#[derive(Debug)]
pub struct PolicyStore {
    paths: Vec<PathBuf>,
    current: ArcSwap<Snapshot>,
    hash: Mutex<[u8; 32]>,
}

impl PolicyStore {
    /// Loads the policy now; errors name the file and the rule.
    pub fn load(paths: &[PathBuf]) -> Result<PolicyStore, String> {
        let (snapshot, hash) = compile(paths)?;
        tracing::info!(revision = %snapshot.revision, rules = snapshot.policy.rule_count(), "policy loaded");
        METRICS.policy_loaded(&snapshot);
        Ok(PolicyStore {
            paths: paths.to_vec(),
            current: ArcSwap::from_pointee(snapshot),
            hash: Mutex::new(hash),
        })
    }

    /// The snapshot requests use.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The watched paths.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Re-reads the files and swaps in a new snapshot if they changed and compile.
    pub fn reload(&self, trigger: &str) -> Reloaded {
        let texts = match policy_files::read(&self.paths) {
            Ok(t) => t,
            Err(e) => return self.failed(trigger, format!("{e:#}")),
        };
        let hash = content_hash(&texts);
        if self.hash.lock().is_ok_and(|h| *h == hash) {
            return Reloaded::Unchanged;
        }
        let policy = match policy_files::compile(&texts) {
            Ok(p) => p,
            Err(e) => return self.failed(trigger, e.to_string()),
        };
        let snapshot = Snapshot::new(policy, &hash);
        let revision = snapshot.revision.clone();
        let rules = snapshot.policy.rule_count();
        METRICS.policy_loaded(&snapshot);
        self.current.store(Arc::new(snapshot));
        if let Ok(mut h) = self.hash.lock() {
            *h = hash;
        }
        METRICS.reloads.with_label_values(&["success"]).inc();
        tracing::info!(%revision, rules, trigger, "policy reloaded");
        Reloaded::Swapped(revision)
    }

    fn failed(&self, trigger: &str, why: String) -> Reloaded {
        METRICS.reloads.with_label_values(&["failure"]).inc();
        tracing::error!(
            trigger,
            revision = %self.current.load().revision,
            error = %why,
            "policy reload failed; keeping the current policy"
        );
        Reloaded::Failed(why)
    }
}

impl Snapshot {
    fn new(policy: policy::Policy, hash: &[u8; 32]) -> Snapshot {
        let revision = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        let has_tag_rules = policy.has_tag_rules();
        Snapshot { policy, revision, loaded_at: SystemTime::now(), has_tag_rules }
    }
}

fn compile(paths: &[PathBuf]) -> Result<(Snapshot, [u8; 32]), String> {
    let texts = policy_files::read(paths).map_err(|e| format!("{e:#}"))?;
    let hash = content_hash(&texts);
    let policy = policy_files::compile(&texts).map_err(|e| e.to_string())?;
    Ok((Snapshot::new(policy, &hash), hash))
}

fn content_hash(texts: &[policy_files::PolicyText]) -> [u8; 32] {
    let mut h = Sha256::new();
    for t in texts {
        h.update((t.name.len() as u64).to_le_bytes());
        h.update(t.name.as_bytes());
        h.update((t.text.len() as u64).to_le_bytes());
        h.update(t.text.as_bytes());
    }
    h.finalize().into()
}

/// The folders to watch for a set of policy paths: a folder itself, or a file's folder.
fn watch_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            if p.is_dir() {
                p.clone()
            } else {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Watches the policy folders, listens for SIGHUP, re-reads periodically; also refreshes the htpasswd
/// file and TLS certificates on the same triggers.
pub struct ReloadService {
    /// The policy.
    pub store: Arc<PolicyStore>,
    /// Authentication files.
    pub authn: Arc<Authenticator>,
    /// Listener certificates.
    pub certs: Vec<Arc<crate::tls::CertStore>>,
}

impl ReloadService {
    async fn refresh_all(&self, trigger: &'static str) {
        let store = self.store.clone();
        let authn = self.authn.clone();
        let certs = self.certs.clone();
        // Reading and compiling is blocking work: keep it off the async threads.
        let done = tokio::task::spawn_blocking(move || {
            store.reload(trigger);
            authn.refresh();
            certs.iter().for_each(|c| c.refresh());
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "reload task failed");
        }
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watched = Vec::new();
        let mut dirs = watch_dirs(self.store.paths());
        if let Some(h) = self.authn_dir() {
            dirs.push(h);
        }
        if let Some(b) = self.authn.bearer() {
            dirs.extend(b.watched_dirs());
        }
        dirs.extend(self.certs.iter().filter_map(|c| c.dir()));
        dirs.sort();
        dirs.dedup();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        });
        let _watcher = match watcher {
            Ok(mut w) => {
                for d in &dirs {
                    match w.watch(d, notify::RecursiveMode::NonRecursive) {
                        Ok(()) => watched.push(d.display().to_string()),
                        Err(e) => {
                            tracing::warn!(dir = %d.display(), error = %e, "cannot watch; relying on SIGHUP and the periodic re-read")
                        }
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; relying on SIGHUP and the periodic re-read");
                None
            }
        };
        tracing::debug!(?watched, "watching for policy changes");
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        let mut backstop = tokio::time::interval(BACKSTOP);
        backstop.tick().await;
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    // Let a burst of events (an editor's save, a ConfigMap swap) settle.
                    tokio::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                    self.refresh_all("file change").await;
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: re-reading the policy, htpasswd and certificates");
                    self.refresh_all("SIGHUP").await;
                }
                _ = backstop.tick() => self.refresh_all("periodic").await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl ReloadService {
    fn authn_dir(&self) -> Option<PathBuf> {
        self.authn.htpasswd_path().and_then(|p| p.parent().map(Path::to_path_buf))
    }
}
