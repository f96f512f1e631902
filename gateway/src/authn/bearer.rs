//! Bearer JWTs from trusted issuers: the Docker/Distribution registry tokens, OIDC ID tokens and
//! Kubernetes service-account tokens.
//!
//! A token is checked once: signature by one of its issuer's keys (chosen by `kid`, which may be the key's
//! JWKS id, its RFC 7638 thumbprint or its libtrust id; without a `kid` every key of the right family is
//! tried), `alg` among the issuer's asymmetric algorithms, `iss`, `aud`, `exp` and `nbf` with leeway. The
//! verified result is then remembered until the token expires, so later requests cost one map lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use policy::{AuthMethod, Principal};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Groups;
use crate::config::Issuer;
use crate::metrics::METRICS;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The map hasher for keys that are already SHA-256 digests: their first eight bytes.
#[derive(Default, Clone, Copy)]
struct DigestHash;

impl std::hash::BuildHasher for DigestHash {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// See [`DigestHash`].
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length (a usize, ignored here) then its bytes.
        if bytes.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            self.0 = u64::from_le_bytes(b);
        }
    }
}

/// The HTTP client for an issuer's JWKS URL, trusting its `jwks_ca` besides the system's roots.
fn jwks_client(issuer: &Issuer) -> Result<Option<reqwest::Client>, String> {
    if issuer.jwks_url.is_none() {
        return Ok(None);
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("ocigate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &issuer.jwks_ca {
        let mut roots = Vec::new();
        for der in crate::tls::read_certs(path)? {
            roots.push(reqwest::Certificate::from_der(&der).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map(Some).map_err(|e| format!("cannot build the JWKS client: {e}"))
}

/// A URL for the log: without user name, password and query.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// A verification error in words a client can act on.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c:?} claim"),
        _ => e.to_string(),
    }
}

/// Longest token accepted (a header line, so bounded anyway; this keeps the cache small).
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Most verified tokens remembered at once (then the memory starts over).
const CACHE_CAP: usize = 10_000;
/// Most bytes of verified tokens remembered at once (a token's entry holds its claims: about twice its size).
const CACHE_BYTES: usize = 64 << 20;
/// Largest JWKS document fetched.
const MAX_JWKS: usize = 1 << 20;

/// Verified tokens by SHA-256 of the token: 32 bytes a key whatever the token's size, and a digest no one
/// can make collide. Bounded by count and by the bytes its entries hold.
#[derive(Default)]
struct TokenCache {
    map: HashMap<[u8; 32], (Arc<Verified>, usize), DigestHash>,
    bytes: usize,
}

impl TokenCache {
    fn insert(&mut self, key: [u8; 32], v: Arc<Verified>, weight: usize, now: u64) {
        if self.map.len() >= CACHE_CAP || self.bytes + weight > CACHE_BYTES {
            self.map.retain(|_, (v, _)| now < v.expires);
            self.bytes = self.map.values().map(|(_, w)| w).sum();
            if self.map.len() >= CACHE_CAP || self.bytes + weight > CACHE_BYTES {
                self.clear();
            }
        }
        if let Some((_, old)) = self.map.insert(key, (v, weight)) {
            self.bytes -= old;
        }
        self.bytes += weight;
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

/// One entry of a registry token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `repository` or `registry`.
    pub kind: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`...
    pub actions: Vec<String>,
}

/// A verified token.
#[derive(Debug)]
pub struct Verified {
    /// Who it names.
    pub principal: Arc<Principal>,
    /// The `access` claim, when the token has one: then the token allows no more than it lists.
    pub access: Option<Arc<[Access]>>,
    /// `exp`, seconds since the epoch.
    pub expires: u64,
}

/// Why a token was refused (for logs and metrics; clients get `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// Not a JWT we can read.
    Malformed,
    /// `iss` is not a configured issuer.
    UnknownIssuer,
    /// `kid` names no key of the issuer.
    UnknownKey,
    /// Signature, algorithm, audience, expiry...: the reason.
    Invalid(String),
    /// No issuers are configured.
    NotConfigured,
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BearerError::Malformed => f.write_str("not a JWT"),
            BearerError::UnknownIssuer => f.write_str("issuer not trusted"),
            BearerError::UnknownKey => f.write_str("token signed by an unknown key id"),
            BearerError::Invalid(why) => f.write_str(why),
            BearerError::NotConfigured => f.write_str("bearer tokens are not accepted here"),
        }
    }
}

/// A public key of an issuer, with the ids a token may name it by.
#[derive(Clone)]
pub struct Key {
    /// JWKS `kid`, RFC 7638 thumbprint, libtrust id.
    pub(crate) ids: Vec<String>,
    /// The key.
    pub(crate) key: DecodingKey,
    /// RSA, EC or Ed.
    pub(crate) family: AlgorithmFamily,
}

/// The keys of one issuer read from its files (PEM keys and certificates, JWKS file).
pub struct IssuerKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("ids", &self.keys.iter().map(|k| &k.ids).collect::<Vec<_>>())
            .finish()
    }
}

