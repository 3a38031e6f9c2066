//! Grant manifests: the TOML file that says what a subject's component may do.
//!
//! ```toml
//! [subject]
//! name = "tikv"
//! component = "tikv"
//!
//! [endpoints.pd]
//! url = "http://127.0.0.1:2379"
//! allow = [
//!   { methods = ["GET"], paths = ["/pd/api/v1/stores"] },
//!   { methods = ["POST"], paths = ["/pd/api/v1/operators"] },
//! ]
//!
//! [limits]
//! deadline = "2s"
//! memory = "128MiB"
//! ```
//!
//! Nothing is granted by default. Every value keeps the line it was written on, so that a
//! denial can point at the exact place an operator would edit to allow a request.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::limits::{ByteSize, HumanDuration, LimitOverrides, MAX_MEMORY};

/// The conventional file name of a subject's grant manifest.
pub const MANIFEST_FILE: &str = "operator.toml";
/// Largest manifest read.
pub const MAX_MANIFEST: u64 = 1024 * 1024;

/// A parsed, validated grant manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from (shown in denial hints).
    pub path: PathBuf,
    pub subject: Option<SubjectSection>,
    /// Granted HTTP endpoints by name.
    pub endpoints: BTreeMap<String, EndpointGrant>,
    pub limits: LimitOverrides,
    pub deployment: Option<DeploymentSection>,
}

/// `[deployment]`: how the subject's local cluster is deployed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentSection {
    /// Compose file, relative to the subject folder and inside it (default: compose's names).
    pub compose_file: Option<String>,
    /// The deployment driver component (default `compose`).
    pub driver: Option<String>,
    /// The driver `operator deploy swarm` runs (default `swarm`).
    pub swarm_driver: Option<String>,
    /// Named URLs shown after `up` (Grafana, Prometheus, PD...).
    pub urls: BTreeMap<String, String>,
    /// The operator's environment variables the compose file may interpolate; no others are
    /// handed to the driver.
    pub env: Vec<String>,
    /// Registries images may be pulled from; none: those the compose file names literally.
    pub registries: Option<Vec<String>>,
    /// What the driver may do beyond its project's own resources.
    pub docker: DockerSection,
}

/// `[deployment.docker]`: Docker grants beyond the project's own resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DockerSection {
    pub privileged: bool,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    /// The Docker socket, and any bind that is, contains or lies inside its folder.
    pub docker_socket: bool,
    pub cap_add: Vec<String>,
    pub devices: Vec<String>,
    /// Host paths (absolute, or relative to the subject folder) binds may use read-only.
    pub host_paths: Vec<String>,
    /// Host paths binds may use read-write, each bound whole; never the subject folder.
    pub writable_paths: Vec<String>,
    /// Host addresses ports may be published on besides loopback (`0.0.0.0`: all interfaces).
    pub publish_addresses: Vec<String>,
    /// Host ports below 1024.
    pub low_ports: bool,
    /// Ports published by Swarm services: Swarm publishes on every interface of every node
    /// (ingress and host mode alike), so `deploy swarm` publishes nothing without it.
    pub swarm_ports: bool,
    /// Ulimit names (`nofile`).
    pub ulimits: Vec<String>,
    /// `extra_hosts` entries.
    pub extra_hosts: bool,
    /// `restart: always` and `unless-stopped`, which outlive the operator.
    pub restart_always: bool,
    /// Namespaced label keys (`traefik.enable`), or prefixes ending in `.`.
    pub labels: Vec<String>,
}

/// `[subject]`: which component serves this subject.
#[derive(Debug, Clone)]
pub struct SubjectSection {
    pub name: String,
    /// Name or path of the component implementing the subject.
    pub component: String,
    pub description: Option<String>,
}

/// One granted endpoint: where it points and what may be sent there.
#[derive(Debug, Clone)]
pub struct EndpointGrant {
    pub name: String,
    pub url: Url,
    pub rules: Vec<Rule>,
    /// Per-request timeout; the host-time budget still applies on top.
    pub timeout: Option<Duration>,
    /// Where the grant came from, for hints.
    pub origin: Origin,
}

/// Where a grant was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A manifest: file and the line of the endpoint's `allow` list (or its table header).
    Manifest { path: PathBuf, line: usize },
    /// `--endpoint NAME=URL` on the command line, with no manifest entry behind it.
    CommandLine,
}

/// Methods allowed on path prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Upper-case method names (`GET`, `POST`).
    pub methods: Vec<String>,
    /// Path prefixes, matched on whole segments (`/a/b` allows `/a/b` and `/a/b/c`, not `/a/bc`).
    pub paths: Vec<String>,
}

