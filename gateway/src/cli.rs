//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ocigate: an authorization gateway for OCI container registries.
#[derive(Debug, Parser)]
#[command(name = "ocigate", version, about, max_term_width = 100)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Logging options, shared by every command.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `warn`, or `info,registry::access=debug` for a line per request (overrides
    /// RUST_LOG; default info).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: authenticate and authorize every registry request, forward the allowed ones to
    /// the bundled registry or an upstream registry (SIGHUP reloads the policy; SIGTERM drains and exits).
    Serve(GatewayArgs),
    /// Check a gateway configuration (and the policy, keys and certificates it names) without starting:
    /// print every problem with its path in the file (exit 1 if there is any).
    CheckConfig(CheckConfigArgs),
    /// The bundled OCI registry (distribution-spec v1.1 on a filesystem).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Check, evaluate and test authorization policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print an htpasswd line (bcrypt) for a user, reading the password from the first line of stdin:
    /// `echo "$PASSWORD" | ocigate passwd alice >> htpasswd` (also spelt `htpasswd`).
    #[command(alias = "htpasswd")]
    Passwd(HtpasswdArgs),
    /// The built-in token service: signing keys and test tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `ocigate token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Write a new signing key (PKCS#8 PEM) for `auth.token_service.keys`.
    Keygen(KeygenArgs),
    /// Mint an access token with the configured token service's key, for testing: by default it grants
    /// what the policy would grant the subject (as the token endpoint does); `--exact` grants the scopes
    /// as asked.
    Mint(MintArgs),
}

/// `ocigate token keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Key algorithm: ES256, ES384, EdDSA or RS256.
    #[arg(long, value_name = "ALG", default_value = "ES256")]
    pub algorithm: String,
    /// Write the key to this file (created with mode 0600; refuses to overwrite); stdout without it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ocigate token mint`
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The gateway configuration whose `auth.token_service` (with `keys`) signs the token.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// The token's subject (`sub`); empty for an anonymous token.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub subject: String,
    /// A scope to ask for, e.g. `repository:team/app:pull,push` or `registry:catalog:*` (repeatable; a
    /// value may hold several separated by spaces).
    #[arg(long, value_name = "SCOPE")]
    pub scope: Vec<String>,
    /// Grant the scopes exactly as asked instead of asking the policy.
    #[arg(long)]
    pub exact: bool,
    /// Token lifetime (default: the service's).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lifetime: Option<Duration>,
}

/// `ocigate serve`
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The configuration file (YAML); see examples/quickstart.yaml and examples/edge.yaml.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

/// `ocigate htpasswd`
#[derive(Debug, Args)]
pub struct HtpasswdArgs {
    /// The user name.
    #[arg(value_name = "USER")]
    pub user: String,
    /// bcrypt cost (4-31; each step doubles the time a check takes).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
}

/// `ocigate check-config`
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file (YAML).
    #[arg(value_name = "FILE")]
    pub config: PathBuf,
}

/// `ocigate policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile policy files and print every error with its file, rule and position (exit 1 on error).
    Check(CheckArgs),
    /// Decide one request: print allow/deny, the rule, the reason and the message (exit 0 allow, 1 deny,
    /// 2 usage or policy error).
    Eval(Box<EvalArgs>),
    /// Run table tests: one line per case, then `N passed, N failed` (exit 1 if any fails).
    Test(TestArgs),
}

/// `ocigate policy check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files, or folders of `*.yaml` / `*.yml` files (merged into one policy).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `ocigate policy test`
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files (each names its policy files, relative to itself, and lists cases).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `ocigate policy eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Policy files or folders (repeat the flag, or list several after it).
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// The caller's user name.
    #[arg(long, value_name = "NAME", conflicts_with = "anonymous")]
    pub user: Option<String>,
    /// A group of the caller (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The caller is anonymous (the default without --user).
    #[arg(long)]
    pub anonymous: bool,
    /// How the caller authenticated.
    #[arg(long, value_enum, default_value_t = EvalMethod::Basic)]
    pub method: EvalMethod,
    /// Token claims, as a JSON object (visible to conditions as `principal.claims`).
    #[arg(long, value_name = "JSON")]
    pub claims: Option<String>,
    /// The client's IP address (`client.ip`).
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<std::net::IpAddr>,
    /// The TCP peer's IP address (`client.peer_ip`; default: the client IP).
    #[arg(long, value_name = "IP")]
    pub peer_ip: Option<std::net::IpAddr>,
    /// A raw X-Forwarded-For value (`client.forwarded_for`).
    #[arg(long, value_name = "LIST")]
    pub forwarded_for: Option<String>,
    /// The action: pull, push, delete, overwrite or catalog.
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// The repository (not needed for catalog).
    #[arg(long, value_name = "REPO")]
    pub repository: Option<String>,
    /// A tag or digest.
    #[arg(long, value_name = "REF")]
    pub reference: Option<String>,
    /// The source repository of a cross-repository mount.
    #[arg(long, value_name = "REPO")]
    pub mount_from: Option<String>,
    /// The HTTP method (`request.method`).
    #[arg(long, value_name = "METHOD", default_value = "")]
    pub http_method: String,
    /// The URL path (`request.path`).
    #[arg(long, value_name = "PATH", default_value = "")]
    pub path: String,
    /// When the request happens, RFC 3339 (`request.time`; default: now).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// How the evaluated caller authenticated.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EvalMethod {
    /// HTTP Basic.
    Basic,
    /// Bearer token.
    Bearer,
    /// TLS client certificate.
    Mtls,
}

/// `ocigate registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the registry over plain HTTP, without authentication (put the gateway in front of it).
    Serve(ServeArgs),
    /// Remove blobs that no manifest references. Safe while the registry serves pushes.
    Gc(GcArgs),
}

/// `ocigate registry serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Storage root; created if missing.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Delete upload sessions idle for longer than this (e.g. 30m, 24h).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub upload_ttl: Duration,
    /// Largest manifest accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_manifest_bytes: usize,
    /// On SIGTERM or Ctrl-C, wait at most this long for requests in flight before exiting.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `ocigate registry gc`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Storage root of the registry.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Only report what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced blobs written or used this recently: the blobs of pushes still in progress,
    /// whose manifest is not there yet. `0s` collects everything unreferenced (only safe when nothing is
    /// pushing).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub grace: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 10m, 24h)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" {
                    assert!(arg.get_help().is_some(), "{} --{id} has no help", cmd.get_name());
                }
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&Cli::command());
    }
}
