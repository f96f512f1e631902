//! `ocigate serve` with its bundled registry: real clients push and pull as users the policy allows and
//! denies; refusals are OCI errors with the right status and challenge, and never reach the registry.

use std::path::Path;
use std::process::Command;

use integration_tests::content::{self, Blob, Image};
use integration_tests::gateway::{Gateway, htpasswd_line};
use integration_tests::{layout, tools};
use serde_json::Value;

const POLICY: &str = r#"
grants:
  - id: public-read
    anonymous: true
    authenticated: true
    repositories: ["library/**"]
    actions: [pull]
  - id: catalog
    authenticated: true
    actions: [catalog]
  - id: team-a
    groups: [team-a]
    repositories: ["team-a/**"]
    actions: [pull, push, delete]
  - id: library-publisher
    users: [alice]
    repositories: ["library/**"]
    actions: [push, overwrite]
  - id: drop-box
    users: [robot]
    repositories: ["drop/**"]
    actions: [push]
  - id: root
    users: [root]
    repositories: ["**"]
    actions: ["*"]
denies:
  - id: immutable-releases
    authenticated: true
    repositories: ["**"]
    tags: ["v*"]
    actions: [overwrite]
    message: "release tags are immutable"
"#;

const USERS: &[&str] = &["alice", "bob", "carol", "robot", "root"];

/// A gateway over a fresh bundled registry with the test users (password = `<name>-pw`).
fn gateway(policy: &str, anonymous: bool) -> (tempfile::TempDir, Gateway) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let htpasswd: String = USERS.iter().map(|u| htpasswd_line(u, &format!("{u}-pw")) + "\n").collect();
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    std::fs::create_dir(dir.join("policy")).unwrap();
    std::fs::write(dir.join("policy/policy.yaml"), policy).unwrap();
    let config = format!(
        r#"
listen:
  - addr: 127.0.0.1:0
admin:
  addr: 127.0.0.1:0
upstream:
  bundled:
    root: data
auth:
  anonymous: {anonymous}
  htpasswd: htpasswd
  groups:
    team-a: [alice, bob]
policy:
  paths: [policy]
"#
    );
    let g = Gateway::start(dir, &config);
    (tmp, g)
}

fn repo_exists(data: &Path, repo: &str) -> bool {
    data.join("repositories").join(repo).exists()
}

#[tokio::test]
async fn ping_answers_everyone_allowed_in_and_challenges_bad_credentials() {
    let (_tmp, g) = gateway(POLICY, true);
    let c = g.client();
    // Callers that send nothing are challenged, so clients with credentials learn to send them; clients
    // without any answer the challenge with `Basic Og==` (empty user and password): anonymous.
    let r = c.get("/v2/").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("docker-distribution-api-version"), Some("registry/2.0"));
    assert_eq!(c.basic("", "").get("/v2/").await.status, 200);
    assert_eq!(c.basic("", "").get("/v2/library/x/manifests/latest").await.error_code(), "NAME_UNKNOWN");
    assert_eq!(c.get("/v2/library/x/manifests/latest").await.error_code(), "NAME_UNKNOWN");
    assert_eq!(c.basic("alice", "alice-pw").get("/v2/").await.status, 200);

    let r = c.basic("alice", "wrong").get("/v2/").await;
    assert_eq!(r.status, 401, "a wrong password is refused even with anonymous access on");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ocigate\",charset=\"UTF-8\""));
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    assert_eq!(r.json()["errors"][0]["detail"], "invalid user name or password");

    let r = c.with_header("authorization", "Negotiate abc").get("/v2/").await;
    assert_eq!(r.status, 401);
    let r = c.bearer("not-a-jwt").get("/v2/").await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers.get_all("www-authenticate").iter().any(|v| v.to_str().unwrap().contains("invalid_token"))
    );

    let (_tmp2, closed) = gateway(POLICY, false);
    let r = closed.client().get("/v2/").await;
    assert_eq!(r.status, 401, "anonymous access is off");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert!(!challenge.contains("scope"), "the ping's challenge names no scope: {challenge}");
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo").args(args).output().expect("run skopeo")
}

