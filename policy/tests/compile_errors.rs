//! Load-time errors: every problem reported, each with its file, rule and position.

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::Source;

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<Source> = files.iter().map(|(name, text)| Source { name, text }).collect();
    match policy::compile(&sources) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_error_with_file_rule_and_line() {
    let text = r#"
roles:
  reader: [pull, fly]
grants:
  - id: no-subject
    repositories: ["**"]
    actions: [pull]
  - id: bad-glob
    authenticated: true
    repositories: ["a/["]
    actions: [pull]
  - id: no-repos
    authenticated: true
    actions: [push]
  - id: bad-action
    authenticated: true
    repositories: ["**"]
    actions: [pul]
  - id: unknown-role
    authenticated: true
    repositories: ["**"]
    role: writer
  - id: no-actions
    authenticated: true
    repositories: ["**"]
denies:
  - id: bad-tag
    authenticated: true
    repositories: ["**"]
    tags: ["v{"]
    actions: [push]
  - id: bad-when
    authenticated: true
    repositories: ["**"]
    actions: [push]
    when: 'request.nope == 1'
"#;
    let errs = errors(&[("p.yaml", text)]);
    let expect = [
        ("p.yaml: role \"reader\"", "unknown action \"fly\""),
        ("p.yaml:5:5: rule no-subject", "names no subject"),
        ("p.yaml:8:5: rule bad-glob", "bad repository glob \"a/[\""),
        ("p.yaml:12:5: rule no-repos", "names no repository"),
        ("p.yaml:15:5: rule bad-action", "unknown action \"pul\""),
        ("p.yaml:19:5: rule unknown-role", "unknown role \"writer\""),
        ("p.yaml:23:5: rule no-actions", "no action"),
        ("p.yaml:27:5: rule bad-tag", "bad tag glob \"v{\""),
        ("p.yaml:36:11: rule bad-when", "unknown field `request.nope`"),
    ];
    for (prefix, needle) in expect {
        assert!(
            errs.iter().any(|e| e.starts_with(prefix) && e.contains(needle)),
            "missing {prefix} .. {needle} in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
}

#[test]
fn yaml_and_schema_errors_have_positions() {
    let errs = errors(&[("typo.yaml", "grants:\n  - id: x\n    usres: [a]\n")]);
    assert!(errs[0].starts_with("typo.yaml:3:") && errs[0].contains("usres"), "{errs:?}");
    let errs = errors(&[("broken.yaml", "grants: [\n")]);
    assert!(errs[0].starts_with("broken.yaml:"), "{errs:?}");
    let errs = errors(&[("top.yaml", "rules: []\n")]);
    assert!(errs[0].contains("rules"), "{errs:?}");
}

#[test]
fn duplicate_ids_and_conflicting_roles_across_files() {
    let a = "roles: { r: [pull] }\ngrants:\n  - { id: same, users: [u], repositories: [\"**\"], actions: [pull] }\n";
    let b = "roles: { r: [push] }\ngrants:\n  - { id: same, users: [v], repositories: [\"**\"], actions: [pull] }\n";
    let errs = errors(&[("a.yaml", a), ("b.yaml", b)]);
    assert!(
        errs.iter().any(|e| e.starts_with("b.yaml") && e.contains("duplicate rule id (also in a.yaml)")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("role \"r\" is also defined, differently, in a.yaml")),
        "{errs:?}"
    );
}

#[test]
fn empty_names_match_nobody_and_are_refused() {
    let errs = errors(&[(
        "e.yaml",
        "grants:\n  - { id: x, users: [\"\"], repositories: [\"**\"], actions: [pull] }\n",
    )]);
    assert!(errs[0].contains("empty user or group name"), "{errs:?}");
}

#[test]
fn default_ids_name_the_file() {
    let a = "grants:\n  - { users: [u], repositories: [\"**\"], actions: [pull] }\n";
    let p = policy::compile(&[Source { name: "a/p.yaml", text: a }, Source { name: "b/p.yaml", text: a }])
        .unwrap();
    let ids: Vec<String> = p.rule_ids().map(|i| i.to_string()).collect();
    assert_eq!(ids, ["a/p.yaml:grants[0]", "b/p.yaml:grants[0]"]);
}

#[test]
fn empty_documents_are_empty_policies() {
    assert!(policy::compile(&[Source { name: "e.yaml", text: "" }]).is_ok());
    assert!(policy::compile(&[Source { name: "c.yaml", text: "# nothing yet\n" }]).is_ok());
    assert!(policy::compile(&[]).is_ok());
}
