//! Repository and tag globs: `*` and `?` stay inside one path segment, `**` crosses segments, `[...]`
//! classes and `{a,b}` alternatives work (globset with a literal separator).

use globset::{Glob, GlobBuilder};

/// Compiles one glob with the policy's syntax.
pub fn compile(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).backslash_escape(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        compile(p).unwrap().compile_matcher().is_match(s)
    }

    #[test]
    fn segments() {
        assert!(m("team-a/*", "team-a/api"));
        assert!(!m("team-a/*", "team-a/api/v2"));
        assert!(m("team-a/**", "team-a/api/v2"));
        assert!(!m("team-a/**", "team-a"));
        assert!(m("**", "anything/at/all"));
        assert!(m("*/api", "x/api"));
        assert!(!m("*/api", "x/y/api"));
        assert!(m("**/api", "x/y/api"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("{team-a,team-b}/**", "team-b/x"));
        assert!(m("v[0-9]*", "v1.2"));
        assert!(!m("v?", "v10"));
        assert!(compile("a/[").is_err());
    }
}
