//! Who is calling: HTTP Basic (htpasswd), bearer JWTs from trusted issuers, the TLS client certificate, or
//! nobody (anonymous, when allowed).
//!
//! Credentials in the `Authorization` header win over the client certificate; bad credentials are a 401 even
//! when anonymous access is on (a wrong password never silently becomes "anonymous").

pub mod basic;
pub mod bearer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use policy::Principal;

use crate::config::AuthSettings;
use crate::tls::PeerCert;
use basic::{BasicAuth, BasicError};
use bearer::{Access, BearerAuth, BearerError};

/// Extra groups per user name (`auth.groups` in the config), for principals whose credentials carry none
/// (htpasswd users, certificate identities) and added to a token's own groups.
#[derive(Debug, Default)]
pub struct Groups {
    by_user: HashMap<String, Vec<String>>,
}

impl Groups {
    /// From `group -> [users]`.
    pub fn new(groups: &BTreeMap<String, Vec<String>>) -> Groups {
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for (group, users) in groups {
            for user in users {
                by_user.entry(user.clone()).or_default().push(group.clone());
            }
        }
        Groups { by_user }
    }

    /// The groups of a user.
    pub fn of(&self, user: &str) -> &[String] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Who.
    pub principal: Arc<Principal>,
    /// A registry token's `access` claim: the request must also be within it.
    pub access: Option<Arc<[Access]>>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No credentials, and anonymous access is off.
    Missing,
    /// Basic credentials refused.
    Basic(BasicError),
    /// Bearer token refused.
    Bearer(BearerError),
    /// An `Authorization` scheme we do not speak.
    Scheme,
}

impl Failure {
    /// The method label of the `ocigate_authn_failures_total` metric.
    pub fn method(&self) -> &'static str {
        match self {
            Failure::Missing => "none",
            Failure::Basic(_) => "basic",
            Failure::Bearer(_) => "bearer",
            Failure::Scheme => "other",
        }
    }

    /// For the client's error detail and the decision log (never contains the credential).
    pub fn reason(&self) -> String {
        match self {
            Failure::Missing => "authentication required".into(),
            Failure::Basic(BasicError::Malformed) => "malformed Basic credentials".into(),
            Failure::Basic(BasicError::Invalid) => "invalid user name or password".into(),
            Failure::Basic(BasicError::NotConfigured) => "Basic authentication is not accepted here".into(),
            Failure::Bearer(e) => format!("invalid bearer token: {e}"),
            Failure::Scheme => "unsupported Authorization scheme (use Basic or Bearer)".into(),
        }
    }
}

/// Authenticates requests.
#[derive(Debug)]
pub struct Authenticator {
    anonymous: Option<Arc<Principal>>,
    realm: String,
    basic: Option<BasicAuth>,
    bearer: Option<BearerAuth>,
}

impl Authenticator {
    /// Loads the htpasswd file and the issuers' keys.
    pub fn load(settings: &AuthSettings, groups: Arc<Groups>) -> Result<Authenticator, String> {
        let basic = settings.htpasswd.as_deref().map(|p| BasicAuth::load(p, groups.clone())).transpose()?;
        let bearer = if settings.issuers.is_empty() {
            None
        } else {
            Some(BearerAuth::load(&settings.issuers, groups)?)
        };
        Ok(Authenticator {
            anonymous: settings.anonymous.then(|| Arc::new(Principal::anonymous())),
            realm: settings.realm.clone(),
            basic,
            bearer,
        })
    }

    /// Re-reads files that changed (the htpasswd file).
    pub fn refresh(&self) {
        if let Some(b) = &self.basic {
            b.refresh();
        }
    }

    /// Who sent a request with this `Authorization` header over a connection with this client certificate.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        cert: Option<&PeerCert>,
    ) -> Result<Identity, Failure> {
        if let Some(value) = authorization {
            let value = std::str::from_utf8(value).map_err(|_| Failure::Scheme)?.trim();
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            if scheme.eq_ignore_ascii_case("basic") {
                // `Basic Og==` (an empty user and password) is what clients without credentials send after a
                // Basic challenge: it is the anonymous caller.
                if rest.trim() == "Og==" {
                    return self
                        .anonymous
                        .clone()
                        .map(|p| Identity { principal: p, access: None })
                        .ok_or(Failure::Missing);
                }
                let basic = self.basic.as_ref().ok_or(Failure::Basic(BasicError::NotConfigured))?;
                let principal = basic.verify(rest).await.map_err(Failure::Basic)?;
                return Ok(Identity { principal, access: None });
            }
            if scheme.eq_ignore_ascii_case("bearer") {
                let bearer = self.bearer.as_ref().ok_or(Failure::Bearer(BearerError::NotConfigured))?;
                let v = bearer.verify(rest.trim()).map_err(Failure::Bearer)?;
                return Ok(Identity { principal: v.principal.clone(), access: v.access.clone() });
            }
            return Err(Failure::Scheme);
        }
        if let Some(principal) = cert.and_then(|c| c.principal.clone()) {
            return Ok(Identity { principal, access: None });
        }
        match &self.anonymous {
            Some(p) => Ok(Identity { principal: p.clone(), access: None }),
            None => Err(Failure::Missing),
        }
    }

    /// `WWW-Authenticate` values for a 401.
    pub fn challenges(&self, failure: Option<&Failure>) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        let realm = self.realm.replace(['"', '\\'], "");
        if let Some(Failure::Bearer(_)) = failure {
            out.push(format!("Bearer realm=\"{realm}\",error=\"invalid_token\""));
        }
        if self.basic.is_some() || out.is_empty() {
            out.push(format!("Basic realm=\"{realm}\",charset=\"UTF-8\""));
        }
        out
    }

    /// The htpasswd file, if Basic is on.
    pub fn htpasswd_path(&self) -> Option<&std::path::Path> {
        self.basic.as_ref().map(BasicAuth::path)
    }

    /// Does the gateway take credentials (htpasswd or token issuers)? Then the `/v2/` ping challenges
    /// callers that send none, so that clients learn to send theirs.
    pub fn takes_credentials(&self) -> bool {
        self.basic.is_some() || self.bearer.is_some()
    }

    /// Is anonymous access on?
    pub fn anonymous_allowed(&self) -> bool {
        self.anonymous.is_some()
    }
}

/// Does a token's `access` claim allow `action` on `repository` (or the catalog when `repository` is
/// empty)? `*` allows everything; `overwrite` is within `push`.
pub fn access_allows(access: &[Access], repository: &str, action: policy::Action) -> bool {
    use policy::Action;
    let (kind, name) =
        if action == Action::Catalog { ("registry", "catalog") } else { ("repository", repository) };
    let wanted = action.as_str();
    access.iter().any(|a| {
        a.kind == kind
            && a.name == name
            && a.actions
                .iter()
                .any(|x| x == "*" || x == wanted || (action == Action::Overwrite && x == "push"))
    })
}