impl IssuerKeys {
    /// Reads an issuer's PEM files (public keys or certificates) and JWKS file.
    pub fn load(issuer: &Issuer) -> Result<IssuerKeys, String> {
        let mut keys = Vec::new();
        for path in &issuer.keys {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let found = pem_keys(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            if found.is_empty() {
                return Err(format!("{}: no PUBLIC KEY or CERTIFICATE block", path.display()));
            }
            keys.extend(found);
        }
        if let Some(path) = &issuer.root_cert_bundle {
            let (found, _) = root_bundle(path)?;
            keys.extend(found);
        }
        if let Some(path) = &issuer.jwks_file {
            let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            keys.extend(jwks_keys(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        Ok(IssuerKeys { keys })
    }
}

/// A CA bundle: the certificates' keys and the certificates as trust anchors for `x5c` chains.
fn root_bundle(path: &Path) -> Result<(Vec<Key>, Vec<TrustAnchor<'static>>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut anchors = Vec::new();
    for (label, der) in crate::tls::pem_items(&pem) {
        if label == "CERTIFICATE" {
            let cert = CertificateDer::from(der);
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| format!("{}: unusable certificate: {e:?}", path.display()))?;
            anchors.push(anchor.to_owned());
        }
    }
    if anchors.is_empty() {
        return Err(format!("{}: no CERTIFICATE block", path.display()));
    }
    let keys = pem_keys(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((keys, anchors))
}

/// Token-signing certificates carry any extended key usage (as distribution accepts them).
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// Most certificates accepted in an `x5c` chain.
const MAX_CHAIN: usize = 8;
/// Most verified `x5c` chains remembered.
const CHAIN_CACHE_CAP: usize = 256;

/// The leaf key of an `x5c` chain (standard base64 DER, leaf first) that leads to one of `anchors`, and
/// when the leaf expires (seconds since the epoch).
fn x5c_key(chain: &[String], anchors: &[TrustAnchor<'_>]) -> Result<(Key, u64), String> {
    use base64::Engine as _;
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(format!("x5c must hold 1 to {MAX_CHAIN} certificates"));
    }
    let mut ders = Vec::with_capacity(chain.len());
    for c in chain {
        let der = base64::engine::general_purpose::STANDARD
            .decode(c)
            .map_err(|_| "x5c holds a certificate that is not base64".to_owned())?;
        ders.push(CertificateDer::from(der));
    }
    let leaf = webpki::EndEntityCert::try_from(&ders[0]).map_err(|e| format!("x5c leaf: {e:?}"))?;
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        &ders[1..],
        UnixTime::now(),
        AnyUsage,
        None,
        None,
    )
    .map_err(|e| format!("x5c chain not trusted: {e:?}"))?;
    let not_after = {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(&ders[0]).map_err(|e| format!("x5c leaf: {e}"))?;
        u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0)
    };
    let pem = crate::tls::pem_encode("CERTIFICATE", &ders[0]);
    let key = pem_keys(pem.as_bytes())?.pop().ok_or_else(|| "x5c leaf has no usable key".to_owned())?;
    Ok((key, not_after))
}

/// The keys of a JWKS document. Keys for other uses (`use` other than `sig`) are skipped.
pub(crate) fn jwks_keys(text: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)) {
            continue;
        }
        keys.push(jwk_key(jwk).map_err(|e| format!("keys[{i}]: {e}"))?);
    }
    if keys.is_empty() {
        return Err("the JWKS has no signing keys".into());
    }
    Ok(keys)
}

