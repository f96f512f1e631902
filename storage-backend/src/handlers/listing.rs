//! Lists: `tags/list` and `_catalog` (sorted, paged with `n` and `last`, `Link` to the next page) and
//! `referrers` (an image index, filtered by `artifactType`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use oci::paging::Paging;
use oci::{Digest, query};
use serde_json::json;

use super::{OCI_FILTERS_APPLIED, respond, value};
use crate::error::{Code, RegistryError, Result};
use crate::manifest::OCI_INDEX;
use crate::{Registry, blocking};

/// `GET /v2/<name>/tags/list[?n=&last=]`
pub async fn tags(reg: &Arc<Registry>, repo: &str, q: &str) -> Result<Response> {
    let paging = paging(q, None)?;
    let (r, owned) = (reg.clone(), repo.to_owned());
    let tags = blocking(move || r.store().tags(&owned).map_err(RegistryError::from)).await?;
    let Some(tags) = tags else {
        return Err(RegistryError::new(Code::NameUnknown).detail(json!({ "name": repo })));
    };
    let (page, next) = paging.apply(&tags);
    let body = json!({ "name": repo, "tags": page });
    list_response(body, next.map(|last| format!("/v2/{repo}/tags/list?n={}&last={last}", page.len())))
}

/// `GET /v2/_catalog[?n=&last=]`
pub async fn catalog(reg: &Arc<Registry>, q: &str) -> Result<Response> {
    let paging = paging(q, Some(reg.config().catalog_page_size))?;
    let r = reg.clone();
    let repos = blocking(move || r.store().repositories().map_err(RegistryError::from)).await?;
    let (page, next) = paging.apply(&repos);
    let body = json!({ "repositories": page });
    list_response(body, next.map(|last| format!("/v2/_catalog?n={}&last={last}", page.len())))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: always 200 with an image index, empty when
/// nothing refers to the digest.
pub async fn referrers(reg: &Arc<Registry>, repo: &str, subject: Digest<'_>, q: &str) -> Result<Response> {
    let filter = query::get(q, "artifactType").filter(|t| !t.is_empty()).map(|t| t.into_owned());
    let (r, owned, d) = (reg.clone(), repo.to_owned(), subject.to_buf());
    let descriptors =
        blocking(move || r.store().referrers(&owned, d.as_digest()).map_err(RegistryError::from)).await?;
    let mut manifests = Vec::with_capacity(descriptors.len());
    for raw in descriptors {
        let Ok(desc) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            tracing::warn!(repository = repo, subject = %subject, "skipping a corrupt referrer entry");
            continue;
        };
        if filter.as_deref().is_none_or(|f| desc.get("artifactType").and_then(|t| t.as_str()) == Some(f)) {
            manifests.push(desc);
        }
    }
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }).to_string();
    let mut out = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX)),
        (header::CONTENT_LENGTH, value(body.len().to_string())?),
    ];
    if filter.is_some() {
        out.push((OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType")));
    }
    Ok(respond(StatusCode::OK, out, Body::from(body)))
}

fn list_response(body: serde_json::Value, next: Option<String>) -> Result<Response> {
    let body = body.to_string();
    let mut out = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::CONTENT_LENGTH, value(body.len().to_string())?),
    ];
    if let Some(next) = next {
        out.push((header::LINK, value(format!("<{next}>; rel=\"next\""))?));
    }
    Ok(respond(StatusCode::OK, out, Body::from(body)))
}

fn paging(q: &str, default_n: Option<usize>) -> Result<Paging> {
    Paging::from_query(q, default_n).map_err(|e| RegistryError::new(Code::PaginationNumberInvalid).detail(e))
}
