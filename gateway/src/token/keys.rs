//! The token service's keys: the first signs, every key verifies (so a key taken out of signing keeps the
//! tokens it signed valid until they expire, and a key removed from the list revokes them, refresh tokens
//! included).
//!
//! Keys are PKCS#8 PEM private keys: P-256 (ES256), P-384 (ES384), Ed25519 (EdDSA) or RSA (RS256). Keys after
//! the first may also be `PUBLIC KEY` PEM files. Every token names its key by RFC 7638 thumbprint (`kid`).

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::authn::bearer::{Key, jwk_key, pem_keys};

/// Algorithms `ocigate token keygen` and the ephemeral key support.
pub const KEYGEN_ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256"];

/// The signing key.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
}

/// The token service's keys.
pub struct TokenKeys {
    signer: Signer,
    /// Every key as the resource server uses it.
    verifying: Vec<Key>,
    /// The public keys as a JWKS document.
    jwks: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("alg", &self.signer.alg)
            .field("kid", &self.signer.kid)
            .field("keys", &self.verifying.len())
            .finish()
    }
}

type LoadKey = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

/// A private key's signing form and public JWK.
fn private_key(pem: &[u8]) -> Result<(EncodingKey, Algorithm, Jwk), String> {
    let attempts: [(LoadKey, Algorithm); 4] = [
        (EncodingKey::from_ec_pem, Algorithm::ES256),
        (EncodingKey::from_ec_pem, Algorithm::ES384),
        (EncodingKey::from_ed_pem, Algorithm::EdDSA),
        (EncodingKey::from_rsa_pem, Algorithm::RS256),
    ];
    for (load, alg) in attempts {
        if let Ok(key) = load(pem)
            && let Ok(jwk) = Jwk::from_encoding_key(&key, alg)
        {
            return Ok((key, alg, jwk));
        }
    }
    Err("not a usable private key: give a PKCS#8 PEM (`BEGIN PRIVATE KEY`) with a P-256, P-384, Ed25519 or RSA \
         key (`ocigate token keygen` writes one)"
        .into())
}

fn with_thumbprint(mut jwk: Jwk) -> Result<(Jwk, String), String> {
    let kid =
        jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| format!("cannot compute the key id: {e}"))?;
    jwk.common.key_id = Some(kid.clone());
    Ok((jwk, kid))
}

