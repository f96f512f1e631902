//! Catalog and tag-list filtering (exact, conditions per item) and token-time grants (an upper bound).

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::{Action, ActionSet, AuthMethod, Principal, Request, Source};

const POLICY: &str = r#"
grants:
  - { id: team-a, groups: [team-a], repositories: ["team-a/**"], actions: [pull, push] }
  - { id: public, anonymous: true, authenticated: true, repositories: ["public/*"], actions: [pull] }
  - id: releases-only
    users: [auditor]
    repositories: ["apps/**"]
    tags: ["v*"]
    actions: [pull]
  - id: own-namespace
    authenticated: true
    repositories: ["users/**"]
    actions: [pull, push]
    when: 'request.repository.startsWith("users/" + principal.name + "/")'
  - id: from-the-office
    users: [remote]
    repositories: ["office/**"]
    actions: [pull, push]
    when: 'ip_in(client.ip, "10.0.0.0/8")'
denies:
  - { id: secret, authenticated: true, repositories: ["team-a/secret/**"], actions: [pull] }
  - { id: no-rc, authenticated: true, repositories: ["**"], tags: ["*-rc*"], actions: [pull, push] }
"#;

fn compiled() -> policy::Policy {
    policy::compile(&[Source { name: "p.yaml", text: POLICY }]).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn catalog_lists_exactly_what_may_be_pulled() {
    let p = compiled();
    let all = strings(&[
        "public/a",
        "public/a/b",
        "team-a/api",
        "team-a/secret/keys",
        "team-b/api",
        "users/alice/x",
        "users/bob/x",
        "apps/web",
        "office/tools",
    ]);
    let base = Request::new(Action::Catalog, "");
    let alice = Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic);
    let mut repos = all.clone();
    p.filter_repositories(&alice, &base, &mut repos);
    assert_eq!(
        repos,
        strings(
            &["public/a", "team-a/api", "users/alice/x", "apps/web"]
                .iter()
                .filter(|r| **r != "apps/web")
                .copied()
                .collect::<Vec<_>>()
        )
    );

    // The auditor may pull release tags of apps/**: the repository is listed (it holds something pullable).
    let auditor = Principal::new("auditor", vec![], AuthMethod::Basic);
    let mut repos = all.clone();
    p.filter_repositories(&auditor, &base, &mut repos);
    assert_eq!(repos, strings(&["public/a", "apps/web"]));

    // Conditions are evaluated per request facts: the office grant lists only from the office.
    let remote = Principal::new("remote", vec![], AuthMethod::Basic);
    let mut inside = base;
    inside.client.ip = Some("10.9.9.9".parse().unwrap());
    let mut repos = all.clone();
    p.filter_repositories(&remote, &inside, &mut repos);
    assert_eq!(repos, strings(&["public/a", "office/tools"]));
    let mut outside = base;
    outside.client.ip = Some("203.0.113.1".parse().unwrap());
    let mut repos = all.clone();
    p.filter_repositories(&remote, &outside, &mut repos);
    assert_eq!(repos, strings(&["public/a"]));

    let mut repos = all;
    p.filter_repositories(&Principal::anonymous(), &base, &mut repos);
    assert_eq!(repos, strings(&["public/a"]));
}

#[test]
fn every_listed_repository_is_pullable_and_no_pullable_one_is_missing() {
    // Cross-check the filter against decide for many principals and names.
    let p = compiled();
    let names: Vec<String> =
        ["public", "team-a", "team-a/secret", "users/alice", "users/bob", "apps", "office", "x"]
            .iter()
            .flat_map(|pre| ["a", "b/c", "rc-1"].iter().map(move |s| format!("{pre}/{s}")))
            .collect();
    let principals = [
        Principal::anonymous(),
        Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic),
        Principal::new("bob", vec![], AuthMethod::Bearer),
        Principal::new("auditor", vec![], AuthMethod::Basic),
        Principal::new("remote", vec![], AuthMethod::Mtls),
    ];
    let base = Request::new(Action::Catalog, "");
    for who in &principals {
        let mut listed = names.clone();
        p.filter_repositories(who, &base, &mut listed);
        let pullable: Vec<String> =
            names.iter().filter(|n| p.decide(who, &Request::new(Action::Pull, n)).allowed).cloned().collect();
        assert_eq!(listed, pullable, "{}", who.name());
    }
}

