//! What a `/v2/` request does: its endpoint, repository, reference, action and mount source, and the
//! canonical path the upstream gets.
//!
//! The path is percent-decoded once and parsed with the same grammar as the bundled registry
//! ([`oci::route`]); the upstream then receives the path rebuilt from what was parsed, never the client's
//! raw bytes. So `%2e%2e`, `..`, `//` and `%2f` either fail here or name exactly the repository the
//! policy saw. Anything under `/v2/` that is not a route of the distribution spec, or a method a route
//! does not have, is refused.

use oci::Reference;
use oci::query;
use oci::route::{self, Route};
use policy::Action;

use crate::reply::Reply;

/// The endpoints of the distribution spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<reference>`
    Manifest,
    /// `/v2/<name>/blobs/<digest>`
    Blob,
    /// `/v2/<name>/blobs/uploads/`
    StartUpload,
    /// `/v2/<name>/blobs/uploads/<session>`
    Upload,
    /// `/v2/<name>/tags/list`
    Tags,
    /// `/v2/<name>/referrers/<digest>`
    Referrers,
}

impl Endpoint {
    /// Name for logs and the `route` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Manifest => "manifest",
            Endpoint::Blob => "blob",
            Endpoint::StartUpload => "start_upload",
            Endpoint::Upload => "upload",
            Endpoint::Tags => "tags",
            Endpoint::Referrers => "referrers",
        }
    }
}

/// A classified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The action the request performs (`None` for the ping).
    pub action: Option<Action>,
    /// Repository (empty for the ping and the catalog).
    pub repository: String,
    /// Tag or digest: of a manifest, a blob, or a referrers subject.
    pub reference: Option<String>,
    /// For a manifest pushed by digest: the tags of its `?tag=` parameters.
    pub extra_tags: Vec<String>,
    /// For `POST blobs/uploads/?mount=<d>&from=<src>`: `<src>`, when it is a valid repository name.
    pub mount_from: Option<String>,
    /// A `mount` parameter is present.
    pub mount: bool,
    /// Path for the upstream, rebuilt from the parsed parts (no query).
    pub upstream_path: String,
}

impl Classified {
    /// Is the reference a tag?
    pub fn tag(&self) -> Option<&str> {
        self.reference.as_deref().filter(|r| !r.contains(':'))
    }
}

