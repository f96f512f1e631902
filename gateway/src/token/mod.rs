//! The built-in token service: ocigate as its own Docker/Distribution token realm.
//!
//! ```text
//! GET  <path>?service=&scope=...&account=&client_id=&offline_token=   Basic credentials, a client
//!                                                                      certificate, or none (anonymous)
//! POST <path>  grant_type=password|refresh_token, client_id, service, scope, access_type=offline
//! GET  <path>/jwks                                                     the public keys
//! ```
//!
//! A token grants the requested actions the policy allows (token-time grants, [`policy::Policy::grantable`]);
//! a scope the caller may not have is left out, never an error. Every request is still decided by the policy
//! when it arrives: the token's `access` claim only narrows it.

pub mod keys;
pub mod scope;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use policy::{Action, ActionSet, AuthMethod, Principal};
use serde::Serialize;
use serde_json::{Value, json};

use crate::authn::Authenticator;
use crate::authn::basic::BasicError;
use crate::authn::bearer::{Key, OwnIssuer};
use crate::config::{Issuer, TokenServiceSettings};
use crate::reload::PolicyStore;
use crate::reply::Reply;
use crate::tls::PeerCert;
use keys::TokenKeys;
use scope::{ResourceScope, parse_all};

/// Largest POST body read.
pub const MAX_FORM: usize = 64 * 1024;
/// Most scopes one token request may ask for (each costs a policy evaluation, and the token must stay
/// small enough for a header).
pub const MAX_SCOPES: usize = 64;
/// Largest token issued (the resource server refuses larger ones).
const MAX_TOKEN: usize = 16 * 1024;

/// What marks a refresh token (its audience is the service's with this prefix, so it is never accepted
/// as an access token).
const REFRESH_AUDIENCE_PREFIX: &str = "ocigate-refresh:";

/// The token service.
pub struct TokenService {
    settings: TokenServiceSettings,
    keys: Arc<TokenKeys>,
    authn: Arc<Authenticator>,
    policy: Arc<PolicyStore>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("service", &self.settings.service).finish()
    }
}

/// A token request as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The query string.
    pub query: &'a str,
    /// The body (POST).
    pub body: &'a [u8],
    /// `Authorization`.
    pub authorization: Option<&'a [u8]>,
    /// The client certificate's identity.
    pub cert: Option<&'a PeerCert>,
}

/// The answer and what to log.
#[derive(Debug)]
pub struct TokenOutcome {
    /// The response.
    pub reply: Reply,
    /// Who asked (when known).
    pub principal: Option<Arc<Principal>>,
    /// `issued`, `unauthenticated`, `invalid` or `deny`.
    pub decision: &'static str,
    /// The granted scope, or why not.
    pub reason: String,
}

impl TokenOutcome {
    fn refused(reply: Reply, decision: &'static str, reason: impl Into<String>) -> TokenOutcome {
        TokenOutcome { reply, principal: None, decision, reason: reason.into() }
    }
}

/// The claims of an access token.
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [AccessEntry],
}

/// One entry of the `access` claim.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource class (`plugin`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Repository name or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl AccessEntry {
    fn scope_string(&self) -> String {
        ResourceScope {
            kind: self.kind.clone(),
            class: self.class.clone(),
            name: self.name.clone(),
            actions: self.actions.clone(),
        }
        .to_scope_string()
    }
}

/// The claims of a refresh token.
#[derive(Serialize)]
struct RefreshClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    /// How the user authenticated when the chain of refresh tokens began.
    amr: &'a str,
    /// When the user last gave a password: refreshing never extends past this plus `refresh_lifetime`.
    auth_time: u64,
    /// A fingerprint of the user's htpasswd entry: a new password ends the user's refresh tokens.
    cred: String,
}

