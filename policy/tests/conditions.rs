//! CEL conditions: every variable and helper, load-time checks, run-time errors.

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::{Action, AuthMethod, Cert, Principal, Reason, Request, Source, Tls};

fn policy_with(when: &str) -> Result<policy::Policy, policy::PolicyErrors> {
    let text = format!(
        "grants:\n  - id: cond\n    authenticated: true\n    anonymous: true\n    repositories: [\"**\"]\n    actions: [\"*\"]\n    when: {}\n",
        serde_json::to_string(when).unwrap()
    );
    policy::compile(&[Source { name: "cond.yaml", text: &text }])
}

fn alice() -> Principal {
    let claims = serde_json::json!({
        "env": "ci", "level": 3, "ratio": 0.5, "flag": true, "teams": ["a", "b"],
        "kubernetes.io": { "namespace": "build" }, "https://example.com/groups": ["x"]
    });
    let serde_json::Value::Object(claims) = claims else { unreachable!() };
    Principal::new("alice", vec!["dev".into(), "team-a".into()], AuthMethod::Bearer).with_claims(claims)
}

fn request() -> Request<'static> {
    let mut r = Request::new(Action::Push, "team-a/api").with_reference("v1.2");
    r.method = "PUT";
    r.path = "/v2/team-a/api/manifests/v1.2";
    r.mount_from = Some("team-b/base");
    r.time = policy::testing::parse_time("2026-03-04T10:20:30Z").unwrap();
    r.client.ip = Some("10.1.2.3".parse().unwrap());
    r.client.peer_ip = Some("192.168.0.9".parse().unwrap());
    r.client.forwarded_for = Some("10.1.2.3, 172.16.0.1");
    static SANS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let sans = SANS.get_or_init(|| vec!["ci.example.com".into(), "spiffe://example/ci".into()]);
    r.client.tls = Some(Tls {
        version: "TLSv1.3",
        cert: Some(Cert { subject: "CN=ci,O=example", sans, fingerprint: "ab12" }),
    });
    r
}

fn eval(when: &str) -> policy::Decision {
    let p = policy_with(when).unwrap_or_else(|e| panic!("{when}: {e}"));
    p.decide(&alice(), &request())
}

#[test]
fn every_variable_is_visible() {
    for when in [
        r#"request.action == "push""#,
        r#"request.method == "PUT""#,
        r#"request.path == "/v2/team-a/api/manifests/v1.2""#,
        r#"request.repository == "team-a/api""#,
        r#"request.reference == "v1.2""#,
        r#"request.tag == "v1.2""#,
        r#"request.digest == """#,
        r#"request.mount_from == "team-b/base""#,
        r#"request.time == timestamp("2026-03-04T10:20:30Z")"#,
        r#"request.time.getHours() == 10"#,
        r#"client.ip == "10.1.2.3""#,
        r#"client.peer_ip == "192.168.0.9""#,
        r#"client.forwarded_for == ["10.1.2.3", "172.16.0.1"]"#,
        r#"client.tls.version == "TLSv1.3""#,
        r#"client.tls.cert.subject == "CN=ci,O=example""#,
        r#""spiffe://example/ci" in client.tls.cert.sans"#,
        r#"client.tls.cert.fingerprint == "ab12""#,
        r#"principal.name == "alice""#,
        r#""team-a" in principal.groups"#,
        r#"principal.method == "bearer""#,
        r#"principal.claims.env == "ci""#,
        r#"principal.claims.level >= 3 && principal.claims.ratio < 1.0 && principal.claims.flag"#,
        r#"principal.claims["kubernetes.io"].namespace == "build""#,
        r#""x" in principal.claims["https://example.com/groups"]"#,
        r#"has(principal.claims.env) && !has(principal.claims.nope)"#,
        r#"principal.groups.exists(g, g.startsWith("team-"))"#,
        r#"principal.claims.teams.all(t, size(t) == 1)"#,
        r#"size(principal.groups) == 2 && principal.claims.teams.map(t, t + "!") == ["a!", "b!"]"#,
        r#"request.repository.matches("^team-[a-z]/") && request.tag.endsWith(".2") && request.path.contains("manifests")"#,
        r#"type(request.tag) == string && type(principal.claims.level) == int"#,
        r#"principal.claims["env"] == "ci" && principal.claims[?"nope"].orValue("x") == "x""#,
        r#"request["tag"] == "v1.2""#,
    ] {
        let d = eval(when);
        assert!(d.allowed, "{when}: {d}");
    }
}

