//! `WWW-Authenticate` challenges of an upstream registry (RFC 7235 auth-params).

use std::collections::HashMap;

/// One challenge: its scheme (lowercase) and parameters (keys lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer`, `basic`...
    pub scheme: String,
    /// `realm`, `service`, `scope`...
    pub params: HashMap<String, String>,
}

/// Parses a header value, which may hold several challenges.
pub fn parse(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        // A token followed by `=` is a parameter of the current challenge; otherwise it is a new scheme.
        let end = rest.find([' ', '=', ',']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(v) = after.strip_prefix('=')
            && let Some(current) = out.last_mut()
        {
            let (val, remaining) = value_of(v.trim_start());
            current.params.insert(token.to_ascii_lowercase(), val);
            rest = remaining;
        } else {
            out.push(Challenge { scheme: token.to_ascii_lowercase(), params: HashMap::new() });
            rest = &rest[end..];
        }
    }
    out
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn value_of(s: &str) -> (String, &str) {
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => return (out, &q[i + 1..]),
                c => out.push(c),
            }
        }
        (out, "")
    } else {
        let end = s.find([',', ' ']).unwrap_or(s.len());
        (s[..end].to_owned(), &s[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_style() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/alpine:pull");
    }

    #[test]
    fn several_challenges_escapes_and_tokens() {
        let c = parse(r#"Basic realm="a \"b\"", Bearer realm=https://x/token, error="invalid_token""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].params["realm"], "a \"b\"");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "https://x/token");
        assert_eq!(c[1].params["error"], "invalid_token");
        assert!(parse("").is_empty());
        assert_eq!(parse("Basic").len(), 1);
        let c = parse(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].params["realm"], "unterminated");
    }
}