/// Classifies a request, or answers why it cannot be.
pub fn classify(method: &str, raw_path: &str, raw_query: Option<&str>) -> Result<Classified, Reply> {
    let path = route::decode_path(raw_path).map_err(|e| Reply::route_error(e, method))?;
    let route = route::parse(&path).map_err(|e| Reply::route_error(e, method))?;
    let q = raw_query.unwrap_or("");
    let read = matches!(method, "GET" | "HEAD");
    let (endpoint, action) = match (route, method) {
        (Route::Base, _) if read => (Endpoint::Base, None),
        (Route::Catalog, _) if read => (Endpoint::Catalog, Some(Action::Catalog)),
        (Route::Manifest { .. }, _) if read => (Endpoint::Manifest, Some(Action::Pull)),
        (Route::Manifest { .. }, "PUT") => (Endpoint::Manifest, Some(Action::Push)),
        (Route::Manifest { .. }, "DELETE") => (Endpoint::Manifest, Some(Action::Delete)),
        (Route::Blob { .. }, _) if read => (Endpoint::Blob, Some(Action::Pull)),
        (Route::Blob { .. }, "DELETE") => (Endpoint::Blob, Some(Action::Delete)),
        (Route::StartUpload { .. }, "POST") => (Endpoint::StartUpload, Some(Action::Push)),
        (Route::Upload { .. }, "GET" | "PATCH" | "PUT" | "DELETE") => (Endpoint::Upload, Some(Action::Push)),
        (Route::Tags { .. }, _) if read => (Endpoint::Tags, Some(Action::Pull)),
        (Route::Referrers { .. }, _) if read => (Endpoint::Referrers, Some(Action::Pull)),
        (r, m) => return Err(Reply::method_not_allowed(m, r.as_str())),
    };
    let repository = route.repository().unwrap_or("").to_owned();
    let (reference, upstream_path) = match route {
        Route::Base => (None, "/v2/".to_owned()),
        Route::Catalog => (None, "/v2/_catalog".to_owned()),
        Route::Manifest { repository, reference } => {
            let r = match reference {
                Reference::Tag(t) => t.to_owned(),
                Reference::Digest(d) => d.to_string(),
            };
            let p = format!("/v2/{repository}/manifests/{r}");
            (Some(r), p)
        }
        Route::Blob { repository, digest } => {
            let d = digest.to_string();
            let p = format!("/v2/{repository}/blobs/{d}");
            (Some(d), p)
        }
        Route::StartUpload { repository } => (None, format!("/v2/{repository}/blobs/uploads/")),
        Route::Upload { repository, session } => (None, format!("/v2/{repository}/blobs/uploads/{session}")),
        Route::Tags { repository } => (None, format!("/v2/{repository}/tags/list")),
        Route::Referrers { repository, digest } => {
            let d = digest.to_string();
            let p = format!("/v2/{repository}/referrers/{d}");
            (Some(d), p)
        }
    };

    let mut extra_tags = Vec::new();
    if endpoint == Endpoint::Manifest && method == "PUT" {
        for t in query::get_all(q, "tag") {
            if Reference::parse(&t)
                .ok()
                .and_then(|r| if let Reference::Tag(_) = r { Some(()) } else { None })
                .is_none()
            {
                return Err(Reply::error(
                    400,
                    "TAG_INVALID",
                    "manifest tag did not match URI",
                    Some(format!("invalid tag parameter {t:?}").into()),
                ));
            }
            let t = t.into_owned();
            if reference.as_deref() != Some(t.as_str()) && !extra_tags.contains(&t) {
                extra_tags.push(t);
            }
        }
    }
    let (mount, mount_from) = if endpoint == Endpoint::StartUpload {
        let mount = query::get(q, "mount").is_some();
        let from = query::get(q, "from").filter(|f| oci::name::validate(f).is_ok()).map(|f| f.into_owned());
        (mount, from)
    } else {
        (false, None)
    };
    Ok(Classified { endpoint, action, repository, reference, extra_tags, mount_from, mount, upstream_path })
}

