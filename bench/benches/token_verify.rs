//! What a bearer token costs the gateway: verification of a token seen for the first time (signature,
//! claims, principal) against one found in the cache, for each signing algorithm the token service has.
//!
//! `cargo bench -p bench --bench token_verify`

use std::sync::Arc;
use std::time::Duration;

use divan::Bencher;
use gateway::authn::Groups;
use gateway::authn::bearer::BearerAuth;
use gateway::config::TokenServiceSettings;
use gateway::token::TokenService;
use gateway::token::keys::TokenKeys;
use serde_json::json;

fn main() {
    divan::main();
}

struct Setup {
    keys: TokenKeys,
    auth: BearerAuth,
    n: std::sync::atomic::AtomicU64,
}

fn setup(alg: &str) -> Setup {
    let (keys, _) = TokenKeys::generate(alg).expect("key");
    let settings = TokenServiceSettings {
        service: "registry.bench".into(),
        issuer: "ocigate-bench".into(),
        realm: None,
        path: "/token".into(),
        keys: Vec::new(),
        lifetime: Duration::from_secs(300),
        refresh_lifetime: Duration::from_secs(3600),
    };
    let own = TokenService::own_issuer(&settings, &keys);
    let auth = BearerAuth::load(&[], Some(own), Arc::new(Groups::default())).expect("verifier");
    Setup { keys, auth, n: 0.into() }
}

impl Setup {
    /// A token like the token service issues (a distinct `jti` each time).
    fn token(&self) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.keys
            .sign(&json!({
                "iss": "ocigate-bench", "sub": "alice", "aud": "registry.bench",
                "exp": now + 300, "nbf": now, "iat": now, "jti": format!("{n:032x}"),
                "access": [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]
            }))
            .expect("sign")
    }
}

const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "RS256"];

/// A token never seen before: signature and claims checked, principal built, result cached.
#[divan::bench(args = ALGORITHMS)]
fn first_use(bencher: Bencher, alg: &str) {
    let s = setup(alg);
    bencher.with_inputs(|| s.token()).bench_local_values(|t| s.auth.verify(&t).expect("valid"));
}

/// The same token again: one hash and one map lookup.
#[divan::bench(args = ALGORITHMS)]
fn cached(bencher: Bencher, alg: &str) {
    let s = setup(alg);
    let t = s.token();
    s.auth.verify(&t).expect("valid");
    bencher.bench_local(|| s.auth.verify(divan::black_box(&t)).expect("valid"));
}
