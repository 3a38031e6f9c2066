//! The `http` capability: requests to named, granted endpoints.
//!
//! A component never sends a URL. It names an endpoint, a method and a path; [`HttpGrants`]
//! decides, from the manifest's rules, whether that is allowed and builds the real URL. The
//! checks are strict on purpose: the path must be a clean absolute path (no `..`, no `;`
//! path parameters that servers such as Tomcat and Jetty strip into `..`, no encoded
//! separators or dots, no `//` that would turn into another host); headers that could smuggle
//! a second request, change framing, or make a proxy route or re-method the request
//! (`X-HTTP-Method-Override`, `X-Original-URL`, `Forwarded`, ...) are refused; the query is
//! bounded; redirects are never followed, and the response body is read only up to the size
//! limit.
//!
//! Sending is behind the [`HttpTransport`] trait so policy and budgets are testable with any
//! transport; [`ReqwestTransport`] is the real one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use url::Url;

use crate::manifest::{EndpointGrant, Origin, Rule};

/// A request as a component asked for it, before any check.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub endpoint: String,
    /// Upper-case method name.
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// A timeout the component asked for (only ever shortens the host's).
    pub timeout: Option<Duration>,
}

/// A request the grants allow, with its real URL.
#[derive(Debug, Clone)]
pub struct AuthorizedRequest {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The shorter of the endpoint's and the component's timeout, if any.
    pub timeout: Option<Duration>,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The grants do not allow it; `hint` says what would.
    #[error("{reason}")]
    Denied { reason: String, hint: String },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Why sending failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Unreachable(String),
    #[error("response body larger than the {0}-byte limit")]
    TooLarge(u64),
}

/// Headers the host controls: letting a guest set them could smuggle requests or change framing.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    // Proxies and frameworks that honour these turn a granted GET into a DELETE, or route the
    // request to another path or client identity than the one the grant checked.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "forwarded",
    "x-forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-host",
    "x-host",
    "via",
    "client-ip",
    "x-originating-ip",
    "x-remote-addr",
    "x-remote-ip",
    "x-original-forwarded-for",
    "forwarded-for",
    "x-proxy-user-ip",
    "x-middleware-subrequest",
];
/// Header prefixes the host controls (`Proxy-*`, `X-Forwarded-*`).
const FORBIDDEN_HEADER_PREFIXES: &[&str] = &["proxy-", "x-forwarded-", "x-envoy-"];
const MAX_HEADERS: usize = 64;
/// Largest query a request may carry: keys and values, before encoding.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most query parameters a request may carry.
pub const MAX_QUERY_PARAMS: usize = 256;
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest request body a component may send.
pub const MAX_REQUEST_BODY: usize = 8 * 1024 * 1024;

/// The endpoints a component may reach and what it may send there.
#[derive(Debug, Clone, Default)]
pub struct HttpGrants {
    endpoints: BTreeMap<String, EndpointGrant>,
    /// The manifest the grants came from, for hints about endpoints it lacks.
    manifest: Option<PathBuf>,
}

impl HttpGrants {
    /// Grants from a manifest's endpoints (or none).
    pub fn new(endpoints: BTreeMap<String, EndpointGrant>, manifest: Option<PathBuf>) -> Self {
        HttpGrants { endpoints, manifest }
    }

    /// Points an endpoint at another URL (`--endpoint NAME=URL`). An endpoint the manifest
    /// does not name is granted GET and HEAD on every path.
    pub fn override_url(&mut self, name: &str, url: Url) {
        match self.endpoints.get_mut(name) {
            Some(grant) => grant.url = url,
            None => {
                let rules = vec![Rule { methods: vec!["GET".into(), "HEAD".into()], paths: vec!["/".into()] }];
                let grant = EndpointGrant { name: name.into(), url, rules, timeout: None, origin: Origin::CommandLine };
                self.endpoints.insert(name.into(), grant);
            }
        }
    }

