//! Garbage collection: mark every blob a stored manifest references, sweep the rest.
//!
//! It runs beside a serving registry (another process on the same root) and is safe against pushes in
//! progress:
//!
//! - **Grace period.** Only blobs last modified more than `grace` before the collection started are
//!   candidates. A client pushes its blobs first and the manifest last; the grace period (1 hour by
//!   default, like zot's `gcDelay`) keeps the blobs of a push in progress even though no manifest
//!   references them yet.
//! - **Writers refresh what they use.** A new blob is renamed into place with a fresh time; re-uploading
//!   existing content and a cross-repository mount touch it; a manifest push touches everything it
//!   references *after* its revision is visible (see [`crate::store::Store::put_manifest`]).
//! - **Check, move aside, check again.** A candidate is renamed to `.gc-<hex>` in its folder, its time is
//!   read again, and it is put back if a writer touched it in between; only then is it deleted. A touch
//!   that comes too late finds the file gone, and the manifest push is refused with
//!   `MANIFEST_BLOB_UNKNOWN` rather than stored with a hole in it.
//! - One collection at a time (`<root>/.gc.lock`); blobs a killed collection left aside are put back when
//!   the next one starts.
//!
//! Untagged manifests are kept: they are still reachable by digest. Upload sessions are not touched (the
//! registry's janitor removes stale ones).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use oci::{Algorithm, Digest, DigestBuf};

use crate::fsio;
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::store::Store;

/// What a collection found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Manifests read in the mark phase.
    pub manifests: usize,
    /// Distinct blobs referenced (manifests included).
    pub marked: usize,
    /// Unreferenced blobs removed (or, in a dry run, that would be).
    pub removed: usize,
    /// Bytes those blobs held.
    pub bytes: u64,
    /// Unreferenced blobs kept because they were written or used within the grace period.
    pub recent: usize,
    /// Blobs a collection that was killed had moved aside, put back.
    pub restored: usize,
    /// Repository links to removed blobs that were cleaned up.
    pub links: usize,
}

/// One blob the sweep removed (or would remove).
#[derive(Debug)]
pub struct Removed {
    /// Its digest.
    pub digest: DigestBuf,
    /// Its size.
    pub size: u64,
}

/// How to collect.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report only; change nothing.
    pub dry_run: bool,
    /// Keep unreferenced blobs modified less than this long before the collection started.
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { dry_run: false, grace: Duration::from_secs(3600) }
    }
}

/// Runs a collection on an existing storage root. `on_remove` hears about every blob removed (or, in a dry
/// run, that would be).
pub fn collect(root: &Path, options: &Options, mut on_remove: impl FnMut(&Removed)) -> io::Result<Report> {
    let store = Store::existing(root)?;
    let layout = store.layout();
    let _lock = lock(root)?;
    let mut report = Report::default();
    if !options.dry_run {
        report.restored = restore_aside(layout)?;
    }
    // File times come from the kernel's coarse clock (a tick behind at most): a margin on top of the grace.
    let started = SystemTime::now();
    let cutoff =
        started.checked_sub(options.grace + Duration::from_millis(50)).unwrap_or(SystemTime::UNIX_EPOCH);
    let dry_run = options.dry_run;

    let repositories = store.repositories()?;
    let mut marked: HashSet<DigestBuf> = HashSet::new();
    for repo in &repositories {
        mark_repository(&store, repo, &mut marked, &mut report)?;
    }
    report.marked = marked.len();

    let mut removed = HashSet::new();
    for algorithm in Algorithm::ALL {
        let dir = layout.blobs_dir().join(algorithm.as_str());
        for prefix in fsio::list_dir(&dir)?.unwrap_or_default() {
            let prefix_dir = dir.join(&prefix);
            for name in fsio::list_dir(&prefix_dir)?.unwrap_or_default() {
                let Ok(digest) = Digest::from_parts(algorithm, &name) else {
                    tracing::warn!(path = %prefix_dir.join(&name).display(), "not a blob; leaving it alone");
                    continue;
                };
                if marked.contains(&digest.to_buf()) {
                    continue;
                }
                match sweep(&prefix_dir.join(&name), cutoff, dry_run)? {
                    Sweep::Recent => report.recent += 1,
                    Sweep::Gone => {}
                    Sweep::Removed(size) => {
                        report.removed += 1;
                        report.bytes += size;
                        on_remove(&Removed { digest: digest.to_buf(), size });
                        removed.insert(digest.to_buf());
                    }
                }
            }
        }
    }
    if !dry_run {
        for repo in &repositories {
            report.links += unlink_removed(layout, repo, &removed, cutoff)?;
        }
    }
    Ok(report)
}

