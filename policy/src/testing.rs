//! Table tests for policies: the format `ocigate policy test` runs, and the runner.
//!
//! ```yaml
//! policy: team-a.yaml             # or a list; paths relative to this file
//! cases:
//!   - name: ci pushes a tag
//!     principal: { name: ci-bot, groups: [ci], method: bearer, claims: { env: ci } }
//!     request: { action: push, repository: team-a/api, reference: v1.4.0 }
//!     expect: { decision: allow, rule: ci-push }
//!   - name: strangers are anonymous
//!     principal: { anonymous: true }
//!     client: { ip: 203.0.113.9 }
//!     request: { action: pull, repository: team-a/api }
//!     expect: { decision: deny, reason: no_matching_grant }
//! ```
//! `expect` may also give `message`, or be just `allow` or `deny`. Aliases: `user`/`sub` for `name`,
//! `repo` for `repository`, `ref`/`tag` for `reference`, `result` for `decision`, `allowed: true|false`
//! for `decision`.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Deserialize;

use crate::{Action, AuthMethod, Cert, Client, Decision, Policy, Principal, Reason, Request, Tls};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Policy files the cases run against, relative to the test file.
    pub policy: OneOrMany,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One path or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// As a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the report.
    pub name: String,
    /// Who asks.
    #[serde(default)]
    pub principal: PrincipalSpec,
    /// The connection.
    #[serde(default)]
    pub client: ClientSpec,
    /// What is asked.
    pub request: RequestSpec,
    /// What must come out.
    pub expect: Expect,
}

/// A principal as written in a case (or built from `ocigate policy eval` flags).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    /// User name.
    #[serde(default, alias = "user", alias = "sub")]
    pub name: Option<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Anonymous (the default when there is no name).
    #[serde(default)]
    pub anonymous: bool,
    /// `basic`, `bearer` or `mtls` (default `basic`).
    pub method: Option<String>,
    /// Token claims.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl PrincipalSpec {
    /// The principal.
    pub fn to_principal(&self) -> Result<Principal, String> {
        let name = self.name.as_deref().unwrap_or("");
        if self.anonymous || name.is_empty() {
            if !name.is_empty() {
                return Err("a principal cannot have a name and be anonymous".into());
            }
            return Ok(Principal::anonymous());
        }
        let method = match self.method.as_deref() {
            None => AuthMethod::Basic,
            Some(m) => AuthMethod::parse(m)
                .filter(|m| *m != AuthMethod::Anonymous)
                .ok_or_else(|| format!("unknown method {m:?} (basic, bearer or mtls)"))?,
        };
        Ok(Principal::new(name, self.groups.clone(), method).with_claims(self.claims.clone()))
    }
}

/// The connection, as written in a case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Client address.
    pub ip: Option<IpAddr>,
    /// TCP peer address.
    pub peer_ip: Option<IpAddr>,
    /// Raw `X-Forwarded-For`.
    pub forwarded_for: Option<String>,
    /// TLS.
    pub tls: Option<TlsSpec>,
}

/// TLS, as written in a case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Client certificate.
    pub cert: Option<CertSpec>,
}

/// A client certificate, as written in a case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSpec {
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// SANs.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Fingerprint.
    #[serde(default)]
    pub fingerprint: String,
}

/// A request, as written in a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `pull`, `push`, `delete`, `overwrite`, `catalog`.
    pub action: String,
    /// Repository (empty for the catalog).
    #[serde(default, alias = "repo")]
    pub repository: String,
    /// Tag or digest.
    #[serde(alias = "ref", alias = "tag")]
    pub reference: Option<String>,
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// URL path.
    #[serde(default)]
    pub path: String,
    /// Mount source.
    pub mount_from: Option<String>,
    /// RFC 3339 time (default: now).
    pub time: Option<String>,
}