#[tokio::test]
async fn skopeo_pushes_and_pulls_as_the_policy_says() {
    if !tools::available("skopeo") {
        return;
    }
    let (tmp, g) = gateway(POLICY, true);
    let img = Image::new(401, 2, 200_000, "amd64");
    let src = tmp.path().join("src");
    layout::write(&src, &[&img.config, &img.layers[0], &img.layers[1]], &[("v1", &img.manifest)]);
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = |repo: &str| format!("docker://{}/{repo}", g.host());
    let copy = |creds: Option<&str>, from: &str, to: &str| {
        let mut args = vec![
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c, "--src-creds", c]);
        }
        args.extend([from, to]);
        skopeo(&args)
    };

    // alice (team-a) pushes into the team namespace.
    let out = copy(Some("alice:alice-pw"), &src_ref, &dest("team-a/app:v1"));
    assert!(out.status.success(), "alice's push failed: {}", String::from_utf8_lossy(&out.stderr));

    // bob (team-a) pulls it back, digest intact.
    let back = tmp.path().join("back");
    let out = copy(Some("bob:bob-pw"), &dest("team-a/app:v1"), &format!("oci:{}:v1", back.display()));
    assert!(out.status.success(), "bob's pull failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(layout::digest_of(&back, "v1").as_deref(), Some(img.manifest.digest.as_str()));

    // carol has no grant on team-a: refused, and nothing reaches the registry.
    let out = copy(Some("carol:carol-pw"), &src_ref, &dest("team-a/carols:v1"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("denied") || err.contains("403"), "{err}");
    assert!(!repo_exists(&tmp.path().join("data"), "team-a/carols"));

    // Anonymous callers are asked to authenticate; skopeo without credentials cannot pull team-a.
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest("team-a/app:v1")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("unauthorized"));

    // Anonymous callers may pull library/**, once alice published there.
    let out = copy(Some("alice:alice-pw"), &src_ref, &dest("library/app:v1"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest("library/app:v1")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(content::sha256(&out.stdout), img.manifest.digest);

    let denied = g.wait_decision(|d| d["principal"] == "carol" && d["decision"] == "deny");
    assert_eq!(denied["repository"], "team-a/carols");
    assert_eq!(denied["status"], 403);
}

#[tokio::test]
async fn refusals_are_oci_errors_and_reach_nothing() {
    let (tmp, g) = gateway(POLICY, true);
    let c = g.client();
    let img = Image::new(402, 1, 1000, "amd64");

    let r = c.basic("carol", "carol-pw").post("/v2/team-a/x/blobs/uploads/").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "DENIED");
    assert_eq!(r.json()["errors"][0]["detail"]["action"], "push");
    assert_eq!(r.json()["errors"][0]["detail"]["repository"], "team-a/x");

    let r = c.post("/v2/team-a/x/blobs/uploads/").await;
    assert_eq!(r.status, 401, "anonymous callers are asked to sign in, not told no");
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));

    let r = c.basic("carol", "carol-pw").put_manifest("team-a/x", "latest", &img.manifest).await;
    assert_eq!(r.status, 403);
    let r = c
        .basic("carol", "carol-pw")
        .delete(&format!("/v2/library/app/manifests/{}", img.manifest.digest))
        .await;
    assert_eq!(r.status, 403);
    assert!(!repo_exists(&tmp.path().join("data"), "team-a/x"));

    // A refused request with a body: the client still reads the answer, and the connection stays usable.
    let big = vec![7u8; 1 << 20];
    let r = c
        .basic("carol", "carol-pw")
        .request(hyper::Method::PUT, "/v2/team-a/x/manifests/big")
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(big)
        .send()
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(c.basic("carol", "carol-pw").get("/v2/").await.status, 200);
}

