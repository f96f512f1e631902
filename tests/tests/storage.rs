//! Storage guarantees: failed or interrupted uploads leave nothing visible, concurrent pushes are safe,
//! content survives restarts (upload sessions too), stale uploads are cleaned up, memory stays flat.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use integration_tests::content::{self, Blob, Image};
use integration_tests::http::send_and_hang_up;
use integration_tests::{Client, Server};

fn blob(seed: u64, len: usize) -> Blob {
    Blob::new("application/octet-stream", content::pseudo_random(seed, len))
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

async fn start(c: &Client, repo: &str) -> String {
    let r = c.post(&format!("/v2/{repo}/blobs/uploads/")).await;
    assert_eq!(r.status, 202);
    r.location()
}

#[tokio::test]
async fn interrupted_chunk_is_rolled_back() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(1, 1000);
    let loc = start(&c, "cut").await;
    // Promise 1000 bytes, send 500 of garbage, hang up.
    let mut req = format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").into_bytes();
    req.extend_from_slice(&[0xEE; 500]);
    send_and_hang_up(reg.addr(), req).await;
    // The next chunk starts at 0 again: the broken one left nothing behind.
    let r = c.request(Method::PATCH, &loc).header("content-range", "0-999").body(b.data.clone()).send().await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = c.request(Method::PUT, &format!("{loc}?digest={}", b.digest)).body(Bytes::new()).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn interrupted_monolithic_upload_leaves_nothing() {
    let reg = Server::registry();
    let c = reg.client();
    let b = blob(2, 1000);
    let loc = start(&c, "cut").await;
    let mut req =
        format!("PUT {loc}?digest={} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", b.digest)
            .into_bytes();
    req.extend_from_slice(&b.data[..500]);
    send_and_hang_up(reg.addr(), req).await;
    for _ in 0..100 {
        if c.get(&loc).await.status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.get(&loc).await.status, 404, "failed session removed");
    assert_eq!(c.head(&format!("/v2/cut/blobs/{}", b.digest)).await.status, 404);
    assert!(files_under(&reg.root().join("blobs")).is_empty());
    assert!(files_under(&reg.root().join("uploads")).is_empty());
}

#[tokio::test]
async fn concurrent_pushes_of_the_same_content() {
    let reg = Server::registry();
    let c = reg.client();
    let img = Image::new(3, 2, 200_000, "amd64");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (c, img) = (c.clone(), img.clone());
        tasks.push(tokio::spawn(async move { c.push_image(&format!("team/repo{i}"), "v1", &img).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..16 {
        let r = c.get(&format!("/v2/team/repo{i}/manifests/v1")).await;
        assert_eq!(r.body, img.manifest.data);
        let r = c.get(&format!("/v2/team/repo{i}/blobs/{}", img.layers[1].digest)).await;
        assert_eq!(r.body, img.layers[1].data);
    }
    // Stored once: config, two layers, manifest.
    assert_eq!(files_under(&reg.root().join("blobs")).len(), 4);
    assert!(files_under(&reg.root().join("uploads")).is_empty());
}

#[tokio::test]
async fn content_and_upload_sessions_survive_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let img = Image::new(4, 2, 10_000, "amd64");
    let b = blob(5, 4000);
    let loc = {
        let reg = Server::registry_at(&root, &[]);
        let c = reg.client();
        c.push_image("keep", "v1", &img).await;
        let loc = start(&c, "keep").await;
        let r = c
            .request(Method::PATCH, &loc)
            .header("content-range", "0-1999")
            .body(b.data.slice(..2000))
            .send()
            .await;
        assert_eq!(r.status, 202);
        loc
        // dropped: SIGKILL
    };
    let reg = Server::registry_at(&root, &[]);
    let c = reg.client();
    let r = c.get("/v2/keep/manifests/v1").await;
    assert_eq!(r.body, img.manifest.data);
    let r = c.get(&loc).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("range"), Some("0-1999"));
    let r = c
        .request(Method::PATCH, &loc)
        .header("content-range", "2000-3999")
        .body(b.data.slice(2000..))
        .send()
        .await;
    assert_eq!(r.status, 202);
    let r = c.request(Method::PUT, &format!("{loc}?digest={}", b.digest)).body(Bytes::new()).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(c.get(&format!("/v2/keep/blobs/{}", b.digest)).await.body, b.data);
}

#[tokio::test]
async fn kill_during_upload_never_exposes_a_partial_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let b = blob(6, 2_000_000);
    {
        let reg = Server::registry_at(&root, &[]);
        let loc = start(&reg.client(), "k").await;
        let mut req = format!(
            "PUT {loc}?digest={} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            b.digest,
            b.data.len()
        )
        .into_bytes();
        req.extend_from_slice(&b.data[..1_000_000]);
        let addr = reg.addr();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let _ = s.write_all(&req);
            std::thread::sleep(Duration::from_millis(300));
        });
        std::thread::sleep(Duration::from_millis(150));
        drop(reg); // SIGKILL mid-body
        writer.join().unwrap();
    }
    let reg = Server::registry_at(&root, &[]);
    assert_eq!(reg.client().head(&format!("/v2/k/blobs/{}", b.digest)).await.status, 404);
    assert!(files_under(&root.join("blobs")).is_empty());
}