/// A caller a token is issued to.
struct Holder {
    principal: Arc<Principal>,
    /// When the user gave a password (for refresh tokens), if the caller may have one.
    auth_time: Option<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn jti() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Not expected; the clock still keeps ids apart.
        b = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Too many password checks at once: try again in a moment.
fn busy() -> Reply {
    token_error(
        429,
        "temporarily_unavailable",
        "TOOMANYREQUESTS",
        "too many password checks at once; try again",
    )
    .header("retry-after", "1")
}

/// Parses the `scope` values of a request, at most [`MAX_SCOPES`] of them.
fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<ResourceScope>, String> {
    let scopes = parse_all(values).map_err(|e| e.to_string())?;
    if scopes.len() > MAX_SCOPES {
        return Err(format!("{} scopes asked for; at most {MAX_SCOPES} per request", scopes.len()));
    }
    Ok(scopes)
}

/// An error of the token endpoint: the OCI shape plus the OAuth2 fields (`error`, `error_description`),
/// so that both kinds of client read it.
fn token_error(status: u16, oauth: &str, code: &'static str, message: &str) -> Reply {
    let body = json!({
        "errors": [{ "code": code, "message": message }],
        "error": oauth,
        "error_description": message,
    });
    let mut r = Reply::json(status, serde_json::to_vec(&body).unwrap_or_default());
    r.code = Some(code);
    r
}

impl TokenService {
    /// The service over its keys (loaded, or generated when none are configured).
    pub fn new(
        settings: TokenServiceSettings,
        keys: Arc<TokenKeys>,
        authn: Arc<Authenticator>,
        policy: Arc<PolicyStore>,
    ) -> TokenService {
        TokenService { settings, keys, authn, policy }
    }

    /// The keys (loaded from the configured files, or a fresh ES256 key with a warning).
    pub fn load_keys(settings: &TokenServiceSettings) -> Result<Arc<TokenKeys>, String> {
        if settings.keys.is_empty() {
            let (keys, _) = TokenKeys::generate("ES256")?;
            tracing::warn!(
                kid = keys.kid(),
                "auth.token_service has no keys: signing with a key generated at start; tokens will not survive \
                 a restart or work across replicas (write one with `ocigate token keygen`)"
            );
            return Ok(Arc::new(keys));
        }
        Ok(Arc::new(TokenKeys::load(&settings.keys)?))
    }

    /// The resource server's view of this service: its issuer and public keys.
    pub fn own_issuer(settings: &TokenServiceSettings, keys: &TokenKeys) -> OwnIssuer {
        OwnIssuer {
            issuer: Issuer {
                issuer: settings.issuer.clone(),
                audiences: vec![settings.service.clone()],
                keys: Vec::new(),
                root_cert_bundle: None,
                jwks_file: None,
                jwks_url: None,
                jwks_refresh: Duration::from_secs(300),
                jwks_ca: None,
                jwks_token_file: None,
                algorithms: crate::config::validate::DEFAULT_ALGORITHMS
                    .iter()
                    .map(|a| (*a).to_owned())
                    .collect(),
                leeway: Duration::from_secs(60),
                subject_claim: "sub".into(),
                subject_prefix: String::new(),
                groups_claim: "groups".into(),
            },
            keys: keys.verifying().iter().map(Key::clone).collect(),
        }
    }

    /// The endpoint's path.
    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// Does the service answer this path?
    pub fn serves(&self, path: &str) -> bool {
        path == self.settings.path
            || path.strip_prefix(self.settings.path.as_str()).is_some_and(|rest| rest == "/jwks")
    }

    /// Answers a request to the endpoint.
    pub async fn handle(&self, req: TokenRequest<'_>) -> TokenOutcome {
        match req.method {
            "GET" | "HEAD" => self.get(req).await,
            "POST" => self.post(req).await,
            m => TokenOutcome::refused(
                token_error(
                    405,
                    "invalid_request",
                    "UNSUPPORTED",
                    &format!("{m} is not allowed; use GET or POST"),
                )
                .header("allow", "GET, POST"),
                "invalid",
                "method",
            ),
        }
    }

    /// `<path>/jwks`.
    pub fn jwks(&self) -> Reply {
        Reply::json(200, self.keys.jwks().to_vec()).header("cache-control", "max-age=300")
    }

    fn basic_challenge(&self) -> String {
        format!("Basic realm=\"{}\",charset=\"UTF-8\"", self.authn.basic_realm().replace(['"', '\\'], ""))
    }

    fn unauthorized(&self, oauth: &str, message: &str) -> Reply {
        token_error(401, oauth, "UNAUTHORIZED", message).header("www-authenticate", self.basic_challenge())
    }

    fn check_service(&self, service: Option<&str>) -> Result<(), Box<TokenOutcome>> {
        match service {
            Some(s) if !s.is_empty() && s != self.settings.service => Err(Box::new(TokenOutcome::refused(
                token_error(
                    400,
                    "invalid_request",
                    "UNSUPPORTED",
                    &format!("unknown service {s:?}: this token service is for {:?}", self.settings.service),
                ),
                "invalid",
                "unknown service",
            ))),
            _ => Ok(()),
        }
    }

