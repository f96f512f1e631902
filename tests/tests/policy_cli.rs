//! `ocigate policy check | eval | test`, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration_tests::bin;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn ocigate(args: &[&str]) -> Output {
    Command::new(bin::ocigate()).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn check_accepts_the_examples_and_reports_every_error() {
    let ex = examples();
    let o = ocigate(&[
        "policy",
        "check",
        ex.join("policy").to_str().unwrap(),
        ex.join("zot/accesscontrol.yaml").to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.starts_with("ok: 8 rules in 2 files"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "grants:\n  - id: one\n    authenticated: true\n    repositories: [\"a/[\"]\n    actions: [pull]\n  - id: two\n    users: [u]\n    repositories: [\"**\"]\n    actions: [pull]\n    when: 'request.tagg == \"x\"'\n",
    )
    .unwrap();
    let o = ocigate(&["policy", "check", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    let b = bad.display().to_string();
    assert!(err.contains(&format!("{b}:2:5: rule one: bad repository glob")), "{err}");
    assert!(err.contains(&format!("{b}:10:11: rule two: condition, at line 1 column 1 of the expression: unknown field `request.tagg`")), "{err}");
    assert!(err.contains("2 errors"), "{err}");

    let o = ocigate(&["policy", "check", "/nonexistent/policy.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("/nonexistent/policy.yaml"));
}

#[test]
fn eval_prints_the_decision_and_exits_by_it() {
    let policy = examples().join("policy");
    let p = policy.to_str().unwrap();
    let o = ocigate(&[
        "policy",
        "eval",
        "--policy",
        p,
        "--user",
        "pipeline",
        "--group",
        "ci",
        "--method",
        "bearer",
        "--claims",
        r#"{"env":"ci"}"#,
        "--client-ip",
        "10.20.1.1",
        "--action",
        "push",
        "--repository",
        "team-a/api",
        "--reference",
        "v1.0.0",
        "--json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"], "ci-release");
    assert_eq!(v["reason"], "granted");

    let o = ocigate(&[
        "policy",
        "eval",
        "--policy",
        p,
        "--user",
        "pipeline",
        "--group",
        "ci",
        "--method",
        "bearer",
        "--claims",
        r#"{"env":"ci"}"#,
        "--client-ip",
        "192.0.2.1",
        "--action",
        "push",
        "--repository",
        "team-a/api",
        "--reference",
        "v1.0.0",
    ]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        out.trim(),
        r#"deny rule=ci-release reason=condition_false message="releases are pushed by CI from the build network""#
    );

    let o = ocigate(&[
        "policy",
        "eval",
        "--policy",
        p,
        "--anonymous",
        "--action",
        "pull",
        "--repository",
        "library/alpine",
    ]);
    assert_eq!(
        (o.status.code(), text(&o).0.trim().to_owned()),
        (Some(0), "allow rule=public-read reason=granted".into())
    );
    let o = ocigate(&["policy", "eval", "--policy", p, "--user", "bob", "--action", "catalog", "--json"]);
    assert_eq!(o.status.code(), Some(0));

    // Usage and policy errors: 2.
    for args in [
        vec!["policy", "eval", "--policy", p, "--action", "pull"],
        vec!["policy", "eval", "--policy", p, "--action", "fly", "--repository", "x"],
        vec!["policy", "eval", "--policy", p, "--action", "pull", "--repository", "x", "--claims", "[1]"],
        vec![
            "policy",
            "eval",
            "--policy",
            p,
            "--user",
            "a",
            "--anonymous",
            "--action",
            "pull",
            "--repository",
            "x",
        ],
        vec!["policy", "eval", "--policy", "/nonexistent.yaml", "--action", "pull", "--repository", "x"],
        vec!["policy", "eval", "--action", "pull", "--repository", "x"],
    ] {
        let o = ocigate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {:?}", text(&o));
    }
}

#[test]
fn test_runs_tables_and_reports_each_case() {
    let ex = examples();
    let o = ocigate(&[
        "policy",
        "test",
        ex.join("policy-tests.yaml").to_str().unwrap(),
        ex.join("zot/tests.yaml").to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.lines().filter(|l| l.starts_with("PASS ")).count() >= 20, "{out}");
    assert!(out.trim_end().ends_with("23 passed, 0 failed"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(ex.join("policy/policy.yaml"), tmp.path().join("policy.yaml")).unwrap();
    std::fs::write(
        tmp.path().join("t.yaml"),
        "policy: policy.yaml\ncases:\n  - name: right\n    principal: { anonymous: true }\n    request: { action: pull, repository: library/x }\n    expect: { decision: allow }\n  - name: wrong\n    principal: { anonymous: true }\n    request: { action: push, repository: library/x }\n    expect: { decision: allow, rule: public-read }\n",
    )
    .unwrap();
    let o = ocigate(&["policy", "test", tmp.path().join("t.yaml").to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("PASS") && out.contains(": right"), "{out}");
    assert!(
        out.contains("FAIL")
            && out.contains("wrong: expected allow, got deny; expected rule public-read, got -"),
        "{out}"
    );
    assert!(out.contains("(got: deny rule=- reason=no_matching_grant)"), "{out}");
    assert!(out.trim_end().ends_with("1 passed, 1 failed"), "{out}");
}
