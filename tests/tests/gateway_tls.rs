//! TLS listeners: HTTP/2 by ALPN and HTTP/1.1, TLS 1.2 and 1.3, client certificates (mTLS) naming the
//! principal by CN or SAN, and certificates reloaded from disk without a restart.

use std::time::{Duration, Instant};

use integration_tests::gateway::{Gateway, htpasswd_line};
use integration_tests::pki::{Ca, Pem};

const POLICY: &str = r#"
grants:
  - id: team-a
    users: [alice, "spiffe://example.org/ns/ci/sa/builder"]
    repositories: ["team-a/**"]
    actions: [pull, push]
  - id: cert-holders-only
    authenticated: true
    repositories: ["certified/**"]
    actions: [pull]
    when: principal.method == "mtls" && client.tls.cert.subject.contains("CN=alice")
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    gw: Gateway,
    ca: Ca,
}

/// Listener 0: TLS, optional client certificates named by CN. Listener 1: TLS, client certificate
/// required, named by URI SAN.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new("test CA");
    ca.server("gateway").write(dir, "server");
    std::fs::write(dir.join("ca.crt"), &ca.cert).unwrap();
    std::fs::write(dir.join("htpasswd"), htpasswd_line("bob", "bob-pw") + "\n").unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let config = r#"
listen:
  - addr: 127.0.0.1:0
    tls:
      cert: server.crt
      key: server.key
      client_ca: ca.crt
  - addr: 127.0.0.1:0
    tls:
      cert: server.crt
      key: server.key
      client_ca: ca.crt
      require_client_cert: true
      client_identity: san-uri
upstream:
  bundled:
    root: data
auth:
  htpasswd: htpasswd
policy:
  paths: [policy.yaml]
"#;
    let gw = Gateway::start(dir, config);
    Setup { _tmp: tmp, gw, ca }
}

fn client(
    ca: &Ca,
    identity: Option<&Pem>,
    build: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert.as_bytes()).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(20));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{}{}", id.cert, id.key).as_bytes()).unwrap());
    }
    build(b).build().unwrap()
}

fn url(g: &Gateway, listener: usize, path: &str) -> String {
    format!("https://localhost:{}{path}", g.addr(listener).port())
}

#[tokio::test]
async fn tls_speaks_http2_and_http1_and_both_tls_versions() {
    let s = setup();
    let h2 = client(&s.ca, None, |b| b);
    let r = h2.get(url(&s.gw, 0, "/v2/")).basic_auth("bob", Some("bob-pw")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");

    let h1 = client(&s.ca, None, |b| b.http1_only());
    let r = h1.get(url(&s.gw, 0, "/v2/")).basic_auth("bob", Some("bob-pw")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    for v in [reqwest::tls::Version::TLS_1_2, reqwest::tls::Version::TLS_1_3] {
        let c = client(&s.ca, None, |b| b.tls_version_min(v).tls_version_max(v));
        let r = c.get(url(&s.gw, 0, "/v2/")).basic_auth("bob", Some("bob-pw")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{v:?}");
    }

    // Pushes and pulls over h2 stream like over HTTP/1.1.
    let data = integration_tests::content::pseudo_random(601, 2 << 20);
    let digest = integration_tests::content::sha256(&data);
    let alice = s.ca.client("alice", None);
    let c = client(&s.ca, Some(&alice), |b| b);
    let r = c
        .post(url(&s.gw, 0, &format!("/v2/team-a/big/blobs/uploads/?digest={digest}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = c.get(url(&s.gw, 0, &format!("/v2/team-a/big/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
}

#[tokio::test]
async fn client_certificates_name_the_principal() {
    let s = setup();
    let alice = s.ca.client("alice", None);
    let c = client(&s.ca, Some(&alice), |b| b);
    let r = c.post(url(&s.gw, 0, "/v2/team-a/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202, "alice (by certificate CN) may push team-a");
    let d = s.gw.wait_decision(|d| d["principal"] == "alice");
    assert_eq!(d["auth"], "mtls");
    // Conditions see the certificate.
    let r = c.get(url(&s.gw, 0, "/v2/certified/x/tags/list")).send().await.unwrap();
    assert_eq!(r.status(), 404, "granted by the certificate condition, then unknown to the registry");
    let r = client(&s.ca, None, |b| b)
        .get(url(&s.gw, 0, "/v2/certified/x/tags/list"))
        .basic_auth("bob", Some("bob-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "bob has no certificate");

    // Without a certificate, listener 0 still takes Basic; listener 1 refuses the handshake.
    let none = client(&s.ca, None, |b| b);
    let r = none.get(url(&s.gw, 0, "/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        none.get(url(&s.gw, 1, "/v2/")).send().await.is_err(),
        "a client certificate is required on listener 1"
    );

    // A certificate from another CA is refused.
    let stranger = Ca::new("other CA").client("alice", None);
    assert!(client(&s.ca, Some(&stranger), |b| b).get(url(&s.gw, 0, "/v2/")).send().await.is_err());

    // Listener 1 names principals by URI SAN (a SPIFFE id).
    let builder = s.ca.client("ignored-cn", Some("spiffe://example.org/ns/ci/sa/builder"));
    let c = client(&s.ca, Some(&builder), |b| b);
    let r = c.post(url(&s.gw, 1, "/v2/team-a/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    s.gw.wait_decision(|d| d["principal"] == "spiffe://example.org/ns/ci/sa/builder");
}

#[tokio::test]
async fn certificates_reload_from_disk_without_a_restart() {
    let s = setup();
    let served = |c: &reqwest::Response| {
        c.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
            .unwrap()
    };
    let fresh = || client(&s.ca, None, |b| b.pool_max_idle_per_host(0));
    let first = served(&fresh().get(url(&s.gw, 0, "/v2/")).send().await.unwrap());

    let next = s.ca.server("gateway-renewed");
    // Write the key first, then the certificate: a half-written pair must not be taken.
    std::fs::write(s.gw.dir().join("server.key.tmp"), &next.key).unwrap();
    std::fs::write(s.gw.dir().join("server.crt.tmp"), &next.cert).unwrap();
    std::fs::rename(s.gw.dir().join("server.key.tmp"), s.gw.dir().join("server.key")).unwrap();
    std::fs::rename(s.gw.dir().join("server.crt.tmp"), s.gw.dir().join("server.crt")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = served(&fresh().get(url(&s.gw, 0, "/v2/")).send().await.unwrap());
        if now != first {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.gw.wait_log("reloaded the TLS certificate");
}