    /// GET: the Docker token flow.
    async fn get(&self, req: TokenRequest<'_>) -> TokenOutcome {
        let mut service = None;
        let mut scopes = Vec::new();
        let mut account = None;
        let mut offline = false;
        for (k, v) in form_urlencoded::parse(req.query.as_bytes()) {
            match &*k {
                "service" => service = Some(v.into_owned()),
                "scope" => scopes.push(v.into_owned()),
                "account" => account = Some(v.into_owned()),
                "offline_token" => offline = v == "true" || v == "1",
                _ => {}
            }
        }
        if let Err(o) = self.check_service(service.as_deref()) {
            return *o;
        }
        let scopes = match parse_scopes(scopes.iter().map(String::as_str)) {
            Ok(s) => s,
            Err(e) => {
                return TokenOutcome::refused(
                    token_error(400, "invalid_scope", "UNSUPPORTED", &e),
                    "invalid",
                    "malformed scope",
                );
            }
        };
        let principal = match self.caller(req).await {
            Ok(p) => p,
            Err(o) => return *o,
        };
        if let Some(account) = account.as_deref()
            && !account.is_empty()
            && !principal.is_anonymous()
            && account != principal.name()
        {
            return TokenOutcome {
                reply: token_error(
                    403,
                    "invalid_request",
                    "DENIED",
                    "the account parameter names another user than the credentials",
                ),
                principal: Some(principal),
                decision: "deny",
                reason: "account mismatch".into(),
            };
        }
        let holder =
            Holder { auth_time: (principal.method() == AuthMethod::Basic).then(now_secs), principal };
        self.issue(holder, &scopes, offline, false)
    }

    /// Who calls a GET: Basic credentials, else the client certificate, else anonymous (when allowed).
    async fn caller(&self, req: TokenRequest<'_>) -> Result<Arc<Principal>, Box<TokenOutcome>> {
        if let Some(value) = req.authorization {
            let value = std::str::from_utf8(value).unwrap_or("").trim();
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(Box::new(TokenOutcome::refused(
                    self.unauthorized("invalid_client", "the token endpoint takes Basic credentials"),
                    "unauthenticated",
                    "unsupported scheme",
                )));
            }
            if rest.trim() != "Og==" {
                return self.authn.verify_basic(rest.trim()).await.map_err(|e| {
                    if e == BasicError::Busy {
                        return Box::new(TokenOutcome::refused(busy(), "error", "bcrypt slots busy"));
                    }
                    let why = match e {
                        BasicError::Malformed => "malformed Basic credentials",
                        BasicError::Invalid => "invalid user name or password",
                        BasicError::NotConfigured => "Basic authentication is not configured (auth.htpasswd)",
                        BasicError::Busy => "too many password checks at once; try again",
                    };
                    Box::new(TokenOutcome::refused(
                        self.unauthorized("invalid_grant", why),
                        "unauthenticated",
                        why,
                    ))
                });
            }
        } else if let Some(p) = req.cert.and_then(|c| c.principal.clone()) {
            return Ok(p);
        }
        self.authn.anonymous().ok_or_else(|| {
            Box::new(TokenOutcome::refused(
                self.unauthorized("invalid_client", "authentication required"),
                "unauthenticated",
                "authentication required",
            ))
        })
    }

