//! External issuers while the gateway runs: a JWKS file rotated on disk, a JWKS URL fetched, fetched again
//! for an unknown key and kept when the server fails, tokens carrying an `x5c` certificate chain, and
//! Kubernetes service-account tokens (RS256, groups and conditions from the namespaced claims).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::bin::ocigate;
use integration_tests::gateway::Gateway;
use integration_tests::pki::{Ca, Signer, now};
use serde_json::{Value, json};

const POLICY: &str = r#"
grants:
  - id: devs
    groups: [dev]
    repositories: ["apps/**"]
    actions: [pull, push]
  - id: ci-namespace
    groups: [ci]
    repositories: ["ci/**"]
    actions: [pull, push]
  - id: builder-only
    authenticated: true
    repositories: ["builds/**"]
    actions: [pull, push]
    when: principal.claims["kubernetes.io"].serviceaccount.name == "builder"
"#;

fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    let t = now();
    // A distinct `jti` per call, so every token is verified afresh rather than found in the cache.
    static N: AtomicUsize = AtomicUsize::new(0);
    json!({"iss": iss, "aud": aud, "sub": sub, "groups": ["dev"], "exp": t + 300, "nbf": t - 5, "iat": t,
           "jti": N.fetch_add(1, Ordering::Relaxed)})
}

fn jwks_of(keys: &[(&Signer, &str)]) -> String {
    let all: Vec<Value> = keys.iter().map(|(s, kid)| s.jwks(kid)["keys"][0].clone()).collect();
    json!({ "keys": all }).to_string()
}

async fn status(g: &Gateway, token: &str) -> u16 {
    g.client().bearer(token).get("/v2/apps/x/tags/list").await.status
}

/// Waits (bounded) until `token` gets `want`.
async fn eventually(g: &Gateway, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(g, token).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gateway(dir: &std::path::Path, issuer: &str) -> Gateway {
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let config = format!(
        "listen:\n  - addr: 127.0.0.1:0\nupstream: {{bundled: {{root: data}}}}\nauth:\n  issuers:\n{issuer}\npolicy: {{paths: [policy.yaml]}}\n"
    );
    Gateway::start(dir, &config)
}

#[tokio::test]
async fn a_jwks_file_rotated_on_disk_takes_effect_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    std::fs::write(tmp.path().join("idp.jwks"), jwks_of(&[(&k1, "k1")])).unwrap();
    let g = gateway(
        tmp.path(),
        "    - issuer: https://idp.test\n      audiences: [registry]\n      jwks_file: idp.jwks",
    );
    let t1 = k1.sign(Some("k1"), &claims("https://idp.test", "registry", "dana"));
    let t2 = k2.sign(Some("k2"), &claims("https://idp.test", "registry", "dana"));
    assert_eq!(status(&g, &t1).await, 404);
    let r = g.client().bearer(&t2).get("/v2/apps/x/tags/list").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["errors"][0]["detail"].as_str().unwrap().contains("unknown key id"), "{}", r.text());

    // The new key is published beside the old one: both work.
    std::fs::write(tmp.path().join("idp.jwks"), jwks_of(&[(&k1, "k1"), (&k2, "k2")])).unwrap();
    eventually(&g, &t2, 404).await;
    assert_eq!(status(&g, &t1).await, 404);
    // The old key is withdrawn: its tokens stop working at once, even those verified before.
    std::fs::write(tmp.path().join("idp.jwks"), jwks_of(&[(&k2, "k2")])).unwrap();
    eventually(&g, &t1, 401).await;
    assert_eq!(status(&g, &t2).await, 404);
    // A broken file keeps the keys read before.
    std::fs::write(tmp.path().join("idp.jwks"), "{not json").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    g.wait_log("JWKS file not reloaded");
    assert_eq!(status(&g, &t2).await, 404);
}

/// A JWKS server on loopback: serves `body` (or 500 when it is `None`) and counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
    /// The head of the last request.
    last: Arc<Mutex<String>>,
}

