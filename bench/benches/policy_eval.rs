//! `decide` on the hot path: no condition, one CEL condition, 10 to 10,000 rules; catalog filtering of
//! 100,000 repositories. Run: `cargo bench -p bench --bench policy_eval`.

use divan::{Bencher, black_box};
use policy::{Action, AuthMethod, Principal, Request};

fn main() {
    divan::main();
}

#[divan::bench(args = [10, 100, 1_000, 10_000])]
fn decide_no_condition(bencher: Bencher, rules: usize) {
    let policy = bench::compiled(rules, false);
    let alice = Principal::new("alice", vec!["team-7".into()], AuthMethod::Basic);
    let request = Request::new(Action::Push, "team-7/api").with_reference("v1.2.3");
    assert!(policy.decide(&alice, &request).allowed);
    bencher.bench_local(|| policy.decide(black_box(&alice), black_box(&request)));
}

#[divan::bench(args = [10, 100, 1_000, 10_000])]
fn decide_denied(bencher: Bencher, rules: usize) {
    let policy = bench::compiled(rules, false);
    let mallory = Principal::new("mallory", vec!["team-8".into()], AuthMethod::Basic);
    let request = Request::new(Action::Push, "team-7/api").with_reference("v1.2.3");
    assert!(!policy.decide(&mallory, &request).allowed);
    bencher.bench_local(|| policy.decide(black_box(&mallory), black_box(&request)));
}

#[divan::bench(args = [10, 100, 1_000, 10_000])]
fn decide_one_condition(bencher: Bencher, rules: usize) {
    let policy = bench::compiled(rules, true);
    let mut claims = serde_json_map();
    claims.insert("env".into(), "ci".into());
    let ci = Principal::new("pipeline", vec!["ci".into()], AuthMethod::Bearer).with_claims(claims);
    let request = Request::new(Action::Push, "team-7/api").with_reference("v1.2.3");
    let d = policy.decide(&ci, &request);
    assert!(d.allowed && d.rule.as_deref() == Some("team-7-ci"), "{d}");
    bencher.bench_local(|| policy.decide(black_box(&ci), black_box(&request)));
}

#[divan::bench(args = [100_000])]
fn filter_catalog(bencher: Bencher, repositories: usize) {
    let policy = bench::compiled(1_000, false);
    let alice = Principal::new("alice", vec!["team-7".into(), "team-42".into()], AuthMethod::Basic);
    let all: Vec<String> = (0..repositories).map(|i| format!("team-{}/repo-{i}", i % 1_000)).collect();
    let base = Request::new(Action::Catalog, "");
    let mut check = all.clone();
    policy.filter_repositories(&alice, &base, &mut check);
    assert_eq!(check.len(), 2 * repositories / 1_000);
    bencher.with_inputs(|| all.clone()).bench_local_values(|mut repos| {
        policy.filter_repositories(black_box(&alice), black_box(&base), &mut repos);
        repos
    });
}

fn serde_json_map() -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::new()
}
