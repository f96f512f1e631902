//! Registry errors in the distribution-spec format: `{"errors":[{"code","message","detail"}]}`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// `{"errors":[...]}`, fields in the spec's order.
#[derive(Serialize)]
struct Body {
    errors: [Entry; 1],
}

#[derive(Serialize)]
struct Entry {
    code: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
}

/// An error code from the distribution spec (plus `RANGE_INVALID`, `PAGINATION_NUMBER_INVALID` and
/// `UNKNOWN`, which distribution also uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// The operation is unsupported.
    Unsupported,
    /// Invalid content range.
    RangeInvalid,
    /// Invalid number of results requested.
    PaginationNumberInvalid,
    /// Unknown error (a fault of the registry, not of the request).
    Unknown,
}

impl Code {
    /// The code as it appears in the JSON body.
    pub fn as_str(&self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unsupported => "UNSUPPORTED",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The spec's message for the code.
    pub fn message(&self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown to registry",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unsupported => "the operation is unsupported",
            Code::RangeInvalid => "invalid content range",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::Unknown => "unknown error",
        }
    }

    /// The status the code is sent with unless the call site says otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A request that failed, ready to be written as an OCI error response.
#[derive(Debug)]
pub struct RegistryError {
    code: Code,
    status: StatusCode,
    detail: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Handler result.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    /// An error with the code's default status and no detail.
    pub fn new(code: Code) -> Self {
        RegistryError { code, status: code.status(), detail: None, headers: Vec::new() }
    }

    /// Attaches a detail value (shown to the client).
    pub fn detail(mut self, detail: impl Into<Value>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Overrides the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The error code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// An internal fault: logged with its cause, answered as 500 UNKNOWN without the cause.
    pub fn internal(context: &'static str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        RegistryError::new(Code::Unknown).detail(context)
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(err: std::io::Error) -> Self {
        RegistryError::internal("storage i/o error", err)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = Body {
            errors: [Entry { code: self.code.as_str(), message: self.code.message(), detail: self.detail }],
        };
        let text = serde_json::to_string(&body)
            .unwrap_or_else(|_| format!("{{\"errors\":[{{\"code\":\"{}\"}}]}}", self.code.as_str()));
        let mut resp = (self.status, text).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        resp
    }
}
