//! Request handlers, one file per resource.

pub mod base;
pub mod blobs;
pub mod listing;
pub mod manifests;
pub mod uploads;

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;

use crate::error::{RegistryError, Result};

/// `Docker-Content-Digest`
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Tag`: one per `?tag=` a manifest push applied
pub const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
/// `OCI-Filters-Applied`
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
/// `Range` (as a response header of upload endpoints)
pub const RANGE: HeaderName = header::RANGE;

/// A header value from text we built from validated parts.
pub fn value(s: impl Into<String>) -> Result<HeaderValue> {
    HeaderValue::try_from(s.into()).map_err(|e| RegistryError::internal("bad response header value", e))
}

/// A response with a status, headers and body.
pub fn respond(
    status: StatusCode,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    body: Body,
) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in headers {
        h.append(k, v); // several values of one header (OCI-Tag) stay several
    }
    r
}

/// An empty response with an exact `Content-Length: 0`.
pub fn empty(status: StatusCode, headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Response {
    let mut r = respond(status, headers, Body::empty());
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// The media type of a `Content-Type` header, without parameters. `None` when absent or empty.
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next().unwrap_or("").trim();
    (!v.is_empty()).then_some(v)
}

/// Does an `If-None-Match` header match this entity tag?
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
}

/// How much of a rejected request's body is read (and discarded) before answering.
pub const DRAIN_LIMIT: u64 = 16 << 20;

/// Reads and discards up to `max` bytes of a body, for at most a few seconds. A server that answers before
/// reading the body and then closes makes most clients report a broken pipe instead of the answer; reading
/// the rest of a reasonably sized body first lets them see it.
pub async fn drain(body: Body, max: u64) {
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > max {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
}