#[tokio::test]
async fn path_tricks_are_refused_and_encoded_names_are_what_the_policy_sees() {
    let (tmp, g) = gateway(POLICY, true);
    let root = g.client().basic("root", "root-pw");
    let img = Image::new(403, 1, 1000, "amd64");
    root.push_image("other/secret", "v1", &img).await;
    let bob = g.client().basic("bob", "bob-pw");

    for path in [
        "/v2/team-a/../other/secret/manifests/v1",
        "/v2/team-a/%2e%2e/other/secret/manifests/v1",
        "/v2/team-a//other/secret/manifests/v1",
        "/v2/team-a/%2E%2E/other/secret/manifests/v1",
        "/v2/Team-A/app/manifests/v1",
    ] {
        let r = bob.get(path).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.error_code(), "NAME_INVALID", "{path}");
    }
    // `%2f` is a slash: the policy sees other/secret, which bob may not pull.
    let r = bob.get("/v2/other%2fsecret/manifests/v1").await;
    assert_eq!(r.status, 403);
    let d = g.wait_decision(|d| d["decision"] == "deny" && d["principal"] == "bob");
    assert_eq!(d["repository"], "other/secret");
    // ...and what root may read under that name is exactly the registry's other/secret.
    let r = root.get("/v2/other%2Fsecret/manifests/v1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, img.manifest.data);

    for (method, path, status) in [
        (hyper::Method::GET, "/v2/team-a/app/things/x", 404),
        (hyper::Method::GET, "/v2/team-a/app/tags/list/", 404),
        (hyper::Method::OPTIONS, "/v2/", 405),
        (hyper::Method::POST, "/v2/team-a/app/manifests/v1", 405),
        (hyper::Method::GET, "/v3/whatever", 404),
        (hyper::Method::GET, "/", 404),
        (hyper::Method::GET, "/v2/team-a/app/blobs/sha256:abc", 400),
    ] {
        let r = bob.request(method.clone(), path).send().await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(r.json()["errors"][0]["code"].is_string(), "{method} {path}: not an OCI error: {}", r.text());
    }
    assert!(!repo_exists(&tmp.path().join("data"), "team-a/app"));
    // Every malformed request is logged as invalid.
    g.wait_decisions(10, |d| d["decision"] == "invalid");
}

#[tokio::test]
async fn tags_that_exist_need_overwrite_unless_the_content_is_the_same() {
    let (_tmp, g) = gateway(POLICY, true);
    let alice = g.client().basic("alice", "alice-pw");
    let bob = g.client().basic("bob", "bob-pw");
    let one = Image::new(404, 1, 1000, "amd64");
    let two = Image::new(405, 1, 1000, "amd64");

    // alice may overwrite in library/**, except release tags.
    alice.push_image("library/tool", "latest", &one).await;
    alice.push_image("library/tool", "latest", &two).await;
    alice.push_image("library/tool", "v1.0", &one).await;
    for b in [&two.config, &two.layers[0]] {
        assert_eq!(alice.push_blob("library/tool", b).await.status, 201);
    }
    let r = alice.put_manifest("library/tool", "v1.0", &two.manifest).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["errors"][0]["message"], "release tags are immutable");
    // Pushing the same manifest again moves nothing: allowed, as the registry would answer.
    let r = alice.put_manifest("library/tool", "v1.0", &one.manifest).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(one.manifest.digest.as_str()));
    assert_eq!(alice.get("/v2/library/tool/manifests/v1.0").await.body, one.manifest.data);

    // bob (team-a) may push but not overwrite: a new tag is fine, moving one is not.
    bob.push_image("team-a/app", "latest", &one).await;
    for b in [&two.config, &two.layers[0]] {
        assert_eq!(bob.push_blob("team-a/app", b).await.status, 201);
    }
    let r = bob.put_manifest("team-a/app", "latest", &two.manifest).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["detail"]["action"], "overwrite");
    assert_eq!(bob.get("/v2/team-a/app/manifests/latest").await.body, one.manifest.data);
    // By digest with ?tag=: each tag is checked the same way.
    let r = bob
        .request(hyper::Method::PUT, &format!("/v2/team-a/app/manifests/{}?tag=latest", two.manifest.digest))
        .header("content-type", &two.manifest.media_type)
        .body(two.manifest.data.clone())
        .send()
        .await;
    assert_eq!(r.status, 403);
    let d = g.wait_decision(|d| d["principal"] == "bob" && d["action"] == "overwrite");
    assert_eq!(d["reason"], "tag_exists");
}

