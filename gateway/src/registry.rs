//! `ocigate registry serve` and `ocigate registry gc`.

use std::sync::Arc;

use anyhow::Context;
use storage_backend::{Config, Registry};
use tokio::sync::Notify;

use crate::cli::{GcArgs, ServeArgs};

/// Serves the bundled registry until SIGTERM or Ctrl-C, then drains requests in flight.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let config = Config {
            upload_ttl: args.upload_ttl,
            max_manifest_bytes: args.max_manifest_bytes,
            ..Config::default()
        };
        let registry = Registry::open(&args.root, config)
            .with_context(|| format!("cannot open storage root {}", args.root.display()))?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, root = %args.root.display(), "registry listening");

        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let mut server =
            tokio::spawn(storage_backend::serve(listener, registry, async move { stopped.notified().await }));
        tokio::select! {
            result = &mut server => return result.context("server task failed")?.context("server failed"),
            () = shutdown_signal() => {}
        }
        tracing::info!(timeout = ?args.shutdown_timeout, "shutting down: finishing requests in flight");
        stop.notify_one();
        match tokio::time::timeout(args.shutdown_timeout, server).await {
            Ok(result) => result.context("server task failed")?.context("server failed"),
            Err(_) => {
                tracing::warn!("requests still running after the shutdown timeout; exiting anyway");
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Collects garbage and prints what it removed.
pub fn gc(args: GcArgs) -> anyhow::Result<()> {
    let verb = if args.dry_run { "would remove" } else { "removed" };
    let options = storage_backend::gc::Options { dry_run: args.dry_run, grace: args.grace };
    let report = storage_backend::gc::collect(&args.root, &options, |r| {
        println!("{verb} {} ({} bytes)", r.digest, r.size);
    })
    .with_context(|| format!("garbage collection of {} failed", args.root.display()))?;
    if report.restored > 0 {
        println!("put back {} blobs an interrupted collection had moved aside", report.restored);
    }
    println!(
        "{} manifests, {} referenced blobs; {verb} {} unreferenced blobs ({} bytes); kept {} unreferenced blobs \
         younger than the grace period ({}); {} stale links removed",
        report.manifests,
        report.marked,
        report.removed,
        report.bytes,
        report.recent,
        humantime::format_duration(args.grace),
        report.links
    );
    Ok(())
}
