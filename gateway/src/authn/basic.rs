//! HTTP Basic against an htpasswd file (bcrypt entries only).
//!
//! A bcrypt check costs tens of milliseconds by design, so a verified credential is remembered (by the
//! SHA-256 of `user:password`, never the password itself) and later requests with it cost a hash and a map
//! lookup. Wrong passwords are never remembered and bcrypt runs on the blocking pool, a bounded number at
//! a time, so a flood of bad guesses cannot starve the proxy threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use policy::{AuthMethod, Principal};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::Groups;

/// Most verified credentials remembered at once (then the memory starts over).
const CACHE_CAP: usize = 10_000;
/// How long a verified credential is trusted without running bcrypt again.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// The users of an htpasswd file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Reads and checks a file: `user:$2y$...` lines; blank lines and `#` comments are skipped. Entries
    /// that are not bcrypt (MD5 `$apr1$`, SHA `{SHA}`, crypt) are refused with their line number.
    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Htpasswd::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
    }

    /// Parses htpasswd text.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{}: expected `user:hash`", i + 1));
            };
            if user.is_empty() {
                return Err(format!("{}: empty user name", i + 1));
            }
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(format!(
                    "{}: the entry of {user:?} is not bcrypt; create it with `htpasswd -B` (MD5, SHA1 and crypt \
                     are refused)",
                    i + 1
                ));
            }
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(format!("{}: {user:?} appears twice", i + 1));
            }
        }
        Ok(Htpasswd { users })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Why Basic credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicError {
    /// Not `base64(user:password)`.
    Malformed,
    /// No such user, or the wrong password.
    Invalid,
    /// The server is not set up for Basic.
    NotConfigured,
    /// Every bcrypt slot stayed busy for too long (try again).
    Busy,
}

/// How long a password check may wait for a bcrypt slot.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// A bcrypt hash no password matches, checked for unknown users so that they take as long as known ones
/// (the answer's timing does not tell which user names exist).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash("ocigate: no such user", bcrypt::DEFAULT_COST).unwrap_or_default())
}

/// Verified credentials: SHA-256 of `user:password` -> (principal, when, htpasswd generation).
type Verified = HashMap<[u8; 32], (Arc<Principal>, Instant, u64)>;

/// Checks Basic credentials against the current htpasswd file, with a cache of verified ones.
#[derive(Debug)]
pub struct BasicAuth {
    path: PathBuf,
    file: ArcSwap<Htpasswd>,
    stamp: std::sync::Mutex<Option<SystemTime>>,
    generation: std::sync::atomic::AtomicU64,
    verified: RwLock<Verified>,
    bcrypt_slots: Semaphore,
    /// One bcrypt per credential at a time: concurrent first uses wait for the first check.
    in_flight: std::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    groups: Arc<Groups>,
}

