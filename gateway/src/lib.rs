//! ocigate: an authorization gateway for OCI registries, and the lean registry it bundles.
//!
//! ```text
//! ocigate registry serve --root DIR --listen ADDR    the bundled registry, without authentication
//! ocigate registry gc --root DIR [--dry-run]         remove blobs no manifest references
//! ```
//! The gateway itself (`ocigate serve --config FILE`), which authenticates and authorizes every `/v2/`
//! request before it reaches a registry, is built on top of these.

pub mod cli;
mod registry;
pub mod telemetry;

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Registry(cli::RegistryCommand::Serve(args)) => registry::serve(args),
        cli::Command::Registry(cli::RegistryCommand::Gc(args)) => registry::gc(args),
    }
}
