//! Responses the gateway writes itself: OCI errors (`{"errors":[{"code","message","detail"}]}`), the `/v2/`
//! ping, and the lists it filters.

use bytes::Bytes;
use oci::reference::ReferenceError;
use oci::route::RouteError;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::Value;

/// `Docker-Distribution-API-Version: registry/2.0`, on every response.
pub const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// OCI error code, for errors (also logged).
    pub code: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

#[derive(serde::Serialize)]
struct Errors<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
}

impl Reply {
    /// An OCI error.
    pub fn error(status: u16, code: &'static str, message: &str, detail: Option<Value>) -> Reply {
        let body = serde_json::to_vec(&Errors { errors: [Entry { code, message, detail }] })
            .unwrap_or_else(|_| format!("{{\"errors\":[{{\"code\":\"{code}\"}}]}}").into_bytes());
        Reply {
            status,
            code: Some(code),
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from(body),
        }
    }

    /// A JSON success.
    pub fn json(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            code: None,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// 401 with challenges.
    pub fn unauthorized(challenges: Vec<String>, reason: &str) -> Reply {
        let mut r = Reply::error(401, "UNAUTHORIZED", "authentication required", Some(Value::from(reason)));
        for c in challenges {
            r.headers.push(("www-authenticate", c));
        }
        r
    }

    /// 403 DENIED with the operator's message.
    pub fn denied(message: Option<&str>, detail: Value) -> Reply {
        Reply::error(
            403,
            "DENIED",
            message.unwrap_or("requested access to the resource is denied"),
            Some(detail),
        )
    }

    /// The upstream could not be reached or failed.
    pub fn bad_gateway(detail: &str) -> Reply {
        Reply::error(502, "UNKNOWN", "the upstream registry is unavailable", Some(Value::from(detail)))
    }

    /// The upstream did not answer in time.
    pub fn gateway_timeout(detail: &str) -> Reply {
        Reply::error(
            504,
            "UNKNOWN",
            "the upstream registry did not answer in time",
            Some(Value::from(detail)),
        )
    }

    /// A method the route does not have.
    pub fn method_not_allowed(method: &str, route: &str) -> Reply {
        Reply::error(
            405,
            "UNSUPPORTED",
            "the operation is unsupported",
            Some(Value::from(format!("{method} is not allowed on the {route} endpoint"))),
        )
    }

    /// A path that is not a valid `/v2/` route: the same answers as the bundled registry gives.
    pub fn route_error(e: RouteError, method: &str) -> Reply {
        let detail = Some(Value::from(e.as_str()));
        match e {
            RouteError::NotV2 | RouteError::Unknown => {
                Reply::error(404, "UNSUPPORTED", "the operation is unsupported", detail)
            }
            RouteError::Encoding | RouteError::Name(_) => {
                Reply::error(400, "NAME_INVALID", "invalid repository name", detail)
            }
            RouteError::Reference(ReferenceError::Tag) if method == "PUT" => {
                Reply::error(400, "MANIFEST_INVALID", "manifest invalid", detail)
            }
            RouteError::Reference(ReferenceError::Tag) => {
                Reply::error(404, "MANIFEST_UNKNOWN", "manifest unknown to registry", detail)
            }
            RouteError::Reference(ReferenceError::Digest(_)) | RouteError::Digest(_) => {
                Reply::error(400, "DIGEST_INVALID", "provided digest did not match uploaded content", detail)
            }
            RouteError::Session => {
                Reply::error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", detail)
            }
        }
    }

    /// The body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Body length.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// True when the body is empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Writes the response (headers only for HEAD). Returns the body bytes sent.
    pub async fn send(self, session: &mut Session, request_id: &str) -> pingora::Result<usize> {
        let head = session.req_header().method == http::Method::HEAD;
        let mut h = ResponseHeader::build(self.status, Some(self.headers.len() + 4))?;
        for (name, value) in self.headers {
            h.append_header(name, value)?;
        }
        h.insert_header("content-length", self.body.len().to_string())?;
        h.insert_header(API_VERSION.0, API_VERSION.1)?;
        h.insert_header("x-request-id", request_id)?;
        if head || self.body.is_empty() {
            session.write_response_header(Box::new(h), true).await?;
            return Ok(0);
        }
        let n = self.body.len();
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(self.body), true).await?;
        Ok(n)
    }
}
