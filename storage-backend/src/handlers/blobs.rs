//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use oci::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{CONTENT_DIGEST, empty, respond, value};
use crate::error::{Code, RegistryError, Result};
use crate::{Registry, blocking};

/// Read size when streaming a blob: large enough to amortize a thread hop per read, small enough to keep
/// memory flat.
const READ_CHUNK: usize = 256 * 1024;

/// Streams a blob (or the requested byte range of it). `HEAD` answers the same headers without a body.
pub async fn get(
    reg: &Arc<Registry>,
    repo: &str,
    digest: Digest<'_>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let Some((file, size)) = reg.store().open_blob(repo, digest)? else {
        return Err(blob_unknown(digest));
    };
    let etag = value(format!("\"{digest}\""))?;
    let mut out = vec![
        (CONTENT_DIGEST, value(digest.to_string())?),
        (header::ETAG, etag),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
    ];
    let (status, start, len) = match requested_range(headers, size) {
        RangeRequest::Whole => (StatusCode::OK, 0, size),
        RangeRequest::Part(start, end) => {
            out.push((header::CONTENT_RANGE, value(format!("bytes {start}-{end}/{size}"))?));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            return Err(RegistryError::new(Code::RangeInvalid)
                .detail(format!("blob is {size} bytes"))
                .header(header::CONTENT_RANGE, value(format!("bytes */{size}"))?));
        }
    };
    out.push((header::CONTENT_LENGTH, value(len.to_string())?));
    if head || len == 0 {
        return Ok(respond(status, out, Body::empty()));
    }
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK);
    Ok(respond(status, out, Body::from_stream(stream)))
}

/// Removes the repository's link to the blob. The content stays until garbage collection.
pub async fn delete(reg: &Arc<Registry>, repo: &str, digest: Digest<'_>) -> Result<Response> {
    let (r, owned, d) = (reg.clone(), repo.to_owned(), digest.to_buf());
    if !blocking(move || r.store().unlink_blob(&owned, d.as_digest()).map_err(RegistryError::from)).await? {
        return Err(blob_unknown(digest));
    }
    Ok(empty(StatusCode::ACCEPTED, []))
}

fn blob_unknown(digest: Digest<'_>) -> RegistryError {
    RegistryError::new(Code::BlobUnknown).detail(serde_json::json!({ "digest": digest.to_string() }))
}

/// A `Range` request header, interpreted against a blob of known size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No range (or one we ignore, as RFC 9110 allows): send everything.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A well-formed range that starts past the end.
    Unsatisfiable,
}

fn requested_range(headers: &HeaderMap, size: u64) -> RangeRequest {
    let Some(spec) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Whole;
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole; // multipart ranges: serve the whole blob
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes
        (true, false) => match parse(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if size > 0 => RangeRequest::Part(size.saturating_sub(n), size - 1),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        // bytes=A-
        (false, true) => match parse(first) {
            Some(a) if a < size => RangeRequest::Part(a, size - 1),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        // bytes=A-B
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b && a < size => RangeRequest::Part(a, b.min(size - 1)),
            // Past the end, or backwards (`500-0`): nothing to send.
            (Some(_), Some(_)) => RangeRequest::Unsatisfiable,
            _ => RangeRequest::Whole,
        },
        (true, true) => RangeRequest::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> RangeRequest {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        requested_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(requested_range(&HeaderMap::new(), 10), RangeRequest::Whole);
        assert_eq!(range("bytes=0-4", 10), RangeRequest::Part(0, 4));
        assert_eq!(range("bytes=5-", 10), RangeRequest::Part(5, 9));
        assert_eq!(range("bytes=-3", 10), RangeRequest::Part(7, 9));
        assert_eq!(range("bytes=-30", 10), RangeRequest::Part(0, 9));
        assert_eq!(range("bytes=8-100", 10), RangeRequest::Part(8, 9));
        assert_eq!(range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=5-2", 10), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=0-1,3-4", 10), RangeRequest::Whole);
        assert_eq!(range("items=0-1", 10), RangeRequest::Whole);
        assert_eq!(range("bytes=x-1", 10), RangeRequest::Whole);
    }
}
