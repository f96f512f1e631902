//! The hot path allocates nothing: deciding without a condition, once warm, makes no heap allocation.

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use policy::{Action, AuthMethod, Principal, Request, Source};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[test]
fn decide_without_a_condition_does_not_allocate() {
    let text = r#"
grants:
  - { id: team, groups: [team-a], repositories: ["team-a/**", "shared/*"], tags: ["v*"], actions: [pull, push] }
  - { id: ops, groups: [ops], repositories: ["**"], actions: ["*"] }
denies:
  - { id: frozen, authenticated: true, repositories: ["team-a/frozen/**"], actions: [push] }
"#;
    let policy = policy::compile(&[Source { name: "p.yaml", text }]).unwrap();
    let alice = Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic);
    let requests = [
        Request::new(Action::Push, "team-a/api").with_reference("v1"),
        Request::new(Action::Push, "team-a/frozen/x"),
        Request::new(Action::Pull, "elsewhere/x"),
        Request::new(Action::Delete, "team-a/api"),
    ];
    for r in &requests {
        let _ = policy.decide(&alice, r); // warm the thread's scratch buffer and the glob caches
    }
    let region = Region::new(GLOBAL);
    let mut allowed = 0;
    for _ in 0..1000 {
        for r in &requests {
            allowed += usize::from(policy.decide(&alice, r).allowed);
        }
    }
    let allocations = region.change().allocations;
    assert_eq!(allowed, 1000);
    assert_eq!(allocations, 0, "allocations in 4,000 decisions");
}
