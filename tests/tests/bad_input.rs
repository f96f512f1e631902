//! Malformed and hostile requests: each gets a clear OCI error with the right status, the server stays up,
//! and nothing reaches the disk.

use std::path::Path;

use integration_tests::Server;
use integration_tests::http::{raw, raw_status};

fn get(reg: &Server, method: &str, path: &str) -> String {
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    raw(reg.addr(), req.as_bytes())
}

fn code(resp: &str) -> String {
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("no JSON body: {resp}"));
    v["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
}

fn tree(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            tree(&e.path(), out);
        }
    }
}

#[test]
fn path_tricks_are_rejected_before_storage() {
    let reg = Server::registry();
    let long = format!("/v2/{}/manifests/latest", "a".repeat(256));
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/v2/a/../b/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/%2e%2e/%2e%2e/etc/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/%2E%2E/tags/list", 400, "NAME_INVALID"),
        ("PUT", "/v2/a//b/manifests/latest", 400, "NAME_INVALID"),
        ("POST", "/v2/Upper/blobs/uploads/", 400, "NAME_INVALID"),
        ("POST", "/v2/a%00b/blobs/uploads/", 400, "NAME_INVALID"),
        ("GET", "/v2/a%ff/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/a%zz/tags/list", 400, "NAME_INVALID"),
        ("GET", &long, 400, "NAME_INVALID"),
        ("GET", "/v2/a/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd", 404, "UNSUPPORTED"),
        ("GET", "/v2/a/blobs/sha256%3A..%2F..%2Fx", 404, "UNSUPPORTED"),
        (
            "GET",
            "/v2/a/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85%2F",
            404,
            "UNSUPPORTED",
        ),
        (
            "DELETE",
            "/v2/a/blobs/SHA256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            400,
            "DIGEST_INVALID",
        ),
        ("PATCH", "/v2/a/blobs/uploads/..%2F..%2Fblobs", 404, "UNSUPPORTED"),
        ("PATCH", "/v2/a/blobs/uploads/%2e%2e", 404, "BLOB_UPLOAD_UNKNOWN"),
        (
            "PUT",
            "/v2/a/blobs/uploads/.tmp-x?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        ("GET", "/v2/a/manifests/sha256:abc", 400, "DIGEST_INVALID"),
        ("PUT", "/v2/a/manifests/..", 400, "MANIFEST_INVALID"),
        ("GET", "/v2/_layers/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/a/_manifests/tags/list", 400, "NAME_INVALID"),
        (
            "POST",
            "/v2/a/blobs/uploads/?mount=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855&from=..%2F..",
            400,
            "NAME_INVALID",
        ),
        ("GET", "/v2/a/tags/list?n=x", 400, "PAGINATION_NUMBER_INVALID"),
        ("GET", "/v3/", 404, "UNSUPPORTED"),
        ("GET", "/v2/a/b", 404, "UNSUPPORTED"),
    ];
    for (method, path, status, want) in cases {
        let resp = get(&reg, method, path);
        assert_eq!(raw_status(&resp), *status, "{method} {path}: {resp}");
        assert_eq!(code(&resp), *want, "{method} {path}: {resp}");
    }
    // Nothing was created: no repository, no upload, no stray file.
    let mut files = Vec::new();
    tree(reg.root(), &mut files);
    let root = reg.root().display().to_string();
    let expected: Vec<String> =
        [".lock", "blobs", "repositories", "uploads"].iter().map(|d| format!("{root}/{d}")).collect();
    files.sort();
    assert_eq!(files, expected);
    // Still serving.
    assert_eq!(raw_status(&get(&reg, "GET", "/v2/")), 200);
}

#[test]
fn garbage_requests_get_http_errors_not_crashes() {
    let reg = Server::registry();
    for req in [
        &b"NOT-HTTP\r\n\r\n"[..],
        b"GET /v2/ HTTP/9.9\r\n\r\n",
        b"GET /v2/\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let resp = raw(reg.addr(), req);
        let status = raw_status(&resp);
        assert!(
            resp.is_empty() || (400..500).contains(&status),
            "{:?} -> {resp:?}",
            String::from_utf8_lossy(req)
        );
    }
    let huge_header = format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1_000_000));
    let resp = raw(reg.addr(), huge_header.as_bytes());
    assert!(resp.is_empty() || raw_status(&resp) == 431 || raw_status(&resp) == 400, "{resp:.200}");
    assert_eq!(raw_status(&get(&reg, "GET", "/v2/")), 200);
}