pub(crate) fn jwk_key(jwk: &Jwk) -> Result<Key, String> {
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    let mut ids = Vec::new();
    ids.extend(jwk.common.key_id.clone());
    ids.extend(jwk.thumbprint(ThumbprintHash::SHA256).ok());
    let family = key.family();
    if family == AlgorithmFamily::Hmac {
        return Err("symmetric (oct) keys are not accepted".into());
    }
    Ok(Key { ids, key, family })
}

/// Keys in PEM text: `PUBLIC KEY` blocks and the public keys of `CERTIFICATE` blocks.
pub(crate) fn pem_keys(pem: &[u8]) -> Result<Vec<Key>, String> {
    let mut out = Vec::new();
    for (label, der) in crate::tls::pem_items(pem) {
        let spki = match label.as_str() {
            "PUBLIC KEY" => der,
            "CERTIFICATE" => {
                use x509_parser::prelude::*;
                let (_, cert) =
                    X509Certificate::from_der(&der).map_err(|e| format!("bad certificate: {e}"))?;
                cert.tbs_certificate.subject_pki.raw.to_vec()
            }
            "RSA PUBLIC KEY" => return Err("use a `PUBLIC KEY` (SPKI) PEM block, not PKCS#1".into()),
            _ => continue,
        };
        let text = crate::tls::pem_encode("PUBLIC KEY", &spki);
        let key = DecodingKey::from_ec_pem(text.as_bytes())
            .or_else(|_| DecodingKey::from_ed_pem(text.as_bytes()))
            .or_else(|_| DecodingKey::from_rsa_pem(text.as_bytes()))
            .map_err(|e| format!("unsupported public key: {e}"))?;
        let mut ids = vec![libtrust_kid(&spki)];
        if let Ok(jwk) = Jwk::from_decoding_key(&key, None)
            && let Ok(t) = jwk.thumbprint(ThumbprintHash::SHA256)
        {
            ids.push(t);
        }
        let family = key.family();
        out.push(Key { ids, key, family });
    }
    Ok(out)
}

/// The key id libtrust (and distribution before v3) gives a key: SHA-256 of the SPKI, first 240 bits in
/// base32, in groups of four.
fn libtrust_kid(spki: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = Sha256::digest(spki);
    let bits = &hash[..30];
    let mut chars = String::with_capacity(59);
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in bits {
        acc = (acc << 8) | u32::from(b);
        n += 8;
        while n >= 5 {
            n -= 5;
            let idx = ((acc >> n) & 31) as usize;
            if chars.len() % 5 == 4 {
                chars.push(':');
            }
            chars.push(char::from(ALPHABET[idx]));
        }
    }
    chars
}

