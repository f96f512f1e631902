//! A small HTTP/1.1 client that sends paths exactly as given (no normalization of `..` or `%2e`).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

type ReqBody = BoxBody<Bytes, Infallible>;

/// A client bound to one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: HyperClient<HttpConnector, ReqBody>,
    defaults: Vec<(HeaderName, HeaderValue)>,
}

/// A buffered response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl Resp {
    /// A header as text (`None` when absent).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The first OCI error code of the body, checking the error format on the way.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let first = &v["errors"][0];
        assert!(first["message"].is_string(), "error without message: {v}");
        assert_eq!(self.header("content-type"), Some("application/json"), "error content type");
        first["code"].as_str().unwrap_or_else(|| panic!("no errors[0].code in {v}")).to_owned()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Location`, made relative to the server (path and query).
    pub fn location(&self) -> String {
        let loc =
            self.header("location").unwrap_or_else(|| panic!("no Location header (status {})", self.status));
        match loc.find("://") {
            Some(i) => loc[i + 3..].find('/').map_or("/".into(), |j| loc[i + 3 + j..].to_owned()),
            None => loc.to_owned(),
        }
    }
}

/// Body variants a request can carry.
enum Body {
    Empty,
    Full(Bytes),
    Chunked(Vec<Bytes>),
}

/// A request under construction.
pub struct RequestBuilder {
    client: Client,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:5000`).
    pub fn new(base: String) -> Client {
        let inner = HyperClient::builder(TokioExecutor::new()).build_http();
        Client { base, inner, defaults: Vec::new() }
    }

    /// The same client, sending HTTP Basic credentials with every request.
    pub fn basic(&self, user: &str, password: &str) -> Client {
        self.with_header(
            "authorization",
            &format!("Basic {}", crate::gateway::base64(&format!("{user}:{password}"))),
        )
    }

    /// The same client, sending a bearer token with every request.
    pub fn bearer(&self, token: &str) -> Client {
        self.with_header("authorization", &format!("Bearer {token}"))
    }

    /// The same client, sending a header with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.defaults.push((
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        ));
        c
    }

    /// Starts a request; `path` is sent byte for byte.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: self.defaults.clone(),
            body: Body::Empty,
        }
    }

    /// `GET path`
    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path).send().await
    }

    /// `HEAD path`
    pub async fn head(&self, path: &str) -> Resp {
        self.request(Method::HEAD, path).send().await
    }

    /// `DELETE path`
    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path).send().await
    }

    /// `POST path` with no body.
    pub async fn post(&self, path: &str) -> Resp {
        self.request(Method::POST, path).send().await
    }
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        ));
        self
    }

    /// A body with a `Content-Length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Full(body.into());
        self
    }

    /// A body sent with `Transfer-Encoding: chunked` and no length.
    pub fn chunked(mut self, chunks: Vec<Bytes>) -> Self {
        self.body = Body::Chunked(chunks);
        self
    }

    /// Sends it and reads the whole response.
    pub async fn send(self) -> Resp {
        let uri = format!("{}{}", self.client.base, self.path);
        let mut req = Request::builder().method(self.method).uri(&uri);
        for (k, v) in self.headers {
            req = req.header(k, v);
        }
        let body: ReqBody = match self.body {
            Body::Empty => Full::new(Bytes::new()).boxed(),
            Body::Full(b) => Full::new(b).boxed(),
            Body::Chunked(chunks) => {
                StreamBody::new(futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Frame::data(c)))))
                    .boxed()
            }
        };
        let req = req.body(body).unwrap_or_else(|e| panic!("bad request {uri}: {e}"));
        let resp = tokio::time::timeout(Duration::from_secs(60), self.client.inner.request(req))
            .await
            .unwrap_or_else(|_| panic!("timeout: {uri}"))
            .unwrap_or_else(|e| panic!("request {uri} failed: {e:?}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap_or_else(|e| panic!("reading {uri}: {e}")).to_bytes();
        Resp { status: parts.status.as_u16(), headers: parts.headers, body }
    }
}

/// Sends raw bytes on a fresh connection and returns the raw response (status line first), read up to the
/// end of its body. For requests no well-behaved client library would send.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            if len.is_some_and(|len| out.len() >= end + 4 + len) {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes raw bytes on a fresh connection and hangs up without reading: a client that breaks off
/// mid-request.
pub async fn send_and_hang_up(addr: SocketAddr, request: Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(&request).expect("write");
    })
    .await
    .expect("writer thread");
}

/// The status code of a raw response.
pub fn raw_status(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
