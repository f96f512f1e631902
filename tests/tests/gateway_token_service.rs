//! ocigate as its own token realm: skopeo and oci-client through the Bearer flow, the GET and POST (OAuth2)
//! endpoints with every grammar and error case, refresh tokens, challenges naming exactly the scope a request
//! needs, signing-key rotation, and the `token keygen` / `token mint` commands.

use std::process::Command;

use integration_tests::bin::ocigate;
use integration_tests::content::{self, Image};
use integration_tests::gateway::{Gateway, base64, htpasswd_line};
use integration_tests::{layout, tools};
use serde_json::{Value, json};

const POLICY: &str = r#"
grants:
  - id: team-a
    users: [alice]
    repositories: ["team-a/**"]
    actions: [pull, push, delete]
  - id: bob-reads
    users: [bob]
    repositories: ["team-a/**"]
    actions: [pull]
  - id: library
    anonymous: true
    repositories: ["library/**"]
    actions: [pull]
  - id: catalog
    users: [alice]
    actions: [catalog]
  - id: publish
    users: [alice]
    repositories: ["library/**"]
    actions: [pull, push]
"#;

struct Setup {
    tmp: tempfile::TempDir,
    g: Gateway,
}

fn keygen(path: &std::path::Path, alg: &str) {
    let out = Command::new(ocigate())
        .args(["token", "keygen", "--algorithm", alg, "-o"])
        .arg(path)
        .output()
        .expect("run keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn config(keys: &str) -> String {
    format!(
        r#"
listen:
  - addr: 127.0.0.1:0
upstream:
  bundled:
    root: data
auth:
  anonymous: true
  htpasswd: htpasswd
  trusted_proxies: [127.0.0.1/32]
  token_service:
    service: registry.test
    keys: {keys}
policy:
  paths: [policy.yaml]
"#
    )
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("htpasswd"),
        format!("{}\n{}\n", htpasswd_line("alice", "alice-pw"), htpasswd_line("bob", "bob-pw")),
    )
    .unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    keygen(&dir.join("signing.pem"), "ES256");
    let g = Gateway::start(dir, &config("[signing.pem]"));
    Setup { tmp, g }
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token).expect("a JWT")
}

fn access(token: &str) -> Value {
    claims(token)["access"].clone()
}

/// GET the token endpoint as `user` (or anonymously) with these query parameters.
async fn get_token(g: &Gateway, user: Option<(&str, &str)>, query: &str) -> integration_tests::http::Resp {
    let c = match user {
        Some((u, p)) => g.client().basic(u, p),
        None => g.client(),
    };
    c.get(&format!("/token?{query}")).await
}

async fn post_form(g: &Gateway, form: &str) -> integration_tests::http::Resp {
    g.client()
        .request(hyper::Method::POST, "/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
}

fn challenge(r: &integration_tests::http::Resp) -> String {
    let all: Vec<&str> = r.headers.get_all("www-authenticate").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(all.len(), 1, "one challenge: {all:?}");
    all[0].to_owned()
}

#[tokio::test]
async fn get_grants_what_the_policy_allows_and_leaves_the_rest_out() {
    let s = setup();
    let q = "service=registry.test&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush&scope=repository:other/x:pull+registry:catalog:*&scope=repository:localhost:5000/team-a/app:pull&client_id=test";
    let r = get_token(&s.g, Some(("alice", "alice-pw")), q).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert!(body.get("refresh_token").is_none(), "no refresh token unless offline_token=true");
    assert_eq!(
        access(token),
        json!([
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]}
        ])
    );
    let c = claims(token);
    assert_eq!(
        (c["iss"].as_str(), c["sub"].as_str(), c["aud"].as_str()),
        (Some("registry.test"), Some("alice"), Some("registry.test"))
    );
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks = s.g.client().get("/token/jwks").await.json();
    assert_eq!(
        jwks["keys"][0]["kid"].as_str(),
        header.kid.as_deref(),
        "kid is the key's RFC 7638 thumbprint"
    );

    // The token opens what it grants, and the policy still has the last word.
    let a = s.g.client().bearer(token);
    assert_eq!(a.get("/v2/team-a/app/tags/list").await.status, 404);
    assert_eq!(a.post("/v2/team-a/app/blobs/uploads/").await.status, 202);
    assert_eq!(a.get("/v2/_catalog").await.status, 200);
    let d = s.g.wait_decision(|d| d["route"] == "token" && d["principal"] == "alice");
    assert_eq!(d["decision"], "issued");
    assert_eq!(d["reason"], "repository:team-a/app:pull,push registry:catalog:*");

    // Anonymous: library pulls only; no refresh token even when asked.
    let r = get_token(&s.g, None, "service=registry.test&scope=repository:library/x:pull,push&scope=repository:team-a/app:pull&offline_token=true").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        access(body["token"].as_str().unwrap()),
        json!([{"type": "repository", "name": "library/x", "actions": ["pull"]}])
    );
    assert_eq!(claims(body["token"].as_str().unwrap())["sub"], "");
    assert!(body.get("refresh_token").is_none());
    // `Basic Og==` is anonymous too.
    let r =
        s.g.client()
            .with_header("authorization", "Basic Og==")
            .get("/token?scope=repository:library/x:pull")
            .await;
    assert_eq!(r.status, 200);
    // Nothing granted is still a token, with an empty access list.
    let r = get_token(&s.g, Some(("bob", "bob-pw")), "scope=repository:secret/x:pull,push,delete").await;
    assert_eq!(r.status, 200);
    assert_eq!(access(r.json()["token"].as_str().unwrap()), json!([]));
    // `*` asks every action; bob gets what he has.
    let r = get_token(
        &s.g,
        Some(("bob", "bob-pw")),
        "scope=repository:team-a/app:*&scope=repository(plugin):team-a/p:pull",
    )
    .await;
    assert_eq!(
        access(r.json()["token"].as_str().unwrap()),
        json!([
            {"type": "repository", "name": "team-a/app", "actions": ["pull"]},
            {"type": "repository", "class": "plugin", "name": "team-a/p", "actions": ["pull"]}
        ])
    );
}

