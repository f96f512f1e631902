//! Where allowed requests go: the bundled registry (same process, private Unix socket) or a remote
//! registry, and the calls the gateway itself makes there (does a tag exist, list repositories and tags,
//! is it up).

mod bundled;
mod challenge;
mod remote;

use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;

pub use bundled::Bundled;
pub use remote::{HealthService, Remote};

/// What the upstream must allow the gateway for one request (the token dance asks for exactly this).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Nothing (the ping).
    None,
    /// `repository:<name>:<actions>`, plus `repository:<from>:pull` for a mount.
    Repository {
        /// Repository.
        name: String,
        /// `pull`, `pull,push` or `delete`.
        actions: &'static str,
        /// Mount source.
        from: Option<String>,
    },
    /// `registry:catalog:*`.
    Catalog,
}

impl Scope {
    /// The `scope` values of a token request.
    pub fn values(&self) -> Vec<String> {
        match self {
            Scope::None => Vec::new(),
            Scope::Repository { name, actions, from } => {
                let mut v = vec![format!("repository:{name}:{actions}")];
                if let Some(f) = from {
                    v.push(format!("repository:{f}:pull"));
                }
                v
            }
            Scope::Catalog => vec!["registry:catalog:*".to_owned()],
        }
    }
}

/// Why a call to the upstream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Not reachable, or it broke the connection.
    Unavailable(String),
    /// Did not answer in time.
    Timeout(String),
    /// Refused the gateway's own credentials (or the token dance failed).
    Unauthorized(String),
    /// Answered something we cannot use.
    Protocol(String),
}

impl UpstreamError {
    /// For the `kind` label of `ocigate_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable(_) => "unavailable",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Unauthorized(_) => "unauthorized",
            UpstreamError::Protocol(_) => "protocol",
        }
    }

    /// Detail for operators and the client's error body (never a credential).
    pub fn detail(&self) -> &str {
        match self {
            UpstreamError::Unavailable(s)
            | UpstreamError::Timeout(s)
            | UpstreamError::Unauthorized(s)
            | UpstreamError::Protocol(s) => s,
        }
    }
}

/// The upstream registry.
#[derive(Debug)]
pub enum Upstream {
    /// The registry in this process.
    Bundled(Box<Bundled>),
    /// A registry elsewhere.
    Remote(Arc<Remote>),
}

impl Upstream {
    /// Where to send a request (`None` while a remote upstream's name does not resolve).
    pub fn peer(&self) -> Option<Box<HttpPeer>> {
        match self {
            Upstream::Bundled(b) => Some(b.peer()),
            Upstream::Remote(r) => r.peer(),
        }
    }

    /// The `Authorization` value the gateway sends upstream for a request needing `scope`.
    pub async fn authorization(&self, scope: &Scope) -> Result<Option<Arc<str>>, UpstreamError> {
        match self {
            Upstream::Bundled(_) => Ok(None),
            Upstream::Remote(r) => r.authorization(scope).await,
        }
    }

    /// The upstream refused credentials we sent for `scope`: forget them.
    pub fn rejected(&self, scope: &Scope) {
        if let Upstream::Remote(r) = self {
            r.rejected(scope);
        }
    }

    /// The digest a tag points to, if the tag exists.
    pub async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<String>, UpstreamError> {
        match self {
            Upstream::Bundled(b) => b.tag_digest(repository, tag).await,
            Upstream::Remote(r) => r.tag_digest(repository, tag).await,
        }
    }

    /// Every repository, sorted.
    pub async fn repositories(&self) -> Result<Arc<Vec<String>>, UpstreamError> {
        match self {
            Upstream::Bundled(b) => b.repositories().await,
            Upstream::Remote(r) => r.repositories().await,
        }
    }

    /// Every tag of a repository, sorted; `None` when the repository is unknown.
    pub async fn tags(&self, repository: &str) -> Result<Option<Vec<String>>, UpstreamError> {
        match self {
            Upstream::Bundled(b) => b.tags(repository).await,
            Upstream::Remote(r) => r.tags(repository).await,
        }
    }

    /// Is it up (as of the last health check)?
    pub fn ready(&self) -> Result<(), String> {
        match self {
            Upstream::Bundled(b) => b.ready(),
            Upstream::Remote(r) => r.ready(),
        }
    }

    /// `host:port` of a remote upstream (for its `Host` header and for rewriting its `Location`s).
    pub fn authority(&self) -> Option<&str> {
        match self {
            Upstream::Bundled(_) => None,
            Upstream::Remote(r) => Some(r.authority()),
        }
    }
}
