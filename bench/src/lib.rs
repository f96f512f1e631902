//! Benchmarks for ocigate. The load benchmark against distribution and nginx is `bench/run.sh`; the
//! micro benchmarks are in `benches/` (`cargo bench -p bench`). Methods and recorded results are in
//! `bench/README.md`.
//!
//! This library builds the synthetic policies the benchmarks use.

use std::fmt::Write;

/// A policy of `n` team grants (`team-<i>` may pull and push `team-<i>/**`), one tenth as many tag
/// denies, a wildcard operators grant, and, when `condition` is set, a CEL condition on team 7's grant.
pub fn team_policy(n: usize, condition: bool) -> String {
    let mut y = String::from("grants:\n");
    for i in 0..n {
        let _ = writeln!(
            y,
            "  - {{ id: team-{i}, groups: [team-{i}], repositories: [\"team-{i}/**\"], actions: [pull, push] }}"
        );
    }
    if condition {
        y.push_str("  - id: team-7-ci\n    groups: [ci]\n    repositories: [\"team-7/**\"]\n    actions: [pull, push]\n");
        y.push_str("    when: 'principal.claims.env == \"ci\" && request.tag.startsWith(\"v\")'\n");
    }
    y.push_str("  - { id: operators, groups: [platform], repositories: [\"**\"], actions: [\"*\"] }\n");
    y.push_str("denies:\n");
    for i in 0..n.div_ceil(10) {
        let _ = writeln!(
            y,
            "  - {{ id: frozen-{i}, authenticated: true, repositories: [\"team-{}/frozen/**\"], actions: [push] }}",
            i * 10
        );
    }
    y
}

/// Compiles [`team_policy`].
pub fn compiled(n: usize, condition: bool) -> policy::Policy {
    let text = team_policy(n, condition);
    // The generated text is valid by construction.
    policy::compile(&[policy::Source { name: "bench.yaml", text: &text }])
        .expect("the benchmark policy compiles")
}
