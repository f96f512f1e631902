//! Query strings and percent-decoding.
//!
//! `+` is kept as a literal `+` (not a space): none of the values the registry API carries can contain a
//! space, while media types such as `application/vnd.x+json` are often sent with a raw `+`.

use std::borrow::Cow;

/// Percent-decodes `s`. `None` when an escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The decoded `(key, value)` pairs of a query string. Pairs that fail to decode are skipped.
pub fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((percent_decode(k)?, percent_decode(v)?))
    })
}

/// The first value of `key`, decoded.
pub fn get<'a>(query: &'a str, key: &str) -> Option<Cow<'a, str>> {
    pairs(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Every value of `key`, decoded, in order.
pub fn get_all<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = Cow<'a, str>> + 'a {
    pairs(query).filter(move |(k, _)| k == key).map(|(_, v)| v)
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn encode_component(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(percent_decode("a%2Fb%3a").as_deref(), Some("a/b:"));
        assert!(matches!(percent_decode("plain"), Some(Cow::Borrowed("plain"))));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
    }

    #[test]
    fn query_access() {
        let q = "mount=sha256%3Aab&from=a%2Fb&tag=x&tag=y&flag&n=";
        assert_eq!(get(q, "mount").as_deref(), Some("sha256:ab"));
        assert_eq!(get(q, "from").as_deref(), Some("a/b"));
        assert_eq!(get_all(q, "tag").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(get(q, "flag").as_deref(), Some(""));
        assert_eq!(get(q, "n").as_deref(), Some(""));
        assert_eq!(get(q, "missing"), None);
    }

    #[test]
    fn encodes() {
        let mut s = String::new();
        encode_component("application/vnd.x+json", &mut s);
        assert_eq!(s, "application%2Fvnd.x%2Bjson");
    }
}
