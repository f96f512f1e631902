//! Keys, certificates and tokens made at test time: a CA with server and client certificates (TLS and
//! mTLS tests), a JWT signer (bearer-token issuers), and a small Docker token server (the realm a
//! token-authenticated upstream sends the gateway to).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use serde_json::{Value, json};

/// A certificate and its key, PEM.
pub struct Pem {
    /// Certificate.
    pub cert: String,
    /// PKCS#8 private key.
    pub key: String,
}

impl Pem {
    /// Writes `<name>.crt` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) {
        std::fs::write(dir.join(format!("{name}.crt")), &self.cert).expect("write cert");
        std::fs::write(dir.join(format!("{name}.key")), &self.key).expect("write key");
    }
}

/// A certificate authority for tests.
pub struct Ca {
    /// Its certificate, PEM.
    pub cert: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, cn: &str) -> Pem {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        Pem { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// A client certificate with common name `cn` and, optionally, a URI SAN (e.g. a SPIFFE id).
    pub fn client(&self, cn: &str, uri: Option<&str>) -> Pem {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(u) = uri {
            params.subject_alt_names.push(SanType::URI(u.try_into().expect("uri")));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("client certificate");
        Pem { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// The key id libtrust (distribution 2.x) gives a public key: SHA-256 of its SPKI, first 240 bits in
/// base32, in groups of four.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = sha2::Sha256::digest(spki_der);
    let mut out = String::new();
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in &hash[..30] {
        acc = (acc << 8) | u32::from(b);
        n += 8;
        while n >= 5 {
            n -= 5;
            if out.len() % 5 == 4 {
                out.push(':');
            }
            out.push(char::from(ALPHABET[((acc >> n) & 31) as usize]));
        }
    }
    out
}

/// An ES256 token signer with a self-signed certificate.
pub struct Signer {
    /// The certificate (PEM): what a verifier trusts.
    pub cert: String,
    /// The public key (SPKI PEM).
    pub public_key: String,
    /// libtrust key id of the key.
    pub kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Signer {
    /// A new signer.
    pub fn new(name: &str) -> Signer {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("certificate");
        let kid = libtrust_kid(&rcgen::PublicKeyData::subject_public_key_info(&key));
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("ES256 key");
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("jwk");
        let jwk = serde_json::to_value(jwk).expect("jwk json");
        Signer { cert: cert.pem(), public_key: key.public_key_pem(), kid, encoding, jwk }
    }

    /// A JWKS holding the key, with `kid`.
    pub fn jwks(&self, kid: &str) -> Value {
        let mut k = self.jwk.clone();
        k["kid"] = json!(kid);
        k["use"] = json!("sig");
        json!({ "keys": [k] })
    }

    /// Signs `claims` (ES256) with `kid` in the header (none when `None`).
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A Docker token server (`GET /token?service=&scope=`) that checks Basic credentials and signs tokens
/// distribution accepts; it remembers the scopes it was asked for.
pub struct TokenServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    /// Serves on a free loopback port: tokens by `signer` for `issuer` and `service`, to the holder of
    /// `user:password`, granting exactly the scopes asked for.
    pub fn start(
        signer: Arc<Signer>,
        issuer: &str,
        service: &str,
        user: &str,
        password: &str,
    ) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (issuer, service) = (issuer.to_owned(), service.to_owned());
        let expected = format!("Basic {}", crate::gateway::base64(&format!("{user}:{password}")));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = v.trim().to_owned();
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let query = target.split_once('?').map_or("", |(_, q)| q);
                let mut scopes = Vec::new();
                for kv in query.split('&') {
                    if let Some(v) = kv.strip_prefix("scope=") {
                        scopes.push(percent_decode(v));
                    }
                }
                seen.lock().expect("lock").push(scopes.join(" "));
                let (status, body) = if auth != expected {
                    ("401 Unauthorized", json!({"errors": [{"code": "UNAUTHORIZED"}]}))
                } else {
                    let access: Vec<Value> = scopes
                        .iter()
                        .filter_map(|s| {
                            let (rest, actions) = s.rsplit_once(':')?;
                            let (kind, name) = rest.split_once(':')?;
                            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                        })
                        .collect();
                    let t = now();
                    let claims = json!({
                        "iss": issuer, "sub": user_of(&auth), "aud": service,
                        "exp": t + 300, "nbf": t - 5, "iat": t, "jti": format!("{t}-{}", seen.lock().expect("lock").len()),
                        "access": access,
                    });
                    let token = signer.sign(Some(&signer.kid), &claims);
                    ("200 OK", json!({"token": token, "access_token": token, "expires_in": 300}))
                };
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
                let mut sink = [0u8; 1];
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
                let _ = stream.read(&mut sink);
            }
        });
        TokenServer { addr, requests }
    }

    /// The realm URL.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The scope sets asked for so far (space-separated per request).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn user_of(auth: &str) -> String {
    auth.strip_prefix("Basic ").map(|_| "gateway".to_owned()).unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