    /// Keeps only the endpoints `keep` accepts (the others are refused as unknown).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.endpoints.retain(|name, _| keep(name));
    }

    /// The granted endpoints, by name.
    pub fn endpoints(&self) -> impl Iterator<Item = &EndpointGrant> {
        self.endpoints.values()
    }

    /// Checks a request against the grants and builds its URL.
    pub fn authorize(&self, req: &OutgoingRequest) -> Result<AuthorizedRequest, Refusal> {
        let Some(grant) = self.endpoints.get(&req.endpoint) else {
            return Err(self.unknown_endpoint(&req.endpoint));
        };
        check_path(&req.path)
            .map_err(|why| Refusal::Invalid(format!("path `{}` {why}", crate::text::escape(&req.path))))?;
        let query_bytes: usize = req.query.iter().map(|(k, v)| k.len() + v.len()).sum();
        if req.query.len() > MAX_QUERY_PARAMS || query_bytes > MAX_QUERY_BYTES {
            return Err(Refusal::Invalid(format!(
                "the query has {} parameters and {query_bytes} bytes; at most {MAX_QUERY_PARAMS} and {MAX_QUERY_BYTES} are sent",
                req.query.len()
            )));
        }
        let method = req.method.to_ascii_uppercase();
        let headers = check_headers(&req.headers)?;
        if req.body.as_ref().is_some_and(|b| b.len() > MAX_REQUEST_BODY) {
            return Err(Refusal::Invalid(format!("request body larger than {MAX_REQUEST_BODY} bytes")));
        }

        let allowed = grant
            .rules
            .iter()
            .any(|r| r.methods.contains(&method) && r.paths.iter().any(|p| path_has_prefix(&req.path, p)));
        if !allowed {
            return Err(denied_by_rules(grant, &method, &req.path));
        }

        let url = build_url(&grant.url, &req.path, &req.query)?;
        let timeout = match (grant.timeout, req.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(AuthorizedRequest { method, url, headers, body: req.body.clone(), timeout })
    }

    fn unknown_endpoint(&self, name: &str) -> Refusal {
        let reason = if self.endpoints.is_empty() {
            format!("endpoint `{name}` is not granted: this component has no HTTP endpoints granted")
        } else {
            let known: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            format!("endpoint `{name}` is not granted (granted: {})", known.join(", "))
        };
        let section = format!(
            "[endpoints.{name}]\nurl = \"http://HOST:PORT\"\nallow = [{{ methods = [\"GET\"], paths = [\"/\"] }}]"
        );
        let hint = match &self.manifest {
            Some(path) => {
                format!("add to {}:\n{section}\nor pass --endpoint {name}=URL for read-only access", path.display())
            }
            None => format!("pass --endpoint {name}=URL for read-only access, or --manifest FILE with:\n{section}"),
        };
        Refusal::Denied { reason, hint }
    }
}

fn denied_by_rules(grant: &EndpointGrant, method: &str, path: &str) -> Refusal {
    let path_ok = grant.rules.iter().any(|r| r.paths.iter().any(|p| path_has_prefix(path, p)));
    let reason = if path_ok {
        format!("{method} is not granted on `{path}` of endpoint `{}`", grant.name)
    } else {
        format!("path `{path}` of endpoint `{}` is not granted", grant.name)
    };
    let rule = format!("{{ methods = [\"{method}\"], paths = [\"{path}\"] }}");
    let hint = match &grant.origin {
        Origin::Manifest { path: file, line } => {
            format!("add {rule} to endpoints.{}.allow in {}:{line}", grant.name, file.display())
        }
        Origin::CommandLine => format!(
            "--endpoint grants only GET and HEAD; to allow this, pass --manifest FILE with endpoints.{}.allow = [{rule}]",
            grant.name
        ),
    };
    Refusal::Denied { reason, hint }
}

/// Checks that `path` is a clean absolute path: what a grant prefix or a request may name.
///
/// Refuses anything a server or proxy could resolve to another path or host: `//` (another
/// authority), `.`/`..` segments, `;` (path parameters: `..;` is `..` to Tomcat and Jetty),
/// backslashes, query or fragment markers, control characters, and percent-encoded `.`, `/`,
/// `\`, `;`, `%` or NUL.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with `/` (a path, not a URL)");
    }
    if path.starts_with("//") {
        return Err("must not start with `//`");
    }
    if path.len() > 8 * 1024 {
        return Err("is longer than 8 KiB");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = path.get(i + 1..i + 3).ok_or("has a truncated %-escape")?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| "has an invalid %-escape")?;
                if matches!(v, b'.' | b'/' | b'\\' | b'%' | b';' | 0) || v < 0x20 {
                    return Err("encodes a separator, dot, `;`, `%` or control character");
                }
                i += 3;
                continue;
            }
            b'?' | b'#' => return Err("must not contain `?` or `#`; pass the query separately"),
            b';' => return Err("must not contain `;` (path parameters can turn `..;` into `..`)"),
            b'\\' => return Err("must not contain `\\`"),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => {}
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':'
            | b'@' | b'/' => {}
            _ => return Err("contains a character that must be percent-encoded"),
        }
        i += 1;
    }
    for segment in path[1..].split('/') {
        if segment == "." || segment == ".." {
            return Err("must not contain `.` or `..` segments");
        }
    }
    // Escaped bytes must be ASCII: a lenient decoder reads an overlong `%C0%AE` as `.`, and
    // Unicode normalization turns a fullwidth `%EF%BC%8E` into `.`.
    if percent_decode(path).is_none_or(|p| !p.is_ascii()) {
        return Err("encodes bytes that are not ASCII");
    }
    if path[1..].split('/').rev().skip(1).any(str::is_empty) {
        return Err("must not contain empty segments (`//`)");
    }
    Ok(())
}

