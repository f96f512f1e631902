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
use bearer::{Access, BearerAuth, BearerError, OwnIssuer};

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
            Failure::Basic(BasicError::Busy) => "too many password checks at once; try again".into(),
            Failure::Bearer(e) => format!("invalid bearer token: {e}"),
            Failure::Scheme => "unsupported Authorization scheme (use Basic or Bearer)".into(),
        }
    }
}

/// Where clients get tokens: the built-in token service's realm and service name.
#[derive(Debug, Clone)]
pub struct TokenRealm {
    /// The realm URL as configured; otherwise built from the request's scheme and host plus `path`.
    pub realm: Option<String>,
    /// The token endpoint's path.
    pub path: String,
    /// `service`.
    pub service: String,
}

/// The scheme and host a client used to reach the gateway (for a realm URL that points back at it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The `Host` header (or HTTP/2 authority), if it is a plain host.
    pub host: Option<&'a str>,
}

/// What a challenge says beyond the realm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Need<'a> {
    /// The scope the request needs (`repository:team/app:pull`), space-separated when several.
    pub scope: Option<&'a str>,
    /// The caller's token is valid but grants too little.
    pub insufficient: bool,
}

/// Authenticates requests.
#[derive(Debug)]
pub struct Authenticator {
    anonymous: Option<Arc<Principal>>,
    realm: String,
    basic: Option<BasicAuth>,
    bearer: Option<BearerAuth>,
    token: Option<TokenRealm>,
    groups: Arc<Groups>,
}

impl Authenticator {
    /// Loads the htpasswd file and the issuers' keys; `own` is the token service's issuer and keys.
    pub fn load(
        settings: &AuthSettings,
        groups: Arc<Groups>,
        own: Option<OwnIssuer>,
    ) -> Result<Authenticator, String> {
        let basic = settings.htpasswd.as_deref().map(|p| BasicAuth::load(p, groups.clone())).transpose()?;
        let bearer = if settings.issuers.is_empty() && own.is_none() {
            None
        } else {
            Some(BearerAuth::load(&settings.issuers, own, groups.clone())?)
        };
        let token = settings.token_service.as_ref().map(|t| TokenRealm {
            realm: t.realm.clone(),
            path: t.path.clone(),
            service: t.service.clone(),
        });
        Ok(Authenticator {
            anonymous: settings.anonymous.then(|| Arc::new(Principal::anonymous())),
            realm: settings.realm.clone(),
            basic,
            bearer,
            token,
            groups,
        })
    }

    /// Re-reads files that changed (the htpasswd file, JWKS files).
    pub fn refresh(&self) {
        if let Some(b) = &self.basic {
            b.refresh();
        }
        if let Some(b) = &self.bearer {
            b.refresh_files();
        }
    }

    /// The bearer token verifier, if tokens are accepted.
    pub fn bearer(&self) -> Option<&BearerAuth> {
        self.bearer.as_ref()
    }

    /// The extra groups of users.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// A fingerprint of `user`'s htpasswd entry (it changes with the password), if the user exists.
    pub fn basic_fingerprint(&self, user: &str) -> Option<String> {
        self.basic.as_ref()?.fingerprint(user)
    }

    /// Verifies `Basic` credentials (the part after `Basic `).
    pub async fn verify_basic(&self, encoded: &str) -> Result<Arc<Principal>, BasicError> {
        self.basic.as_ref().ok_or(BasicError::NotConfigured)?.verify(encoded).await
    }

    /// The anonymous principal, when anonymous access is on.
    pub fn anonymous(&self) -> Option<Arc<Principal>> {
        self.anonymous.clone()
    }

    /// The Basic realm name.
    pub fn basic_realm(&self) -> &str {
        &self.realm
    }

    /// Is the built-in token service on (then challenges are `Bearer`)?
    pub fn token_realm(&self) -> Option<&TokenRealm> {
        self.token.as_ref()
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
                let token = rest.trim();
                let v = match bearer.verify(token) {
                    Err(BearerError::UnknownKey) if bearer.refetch_for_unknown_key(token).await => {
                        bearer.verify(token)
                    }
                    other => other,
                }
                .map_err(Failure::Bearer)?;
                // An anonymous token of the token service is only good while anonymous access is on.
                if v.principal.is_anonymous() && self.anonymous.is_none() {
                    return Err(Failure::Missing);
                }
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

    /// `WWW-Authenticate` values for a 401. With the token service on, one `Bearer` challenge naming its
    /// realm, the service, the scope the request needs and, for a token that failed, the error.
    pub fn challenges(&self, failure: Option<&Failure>, need: Need<'_>, origin: Origin<'_>) -> Vec<String> {
        if let Some(t) = &self.token {
            let mut c = String::with_capacity(160);
            c.push_str("Bearer realm=\"");
            match (&t.realm, origin.host) {
                (Some(r), _) => c.push_str(r),
                (None, Some(host)) => {
                    c.push_str(origin.scheme);
                    c.push_str("://");
                    c.push_str(host);
                    c.push_str(&t.path);
                }
                (None, None) => c.push_str(&t.path),
            }
            c.push_str("\",service=\"");
            c.push_str(&t.service);
            c.push('"');
            if let Some(scope) = need.scope {
                c.push_str(",scope=\"");
                c.push_str(scope);
                c.push('"');
            }
            if let Some(Failure::Bearer(_)) = failure {
                c.push_str(",error=\"invalid_token\"");
            } else if need.insufficient {
                c.push_str(",error=\"insufficient_scope\"");
            }
            return vec![c];
        }
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
        self.basic.is_some() || self.bearer.is_some() || self.token.is_some()
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
