//! Reading policy files from disk (the policy crate itself does no I/O).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A policy file's name (its path, as given) and its text.
#[derive(Debug, Clone)]
pub struct PolicyText {
    /// The path, for messages.
    pub name: String,
    /// The YAML.
    pub text: String,
}

/// Reads files, and the `*.yaml` / `*.yml` files of folders (sorted; names starting with `.` skipped, as
/// Kubernetes keeps its own `..data` entries there).
pub fn read(paths: &[PathBuf]) -> anyhow::Result<Vec<PolicyText>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) {
                    files.push(entry.path());
                }
            }
            files.sort();
            for f in files {
                out.push(read_one(&f)?);
            }
        } else {
            out.push(read_one(path)?);
        }
    }
    Ok(out)
}

fn read_one(path: &Path) -> anyhow::Result<PolicyText> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    Ok(PolicyText { name: path.display().to_string(), text })
}

/// Compiles what [`read`] returned.
pub fn compile(texts: &[PolicyText]) -> Result<policy::Policy, policy::PolicyErrors> {
    let sources: Vec<policy::Source<'_>> =
        texts.iter().map(|t| policy::Source { name: &t.name, text: &t.text }).collect();
    policy::compile(&sources)
}
