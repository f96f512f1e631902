//! Durable, atomic file operations. Everything a client can observe is written to a temporary file,
//! flushed, renamed into place and made durable by syncing the directory, so a crash at any point leaves
//! either the old state or the new one, never a partial file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

/// Prefix of temporary files; nothing a client can name starts with a `.`.
pub const TMP_PREFIX: &str = ".tmp-";

/// Writes `contents` to `target` atomically and durably. The temporary file lives in `tmp_dir`, which must
/// be on the same filesystem as `target`.
pub fn write_atomic(tmp_dir: &Path, target: &Path, contents: &[u8]) -> io::Result<()> {
    ensure_dir(tmp_dir)?;
    let tmp = tmp_dir.join(format!("{TMP_PREFIX}{}", random_hex()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        rename_durable(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` (replacing it), creating `to`'s folder if needed, and syncs that folder.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to.parent().ok_or_else(|| io::Error::other("target has no parent folder"))?;
    ensure_dir(parent)?;
    fs::rename(from, to)?;
    sync_dir(parent)
}

/// Creates an empty marker file at `path` durably, or refreshes its modification time if it exists.
pub fn create_marker(path: &Path) -> io::Result<()> {
    if touch(path)? {
        return Ok(());
    }
    let parent = path.parent().ok_or_else(|| io::Error::other("marker has no parent folder"))?;
    ensure_dir(parent)?;
    File::create(path)?;
    sync_dir(parent)
}

/// Creates `dir` and any missing parents, syncing each parent that gained an entry.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
        // A relative path's last parent is the empty path: the current folder.
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        match fs::create_dir(dir) {
            Ok(()) => sync_dir(parent),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        Ok(())
    }
}

/// Flushes a directory's entries to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Sets a file's modification time to now. `Ok(true)` only if, afterwards, the file is still the one at
/// `path`: a file renamed away or deleted meanwhile (by a garbage collection) counts as missing.
///
/// The garbage collector never removes a file modified after its cutoff, and checks the time again after
/// moving a file aside, so a `true` here means the file stays.
pub fn touch(path: &Path) -> io::Result<bool> {
    let f = match File::options().append(true).open(path) {
        Ok(f) => f,
        Err(e) if not_found(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    f.set_modified(SystemTime::now())?;
    let ours = f.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(same_file(&ours, &now)),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// Removes a file and syncs its folder, so the removal survives a crash. `Ok(false)` when it did not exist.
pub fn remove_durable(path: &Path) -> io::Result<bool> {
    if !remove_optional(path)? {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(true)
}

/// Reads a small file whole. `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file. `Ok(false)` when it did not exist.
pub fn remove_optional(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Size of a regular file. `Ok(None)` when it does not exist.
pub fn file_size(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names in a directory, skipping temporary files. `Ok(None)` when the directory does not exist.
pub fn list_dir(dir: &Path) -> io::Result<Option<Vec<String>>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string()
            && !name.starts_with('.')
        {
            names.push(name);
        }
    }
    Ok(Some(names))
}

/// `NotFound`, or `NotADirectory` (a path component is a file): either way the thing is not there.
pub fn not_found(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// 128 random bits as 32 lowercase hex characters.
pub fn random_hex() -> String {
    let bytes = random_bytes();
    oci::DigestBuf::from_hash(oci::Algorithm::Sha256, &bytes).hex().to_owned()
}

/// A random version-4 UUID, the format clients expect in `Docker-Upload-UUID`.
pub fn random_uuid() -> String {
    let mut b = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = oci::DigestBuf::from_hash(oci::Algorithm::Sha256, &b);
    let h = h.hex();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // The OS random source does not fail on any platform we run on; a failure here is a broken host.
    getrandom::fill(&mut b).expect("the operating system's random source is unavailable");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        let target = dir.path().join("a/b/c");
        write_atomic(&tmp, &target, b"one").unwrap();
        write_atomic(&tmp, &target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn marker_and_touch() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("x/y");
        assert!(!touch(&m).unwrap());
        create_marker(&m).unwrap();
        assert!(touch(&m).unwrap());
        assert_eq!(file_size(&m).unwrap(), Some(0));
    }

    #[test]
    fn touch_misses_a_file_moved_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        fs::write(&p, b"x").unwrap();
        assert!(touch(&p).unwrap());
        fs::rename(&p, dir.path().join(".aside")).unwrap();
        assert!(!touch(&p).unwrap());
        assert!(!remove_durable(&p).unwrap());
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid(), u);
    }
}
