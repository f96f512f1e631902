//! Bearer JWTs from configured issuers: key selection by kid (libtrust id, JWKS kid, RFC 7638
//! thumbprint) or without one, every refusal (expiry, audience, issuer, unknown key, `alg` tricks), claim
//! mapping for OIDC-style tokens, and a registry token's `access` claim bounding what it may do.

use integration_tests::gateway::Gateway;
use integration_tests::pki::{Signer, now};
use serde_json::{Value, json};

const POLICY: &str = r#"
grants:
  - id: team-a
    groups: [team-a]
    repositories: ["team-a/**"]
    actions: [pull, push]
  - id: ops
    groups: [ops]
    repositories: ["**"]
    actions: [pull]
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    g: Gateway,
    registry: Signer,
    oidc: Signer,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Signer::new("registry-tokens");
    let oidc = Signer::new("idp");
    std::fs::write(dir.join("registry.crt"), &registry.cert).unwrap();
    std::fs::write(dir.join("idp.jwks"), oidc.jwks("idp-key-1").to_string()).unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let config = r#"
listen:
  - addr: 127.0.0.1:0
upstream:
  bundled:
    root: data
auth:
  groups:
    team-a: [alice]
  issuers:
    - issuer: registry-tokens
      audiences: [ocigate]
      keys: [registry.crt]
    - issuer: https://idp.example
      audiences: [registry]
      jwks_file: idp.jwks
      subject_claim: preferred_username
      subject_prefix: "idp:"
      groups_claim: realm_access.roles
policy:
  paths: [policy.yaml]
"#;
    let g = Gateway::start(dir, config);
    Setup { _tmp: tmp, g, registry, oidc }
}

fn registry_claims(sub: &str, access: Value) -> Value {
    let t = now();
    json!({"iss": "registry-tokens", "sub": sub, "aud": "ocigate", "exp": t + 300, "nbf": t - 5, "iat": t, "access": access})
}

#[tokio::test]
async fn keys_are_found_by_any_of_their_ids() {
    let s = setup();
    let all = json!([{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]);
    let thumbprint = {
        // The RFC 7638 thumbprint of the EC key: {"crv","kty","x","y"} in that order, SHA-256, base64url.
        let jwk = &s.registry.jwks("x")["keys"][0];
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        use sha2::Digest;
        base64url(&sha2::Sha256::digest(canonical.as_bytes()))
    };
    for kid in [Some(s.registry.kid.as_str()), Some(thumbprint.as_str()), None] {
        let token = s.registry.sign(kid, &registry_claims("alice", all.clone()));
        let r = s.g.client().bearer(&token).post("/v2/team-a/app/blobs/uploads/").await;
        assert_eq!(r.status, 202, "kid {kid:?}: {}", r.text());
    }
    let idp = s.oidc.sign(Some("idp-key-1"), &json!({
        "iss": "https://idp.example", "aud": ["account", "registry"], "sub": "f81d4fae", "preferred_username": "olivia",
        "realm_access": {"roles": ["ops"]}, "exp": now() + 300,
    }));
    let r = s.g.client().bearer(&idp).get("/v2/other/thing/tags/list").await;
    assert_eq!(r.status, 404, "olivia is in ops by her token's roles: {}", r.text());
    // Subjects of this issuer carry its prefix: never taken for an htpasswd user or another issuer's.
    let d = s.g.wait_decision(|d| d["principal"] == "idp:olivia");
    assert_eq!((d["auth"].as_str(), d["rule"].as_str()), (Some("bearer"), Some("ops")));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_invalid_token() {
    let s = setup();
    let access = json!([{"type": "repository", "name": "team-a/app", "actions": ["pull"]}]);
    let mut expired = registry_claims("alice", access.clone());
    expired["exp"] = json!(now() - 600);
    let mut wrong_aud = registry_claims("alice", access.clone());
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = registry_claims("alice", access.clone());
    wrong_iss["iss"] = json!("evil");
    let mut early = registry_claims("alice", access.clone());
    early["nbf"] = json!(now() + 600);
    let stranger = Signer::new("registry-tokens");
    let good = registry_claims("alice", access.clone());
    let cases = [
        ("expired", s.registry.sign(Some(&s.registry.kid), &expired)),
        ("wrong audience", s.registry.sign(Some(&s.registry.kid), &wrong_aud)),
        ("unknown issuer", s.registry.sign(Some(&s.registry.kid), &wrong_iss)),
        ("not yet valid", s.registry.sign(Some(&s.registry.kid), &early)),
        ("unknown kid", s.registry.sign(Some("AAAA:BBBB"), &good)),
        ("another key, same kid", stranger.sign(Some(&s.registry.kid), &good)),
        ("another key, no kid", stranger.sign(None, &good)),
        ("alg none", unsigned(&good, "none")),
        ("HS256 with the public key as secret", hs256(&good, s.registry.public_key.as_bytes())),
        ("garbage", "a.b.c".to_owned()),
        ("truncated", {
            let t = s.registry.sign(Some(&s.registry.kid), &good);
            t[..t.len() - 10].to_owned()
        }),
        ("not base64", "!!!.???.***".to_owned()),
        ("no subject", s.registry.sign(Some(&s.registry.kid), &registry_claims("", access.clone()))),
        ("one part", "abc".to_owned()),
    ];
    for (what, token) in cases {
        let r = s.g.client().bearer(&token).get("/v2/team-a/app/tags/list").await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.error_code(), "UNAUTHORIZED", "{what}");
        let challenges: Vec<&str> =
            r.headers.get_all("www-authenticate").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer") && c.contains("error=\"invalid_token\"")),
            "{what}: {challenges:?}"
        );
    }
    let m = s.g.client().get("/v2/").await;
    assert_eq!(m.status, 401, "anonymous access is off");
}

#[tokio::test]
async fn a_tokens_access_claim_bounds_what_it_may_do() {
    let s = setup();
    // alice may push team-a/** by policy, but this token only carries pull on team-a/app.
    let token = s.registry.sign(
        Some(&s.registry.kid),
        &registry_claims("alice", json!([{"type": "repository", "name": "team-a/app", "actions": ["pull"]}])),
    );
    let c = s.g.client().bearer(&token);
    assert_eq!(c.get("/v2/team-a/app/tags/list").await.status, 404);
    let r = c.post("/v2/team-a/app/blobs/uploads/").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["errors"][0]["message"], "the token does not grant push on team-a/app");
    assert_eq!(c.get("/v2/team-a/other/tags/list").await.status, 403);
    let d = s.g.wait_decision(|d| d["reason"] == "token_scope");
    assert_eq!(d["principal"], "alice");
    // `*` grants every action; the policy still decides.
    let token = s.registry.sign(
        Some(&s.registry.kid),
        &registry_claims("alice", json!([{"type": "repository", "name": "team-a/app", "actions": ["*"]}])),
    );
    assert_eq!(s.g.client().bearer(&token).post("/v2/team-a/app/blobs/uploads/").await.status, 202);
    let token = s.registry.sign(
        Some(&s.registry.kid),
        &registry_claims("mallory", json!([{"type": "repository", "name": "team-a/app", "actions": ["*"]}])),
    );
    assert_eq!(s.g.client().bearer(&token).post("/v2/team-a/app/blobs/uploads/").await.status, 403);
}

fn base64url(b: &[u8]) -> String {
    integration_tests::gateway::base64_bytes(b).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

fn unsigned(claims: &Value, alg: &str) -> String {
    let header = base64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let body = base64url(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).unwrap()
}