#[tokio::test]
async fn stale_uploads_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Server::registry_at(&tmp.path().join("root"), &["--upload-ttl", "1s"]);
    let c = reg.client();
    let loc = start(&c, "stale").await;
    assert_eq!(c.request(Method::PATCH, &loc).body(vec![1u8; 10]).send().await.status, 202);
    let mut gone = false;
    for _ in 0..100 {
        if c.get(&loc).await.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "session still there after 10 s with a 1 s TTL");
    assert!(files_under(&reg.root().join("uploads")).is_empty());
    assert!(reg.log().contains("removed stale upload sessions"), "{}", reg.log());
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let reg = Server::registry();
    assert_eq!(reg.client().get("/v2/").await.status, 200);
    assert_eq!(reg.terminate(), Some(0));
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn memory_stays_flat_for_a_large_blob() {
    let reg = Server::registry();
    let c = reg.client();
    assert_eq!(c.get("/v2/").await.status, 200);
    let before = peak_rss_kib(reg.pid());
    let data = Bytes::from(content::pseudo_random(7, 96 << 20));
    let digest = content::sha256(&data);
    let loc = start(&c, "big").await;
    let chunks: Vec<Bytes> =
        (0..data.len()).step_by(1 << 20).map(|i| data.slice(i..(i + (1 << 20)).min(data.len()))).collect();
    let r = c.request(Method::PATCH, &loc).chunked(chunks).send().await;
    assert_eq!(r.status, 202);
    let r =
        c.request(Method::PUT, &format!("{}?digest={digest}", r.location())).body(Bytes::new()).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = c.get(&format!("/v2/big/blobs/{digest}")).await;
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data);
    let growth_mib = (peak_rss_kib(reg.pid()) - before) / 1024;
    assert!(growth_mib < 32, "peak RSS grew by {growth_mib} MiB for a 96 MiB blob");
}

#[test]
fn one_server_per_storage_root() {
    let first = Server::registry();
    let out = std::process::Command::new(integration_tests::bin::ocigate())
        .args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(first.root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already served by another process") && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
}

#[tokio::test]
async fn http2_stream_reset_mid_chunk_leaves_the_session_intact() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let tmp = tempfile::tempdir().unwrap();
    let reg = Server::registry_at(&tmp.path().join("root"), &["--log-level", "info,registry::access=debug"]);
    let c = reg.client();
    let b = blob(8, 1000);
    let loc = start(&c, "h2").await;

    // HTTP/2 with prior knowledge (h2c): send part of a chunk, then reset the stream.
    let tcp = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
        vec![Ok(Frame::data(Bytes::from(vec![0xEE; 600]))), Err(std::io::Error::other("client gives up"))];
    let req = hyper::Request::patch(format!("http://{}{loc}", reg.addr()))
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req)).await;
    // The server got the broken chunk (and answered it as a broken upload).
    let patched = format!("method=PATCH path=\"{loc}\" status=400");
    for _ in 0..100 {
        if reg.log().contains(&patched) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reg.log().contains(&patched), "{}", reg.log());

    // Nothing of the broken chunk remains: the real data goes at offset 0 and verifies.
    let r = c.request(Method::PATCH, &loc).header("content-range", "0-999").body(b.data.clone()).send().await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = c.request(Method::PUT, &format!("{loc}?digest={}", b.digest)).body(Bytes::new()).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(c.get(&format!("/v2/h2/blobs/{}", b.digest)).await.body, b.data);
}

#[test]
fn a_relative_root_is_created_in_the_current_folder() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(integration_tests::bin::ocigate())
        .args(["registry", "serve", "--root", "data", "--listen", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok).take(20) {
        log.push_str(&line);
        log.push('\n');
        if line.contains("registry listening") || line.contains("error") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("registry listening"), "{log}");
    assert!(tmp.path().join("data/blobs").is_dir());
}