struct IssuerVerifier {
    issuer: Issuer,
    /// PEM keys and certificates (and the token service's own keys): fixed for the process's life.
    fixed: Vec<Key>,
    /// The JWKS file's keys, re-read when the file changes.
    file: ArcSwap<Vec<Key>>,
    /// The JWKS file's modification time and length when last read.
    file_stamp: Mutex<Option<(SystemTime, u64)>>,
    /// The JWKS URL's keys, refreshed in the background (kept when a refresh fails).
    url: ArcSwap<Vec<Key>>,
    /// When the JWKS URL was last fetched (successfully or not).
    url_fetched: Mutex<Option<Instant>>,
    /// The client for the JWKS URL (with the issuer's CA, if any).
    http: Option<reqwest::Client>,
    /// The token service's own issuer.
    own: bool,
    /// Trust anchors for `x5c` chains (`root_cert_bundle`).
    anchors: Vec<TrustAnchor<'static>>,
    /// Leaf keys of chains verified before, by SHA-256 of the chain, with the leaf's expiry.
    chains: Mutex<HashMap<[u8; 32], (Key, u64)>>,
    /// One validation per key family, holding the issuer's algorithms of that family (jsonwebtoken wants
    /// every algorithm of a validation to fit the key).
    validations: Vec<(AlgorithmFamily, Validation)>,
}

impl IssuerVerifier {
    /// The key of a token's `x5c` chain, verified against the issuer's roots (once per chain).
    fn chain_key(&self, chain: &[String]) -> Result<Key, BearerError> {
        let mut h = Sha256::new();
        for c in chain {
            h.update(c.as_bytes());
            h.update(b",");
        }
        let id: [u8; 32] = h.finalize().into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((k, not_after)) = lock(&self.chains).get(&id)
            && now < *not_after
        {
            return Ok(k.clone());
        }
        let (key, not_after) = x5c_key(chain, &self.anchors).map_err(BearerError::Invalid)?;
        let mut cache = lock(&self.chains);
        if cache.len() >= CHAIN_CACHE_CAP {
            cache.retain(|_, (_, t)| now < *t);
            if cache.len() >= CHAIN_CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(id, (key.clone(), not_after));
        Ok(key)
    }
}

/// An unknown `kid` of an issuer with a JWKS URL fetches the URL again at most this often.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(5);

/// Verifies bearer tokens of the configured issuers.
pub struct BearerAuth {
    issuers: Vec<IssuerVerifier>,
    groups: Arc<Groups>,
    verified: RwLock<TokenCache>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").field("issuers", &self.issuers.len()).finish()
    }
}

/// An issuer whose keys are in memory: the token service's own.
pub struct OwnIssuer {
    /// Its settings (issuer, audience, algorithms).
    pub issuer: Issuer,
    /// Its public keys.
    pub keys: Vec<Key>,
}

impl BearerAuth {
    /// Loads every issuer's key files (JWKS URLs are fetched by [`BearerAuth::refresh_urls`]).
    pub fn load(
        issuers: &[Issuer],
        own: Option<OwnIssuer>,
        groups: Arc<Groups>,
    ) -> Result<BearerAuth, String> {
        let mut out = Vec::new();
        let own = own.map(|o| (o.issuer, o.keys));
        let all = issuers.iter().map(|i| (i.clone(), None)).chain(own.map(|(i, k)| (i, Some(k))));
        for (issuer, own_keys) in all {
            let own_keys_given = own_keys.is_some();
            let fixed = match own_keys {
                Some(k) => k,
                None => {
                    let pem_only = Issuer { jwks_file: None, ..issuer.clone() };
                    IssuerKeys::load(&pem_only)?.keys
                }
            };
            let anchors = match &issuer.root_cert_bundle {
                Some(path) => root_bundle(path)?.1,
                None => Vec::new(),
            };
            let mut algorithms = Vec::new();
            for a in &issuer.algorithms {
                algorithms.push(Algorithm::from_str(a).map_err(|e| format!("algorithm {a:?}: {e}"))?);
            }
            let mut validations = Vec::new();
            for family in [AlgorithmFamily::Rsa, AlgorithmFamily::Ec, AlgorithmFamily::Ed] {
                let of_family: Vec<Algorithm> =
                    algorithms.iter().copied().filter(|a| a.family() == family).collect();
                let Some(first) = of_family.first() else { continue };
                let mut validation = Validation::new(*first);
                validation.algorithms = of_family;
                validation.leeway = issuer.leeway.as_secs();
                validation.validate_nbf = true;
                validation.set_issuer(&[&issuer.issuer]);
                validation.set_audience(&issuer.audiences);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validations.push((family, validation));
            }
            let http = jwks_client(&issuer)?;
            let v = IssuerVerifier {
                issuer,
                fixed,
                file: ArcSwap::from_pointee(Vec::new()),
                file_stamp: Mutex::new(None),
                url: ArcSwap::from_pointee(Vec::new()),
                url_fetched: Mutex::new(None),
                http,
                own: own_keys_given,
                anchors,
                chains: Mutex::new(HashMap::new()),
                validations,
            };
            if let Some(path) = &v.issuer.jwks_file {
                let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                v.file.store(Arc::new(jwks_keys(&text).map_err(|e| format!("{}: {e}", path.display()))?));
                *lock(&v.file_stamp) = stamp(path);
            }
            out.push(v);
        }
        Ok(BearerAuth { issuers: out, groups, verified: RwLock::new(TokenCache::default()) })
    }

