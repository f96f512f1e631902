//! Hot reload and lifecycle: the policy rewritten under load without a failed request, a bad file keeping
//! the old policy, a Kubernetes ConfigMap `..data` swap, SIGHUP, dry-run, and SIGTERM draining requests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use integration_tests::content::Image;
use integration_tests::gateway::{Gateway, htpasswd_line};

fn policy(extra_rule: &str, bob_may_pull: bool) -> String {
    let bob = if bob_may_pull { "[bob]" } else { "[nobody]" };
    format!(
        r#"
grants:
  - id: root
    users: [root]
    repositories: ["**"]
    actions: ["*"]
  - id: bob-reads
    users: {bob}
    repositories: ["team-a/**"]
    actions: [pull]
{extra_rule}
"#
    )
}

fn start(dir: &Path, policy_path: &str, mode: &str) -> Gateway {
    let users: String = ["bob", "root"].iter().map(|u| htpasswd_line(u, &format!("{u}-pw")) + "\n").collect();
    std::fs::write(dir.join("htpasswd"), users).unwrap();
    let config = format!(
        "listen:\n  - addr: 127.0.0.1:0\nadmin:\n  addr: 127.0.0.1:0\nupstream:\n  bundled:\n    root: data\nauth:\n  htpasswd: htpasswd\npolicy:\n  paths: [{policy_path}]\n  mode: {mode}\nshutdown_timeout: 10s\n"
    );
    Gateway::start(dir, &config)
}

async fn revision(g: &Gateway) -> String {
    g.admin().get("/readyz").await.json()["policy"]["revision"].as_str().unwrap().to_owned()
}