#[tokio::test]
async fn a_mount_from_a_repository_the_caller_cannot_pull_becomes_an_upload() {
    let (_tmp, g) = gateway(POLICY, true);
    let alice = g.client().basic("alice", "alice-pw");
    let blob = Blob::new("application/octet-stream", content::pseudo_random(406, 5000));
    assert_eq!(alice.push_blob("team-a/src", &blob).await.status, 201);

    // robot may push to drop/** but not pull team-a/src: no mount, a plain upload session instead.
    let robot = g.client().basic("robot", "robot-pw");
    let r = robot.post(&format!("/v2/drop/x/blobs/uploads/?mount={}&from=team-a/src", blob.digest)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.location().contains("/v2/drop/x/blobs/uploads/"));
    assert_eq!(
        robot.head(&format!("/v2/drop/x/blobs/{}", blob.digest)).await.status,
        403,
        "robot cannot pull"
    );
    let root = g.client().basic("root", "root-pw");
    assert_eq!(
        root.head(&format!("/v2/drop/x/blobs/{}", blob.digest)).await.status,
        404,
        "nothing was mounted"
    );

    // alice may pull team-a/src: the mount happens.
    let r = alice.post(&format!("/v2/team-a/dst/blobs/uploads/?mount={}&from=team-a/src", blob.digest)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // A mount without `from` could come from anywhere: it is never passed on.
    let r = robot.post(&format!("/v2/drop/y/blobs/uploads/?mount={}", blob.digest)).await;
    assert_eq!(r.status, 202);
    assert_eq!(root.head(&format!("/v2/drop/y/blobs/{}", blob.digest)).await.status, 404);
}

#[tokio::test]
async fn catalog_lists_exactly_what_the_caller_may_pull_with_paging() {
    let (_tmp, g) = gateway(POLICY, true);
    let root = g.client().basic("root", "root-pw");
    let img = Image::new(407, 1, 100, "amd64");
    for repo in
        ["library/a", "library/b", "other/secret", "team-a/x1", "team-a/x2", "team-a/x3", "zeta/hidden"]
    {
        root.push_image(repo, "t", &img).await;
    }
    let bob = g.client().basic("bob", "bob-pw");
    let r = bob.get("/v2/_catalog").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["library/a", "library/b", "team-a/x1", "team-a/x2", "team-a/x3"])
    );

    // Pages of the filtered list, following Link.
    let mut seen = Vec::new();
    let mut next = Some("/v2/_catalog?n=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = bob.get(&path).await;
        assert_eq!(r.status, 200);
        let page: Vec<String> = serde_json::from_value(r.json()["repositories"].clone()).unwrap();
        assert!(page.len() <= 2);
        seen.extend(page);
        next =
            r.header("link").map(|l| l.split(';').next().unwrap().trim_matches(['<', '>', ' ']).to_owned());
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(seen, ["library/a", "library/b", "team-a/x1", "team-a/x2", "team-a/x3"]);
    assert_eq!(pages, 3);
    let r = bob.get("/v2/_catalog?n=2&last=library/b").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team-a/x1", "team-a/x2"]));
    assert_eq!(r.header("link"), Some("</v2/_catalog?n=2&last=team-a/x2>; rel=\"next\""));
    assert_eq!(bob.get("/v2/_catalog?n=x").await.status, 400);

    // root sees everything; anonymous callers have no catalog grant.
    assert_eq!(root.get("/v2/_catalog").await.json()["repositories"].as_array().unwrap().len(), 7);
    assert_eq!(g.client().get("/v2/_catalog").await.status, 401);
}

