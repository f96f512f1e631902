//! TLS for client listeners: certificates reloaded from disk when they change, optional client
//! certificate verification (mTLS), and the client identity taken from the certificate.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::{
    CertificateDer, ClientHello, PrivateKeyDer, ResolvesServerCert, RootCertStore, WebPkiClientVerifier, sign,
};
use sha2::{Digest, Sha256};

use policy::{AuthMethod, Principal};

use crate::authn::Groups;
use crate::config::{ClientIdentity, TlsListener};

/// PEM certificates in a file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for item in pem_items(&pem) {
        if item.0 == "CERTIFICATE" {
            out.push(CertificateDer::from(item.1));
        }
    }
    Ok(out)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for (label, der) in pem_items(&pem) {
        let key = match label.as_str() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(der.into()),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(der.into()),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(der.into()),
            _ => continue,
        };
        return Ok(key);
    }
    Err(format!("no private key (PKCS#8, RSA or EC, PEM) in {}", path.display()))
}

/// `-----BEGIN X-----` blocks: (label, DER).
pub(crate) fn pem_items(pem: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    let mut body = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(l) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            label = Some(l.to_owned());
            body.clear();
        } else if line.starts_with("-----END ") {
            if let Some(l) = label.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes())
            {
                out.push((l, der));
            }
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    out
}

/// One PEM block.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificate a listener serves: swapped in place when the files change.
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<sign::CertifiedKey>,
    stamp: std::sync::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

fn load_certified(cert: &Path, key: &Path) -> Result<sign::CertifiedKey, String> {
    let chain = read_certs(cert)?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = read_key(key)?;
    pingora::tls::install_default_crypto_provider();
    let provider = pingora::tls::CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| "no TLS crypto provider is installed".to_owned())?;
    sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("certificate and key do not go together: {e}"))
}

fn mtimes(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

impl CertStore {
    /// Loads the pair now.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertStore>, String> {
        let ck = load_certified(cert, key)?;
        Ok(Arc::new(CertStore {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(ck),
            stamp: std::sync::Mutex::new(mtimes(cert, key)),
        }))
    }

    /// The certificate's folder (watched for changes).
    pub fn dir(&self) -> Option<PathBuf> {
        self.cert.parent().map(Path::to_path_buf)
    }

    /// Reloads when either file changed. A pair that does not load keeps the old one.
    pub fn refresh(&self) {
        let now = mtimes(&self.cert, &self.key);
        let Ok(mut stamp) = self.stamp.lock() else { return };
        if *stamp == now {
            return;
        }
        match load_certified(&self.cert, &self.key) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                *stamp = now;
                tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
            }
            Err(e) => {
                tracing::warn!(cert = %self.cert.display(), error = %e, "keeping the old TLS certificate")
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<sign::CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Polls every listener's certificate files and swaps in new ones.
pub struct CertReloader {
    /// The stores to watch.
    pub stores: Vec<Arc<CertStore>>,
}

#[async_trait]
impl BackgroundService for CertReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.stores.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => self.stores.iter().for_each(|s| s.refresh()),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A client verifier for a CA bundle; `required` refuses clients without a certificate.
pub fn client_verifier(
    ca: &Path,
    required: bool,
) -> Result<Arc<dyn pingora::tls::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let builder = WebPkiClientVerifier::builder(Arc::new(roots));
    let builder = if required { builder } else { builder.allow_unauthenticated() };
    builder.build().map_err(|e| format!("{}: {e}", ca.display()))
}

/// Who the client certificate says the caller is, attached to the connection after the handshake.
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// The principal's name (from the configured field).
    pub name: Option<String>,
    /// Subject distinguished name.
    pub subject: String,
    /// Subject alternative names (DNS, URI, e-mail, IP).
    pub sans: Vec<String>,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint: String,
    /// The principal it names (built once per connection), if the configured field is present.
    pub principal: Option<Arc<Principal>>,
}

/// Reads the verified client certificate after each handshake.
pub struct IdentityCallbacks {
    /// Which field names the principal.
    pub identity: ClientIdentity,
    /// Extra groups per user.
    pub groups: Arc<Groups>,
}

#[async_trait]
impl TlsAccept for IdentityCallbacks {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        let peer = peer_cert(der, self.identity, &self.groups)?;
        Some(Arc::new(peer))
    }
}

/// Parses a certificate's identity fields.
pub fn peer_cert(der: &[u8], identity: ClientIdentity, groups: &Groups) -> Option<PeerCert> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject().to_string();
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).map(str::to_owned);
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    let mut emails = Vec::new();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    dns.push(d.to_string());
                    sans.push(d.to_string());
                }
                GeneralName::URI(u) => {
                    uris.push(u.to_string());
                    sans.push(u.to_string());
                }
                GeneralName::RFC822Name(e) => {
                    emails.push(e.to_string());
                    sans.push(e.to_string());
                }
                GeneralName::IPAddress(ip) => {
                    let text = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).map(|b| std::net::IpAddr::from(b).to_string()).ok(),
                        16 => <[u8; 16]>::try_from(*ip).map(|b| std::net::IpAddr::from(b).to_string()).ok(),
                        _ => None,
                    };
                    sans.extend(text);
                }
                _ => {}
            }
        }
    }
    let name = match identity {
        ClientIdentity::Cn => cn,
        ClientIdentity::SanDns => dns.into_iter().next(),
        ClientIdentity::SanUri => uris.into_iter().next(),
        ClientIdentity::SanEmail => emails.into_iter().next(),
    };
    let fingerprint = Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect();
    let principal = name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| Arc::new(Principal::new(n, groups.of(n).to_vec(), AuthMethod::Mtls)));
    Some(PeerCert { name, subject, sans, fingerprint, principal })
}

/// Everything a TLS listener needs.
pub struct ListenerTls {
    /// The served certificate.
    pub store: Arc<CertStore>,
    /// mTLS verifier.
    pub verifier: Option<Arc<dyn pingora::tls::ClientCertVerifier>>,
    /// Identity field.
    pub identity: ClientIdentity,
}

impl ListenerTls {
    /// Loads a listener's files.
    pub fn load(t: &TlsListener) -> Result<ListenerTls, String> {
        let store = CertStore::load(&t.cert, &t.key)?;
        let verifier =
            t.client_ca.as_ref().map(|ca| client_verifier(ca, t.require_client_cert)).transpose()?;
        Ok(ListenerTls { store, verifier, identity: t.identity })
    }
}
