//! One entry point for every request: classify the path with [`oci::route`], then dispatch on the method.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use oci::reference::ReferenceError;
use oci::route::{self, Route, RouteError};

use crate::Registry;
use crate::error::{Code, RegistryError, Result};
use crate::handlers::{DRAIN_LIMIT, base, blobs, drain, listing, manifests, uploads};

/// `Docker-Distribution-API-Version`, sent on every response.
pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

pub(crate) async fn dispatch(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return handle(registry, request).await;
    }
    // A request that changes state runs to completion in its own task, even if the client goes away
    // (an HTTP/2 reset drops the handler's future): a chunk is written whole or rolled back, a manifest
    // push finishes or is undone, never left half-applied.
    match tokio::spawn(handle(registry, request)).await {
        Ok(response) => response,
        Err(e) => RegistryError::internal("request task failed", e).into_response(),
    }
}

async fn handle(registry: Arc<Registry>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let mut response = match route(&registry, &parts, &mut body).await {
        Ok(r) => r,
        Err(e) => {
            // Read what the client is still sending, so it sees this answer rather than a reset.
            if let Some(body) = body {
                drain(body, DRAIN_LIMIT).await;
            }
            e.into_response()
        }
    };
    response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    tracing::debug!(
        target: "registry::access",
        method = %parts.method,
        path = parts.uri.path(),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn route(reg: &Arc<Registry>, parts: &Parts, body: &mut Option<Body>) -> Result<Response> {
    let path = route::decode_path(parts.uri.path()).map_err(|e| route_error(e, &parts.method))?;
    let route = route::parse(&path).map_err(|e| route_error(e, &parts.method))?;
    let query = parts.uri.query().unwrap_or("");
    let headers = &parts.headers;
    let method = &parts.method;
    match route {
        Route::Base => match *method {
            Method::GET | Method::HEAD => Ok(base::ping()),
            _ => Err(not_allowed("GET, HEAD")),
        },
        Route::Catalog => match *method {
            Method::GET | Method::HEAD => listing::catalog(reg, query).await,
            _ => Err(not_allowed("GET, HEAD")),
        },
        Route::Tags { repository } => match *method {
            Method::GET | Method::HEAD => listing::tags(reg, repository, query).await,
            _ => Err(not_allowed("GET, HEAD")),
        },
        Route::Referrers { repository, digest } => match *method {
            Method::GET | Method::HEAD => listing::referrers(reg, repository, digest, query).await,
            _ => Err(not_allowed("GET, HEAD")),
        },
        Route::Manifest { repository, reference } => match *method {
            Method::GET => manifests::get(reg, repository, reference, headers, false),
            Method::HEAD => manifests::get(reg, repository, reference, headers, true),
            Method::PUT => manifests::put(reg, repository, reference, query, headers, body).await,
            Method::DELETE => manifests::delete(reg, repository, reference).await,
            _ => Err(not_allowed("GET, HEAD, PUT, DELETE")),
        },
        Route::Blob { repository, digest } => match *method {
            Method::GET => blobs::get(reg, repository, digest, headers, false).await,
            Method::HEAD => blobs::get(reg, repository, digest, headers, true).await,
            Method::DELETE => blobs::delete(reg, repository, digest).await,
            _ => Err(not_allowed("GET, HEAD, DELETE")),
        },
        Route::StartUpload { repository } => match *method {
            Method::POST => uploads::start(reg, repository, query, headers, body).await,
            _ => Err(not_allowed("POST")),
        },
        Route::Upload { repository, session } => match *method {
            Method::GET => uploads::status(reg, repository, session).await,
            Method::PATCH => uploads::patch(reg, repository, session, headers, body).await,
            Method::PUT => uploads::finish(reg, repository, session, query, headers, body).await,
            Method::DELETE => uploads::cancel(reg, repository, session).await,
            _ => Err(not_allowed("GET, PATCH, PUT, DELETE")),
        },
    }
}

fn not_allowed(allow: &'static str) -> RegistryError {
    RegistryError::new(Code::Unsupported)
        .detail("method not allowed on this endpoint")
        .header(header::ALLOW, HeaderValue::from_static(allow))
}

/// Maps a path that does not classify to the spec's error for the part that is wrong. A tag that breaks the
/// grammar cannot name anything, so reading it is a plain 404 (as the conformance suite expects); pushing
/// to it is a 400.
pub(crate) fn route_error(e: RouteError, method: &Method) -> RegistryError {
    let detail = e.as_str();
    match e {
        RouteError::NotV2 | RouteError::Unknown => {
            RegistryError::new(Code::Unsupported).status(StatusCode::NOT_FOUND).detail(detail)
        }
        RouteError::Encoding | RouteError::Name(_) => RegistryError::new(Code::NameInvalid).detail(detail),
        RouteError::Reference(ReferenceError::Tag) if *method == Method::PUT => {
            RegistryError::new(Code::ManifestInvalid).detail(detail)
        }
        RouteError::Reference(ReferenceError::Tag) => {
            RegistryError::new(Code::ManifestUnknown).detail(detail)
        }
        RouteError::Reference(ReferenceError::Digest(_)) | RouteError::Digest(_) => {
            RegistryError::new(Code::DigestInvalid).detail(detail)
        }
        RouteError::Session => RegistryError::new(Code::BlobUploadUnknown).detail(detail),
    }
}