#[tokio::test]
async fn get_refusals_are_clear() {
    let s = setup();
    type Case<'a> = (Option<(&'a str, &'a str)>, &'a str, u16, &'a str);
    let cases: [Case; 5] = [
        (Some(("alice", "wrong")), "scope=repository:team-a/app:pull", 401, "invalid user name or password"),
        (Some(("nobody", "x")), "", 401, "invalid user name or password"),
        (
            Some(("alice", "alice-pw")),
            "account=bob&scope=repository:team-a/app:pull",
            403,
            "the account parameter names another user than the credentials",
        ),
        (
            Some(("alice", "alice-pw")),
            "service=elsewhere",
            400,
            "unknown service \"elsewhere\": this token service is for \"registry.test\"",
        ),
        (None, "scope=repository:team-a", 400, "scope \"repository:team-a\": expected type:name:actions"),
    ];
    for (user, q, status, message) in cases {
        let r = get_token(&s.g, user, q).await;
        assert_eq!(r.status, status, "{q}: {}", r.text());
        assert_eq!(r.json()["errors"][0]["message"], message, "{q}");
        assert_eq!(r.json()["error_description"], message, "{q}");
        if status == 401 {
            assert_eq!(challenge(&r), "Basic realm=\"ocigate\",charset=\"UTF-8\"");
        }
    }
    let many: String = (0..65).map(|i| format!("&scope=repository:r{i}:pull")).collect();
    let r = get_token(&s.g, None, &many).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_description"], "65 scopes asked for; at most 64 per request");
    for bad in ["Repository:a:pull", "repository::pull", "repository:a:PULL", "repository(x:a:pull"] {
        let r = get_token(&s.g, None, &format!("scope={bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "invalid_scope");
    }
    let r = s.g.client().with_header("authorization", "Bearer abc").get("/token").await;
    assert_eq!(r.status, 401);
    let r = s.g.client().request(hyper::Method::PUT, "/token").send().await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    // The account matching the user is fine (what docker login sends), as is offline_token.
    let r = get_token(
        &s.g,
        Some(("alice", "alice-pw")),
        "account=alice&client_id=docker&offline_token=true&service=registry.test",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["refresh_token"].is_string());
    let d = s.g.wait_decision(|d| d["route"] == "token" && d["status"] == 403);
    assert_eq!((d["decision"].as_str(), d["reason"].as_str()), (Some("deny"), Some("account mismatch")));
    assert!(
        !s.g.log().contains("alice-pw")
            && !format!("{:?}", s.g.decisions()).contains(&base64("alice:alice-pw"))
    );
}

#[tokio::test]
async fn post_password_and_refresh_grants() {
    let s = setup();
    let r = post_form(&s.g, "grant_type=password&username=bob&password=bob-pw&client_id=containerd&service=registry.test&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush+repository%3Aother%3Apull&access_type=offline").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["scope"], "repository:team-a/app:pull");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["token_type"], "Bearer");
    // Some clients repeat `scope` instead of joining the scopes with spaces.
    let r = post_form(&s.g, "grant_type=password&username=bob&password=bob-pw&client_id=x&scope=repository:team-a/a:pull&scope=repository:team-a/b:pull").await;
    assert_eq!(r.json()["scope"], "repository:team-a/a:pull repository:team-a/b:pull");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(s.g.client().bearer(&access_token).get("/v2/team-a/app/tags/list").await.status, 404);

    // A refresh token is not an access token.
    let r = s.g.client().bearer(&refresh).get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""));

    // The refresh grant gives a new access token (and a new refresh token).
    let r = post_form(&s.g, &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=containerd&service=registry.test&scope=repository:team-a/app:pull")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], "bob");
    assert!(body["refresh_token"].is_string());

    for (form, status, error) in [
        ("grant_type=password&username=bob&password=bob-pw", 400, "invalid_request"),
        ("client_id=x&username=bob&password=bob-pw", 400, "invalid_request"),
        ("grant_type=client_credentials&client_id=x", 400, "unsupported_grant_type"),
        ("grant_type=password&client_id=x&username=bob", 400, "invalid_request"),
        ("grant_type=password&client_id=x&username=bob&password=nope", 401, "invalid_grant"),
        ("grant_type=refresh_token&client_id=x&refresh_token=abc.def.ghi", 401, "invalid_grant"),
        ("grant_type=password&client_id=x&username=bob&password=bob-pw&scope=nonsense", 400, "invalid_scope"),
        (
            "grant_type=password&client_id=x&username=bob&password=bob-pw&service=other",
            400,
            "invalid_request",
        ),
    ] {
        let r = post_form(&s.g, form).await;
        assert_eq!(r.status, status, "{form}: {}", r.text());
        assert_eq!(r.json()["error"], error, "{form}");
        assert!(r.json()["errors"][0]["code"].is_string(), "{form}");
        if status == 401 {
            assert!(challenge(&r).starts_with("Basic realm="), "{form}");
        }
    }
    // An access token is not a refresh token.
    let r =
        post_form(&s.g, &format!("grant_type=refresh_token&client_id=x&refresh_token={access_token}")).await;
    assert_eq!(r.status, 401, "{}", r.text());

    // A new password ends the user's refresh tokens, and so does removing the user.
    let form = format!("grant_type=refresh_token&refresh_token={refresh}&client_id=containerd");
    let htpasswd = s.tmp.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{}\n{}\n", htpasswd_line("alice", "alice-pw"), htpasswd_line("bob", "new-pw")),
    )
    .unwrap();
    refused_with(&s.g, &form, "password of \"bob\" changed").await;
    std::fs::write(&htpasswd, htpasswd_line("alice", "alice-pw") + "\n").unwrap();
    refused_with(&s.g, &form, "no longer exists").await;
}

