//! Logging setup.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// Ours at info, Pingora's own chatter (service start and stop lines) only when it warns.
const DEFAULT_FILTER: &str = "info,pingora_core=warn,pingora_proxy=warn";

/// Installs the global tracing subscriber: stderr, text or JSON, filtered by `--log-level`, else
/// `RUST_LOG`, else [`DEFAULT_FILTER`].
pub fn init(args: &LogArgs) {
    let filter = args
        .log_level
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
}