#[tokio::test]
async fn tag_lists_are_filtered_when_tag_rules_apply() {
    let policy = format!(
        "{POLICY}\n  - id: bob-releases-only\n    users: [bob]\n    repositories: [\"team-a/**\"]\n    tags: [\"dev-*\"]\n    actions: [pull]\n"
    );
    let (_tmp, g) = gateway(&policy, true);
    let root = g.client().basic("root", "root-pw");
    let img = Image::new(408, 1, 100, "amd64");
    for tag in ["dev-1", "dev-2", "v1", "v2"] {
        root.push_image("team-a/app", tag, &img).await;
    }
    let bob = g.client().basic("bob", "bob-pw");
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.json()["tags"], serde_json::json!(["v1", "v2"]));
    let r = bob.get("/v2/team-a/app/tags/list?n=1").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    assert_eq!(r.header("link"), Some("</v2/team-a/app/tags/list?n=1&last=v1>; rel=\"next\""));
    let alice = g.client().basic("alice", "alice-pw");
    assert_eq!(alice.get("/v2/team-a/app/tags/list").await.json()["tags"].as_array().unwrap().len(), 4);
    assert_eq!(bob.get("/v2/team-a/nope/tags/list").await.error_code(), "NAME_UNKNOWN");
}

#[tokio::test]
async fn decision_lines_metrics_and_health() {
    let (_tmp, g) = gateway(POLICY, true);
    let alice = g.client().basic("alice", "alice-pw");
    let img = Image::new(409, 1, 100, "amd64");
    alice.push_image("team-a/app", "latest", &img).await;
    assert_eq!(
        g.client().basic("carol", "carol-pw").get("/v2/team-a/app/manifests/latest").await.status,
        403
    );

    let allow = g.wait_decision(|d| d["route"] == "manifest" && d["decision"] == "allow");
    for field in [
        "time",
        "id",
        "revision",
        "principal",
        "auth",
        "method",
        "client_ip",
        "repository",
        "action",
        "reference",
        "decision",
        "rule",
        "reason",
        "status",
        "bytes",
        "duration_ms",
    ] {
        assert!(!allow[field].is_null(), "decision line lacks {field}: {allow}");
    }
    assert_eq!(allow["principal"], "alice");
    assert_eq!(allow["auth"], "basic");
    assert_eq!(allow["rule"], "team-a");
    assert_eq!(allow["status"], 201);
    let deny = g.wait_decision(|d| d["principal"] == "carol");
    assert_eq!(
        (deny["decision"].as_str(), deny["reason"].as_str(), deny["status"].as_u64()),
        (Some("deny"), Some("no_matching_grant"), Some(403))
    );
    let all = g.decisions();
    let ids: std::collections::HashSet<&str> = all.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "request ids are unique");
    let text = format!("{all:?}{}", g.log());
    assert!(
        !text.contains("alice-pw") && !text.contains(&integration_tests::gateway::base64("alice:alice-pw")),
        "a credential was logged"
    );

    let m = g.admin().get("/metrics").await;
    assert_eq!(m.status, 200);
    let m = m.text();
    assert!(
        m.contains(r#"ocigate_requests_total{action="push",decision="allow",route="manifest",status="201"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"ocigate_requests_total{action="pull",decision="deny",route="manifest",status="403"}"#),
        "{m}"
    );
    assert!(m.contains("ocigate_request_duration_seconds_bucket"));
    assert!(m.contains(r#"ocigate_policy_reloads_total{result="failure"} 0"#));
    assert!(!m.contains("team-a") && !m.contains("alice"), "no repository or user names in metrics");

    assert_eq!(g.admin().get("/healthz").await.status, 200);
    let ready = g.admin().get("/readyz").await;
    assert_eq!(ready.status, 200);
    let v: Value = ready.json();
    assert_eq!(v["ready"], true);
    assert_eq!(v["policy"]["revision"], allow["revision"]);
}