/// Waits (bounded) until the refresh grant `form` is refused for `why`.
async fn refused_with(g: &Gateway, form: &str, why: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = post_form(g, form).await;
        if r.status == 401 && r.json()["error_description"].as_str().unwrap().contains(why) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "wanted a refusal for {why:?}; got {}", r.text());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn challenges_name_exactly_the_scope_needed() {
    let s = setup();
    let host = s.g.host();
    let realm = format!("Bearer realm=\"http://{host}/token\",service=\"registry.test\"");
    let anon = s.g.client();
    let r = anon.get("/v2/").await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge(&r), realm, "the ping names no scope");
    let r = anon.get("/v2/team-a/app/manifests/v1").await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge(&r), format!("{realm},scope=\"repository:team-a/app:pull\""));
    let r = anon.get("/v2/_catalog").await;
    assert_eq!(challenge(&r), format!("{realm},scope=\"registry:catalog:*\""));
    let r = anon.delete("/v2/team-a/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000").await;
    assert_eq!(challenge(&r), format!("{realm},scope=\"repository:team-a/app:delete\""));

    // A token that is valid but too narrow: 401 insufficient_scope, naming both scopes of a mount.
    let t = get_token(&s.g, Some(("alice", "alice-pw")), "scope=repository:team-a/app:pull").await.json();
    let narrow = s.g.client().bearer(t["token"].as_str().unwrap());
    let r = narrow.post("/v2/team-a/app/blobs/uploads/").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        challenge(&r),
        format!("{realm},scope=\"repository:team-a/app:pull,push\",error=\"insufficient_scope\"")
    );
    let r = narrow
        .post(&format!("/v2/team-a/app/blobs/uploads/?mount={}&from=team-a/base", content::sha256(b"x")))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        format!(
            "{realm},scope=\"repository:team-a/app:pull,push repository:team-a/base:pull\",error=\"insufficient_scope\""
        )
    );
    // ...but what the policy denies is a plain 403, whatever the token.
    let r = narrow.get("/v2/other/x/tags/list").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "DENIED");
    // A bad token: invalid_token.
    let r = s.g.client().bearer("abc.def.ghi").get("/v2/team-a/app/tags/list").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        format!("{realm},scope=\"repository:team-a/app:pull\",error=\"invalid_token\"")
    );
    // Behind a trusted proxy that ended TLS, the realm is the address the client used.
    let r = anon
        .with_header("x-forwarded-proto", "https")
        .with_header("x-forwarded-host", "registry.example.com")
        .get("/v2/")
        .await;
    assert_eq!(
        challenge(&r),
        "Bearer realm=\"https://registry.example.com/token\",service=\"registry.test\""
    );
    // Basic directly on /v2/ still works beside the token service.
    assert_eq!(s.g.client().basic("alice", "alice-pw").get("/v2/team-a/app/tags/list").await.status, 404);
}