#[test]
fn tag_lists_are_filtered_per_tag() {
    let p = compiled();
    let base = Request::new(Action::Pull, "");
    let auditor = Principal::new("auditor", vec![], AuthMethod::Basic);
    let mut tags = strings(&["latest", "v1.0", "v2.0-rc1", "v2.0", "main"]);
    p.filter_tags(&auditor, &base, "apps/web", &mut tags);
    assert_eq!(tags, strings(&["v1.0", "v2.0"]));
    let alice = Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic);
    let mut tags = strings(&["latest", "v1-rc2", "v1"]);
    p.filter_tags(&alice, &base, "team-a/api", &mut tags);
    assert_eq!(tags, strings(&["latest", "v1"]), "the rc deny hides rc tags");
}

#[test]
fn token_grants_are_an_upper_bound() {
    let p = compiled();
    let now = std::time::SystemTime::now();
    let want = ActionSet::parse(["pull", "push", "delete"]).unwrap();
    let alice = Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic);
    assert_eq!(p.grantable(&alice, "team-a/api", want, now), ActionSet::parse(["pull", "push"]).unwrap());
    assert_eq!(p.grantable(&alice, "team-a/secret/x", want, now), ActionSet::parse(["push"]).unwrap());
    assert_eq!(p.grantable(&alice, "team-b/api", want, now), ActionSet::EMPTY);
    // Tag-limited grants and tag-limited denies leave the repository grantable; each tag is checked later.
    let auditor = Principal::new("auditor", vec![], AuthMethod::Basic);
    assert_eq!(p.grantable(&auditor, "apps/web", want, now), ActionSet::from(Action::Pull));
    // A condition on principal and repository is decided now...
    let bob = Principal::new("bob", vec![], AuthMethod::Basic);
    assert_eq!(p.grantable(&bob, "users/bob/x", want, now), ActionSet::parse(["pull", "push"]).unwrap());
    assert_eq!(p.grantable(&bob, "users/alice/x", want, now), ActionSet::EMPTY);
    // ...one on request facts (the client address) is granted, and checked on every request.
    let remote = Principal::new("remote", vec![], AuthMethod::Basic);
    assert_eq!(p.grantable(&remote, "office/tools", want, now), ActionSet::parse(["pull", "push"]).unwrap());
    let mut outside = Request::new(Action::Pull, "office/tools");
    outside.client.ip = Some("203.0.113.1".parse().unwrap());
    assert!(!p.decide(&remote, &outside).allowed);
    assert_eq!(p.grantable(&Principal::anonymous(), "public/a", want, now), ActionSet::from(Action::Pull));
    assert_eq!(p.grantable(&alice, "", want, now), ActionSet::EMPTY);
}

#[test]
fn order_of_files_does_not_matter() {
    let a = "grants:\n  - { id: b-rule, users: [u], repositories: [\"x/**\"], actions: [pull] }\n";
    let b = "grants:\n  - { id: a-rule, users: [u], repositories: [\"x/*\"], actions: [pull] }\n";
    let p1 =
        policy::compile(&[Source { name: "1.yaml", text: a }, Source { name: "2.yaml", text: b }]).unwrap();
    let p2 =
        policy::compile(&[Source { name: "2.yaml", text: b }, Source { name: "1.yaml", text: a }]).unwrap();
    let u = Principal::new("u", vec![], AuthMethod::Basic);
    let r = Request::new(Action::Pull, "x/y");
    assert_eq!(p1.decide(&u, &r), p2.decide(&u, &r));
    assert_eq!(p1.decide(&u, &r).rule.as_deref(), Some("a-rule"));
}
