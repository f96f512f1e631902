//! Test harness: start the real `ocigate` binary on loopback and talk to it with a plain HTTP client.
//!
//! ```no_run
//! # async fn demo() {
//! let reg = integration_tests::Server::registry();
//! let resp = reg.client().get("/v2/").await;
//! assert_eq!(resp.status, 200);
//! # }
//! ```

pub mod bin;
pub mod content;
pub mod gateway;
pub mod http;
pub mod layout;
pub mod ociclient;
pub mod pki;
pub mod server;
pub mod tools;

pub use content::{Blob, Image};
pub use http::{Client, Resp};
pub use server::Server;