fn mark_repository(
    store: &Store,
    repo: &str,
    marked: &mut HashSet<DigestBuf>,
    report: &mut Report,
) -> io::Result<()> {
    let layout = store.layout();
    for algorithm in Algorithm::ALL {
        for hex in fsio::list_dir(&layout.revisions_dir(repo, algorithm))?.unwrap_or_default() {
            let Ok(digest) = Digest::from_parts(algorithm, &hex) else {
                continue;
            };
            marked.insert(digest.to_buf());
            report.manifests += 1;
            let Some(content) = fsio::read_optional(&layout.blob(digest))? else {
                tracing::warn!(repository = repo, %digest, "manifest revision without content");
                continue;
            };
            // Every stored manifest was parsed when it was pushed. If one no longer parses we cannot know
            // what it references, so stop rather than delete something it needs.
            let doc = Manifest::parse(&content).map_err(|e| {
                io::Error::other(format!(
                    "manifest {digest} in {repo} cannot be parsed ({e}); not collecting"
                ))
            })?;
            let referenced =
                doc.config.iter().chain(doc.layers.iter().flatten()).chain(doc.blobs.iter().flatten());
            for d in referenced.chain(doc.manifests.iter().flatten()) {
                if let Ok(d) = DigestBuf::parse(&d.digest) {
                    marked.insert(d);
                }
            }
        }
    }
    Ok(())
}

enum Sweep {
    Recent,
    Gone,
    Removed(u64),
}

fn sweep(path: &Path, cutoff: SystemTime, dry_run: bool) -> io::Result<Sweep> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if fsio::not_found(&e) => return Ok(Sweep::Gone),
        Err(e) => return Err(e),
    };
    if meta.modified()? >= cutoff {
        return Ok(Sweep::Recent);
    }
    if dry_run {
        return Ok(Sweep::Removed(meta.len()));
    }
    let aside = aside_path(path);
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if fsio::not_found(&e) => return Ok(Sweep::Gone),
        Err(e) => return Err(e),
    }
    // A push may have touched it between our check and the rename: the time moved with the file.
    if fs::metadata(&aside)?.modified()? >= cutoff {
        fs::rename(&aside, path)?;
        return Ok(Sweep::Recent);
    }
    fs::remove_file(&aside)?;
    Ok(Sweep::Removed(meta.len()))
}

/// Removes a repository's links to blobs this collection removed, unless the link is newer than the
/// collection (the blob was pushed again meanwhile).
fn unlink_removed(
    layout: &Layout,
    repo: &str,
    removed: &HashSet<DigestBuf>,
    cutoff: SystemTime,
) -> io::Result<usize> {
    let mut n = 0;
    for algorithm in Algorithm::ALL {
        let dir = layout.repository(repo).join("_layers").join(algorithm.as_str());
        for hex in fsio::list_dir(&dir)?.unwrap_or_default() {
            let Ok(digest) = Digest::from_parts(algorithm, &hex) else {
                continue;
            };
            if !removed.contains(&digest.to_buf()) {
                continue;
            }
            let link = dir.join(&hex);
            let Ok(meta) = fs::metadata(&link) else { continue };
            if meta.modified()? < cutoff && !layout.blob(digest).exists() && fsio::remove_optional(&link)? {
                n += 1;
            }
        }
    }
    Ok(n)
}

const ASIDE: &str = ".gc-";

/// `blobs/<alg>/<xx>/<hex>` -> `blobs/<alg>/<xx>/.gc-<hex>`
fn aside_path(blob: &Path) -> std::path::PathBuf {
    let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    blob.with_file_name(format!("{ASIDE}{name}"))
}

/// Puts back blobs a killed collection had moved aside (unless the blob was stored again meanwhile).
fn restore_aside(layout: &Layout) -> io::Result<usize> {
    let mut restored = 0;
    for algorithm in Algorithm::ALL {
        let dir = layout.blobs_dir().join(algorithm.as_str());
        for prefix in fsio::list_dir(&dir)?.unwrap_or_default() {
            let prefix_dir = dir.join(&prefix);
            for entry in fs::read_dir(&prefix_dir)? {
                let entry = entry?;
                let Some(hex) =
                    entry.file_name().to_str().and_then(|n| n.strip_prefix(ASIDE)).map(str::to_owned)
                else {
                    continue;
                };
                let blob = prefix_dir.join(&hex);
                if blob.exists() {
                    fsio::remove_optional(&entry.path())?;
                } else {
                    fs::rename(entry.path(), &blob)?;
                    restored += 1;
                }
            }
        }
    }
    Ok(restored)
}

/// One collection at a time per root.
fn lock(root: &Path) -> io::Result<fs::File> {
    let path = root.join(".gc.lock");
    let file = fs::File::options().create(true).truncate(false).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another garbage collection is running on {} (it holds {})",
                root.display(),
                path.display()
            ),
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}
