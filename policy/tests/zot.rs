//! zot compatibility: the example of zot's documentation, decided exactly as zot's authz.go decides it
//! (read = pull, create = push, update = overwrite, delete = delete).

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::{Action, AuthMethod, Principal, Request, Source};

fn zot_policy() -> policy::Policy {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/zot-policy.yaml")).unwrap();
    policy::compile(&[Source { name: "zot-policy.yaml", text: &text }]).unwrap()
}

const ACTIONS: [Action; 4] = [Action::Pull, Action::Push, Action::Overwrite, Action::Delete];
const REPOS: [&str; 6] = ["alpine", "tmp/x", "tmp/a/b", "infra/db", "infra/a/b", "repos2/repo"];

/// Rows: principal; columns: the repositories above, each "RCUD" with `-` for a denial.
const TABLE: &[(&str, [&str; 6])] = &[
    ("charlie", ["RCU-", "RCU-", "RCU-", "R---", "RCU-", "R---"]),
    ("alice", ["RCU-", "RCU-", "RCU-", "RCUD", "RCU-", "R---"]),
    ("bob", ["RC--", "RCU-", "RCU-", "RCUD", "RC--", "RC--"]),
    ("mallory", ["RCU-", "RCU-", "RCU-", "RC--", "RCU-", "RC--"]),
    ("admin", ["RCUD", "RCUD", "RCUD", "RCUD", "RCUD", "RCUD"]),
    ("", ["----", "R---", "R---", "----", "----", "----"]),
    ("dave", ["RC--", "RCU-", "RCU-", "R---", "RC--", "R---"]),
    ("mary", ["RC--", "RCU-", "RCU-", "RC--", "RC--", "R---"]),
    ("jim", ["RCU-", "RCU-", "RCU-", "R---", "RCU-", "R---"]),
];

#[test]
fn docs_example_decides_like_zot() {
    let p = zot_policy();
    let mut mismatches = Vec::new();
    for (user, row) in TABLE {
        let principal = if user.is_empty() {
            Principal::anonymous()
        } else {
            Principal::new(*user, vec![], AuthMethod::Basic)
        };
        for (repo, expected) in REPOS.iter().zip(row) {
            for (action, want) in ACTIONS.iter().zip(expected.chars()) {
                let d = p.decide(&principal, &Request::new(*action, repo));
                if d.allowed != (want != '-') {
                    mismatches.push(format!("{user:?} {action} {repo}: expected {}, got {d}", want != '-'));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn decisions_name_the_zot_policy_that_granted() {
    let p = zot_policy();
    let charlie = Principal::new("charlie", vec![], AuthMethod::Basic);
    let d = p.decide(&charlie, &Request::new(Action::Overwrite, "alpine"));
    assert_eq!(d.rule.as_deref(), Some(r#"zot:repositories["**"].policies[0]"#));
    let d = p.decide(&Principal::anonymous(), &Request::new(Action::Pull, "tmp/x"));
    assert_eq!(d.rule.as_deref(), Some(r#"zot:repositories["tmp/**"].anonymousPolicy"#));
    let admin = Principal::new("admin", vec![], AuthMethod::Basic);
    let d = p.decide(&admin, &Request::new(Action::Delete, "nowhere/matches"));
    assert_eq!(d.rule.as_deref(), Some("zot:adminPolicy"));
    let dave = Principal::new("dave", vec![], AuthMethod::Basic);
    let d = p.decide(&dave, &Request::new(Action::Delete, "alpine"));
    assert_eq!((d.allowed, d.reason.as_str()), (false, "no_matching_grant"));
}

#[test]
fn groups_from_the_principal_count_too() {
    let p = zot_policy();
    // An OIDC/LDAP group, not listed under accessControl.groups.
    let oidc = Principal::new("zed", vec!["group2".into()], AuthMethod::Bearer);
    assert!(p.decide(&oidc, &Request::new(Action::Overwrite, "alpine")).allowed);
}

#[test]
fn native_denies_override_zot_and_native_grants_add_to_it() {
    let zot =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/zot-policy.yaml")).unwrap();
    let extra = r#"
grants:
  - { id: dave-deletes-alpine, users: [dave], repositories: [alpine], actions: [delete] }
denies:
  - { id: freeze-infra, authenticated: true, repositories: ["infra/**"], actions: [push, overwrite, delete] }
"#;
    let p = policy::compile(&[
        Source { name: "zot.yaml", text: &zot },
        Source { name: "extra.yaml", text: extra },
    ])
    .unwrap();
    let alice = Principal::new("alice", vec![], AuthMethod::Basic);
    let d = p.decide(&alice, &Request::new(Action::Delete, "infra/db"));
    assert_eq!(d.rule.as_deref(), Some("freeze-infra"));
    assert!(p.decide(&alice, &Request::new(Action::Pull, "infra/db")).allowed);
    let dave = Principal::new("dave", vec![], AuthMethod::Basic);
    assert!(p.decide(&dave, &Request::new(Action::Delete, "alpine")).allowed);
}

#[test]
fn zot_specific_inputs() {
    // Legacy (zot < 2.0) layout: a clear hint.
    let legacy = r#"accessControl: { "**": { "defaultPolicy": ["read"] } }"#;
    let e = policy::compile(&[Source { name: "old.yaml", text: legacy }]).unwrap_err().to_string();
    assert!(e.contains("old.yaml:") && e.contains("repositories"), "{e}");
    // zot CEL conditions are refused rather than ignored.
    let cond = r#"accessControl: { repositories: { "**": { policies: [{ users: [a], actions: [read], conditions: [{ expression: "true" }] }] } } }"#;
    let e = policy::compile(&[Source { name: "c.yaml", text: cond }]).unwrap_err().to_string();
    assert!(e.contains("conditions` are not supported"), "{e}");
    // Unknown zot actions are errors; detectManifestCollision is accepted.
    let bad = r#"accessControl: { repositories: { "**": { defaultPolicy: [read, detectManifestCollision, fly] } } }"#;
    let e = policy::compile(&[Source { name: "d.yaml", text: bad }]).unwrap_err().to_string();
    assert!(e.contains("\"fly\"") && !e.contains("detectManifestCollision"), "{e}");
    // Only one zot section.
    let one = r#"accessControl: { repositories: { "**": { defaultPolicy: [read] } } }"#;
    let e = policy::compile(&[Source { name: "a.yaml", text: one }, Source { name: "b.yaml", text: one }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("also in a.yaml"), "{e}");
    // Longest pattern wins even over an exact name (zot compares lengths), ties go to the smaller pattern.
    let longest = r#"accessControl: { repositories: {
        "a/b": { defaultPolicy: [read, create] },
        "a/**": { defaultPolicy: [read] },
        "x/*": { defaultPolicy: [read] },
        "*/y": { defaultPolicy: [read, create] } } }"#;
    let p = policy::compile(&[Source { name: "l.yaml", text: longest }]).unwrap();
    let u = Principal::new("u", vec![], AuthMethod::Basic);
    assert!(!p.decide(&u, &Request::new(Action::Push, "a/b")).allowed, "a/** (4 bytes) governs a/b");
    assert!(p.decide(&u, &Request::new(Action::Pull, "a")).allowed, "a/** also matches a, as in doublestar");
    // `x/*` and `*/y` are both 3 bytes: the lexically smaller `*/y` governs, deterministically.
    let d = p.decide(&u, &Request::new(Action::Push, "x/y"));
    assert_eq!(d.rule.as_deref(), Some(r#"zot:repositories["*/y"].defaultPolicy"#), "{d}");
}
