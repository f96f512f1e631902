//! ocigate's policy engine. It decides, for a principal and a registry request, allow or deny, and why.
//!
//! This crate is pure: no I/O, no async, no HTTP types. The rule model, compilation and evaluation land with
//! the policy-engine issue; today it holds the vocabulary every other part already shares: [`Action`].
//!
//! ```
//! use policy::Action;
//!
//! let action: Action = "push".parse()?;
//! assert_eq!(action.as_str(), "push");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod action;

pub use action::{Action, UnknownAction};
