//! `ocigate policy check | eval | test`.

use std::path::Path;
use std::process::ExitCode;

use policy::testing::{self, ClientSpec, PrincipalSpec, RequestSpec, TestFile};

use crate::cli::{CheckArgs, EvalArgs, EvalMethod, TestArgs};
use crate::policy_files;

/// Compiles and reports: exit 0 when the policy is valid, 1 otherwise.
pub fn check(args: &CheckArgs) -> ExitCode {
    let texts = match policy_files::read(&args.files) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    match policy_files::compile(&texts) {
        Ok(p) => {
            println!("ok: {} rules in {} files", p.rule_count(), texts.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} errors", errors.0.len());
            ExitCode::from(1)
        }
    }
}

/// Decides one request: exit 0 allow, 1 deny, 2 usage or policy error.
pub fn eval(args: &EvalArgs) -> ExitCode {
    match try_eval(args) {
        Ok(allowed) => ExitCode::from(if allowed { 0 } else { 1 }),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn try_eval(args: &EvalArgs) -> Result<bool, String> {
    let texts = policy_files::read(&args.policy).map_err(|e| format!("{e:#}"))?;
    let policy = policy_files::compile(&texts).map_err(|e| format!("the policy does not compile:\n{e}"))?;
    let claims = match &args.claims {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => return Err("--claims must be a JSON object".into()),
            Err(e) => return Err(format!("--claims is not JSON: {e}")),
        },
    };
    let method = match args.method {
        EvalMethod::Basic => "basic",
        EvalMethod::Bearer => "bearer",
        EvalMethod::Mtls => "mtls",
    };
    if !args.groups.is_empty() && args.user.as_deref().unwrap_or("").is_empty() {
        return Err("--group needs --user (an anonymous caller has no groups)".into());
    }
    let principal = PrincipalSpec {
        name: args.user.clone().filter(|_| !args.anonymous),
        groups: args.groups.clone(),
        anonymous: args.anonymous,
        method: Some(method.into()),
        claims,
    }
    .to_principal()?;
    if args.action != "catalog" && args.repository.as_deref().unwrap_or("").is_empty() {
        return Err("--repository is required (except for --action catalog)".into());
    }
    let request = RequestSpec {
        action: args.action.clone(),
        repository: args.repository.clone().unwrap_or_default(),
        reference: args.reference.clone(),
        method: args.http_method.clone(),
        path: args.path.clone(),
        mount_from: args.mount_from.clone(),
        time: args.time.clone(),
    };
    let client = ClientSpec {
        ip: args.client_ip,
        peer_ip: args.peer_ip.or(args.client_ip),
        forwarded_for: args.forwarded_for.clone(),
        tls: None,
    };
    let d = testing::decide(&policy, &principal, &client, &request)?;
    if args.json {
        let v = serde_json::json!({
            "decision": if d.allowed { "allow" } else { "deny" },
            "allowed": d.allowed,
            "rule": d.rule.as_deref(),
            "reason": d.reason.as_str(),
            "message": d.message.as_deref(),
            "error": d.error,
        });
        println!("{v}");
    } else {
        println!("{d}");
    }
    Ok(d.allowed)
}

/// Runs table tests: exit 0 when every case passes, 1 otherwise.
pub fn test(args: &TestArgs) -> ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &args.files {
        match run_file(file) {
            Ok(results) => {
                for r in results {
                    match (&r.failure, &r.decision) {
                        (None, _) => {
                            passed += 1;
                            println!("PASS {}: {}", file.display(), r.name);
                        }
                        (Some(why), d) => {
                            failed += 1;
                            let got = d.as_ref().map(|d| format!(" (got: {d})")).unwrap_or_default();
                            println!("FAIL {}: {}: {why}{got}", file.display(), r.name);
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: cannot run: {e}", file.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn run_file(path: &Path) -> Result<Vec<testing::CaseResult>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let file: TestFile = serde_saphyr::from_str(&text).map_err(|e| format!("not a test file: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let paths: Vec<_> = file.policy.to_vec().into_iter().map(|p| dir.join(p)).collect();
    let texts = policy_files::read(&paths).map_err(|e| format!("{e:#}"))?;
    let policy = policy_files::compile(&texts).map_err(|e| format!("the policy does not compile:\n{e}"))?;
    Ok(testing::run(&policy, &file.cases))
}
