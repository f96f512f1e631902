//! The bundled registry, served in this process on a private Unix socket (a folder only this user can
//! enter), plus direct reads of its store for the calls the gateway makes itself.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oci::Reference;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use storage_backend::{Config, Registry};

use super::UpstreamError;

/// The bundled registry.
#[derive(Debug)]
pub struct Bundled {
    registry: Arc<Registry>,
    peer: HttpPeer,
    dir: PathBuf,
}

impl Bundled {
    /// Opens the storage root (taking its lock) and binds the private socket. The returned service
    /// serves it.
    pub fn open(root: &Path, upload_ttl: Duration) -> Result<(Bundled, BundledService), String> {
        let config = Config { upload_ttl, ..Config::default() };
        let registry = Registry::open(root, config)
            .map_err(|e| format!("upstream.bundled.root: cannot open {}: {e}", root.display()))?;
        let base = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("ocigate-{}-{:x}", std::process::id(), nonce()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create the private socket folder {}: {e}", dir.display()))?;
        let socket = dir.join("registry.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(|e| format!("cannot bind the bundled registry's socket {}: {e}", socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| format!("cannot set up {}: {e}", socket.display()))?;
        let path = socket.to_str().ok_or_else(|| format!("socket path {} is not UTF-8", socket.display()))?;
        let mut peer = HttpPeer::new_uds(path, false, String::new())
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        let service = BundledService { registry: registry.clone(), listener: Mutex::new(Some(listener)) };
        Ok((Bundled { registry, peer, dir }, service))
    }

    pub(super) fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    pub(super) async fn tag_digest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let (reg, repo, tag) = (self.registry.clone(), repository.to_owned(), tag.to_owned());
        blocking(move || reg.store().resolve(&repo, Reference::Tag(&tag)).map(|d| d.map(|d| d.to_string())))
            .await
    }

    pub(super) async fn repositories(&self) -> Result<Arc<Vec<String>>, UpstreamError> {
        let reg = self.registry.clone();
        blocking(move || reg.store().repositories()).await.map(Arc::new)
    }

    pub(super) async fn tags(&self, repository: &str) -> Result<Option<Vec<String>>, UpstreamError> {
        let (reg, repo) = (self.registry.clone(), repository.to_owned());
        blocking(move || reg.store().tags(&repo)).await
    }

    pub(super) fn ready(&self) -> Result<(), String> {
        let root = self.registry.store().layout().root();
        std::fs::metadata(root).map(|_| ()).map_err(|e| format!("storage root {}: {e}", root.display()))
    }

    /// Removes the private socket folder (at exit).
    pub fn remove_socket(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(error = %e, dir = %self.dir.display(), "cannot remove the socket folder");
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, UpstreamError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(UpstreamError::Unavailable(format!("storage: {e}"))),
        Err(e) => Err(UpstreamError::Unavailable(format!("storage task failed: {e}"))),
    }
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Serves the bundled registry on its socket. It keeps serving while the proxy drains on shutdown (requests
/// in flight still need it) and ends with the process.
pub struct BundledService {
    registry: Arc<Registry>,
    listener: Mutex<Option<std::os::unix::net::UnixListener>>,
}

#[async_trait]
impl BackgroundService for BundledService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let Some(listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else { return };
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve the bundled registry");
                return;
            }
        };
        if let Err(e) =
            storage_backend::serve_unix(listener, self.registry.clone(), std::future::pending()).await
        {
            tracing::error!(error = %e, "the bundled registry stopped");
        }
    }
}
