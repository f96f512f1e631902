//! Garbage collection: mark every blob a stored manifest references, sweep the rest.
//!
//! Safe to run while the registry serves pushes, in the same process or another one:
//!
//! - Every write path that makes a blob reachable refreshes the blob's modification time first: a new
//!   blob is renamed into place fresh, a re-upload of existing content and a cross-repository mount
//!   touch it, and a manifest push touches everything it references before it is stored.
//! - The collector notes its start time before marking, and never removes a blob modified after it.
//! - A blob is removed by renaming it aside, checking its time again, and only then deleting it, so a
//!   touch that lands between the check and the removal puts it back.
//!
//! So a blob an upload or a manifest push starts depending on while the collector runs is kept, and a
//! manifest push that loses that race fails with `MANIFEST_BLOB_UNKNOWN` rather than storing a manifest
//! whose blob is gone. Upload sessions are not touched (the registry's janitor removes stale ones).
//! Untagged manifests are kept: they are still reachable by digest.

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
    /// Unreferenced blobs kept because they were written or used after the collection started.
    pub recent: usize,
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

/// Runs a collection on the storage root. With `dry_run` nothing is changed. `on_remove` hears about every
/// blob removed.
pub fn collect(root: &Path, dry_run: bool, mut on_remove: impl FnMut(&Removed)) -> io::Result<Report> {
    if !root.join("repositories").is_dir() || !root.join("blobs").is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is not a registry storage root (no blobs/ and repositories/ in it)",
                root.display()
            ),
        ));
    }
    let store = Store::open(root)?;
    let layout = store.layout();
    // Timestamps on disk come from a coarse clock; a margin keeps anything touched around the start.
    let started = SystemTime::now() - Duration::from_secs(1);
    let mut report = Report::default();

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
                match sweep(&prefix_dir.join(&name), started, dry_run)? {
                    Sweep::Recent => report.recent += 1,
                    Sweep::Gone => {}
                    Sweep::Removed(size) => {
                        report.removed += 1;
                        report.bytes += size;
                        on_remove(&Removed {
                            digest: digest.to_buf(),
                            size,
                        });
                        removed.insert(digest.to_buf());
                    }
                }
            }
        }
    }
    if !dry_run {
        for repo in &repositories {
            report.links += unlink_removed(layout, repo, &removed, started)?;
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
            let referenced = doc
                .config
                .iter()
                .chain(doc.layers.iter().flatten())
                .chain(doc.blobs.iter().flatten());
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

fn sweep(path: &Path, started: SystemTime, dry_run: bool) -> io::Result<Sweep> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if fsio::not_found(&e) => return Ok(Sweep::Gone),
        Err(e) => return Err(e),
    };
    if meta.modified()? >= started {
        return Ok(Sweep::Recent);
    }
    if dry_run {
        return Ok(Sweep::Removed(meta.len()));
    }
    let aside = path.with_file_name(format!(".gc-{}", fsio::random_hex()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if fsio::not_found(&e) => return Ok(Sweep::Gone),
        Err(e) => return Err(e),
    }
    // A push may have touched it between our check and the rename: the time moved with the file.
    if fs::metadata(&aside)?.modified()? >= started {
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
    started: SystemTime,
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
            if meta.modified()? < started && !layout.blob(digest).exists() && fsio::remove_optional(&link)? {
                n += 1;
            }
        }
    }
    Ok(n)
}