impl TokenKeys {
    /// Reads the key files: the first must be a private key; later ones may be private or public.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<TokenKeys, String> {
        let mut signer = None;
        let mut verifying = Vec::new();
        let mut public = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let path = path.as_ref();
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if String::from_utf8_lossy(&pem).contains("ENCRYPTED PRIVATE KEY-----") {
                return Err(format!(
                    "{}: the key is encrypted; give it unencrypted (openssl pkcs8 -topk8 -nocrypt) and protect the file",
                    path.display()
                ));
            }
            if String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
                let (key, alg, jwk) = private_key(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
                let (jwk, kid) = with_thumbprint(jwk)?;
                verifying.push(jwk_key(&jwk).map_err(|e| format!("{}: {e}", path.display()))?);
                public.push(jwk);
                if signer.is_none() {
                    signer = Some(Signer { key, alg, kid });
                }
            } else if i == 0 {
                return Err(format!(
                    "{}: the first key signs, so it must be a private key (PKCS#8 PEM)",
                    path.display()
                ));
            } else {
                let keys = pem_keys(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
                if keys.is_empty() {
                    return Err(format!("{}: no PUBLIC KEY or PRIVATE KEY block", path.display()));
                }
                for k in keys {
                    if let Ok(jwk) = Jwk::from_decoding_key(&k.key, None)
                        && let Ok((jwk, _)) = with_thumbprint(jwk)
                    {
                        public.push(jwk);
                    }
                    verifying.push(k);
                }
            }
        }
        let signer = signer.ok_or("no keys")?;
        Ok(TokenKeys { signer, verifying, jwks: jwks_document(public) })
    }

    /// A new random key (for `keygen`, and the ephemeral key of a service configured without keys).
    pub fn generate(alg: &str) -> Result<(TokenKeys, String), String> {
        let pem = generate_pem(alg)?;
        let (key, alg, jwk) = private_key(pem.as_bytes())?;
        let (jwk, kid) = with_thumbprint(jwk)?;
        let verifying = vec![jwk_key(&jwk)?];
        Ok((TokenKeys { signer: Signer { key, alg, kid }, verifying, jwks: jwks_document(vec![jwk]) }, pem))
    }

    /// Signs claims with the signing key (`kid` = its thumbprint).
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, String> {
        let mut header = Header::new(self.signer.alg);
        header.kid = Some(self.signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signer.key).map_err(|e| format!("cannot sign: {e}"))
    }

    /// Verifies a token this service signed (any of its keys) for `audience`, returning its claims.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT".to_owned())?;
        let kid = header.kid.as_deref().ok_or("the token names no key")?;
        let key = self
            .verifying
            .iter()
            .find(|k| k.ids.iter().any(|id| id == kid))
            .ok_or("the token's key is not (or no longer) one of the service's keys")?;
        if header.alg.family() != key.family {
            return Err("the token's algorithm does not fit its key".into());
        }
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.leeway = 60;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    /// The keys for verification.
    pub fn verifying(&self) -> &[Key] {
        &self.verifying
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.signer.alg
    }

    /// The signing algorithm's JWS name.
    pub fn algorithm_name(&self) -> &'static str {
        match self.signer.alg {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            _ => "RS256",
        }
    }

    /// The signing key's id.
    pub fn kid(&self) -> &str {
        &self.signer.kid
    }

    /// `{"keys":[...]}` of every public key.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }
}

fn jwks_document(keys: Vec<Jwk>) -> Vec<u8> {
    serde_json::to_vec(&JwkSet { keys }).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec())
}

/// A new private key as PKCS#8 PEM.
pub fn generate_pem(alg: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    };
    let rng = SystemRandom::new();
    let failed = |_| format!("cannot generate a {alg} key");
    let der: Vec<u8> = match alg {
        "ES256" => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        "ES384" => EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        "EdDSA" => Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(failed)?.as_ref().to_vec(),
        "RS256" => {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(failed)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = key.as_der().map_err(failed)?;
            der.as_ref().to_vec()
        }
        other => return Err(format!("{other:?} is not one of {}", KEYGEN_ALGORITHMS.join(", "))),
    };
    Ok(crate::tls::pem_encode("PRIVATE KEY", &der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_algorithm_signs_and_names_its_key_by_thumbprint() {
        for alg in KEYGEN_ALGORITHMS {
            let (keys, pem) = TokenKeys::generate(alg).expect("generates");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(keys.algorithm(), alg.parse::<Algorithm>().expect("alg"));
            let token = keys.sign(&serde_json::json!({"sub": "x"})).expect("signs");
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!(header.kid.as_deref(), Some(keys.kid()));
            assert!(keys.verifying()[0].ids.iter().any(|id| id == keys.kid()));
            let set: JwkSet = serde_json::from_slice(keys.jwks()).expect("jwks");
            assert_eq!(set.keys[0].common.key_id.as_deref(), Some(keys.kid()));
        }
    }

    #[test]
    fn the_first_key_must_be_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let (_, pem) = TokenKeys::generate("ES256").expect("generates");
        let private = dir.path().join("k.pem");
        std::fs::write(&private, &pem).expect("write");
        let public = dir.path().join("pub.pem");
        std::fs::write(&public, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .expect("write");
        assert!(TokenKeys::load(&[&public]).unwrap_err().contains("must be a private key"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .expect("write");
        assert!(TokenKeys::load(&[&junk]).unwrap_err().contains("PKCS#8"));
        let two = TokenKeys::load(&[&private, &private]).expect("loads");
        assert_eq!(two.verifying().len(), 2);
    }
}
