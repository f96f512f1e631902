//! Who is calling.

use std::sync::OnceLock;

use cel::common::value::Val;

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// No credentials.
    Anonymous,
    /// HTTP Basic (htpasswd).
    Basic,
    /// A bearer token (JWT).
    Bearer,
    /// A TLS client certificate.
    Mtls,
}

impl AuthMethod {
    /// The method's name in policies (`principal.method`) and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Basic => "basic",
            AuthMethod::Bearer => "bearer",
            AuthMethod::Mtls => "mtls",
        }
    }

    /// Parses a method name.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        [AuthMethod::Anonymous, AuthMethod::Basic, AuthMethod::Bearer, AuthMethod::Mtls]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// An authenticated (or anonymous) caller. Built once per credential and shared; its CEL form is built on
/// first use and kept.
#[derive(Debug)]
pub struct Principal {
    name: String,
    groups: Vec<String>,
    method: AuthMethod,
    claims: serde_json::Map<String, serde_json::Value>,
    cel: OnceLock<Box<dyn Val>>,
}

impl Principal {
    /// The anonymous caller.
    pub fn anonymous() -> Principal {
        Principal::new("", Vec::new(), AuthMethod::Anonymous)
    }

    /// A caller with a name and groups. An empty name or [`AuthMethod::Anonymous`] is anonymous, and an
    /// anonymous caller has no name, groups or claims.
    pub fn new(name: impl Into<String>, groups: Vec<String>, method: AuthMethod) -> Principal {
        let name = name.into();
        if name.is_empty() || method == AuthMethod::Anonymous {
            return Principal {
                name: String::new(),
                groups: Vec::new(),
                method: AuthMethod::Anonymous,
                claims: serde_json::Map::new(),
                cel: OnceLock::new(),
            };
        }
        Principal { name, groups, method, claims: serde_json::Map::new(), cel: OnceLock::new() }
    }

    /// Attaches token claims (visible to conditions as `principal.claims`); ignored for the anonymous caller.
    pub fn with_claims(mut self, claims: serde_json::Map<String, serde_json::Value>) -> Principal {
        if !self.is_anonymous() {
            self.claims = claims;
            self.cel = OnceLock::new();
        }
        self
    }

    /// The name; empty when anonymous.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The groups.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// How it authenticated.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Token claims (may be empty).
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }

    /// True for the anonymous caller.
    pub fn is_anonymous(&self) -> bool {
        self.method == AuthMethod::Anonymous
    }

    /// Is the caller in group `g`?
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The `principal` variable of conditions.
    pub(crate) fn cel_value(&self) -> &dyn Val {
        self.cel.get_or_init(|| crate::cel::principal_value(self)).as_ref()
    }
}
