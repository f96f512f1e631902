//! The list of repositories.

use std::fs;
use std::io;
use std::path::Path;

use super::Store;
use crate::fsio;
use crate::layout::is_repository_component;

impl Store {
    /// Every repository name, sorted lexically.
    pub fn repositories(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        walk(&self.layout.repositories_dir(), &mut String::new(), &mut names)?;
        names.sort_unstable();
        Ok(names)
    }
}

/// Depth-first walk: a folder is a repository when it holds `_manifests` or `_layers`; folders whose names
/// can start a repository component are searched for nested repositories.
fn walk(dir: &Path, prefix: &mut String, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if fsio::not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut is_repository = false;
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == "_manifests" || name == "_layers" {
            is_repository = true;
        } else if is_repository_component(&name) && entry.file_type()?.is_dir() {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(&name);
            walk(&entry.path(), prefix, out)?;
            prefix.truncate(len);
        }
    }
    if is_repository && !prefix.is_empty() {
        out.push(prefix.clone());
    }
    Ok(())
}
