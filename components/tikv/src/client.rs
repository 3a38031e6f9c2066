//! HTTP through the host, and how PD and Prometheus failures become Subject errors.
//!
//! Everything the adapter sends goes through [`Http`]: the host's `http` import in the
//! component, a recorded transport in tests, so the same code runs in both.

use serde::de::DeserializeOwned;

use crate::bindings::operator::core::http::{HttpError, Method, Request, Response};
use crate::bindings::operator::core::log::Level;
use crate::bindings::operator::core::types::SubjectError;

/// PD's endpoint name in the grant manifest.
pub const PD: &str = "pd";
/// Prometheus's endpoint name in the grant manifest.
pub const PROMETHEUS: &str = "prometheus";

/// Timeout asked of the host for one read request.
const READ_TIMEOUT_MS: u32 = 5_000;
/// Timeout asked of the host for one write request.
const WRITE_TIMEOUT_MS: u32 = 10_000;

/// What the adapter needs from its environment.
pub trait Http {
    /// Sends one request.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;
    /// Waits (between polls).
    fn sleep_ms(&self, ms: u64);
    /// A monotonic clock in milliseconds.
    fn now_ms(&self) -> u64;
    /// A message for the operator.
    fn log(&self, level: Level, message: &str);
}

/// A response with a status the caller still has to judge.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GET `path` with `query` on `endpoint`.
pub fn get(http: &dyn Http, endpoint: &str, path: &str, query: &[(&str, String)]) -> Result<Reply, SubjectError> {
    let request = Request {
        endpoint: endpoint.into(),
        method: Method::Get,
        path: path.into(),
        query: query.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        headers: vec![],
        body: None,
        timeout_ms: Some(READ_TIMEOUT_MS),
    };
    send(http, &request)
}

/// POST a JSON body to `path` on `endpoint`.
pub fn post_json(http: &dyn Http, endpoint: &str, path: &str, body: &serde_json::Value) -> Result<Reply, SubjectError> {
    let request = Request {
        endpoint: endpoint.into(),
        method: Method::Post,
        path: path.into(),
        query: vec![],
        headers: vec![crate::bindings::operator::core::http::Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: Some(body.to_string().into_bytes()),
        timeout_ms: Some(WRITE_TIMEOUT_MS),
    };
    send(http, &request)
}

fn send(http: &dyn Http, request: &Request) -> Result<Reply, SubjectError> {
    match http.send(request) {
        Ok(r) => Ok(Reply { status: r.status, body: r.body }),
        Err(e) => Err(transport_error(&request.endpoint, &request.path, e)),
    }
}

fn transport_error(endpoint: &str, path: &str, e: HttpError) -> SubjectError {
    match e {
        HttpError::Denied(d) => SubjectError::Denied(format!("{endpoint} {path}: {}; {}", d.reason, d.hint)),
        HttpError::InvalidRequest(m) => {
            SubjectError::Denied(format!("{endpoint} {path}: the host refused the request: {m}"))
        }
        HttpError::Unreachable(m) => SubjectError::Unreachable(format!("{endpoint} is unreachable: {m}")),
        HttpError::Timeout(m) => SubjectError::Unreachable(format!("{endpoint} did not answer {path}: {m}")),
        HttpError::TooLarge(n) => {
            SubjectError::BadResponse(format!("{endpoint} {path}: the response is larger than the {n}-byte limit"))
        }
    }
}

/// The message in a PD error body: a JSON string (`"[PD:...]..."`), an errcode object
/// (`{"code":"input","msg":"..."}`), or plain text (`404 page not found`).
pub fn pd_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(trimmed)
    {
        return s;
    }
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Some(msg) = v.get("msg").and_then(|m| m.as_str())
    {
        return msg.to_string();
    }
    let mut s = trimmed.to_string();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Judges a PD reply to a read: 2xx is parsed as `T`, 503 means PD has no leader, anything else
/// is an error carrying PD's message.
pub fn pd_json<T: DeserializeOwned>(path: &str, reply: Reply) -> Result<T, SubjectError> {
    match reply.status {
        200..=299 => parse(PD, path, &reply.body),
        503 => Err(SubjectError::Unreachable(format!("pd {path}: HTTP 503: {}", pd_message(&reply.body)))),
        404 => Err(SubjectError::NotFound(format!("pd {path}: HTTP 404: {}", pd_message(&reply.body)))),
        s => Err(SubjectError::BadResponse(format!("pd {path}: HTTP {s}: {}", pd_message(&reply.body)))),
    }
}

/// Parses a JSON body, saying which endpoint and path sent something else.
pub fn parse<T: DeserializeOwned>(endpoint: &str, path: &str, body: &[u8]) -> Result<T, SubjectError> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        SubjectError::BadResponse(format!("{endpoint} {path}: unexpected answer ({e}); it starts with {start:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pd_errors_are_json_strings_errcode_objects_or_text() {
        assert_eq!(
            pd_message(b"\"[PD:region:ErrRegionNotFound]region 42 not found\"\n"),
            "[PD:region:ErrRegionNotFound]region 42 not found"
        );
        assert_eq!(pd_message(br#"{"code":"input","msg":"invalid store id","data":null}"#), "invalid store id");
        assert_eq!(pd_message(b"404 page not found\n"), "404 page not found");
    }
}
