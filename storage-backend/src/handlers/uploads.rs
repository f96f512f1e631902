//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start, single-request push, cross-repository mount) and
//! `GET`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<session>` (status, chunk, complete, cancel).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use oci::{Algorithm, Digest, query};
use serde_json::json;

use super::{CONTENT_DIGEST, RANGE, UPLOAD_UUID, empty, value};
use crate::error::{Code, RegistryError, Result};
use crate::uploads::{ReceiveError, Session, SessionRef};
use crate::{Registry, blocking};

/// Starts an upload. With `?mount=<digest>&from=<repo>` it links the blob when `from` holds it (201) and
/// otherwise starts a normal upload (202). With `?digest=` the body is the whole blob (201).
pub async fn start(
    reg: &Arc<Registry>,
    repo: &str,
    q: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response> {
    if let Some(mount) = query::get(q, "mount") {
        let digest =
            Digest::parse(&mount).map_err(|e| RegistryError::new(Code::DigestInvalid).detail(e.as_str()))?;
        if let Some(from) = query::get(q, "from") {
            oci::name::validate(&from)
                .map_err(|e| RegistryError::new(Code::NameInvalid).detail(e.as_str()))?;
            let (r, from, to, d) = (reg.clone(), from.into_owned(), repo.to_owned(), digest.to_buf());
            let mounted = blocking(move || {
                let d = d.as_digest();
                Ok(r.store().holds(&from, d) && r.store().link_blob(&to, d)?)
            })
            .await?;
            if mounted {
                return blob_created(repo, digest);
            }
        }
        let session = create(reg, repo, Algorithm::Sha256).await?;
        let s = session.lock().await;
        return accepted(StatusCode::ACCEPTED, repo, &s);
    }
    if let Some(d) = query::get(q, "digest") {
        let digest =
            Digest::parse(&d).map_err(|e| RegistryError::new(Code::DigestInvalid).detail(e.as_str()))?;
        let session = create(reg, repo, digest.algorithm()).await?;
        let mut s = session.lock().await;
        let expected = declared_length(headers)?;
        let done = complete(reg, repo, &mut s, digest, expected, body.take().unwrap_or_default()).await;
        if done.is_err() && !s.closed {
            // The client never saw this session's location: nothing can resume it.
            let _ = reg.uploads().remove(&mut s);
        }
        return done;
    }
    let algorithm = match query::get(q, "digest-algorithm") {
        None => Algorithm::Sha256,
        Some(a) => Algorithm::from_name(&a).ok_or_else(|| {
            RegistryError::new(Code::Unsupported)
                .status(StatusCode::BAD_REQUEST)
                .detail("unsupported digest algorithm")
        })?,
    };
    let session = create(reg, repo, algorithm).await?;
    let s = session.lock().await;
    accepted(StatusCode::ACCEPTED, repo, &s)
}

/// `204` with the session's `Range`.
pub async fn status(reg: &Arc<Registry>, repo: &str, id: &str) -> Result<Response> {
    let session = find(reg, repo, id).await?;
    let s = open(&session).await?;
    accepted(StatusCode::NO_CONTENT, repo, &s)
}

/// Appends a chunk. With `Content-Range` the chunk must start where the data ends (else 416 with the
/// current `Range`); without it the body is streamed and appended whole.
pub async fn patch(
    reg: &Arc<Registry>,
    repo: &str,
    id: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response> {
    let session = find(reg, repo, id).await?;
    let mut s = open(&session).await?;
    let expected = chunk_length(headers, repo, &s)?;
    append(reg, &mut s, body.take().unwrap_or_default(), expected).await?;
    accepted(StatusCode::ACCEPTED, repo, &s)
}

/// Completes an upload with `?digest=`, after appending an optional last chunk.
pub async fn finish(
    reg: &Arc<Registry>,
    repo: &str,
    id: &str,
    q: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response> {
    let session = find(reg, repo, id).await?;
    let mut s = open(&session).await?;
    let Some(d) = query::get(q, "digest") else {
        return Err(RegistryError::new(Code::DigestInvalid).detail("the digest query parameter is required"));
    };
    let digest = Digest::parse(&d).map_err(|e| RegistryError::new(Code::DigestInvalid).detail(e.as_str()))?;
    let expected = chunk_length(headers, repo, &s)?;
    complete(reg, repo, &mut s, digest, expected, body.take().unwrap_or_default()).await
}

/// Cancels an upload and deletes what it received.
pub async fn cancel(reg: &Arc<Registry>, repo: &str, id: &str) -> Result<Response> {
    let session = find(reg, repo, id).await?;
    let mut s = open(&session).await?;
    reg.uploads().remove(&mut s)?;
    Ok(empty(StatusCode::NO_CONTENT, []))
}

async fn create(reg: &Arc<Registry>, repo: &str, algorithm: Algorithm) -> Result<SessionRef> {
    let (r, repo) = (reg.clone(), repo.to_owned());
    blocking(move || r.uploads().create(&repo, algorithm).map_err(RegistryError::from)).await
}

async fn find(reg: &Arc<Registry>, repo: &str, id: &str) -> Result<SessionRef> {
    reg.uploads().get(repo, id)?.ok_or_else(|| upload_unknown(id))
}

/// Locks a session, failing if it was completed or cancelled while we waited.
async fn open(session: &SessionRef) -> Result<tokio::sync::MutexGuard<'_, Session>> {
    let s = session.lock().await;
    if s.closed {
        return Err(upload_unknown(&s.id));
    }
    Ok(s)
}

fn upload_unknown(id: &str) -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown).detail(json!({ "session": id }))
}