/// Methods a rule may name.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// A manifest that cannot be used; says where and why.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read grant manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid { path: PathBuf, line: usize, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    subject: Option<RawSubject>,
    #[serde(default)]
    endpoints: BTreeMap<String, Spanned<RawEndpoint>>,
    limits: Option<RawLimits>,
    deployment: Option<RawDeployment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDeployment {
    compose_file: Option<Spanned<String>>,
    driver: Option<String>,
    swarm_driver: Option<String>,
    #[serde(default)]
    urls: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    registries: Option<Vec<Spanned<String>>>,
    docker: Option<Spanned<DockerSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    name: String,
    component: String,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    url: Spanned<String>,
    #[serde(default)]
    allow: Option<Spanned<Vec<Spanned<RawRule>>>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    methods: Vec<Spanned<String>>,
    paths: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    deadline: Option<Spanned<String>>,
    host_time: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    response_size: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    stdio: Option<Spanned<String>>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let read = |source| ManifestError::Read { path: path.to_path_buf(), source };
        let bytes = crate::files::read_bounded(path, MAX_MANIFEST).map_err(|e| match e {
            crate::files::BoundedRead::Io(source) => read(source),
            other => read(std::io::Error::other(other.to_string())),
        })?;
        let text =
            String::from_utf8(bytes).map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        Manifest::parse(path, &text)
    }

    /// Validates manifest text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let lines = LineIndex::new(text);
        let invalid = |span: Option<Range<usize>>, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            line: span.map(|s| lines.line(s.start)).unwrap_or(1),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;

        let mut endpoints = BTreeMap::new();
        for (name, endpoint) in raw.endpoints {
            let span = endpoint.span();
            let endpoint = endpoint.into_inner();
            if !valid_name(&name) {
                return Err(invalid(
                    Some(span),
                    format!("endpoint name `{name}` must be lower-case letters, digits and `-`"),
                ));
            }
            let url = parse_endpoint_url(endpoint.url.get_ref()).map_err(|m| invalid(Some(endpoint.url.span()), m))?;
            let timeout = match endpoint.timeout {
                Some(t) => Some(parse_with(&t, |s| s.parse::<HumanDuration>().map(|d| d.0), &invalid)?),
                None => None,
            };
            let (rules, line) = match endpoint.allow {
                Some(allow) => {
                    let line = lines.line(allow.span().start);
                    let mut rules = Vec::new();
                    for rule in allow.into_inner() {
                        rules.push(validate_rule(rule.into_inner(), &invalid)?);
                    }
                    (rules, line)
                }
                None => (Vec::new(), lines.line(span.start)),
            };
            let origin = Origin::Manifest { path: path.to_path_buf(), line };
            endpoints.insert(name.clone(), EndpointGrant { name, url, rules, timeout, origin });
        }

        let mut limits = LimitOverrides::default();
        if let Some(l) = raw.limits {
            let dur = |v: &Option<Spanned<String>>| -> Result<Option<Duration>, ManifestError> {
                v.as_ref().map(|v| parse_with(v, |s| s.parse::<HumanDuration>().map(|d| d.0), &invalid)).transpose()
            };
            let size = |v: &Option<Spanned<String>>| -> Result<Option<u64>, ManifestError> {
                v.as_ref().map(|v| parse_with(v, |s| s.parse::<ByteSize>().map(|b| b.0), &invalid)).transpose()
            };
            limits.deadline = dur(&l.deadline)?;
            limits.host_time = dur(&l.host_time)?;
            limits.memory = size(&l.memory)?;
            limits.response_size = size(&l.response_size)?;
            limits.output = size(&l.output)?;
            limits.stdio = size(&l.stdio)?;
            if let (Some(m), Some(span)) = (limits.memory, l.memory.as_ref().map(|s| s.span()))
                && m > MAX_MEMORY
            {
                return Err(invalid(Some(span), "memory above 4GiB cannot be used by a 32-bit wasm guest".into()));
            }
        }

        let deployment = match raw.deployment {
            None => None,
            Some(d) => {
                let mut urls = BTreeMap::new();
                for (name, url) in d.urls {
                    let parsed = parse_endpoint_url(url.get_ref()).map_err(|m| invalid(Some(url.span()), m))?;
                    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                        return Err(invalid(
                            Some(url.span()),
                            format!("urls: `{}` is not a name", crate::text::escape(&name)),
                        ));
                    }
                    urls.insert(name, parsed.to_string());
                }
                let compose_file = match d.compose_file {
                    Some(f) => {
                        check_relative(f.get_ref())
                            .map_err(|m| invalid(Some(f.span()), format!("compose-file {m}")))?;
                        Some(f.into_inner())
                    }
                    None => None,
                };
                let mut env = Vec::new();
                for v in d.env {
                    let name = v.get_ref();
                    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        return Err(invalid(Some(v.span()), format!("env: `{name}` is not a variable name")));
                    }
                    env.push(v.into_inner());
                }
                let registries = match d.registries {
                    Some(list) => {
                        let mut out = Vec::new();
                        for r in list {
                            crate::capability::docker::image::check_registry(r.get_ref())
                                .map_err(|m| invalid(Some(r.span()), format!("registries: {m}")))?;
                            out.push(crate::capability::docker::image::normalize_registry(r.get_ref()));
                        }
                        Some(out)
                    }
                    None => None,
                };
                let (docker_span, docker) = match d.docker {
                    Some(s) => (Some(s.span()), s.into_inner()),
                    None => (None, DockerSection::default()),
                };
                for a in &docker.publish_addresses {
                    if a.parse::<std::net::IpAddr>().is_err() {
                        return Err(invalid(
                            docker_span.clone(),
                            format!("publish-addresses: `{a}` is not an IP address"),
                        ));
                    }
                }
                Some(DeploymentSection {
                    compose_file,
                    driver: d.driver,
                    swarm_driver: d.swarm_driver,
                    urls,
                    env,
                    registries,
                    docker,
                })
            }
        };
        let subject =
            raw.subject.map(|s| SubjectSection { name: s.name, component: s.component, description: s.description });
        Ok(Manifest { path: path.to_path_buf(), subject, endpoints, limits, deployment })
    }
}