/// The path with its `%XX` escapes decoded, if that is valid UTF-8 (overlong forms are not).
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(path.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// True when `prefix` covers `path` on whole segments.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

fn check_headers(headers: &[(String, String)]) -> Result<Vec<(String, String)>, Refusal> {
    if headers.len() > MAX_HEADERS {
        return Err(Refusal::Invalid(format!("more than {MAX_HEADERS} headers")));
    }
    let total: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if total > MAX_HEADER_BYTES {
        return Err(Refusal::Invalid(format!("headers larger than {MAX_HEADER_BYTES} bytes")));
    }
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(Refusal::Invalid(format!("header name {name:?} is not a valid token")));
        }
        // CGI, PHP and WSGI servers read `X_Forwarded_For` as `X-Forwarded-For`.
        if name.contains('_') {
            return Err(Refusal::Invalid(format!(
                "header name {name:?} has `_`, which servers may read as `-`; use `-`"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || FORBIDDEN_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p))
        {
            return Err(Refusal::Invalid(format!("header `{name}` is set by the host and cannot be sent")));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Refusal::Invalid(format!(
                "header `{name}` has a control character (CR, LF or NUL) in its value"
            )));
        }
        out.push((lower, value.clone()));
    }
    Ok(out)
}

fn build_url(base: &Url, path: &str, query: &[(String, String)]) -> Result<Url, Refusal> {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, v);
        }
    }
    if url.origin() != base.origin() {
        return Err(Refusal::Invalid("the request would leave the endpoint's origin".into()));
    }
    Ok(url)
}

/// Sends authorized requests. Implementations read at most `max_body` bytes of the body.
pub trait HttpTransport: Send + Sync {
    fn send<'a>(
        &'a self,
        req: AuthorizedRequest,
        max_body: u64,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;
}

/// The real transport: reqwest, with no redirects and no proxies.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A client that never follows redirects (a redirect could lead outside the grant).
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(ReqwestTransport { client })
    }
}

impl HttpTransport for ReqwestTransport {
    fn send<'a>(
        &'a self,
        req: AuthorizedRequest,
        max_body: u64,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(req.method.as_bytes())
                .map_err(|_| TransportError::Unreachable(format!("bad method {}", req.method)))?;
            let mut builder = self.client.request(method, req.url);
            for (name, value) in &req.headers {
                builder = builder.header(name, value);
            }
            if let Some(body) = req.body {
                builder = builder.body(body);
            }
            let mut resp = builder.send().await.map_err(describe)?;
            if resp.content_length().is_some_and(|n| n > max_body) {
                return Err(TransportError::TooLarge(max_body));
            }
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .take(MAX_HEADERS * 2)
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(describe)? {
                if (body.len() + chunk.len()) as u64 > max_body {
                    return Err(TransportError::TooLarge(max_body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse { status, headers, body })
        })
    }
}

/// The error and its causes, without the URL (the component never sees URLs).
fn describe(e: reqwest::Error) -> TransportError {
    let e = e.without_url();
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "reading the response failed".to_string()
    } else {
        "sending the request failed".to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            let _ = write!(msg, ": {text}");
        }
        source = s.source();
    }
    TransportError::Unreachable(msg)
}

// --- The capability's host side ------------------------------------------------------------

use std::sync::Arc;

use super::context::CallContext;
use crate::bindings::http as wit;

/// The `http` capability of one call: the grants, the transport, and the response limit.
pub struct HttpHost {
    grants: HttpGrants,
    transport: Arc<dyn HttpTransport>,
    response_limit: u64,
    context: Arc<CallContext>,
}

