//! ocigate: an authorization gateway for OCI registries, and the lean registry it bundles.
//!
//! ```text
//! ocigate registry serve --root DIR --listen ADDR    the bundled registry, without authentication
//! ocigate registry gc --root DIR [--dry-run]         remove blobs no manifest references
//! ocigate policy check|eval|test ...                  compile, query and test authorization policies
//! ```
//! The gateway itself (`ocigate serve --config FILE`), which authenticates and authorizes every `/v2/`
//! request before it reaches a registry, is built on top of these.

pub mod cli;
mod policy_cmd;
pub mod policy_files;
mod registry;
pub mod telemetry;

use std::process::ExitCode;

/// Runs a parsed command line; the exit code follows each command's documented convention.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::{Command, PolicyCommand, RegistryCommand};
    match cli.command {
        Command::Registry(RegistryCommand::Serve(args)) => registry::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Registry(RegistryCommand::Gc(args)) => registry::gc(args).map(|()| ExitCode::SUCCESS),
        Command::Policy(PolicyCommand::Check(args)) => Ok(policy_cmd::check(&args)),
        Command::Policy(PolicyCommand::Eval(args)) => Ok(policy_cmd::eval(&args)),
        Command::Policy(PolicyCommand::Test(args)) => Ok(policy_cmd::test(&args)),
    }
}