/// What a case expects: `allow` or `deny` alone, or the decision with the rule, reason or message.
#[derive(Debug, Deserialize)]
#[serde(from = "ExpectSpec")]
pub struct Expect {
    /// `allow` or `deny`.
    pub decision: String,
    /// The deciding rule's id.
    pub rule: Option<String>,
    /// The reason code.
    pub reason: Option<String>,
    /// The message.
    pub message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpectSpec {
    Short(String),
    Full(ExpectFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFull {
    #[serde(alias = "result")]
    decision: Option<String>,
    allowed: Option<bool>,
    rule: Option<String>,
    reason: Option<String>,
    message: Option<String>,
}

impl From<ExpectSpec> for Expect {
    fn from(s: ExpectSpec) -> Expect {
        match s {
            ExpectSpec::Short(decision) => Expect { decision, rule: None, reason: None, message: None },
            ExpectSpec::Full(f) => Expect {
                decision: f.decision.unwrap_or_else(|| match f.allowed {
                    Some(true) => "allow".into(),
                    Some(false) => "deny".into(),
                    None => "(missing: give decision: allow or deny)".into(),
                }),
                rule: f.rule,
                reason: f.reason,
                message: f.message,
            },
        }
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(SystemTime::from)
        .map_err(|e| format!("bad time {s:?}: {e} (use RFC 3339)"))
}

/// Decides a case's request for its principal.
pub fn decide(
    policy: &Policy,
    principal: &Principal,
    client: &ClientSpec,
    req: &RequestSpec,
) -> Result<Decision, String> {
    let action: Action = req.action.parse().map_err(|e: crate::UnknownAction| e.to_string())?;
    let time = req.time.as_deref().map(parse_time).transpose()?.unwrap_or_else(SystemTime::now);
    let tls_cert = client.tls.as_ref().and_then(|t| t.cert.as_ref());
    let request = Request {
        action,
        repository: &req.repository,
        reference: req.reference.as_deref(),
        method: &req.method,
        path: &req.path,
        mount_from: req.mount_from.as_deref(),
        time,
        client: Client {
            ip: client.ip,
            peer_ip: client.peer_ip,
            forwarded_for: client.forwarded_for.as_deref(),
            tls: client.tls.as_ref().map(|t| Tls {
                version: &t.version,
                cert: tls_cert.map(|c| Cert {
                    subject: &c.subject,
                    sans: &c.sans,
                    fingerprint: &c.fingerprint,
                }),
            }),
        },
    };
    Ok(policy.decide(principal, &request))
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// The decision (none when the case itself is malformed).
    pub decision: Option<Decision>,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

/// Runs every case against `policy`.
pub fn run(policy: &Policy, cases: &[Case]) -> Vec<CaseResult> {
    cases.iter().map(|c| run_case(policy, c)).collect()
}

fn run_case(policy: &Policy, case: &Case) -> CaseResult {
    let result = |decision, failure| CaseResult { name: case.name.clone(), decision, failure };
    let principal = match case.principal.to_principal() {
        Ok(p) => p,
        Err(e) => return result(None, Some(e)),
    };
    let d = match decide(policy, &principal, &case.client, &case.request) {
        Ok(d) => d,
        Err(e) => return result(None, Some(e)),
    };
    let e = &case.expect;
    let mut problems = Vec::new();
    match e.decision.as_str() {
        "allow" | "deny" => {
            let want = e.decision == "allow";
            if d.allowed != want {
                problems.push(format!(
                    "expected {}, got {}",
                    e.decision,
                    if d.allowed { "allow" } else { "deny" }
                ));
            }
        }
        other => problems.push(format!("expect.decision must be allow or deny, not {other:?}")),
    }
    if let Some(rule) = &e.rule
        && d.rule.as_deref() != Some(rule.as_str())
    {
        problems.push(format!("expected rule {rule}, got {}", d.rule_str()));
    }
    if let Some(reason) = &e.reason {
        match Reason::parse(reason) {
            Some(r) if r == d.reason => {}
            Some(_) => problems.push(format!("expected reason {reason}, got {}", d.reason)),
            None => problems.push(format!("unknown reason {reason:?}")),
        }
    }
    if let Some(message) = &e.message
        && d.message.as_deref() != Some(message.as_str())
    {
        problems.push(format!("expected message {message:?}, got {:?}", d.message.as_deref().unwrap_or("")));
    }
    let failure = (!problems.is_empty()).then(|| problems.join("; "));
    result(Some(d), failure)
}