#[tokio::test]
async fn skopeo_logs_in_and_copies_through_the_token_service() {
    if !tools::available("skopeo") {
        return;
    }
    let s = setup();
    let dir = s.tmp.path();
    let auth = dir.join("auth.json");
    let skopeo = |args: &[&str]| {
        let out =
            Command::new("skopeo").args(args).env("REGISTRY_AUTH_FILE", &auth).output().expect("skopeo");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), out.stdout)
    };
    let host = s.g.host();
    let mut login = Command::new("skopeo")
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .args(["-u", "alice", "--password-stdin", &host])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        login.stdin.take().unwrap().write_all(b"alice-pw\n").unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success(), "login: {}", String::from_utf8_lossy(&out.stderr));

    let img = Image::new(901, 2, 100_000, "amd64");
    let src = dir.join("src");
    layout::write(&src, &[&img.config, &img.layers[0], &img.layers[1]], &[("v1", &img.manifest)]);
    let src_ref = format!("oci:{}:v1", src.display());
    let to = format!("docker://{host}/team-a/app:v1");
    let (ok, err, _) =
        skopeo(&["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", &src_ref, &to]);
    assert!(ok, "push: {err}");
    let back = dir.join("back");
    let (ok, err, _) =
        skopeo(&["copy", "--quiet", "--src-tls-verify=false", &to, &format!("oci:{}:v1", back.display())]);
    assert!(ok, "pull: {err}");
    assert_eq!(layout::digest_of(&back, "v1").as_deref(), Some(img.manifest.digest.as_str()));
    let issued = s
        .g
        .wait_decision(|d| d["route"] == "token" && d["reason"].as_str().is_some_and(|r| r.contains("push")));
    assert_eq!(issued["principal"], "alice");
    let pushed = s.g.wait_decision(|d| d["route"] == "manifest" && d["status"] == 201);
    assert_eq!(pushed["auth"], "bearer", "the push went with a token, not Basic");

    // Anonymous (no auth file): library/** through an anonymous token; team-a refused.
    let (ok, err, _) = skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        &src_ref,
        &format!("docker://{host}/library/app:v1"),
    ]);
    assert!(ok, "{err}");
    std::fs::remove_file(&auth).unwrap();
    let (ok, err, raw) =
        skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/library/app:v1")]);
    assert!(ok, "anonymous pull: {err}");
    assert_eq!(content::sha256(&raw), img.manifest.digest);
    let (ok, err, _) =
        skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/team-a/app:v1")]);
    assert!(!ok);
    assert!(err.to_lowercase().contains("unauthorized") || err.contains("401"), "{err}");
    // bob may pull team-a but not push.
    let (ok, err, _) = skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:bob-pw",
        &src_ref,
        &format!("docker://{host}/team-a/bobs:v1"),
    ]);
    assert!(!ok, "bob pushed");
    assert!(
        err.contains("denied") || err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
}