    /// The folders of JWKS files (watched for changes).
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        self.issuers
            .iter()
            .filter_map(|i| i.issuer.jwks_file.as_deref()?.parent().map(Path::to_path_buf))
            .collect()
    }

    /// Re-reads the JWKS files that changed. A file that no longer parses keeps the keys read before.
    pub fn refresh_files(&self) {
        for i in &self.issuers {
            let Some(path) = &i.issuer.jwks_file else { continue };
            let now = stamp(path);
            if now.is_none() || *lock(&i.file_stamp) == now {
                continue;
            }
            match std::fs::read(path).map_err(|e| e.to_string()).and_then(|t| jwks_keys(&t)) {
                Ok(keys) => {
                    tracing::info!(issuer = %i.issuer.issuer, file = %path.display(), keys = keys.len(), "JWKS file reloaded");
                    i.file.store(Arc::new(keys));
                    *lock(&i.file_stamp) = now;
                    self.forget_verified();
                }
                Err(e) => {
                    tracing::warn!(issuer = %i.issuer.issuer, file = %path.display(), error = %e, "JWKS file not reloaded; keeping the keys read before");
                }
            }
        }
    }

    /// Fetches every JWKS URL (in the background, every `jwks_refresh`). A failed fetch keeps the keys
    /// fetched before (stale if error).
    pub async fn refresh_urls(&self) {
        for i in 0..self.issuers.len() {
            self.fetch_url(i).await;
        }
    }

    /// How often the JWKS URLs are fetched (the shortest of the issuers' intervals), if any issuer has one.
    pub fn url_refresh_interval(&self) -> Option<Duration> {
        self.issuers.iter().filter(|i| i.issuer.jwks_url.is_some()).map(|i| i.issuer.jwks_refresh).min()
    }

    /// Does an issuer with a JWKS URL hold no keys from it yet (the first fetch failed)?
    pub fn urls_missing_keys(&self) -> bool {
        self.issuers.iter().any(|i| i.issuer.jwks_url.is_some() && i.url.load().is_empty())
    }

    async fn fetch_url(&self, index: usize) -> bool {
        let issuer = &self.issuers[index];
        let (Some(url), Some(http)) = (&issuer.issuer.jwks_url, &issuer.http) else { return false };
        *lock(&issuer.url_fetched) = Some(Instant::now());
        let fetched = async {
            let mut request = http.get(url);
            if let Some(path) = &issuer.issuer.jwks_token_file {
                // Read each time: projected service-account tokens rotate.
                let token = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read jwks_token_file {}: {e}", path.display()))?;
                request = request.bearer_auth(token.trim());
            }
            let mut r = request.send().await.map_err(|e| e.without_url().to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = r.chunk().await.map_err(|e| e.without_url().to_string())? {
                if body.len() + chunk.len() > MAX_JWKS {
                    return Err(format!("the JWKS is larger than {MAX_JWKS} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            jwks_keys(&body)
        }
        .await;
        let url = redacted(url);
        match fetched {
            Ok(keys) => {
                let changed = {
                    let old = issuer.url.load();
                    old.len() != keys.len() || old.iter().zip(keys.iter()).any(|(a, b)| a.ids != b.ids)
                };
                if changed {
                    tracing::info!(issuer = %issuer.issuer.issuer, url = %url, keys = keys.len(), "JWKS fetched");
                    issuer.url.store(Arc::new(keys));
                    self.forget_verified();
                }
                true
            }
            Err(e) => {
                METRICS.upstream_errors.with_label_values(&["jwks"]).inc();
                tracing::warn!(issuer = %issuer.issuer.issuer, url = %url, error = %e, "JWKS fetch failed; keeping the keys fetched before");
                false
            }
        }
    }

    /// After a token named an unknown key: fetches the issuer's JWKS URL again (at most every 5 s), and
    /// says whether it is worth verifying the token again.
    pub async fn refetch_for_unknown_key(&self, token: &str) -> bool {
        let Ok(claims) = jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token) else {
            return false;
        };
        let Some(iss) = claims.get("iss").and_then(Value::as_str) else { return false };
        let Some(index) =
            self.issuers.iter().position(|i| i.issuer.issuer == iss && i.issuer.jwks_url.is_some())
        else {
            return false;
        };
        {
            // Checked and claimed in one step, so concurrent requests with unknown keys fetch once.
            let mut last = lock(&self.issuers[index].url_fetched);
            if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.fetch_url(index).await
    }

    fn forget_verified(&self) {
        if let Ok(mut cache) = self.verified.write() {
            cache.clear();
        }
    }

    /// Verifies a token (the part after `Bearer `).
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, BearerError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(BearerError::Malformed);
        }
        let now = jsonwebtoken::get_current_timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Ok(cache) = self.verified.read()
            && let Some((v, _)) = cache.map.get(&digest)
            && now < v.expires
        {
            return Ok(v.clone());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| BearerError::Malformed)?;
        let unverified: Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| BearerError::Malformed)?;
        let iss = unverified.get("iss").and_then(Value::as_str).ok_or(BearerError::UnknownIssuer)?;
        let issuer =
            self.issuers.iter().find(|i| i.issuer.issuer == iss).ok_or(BearerError::UnknownIssuer)?;
        let family = header.alg.family();
        if family == AlgorithmFamily::Hmac {
            return Err(BearerError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let (file, url) = (issuer.file.load(), issuer.url.load());
        let all = || issuer.fixed.iter().chain(file.iter()).chain(url.iter());
        // A certificate chain in the header, when the issuer has roots, decides the key on its own.
        let chained = match &header.x5c {
            Some(chain) if !issuer.anchors.is_empty() => Some(issuer.chain_key(chain)?),
            _ => None,
        };
        let candidates: Vec<&Key> = match (&chained, &header.kid) {
            (Some(k), _) => vec![k],
            (None, Some(kid)) => all().filter(|k| k.ids.iter().any(|id| id == kid)).collect(),
            (None, None) => all().filter(|k| k.family == family).collect(),
        };
        if candidates.is_empty() {
            return Err(if header.kid.is_some() {
                BearerError::UnknownKey
            } else {
                BearerError::Invalid("no key of the token's algorithm family".into())
            });
        }
        let mut last = None;
        for key in candidates {
            let Some((_, validation)) =
                issuer.validations.iter().find(|(f, _)| *f == key.family && *f == family)
            else {
                last = Some(format!("algorithm {:?} is not accepted for this key", header.alg));
                continue;
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => {
                    let verified = Arc::new(self.build(issuer, data.claims)?);
                    if let Ok(mut cache) = self.verified.write() {
                        cache.insert(digest, verified.clone(), 2 * token.len() + 256, now);
                    }
                    return Ok(verified);
                }
                Err(e) => last = Some(describe(&e)),
            }
        }
        Err(BearerError::Invalid(last.unwrap_or_else(|| "invalid".into())))
    }

    fn build(&self, verifier: &IssuerVerifier, claims: Map<String, Value>) -> Result<Verified, BearerError> {
        let issuer = &verifier.issuer;
        let expires = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let subject = lookup(&claims, &issuer.subject_claim).and_then(Value::as_str).unwrap_or("").to_owned();
        // Only the token service's own tokens may be anonymous (an empty `sub`, issued to a caller without
        // credentials); an empty subject from anyone else is refused, never taken for "anonymous".
        if subject.is_empty() && !verifier.own {
            return Err(BearerError::Invalid(format!(
                "the token names no subject (claim {:?})",
                issuer.subject_claim
            )));
        }
        let subject = if issuer.subject_prefix.is_empty() || subject.is_empty() {
            subject
        } else {
            format!("{}{subject}", issuer.subject_prefix)
        };
        let mut groups: Vec<String> = match lookup(&claims, &issuer.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        for g in self.groups.of(&subject) {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let access = match claims.get("access") {
            None => None,
            Some(v) => {
                Some(parse_access(v).ok_or_else(|| BearerError::Invalid("malformed access claim".into()))?)
            }
        };
        let principal = Principal::new(subject, groups, AuthMethod::Bearer).with_claims(claims);
        Ok(Verified { principal: Arc::new(principal), access, expires })
    }
}

/// A claim by dotted path (`realm_access.roles`). Keys may contain dots themselves (`kubernetes.io` in
/// Kubernetes tokens, URL-named claims): at each level the whole rest is tried first, then every split.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| {
        let inner = claims.get(&path[..i])?.as_object()?;
        lookup(inner, &path[i + 1..])
    })
}

fn parse_access(v: &Value) -> Option<Arc<[Access]>> {
    let mut out = Vec::new();
    for entry in v.as_array()? {
        let kind = entry.get("type")?.as_str()?;
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        let name = entry.get("name")?.as_str()?;
        let actions = match entry.get("actions") {
            None | Some(Value::Null) => Vec::new(),
            Some(a) => {
                a.as_array()?.iter().map(|a| a.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?
            }
        };
        out.push(Access { kind: kind.to_owned(), name: name.to_owned(), actions });
    }
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtrust_kids_have_twelve_groups_of_four() {
        let kid = libtrust_kid(b"any key bytes");
        assert_eq!(kid.len(), 59);
        assert_eq!(kid.split(':').count(), 12);
        assert!(
            kid.split(':')
                .all(|g| g.len() == 4
                    && g.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)))
        );
    }

    #[test]
    fn access_claims_parse_and_ignore_plugin_classes() {
        let v = serde_json::json!([
            {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
            {"type": "repository(plugin)", "name": "p", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]}
        ]);
        let a = parse_access(&v).expect("parses");
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].kind, "repository");
        assert!(parse_access(&serde_json::json!([{"type": 1}])).is_none());
    }

    #[test]
    fn dotted_claim_paths() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "realm_access": {"roles": ["ops"]},
            "https://example.com/groups": ["dev"]
        }))
        .expect("map");
        assert_eq!(lookup(&claims, "realm_access.roles"), Some(&serde_json::json!(["ops"])));
        assert_eq!(lookup(&claims, "https://example.com/groups"), Some(&serde_json::json!(["dev"])));
        assert_eq!(lookup(&claims, "nope.x"), None);
        let k8s: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}}
        }))
        .expect("map");
        assert_eq!(lookup(&k8s, "kubernetes.io.namespace"), Some(&serde_json::json!("ci")));
        assert_eq!(lookup(&k8s, "kubernetes.io.serviceaccount.name"), Some(&serde_json::json!("builder")));
    }
}
