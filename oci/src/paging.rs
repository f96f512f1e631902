//! `n` and `last` of the list endpoints (`tags/list`, `_catalog`): lexically sorted lists, a page after
//! `last`, at most `n` long, and the `last` of the next page when there is one.

use crate::query;

/// `n` and `last` of a list request.
#[derive(Debug, PartialEq, Eq)]
pub struct Paging {
    /// Page size (`None`: everything).
    pub n: Option<usize>,
    /// Entries up to and including this one are skipped.
    pub last: Option<String>,
}

impl Paging {
    /// Reads `n` and `last` from a raw query; `default_n` applies when `n` is absent or empty. A bad `n`
    /// is an error naming it.
    pub fn from_query(q: &str, default_n: Option<usize>) -> Result<Paging, String> {
        let n = match query::get(q, "n") {
            None => default_n,
            Some(v) if v.is_empty() => default_n,
            Some(v) => {
                Some(v.parse::<usize>().map_err(|_| format!("n must be a non-negative integer, got {v:?}"))?)
            }
        };
        let last = query::get(q, "last").filter(|l| !l.is_empty()).map(|l| l.into_owned());
        Ok(Paging { n, last })
    }

    /// The page of a sorted list, and the `last` of the next page when there is one.
    pub fn apply<'a>(&self, sorted: &'a [String]) -> (&'a [String], Option<&'a str>) {
        let start = self.last.as_deref().map_or(0, |last| sorted.partition_point(|s| s.as_str() <= last));
        let rest = &sorted[start..];
        match self.n {
            Some(0) => (&[], None),
            Some(n) if n < rest.len() => (&rest[..n], Some(rest[n - 1].as_str())),
            _ => (rest, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paging() {
        let all = names(&["a", "b", "c", "d"]);
        let p = |q: &str| Paging::from_query(q, None).expect("valid");
        assert_eq!(p("").apply(&all), (&all[..], None));
        assert_eq!(p("n=2").apply(&all), (&all[..2], Some("b")));
        assert_eq!(p("n=2&last=b").apply(&all), (&all[2..], None));
        assert_eq!(p("n=1&last=b").apply(&all), (&all[2..3], Some("c")));
        assert_eq!(p("last=bb").apply(&all), (&all[2..], None));
        assert_eq!(p("n=0").apply(&all), (&all[..0], None));
        assert_eq!(p("n=10").apply(&all), (&all[..], None));
        assert_eq!(p("last=z").apply(&all), (&all[4..], None));
        assert!(Paging::from_query("n=-1", None).is_err());
        assert!(Paging::from_query("n=abc", None).is_err());
        assert_eq!(Paging::from_query("", Some(3)).expect("valid").apply(&all), (&all[..3], Some("c")));
    }
}
