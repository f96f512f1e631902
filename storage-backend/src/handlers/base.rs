//! `GET /v2/`: the API version check.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::respond;

/// `200 {}`: this registry implements the v2 API.
pub fn ping() -> Response {
    respond(
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CONTENT_LENGTH, HeaderValue::from_static("2")),
        ],
        Body::from("{}"),
    )
}
