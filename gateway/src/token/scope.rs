//! The scope grammar of the Docker/Distribution token specification:
//!
//! ```text
//! scope        := resourcescope [ ' ' resourcescope ]*
//! resourcescope := resourcetype  ":" resourcename  ":" action [ ',' action ]*
//! resourcetype := resourcetypevalue [ '(' resourcetypevalue ')' ]
//! resourcetypevalue := /[a-z0-9]+/
//! resourcename := [ hostname '/' ] component [ '/' component ]*
//! hostname     := hostcomponent ['.' hostcomponent]* [':' port-number]
//! action       := /[a-z]*/ | '*'
//! ```
//!
//! The name may hold colons (`localhost:5000/app`), so the type ends at the first colon and the actions
//! start after the last one.

/// Longest scope accepted (a repository name is at most 255 characters; this leaves room for a host).
const MAX_SCOPE: usize = 1024;

/// One parsed resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// `repository`, `registry`...
    pub kind: String,
    /// The resource class in parentheses (`plugin` of `repository(plugin)`), if any.
    pub class: Option<String>,
    /// Repository name or `catalog`.
    pub name: String,
    /// Actions as asked (`pull`, `push`, `delete`, `*`...), each once.
    pub actions: Vec<String>,
}

impl ResourceScope {
    /// The scope in the request grammar.
    pub fn to_scope_string(&self) -> String {
        let kind = match &self.class {
            Some(c) => format!("{}({c})", self.kind),
            None => self.kind.clone(),
        };
        format!("{kind}:{}:{}", self.name, self.actions.join(","))
    }
}

/// Why a scope does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError(pub String);

impl std::fmt::Display for ScopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_type_value(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Parses one resource scope (`repository:team/app:pull,push`).
pub fn parse_one(s: &str) -> Result<ResourceScope, ScopeError> {
    let bad = |why: &str| ScopeError(format!("scope {s:?}: {why}"));
    if s.len() > MAX_SCOPE {
        return Err(ScopeError(format!("a scope is longer than {MAX_SCOPE} characters")));
    }
    let (kind, rest) = s.split_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("expected type:name:actions"))?;
    let (kind, class) = match kind.split_once('(') {
        Some((k, c)) => {
            let c = c.strip_suffix(')').ok_or_else(|| bad("unclosed resource class"))?;
            if !is_type_value(c) {
                return Err(bad("the resource class must be lowercase letters and digits"));
            }
            (k, Some(c.to_owned()))
        }
        None => (kind, None),
    };
    if !is_type_value(kind) {
        return Err(bad("the resource type must be lowercase letters and digits"));
    }
    if name.is_empty() {
        return Err(bad("empty resource name"));
    }
    if name.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b',') {
        return Err(bad("the resource name has a space, comma or control character"));
    }
    let mut list: Vec<String> = Vec::new();
    for a in actions.split(',') {
        if a != "*" && !a.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad("an action must be lowercase letters or *"));
        }
        if !a.is_empty() && !list.iter().any(|x| x == a) {
            list.push(a.to_owned());
        }
    }
    Ok(ResourceScope { kind: kind.to_owned(), class, name: name.to_owned(), actions: list })
}

/// Parses every scope of some `scope` values (each may hold several scopes separated by spaces).
pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<ResourceScope>, ScopeError> {
    let mut out = Vec::new();
    for v in values {
        for s in v.split(' ').filter(|s| !s.is_empty()) {
            out.push(parse_one(s)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_hold_hosts_with_ports() {
        let s = parse_one("repository:localhost:5000/team/app:pull,push").expect("parses");
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.actions.clone()),
            ("repository", "localhost:5000/team/app", vec!["pull".to_owned(), "push".to_owned()])
        );
        assert_eq!(s.to_scope_string(), "repository:localhost:5000/team/app:pull,push");
    }

    #[test]
    fn classes_wildcards_and_several_scopes_per_value() {
        let all = parse_all(["repository(plugin):p/q:pull registry:catalog:*", "", "repository:a:"])
            .expect("parses");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].class.as_deref(), Some("plugin"));
        assert_eq!(all[0].to_scope_string(), "repository(plugin):p/q:pull");
        assert_eq!((all[1].kind.as_str(), all[1].actions.clone()), ("registry", vec!["*".to_owned()]));
        assert!(all[2].actions.is_empty());
        let dup = parse_one("repository:a:pull,pull,,push").expect("parses");
        assert_eq!(dup.actions, vec!["pull".to_owned(), "push".to_owned()]);
    }

    #[test]
    fn malformed_scopes_are_refused() {
        for bad in [
            "repository",
            "repository:a",
            ":a:pull",
            "Repository:a:pull",
            "repository::pull",
            "repository:a:PULL",
            "repository(:a:pull",
            "repository(Plugin):a:pull",
            "repo sitory:a:pull",
            "repository:a\u{1}:pull",
        ] {
            assert!(parse_one(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_one(&format!("repository:{}:pull", "a".repeat(2000))).is_err());
    }
}