impl JwksServer {
    fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(Some(body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(Mutex::new(String::new()));
        let (b, h, l) = (body.clone(), hits.clone(), last.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut head = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    head.push_str(&line);
                    line.clear();
                }
                *l.lock().unwrap() = head;
                h.fetch_add(1, Ordering::SeqCst);
                let response = match b.lock().unwrap().clone() {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .into()
                    }
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        JwksServer { url, body, hits, last }
    }

    fn set(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }
}

#[tokio::test]
async fn a_jwks_url_is_fetched_again_for_unknown_keys_and_kept_when_it_fails() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sa-token"), "projected-token-1\n").unwrap();
    let (k1, k2, k3) = (Signer::new("k1"), Signer::new("k2"), Signer::new("k3"));
    let server = JwksServer::start(jwks_of(&[(&k1, "k1")]));
    let g = gateway(
        tmp.path(),
        &format!(
            "    - issuer: https://oidc.test\n      audiences: [registry]\n      jwks_url: {}\n      jwks_refresh: 1h\n      jwks_token_file: sa-token",
            server.url
        ),
    );
    let token = |k: &Signer, kid: &str| k.sign(Some(kid), &claims("https://oidc.test", "registry", "erin"));
    eventually(&g, &token(&k1, "k1"), 404).await;
    let fetched_at = Instant::now();
    let hits = server.hits.load(Ordering::SeqCst);
    assert!(hits >= 1);
    assert!(
        server.last.lock().unwrap().to_lowercase().contains("authorization: bearer projected-token-1"),
        "the token file is sent: {}",
        server.last.lock().unwrap()
    );
    // The token file is read at each fetch (projected tokens rotate).
    std::fs::write(tmp.path().join("sa-token"), "projected-token-2\n").unwrap();

    // The issuer rotates: a token with the new kid makes the gateway fetch again (at most every 5s).
    server.set(Some(jwks_of(&[(&k1, "k1"), (&k2, "k2")])));
    tokio::time::sleep(
        Duration::from_secs(5).saturating_sub(fetched_at.elapsed()) + Duration::from_millis(200),
    )
    .await;
    assert_eq!(status(&g, &token(&k2, "k2")).await, 404, "fetched again for the unknown kid");
    assert_eq!(server.hits.load(Ordering::SeqCst), hits + 1);
    assert!(server.last.lock().unwrap().to_lowercase().contains("authorization: bearer projected-token-2"));
    // Unknown kids right after do not hammer the issuer.
    for _ in 0..5 {
        assert_eq!(status(&g, &token(&k3, "k3")).await, 401);
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), hits + 1);

    // The server fails: the keys fetched before stay in use.
    server.set(None);
    tokio::time::sleep(Duration::from_millis(5200)).await;
    assert_eq!(status(&g, &token(&k3, "k3")).await, 401);
    assert_eq!(server.hits.load(Ordering::SeqCst), hits + 2, "the failing fetch happened");
    assert_eq!(status(&g, &token(&k1, "k1")).await, 404);
    assert_eq!(status(&g, &token(&k2, "k2")).await, 404);
    g.wait_log("JWKS fetch failed; keeping the keys fetched before");
}