impl HttpHost {
    /// The capability for a call with `context`, sending through `transport`.
    pub fn new(
        grants: HttpGrants,
        transport: Arc<dyn HttpTransport>,
        response_limit: u64,
        context: Arc<CallContext>,
    ) -> Self {
        HttpHost { grants, transport, response_limit, context }
    }
}

impl From<wit::Request> for OutgoingRequest {
    fn from(r: wit::Request) -> Self {
        let method = match r.method {
            wit::Method::Get => "GET",
            wit::Method::Head => "HEAD",
            wit::Method::Post => "POST",
            wit::Method::Put => "PUT",
            wit::Method::Patch => "PATCH",
            wit::Method::Delete => "DELETE",
        };
        OutgoingRequest {
            endpoint: r.endpoint,
            method: method.into(),
            path: r.path,
            query: r.query,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: r.body,
            timeout: r.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
        }
    }
}

impl wit::Host for HttpHost {
    async fn send(&mut self, request: wit::Request) -> wasmtime::Result<Result<wit::Response, wit::HttpError>> {
        let request = OutgoingRequest::from(request);
        let authorized = match self.grants.authorize(&request) {
            Ok(a) => a,
            Err(Refusal::Denied { reason, hint }) => {
                return Ok(Err(wit::HttpError::Denied(self.context.deny("http", reason, hint))));
            }
            Err(Refusal::Invalid(why)) => return Ok(Err(wit::HttpError::InvalidRequest(why))),
        };
        tracing::debug!(component = self.context.component(), "{} {}", authorized.method, authorized.url);
        let timeout = authorized.timeout;
        let sent = self.transport.send(authorized, self.response_limit);
        Ok(match self.context.wait(timeout, sent).await? {
            Ok(Ok(r)) => Ok(wit::Response {
                status: r.status,
                headers: r.headers.into_iter().map(|(name, value)| wit::Header { name, value }).collect(),
                body: r.body,
            }),
            Ok(Err(TransportError::Unreachable(why))) => Err(wit::HttpError::Unreachable(why)),
            Ok(Err(TransportError::TooLarge(limit))) => Err(wit::HttpError::TooLarge(limit)),
            Err(t) => Err(wit::HttpError::Timeout(format!(
                "no complete response within {}",
                crate::limits::format_duration(t)
            ))),
        })
    }