fn parse_with<T, E: std::fmt::Display>(
    v: &Spanned<String>,
    parse: impl Fn(&str) -> Result<T, E>,
    invalid: &impl Fn(Option<Range<usize>>, String) -> ManifestError,
) -> Result<T, ManifestError> {
    parse(v.get_ref()).map_err(|e| invalid(Some(v.span()), e.to_string()))
}

fn validate_rule(
    raw: RawRule,
    invalid: &impl Fn(Option<Range<usize>>, String) -> ManifestError,
) -> Result<Rule, ManifestError> {
    let mut methods = Vec::new();
    for m in raw.methods {
        let upper = m.get_ref().to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err(invalid(
                Some(m.span()),
                format!("unknown method `{}`; use one of {}", m.get_ref(), METHODS.join(", ")),
            ));
        }
        methods.push(upper);
    }
    let mut paths = Vec::new();
    for p in raw.paths {
        if let Err(why) = crate::capability::http::check_path(p.get_ref()) {
            return Err(invalid(Some(p.span()), format!("path prefix `{}` {why}", p.get_ref())));
        }
        paths.push(p.into_inner());
    }
    if methods.is_empty() || paths.is_empty() {
        return Err(invalid(None, "an allow rule needs at least one method and one path".into()));
    }
    Ok(Rule { methods, paths })
}

/// A path that stays inside the folder it is relative to: not absolute, no `..`.
fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!("`{path}` must be a path relative to the subject folder"));
    }
    if p.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
        return Err(format!("`{path}` must stay inside the subject folder (no `..`)"));
    }
    Ok(())
}

