//! `ocigate check-config` and `ocigate serve` refusing bad configurations: every problem, each with its
//! file and path; unknown fields are errors; the shipped examples are valid. Plus the Rust OCI client
//! through the gateway.

use std::path::Path;
use std::process::Command;

use integration_tests::bin::ocigate;
use integration_tests::content::Image;
use integration_tests::gateway::{Gateway, htpasswd_line};

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(ocigate()).arg("check-config").arg(path).output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn the_shipped_examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for example in ["examples/quickstart.yaml", "examples/edge.yaml"] {
        let (ok, out) = check(&root.join(example));
        assert!(ok, "{example}: {out}");
    }
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("policy.yaml"), "grants: []\n").unwrap();
    let config = r#"
listen:
  - addr: nonsense
  - addr: 127.0.0.1:5000
    tls:
      cert: missing.crt
      key: missing.key
      require_client_cert: true
upstream:
  url: ftp://registry
auth:
  htpasswd: missing-htpasswd
  issuers:
    - issuer: https://idp
      audiences: []
      algorithms: [HS256]
policy:
  paths: [policy.yaml]
  mode: strict
threads: 0
shutdown_timeout: soon
"#;
    let path = tmp.path().join("bad.yaml");
    std::fs::write(&path, config).unwrap();
    let (ok, out) = check(&path);
    assert!(!ok);
    for expected in [
        "listen[0].addr: \"nonsense\" is not an IP:port",
        "listen[1].tls.cert: cannot read",
        "listen[1].tls.key: cannot read",
        "listen[1].tls.require_client_cert: needs client_ca",
        "upstream.url: \"ftp://registry\" must start with http:// or https://",
        "auth.htpasswd: cannot read",
        "auth.issuers[0].audiences: name at least one accepted audience",
        "auth.issuers[0]: give `keys` (PEM files), `root_cert_bundle`, `jwks_file` or `jwks_url`",
        "auth.issuers[0].algorithms: \"HS256\" is not accepted",
        "policy.mode: \"strict\" is not `enforce` or `dry-run`",
        "threads: must be at least 1",
        "shutdown_timeout: \"soon\" is not a duration",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        out.lines().filter(|l| l.contains("bad.yaml: ")).count() >= 12,
        "each problem names the file:\n{out}"
    );
}

#[test]
fn unknown_fields_and_policy_errors_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("typo.yaml");
    std::fs::write(&path, "listen:\n  - addr: 127.0.0.1:0\n    tsl: {}\nupstream: {bundled: {root: data}}\npolicy: {paths: [p.yaml]}\n").unwrap();
    let (ok, out) = check(&path);
    assert!(!ok);
    assert!(out.contains("typo.yaml:3:") && out.contains("tsl"), "{out}");

    std::fs::write(
        tmp.path().join("p.yaml"),
        "grants:\n  - id: oops\n    users: [a]\n    repositories: [\"**\"]\n    actions: [pul]\n",
    )
    .unwrap();
    let path = tmp.path().join("policy-error.yaml");
    std::fs::write(&path, "listen:\n  - addr: 127.0.0.1:0\nupstream: {bundled: {root: data}}\nauth: {anonymous: true}\npolicy: {paths: [p.yaml]}\n").unwrap();
    let (ok, out) = check(&path);
    assert!(!ok);
    assert!(out.contains("p.yaml") && out.contains("oops") && out.contains("pul"), "{out}");
}

#[test]
fn serve_refuses_a_busy_port_naming_the_field() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("p.yaml"), "grants: []\n").unwrap();
    let config = format!(
        "listen:\n  - addr: {}\nupstream: {{bundled: {{root: data}}}}\nauth: {{anonymous: true}}\npolicy: {{paths: [p.yaml]}}\n",
        busy.local_addr().unwrap()
    );
    let err = Gateway::try_start(tmp.path(), &config).err().expect("the gateway must not start");
    assert!(err.contains("listen[0].addr: cannot bind"), "{err}");
    let out = Command::new(ocigate()).args(["serve", "--config", "/nonexistent.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.yaml: cannot read"));
}

#[tokio::test]
async fn the_rust_oci_client_pushes_and_pulls_through_the_gateway() {
    use integration_tests::ociclient::{PushParts, http_client, push_parts};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("htpasswd"), htpasswd_line("alice", "alice-pw") + "\n").unwrap();
    std::fs::write(
        tmp.path().join("p.yaml"),
        "grants:\n  - id: alice\n    users: [alice]\n    repositories: [\"rust/**\"]\n    actions: [pull, push]\n",
    )
    .unwrap();
    let g = Gateway::start(
        tmp.path(),
        "listen:\n  - addr: 127.0.0.1:0\nupstream: {bundled: {root: data}}\nauth: {htpasswd: htpasswd}\npolicy: {paths: [p.yaml]}\n",
    );
    let img = Image::new(801, 2, 200_000, "amd64");
    let c = http_client();
    let reference: oci_client::Reference = format!("{}/rust/app:v1", g.host()).parse().unwrap();
    let PushParts { layers, config, manifest } = push_parts(&img);
    let alice = RegistryAuth::Basic("alice".into(), "alice-pw".into());
    c.push(&reference, &layers, config, &alice, Some(manifest)).await.expect("push as alice");
    let pulled = c.pull(&reference, &alice, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.expect("pull as alice");
    assert_eq!(pulled.config.data, img.config.data);

    let anonymous = http_client();
    let err = anonymous.pull(&reference, &RegistryAuth::Anonymous, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await;
    assert!(err.is_err(), "anonymous access is off");
    let wrong = RegistryAuth::Basic("alice".into(), "nope".into());
    assert!(anonymous.pull(&reference, &wrong, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.is_err());
}