#[test]
fn helpers() {
    for (when, allowed) in [
        (r#"ip_in(client.ip, "10.0.0.0/8")"#, true),
        (r#"ip_in(client.ip, "10.1.2.3")"#, true),
        (r#"ip_in(client.ip, "11.0.0.0/8")"#, false),
        (r#"ip_in(client.peer_ip, "192.168.0.0/16")"#, true),
        (r#"ip_in("::ffff:10.0.0.1", "10.0.0.0/8")"#, true),
        (r#"ip_in("fd00::1", "fd00::/8")"#, true),
        (r#"ip_in("fd00::1", "10.0.0.0/8")"#, false),
        (r#"ip_in("10.0.0.1", "0.0.0.0/0")"#, true),
        (r#"glob("team-*/**", request.repository)"#, true),
        (r#"glob("team-*", request.repository)"#, false),
        (r#"glob("v[0-9]*", request.tag)"#, true),
    ] {
        assert_eq!(eval(when).allowed, allowed, "{when}");
    }
}

#[test]
fn evaluation_errors_deny_with_condition_error() {
    for when in [
        r#"ip_in(client.ip, principal.claims.env)"#,
        r#"ip_in("nonsense", "10.0.0.0/8")"#,
        r#"glob(principal.claims.env + "/[", request.repository)"#,
        r#"request.repository.matches(principal.claims.env + "(")"#,
        r#"principal.claims.missing == "x""#,
        r#"principal.claims.env + 1 == 2"#,
        r#"1 / 0 == 1"#,
        r#"request.tag"#,
        r#"principal.claims.level"#,
    ] {
        let d = eval(when);
        assert!(!d.allowed, "{when}");
        assert_eq!(d.reason, Reason::ConditionError, "{when}: {d}");
        assert_eq!(d.rule.as_deref(), Some("cond"));
        assert!(d.error.as_deref().is_some_and(|e| !e.is_empty()), "{when}: an explanation for the log");
    }
}

#[test]
fn false_conditions_say_so() {
    let d = eval(r#"principal.claims.env == "prod""#);
    assert_eq!((d.allowed, d.reason), (false, Reason::ConditionFalse));
}

#[test]
fn load_time_errors_name_the_problem_and_position() {
    for (when, needle) in [
        (r#"requets.tag == """#, "unknown variable `requets`"),
        (r#"request.tagg == """#, "unknown field `request.tagg`"),
        (r#"client.tls.cert.subjct == """#, "unknown field `client.tls.cert.subjct`"),
        (r#"request.tag.x == """#, "`request.tag` has no field `x`"),
        (r#"ip_inn(client.ip, "10.0.0.0/8")"#, "unknown function `ip_inn`"),
        (r#"request.tag =="#, "Syntax error"),
        (r#"principal.groups.exists(g, principal.groups.exists(h, h == g))"#, "nested comprehensions"),
        (r#"request.?tagg.orValue("") == "latest""#, "unknown field `request.tagg`"),
        (r#"request["tagg"] == "latest""#, "unknown field `request.tagg`"),
        (r#"request[?principal.name].orValue("") == """#, "optional field access needs a literal field name"),
        (r#"_foo(principal.name)"#, "unknown function `_foo`"),
        (r#"request.tag.split(".").size() == 2"#, "unknown function `split`"),
        (r#"glob("a/[", request.repository)"#, "bad glob \"a/[\""),
        (r#"ip_in(client.ip, "not-a-cidr")"#, "not a CIDR"),
        (r#"request.tag.matches("(")"#, "bad regular expression"),
        (r#"matches(request.tag, "[")"#, "bad regular expression"),
    ] {
        let e = policy_with(when).err().unwrap_or_else(|| panic!("{when} compiled"));
        let text = e.to_string();
        assert!(text.contains(needle), "{when}: {text}");
        assert!(text.starts_with("cond.yaml:7:"), "file and line of the `when`: {text}");
        assert!(text.contains("rule cond"), "{text}");
        assert!(text.contains("of the expression"), "{text}");
    }
}

#[test]
fn expensive_expressions_are_refused() {
    let long = format!("{} == 1", "1 + ".repeat(2000));
    assert!(policy_with(&long).unwrap_err().to_string().contains("longer than"));
    let body = (0..120).map(|i| format!("g == \"{i}\"")).collect::<Vec<_>>().join(" || ");
    let costly = format!("principal.groups.exists(g, {body})");
    assert!(policy_with(&costly).unwrap_err().to_string().contains("too expensive"), "{costly}");
}

#[test]
fn comprehension_variables_do_not_leak() {
    assert!(
        policy_with(r#"principal.groups.exists(g, g == "x") && g == "y""#)
            .unwrap_err()
            .to_string()
            .contains("unknown variable `g`")
    );
}

#[test]
fn cost_bounds() {
    // Deep nesting (evaluation recurses per level).
    let deep = format!("{}1{} == 1", "(".repeat(80), ")".repeat(80));
    assert!(policy_with(&deep).unwrap_err().to_string().contains("nests brackets 80 deep"));
    let calls = format!("{}1{} > 0", "size([".repeat(30), "])".repeat(30));
    assert!(policy_with(&calls).is_err());
    // Brackets inside strings do not count.
    assert!(policy_with(&format!("request.tag != \"{}\"", "(".repeat(40))).is_ok());
    let long_sum = format!("{}1 > 0", "1 + ".repeat(100));
    assert!(policy_with(&long_sum).unwrap_err().to_string().contains("nested more than 64 levels"));
    // A membership test inside a loop is quadratic: refused.
    let quadratic = "client.forwarded_for.all(h, h in client.forwarded_for)";
    assert!(policy_with(quadratic).unwrap_err().to_string().contains("too expensive"), "{quadratic}");
    // One loop, or one membership test, is fine.
    assert!(policy_with(r#""x" in client.forwarded_for"#).is_ok());
    assert!(policy_with(r#"client.forwarded_for.exists(h, h == "x")"#).is_ok());
}

#[test]
fn client_lists_are_capped() {
    let p = policy_with("size(client.forwarded_for) == 64").unwrap();
    let header: String = (0..10_000).map(|i| format!("10.0.{}.{}, ", i / 256 % 256, i % 256)).collect();
    let mut r = request();
    r.client.forwarded_for = Some(&header);
    assert!(p.decide(&alice(), &r).allowed);
}

#[test]
fn times_chrono_cannot_hold_do_not_panic() {
    let p = policy_with("request.time.getFullYear() > 2000").unwrap();
    let mut r = request();
    r.time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1 << 62);
    let d = p.decide(&alice(), &r);
    assert_eq!(d.reason, Reason::ConditionError, "{d}");
    let _ = p.grantable(&alice(), "x", policy::ActionSet::ALL, r.time);
}

#[test]
fn anonymous_callers_have_no_groups_or_claims() {
    let p =
        policy_with("size(principal.groups) == 0 && size(principal.claims) == 0 && principal.name == \"\"")
            .unwrap();
    let mut claims = serde_json::Map::new();
    claims.insert("admin".into(), true.into());
    let sneaky = Principal::new("", vec!["admin".into()], AuthMethod::Mtls).with_claims(claims);
    assert!(sneaky.is_anonymous() && sneaky.groups().is_empty() && sneaky.claims().is_empty());
    assert!(p.decide(&sneaky, &request()).allowed);
}
