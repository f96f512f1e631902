//! The OCI distribution-spec grammar, shared by the bundled registry and the gateway so that both see
//! exactly the same repository, reference and digest in every `/v2/` request.
//!
//! Everything here borrows from its input and allocates only when a path is percent-encoded.
//!
//! ```
//! use oci::route::{self, Route};
//! use oci::reference::Reference;
//!
//! let path = route::decode_path("/v2/team-a/api/manifests/v1.4")?;
//! let Route::Manifest { repository, reference } = route::parse(&path)? else { unreachable!() };
//! assert_eq!(repository, "team-a/api");
//! assert_eq!(reference, Reference::Tag("v1.4"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod digest;
pub mod name;
pub mod paging;
pub mod query;
pub mod reference;
pub mod route;

pub use digest::{Algorithm, Digest, DigestBuf, DigestError};
pub use reference::Reference;
pub use route::{Route, RouteError};
