//! The HTTP transport of a conformance run: it records every request a component makes (by
//! endpoint, method and path) and injects the case's fault at the host's HTTP capability,
//! with the real cluster behind it. Grants are checked before the transport, exactly as in
//! production, so what the component is refused shows in the call's denials, not here.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use url::Url;

use super::case::Fault;
use crate::capability::http::{AuthorizedRequest, HttpResponse, HttpTransport, TransportError};

/// Requests kept per call; later ones are counted (and fail `fast-enough`).
pub const MAX_SEEN: usize = 1_000;
/// Bytes of a request's path kept.
const MAX_PATH: usize = 256;
/// Bytes of an error body kept (the cluster's own message, for `transfer-rejected`).
const MAX_ERROR_BODY: usize = 2048;
/// The body a `status-500` fault answers with (PD's words for a server that is not ready).
pub const FAULT_500_BODY: &str = "[PD:server:ErrServerNotStarted]server not started";
/// The body a `malformed-json` fault answers with.
const MALFORMED: &[u8] = b"{\"count\": 3,, \"stores\": [{\"store\": {\"id\": 1";

/// One request a component sent (after the grants allowed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenRequest {
    /// The endpoint's name (`?` when the URL matches none of the run's endpoints).
    pub endpoint: String,
    pub method: String,
    /// The path below the endpoint's URL.
    pub path: String,
    /// The status the component got, or none when sending failed.
    pub status: Option<u16>,
    /// The start of a non-2xx body.
    #[serde(skip)]
    pub error_body: Option<String>,
}

#[derive(Debug, Default)]
struct ProbeState {
    fault: Fault,
    seen: Vec<SeenRequest>,
    dropped: u64,
    endpoints: Vec<(String, Url)>,
}

/// Records requests and injects faults in front of a real transport.
pub struct Probe {
    inner: Arc<dyn HttpTransport>,
    state: Mutex<ProbeState>,
}

impl Probe {
    /// A probe sending through `inner`.
    pub fn new(inner: Arc<dyn HttpTransport>) -> Arc<Probe> {
        Arc::new(Probe { inner, state: Mutex::new(ProbeState::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a call: the endpoints requests are named by, the fault to inject, nothing seen.
    pub fn begin(&self, endpoints: &[(String, Url)], fault: Fault) {
        let mut s = self.lock();
        s.fault = fault;
        s.seen.clear();
        s.dropped = 0;
        s.endpoints = endpoints.to_vec();
    }

    /// Ends a call: what it sent, and how many more requests were only counted.
    pub fn take(&self) -> (Vec<SeenRequest>, u64) {
        let mut s = self.lock();
        s.fault = Fault::None;
        (std::mem::take(&mut s.seen), std::mem::take(&mut s.dropped))
    }

    /// The endpoint and path of a URL, by the longest endpoint URL it lies under.
    fn name(endpoints: &[(String, Url)], url: &Url) -> (String, String) {
        let mut best: Option<(&str, &str)> = None;
        for (name, base) in endpoints {
            if base.origin() != url.origin() {
                continue;
            }
            let prefix = base.path().trim_end_matches('/');
            if url.path().starts_with(prefix) && best.is_none_or(|(_, p)| prefix.len() > p.len()) {
                best = Some((name, prefix));
            }
        }
        match best {
            Some((name, prefix)) => {
                let rest = &url.path()[prefix.len()..];
                (name.to_string(), if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") })
            }
            None => ("?".into(), url.path().to_string()),
        }
    }

    fn record(&self, mut req: SeenRequest) {
        req.path.truncate(req.path.floor_char_boundary(MAX_PATH));
        let mut s = self.lock();
        if s.seen.len() < MAX_SEEN {
            s.seen.push(req);
        } else {
            s.dropped += 1;
        }
    }
}

/// A loopback URL nothing listens on (a port just bound and released).
fn closed_port(url: &Url) -> Url {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9);
    let mut u = url.clone();
    let _ = u.set_host(Some("127.0.0.1"));
    let _ = u.set_port(Some(port));
    u
}

impl HttpTransport for Probe {
    fn send<'a>(
        &'a self,
        mut req: AuthorizedRequest,
        max_body: u64,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>> {
        Box::pin(async move {
            let (fault, endpoints) = {
                let s = self.lock();
                (s.fault, s.endpoints.clone())
            };
            let (endpoint, path) = Self::name(&endpoints, &req.url);
            let method = req.method.clone();
            let answer = match fault {
                Fault::Status500 => Ok(HttpResponse {
                    status: 500,
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body: FAULT_500_BODY.as_bytes().to_vec(),
                }),
                Fault::ConnectionRefused => {
                    req.url = closed_port(&req.url);
                    self.inner.send(req, max_body).await
                }
                Fault::SlowBody => {
                    // Never completes: the host's timeouts end it, and the cluster never sees it.
                    std::future::pending::<()>().await;
                    self.inner.send(req, max_body).await
                }
                Fault::MalformedJson => self.inner.send(req, max_body).await.map(|mut r| {
                    r.status = 200;
                    r.body = MALFORMED.to_vec();
                    r
                }),
                Fault::TruncatedBody => self.inner.send(req, max_body).await.map(|mut r| {
                    r.status = 200;
                    let half = r.body.len() / 2;
                    r.body.truncate(half);
                    r
                }),
                Fault::None => self.inner.send(req, max_body).await,
            };
            let (status, error_body) = match &answer {
                Ok(r) if (200..300).contains(&r.status) => (Some(r.status), None),
                Ok(r) => {
                    let cut = &r.body[..r.body.len().min(MAX_ERROR_BODY)];
                    (Some(r.status), Some(String::from_utf8_lossy(cut).into_owned()))
                }
                Err(_) => (None, None),
            };
            self.record(SeenRequest { endpoint, method, path, status, error_body });
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_named_by_the_longest_endpoint_it_lies_under() {
        let u = |s: &str| Url::parse(s).expect("url");
        let endpoints = vec![
            ("pd".to_string(), u("http://127.0.0.1:2379")),
            ("api".to_string(), u("http://127.0.0.1:2379/pd/api/")),
            ("prometheus".to_string(), u("http://127.0.0.1:9090")),
        ];
        assert_eq!(
            Probe::name(&endpoints, &u("http://127.0.0.1:2379/pd/api/v1/stores")),
            ("api".into(), "/v1/stores".into())
        );
        assert_eq!(Probe::name(&endpoints, &u("http://127.0.0.1:2379/health")), ("pd".into(), "/health".into()));
        assert_eq!(
            Probe::name(&endpoints, &u("http://127.0.0.1:9090/api/v1/query?query=up")),
            ("prometheus".into(), "/api/v1/query".into())
        );
        assert_eq!(Probe::name(&endpoints, &u("http://10.0.0.1:1/x")).0, "?");
    }
}
