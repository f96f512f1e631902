//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use oci::reference::is_valid_tag;
use oci::{Algorithm, Digest, Reference, query};
use serde_json::json;

use super::{
    CONTENT_DIGEST, DRAIN_LIMIT, OCI_SUBJECT, OCI_TAG, content_type, empty, if_none_match, respond, value,
};
use crate::error::{Code, RegistryError, Result};
use crate::hashing::digest_bytes;
use crate::manifest::{self, Manifest, RefKind};
use crate::store::NewManifest;
use crate::{Registry, blocking};

/// Serves a manifest by tag or digest, with its stored media type and exact length.
pub fn get(
    reg: &Arc<Registry>,
    repo: &str,
    reference: Reference<'_>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let store = reg.store();
    let Some(digest) = store.resolve(repo, reference)? else {
        return Err(manifest_unknown(reg, repo, reference));
    };
    let d = digest.as_digest();
    let etag = format!("\"{digest}\"");
    let (media_type, len, body) = if head {
        let Some((media_type, size)) = store.manifest_head(repo, d)? else {
            return Err(manifest_unknown(reg, repo, reference));
        };
        (media_type, size, Body::empty())
    } else {
        let Some(m) = store.manifest(repo, d)? else {
            return Err(manifest_unknown(reg, repo, reference));
        };
        (m.media_type, m.content.len() as u64, Body::from(m.content))
    };
    let mut out = vec![
        (CONTENT_DIGEST, value(digest.to_string())?),
        (header::CONTENT_TYPE, value(media_type)?),
        (header::ETAG, value(etag.clone())?),
    ];
    if if_none_match(headers, &etag) {
        return Ok(respond(StatusCode::NOT_MODIFIED, out, Body::empty()));
    }
    out.push((header::CONTENT_LENGTH, value(len.to_string())?));
    Ok(respond(StatusCode::OK, out, body))
}

fn manifest_unknown(reg: &Registry, repo: &str, reference: Reference<'_>) -> RegistryError {
    if !reg.store().repository_exists(repo) {
        return RegistryError::new(Code::NameUnknown).detail(json!({ "name": repo }));
    }
    let detail = match reference {
        Reference::Tag(t) => json!({ "tag": t }),
        Reference::Digest(d) => json!({ "digest": d.to_string() }),
    };
    RegistryError::new(Code::ManifestUnknown).detail(detail)
}

/// Stores a manifest after checking its digest, its shape and that the repository holds everything it
/// references.
pub async fn put(
    reg: &Arc<Registry>,
    repo: &str,
    reference: Reference<'_>,
    query: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<Response> {
    let limit = reg.config().max_manifest_bytes;
    let content = read_limited(body.take().unwrap_or_default(), headers, limit).await?;
    let algorithm = reference.digest().map_or(Algorithm::Sha256, |d| d.algorithm());
    let digest = digest_bytes(algorithm, &content);
    if let Reference::Digest(expected) = reference
        && digest != expected
    {
        return Err(RegistryError::new(Code::DigestInvalid)
            .detail(json!({ "expected": expected.to_string(), "computed": digest.to_string() })));
    }
    let doc = Manifest::parse(&content).map_err(|e| invalid(format!("not a valid manifest: {e}")))?;
    let media_type = media_type(content_type(headers), &doc)?;
    let mut tags: Vec<String> = reference.tag().map(str::to_owned).into_iter().collect();
    for tag in query::get_all(query, "tag") {
        if !is_valid_tag(&tag) {
            return Err(invalid(format!("invalid tag {tag:?}")));
        }
        tags.push(tag.into_owned());
    }
    let referrer = match (&doc.subject, doc.subject_digest()) {
        (None, _) => None,
        (Some(_), None) => return Err(invalid("subject has an invalid digest")),
        (Some(_), Some(subject)) => {
            Some((subject.to_buf(), referrer_descriptor(&media_type, &digest, &content, &doc)))
        }
    };

    let location = value(format!("/v2/{repo}/manifests/{digest}"))?;
    let mut out = vec![(header::LOCATION, location), (CONTENT_DIGEST, value(digest.to_string())?)];
    if let Some((subject, _)) = &referrer {
        out.push((OCI_SUBJECT, value(subject.to_string())?));
    }
    for tag in tags.iter().skip(usize::from(reference.tag().is_some())) {
        out.push((OCI_TAG, value(tag.clone())?));
    }
    let reg = reg.clone();
    let repo = repo.to_owned();
    blocking(move || {
        let references = check_references(&reg, &repo, &doc)?;
        let references: Vec<Digest<'_>> = references.iter().map(|d| d.as_digest()).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let new = NewManifest {
            digest: digest.as_digest(),
            media_type: &media_type,
            content: &content,
            tags: &tags,
            referrer: referrer.as_ref().map(|(s, d)| (s.as_digest(), d.as_slice())),
            references: &references,
        };
        match reg.store().put_manifest(&repo, &new)? {
            Ok(()) => Ok(()),
            Err(missing) => Err(RegistryError::new(Code::ManifestBlobUnknown)
                .detail(json!({ "digest": missing.to_string(), "reason": "removed by a concurrent garbage collection" }))),
        }
    })
    .await?;
    Ok(empty(StatusCode::CREATED, out))
}