/// Endpoint names are identifiers a component hard-codes: keep them simple.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses an endpoint base URL: http(s), a host, no query, fragment or credentials.
pub fn parse_endpoint_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}`: only http and https endpoints are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}`: an endpoint URL cannot carry a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}`: credentials in endpoint URLs are not supported"));
    }
    Ok(url)
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[subject]
name = "tikv"
component = "tikv"

[endpoints.pd]
url = "http://127.0.0.1:2379"
timeout = "3s"
allow = [
  { methods = ["GET"], paths = ["/pd/api/v1/stores"] },
  { methods = ["post"], paths = ["/pd/api/v1/operators"] },
]

[limits]
deadline = "2s"
memory = "64MiB"
"#;

    #[test]
    fn a_manifest_parses_with_the_line_of_each_allow_list() {
        let m = Manifest::parse(Path::new("operator.toml"), GOOD).expect("valid manifest");
        let pd = &m.endpoints["pd"];
        assert_eq!(pd.url.as_str(), "http://127.0.0.1:2379/");
        assert_eq!(pd.rules[1].methods, vec!["POST".to_string()]);
        assert_eq!(pd.timeout, Some(Duration::from_secs(3)));
        assert_eq!(pd.origin, Origin::Manifest { path: "operator.toml".into(), line: 9 });
        assert_eq!(m.limits.deadline, Some(Duration::from_secs(2)));
        assert_eq!(m.limits.memory, Some(64 * 1024 * 1024));
        assert_eq!(m.subject.map(|s| s.component), Some("tikv".to_string()));
    }

    fn error_of(text: &str) -> String {
        Manifest::parse(Path::new("m.toml"), text).expect_err("invalid manifest").to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_reason() {
        let e = error_of("[endpoints.pd]\nurl = \"ftp://x\"\n");
        assert!(e.starts_with("m.toml:2: "), "{e}");
        assert!(e.contains("only http and https"), "{e}");

        let e = error_of("[endpoints.pd]\nurl = \"http://x\"\nallow = [{ methods = [\"FETCH\"], paths = [\"/\"] }]\n");
        assert!(e.starts_with("m.toml:3: ") && e.contains("unknown method `FETCH`"), "{e}");

        let e = error_of("[limits]\nmemory = \"lots\"\n");
        assert!(e.starts_with("m.toml:2: ") && e.contains("invalid size"), "{e}");

        let e = error_of("[limits]\nmemroy = \"1MiB\"\n");
        assert!(e.contains("unknown field `memroy`"), "{e}");
    }

    #[test]
    fn a_deployment_section_parses_with_docker_grants() {
        let text = "[deployment]\ncompose-file = \"c.yaml\"\nurls = { grafana = \"http://127.0.0.1:3000\" }\n[deployment.docker]\ncap-add = [\"NET_ADMIN\"]\nhost-paths = [\"/srv\"]\n";
        let m = Manifest::parse(Path::new("m.toml"), text).expect("valid");
        let d = m.deployment.expect("deployment");
        assert_eq!(d.compose_file.as_deref(), Some("c.yaml"));
        assert_eq!(d.urls["grafana"], "http://127.0.0.1:3000/");
        assert_eq!(d.docker.cap_add, vec!["NET_ADMIN".to_string()]);
        assert!(!d.docker.privileged);
        let e = error_of("[deployment.docker]\nprivilegd = true\n");
        assert!(e.contains("unknown field `privilegd`"), "{e}");
    }

    #[test]
    fn a_compose_file_outside_the_subject_folder_is_refused() {
        for path in ["/etc/passwd", "../other/compose.yaml", "sub/../../x.yaml"] {
            let e = error_of(&format!("[deployment]\ncompose-file = \"{path}\"\n"));
            assert!(e.starts_with("m.toml:2: compose-file"), "{path}: {e}");
        }
        let m =
            Manifest::parse(Path::new("m.toml"), "[deployment]\ncompose-file = \"./sub/c.yaml\"\n").expect("inside");
        assert_eq!(m.deployment.and_then(|d| d.compose_file).as_deref(), Some("./sub/c.yaml"));
    }

    #[test]
    fn declared_variables_and_registries_are_checked() {
        let text = "[deployment]\nenv = [\"ETCD_IMAGE\", \"_X1\"]\nregistries = [\"Quay.io\", \"127.0.0.1:5000\"]\n";
        let d = Manifest::parse(Path::new("m.toml"), text).expect("valid").deployment.expect("deployment");
        assert_eq!(d.env, vec!["ETCD_IMAGE".to_string(), "_X1".to_string()]);
        assert_eq!(d.registries, Some(vec!["quay.io".to_string(), "127.0.0.1:5000".to_string()]));
        let e = error_of("[deployment]\nenv = [\"A-B\"]\n");
        assert!(e.contains("`A-B` is not a variable name"), "{e}");
        let e = error_of("[deployment]\nregistries = [\"https://x\"]\n");
        assert!(e.contains("registries:"), "{e}");
        let e = error_of("[deployment.docker]\npublish-addresses = [\"everywhere\"]\n");
        assert!(e.contains("not an IP address"), "{e}");
    }

    #[test]
    fn path_prefixes_must_be_clean() {
        let e =
            error_of("[endpoints.pd]\nurl = \"http://x\"\nallow = [{ methods = [\"GET\"], paths = [\"/a/../b\"] }]\n");
        assert!(e.contains("`/a/../b`"), "{e}");
    }

    #[test]
    fn endpoint_urls_reject_credentials_and_queries() {
        assert!(parse_endpoint_url("http://user:pw@host/").is_err());
        assert!(parse_endpoint_url("http://host/?q=1").is_err());
        assert!(parse_endpoint_url("http://host:2379").is_ok());
    }
}
