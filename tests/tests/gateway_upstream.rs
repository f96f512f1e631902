//! `ocigate serve` in front of Debian's `docker-registry` (CNCF distribution 2.8): pushes and pulls with
//! skopeo, the gateway's own upstream credentials (static Basic, the token dance), upstream failures.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::content::{self, Blob, Image};
use integration_tests::gateway::{Distribution, Gateway, htpasswd_line};
use integration_tests::pki::{Signer, TokenServer};
use integration_tests::{layout, tools};

const POLICY: &str = r#"
grants:
  - id: team-a
    groups: [team-a]
    repositories: ["team-a/**"]
    actions: [pull, push, delete]
  - id: catalog
    authenticated: true
    actions: [catalog]
  - id: root
    users: [root]
    repositories: ["**"]
    actions: ["*"]
"#;

/// A gateway in front of `upstream_url`, with `credentials` (YAML under `upstream.credentials`, or none)
/// and extra `upstream:` keys.
fn gateway(upstream_url: &str, credentials: Option<&str>, extra: &str) -> (tempfile::TempDir, Gateway) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let users: String = ["alice", "bob", "carol", "root"]
        .iter()
        .map(|u| htpasswd_line(u, &format!("{u}-pw")) + "\n")
        .collect();
    std::fs::write(dir.join("htpasswd"), users).unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    let credentials = credentials.map(|c| format!("  credentials:\n{c}\n")).unwrap_or_default();
    let config = format!(
        "listen:\n  - addr: 127.0.0.1:0\nadmin:\n  addr: 127.0.0.1:0\nupstream:\n  url: {upstream_url}\n{credentials}{extra}auth:\n  anonymous: true\n  htpasswd: htpasswd\n  groups:\n    team-a: [alice, bob]\npolicy:\n  paths: [policy.yaml]\n"
    );
    let g = Gateway::start(dir, &config);
    (tmp, g)
}

