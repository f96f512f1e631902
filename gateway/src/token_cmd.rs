//! `ocigate token keygen` and `ocigate token mint`.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use policy::{AuthMethod, Principal};

use crate::authn::{Authenticator, Groups};
use crate::cli::{KeygenArgs, MintArgs};
use crate::reload::PolicyStore;
use crate::token::keys::generate_pem;
use crate::token::scope::parse_all;
use crate::token::{AccessEntry, TokenService};

/// Writes a new signing key.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let pem = generate_pem(&args.algorithm).map_err(|e| anyhow!("--algorithm: {e}"))?;
    match &args.out {
        None => print!("{pem}"),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
            f.write_all(pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote a {} key to {}", args.algorithm, path.display());
        }
    }
    Ok(())
}

/// Mints a token with the configured service's key.
pub fn mint(args: &MintArgs) -> anyhow::Result<()> {
    pingora::tls::install_default_crypto_provider();
    let settings = crate::serve::check(&args.config)?;
    let Some(ts) = settings.auth.token_service.clone() else {
        bail!("{}: auth.token_service is not configured", args.config.display());
    };
    if ts.keys.is_empty() {
        bail!(
            "{}: auth.token_service.keys is empty, so the running gateway signs with a key of its own that \
             no other process knows; configure a key (ocigate token keygen -o FILE)",
            args.config.display()
        );
    }
    let keys = TokenService::load_keys(&ts).map_err(|e| anyhow!("auth.token_service.keys: {e}"))?;
    let groups = Arc::new(Groups::new(&settings.auth.groups));
    let authn = Arc::new(
        Authenticator::load(&settings.auth, groups.clone(), None).map_err(|e| anyhow!("auth: {e}"))?,
    );
    let policy = Arc::new(PolicyStore::load(&settings.policy_paths).map_err(|e| anyhow!("policy: {e}"))?);
    let lifetime = args.lifetime.unwrap_or(ts.lifetime);
    let service = TokenService::new(ts, keys, authn, policy);
    let scopes = parse_all(args.scope.iter().map(String::as_str)).map_err(|e| anyhow!("--scope: {e}"))?;
    let access: Vec<AccessEntry> = if args.exact {
        scopes
            .into_iter()
            .filter(|s| !s.actions.is_empty())
            .map(|s| AccessEntry { kind: s.kind, class: s.class, name: s.name, actions: s.actions })
            .collect()
    } else {
        let principal =
            Principal::new(args.subject.clone(), groups.of(&args.subject).to_vec(), AuthMethod::Bearer);
        service.grants(&principal, &scopes)
    };
    let token = service.mint(&args.subject, &access, lifetime).map_err(|e| anyhow!(e))?;
    println!("{token}");
    Ok(())
}
