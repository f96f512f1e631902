//! What the caller asks for, and what is known about the connection.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::Action;

/// One authorization question: may the principal do `action` on `repository` (with this reference)?
/// Borrows everything from the caller; building one allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// What the request does.
    pub action: Action,
    /// Repository name; empty for the catalog.
    pub repository: &'a str,
    /// Tag or digest from the URL, if any.
    pub reference: Option<&'a str>,
    /// HTTP method.
    pub method: &'a str,
    /// URL path.
    pub path: &'a str,
    /// Source repository of a cross-repository mount.
    pub mount_from: Option<&'a str>,
    /// When the request arrived.
    pub time: SystemTime,
    /// The connection.
    pub client: Client<'a>,
}

impl<'a> Request<'a> {
    /// A request for `action` on `repository`, arriving now, with nothing else known.
    pub fn new(action: Action, repository: &'a str) -> Request<'a> {
        Request {
            action,
            repository,
            reference: None,
            method: "",
            path: "",
            mount_from: None,
            time: SystemTime::now(),
            client: Client::default(),
        }
    }

    /// With a tag or digest.
    pub fn with_reference(mut self, reference: &'a str) -> Request<'a> {
        self.reference = Some(reference);
        self
    }

    /// The reference when it is a tag (it has no `:`).
    pub fn tag(&self) -> Option<&'a str> {
        self.reference.filter(|r| !r.contains(':'))
    }

    /// The reference when it is a digest.
    pub fn digest(&self) -> Option<&'a str> {
        self.reference.filter(|r| r.contains(':'))
    }
}

/// What is known about the client's connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client<'a> {
    /// The client's address (through trusted proxies).
    pub ip: Option<IpAddr>,
    /// The address of the TCP peer.
    pub peer_ip: Option<IpAddr>,
    /// The raw `X-Forwarded-For` header: untrusted, as the client sent it.
    pub forwarded_for: Option<&'a str>,
    /// TLS, when the connection uses it.
    pub tls: Option<Tls<'a>>,
}

/// The TLS session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tls<'a> {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: &'a str,
    /// The client certificate, when one was presented and verified.
    pub cert: Option<Cert<'a>>,
}

/// A verified client certificate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cert<'a> {
    /// Subject distinguished name.
    pub subject: &'a str,
    /// Subject alternative names.
    pub sans: &'a [String],
    /// SHA-256 fingerprint, hex.
    pub fingerprint: &'a str,
}