async fn wait_revision_change(g: &Gateway, from: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = g.admin().get("/readyz").await.json()["policy"]["revision"].as_str().unwrap().to_owned();
        if now != from {
            return now;
        }
        assert!(Instant::now() < deadline, "the policy was never reloaded; log:\n{}", g.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_rewrites_under_load_fail_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("policy.yaml"), policy("", true)).unwrap();
    let g = start(dir, "policy.yaml", "enforce");
    let img = Image::new(701, 1, 1000, "amd64");
    g.client().basic("root", "root-pw").push_image("team-a/app", "v1", &img).await;
    let first = revision(&g).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (bob, stop, done, want) =
            (g.client().basic("bob", "bob-pw"), stop.clone(), done.clone(), img.manifest.data.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = bob
                    .request(hyper::Method::GET, "/v2/team-a/app/manifests/v1")
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await;
                assert_eq!(r.status, 200, "a request failed during reloads: {}", r.text());
                assert_eq!(r.body, want.clone());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Rewrite in place (as editors and `kubectl cp` do): the watcher may even read a half-written file.
    for i in 0..50 {
        let rule = format!(
            "  - id: filler-{i}\n    users: [u{i}]\n    repositories: [\"x{i}/**\"]\n    actions: [pull]\n"
        );
        std::fs::write(dir.join("policy.yaml"), policy(&rule, true)).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let last = wait_revision_change(&g, &first).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 50, "the load loop barely ran");
    let m = g.admin().get("/metrics").await.text();
    let successes: u64 = m
        .lines()
        .find(|l| l.starts_with(r#"ocigate_policy_reloads_total{result="success"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(successes >= 1, "{m}");
    // The last file written is the one in force.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rev = revision(&g).await;
    assert!(!rev.is_empty() && rev != first, "{rev} {last}");
    let revisions: std::collections::HashSet<String> =
        g.decisions().iter().map(|d| d["revision"].as_str().unwrap().to_owned()).collect();
    assert!(revisions.len() >= 2, "requests were decided on the old and the new policies: {revisions:?}");
}

#[tokio::test]
async fn a_bad_policy_keeps_the_old_one_and_counts_a_failed_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/main.yaml"), policy("", true)).unwrap();
    let g = start(dir, "policies", "enforce");
    let bob = g.client().basic("bob", "bob-pw");
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.status, 404, "bob may pull (unknown repository)");
    let first = revision(&g).await;

    // A typo in a condition: the whole reload is refused.
    std::fs::write(dir.join("policies/extra.yaml"), "grants:\n  - id: broken\n    users: [bob]\n    repositories: [\"**\"]\n    actions: [push]\n    when: request.nope == 1\n").unwrap();
    g.wait_log("policy reload failed");
    assert!(g.log().contains("extra.yaml"), "the error names the file: {}", g.log());
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.status, 404, "the old policy still answers");
    let m = g.admin().get("/metrics").await.text();
    assert!(
        m.contains(r#"ocigate_policy_reloads_total{result="failure"} 1"#)
            || m.contains(r#"ocigate_policy_reloads_total{result="failure"} 2"#),
        "{m}"
    );
    assert_eq!(g.admin().get("/readyz").await.json()["policy"]["revision"], first.as_str());

    // Fixed: the new policy (bob loses pull) takes over.
    std::fs::remove_file(dir.join("policies/extra.yaml")).unwrap();
    std::fs::write(dir.join("policies/main.yaml"), policy("", false)).unwrap();
    wait_revision_change(&g, &first).await;
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.status, 403);
}

#[tokio::test]
async fn a_configmap_swap_and_sighup_reload() {
    // Kubernetes mounts a ConfigMap as `policy.yaml -> ..data/policy.yaml`, `..data -> ..<timestamp>`, and
    // updates it by pointing `..data` at a new folder.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cm = dir.join("cm");
    std::fs::create_dir_all(cm.join("..2026_01")).unwrap();
    std::fs::write(cm.join("..2026_01/policy.yaml"), policy("", true)).unwrap();
    std::os::unix::fs::symlink("..2026_01", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.yaml", cm.join("policy.yaml")).unwrap();
    let g = start(dir, "cm/policy.yaml", "enforce");
    let bob = g.client().basic("bob", "bob-pw");
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.status, 404);
    let first = revision(&g).await;

    std::fs::create_dir_all(cm.join("..2026_02")).unwrap();
    std::fs::write(cm.join("..2026_02/policy.yaml"), policy("", false)).unwrap();
    std::os::unix::fs::symlink("..2026_02", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(cm.join("..2026_01")).unwrap();
    let second = wait_revision_change(&g, &first).await;
    assert_eq!(bob.get("/v2/team-a/app/tags/list").await.status, 403);

    // SIGHUP re-reads (and does not end the process).
    g.signal("HUP");
    g.wait_log("SIGHUP: re-reading");
    assert_eq!(g.admin().get("/healthz").await.status, 200);
    assert_eq!(g.admin().get("/readyz").await.json()["policy"]["revision"], second.as_str());
}

#[tokio::test]
async fn dry_run_logs_would_be_denials_and_allows() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("policy.yaml"), policy("", false)).unwrap();
    let g = start(tmp.path(), "policy.yaml", "dry-run");
    let bob = g.client().basic("bob", "bob-pw");
    let r = bob.get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, 404, "allowed in dry-run, then unknown to the registry");
    let d = g.wait_decision(|d| d["principal"] == "bob" && d["route"] == "tags");
    assert_eq!(d["decision"], "would_deny");
    assert_eq!(d["reason"], "no_matching_grant");
    assert_eq!(g.admin().get("/readyz").await.json()["policy"]["mode"], "dry-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_then_exits() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("policy.yaml"), policy("", true)).unwrap();
    let mut g = start(tmp.path(), "policy.yaml", "enforce");
    let root = g.client().basic("root", "root-pw");
    let start = root.post("/v2/team-a/slow/blobs/uploads/").await;
    assert_eq!(start.status, 202);
    let loc = start.location();

    // A chunk that takes ~1.5 s to arrive.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>(4);
    let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
    let upload = {
        let addr = g.addr(0);
        let loc = loc.clone();
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .method("PATCH")
                .uri(&loc)
                .header("host", addr.to_string())
                .header(
                    "authorization",
                    format!("Basic {}", integration_tests::gateway::base64("root:root-pw")),
                )
                .header("content-type", "application/octet-stream")
                .body(body)
                .unwrap();
            sender.send_request(req).await.unwrap().status().as_u16()
        })
    };
    tx.send(Ok(hyper::body::Frame::data(Bytes::from(vec![1u8; 1000])))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    g.signal("TERM");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tx.send(Ok(hyper::body::Frame::data(Bytes::from(vec![2u8; 1000])))).await.unwrap();
    }
    drop(tx);
    assert_eq!(upload.await.unwrap(), 202, "the upload in flight finished");
    // New connections are refused while draining or after exit.
    assert!(
        std::net::TcpStream::connect_timeout(&g.addr(0), Duration::from_millis(500)).is_err()
            || g.wait_exit(Duration::from_secs(5)).is_some()
    );
    let started = Instant::now();
    assert_eq!(g.wait_exit(Duration::from_secs(8)), Some(0), "exits cleanly once idle; log:\n{}", g.log());
    assert!(started.elapsed() < Duration::from_secs(5), "did not sleep out the whole shutdown timeout");
    assert!(g.log().contains("all requests finished"), "{}", g.log());
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn an_idle_gateway_exits_promptly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("policy.yaml"), policy("", true)).unwrap();
    let mut g = start(tmp.path(), "policy.yaml", "enforce");
    assert_eq!(g.client().basic("bob", "bob-pw").get("/v2/team-a/x/tags/list").await.status, 404);
    let started = Instant::now();
    g.signal("TERM");
    assert_eq!(g.wait_exit(Duration::from_secs(8)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