/// Deletes a manifest by digest (with its tags), or just a tag.
pub async fn delete(reg: &Arc<Registry>, repo: &str, reference: Reference<'_>) -> Result<Response> {
    let (r, owned_repo) = (reg.clone(), repo.to_owned());
    let deleted = match reference {
        Reference::Tag(tag) => {
            let tag = tag.to_owned();
            blocking(move || r.store().delete_tag(&owned_repo, &tag).map_err(RegistryError::from)).await?
        }
        Reference::Digest(d) => {
            let d = d.to_buf();
            blocking(move || {
                r.store().delete_manifest(&owned_repo, d.as_digest()).map_err(RegistryError::from)
            })
            .await?
        }
    };
    if !deleted {
        return Err(manifest_unknown(reg, repo, reference));
    }
    Ok(empty(StatusCode::ACCEPTED, []))
}

async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> Result<Vec<u8>> {
    let too_big = || {
        RegistryError::new(Code::SizeInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .detail(format!("manifests are limited to {limit} bytes"))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let limit = limit as u64;
    if declared.is_some_and(|n| n > limit + DRAIN_LIMIT) {
        return Err(too_big()); // far too big to be worth reading
    }
    let mut content = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    let mut seen = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(Code::ManifestInvalid).detail(format!("cannot read request body: {e}"))
        })?;
        seen += chunk.len() as u64;
        if seen <= limit {
            content.extend_from_slice(&chunk);
        } else if seen > limit + DRAIN_LIMIT {
            break;
        }
    }
    // Past the limit the rest was read and discarded, so the client gets the 413 rather than a reset.
    if seen > limit {
        return Err(too_big());
    }
    Ok(content)
}

fn invalid(detail: impl Into<serde_json::Value>) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid).detail(detail)
}

/// The media type to store: the `Content-Type`, which must agree with the document's `mediaType` when both
/// are given; else the document's own; else inferred from its shape. Known types are checked for the
/// fields they require.
fn media_type(content_type: Option<&str>, doc: &Manifest) -> Result<String> {
    if doc.fs_layers.is_some() || content_type.is_some_and(|c| manifest::DOCKER_SCHEMA1.contains(&c)) {
        return Err(invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI"));
    }
    let declared = doc.media_type.as_deref();
    let media_type = match (content_type, declared) {
        (Some(c), Some(d)) if c != d => {
            return Err(invalid(format!("Content-Type {c:?} does not match the manifest's mediaType {d:?}")));
        }
        (Some(c), _) => c,
        (None, Some(d)) => d,
        (None, None) if doc.manifests.is_some() => manifest::OCI_INDEX,
        (None, None) if doc.config.is_some() => manifest::OCI_MANIFEST,
        (None, None) => {
            return Err(invalid("no Content-Type and no mediaType: cannot tell what this is"));
        }
    };
    if !is_media_type(media_type) {
        return Err(invalid(format!("{media_type:?} is not a media type")));
    }
    let is_image = matches!(media_type, manifest::OCI_MANIFEST | manifest::DOCKER_MANIFEST);
    let is_index = matches!(media_type, manifest::OCI_INDEX | manifest::DOCKER_LIST);
    if (is_image || is_index) && doc.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    if is_image && (doc.config.is_none() || doc.layers.is_none()) {
        return Err(invalid("an image manifest needs config and layers"));
    }
    if is_index && doc.manifests.is_none() {
        return Err(invalid("an image index needs manifests"));
    }
    Ok(media_type.to_owned())
}

/// `type/subtype`, both non-empty tokens.
fn is_media_type(s: &str) -> bool {
    let token =
        |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c));
    s.len() <= 255 && s.split_once('/').is_some_and(|(t, st)| token(t) && token(st))
}

/// Every blob and child manifest the document references must be held by the repository, with the size
/// the descriptor claims. Returns their digests.
fn check_references(reg: &Registry, repo: &str, doc: &Manifest) -> Result<Vec<oci::DigestBuf>> {
    let store = reg.store();
    let mut out = Vec::new();
    for (desc, kind) in doc.references() {
        let digest = Digest::parse(&desc.digest)
            .map_err(|e| invalid(json!({ "digest": desc.digest, "reason": e.as_str() })))?;
        let held = match kind {
            RefKind::Blob => store.blob_size(repo, digest)?,
            RefKind::Manifest => store.manifest_head(repo, digest)?.map(|(_, size)| size),
        };
        let Some(size) = held else {
            return Err(
                RegistryError::new(Code::ManifestBlobUnknown).detail(json!({ "digest": desc.digest }))
            );
        };
        if size != desc.size {
            return Err(invalid(json!({ "digest": desc.digest, "size": desc.size, "stored_size": size })));
        }
        out.push(digest.to_buf());
    }
    Ok(out)
}

/// The descriptor listed in the subject's referrers: media type, digest, size, artifact type, annotations.
fn referrer_descriptor(media_type: &str, digest: &oci::DigestBuf, content: &[u8], doc: &Manifest) -> Vec<u8> {
    let mut d = serde_json::Map::new();
    d.insert("mediaType".into(), media_type.into());
    d.insert("digest".into(), digest.to_string().into());
    d.insert("size".into(), content.len().into());
    if let Some(t) = doc.effective_artifact_type() {
        d.insert("artifactType".into(), t.into());
    }
    if let Some(a) = doc.annotations.as_ref().filter(|a| !a.is_empty()) {
        d.insert("annotations".into(), json!(a));
    }
    serde_json::Value::Object(d).to_string().into_bytes()
}
