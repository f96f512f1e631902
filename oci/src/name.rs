//! Repository names, per the distribution-spec grammar:
//!
//! ```text
//! name      := component ("/" component)*
//! component := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator := "." | "_" | "__" | "-"+
//! ```
//! The whole name is at most [`MAX_LEN`] bytes. Components can never start with `_` or `.`, so `..`,
//! hidden files and the registry's own `_layers`/`_manifests` folders cannot be named by a client.

/// Longest accepted repository name, in bytes (distribution's limit).
pub const MAX_LEN: usize = 255;

/// Why a string is not a repository name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty name.
    Empty,
    /// Longer than [`MAX_LEN`].
    TooLong,
    /// An empty path component (`a//b`, a leading or trailing `/`).
    EmptyComponent,
    /// A character outside `[a-z0-9._/-]` (this includes uppercase letters).
    BadCharacter,
    /// A separator at the start or end of a component, or a bad run of separators (`..`, `___`, `-.`).
    BadSeparator,
}

impl NameError {
    /// A short text for error messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            NameError::Empty => "repository name is empty",
            NameError::TooLong => "repository name is longer than 255 characters",
            NameError::EmptyComponent => "repository name has an empty path component",
            NameError::BadCharacter => "repository name may only contain a-z, 0-9, '.', '_', '-' and '/'",
            NameError::BadSeparator => {
                "repository name components must start and end with a-z or 0-9 and be \
                 separated by '.', '_', '__' or dashes"
            }
        }
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for NameError {}

/// Checks a repository name against the grammar.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    name.split('/').try_for_each(validate_component)
}

fn validate_component(c: &str) -> Result<(), NameError> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        if !matches!(b[i], b'.' | b'_' | b'-') {
            return Err(NameError::BadCharacter);
        }
        // A separator run: must follow an alphanumeric and be followed by one.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let run = &b[start..i];
        let ok = start > 0
            && i < b.len()
            && (run == b"." || run == b"_" || run == b"__" || run.iter().all(|&x| x == b'-'));
        if !ok {
            return Err(NameError::BadSeparator);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for ok in [
            "a",
            "library/alpine",
            "team-a/api",
            "a/b/c/d/e",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo---bar",
            "0",
            "registry.example.com/x",
            "a1b2/c3",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(validate(&"a".repeat(255)), Ok(()));
    }

    #[test]
    fn rejects_bad_names() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("Alpine", NameError::BadCharacter),
            ("a b", NameError::BadCharacter),
            ("a%2fb", NameError::BadCharacter),
            ("a:5000/b", NameError::BadCharacter),
            ("..", NameError::BadSeparator),
            ("a/../b", NameError::BadSeparator),
            ("a/./b", NameError::BadSeparator),
            ("a//b", NameError::EmptyComponent),
            ("/a", NameError::EmptyComponent),
            ("a/", NameError::EmptyComponent),
            ("_layers", NameError::BadSeparator),
            ("a/_manifests", NameError::BadSeparator),
            ("a.", NameError::BadSeparator),
            ("a..b", NameError::BadSeparator),
            ("a___b", NameError::BadSeparator),
            ("a-.b", NameError::BadSeparator),
            ("-a", NameError::BadSeparator),
        ];
        for (name, err) in cases {
            assert_eq!(validate(name), Err(*err), "{name:?}");
        }
        assert_eq!(validate(&"a".repeat(256)), Err(NameError::TooLong));
    }
}