    /// POST: the OAuth2 flow (password and refresh_token grants).
    async fn post(&self, req: TokenRequest<'_>) -> TokenOutcome {
        let mut f = std::collections::HashMap::new();
        // `scope` is one space-separated value by the spec; some clients repeat the field instead.
        let mut scope_values = Vec::new();
        for (k, v) in form_urlencoded::parse(req.body) {
            if k == "scope" {
                scope_values.push(v.into_owned());
            } else {
                f.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
        }
        let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let invalid = |oauth: &str, message: &str| {
            TokenOutcome::refused(
                token_error(400, oauth, "UNSUPPORTED", message),
                "invalid",
                message.to_owned(),
            )
        };
        let Some(grant_type) = get("grant_type") else {
            return invalid("invalid_request", "missing grant_type");
        };
        if get("client_id").is_none() {
            return invalid("invalid_request", "missing client_id");
        }
        if let Err(o) = self.check_service(get("service")) {
            return *o;
        }
        let scopes = match parse_scopes(scope_values.iter().map(String::as_str)) {
            Ok(s) => s,
            Err(e) => return invalid("invalid_scope", &e),
        };
        let offline = get("access_type") == Some("offline");
        match grant_type {
            "password" => {
                let (Some(user), Some(password)) = (get("username"), get("password")) else {
                    return invalid("invalid_request", "the password grant needs username and password");
                };
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                match self.authn.verify_basic(&encoded).await {
                    Ok(p) => self.issue(
                        Holder { principal: p, auth_time: Some(now_secs()) },
                        &scopes,
                        offline,
                        true,
                    ),
                    Err(BasicError::Busy) => TokenOutcome::refused(busy(), "error", "bcrypt slots busy"),
                    Err(_) => TokenOutcome::refused(
                        self.unauthorized("invalid_grant", "invalid user name or password"),
                        "unauthenticated",
                        "invalid user name or password",
                    ),
                }
            }
            "refresh_token" => {
                let Some(token) = get("refresh_token") else {
                    return invalid("invalid_request", "the refresh_token grant needs refresh_token");
                };
                match self.refresh_holder(token) {
                    Ok(h) => self.issue(h, &scopes, true, true),
                    Err(why) => TokenOutcome::refused(
                        self.unauthorized("invalid_grant", &format!("invalid refresh token: {why}")),
                        "unauthenticated",
                        format!("invalid refresh token: {why}"),
                    ),
                }
            }
            other => invalid(
                "unsupported_grant_type",
                &format!("unsupported grant_type {other:?}: use password or refresh_token"),
            ),
        }
    }

    /// The user a refresh token stands for, if it is one of ours, unexpired, for this service, and its
    /// user still exists with the password it had.
    fn refresh_holder(&self, token: &str) -> Result<Holder, String> {
        let audience = format!("{REFRESH_AUDIENCE_PREFIX}{}", self.settings.service);
        let claims = self.keys.verify(token, &self.settings.issuer, &audience)?;
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        if sub.is_empty() || claims.get("amr").and_then(Value::as_str) != Some(AuthMethod::Basic.as_str()) {
            return Err("not a refresh token".into());
        }
        let Some(current) = self.authn.basic_fingerprint(sub) else {
            return Err(format!("user {sub:?} no longer exists"));
        };
        if claims.get("cred").and_then(Value::as_str) != Some(current.as_str()) {
            return Err(format!("the password of {sub:?} changed; log in again"));
        }
        let auth_time = claims.get("auth_time").and_then(Value::as_u64).ok_or("not a refresh token")?;
        let principal = Principal::new(sub, self.authn.groups().of(sub).to_vec(), AuthMethod::Basic);
        Ok(Holder { principal: Arc::new(principal), auth_time: Some(auth_time) })
    }

    /// What the policy lets `p` have of `scopes`.
    pub fn grants(&self, p: &Principal, scopes: &[ResourceScope]) -> Vec<AccessEntry> {
        let snapshot = self.policy.current();
        let now = SystemTime::now();
        let mut out: Vec<AccessEntry> = Vec::new();
        for s in scopes {
            let (granted, repository): (Vec<String>, &str) = match s.kind.as_str() {
                "repository" if oci::name::validate(&s.name).is_ok() => {
                    let mut asked = ActionSet::EMPTY;
                    for a in &s.actions {
                        match a.as_str() {
                            "pull" => asked.insert(Action::Pull),
                            "push" => asked.insert(Action::Push),
                            "delete" => asked.insert(Action::Delete),
                            "*" => {
                                asked.insert(Action::Pull);
                                asked.insert(Action::Push);
                                asked.insert(Action::Delete);
                            }
                            _ => {}
                        }
                    }
                    let got = snapshot.policy.grantable(p, &s.name, asked, now);
                    (got.iter().map(|a| a.as_str().to_owned()).collect(), &s.name)
                }
                "registry" if s.name == "catalog" && !s.actions.is_empty() => {
                    let mut asked = ActionSet::EMPTY;
                    asked.insert(Action::Catalog);
                    let got = snapshot.policy.grantable(p, "", asked, now);
                    (if got.is_empty() { Vec::new() } else { vec!["*".to_owned()] }, "catalog")
                }
                _ => (Vec::new(), ""),
            };
            if granted.is_empty() {
                continue;
            }
            match out.iter_mut().find(|e| e.kind == s.kind && e.class == s.class && e.name == repository) {
                Some(e) => {
                    for a in granted {
                        if !e.actions.contains(&a) {
                            e.actions.push(a);
                        }
                    }
                }
                None => out.push(AccessEntry {
                    kind: s.kind.clone(),
                    class: s.class.clone(),
                    name: repository.to_owned(),
                    actions: granted,
                }),
            }
        }
        out
    }

    /// Mints an access token with exactly `access` (no policy involved: `ocigate token mint` and tests).
    pub fn mint(&self, subject: &str, access: &[AccessEntry], lifetime: Duration) -> Result<String, String> {
        let now = now_secs();
        self.keys.sign(&AccessClaims {
            iss: &self.settings.issuer,
            sub: subject,
            aud: &self.settings.service,
            exp: now + lifetime.as_secs(),
            nbf: now,
            iat: now,
            jti: jti(),
            access,
        })
    }

    /// Issues a token (and, when asked and the caller logged in with a password, a refresh token).
    fn issue(&self, holder: Holder, scopes: &[ResourceScope], refresh: bool, oauth: bool) -> TokenOutcome {
        let p = holder.principal;
        // Grants are asked for the principal the token will be at request time: the same name and groups,
        // authenticated by `bearer`.
        let as_bearer = if p.is_anonymous() {
            p.clone()
        } else {
            Arc::new(Principal::new(p.name(), p.groups().to_vec(), AuthMethod::Bearer))
        };
        let access = self.grants(&as_bearer, scopes);
        let token = match self.mint(p.name(), &access, self.settings.lifetime) {
            Ok(t) => t,
            Err(e) => return self.failed(p, &e),
        };
        if token.len() > MAX_TOKEN {
            return TokenOutcome {
                reply: token_error(
                    400,
                    "invalid_scope",
                    "UNSUPPORTED",
                    "the granted scopes make the token too large; ask for fewer",
                ),
                principal: Some(p),
                decision: "invalid",
                reason: "token too large".into(),
            };
        }
        let fingerprint = if p.is_anonymous() { None } else { self.authn.basic_fingerprint(p.name()) };
        let refresh_token = match (refresh, holder.auth_time, fingerprint) {
            (true, Some(auth_time), Some(cred)) if p.method() == AuthMethod::Basic => {
                let now = now_secs();
                let claims = RefreshClaims {
                    iss: &self.settings.issuer,
                    sub: p.name(),
                    aud: format!("{REFRESH_AUDIENCE_PREFIX}{}", self.settings.service),
                    exp: (auth_time + self.settings.refresh_lifetime.as_secs())
                        .min(now + self.settings.refresh_lifetime.as_secs()),
                    iat: now,
                    jti: jti(),
                    amr: AuthMethod::Basic.as_str(),
                    auth_time,
                    cred,
                };
                match self.keys.sign(&claims) {
                    Ok(t) => Some(t),
                    Err(e) => return self.failed(p, &e),
                }
            }
            _ => None,
        };
        let granted: Vec<String> = access.iter().map(AccessEntry::scope_string).collect();
        let granted = granted.join(" ");
        let issued_at = crate::decisions::now_rfc3339();
        let expires_in = self.settings.lifetime.as_secs();
        let mut body = if oauth {
            json!({ "access_token": token, "token_type": "Bearer", "scope": granted, "expires_in": expires_in, "issued_at": issued_at })
        } else {
            json!({ "token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at })
        };
        if let Some(r) = refresh_token {
            body["refresh_token"] = Value::from(r);
        }
        let reply = Reply::json(200, serde_json::to_vec(&body).unwrap_or_default())
            .header("cache-control", "no-store")
            .header("pragma", "no-cache");
        TokenOutcome {
            reply,
            principal: Some(p),
            decision: "issued",
            reason: if granted.is_empty() { "no scope granted".into() } else { granted },
        }
    }

    fn failed(&self, p: Arc<Principal>, e: &str) -> TokenOutcome {
        tracing::error!(error = %e, "cannot sign a token");
        TokenOutcome {
            reply: token_error(500, "server_error", "UNKNOWN", "the token could not be signed"),
            principal: Some(p),
            decision: "error",
            reason: "signing failed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_oci_and_oauth_at_once() {
        let r = token_error(400, "invalid_request", "UNSUPPORTED", "missing client_id");
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_slice(&r.into_body()).expect("json");
        assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
        assert_eq!(v["error"], "invalid_request");
        assert_eq!(v["error_description"], "missing client_id");
    }

    #[test]
    fn token_ids_are_random_hex() {
        let (a, b) = (jti(), jti());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