/// The query without `mount` and `from`: a mount the caller may not make becomes a plain upload.
pub fn strip_mount(raw_query: &str) -> String {
    raw_query
        .split('&')
        .filter(|kv| {
            let key = kv.split_once('=').map_or(*kv, |(k, _)| k);
            let key = query::percent_decode(key).unwrap_or_default();
            key != "mount" && key != "from"
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn ok(method: &str, path: &str, q: Option<&str>) -> Classified {
        classify(method, path, q).unwrap_or_else(|r| panic!("{method} {path}: {}", r.status))
    }

    fn status(method: &str, path: &str) -> u16 {
        classify(method, path, None)
            .map_or_else(|r| r.status, |c| panic!("{method} {path} classified: {c:?}"))
    }

    #[test]
    fn every_route_has_its_action() {
        let cases = [
            ("GET", "/v2/".to_owned(), Endpoint::Base, None),
            ("GET", "/v2/_catalog".to_owned(), Endpoint::Catalog, Some(Action::Catalog)),
            ("HEAD", "/v2/a/b/manifests/v1".to_owned(), Endpoint::Manifest, Some(Action::Pull)),
            ("PUT", "/v2/a/b/manifests/v1".to_owned(), Endpoint::Manifest, Some(Action::Push)),
            ("DELETE", format!("/v2/a/manifests/{D}"), Endpoint::Manifest, Some(Action::Delete)),
            ("GET", format!("/v2/a/blobs/{D}"), Endpoint::Blob, Some(Action::Pull)),
            ("DELETE", format!("/v2/a/blobs/{D}"), Endpoint::Blob, Some(Action::Delete)),
            ("POST", "/v2/a/blobs/uploads/".to_owned(), Endpoint::StartUpload, Some(Action::Push)),
            ("PATCH", "/v2/a/blobs/uploads/abc".to_owned(), Endpoint::Upload, Some(Action::Push)),
            ("PUT", "/v2/a/blobs/uploads/abc".to_owned(), Endpoint::Upload, Some(Action::Push)),
            ("GET", "/v2/a/blobs/uploads/abc".to_owned(), Endpoint::Upload, Some(Action::Push)),
            ("DELETE", "/v2/a/blobs/uploads/abc".to_owned(), Endpoint::Upload, Some(Action::Push)),
            ("GET", "/v2/a/tags/list".to_owned(), Endpoint::Tags, Some(Action::Pull)),
            ("GET", format!("/v2/a/referrers/{D}"), Endpoint::Referrers, Some(Action::Pull)),
        ];
        for (m, p, e, a) in cases {
            let c = ok(m, &p, None);
            assert_eq!((c.endpoint, c.action), (e, a), "{m} {p}");
            assert_eq!(c.upstream_path, p, "canonical path of {m} {p}");
        }
    }

    #[test]
    fn encoded_paths_reach_the_upstream_as_the_policy_saw_them() {
        let c = ok("GET", "/v2/team%2Fapi/manifests/v1", None);
        assert_eq!(c.repository, "team/api");
        assert_eq!(c.upstream_path, "/v2/team/api/manifests/v1");
        let c = ok(
            "GET",
            "/v2/a/blobs/sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            None,
        );
        assert_eq!(c.upstream_path, format!("/v2/a/blobs/{D}"));
        assert_eq!(c.reference.as_deref(), Some(D));
    }

    #[test]
    fn tricks_and_unknown_routes_are_refused() {
        assert_eq!(status("GET", "/v2/a/../b/manifests/latest"), 400);
        assert_eq!(status("GET", "/v2/a/%2e%2e/b/manifests/latest"), 400);
        assert_eq!(status("GET", "/v2/a//b/manifests/latest"), 400);
        assert_eq!(status("GET", "/v2/a/things/x"), 404);
        assert_eq!(status("GET", "/v2/a/tags/list/"), 404);
        assert_eq!(status("POST", "/v2/a/manifests/latest"), 405);
        assert_eq!(status("PUT", "/v2/_catalog"), 405);
        assert_eq!(status("OPTIONS", "/v2/"), 405);
        assert_eq!(status("PATCH", &format!("/v2/a/blobs/{D}")), 405);
        assert_eq!(status("GET", "/v2/a/blobs/uploads/..%2f..%2fx"), 404);
    }

    #[test]
    fn manifest_tag_parameters_and_mounts() {
        let c = ok("PUT", &format!("/v2/a/manifests/{D}"), Some("tag=v1&tag=v2&tag=v1"));
        assert_eq!(c.extra_tags, ["v1", "v2"]);
        assert_eq!(
            classify("PUT", &format!("/v2/a/manifests/{D}"), Some("tag=.bad")).map_err(|r| r.status),
            Err(400)
        );
        let c = ok("POST", "/v2/a/blobs/uploads/", Some(&format!("mount={D}&from=b/c")));
        assert!(c.mount);
        assert_eq!(c.mount_from.as_deref(), Some("b/c"));
        let c = ok("POST", "/v2/a/blobs/uploads/", Some(&format!("mount={D}&from=..")));
        assert_eq!(c.mount_from, None);
        assert_eq!(strip_mount(&format!("mount={D}&from=b&digest=x")), "digest=x");
        assert_eq!(strip_mount(&format!("%6Dount={D}&fr%6Fm=b")), "");
    }
}
