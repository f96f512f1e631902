//! ocigate's bundled registry: the OCI distribution-spec v1.1 on a filesystem root.
//!
//! It is an origin server without authentication (the gateway in front of it decides who may do what).
//! Blobs are content-addressed and shared by every repository; each repository links the blobs and
//! manifests it holds, so content is only reachable through a repository that holds it. Every write is
//! verified against its digest and made atomic and durable before it becomes visible.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = storage_backend::Registry::open("/var/lib/ocigate".as_ref(), Default::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! storage_backend::serve(listener, registry, std::future::pending()).await?;
//! # Ok(()) }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod fsio;
pub mod gc;
mod handlers;
pub mod hashing;
pub mod layout;
pub mod manifest;
mod routes;
pub mod store;
pub mod uploads;

use std::fs::{File, TryLockError};
use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;

pub use error::{Code, RegistryError};
pub use store::Store;
pub use uploads::Uploads;

/// Registry settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Upload sessions idle for longer than this are deleted.
    pub upload_ttl: Duration,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// `/v2/_catalog` page size when the client gives no `n`.
    pub catalog_page_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upload_ttl: Duration::from_secs(24 * 3600),
            max_manifest_bytes: 4 << 20,
            catalog_page_size: 1000,
        }
    }
}

/// A registry: its store, its upload sessions and its settings.
#[derive(Debug)]
pub struct Registry {
    store: Store,
    uploads: Uploads,
    config: Config,
    /// Held for the registry's lifetime: one serving process per storage root.
    _root_lock: File,
}

impl Registry {
    /// Opens (creating if needed) the storage root and takes it for this process: a second registry on
    /// the same root is refused (`ocigate registry gc` may still run beside it).
    pub fn open(root: &Path, config: Config) -> io::Result<Arc<Registry>> {
        let store = Store::open(root)?;
        let _root_lock = lock_root(root)?;
        let uploads = Uploads::new(store.layout().clone());
        Ok(Arc::new(Registry { store, uploads, config, _root_lock }))
    }

    /// The content store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Upload sessions.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Takes `<root>/.lock` exclusively and writes our pid into it.
fn lock_root(root: &Path) -> io::Result<File> {
    let path = root.join(".lock");
    let mut file = File::options().create(true).truncate(false).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "storage root {} is already served by another process{} (it holds {}); stop it or use another --root",
                    root.display(),
                    if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
                    path.display()
                ),
            ));
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// The registry's HTTP application.
pub fn app(registry: Arc<Registry>) -> Router {
    Router::new().fallback(routes::dispatch).with_state(registry)
}

/// Serves the registry on `listener` until `shutdown` resolves, then finishes requests in flight.
/// Also runs the janitor that removes stale uploads.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let janitor = spawn_janitor(registry.clone());
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, app(registry)).with_graceful_shutdown(shutdown).await;
    janitor.abort();
    result
}

/// Serves the registry on a Unix socket (how the gateway hosts it in its own process) until `shutdown`
/// resolves, then finishes requests in flight. Also runs the upload janitor.
#[cfg(unix)]
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let janitor = spawn_janitor(registry.clone());
    let result = axum::serve(listener, app(registry)).with_graceful_shutdown(shutdown).await;
    janitor.abort();
    result
}

/// Removes upload sessions idle for longer than the configured TTL, at start and then periodically.
pub fn spawn_janitor(registry: Arc<Registry>) -> tokio::task::JoinHandle<()> {
    let every = (registry.config.upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let reg = registry.clone();
            let ttl = reg.config.upload_ttl;
            match tokio::task::spawn_blocking(move || reg.uploads.purge_stale(ttl)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(removed = n, "removed stale upload sessions"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot clean up stale uploads"),
                Err(e) => tracing::warn!(error = %e, "upload janitor failed"),
            }
        }
    })
}

/// Runs blocking storage work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RegistryError::internal("storage task failed", e))?
}