/// A manifest as distribution serves it (it wants the media type in `Accept`).
async fn manifest(c: &integration_tests::Client, repo: &str, reference: &str, img: &Image) -> bytes::Bytes {
    let r = c
        .request(hyper::Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
        .header("accept", &img.manifest.media_type)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

fn stored(d: &Distribution, repo: &str) -> bool {
    d.root().join("docker/registry/v2/repositories").join(repo).exists()
}

fn copy(creds: &str, from: &str, to: &str) -> std::process::Output {
    Command::new("skopeo")
        .args(["copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(["--src-creds", creds, "--dest-creds", creds, from, to])
        .output()
        .expect("run skopeo")
}

fn oci_source(dir: &Path, img: &Image) -> String {
    let src = dir.join("src");
    let blobs: Vec<&Blob> = img.blobs();
    layout::write(&src, &blobs, &[("v1", &img.manifest)]);
    format!("oci:{}:v1", src.display())
}

#[tokio::test]
async fn skopeo_through_the_gateway_reaches_distribution_only_when_allowed() {
    if !tools::available("skopeo") || !tools::available("docker-registry") {
        return;
    }
    let d = Distribution::start(None);
    let (tmp, g) = gateway(&d.url(), None, "");
    let img = Image::new(501, 2, 300_000, "amd64");
    let src = oci_source(tmp.path(), &img);

    let out = copy("alice:alice-pw", &src, &format!("docker://{}/team-a/app:v1", g.host()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stored(&d, "team-a/app"));
    let back = tmp.path().join("back");
    let out = copy(
        "bob:bob-pw",
        &format!("docker://{}/team-a/app:v1", g.host()),
        &format!("oci:{}:v1", back.display()),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(layout::digest_of(&back, "v1").as_deref(), Some(img.manifest.digest.as_str()));

    let out = copy("carol:carol-pw", &src, &format!("docker://{}/team-a/carols:v1", g.host()));
    assert!(!out.status.success());
    assert!(!stored(&d, "team-a/carols"));
    assert_eq!(d.requests_mentioning("team-a/carols"), 0, "a denied request reached the upstream");
}

#[tokio::test]
async fn upload_locations_come_back_through_the_gateway() {
    if !tools::available("docker-registry") {
        return;
    }
    let d = Distribution::start(None);
    let (_tmp, g) = gateway(&d.url(), None, "");
    let alice = g.client().basic("alice", "alice-pw");
    let data = content::pseudo_random(502, 3 << 20);
    let digest = content::sha256(&data);

    let r = alice.post("/v2/team-a/chunks/blobs/uploads/").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mut loc = r.location();
    assert!(
        loc.starts_with("/v2/team-a/chunks/blobs/uploads/"),
        "distribution's absolute Location was not made relative: {loc}"
    );
    let mut offset = 0;
    for chunk in data.chunks(1 << 20) {
        let r = alice
            .request(hyper::Method::PATCH, &loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", &format!("{}-{}", offset, offset + chunk.len() - 1))
            .body(chunk.to_vec())
            .send()
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
        loc = r.location();
        assert!(loc.starts_with("/v2/"), "{loc}");
        offset += chunk.len();
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = alice.request(hyper::Method::PUT, &format!("{loc}{sep}digest={digest}")).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = alice.get(&format!("/v2/team-a/chunks/blobs/{digest}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert_eq!(content::sha256(&r.body), digest);

    // A session of team-a/chunks cannot be continued under a name carol may push to... carol has none.
    let carol = g.client().basic("carol", "carol-pw");
    assert_eq!(carol.request(hyper::Method::PATCH, &loc).body(vec![1u8]).send().await.status, 403);
}

#[tokio::test]
async fn static_basic_credentials_are_the_gateways_own() {
    if !tools::available("docker-registry") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("upstream-htpasswd");
    std::fs::write(&htpasswd, htpasswd_line("gw", "gw-secret") + "\n").unwrap();
    let d = Distribution::start(Some(&format!(
        "  htpasswd:\n    realm: upstream\n    path: {}",
        htpasswd.display()
    )));
    let creds = "    basic:\n      username: gw\n      password: gw-secret";
    let (_t, g) = gateway(&d.url(), Some(creds), "");
    let alice = g.client().basic("alice", "alice-pw");
    // alice's credentials mean nothing to distribution: the push works only with the gateway's own.
    let img = Image::new(503, 1, 1000, "amd64");
    alice.push_image("team-a/app", "v1", &img).await;
    assert_eq!(manifest(&alice, "team-a/app", "v1", &img).await, img.manifest.data);
    let r = alice.get("/v2/_catalog").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team-a/app"]));

    // Without credentials the upstream refuses the gateway: that is the gateway's problem (502), and the
    // upstream's challenge is not passed to the client.
    let (_t2, bare) = gateway(&d.url(), None, "");
    let r = bare.client().basic("alice", "alice-pw").get("/v2/team-a/app/manifests/v1").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["message"], "the upstream registry is unavailable");
    assert_eq!(r.error_code(), "UNKNOWN");
    assert!(r.header("www-authenticate").is_none());
    let m = bare.admin().get("/metrics").await.text();
    assert!(m.contains(r#"ocigate_upstream_errors_total{kind="unauthorized"} 1"#), "{m}");
}

#[tokio::test]
async fn the_token_dance_asks_for_each_requests_own_scope_and_caches_tokens() {
    if !tools::available("docker-registry") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::new("token-issuer"));
    let bundle = tmp.path().join("token.crt");
    std::fs::write(&bundle, &signer.cert).unwrap();
    let tokens = TokenServer::start(signer.clone(), "test-issuer", "test-registry", "gw", "gw-secret");
    let d = Distribution::start(Some(&format!(
        "  token:\n    realm: {}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}",
        tokens.realm(),
        bundle.display()
    )));
    let creds = "    token:\n      username: gw\n      password: gw-secret";
    let (_t, g) = gateway(&d.url(), Some(creds), "");
    let alice = g.client().basic("alice", "alice-pw");
    let img = Image::new(504, 2, 1000, "amd64");
    alice.push_image("team-a/app", "v1", &img).await;
    assert_eq!(manifest(&alice, "team-a/app", "v1", &img).await, img.manifest.data);
    let r = alice
        .post(&format!("/v2/team-a/copy/blobs/uploads/?mount={}&from=team-a/app", img.layers[0].digest))
        .await;
    assert_eq!(r.status, 201, "mount through the token dance: {}", r.text());
    let root = g.client().basic("root", "root-pw");
    assert_eq!(
        root.get("/v2/_catalog").await.json()["repositories"],
        serde_json::json!(["team-a/app", "team-a/copy"])
    );

    let asked = tokens.requests();
    for scope in [
        "repository:team-a/app:pull,push",
        "repository:team-a/app:pull",
        "repository:team-a/copy:pull,push repository:team-a/app:pull",
        "registry:catalog:*",
    ] {
        assert!(asked.iter().any(|a| a == scope), "no token was asked for {scope:?}; asked: {asked:?}");
    }
    assert!(asked.len() <= 6, "tokens are cached per scope: {asked:?}");
}

#[tokio::test]
async fn upstream_down_is_a_502_and_the_gateway_recovers() {
    if !tools::available("docker-registry") {
        return;
    }
    let d = Distribution::start(None);
    let port = d.port();
    let (_t, g) = gateway(&d.url(), None, "  timeouts:\n    connect: 1s\n    read: 5s\n");
    let alice = g.client().basic("alice", "alice-pw");
    assert_eq!(alice.get("/v2/team-a/app/tags/list").await.status, 404);
    d.stop();

    let r = alice.get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "UNKNOWN");
    let deadline = Instant::now() + Duration::from_secs(15);
    while g.admin().get("/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "/readyz never noticed the upstream is down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let _back = Distribution::start_on(port, None);
    let r = alice.get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, 404, "the gateway did not recover: {}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN");
    let deadline = Instant::now() + Duration::from_secs(15);
    while g.admin().get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "/readyz never noticed the upstream is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_silent_upstream_is_a_504() {
    // Accepts connections and reads requests, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let (_t, g) = gateway(&format!("http://{addr}"), None, "  timeouts:\n    connect: 1s\n    read: 1s\n");
    let start = Instant::now();
    let r = g.client().basic("alice", "alice-pw").get("/v2/team-a/app/manifests/v1").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.error_code(), "UNKNOWN");
    assert!(start.elapsed() < Duration::from_secs(5));
}
