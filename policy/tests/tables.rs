//! Runs every table in tests/cases/ (the same runner as `ocigate policy test`).

#![allow(clippy::unwrap_used)] // in tests, unwrap is the assertion

use std::path::Path;

use policy::testing::{TestFile, run};

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let file: TestFile = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().unwrap();
    let texts: Vec<(String, String)> = file
        .policy
        .to_vec()
        .into_iter()
        .map(|p| {
            let full = dir.join(&p);
            (full.display().to_string(), std::fs::read_to_string(&full).unwrap())
        })
        .collect();
    let sources: Vec<policy::Source> =
        texts.iter().map(|(n, t)| policy::Source { name: n, text: t }).collect();
    let compiled = policy::compile(&sources).unwrap_or_else(|e| panic!("{e}"));
    run(&compiled, &file.cases)
        .into_iter()
        .filter_map(|r| r.failure.map(|f| format!("{}: {}: {f}", path.display(), r.name)))
        .collect()
}

#[test]
fn decision_tables() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut failures = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !name.ends_with("-policy.yaml") {
            files += 1;
            failures.extend(run_file(&path));
        }
    }
    assert!(files > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