#[tokio::test]
async fn kubernetes_service_account_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // An RS256 key, as the API server's service-account signing key.
    let out = Command::new(ocigate())
        .args(["token", "keygen", "--algorithm", "RS256", "-o"])
        .arg(dir.join("sa.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read(dir.join("sa.key")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = serde_json::to_value(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("sa-key-1");
    jwk["use"] = json!("sig");
    std::fs::write(dir.join("cluster.jwks"), json!({ "keys": [jwk] }).to_string()).unwrap();
    let g = gateway(
        dir,
        "    - issuer: https://kubernetes.default.svc.cluster.local\n      audiences: [ocigate]\n      jwks_file: cluster.jwks\n      groups_claim: kubernetes.io.namespace",
    );
    let sa = |namespace: &str, name: &str| {
        let t = now();
        let claims = json!({
            "aud": ["ocigate"],
            "exp": t + 3600, "iat": t, "nbf": t,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "jti": format!("{namespace}-{name}"),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": "3b1f"},
                "pod": {"name": format!("{name}-7d9c"), "uid": "9a2e"},
                "serviceaccount": {"name": name, "uid": "5c4d"}
            },
            "sub": format!("system:serviceaccount:{namespace}:{name}")
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("sa-key-1".into());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let builder = g.client().bearer(&sa("ci", "builder"));
    let runner = g.client().bearer(&sa("dev", "runner"));
    assert_eq!(builder.post("/v2/ci/app/blobs/uploads/").await.status, 202, "group = namespace");
    assert_eq!(builder.post("/v2/builds/x/blobs/uploads/").await.status, 202, "condition on the claims");
    assert_eq!(runner.post("/v2/ci/app/blobs/uploads/").await.status, 403);
    assert_eq!(runner.post("/v2/builds/x/blobs/uploads/").await.status, 403);
    let d = g.wait_decision(|d| d["principal"] == "system:serviceaccount:ci:builder" && d["status"] == 202);
    assert_eq!(d["auth"], "bearer");
}

/// The base64 DER of a PEM certificate (what an `x5c` entry holds).
fn x5c_entry(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test]
async fn x5c_chains_are_verified_against_the_root_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, evil) = (Ca::new("token-ca"), Ca::new("evil-ca"));
    std::fs::write(tmp.path().join("roots.pem"), &ca.cert).unwrap();
    let g = gateway(
        tmp.path(),
        "    - issuer: token-issuer\n      audiences: [registry]\n      root_cert_bundle: roots.pem",
    );
    let sign = |key_pem: &str, chain: Vec<String>| {
        let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = Some(chain);
        jsonwebtoken::encode(&header, &claims("token-issuer", "registry", "frank"), &key).unwrap()
    };
    let leaf = ca.client("token-signer", None);
    assert_eq!(status(&g, &sign(&leaf.key, vec![x5c_entry(&leaf.cert)])).await, 404, "a chain to the root");
    let stranger = evil.client("token-signer", None);
    let other = ca.client("someone-else", None);
    for (what, token, detail) in [
        ("another CA", sign(&stranger.key, vec![x5c_entry(&stranger.cert)]), "x5c chain not trusted"),
        ("a key that is not the leaf's", sign(&other.key, vec![x5c_entry(&leaf.cert)]), "bad signature"),
        ("not base64", sign(&leaf.key, vec!["!!!".into()]), "not base64"),
        ("empty", sign(&leaf.key, vec![]), "x5c must hold 1 to 8 certificates"),
    ] {
        let r = g.client().bearer(&token).get("/v2/apps/x/tags/list").await;
        assert_eq!(r.status, 401, "{what}");
        assert!(r.json()["errors"][0]["detail"].as_str().unwrap().contains(detail), "{what}: {}", r.text());
    }
}

#[tokio::test]
async fn another_gateway_trusts_this_ones_tokens_through_its_jwks_over_tls() {
    use integration_tests::gateway::htpasswd_line;
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    // Gateway A: TLS from a private CA, its own token service.
    let ca = Ca::new("private-ca");
    ca.server("gateway-a").write(&a_dir, "server");
    std::fs::write(a_dir.join("policy.yaml"), POLICY).unwrap();
    std::fs::write(a_dir.join("htpasswd"), htpasswd_line("dana", "pw") + "\n").unwrap();
    let out =
        Command::new(ocigate()).args(["token", "keygen", "-o"]).arg(a_dir.join("a.pem")).output().unwrap();
    assert!(out.status.success());
    let a = Gateway::start(
        &a_dir,
        "listen:\n  - addr: 127.0.0.1:0\n    tls: {cert: server.crt, key: server.key}\nupstream: {bundled: {root: data}}\nauth:\n  htpasswd: htpasswd\n  token_service: {service: registry-a, keys: [a.pem]}\npolicy: {paths: [policy.yaml]}\n",
    );
    // Gateway B trusts A's tokens: A's JWKS over https, with the private CA.
    std::fs::write(b_dir.join("ca.crt"), &ca.cert).unwrap();
    let b = gateway(
        &b_dir,
        &format!(
            "    - issuer: registry-a\n      audiences: [registry-a]\n      jwks_url: https://127.0.0.1:{}/token/jwks\n      jwks_ca: ca.crt",
            a.addr(0).port()
        ),
    );
    let out = Command::new(ocigate())
        .args(["token", "mint", "--config"])
        .arg(a_dir.join("config.yaml"))
        .args(["--subject", "dana", "--scope", "repository:apps/x:pull", "--exact"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // dana has no groups here, so B's policy does not let her pull apps/x: a 403 (not a 401) shows that B
    // verified the token with A's key.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.client().bearer(&token).get("/v2/apps/x/tags/list").await;
        if r.status == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "B never accepted A's token: {} {}", r.status, r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = b.wait_decision(|d| d["principal"] == "dana");
    assert_eq!(d["auth"], "bearer");
}
