//! Repository and tag globs: `*` and `?` stay inside one path segment, `**` crosses segments, `[...]`
//! classes and `{a,b}` alternatives work (globset with a literal separator).

use globset::{Glob, GlobBuilder};

/// Compiles one glob with the policy's syntax.
pub fn compile(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(&confine_negated_classes(pattern)).literal_separator(true).backslash_escape(true).build()
}

/// A negated class (`[!0-9]`) must not match `/` either: `[!...]` becomes `[!.../]`.
fn confine_negated_classes(p: &str) -> std::borrow::Cow<'_, str> {
    if !p.contains("[!") && !p.contains("[^") {
        return std::borrow::Cow::Borrowed(p);
    }
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '[' && matches!(chars.get(i + 1), Some('!' | '^')) {
            // A `]` right after the negation is a literal member, not the end.
            let mut j = i + 2;
            if chars.get(j) == Some(&']') {
                j += 1;
            }
            while j < chars.len() && chars[j] != ']' {
                j += 1;
            }
            if j >= chars.len() {
                out.extend(&chars[i..]); // unclosed: globset reports it
                break;
            }
            out.extend(&chars[i..j]);
            out.push_str("/]");
            i = j + 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
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
        // Negated classes stay inside a segment too.
        assert!(m("apps/v[!0-9]*", "apps/vx"));
        assert!(!m("apps/v[!0-9]*", "apps/v/x"));
        assert!(!m("apps/v[^0-9]*", "apps/v/x"));
        assert!(m("a/[!]]", "a/b"));
        assert!(!m("a/[!]]", "a/]"));
    }
}