impl BasicAuth {
    /// Loads the file.
    pub fn load(path: &Path, groups: Arc<Groups>) -> Result<BasicAuth, String> {
        let file = Htpasswd::load(path)?;
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(BasicAuth {
            path: path.to_path_buf(),
            file: ArcSwap::from_pointee(file),
            stamp: std::sync::Mutex::new(modified(path)),
            generation: std::sync::atomic::AtomicU64::new(0),
            verified: RwLock::new(HashMap::new()),
            bcrypt_slots: Semaphore::new(slots),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            groups,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file when it changed; a file that does not parse keeps the old users. Credentials
    /// verified against the old file are forgotten.
    pub fn refresh(&self) {
        let now = modified(&self.path);
        let Ok(mut stamp) = self.stamp.lock() else { return };
        if *stamp == now {
            return;
        }
        *stamp = now;
        match Htpasswd::load(&self.path) {
            Ok(file) => {
                let users = file.len();
                self.file.store(Arc::new(file));
                self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
                if let Ok(mut v) = self.verified.write() {
                    v.clear();
                }
                tracing::info!(file = %self.path.display(), users, "reloaded the htpasswd file");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the old htpasswd users"),
        }
    }

    /// A fingerprint of `user`'s entry (16 hex digits of the SHA-256 of its hash), if the user exists.
    pub fn fingerprint(&self, user: &str) -> Option<String> {
        let file = self.file.load();
        let hash = Sha256::digest(file.users.get(user)?.as_bytes());
        Some(hash[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Verifies the value of an `Authorization: Basic` header (after `Basic `). Returns the principal.
    pub async fn verify(&self, encoded: &str) -> Result<Arc<Principal>, BasicError> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| BasicError::Malformed)?;
        let text = std::str::from_utf8(&raw).map_err(|_| BasicError::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(BasicError::Malformed)?;
        let key: [u8; 32] = Sha256::digest(&raw).into();
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Some(p) = self.cached(&key, generation) {
            return Ok(p);
        }
        let gate = match self.in_flight.lock() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let result = {
            let _turn = gate.lock().await;
            match self.cached(&key, generation) {
                Some(p) => Ok(p),
                None => self.check(user, password, key, generation).await,
            }
        };
        if let Ok(mut m) = self.in_flight.lock()
            && Arc::strong_count(&gate) <= 2
        {
            m.remove(&key);
        }
        result
    }

    fn cached(&self, key: &[u8; 32], generation: u64) -> Option<Arc<Principal>> {
        let v = self.verified.read().ok()?;
        let (principal, at, g) = v.get(key)?;
        (*g == generation && at.elapsed() < CACHE_TTL).then(|| principal.clone())
    }

    async fn check(
        &self,
        user: &str,
        password: &str,
        key: [u8; 32],
        generation: u64,
    ) -> Result<Arc<Principal>, BasicError> {
        let file = self.file.load_full();
        let (known, hash) = match file.users.get(user) {
            Some(h) => (true, h.clone()),
            None => (false, dummy_hash().to_owned()),
        };
        let _slot = match tokio::time::timeout(SLOT_WAIT, self.bcrypt_slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(BasicError::Invalid),
            Err(_) => return Err(BasicError::Busy),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !(ok && known) {
            return Err(BasicError::Invalid);
        }
        let principal = Arc::new(Principal::new(user, self.groups.of(user).to_vec(), AuthMethod::Basic));
        if let Ok(mut v) = self.verified.write() {
            if v.len() >= CACHE_CAP {
                v.clear();
            }
            v.insert(key, (principal.clone(), Instant::now(), generation));
        }
        Ok(principal)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bcrypt_entries_and_refuses_others() {
        let h = Htpasswd::parse("# users\nalice:$2y$05$abc\n\nbob:$2b$05$def\n").expect("parses");
        assert_eq!(h.len(), 2);
        let e = Htpasswd::parse("alice:$apr1$xyz").expect_err("md5 refused");
        assert!(e.starts_with("1: ") && e.contains("htpasswd -B"), "{e}");
        let e = Htpasswd::parse("alice:$2y$05$abc\nalice:$2y$05$abc").expect_err("duplicate");
        assert!(e.starts_with("2: "), "{e}");
        assert!(Htpasswd::parse("nocolon").is_err());
    }

    #[tokio::test]
    async fn verifies_once_then_from_the_cache() {
        use base64::Engine as _;
        let dir = std::env::temp_dir().join(format!("ocigate-htpasswd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("htpasswd");
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        std::fs::write(&path, format!("alice:{hash}\n")).expect("write");
        let auth = BasicAuth::load(&path, Arc::default()).expect("load");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let name = |r: Result<Arc<Principal>, BasicError>| r.map(|p| p.name().to_owned());
        assert_eq!(name(auth.verify(&b64("alice:s3cret")).await).as_deref(), Ok("alice"));
        assert_eq!(name(auth.verify(&b64("alice:wrong")).await), Err(BasicError::Invalid));
        assert_eq!(name(auth.verify(&b64("mallory:s3cret")).await), Err(BasicError::Invalid));
        assert_eq!(name(auth.verify("!!!").await), Err(BasicError::Malformed));
        assert_eq!(auth.verified.read().expect("lock").len(), 1);
        assert_eq!(name(auth.verify(&b64("alice:s3cret")).await).as_deref(), Ok("alice"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