async fn append(reg: &Arc<Registry>, s: &mut Session, body: Body, expected: Option<u64>) -> Result<()> {
    match reg.uploads().append(s, body, expected).await {
        Ok(_) => Ok(()),
        Err(ReceiveError::Length { expected, received }) => Err(RegistryError::new(Code::SizeInvalid)
            .detail(json!({ "expected": expected, "received": received }))),
        Err(ReceiveError::Body(e)) => {
            Err(RegistryError::new(Code::BlobUploadInvalid).detail(format!("request body: {e}")))
        }
        Err(ReceiveError::Io(e)) => Err(e.into()),
        Err(ReceiveError::Gone) => {
            let _ = reg.uploads().remove(s);
            Err(upload_unknown(&s.id))
        }
    }
}

/// Appends the last chunk, checks the digest and moves the data into the store.
async fn complete(
    reg: &Arc<Registry>,
    repo: &str,
    s: &mut Session,
    digest: Digest<'_>,
    expected: Option<u64>,
    body: Body,
) -> Result<Response> {
    if let Err(e) = append(reg, s, body, expected).await {
        if e.code() != Code::SizeInvalid {
            let _ = reg.uploads().remove(s);
        }
        return Err(e);
    }
    let computed = reg.uploads().digest(s, digest.algorithm()).await?;
    if computed != digest {
        let _ = reg.uploads().remove(s);
        return Err(RegistryError::new(Code::DigestInvalid)
            .detail(json!({ "expected": digest.to_string(), "computed": computed.to_string() })));
    }
    let data = reg.uploads().data_path(&s.id);
    let (r, owned_repo, d) = (reg.clone(), repo.to_owned(), digest.to_buf());
    blocking(move || r.store().commit_blob(&data, &owned_repo, d.as_digest()).map_err(RegistryError::from))
        .await?;
    reg.uploads().remove(s)?;
    blob_created(repo, digest)
}

fn blob_created(repo: &str, digest: Digest<'_>) -> Result<Response> {
    Ok(empty(
        StatusCode::CREATED,
        [
            (header::LOCATION, value(format!("/v2/{repo}/blobs/{digest}"))?),
            (CONTENT_DIGEST, value(digest.to_string())?),
        ],
    ))
}

/// The headers of a session in progress: `Location`, `Range`, `Docker-Upload-UUID`.
fn accepted(status: StatusCode, repo: &str, s: &Session) -> Result<Response> {
    Ok(empty(status, session_headers(repo, s)?))
}

fn session_headers(repo: &str, s: &Session) -> Result<[(HeaderName, HeaderValue); 3]> {
    Ok([
        (header::LOCATION, value(format!("/v2/{repo}/blobs/uploads/{}", s.id))?),
        (RANGE, value(format!("0-{}", s.offset.saturating_sub(1)))?),
        (UPLOAD_UUID, value(s.id.clone())?),
    ])
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| RegistryError::new(Code::SizeInvalid).detail("Content-Length is not a number")),
    }
}

/// The length a chunk must have: from `Content-Range` (which must start at the current offset) or else
/// from `Content-Length`. `None` for a streamed body of unknown length.
fn chunk_length(headers: &HeaderMap, repo: &str, s: &Session) -> Result<Option<u64>> {
    let declared = declared_length(headers)?;
    let Some(range) = headers.get(header::CONTENT_RANGE) else {
        return Ok(declared);
    };
    let out_of_order = || -> RegistryError {
        let mut e = RegistryError::new(Code::RangeInvalid)
            .detail(json!({ "offset": s.offset, "content_range": range.to_str().unwrap_or("") }));
        if let Ok(headers) = session_headers(repo, s) {
            for (k, v) in headers {
                e = e.header(k, v);
            }
        }
        e
    };
    let (start, end) = parse_content_range(range.to_str().unwrap_or("")).ok_or_else(out_of_order)?;
    if start != s.offset || end < start {
        return Err(out_of_order());
    }
    let len = (end - start).checked_add(1).ok_or_else(out_of_order)?;
    if declared.is_some_and(|n| n != len) {
        return Err(out_of_order());
    }
    Ok(Some(len))
}

/// `<start>-<end>`, also accepting the RFC 9110 form `bytes <start>-<end>/<size>`.
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes").map_or(v, |r| r.trim_start_matches([' ', '=']));
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(parse_content_range("bytes=5-6"), Some((5, 6)));
        assert_eq!(parse_content_range("x"), None);
        assert_eq!(parse_content_range("-5"), None);
    }
}