    async fn endpoints(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.grants.endpoints().map(|g| g.name.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use std::path::Path;

    fn grants() -> HttpGrants {
        let text = r#"
[endpoints.pd]
url = "http://127.0.0.1:2379"
allow = [
  { methods = ["GET"], paths = ["/pd/api/v1/stores", "/pd/api/v1/region/id/"] },
  { methods = ["POST"], paths = ["/pd/api/v1/operators"] },
]
"#;
        let m = Manifest::parse(Path::new("subjects/tikv/operator.toml"), text).expect("manifest");
        HttpGrants::new(m.endpoints, Some(m.path))
    }

    fn req(endpoint: &str, method: &str, path: &str) -> OutgoingRequest {
        OutgoingRequest {
            endpoint: endpoint.into(),
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers: vec![],
            body: None,
            timeout: None,
        }
    }

    #[test]
    fn a_granted_request_gets_the_endpoint_url_and_its_query() {
        let mut r = req("pd", "GET", "/pd/api/v1/stores");
        r.query = vec![("state".into(), "0".into()), ("state".into(), "1 2".into())];
        let a = grants().authorize(&r).expect("allowed");
        assert_eq!(a.url.as_str(), "http://127.0.0.1:2379/pd/api/v1/stores?state=0&state=1+2");
        let a = grants().authorize(&req("pd", "GET", "/pd/api/v1/region/id/42")).expect("allowed");
        assert_eq!(a.url.path(), "/pd/api/v1/region/id/42");
    }

    #[test]
    fn an_ungranted_endpoint_is_denied_with_the_section_to_add() {
        let Err(Refusal::Denied { reason, hint }) = grants().authorize(&req("grafana", "GET", "/")) else {
            panic!("expected a denial");
        };
        assert!(reason.contains("`grafana` is not granted (granted: pd)"), "{reason}");
        assert!(hint.contains("subjects/tikv/operator.toml") && hint.contains("[endpoints.grafana]"), "{hint}");
    }

    #[test]
    fn an_ungranted_method_names_the_manifest_line_that_would_allow_it() {
        let Err(Refusal::Denied { reason, hint }) = grants().authorize(&req("pd", "DELETE", "/pd/api/v1/stores"))
        else {
            panic!("expected a denial");
        };
        assert!(reason.contains("DELETE is not granted"), "{reason}");
        assert_eq!(
            hint,
            "add { methods = [\"DELETE\"], paths = [\"/pd/api/v1/stores\"] } to endpoints.pd.allow in subjects/tikv/operator.toml:4"
        );
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        assert!(grants().authorize(&req("pd", "GET", "/pd/api/v1/stores/1")).is_ok());
        assert!(matches!(grants().authorize(&req("pd", "GET", "/pd/api/v1/storesX")), Err(Refusal::Denied { .. })));
        assert!(matches!(grants().authorize(&req("pd", "GET", "/pd/api/v1/config")), Err(Refusal::Denied { .. })));
        assert!(matches!(grants().authorize(&req("pd", "POST", "/pd/api/v1/stores")), Err(Refusal::Denied { .. })));
    }

    #[test]
    fn path_escapes_and_absolute_urls_are_invalid() {
        for path in [
            "/pd/api/v1/stores/../config",
            "/pd/api/v1/stores/%2e%2e/config",
            "/pd/api/v1/stores/%2E%2E/config",
            "/pd/api/v1/stores%2f..%2fconfig",
            "/pd/api/v1/stores/./x",
            "//evil.example/pd/api/v1/stores",
            "http://evil.example/pd/api/v1/stores",
            "/pd/api/v1/stores?x=1",
            "/pd/api/v1/stores#x",
            "/pd/api/v1/stores\\..\\config",
            "/pd/api/v1/stores//x",
            "/pd/api/v1/stores/\r\nHost: evil",
            "/pd/api/v1/stores/%25",
            "pd/api/v1/stores",
            "/pd/api/v1/stores/..;/config",
            "/pd/api/v1/stores;x=1",
            "/pd/api/v1/stores/..%3b/config",
            "/pd/api/v1/stores/%C0%AE%C0%AE/config",
            "/pd/api/v1/stores/%E0%80%AE",
            "/pd/api/v1/stores/%ff",
            "/pd/api/v1/stores/%EF%BC%8E%EF%BC%8E/config",
        ] {
            assert!(
                matches!(grants().authorize(&req("pd", "GET", path)), Err(Refusal::Invalid(_))),
                "{path:?} should be invalid"
            );
        }
    }

    #[test]
    fn smuggling_headers_are_refused() {
        for (name, value) in [
            ("Host", "evil.example"),
            ("Content-Length", "0"),
            ("Transfer-Encoding", "chunked"),
            ("X-Ok", "a\r\nX-Evil: 1"),
            ("X-Ok", "a\nb"),
            ("Bad Name", "x"),
            ("Proxy-Anything", "x"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("X-Original-URL", "/pd/api/v1/config"),
            ("X-Rewrite-URL", "/pd/api/v1/config"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Host", "internal"),
            ("Forwarded", "for=127.0.0.1"),
            ("X-Forwarded", "for=127.0.0.1"),
            ("True-Client-IP", "127.0.0.1"),
            ("CF-Connecting-IP", "127.0.0.1"),
            ("X-Original-Host", "internal"),
            ("X-Host", "internal"),
            ("Via", "1.1 internal"),
            ("X_Forwarded_For", "127.0.0.1"),
            ("X_HTTP_Method_Override", "DELETE"),
            ("Client-IP", "127.0.0.1"),
            ("X-Envoy-Original-Path", "/pd/api/v1/config"),
            ("X-Middleware-Subrequest", "middleware"),
        ] {
            let mut r = req("pd", "GET", "/pd/api/v1/stores");
            r.headers = vec![(name.into(), value.into())];
            assert!(matches!(grants().authorize(&r), Err(Refusal::Invalid(_))), "{name}: {value:?}");
        }
        let mut r = req("pd", "GET", "/pd/api/v1/stores");
        r.headers = vec![("Accept".into(), "application/json".into())];
        assert!(grants().authorize(&r).is_ok());
    }

    #[test]
    fn a_query_is_bounded_before_it_is_encoded() {
        let mut r = req("pd", "GET", "/pd/api/v1/stores");
        r.query = vec![("q".into(), "x".repeat(MAX_QUERY_BYTES))];
        assert!(matches!(grants().authorize(&r), Err(Refusal::Invalid(m)) if m.contains("at most")));
        r.query = (0..=MAX_QUERY_PARAMS).map(|i| (i.to_string(), String::new())).collect();
        assert!(matches!(grants().authorize(&r), Err(Refusal::Invalid(_))));
        r.query = vec![("q".into(), "x".repeat(1000))];
        assert!(grants().authorize(&r).is_ok());
    }

    #[test]
    fn a_command_line_endpoint_is_read_only() {
        let mut g = HttpGrants::default();
        g.override_url("prom", Url::parse("http://127.0.0.1:9090").expect("url"));
        assert!(g.authorize(&req("prom", "GET", "/api/v1/query")).is_ok());
        let Err(Refusal::Denied { hint, .. }) = g.authorize(&req("prom", "POST", "/api/v1/query")) else {
            panic!("expected a denial");
        };
        assert!(hint.contains("--manifest"), "{hint}");
    }

    #[test]
    fn an_override_keeps_the_manifest_rules() {
        let mut g = grants();
        g.override_url("pd", Url::parse("http://10.0.0.1:2379/base/").expect("url"));
        let a = g.authorize(&req("pd", "GET", "/pd/api/v1/stores")).expect("allowed");
        assert_eq!(a.url.as_str(), "http://10.0.0.1:2379/base/pd/api/v1/stores");
        assert!(g.authorize(&req("pd", "GET", "/pd/api/v1/config")).is_err());
    }

    // --- The capability's host side, through its WIT trait, with a fake transport ----------

    /// Answers every request with its URL, or never answers.
    struct FakeTransport {
        silent: bool,
        sent: std::sync::Mutex<Vec<String>>,
    }

    impl HttpTransport for FakeTransport {
        fn send<'a>(
            &'a self,
            req: AuthorizedRequest,
            _max_body: u64,
        ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>> {
            Box::pin(async move {
                self.sent.lock().expect("not poisoned").push(req.url.to_string());
                if self.silent {
                    std::future::pending::<()>().await;
                }
                Ok(HttpResponse { status: 200, headers: vec![], body: req.url.as_str().as_bytes().to_vec() })
            })
        }
    }

    fn host(silent: bool, host_budget: Duration) -> (HttpHost, Arc<CallContext>, Arc<FakeTransport>) {
        let ctx = CallContext::new("adapter", Duration::from_secs(5), host_budget);
        ctx.clock().start();
        let transport = Arc::new(FakeTransport { silent, sent: Default::default() });
        (HttpHost::new(grants(), transport.clone(), 1 << 20, ctx.clone()), ctx, transport)
    }

    fn wit_req(endpoint: &str, method: wit::Method, path: &str, timeout_ms: Option<u32>) -> wit::Request {
        wit::Request {
            endpoint: endpoint.into(),
            method,
            path: path.into(),
            query: vec![],
            headers: vec![],
            body: None,
            timeout_ms,
        }
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
    }

    #[test]
    fn a_granted_request_reaches_the_transport_and_a_refused_one_is_recorded() {
        use wit::Host as _;
        let (mut h, ctx, transport) = host(false, Duration::from_secs(5));
        let r = block(h.send(wit_req("pd", wit::Method::Get, "/pd/api/v1/stores", None))).expect("no trap");
        assert_eq!(r.expect("sent").body, b"http://127.0.0.1:2379/pd/api/v1/stores");
        let r = block(h.send(wit_req("pd", wit::Method::Delete, "/pd/api/v1/stores", None))).expect("no trap");
        assert!(matches!(r, Err(wit::HttpError::Denied(_))), "{r:?}");
        assert_eq!(transport.sent.lock().expect("lock").len(), 1, "the refused request was not sent");
        let (kept, _) = ctx.take_denials();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].capability, "http");
        assert_eq!(block(h.endpoints()).expect("names"), ["pd"]);
    }

    #[test]
    fn a_silent_server_is_a_timeout_for_the_guest_then_stops_the_call_at_the_budget() {
        use wit::Host as _;
        let (mut h, _ctx, _) = host(true, Duration::from_millis(200));
        let r = block(h.send(wit_req("pd", wit::Method::Get, "/pd/api/v1/stores", Some(20)))).expect("no trap");
        assert!(matches!(r, Err(wit::HttpError::Timeout(_))), "{r:?}");
        let e = block(h.send(wit_req("pd", wit::Method::Get, "/pd/api/v1/stores", None))).expect_err("stopped");
        assert!(matches!(e.downcast_ref::<crate::error::HostAbort>(), Some(crate::error::HostAbort::HostBudget)));
    }
}
