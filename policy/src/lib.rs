//! ocigate's policy engine: for a principal and a registry request, allow or deny, and why.
//!
//! Pure: no I/O, no async, no HTTP types. Policy text goes in, a compiled immutable [`Policy`] comes out,
//! and [`Policy::decide`] answers on the hot path without allocating (unless a condition runs).
//!
//! ```
//! use policy::{Action, AuthMethod, Principal, Request, Source};
//!
//! let yaml = r#"
//! grants:
//!   - id: team-a-push
//!     groups: [team-a]
//!     repositories: ["team-a/**"]
//!     actions: [pull, push]
//! denies:
//!   - id: no-latest
//!     authenticated: true
//!     repositories: ["**"]
//!     tags: [latest]
//!     actions: [push]
//!     message: "push a version tag, not latest"
//! "#;
//! let policy = policy::compile(&[Source { name: "team-a.yaml", text: yaml }])?;
//! let alice = Principal::new("alice", vec!["team-a".into()], AuthMethod::Basic);
//!
//! let push = Request::new(Action::Push, "team-a/api").with_reference("v1.2.0");
//! assert!(policy.decide(&alice, &push).allowed);
//!
//! let latest = Request::new(Action::Push, "team-a/api").with_reference("latest");
//! let d = policy.decide(&alice, &latest);
//! assert!(!d.allowed);
//! assert_eq!(d.rule.as_deref(), Some("no-latest"));
//! assert_eq!(d.reason.as_str(), "denied_by_rule");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The meaning, in short: a request is allowed when some grant (or the zot `accessControl` section)
//! allows it and no deny matches it; when nothing matches it is denied. A rule matches when its subjects
//! include the principal, one of its repository globs matches, its actions include the request's, its
//! tag globs (if any) cover the request's tag, and its condition (if any) is true. A grant limited to tags
//! still covers requests that name no tag (blob uploads, pulls by digest); a deny limited to tags only
//! speaks about requests naming one of them. Catalog requests name no repository: a rule whose actions
//! include `catalog` applies to them whatever its repositories (the listing itself is then filtered by
//! pull, see [`Policy::filter_repositories`]).
#![deny(missing_docs)]

mod action;
pub mod cel;
mod compile;
mod decision;
mod error;
mod eval;
pub mod glob;
mod principal;
mod request;
pub mod spec;
pub mod testing;
mod zot;

pub use action::{Action, ActionSet, UnknownAction};
pub use compile::{Policy, Source, compile};
pub use decision::{Decision, Reason};
pub use error::{PolicyError, PolicyErrors};
pub use principal::{AuthMethod, Principal};
pub use request::{Cert, Client, Request, Tls};

#[cfg(test)]
mod tests {
    fn shared<T: Send + Sync>() {}

    #[test]
    fn policy_and_principal_can_be_shared_between_threads() {
        shared::<crate::Policy>();
        shared::<crate::Principal>();
        shared::<crate::Decision>();
    }
}