#[tokio::test]
async fn the_rust_oci_client_works_through_the_token_service() {
    use integration_tests::ociclient::{PushParts, http_client, push_parts};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;
    let s = setup();
    let img = Image::new(902, 1, 50_000, "amd64");
    let c = http_client();
    let reference: oci_client::Reference = format!("{}/team-a/rust:v1", s.g.host()).parse().unwrap();
    let PushParts { layers, config, manifest } = push_parts(&img);
    let alice = RegistryAuth::Basic("alice".into(), "alice-pw".into());
    c.push(&reference, &layers, config, &alice, Some(manifest)).await.expect("push as alice");
    let fresh = http_client();
    let pulled =
        fresh.pull(&reference, &alice, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.expect("pull as alice");
    assert_eq!(pulled.layers[0].data, img.layers[0].data);
    s.g.wait_decision(|d| d["route"] == "token" && d["principal"] == "alice");
    let bob = RegistryAuth::Basic("bob".into(), "bob-pw".into());
    let other = http_client();
    assert!(other.pull(&reference, &bob, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.is_ok(), "bob may pull");
    let other = http_client();
    assert!(
        other.pull(&reference, &RegistryAuth::Anonymous, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]).await.is_err()
    );
}

#[tokio::test]
async fn signing_keys_rotate_and_the_cli_mints_and_writes_keys() {
    let s = setup();
    let dir = s.tmp.path();
    // keygen refuses to overwrite and writes 0600.
    let out = Command::new(ocigate())
        .args(["token", "keygen", "-o"])
        .arg(dir.join("signing.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dir.join("signing.pem")).unwrap().permissions().mode() & 0o777, 0o600);
    let out = Command::new(ocigate()).args(["token", "keygen", "--algorithm", "HS256"]).output().unwrap();
    assert!(!out.status.success());

    let mint = |config: &str, args: &[&str]| {
        let out = Command::new(ocigate())
            .args(["token", "mint", "--config"])
            .arg(dir.join(config))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // Minting asks the policy unless --exact.
    let t = mint("config.yaml", &["--subject", "bob", "--scope", "repository:team-a/app:pull,push"]);
    assert_eq!(access(&t), json!([{"type": "repository", "name": "team-a/app", "actions": ["pull"]}]));
    let exact =
        mint("config.yaml", &["--subject", "bob", "--scope", "repository:team-a/app:pull,push", "--exact"]);
    assert_eq!(access(&exact)[0]["actions"], json!(["pull", "push"]));
    assert_eq!(s.g.client().bearer(&t).get("/v2/team-a/app/tags/list").await.status, 404);

    // Rotation: a new key signs, the old one still verifies what it signed; dropping it revokes them.
    keygen(&dir.join("next.pem"), "EdDSA");
    std::fs::write(dir.join("old-first.yaml"), config("[signing.pem]")).unwrap();
    let old = mint("old-first.yaml", &["--subject", "alice", "--scope", "repository:team-a/app:pull"]);
    drop(s.g);
    let rotated = tempfile::tempdir().unwrap();
    for f in ["htpasswd", "policy.yaml", "signing.pem", "next.pem"] {
        std::fs::copy(dir.join(f), rotated.path().join(f)).unwrap();
    }
    let g = Gateway::start(rotated.path(), &config("[next.pem, signing.pem]"));
    assert_eq!(
        g.client().bearer(&old).get("/v2/team-a/app/tags/list").await.status,
        404,
        "the old key still verifies"
    );
    let r = get_token(&g, Some(("alice", "alice-pw")), "scope=repository:team-a/app:pull").await;
    let new = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA,
        "the first key signs"
    );
    assert_eq!(g.client().get("/token/jwks").await.json()["keys"].as_array().unwrap().len(), 2);
    drop(g);
    let g = Gateway::start(rotated.path(), &config("[next.pem]"));
    assert_eq!(
        g.client().bearer(&old).get("/v2/team-a/app/tags/list").await.status,
        401,
        "a removed key revokes"
    );
    assert_eq!(g.client().bearer(&new).get("/v2/team-a/app/tags/list").await.status, 404);
}

#[test]
fn token_service_config_errors_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    std::fs::write(dir.join("htpasswd"), htpasswd_line("alice", "alice-pw") + "\n").unwrap();
    std::fs::write(dir.join("pub.pem"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        .unwrap();
    let cfg = r#"
listen: [{addr: "127.0.0.1:0"}]
upstream: {bundled: {root: data}}
auth:
  htpasswd: htpasswd
  token_service:
    path: /v2/token
    realm: registry.example.com/token
    lifetime: 10s
    keys: [pub.pem]
policy: {paths: [policy.yaml]}
"#;
    std::fs::write(dir.join("c.yaml"), cfg).unwrap();
    let out = Command::new(ocigate()).arg("check-config").arg(dir.join("c.yaml")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "auth.token_service.path: \"/v2/token\" must be a path like /token, outside /v2/",
        "auth.token_service.realm: \"registry.example.com/token\" must be an absolute http(s) URL",
        "auth.token_service.lifetime: give 60s to 24h",
        "auth.token_service.keys: ",
        "pub.pem: the first key signs, so it must be a private key",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
