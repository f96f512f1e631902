//! ocigate: an authorization gateway for OCI registries, and the lean registry it bundles.
//!
//! ```text
//! ocigate serve --config FILE                         the gateway (Pingora): TLS, authn, policy, forwarding
//! ocigate check-config FILE                           check a gateway configuration without starting
//! ocigate registry serve --root DIR --listen ADDR    the bundled registry, without authentication
//! ocigate registry gc --root DIR [--dry-run]         remove blobs no manifest references
//! ocigate policy check|eval|test ...                  compile, query and test authorization policies
//! ocigate passwd USER                                 an htpasswd line (password on stdin)
//! ocigate token keygen|mint                           token service keys and test tokens
//! ```

mod admin;
pub mod authn;
pub mod classify;
pub mod cli;
pub mod config;
mod decisions;
mod metrics;
mod policy_cmd;
pub mod policy_files;
mod proxy;
mod registry;
mod reload;
pub mod reply;
mod serve;
pub mod telemetry;
pub mod tls;
pub mod token;
mod token_cmd;
mod upstream;

use std::process::ExitCode;

/// Runs a parsed command line; the exit code follows each command's documented convention.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::{Command, PolicyCommand, RegistryCommand};
    match cli.command {
        Command::Serve(args) => serve::serve(&args.config).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig(args) => Ok(check_config(&args.config)),
        Command::Passwd(args) => htpasswd(&args).map(|()| ExitCode::SUCCESS),
        Command::Token(cli::TokenCommand::Keygen(args)) => {
            token_cmd::keygen(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Token(cli::TokenCommand::Mint(args)) => token_cmd::mint(&args).map(|()| ExitCode::SUCCESS),
        Command::Registry(RegistryCommand::Serve(args)) => registry::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Registry(RegistryCommand::Gc(args)) => registry::gc(args).map(|()| ExitCode::SUCCESS),
        Command::Policy(PolicyCommand::Check(args)) => Ok(policy_cmd::check(&args)),
        Command::Policy(PolicyCommand::Eval(args)) => Ok(policy_cmd::eval(&args)),
        Command::Policy(PolicyCommand::Test(args)) => Ok(policy_cmd::test(&args)),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    pingora::tls::install_default_crypto_provider();
    match serve::check(path) {
        Ok(s) => {
            println!(
                "{}: ok ({} listener(s), upstream {}, policy mode {})",
                path.display(),
                s.listeners.len(),
                match &s.upstream {
                    config::UpstreamSettings::Bundled { root, .. } =>
                        format!("bundled at {}", root.display()),
                    config::UpstreamSettings::Remote { tls, host, port, .. } =>
                        format!("{}://{host}:{port}", if *tls { "https" } else { "http" }),
                },
                s.policy_mode.as_str()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn htpasswd(args: &cli::HtpasswdArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    if args.user.is_empty() || args.user.contains(':') {
        anyhow::bail!("the user name must not be empty or contain ':'");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("no password on stdin (echo \"$PASSWORD\" | ocigate passwd USER)");
    }
    let hash = bcrypt::hash(password, args.cost).context("cannot hash the password")?;
    println!("{}:{hash}", args.user);
    Ok(())
}
