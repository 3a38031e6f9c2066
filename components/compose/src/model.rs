//! The compose project model: the subset of the compose specification a local cluster needs,
//! read from the YAML tree with every error naming its file, line and field.
//!
//! Unknown keys are warnings (as in compose), not errors; keys whose meaning we cannot honour
//! (`build`, `extends`, `env_file`, external networks) are errors that say so.
//!
//! The model is shared by the compose driver and the Swarm driver (`components/swarm` compiles
//! this file too). What only Swarm uses — `deploy:` and a port's publish `mode` — is parsed into
//! plain model types and kept out of [`Service::config_hash`], so compose's containers keep
//! their hashes whatever a file says under `deploy:`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bindings::operator::core::docker::{
    BindMount, Device, Healthcheck, IpcMode, Mount, NetworkAttachment, NetworkMode, PortBinding, Protocol,
    RestartPolicy, TmpfsMount, Ulimit, VolumeMount,
};
use crate::yaml::{Kind, Node};

/// A parsed and validated project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    pub services: Vec<Service>,
    /// Declared networks (`default` is implicit).
    pub networks: Vec<String>,
    /// Declared named volumes.
    pub volumes: Vec<String>,
    /// Top-level `name:`, if any.
    #[serde(skip)]
    pub name: Option<String>,
    /// `x-operator-swarm: { publish-mode: host|ingress }`: how `deploy swarm` publishes every
    /// port (its `--publish-mode` flag arrives as this extension, in a file of its own).
    #[serde(skip)]
    pub publish_mode: Option<PublishMode>,
}

/// One service, its settings already in the shape of the `docker` contract's `container-spec`
/// (ports, mounts, networking, restart, healthcheck, ulimits, devices), so the driver hands
/// them on without another conversion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<Mount>,
    #[serde(skip)]
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: RestartPolicy,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub container_name: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Project networks with the aliases the file adds, no network, or the host's.
    pub network: NetworkMode,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub devices: Vec<Device>,
    pub pid_host: bool,
    pub ipc: Option<IpcMode>,
    pub stop_grace_period_ms: Option<u64>,
    pub stop_signal: Option<String>,
    pub ulimits: Vec<Ulimit>,
    /// `(hostname, address)`.
    pub extra_hosts: Vec<(String, String)>,
    /// The publish mode of each entry of `ports` (same length and order); `None` where the file
    /// gives none (always for the short syntax). Only Swarm uses it.
    #[serde(skip)]
    pub port_modes: Vec<Option<PublishMode>>,
    /// The `deploy:` section, which only Swarm uses.
    #[serde(skip)]
    pub deploy: Option<Deploy>,
    /// The line of each key of the service's mapping, for messages about a setting.
    #[serde(skip)]
    pub key_lines: Vec<(String, u64)>,
    #[serde(skip)]
    pub line: u64,
}

/// How a port is published on a swarm (the long syntax's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// Through the routing mesh, on every node.
    Ingress,
    /// On the node running the task.
    Host,
}

/// A service's `deploy:` section: how Swarm runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    pub mode: DeployMode,
    pub endpoint_mode: EndpointMode,
    /// Labels of the service itself (not of its containers).
    pub labels: Vec<(String, String)>,
    /// `placement.constraints`.
    pub constraints: Vec<String>,
    pub restart_policy: Option<DeployRestartPolicy>,
    pub update_config: Option<UpdateConfig>,
    pub resources: Option<Resources>,
    /// The line of `deploy:`.
    pub line: u64,
}

/// How many tasks a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployMode {
    /// `mode: replicated` with `replicas` (default 1).
    Replicated(u32),
    /// `mode: global`: one task per matching node.
    Global,
}

/// How a service is found by name (`endpoint_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

/// When Swarm replaces a task that ended (`restart_policy.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

/// `deploy.restart_policy`; unset durations and attempts are left to Swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployRestartPolicy {
    pub condition: RestartCondition,
    pub delay_ms: Option<u64>,
    /// None: without limit.
    pub max_attempts: Option<u32>,
    pub window_ms: Option<u64>,
}

/// What a rolling update does when a task fails (`update_config.failure_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    Pause,
    Continue,
    Rollback,
}

/// Whether a rolling update stops the old task before starting the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

/// `deploy.update_config`, with compose's defaults for what the file leaves out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateConfig {
    /// Tasks updated at once (default 1); 0 means all at once.
    pub parallelism: u32,
    pub delay_ms: u64,
    pub failure_action: FailureAction,
    pub monitor_ms: Option<u64>,
    pub max_failure_ratio: Option<f32>,
    pub order: UpdateOrder,
}

/// `deploy.resources`: CPU in nano-CPUs (1e9 = one CPU), memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub limit_nano_cpus: Option<i64>,
    pub limit_memory_bytes: Option<i64>,
    pub reserve_nano_cpus: Option<i64>,
    pub reserve_memory_bytes: Option<i64>,
}

/// How a service waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

impl Condition {
    /// Compose's name of the condition.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// A `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub required: bool,
    pub restart: bool,
}

/// An error in a compose file: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    pub line: u64,
    pub message: String,
}

type R<T> = Result<T, ModelError>;

fn err<T>(node: &Node, message: impl Into<String>) -> R<T> {
    Err(ModelError { line: node.line, message: message.into() })
}

fn string(node: &Node, field: &str) -> R<String> {
    match node.scalar() {
        Some(s) => Ok(s),
        None => err(node, format!("{field} must be a string, not {}", node.type_name())),
    }
}

fn opt_string(node: Option<&Node>, field: &str) -> R<Option<String>> {
    match node {
        None => Ok(None),
        Some(n) if n.kind == Kind::Null => Ok(None),
        Some(n) => string(n, field).map(Some),
    }
}

fn boolean(node: &Node, field: &str) -> R<bool> {
    match &node.kind {
        Kind::Bool(b) => Ok(*b),
        Kind::Str(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => err(node, format!("{field} must be true or false")),
    }
}

fn string_list(node: &Node, field: &str) -> R<Vec<String>> {
    match &node.kind {
        Kind::Seq(items) => items.iter().map(|i| string(i, field)).collect(),
        Kind::Null => Ok(Vec::new()),
        _ => err(node, format!("{field} must be a list")),
    }
}

/// A command or entrypoint: a list, or a string split like a shell would.
fn command(node: &Node, field: &str) -> R<Vec<String>> {
    match &node.kind {
        Kind::Seq(_) => string_list(node, field),
        Kind::Str(s) => shell_split(s)
            .ok_or_else(|| ModelError { line: node.line, message: format!("{field} has an unclosed quote") }),
        _ => err(node, format!("{field} must be a string or a list")),
    }
}

/// Splits a command line into words with shell quoting rules (no expansion).
pub fn shell_split(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// `KEY=VALUE` lists or `KEY: VALUE` maps (environment, labels). A bare `KEY` (or a null
/// value) takes its value from `lookup`, and is left out when that has none.
fn key_values(node: &Node, field: &str, lookup: &dyn Fn(&str) -> Option<String>) -> R<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: String, v: Option<String>| {
        out.retain(|(x, _)| x != &k);
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    match &node.kind {
        Kind::Seq(items) => {
            for i in items {
                let s = string(i, field)?;
                match s.split_once('=') {
                    Some((k, v)) => put(k.to_string(), Some(v.to_string())),
                    None => {
                        let v = lookup(&s);
                        put(s, v)
                    }
                }
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries {
                let value = if v.kind == Kind::Null { lookup(k) } else { Some(string(v, field)?) };
                put(k.clone(), value);
            }
        }
        Kind::Null => {}
        _ => return err(node, format!("{field} must be a list of KEY=VALUE or a mapping")),
    }
    Ok(out)
}

/// A compose duration (`1m30s`, `500ms`, `10s`; a bare number is seconds), in milliseconds.
pub fn duration_ms(node: &Node, field: &str) -> R<u64> {
    let text = match &node.kind {
        Kind::Int(i) if *i >= 0 => return Ok(*i as u64 * 1000),
        Kind::Float(f) if *f >= 0.0 => return Ok((*f * 1000.0) as u64),
        _ => string(node, field)?,
    };
    parse_duration_ms(&text).ok_or_else(|| ModelError {
        line: node.line,
        message: format!("{field}: `{text}` is not a duration (e.g. 500ms, 10s, 1m30s)"),
    })
}

/// Parses `1h2m3s`, `1.5s`, `250ms`, `10us`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if let Ok(n) = rest.parse::<f64>() {
        return (n >= 0.0).then_some((n * 1000.0) as u64);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ms = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += value * ms;
        rest = tail;
    }
    Some(total as u64)
}

/// A byte size: a number, or with a unit (`64m`, `1gb`, `512k`, `100b`).
fn byte_size(node: &Node, field: &str) -> R<u64> {
    if let Kind::Int(i) = node.kind
        && i >= 0
    {
        return Ok(i as u64);
    }
    let text = string(node, field)?.to_ascii_lowercase();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(digits);
    let factor: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if factor > 0 => Ok(n.saturating_mul(factor)),
        _ => err(node, format!("{field}: `{text}` is not a size (e.g. 64m)")),
    }
}

fn port_number(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// Expands `a-b` ranges into port numbers.
fn port_range(text: &str) -> Option<Vec<u16>> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a)?, port_number(b)?);
            (a <= b).then(|| (a..=b).collect())
        }
        None => Some(vec![port_number(text)?]),
    }
}

fn protocol(text: &str) -> Option<Protocol> {
    match text {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Short syntax `[[IP:]HOST:]CONTAINER[/PROTO]` (with ranges), or the long syntax. An empty
/// host address is left to the host (which publishes on 127.0.0.1 unless granted more). Each
/// binding comes with the long syntax's publish `mode`, if given.
fn ports(node: &Node, field: &str) -> R<Vec<(PortBinding, Option<PublishMode>)>> {
    let Kind::Seq(items) = &node.kind else {
        return if node.kind == Kind::Null { Ok(Vec::new()) } else { err(node, format!("{field} must be a list")) };
    };
    let mut out = Vec::new();
    for item in items {
        if let Kind::Map(_) = item.kind {
            let target = item.get("target").ok_or_else(|| ModelError {
                line: item.line,
                message: format!("{field}: a long-syntax port needs `target`"),
            })?;
            let container = port_number(&string(target, "target")?).ok_or_else(|| ModelError {
                line: target.line,
                message: format!("{field}: target is not a port number"),
            })?;
            let host = match opt_string(item.get("published"), "published")? {
                Some(p) if !p.is_empty() => Some(port_number(&p).ok_or_else(|| ModelError {
                    line: item.line,
                    message: format!("{field}: published `{p}` is not a port number"),
                })?),
                _ => None,
            };
            let proto = opt_string(item.get("protocol"), "protocol")?.unwrap_or_else(|| "tcp".into());
            let mode = match opt_string(item.get("mode"), "mode")?.as_deref() {
                None => None,
                Some("ingress") => Some(PublishMode::Ingress),
                Some("host") => Some(PublishMode::Host),
                Some(other) => {
                    return err(
                        item.get("mode").unwrap_or(item),
                        format!("{field}: `{other}` is not a publish mode (ingress, host)"),
                    );
                }
            };
            let binding = PortBinding {
                container_port: container,
                host_port: host,
                host_ip: opt_string(item.get("host_ip"), "host_ip")?.filter(|ip| !ip.is_empty()),
                protocol: protocol(&proto).ok_or_else(|| ModelError {
                    line: item.line,
                    message: format!("{field}: `{proto}` is not a protocol (tcp, udp, sctp)"),
                })?,
            };
            out.push((binding, mode));
            continue;
        }
        let text = string(item, field)?;
        let bad = || ModelError {
            line: item.line,
            message: format!("{field}: `{text}` is not a port mapping (expected [[IP:]HOST:]CONTAINER[/PROTOCOL])"),
        };
        let (spec, proto) = match text.rsplit_once('/') {
            Some((s, p)) => (s, protocol(p).ok_or_else(bad)?),
            None => (text.as_str(), Protocol::Tcp),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => ("", None, *c),
            [h, c] => ("", Some(*h), *c),
            [ip, h, c] => (*ip, Some(*h), *c),
            _ => return Err(bad()),
        };
        let containers = port_range(container).ok_or_else(bad)?;
        let hosts: Vec<Option<u16>> = match host {
            None | Some("") => vec![None; containers.len()],
            Some(h) => port_range(h).ok_or_else(bad)?.into_iter().map(Some).collect(),
        };
        if hosts.len() != containers.len() {
            return Err(ModelError {
                line: item.line,
                message: format!("{field}: `{text}` maps ranges of different lengths"),
            });
        }
        for (c, h) in containers.into_iter().zip(hosts) {
            let host_ip = (!ip.is_empty()).then(|| ip.to_string());
            out.push((PortBinding { container_port: c, host_port: h, host_ip, protocol: proto }, None));
        }
    }
    Ok(out)
}

/// Short syntax `SOURCE:TARGET[:MODE]` or `TARGET` (anonymous), or the long syntax.
fn mounts(node: &Node, field: &str, dir: &str, declared: &[String]) -> R<Vec<Mount>> {
    let Kind::Seq(items) = &node.kind else {
        return if node.kind == Kind::Null { Ok(Vec::new()) } else { err(node, format!("{field} must be a list")) };
    };
    let resolve = |source: &str| -> String {
        if let Some(rest) = source.strip_prefix("./") {
            format!("{}/{rest}", dir.trim_end_matches('/'))
        } else if source == "." {
            dir.to_string()
        } else if source.starts_with("../") {
            format!("{}/{source}", dir.trim_end_matches('/'))
        } else {
            source.to_string()
        }
    };
    let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
    let mut out = Vec::new();
    for item in items {
        let mut size_bytes = None;
        let (kind, source, target, read_only) = if let Kind::Map(_) = item.kind {
            let kind = opt_string(item.get("type"), "type")?.unwrap_or_else(|| "volume".into());
            let source = opt_string(item.get("source"), "source")?.unwrap_or_default();
            let target = opt_string(item.get("target"), "target")?.ok_or_else(|| ModelError {
                line: item.line,
                message: format!("{field}: a long-syntax volume needs `target`"),
            })?;
            let ro = match item.get("read_only") {
                Some(n) => boolean(n, "read_only")?,
                None => false,
            };
            if let Some(size) = item.get("tmpfs").and_then(|t| t.get("size")) {
                size_bytes = Some(byte_size(size, &format!("{field}: tmpfs.size"))?);
            }
            (kind, source, target, ro)
        } else {
            let text = string(item, field)?;
            let parts: Vec<&str> = text.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [t] => ("", *t, ""),
                [s, t] => (*s, *t, ""),
                [s, t, m] => (*s, *t, *m),
                _ => return err(item, format!("{field}: `{text}` is not a volume (expected SOURCE:TARGET[:MODE])")),
            };
            let ro = mode.split(',').any(|m| m == "ro");
            if !mode
                .split(',')
                .all(|m| matches!(m, "" | "ro" | "rw" | "z" | "Z" | "cached" | "delegated" | "consistent" | "nocopy"))
            {
                return err(item, format!("{field}: unknown volume mode `{mode}` in `{text}`"));
            }
            let kind = if is_path(source) { "bind" } else { "volume" };
            (kind.to_string(), source.to_string(), target.to_string(), ro)
        };
        if !target.starts_with('/') {
            return err(item, format!("{field}: the mount target `{target}` must be an absolute path"));
        }
        out.push(match kind.as_str() {
            "bind" => {
                if source.starts_with('~') {
                    return err(item, format!("{field}: `{source}`: home-relative paths are not supported; use a path relative to the project folder"));
                }
                Mount::Bind(BindMount { source: resolve(&source), target, read_only })
            }
            "volume" => {
                if !source.is_empty() && !declared.contains(&source) {
                    return err(item, format!("{field}: the service refers to undefined volume `{source}`; declare it under the top-level `volumes:`"));
                }
                Mount::Volume(VolumeMount { key: (!source.is_empty()).then_some(source), target, read_only })
            }
            "tmpfs" => Mount::Tmpfs(TmpfsMount { target, size_bytes }),
            other => return err(item, format!("{field}: unsupported volume type `{other}`")),
        });
    }
    Ok(out)
}

fn depends_on(node: &Node) -> R<Vec<Dependency>> {
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                Ok(Dependency { service: string(i, "depends_on")?, condition: Condition::Started, required: true, restart: false })
            })
            .collect(),
        Kind::Map(entries) => entries
            .iter()
            .map(|(name, v)| {
                let condition = match opt_string(v.get("condition"), "condition")?.as_deref() {
                    None | Some("service_started") => Condition::Started,
                    Some("service_healthy") => Condition::Healthy,
                    Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                    Some(other) => return err(v, format!("depends_on.{name}: unknown condition `{other}` (service_started, service_healthy, service_completed_successfully)")),
                };
                let required = match v.get("required") {
                    Some(n) => boolean(n, "required")?,
                    None => true,
                };
                let restart = match v.get("restart") {
                    Some(n) => boolean(n, "restart")?,
                    None => false,
                };
                Ok(Dependency { service: name.clone(), condition, required, restart })
            })
            .collect(),
        Kind::Null => Ok(Vec::new()),
        _ => err(node, "depends_on must be a list or a mapping"),
    }
}

fn healthcheck(node: &Node) -> R<Option<Healthcheck>> {
    if node.map().is_none() {
        return err(node, "healthcheck must be a mapping");
    }
    if let Some(d) = node.get("disable")
        && boolean(d, "disable")?
    {
        return Ok(Some(Healthcheck {
            test: vec!["NONE".into()],
            interval_ms: 0,
            timeout_ms: 0,
            retries: 0,
            start_period_ms: 0,
            start_interval_ms: 0,
        }));
    }
    let test = match node.get("test") {
        None => return Ok(None),
        Some(t) => match &t.kind {
            Kind::Str(s) => vec!["CMD-SHELL".into(), s.clone()],
            Kind::Seq(_) => {
                let list = string_list(t, "healthcheck.test")?;
                if !matches!(list.first().map(String::as_str), Some("CMD" | "CMD-SHELL" | "NONE")) {
                    return err(t, "healthcheck.test must start with CMD, CMD-SHELL or NONE");
                }
                list
            }
            _ => return err(t, "healthcheck.test must be a string or a list"),
        },
    };
    let ms = |key: &str| -> R<u64> {
        match node.get(key) {
            None => Ok(0),
            Some(n) => {
                let v = duration_ms(n, &format!("healthcheck.{key}"))?;
                if v != 0 && v < 1 {
                    return err(n, format!("healthcheck.{key} must be 0 or at least 1ms"));
                }
                Ok(v)
            }
        }
    };
    let retries = match node.get("retries") {
        None => 0,
        Some(n) => string(n, "retries")?
            .parse::<u32>()
            .map_err(|_| ModelError { line: n.line, message: "healthcheck.retries must be a whole number".into() })?,
    };
    if node.get("start_interval").is_some() && node.get("start_period").is_none() {
        return err(node, "healthcheck.start_interval requires healthcheck.start_period to be set");
    }
    Ok(Some(Healthcheck {
        test,
        interval_ms: ms("interval")?,
        timeout_ms: ms("timeout")?,
        retries,
        start_period_ms: ms("start_period")?,
        start_interval_ms: ms("start_interval")?,
    }))
}

fn ulimits(node: &Node) -> R<Vec<Ulimit>> {
    let Some(entries) = node.map() else { return err(node, "ulimits must be a mapping") };
    entries
        .iter()
        .map(|(name, v)| {
            let num = |n: &Node, f: &str| -> R<i64> {
                string(n, f)?
                    .parse::<i64>()
                    .map_err(|_| ModelError { line: n.line, message: format!("ulimits.{name}.{f} must be a number") })
            };
            match &v.kind {
                Kind::Map(_) => {
                    let soft = v.get("soft").ok_or_else(|| ModelError {
                        line: v.line,
                        message: format!("ulimits.{name} needs soft and hard"),
                    })?;
                    let hard = v.get("hard").ok_or_else(|| ModelError {
                        line: v.line,
                        message: format!("ulimits.{name} needs soft and hard"),
                    })?;
                    Ok(Ulimit { name: name.clone(), soft: num(soft, "soft")?, hard: num(hard, "hard")? })
                }
                _ => {
                    let n = num(v, "value")?;
                    Ok(Ulimit { name: name.clone(), soft: n, hard: n })
                }
            }
        })
        .collect()
}

const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "depends_on",
    "healthcheck",
    "restart",
    "hostname",
    "user",
    "working_dir",
    "container_name",
    "labels",
    "networks",
    "network_mode",
    "privileged",
    "cap_add",
    "devices",
    "pid",
    "ipc",
    "stop_grace_period",
    "stop_signal",
    "ulimits",
    "extra_hosts",
    "expose",
    "deploy",
    "profiles",
    "pull_policy",
    "tty",
    "stdin_open",
    "init",
    "logging",
    "platform",
];

/// Builds the project from an interpolated YAML tree. `dir` is the project folder (bind
/// sources resolve against it); `lookup` gives environment values for bare `KEY` entries.
pub fn project(
    root: &Node,
    dir: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> R<Project> {
    let Some(top) = root.map() else { return err(root, "a compose file must be a mapping") };
    for (key, node) in top {
        match key.as_str() {
            "services" | "networks" | "volumes" | "name" => {}
            "version" => warnings.push("the top-level `version` is obsolete and ignored".into()),
            k if k.starts_with("x-") => {}
            "configs" | "secrets" | "include" => return err(node, format!("top-level `{key}` is not supported")),
            k => warnings.push(format!("line {}: unknown top-level key `{k}` ignored", node.line)),
        }
    }
    let name = opt_string(root.get("name"), "name")?;

    let mut volumes = Vec::new();
    if let Some(v) = root.get("volumes") {
        for (key, def) in
            v.map().ok_or_else(|| ModelError { line: v.line, message: "volumes must be a mapping".into() })?
        {
            if def.get("external").is_some_and(|e| e.kind == Kind::Bool(true)) {
                return err(
                    def,
                    format!("volume `{key}`: external volumes are not supported (they are outside the project)"),
                );
            }
            volumes.push(key.clone());
        }
    }
    let mut networks = Vec::new();
    if let Some(n) = root.get("networks") {
        for (key, def) in
            n.map().ok_or_else(|| ModelError { line: n.line, message: "networks must be a mapping".into() })?
        {
            if def.get("external").is_some_and(|e| e.kind == Kind::Bool(true)) {
                return err(
                    def,
                    format!("network `{key}`: external networks are not supported (they are outside the project)"),
                );
            }
            networks.push(key.clone());
        }
    }

    let services_node = root
        .get("services")
        .ok_or_else(|| ModelError { line: root.line, message: "the file has no `services`".into() })?;
    let Some(entries) = services_node.map() else { return err(services_node, "services must be a mapping") };
    if entries.is_empty() {
        return err(services_node, "`services` is empty");
    }
    let mut services = Vec::new();
    for (name, s) in entries {
        if !valid_name(name) {
            return err(s, format!("service name `{name}` must be letters, digits, `_`, `.` or `-`"));
        }
        if s.map().is_none() {
            return err(s, format!("service `{name}` must be a mapping"));
        }
        services.push(service(name, s, dir, &volumes, &networks, lookup, warnings)?);
    }

    // Dependencies must exist and must not loop.
    for s in &services {
        for d in &s.depends_on {
            if !services.iter().any(|x| x.name == d.service) {
                return Err(ModelError {
                    line: s.line,
                    message: format!("service `{}` depends on undefined service `{}`", s.name, d.service),
                });
            }
        }
    }
    if let Some(cycle) = find_cycle(&services) {
        let line = services.iter().find(|s| s.name == cycle[0]).map(|s| s.line).unwrap_or(1);
        return Err(ModelError { line, message: format!("dependency cycle found: {}", cycle.join(" -> ")) });
    }
    let publish_mode = match root.get("x-operator-swarm").and_then(|x| x.get("publish-mode")) {
        None => None,
        Some(n) => match string(n, "x-operator-swarm.publish-mode")?.as_str() {
            "host" => Some(PublishMode::Host),
            "ingress" => Some(PublishMode::Ingress),
            other => return err(n, format!("x-operator-swarm.publish-mode: `{other}` is not `host` or `ingress`")),
        },
    };
    Ok(Project { services, networks, volumes, name, publish_mode })
}

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn service(
    name: &str,
    s: &Node,
    dir: &str,
    volumes: &[String],
    networks: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> R<Service> {
    let f = |key: &str| format!("services.{name}.{key}");
    for (key, node) in s.map().unwrap_or_default() {
        match key.as_str() {
            "build" if s.get("image").is_none() => {
                return err(
                    node,
                    format!(
                        "service `{name}` has no image: building images is not supported; build it and set `image:`"
                    ),
                );
            }
            "build" => warnings.push(format!(
                "line {}: services.{name}.build ignored; the image `{}` is used",
                node.line,
                s.get("image").and_then(Node::scalar).unwrap_or_default()
            )),
            "env_file" | "extends" | "secrets" | "configs" | "volumes_from" | "links" => {
                return err(node, format!("services.{name}.{key} is not supported"));
            }
            "profiles" | "pull_policy" | "tty" | "stdin_open" | "init" | "logging" | "platform" | "expose" => {
                warnings.push(format!("line {}: services.{name}.{key} is ignored", node.line));
            }
            k if k.starts_with("x-") || SERVICE_KEYS.contains(&k) => {}
            k => warnings.push(format!("line {}: unknown key services.{name}.{k} ignored", node.line)),
        }
    }
    let image = match s.get("image") {
        Some(n) => string(n, &f("image"))?,
        None => return err(s, format!("service `{name}` has no image")),
    };
    if image.trim().is_empty() {
        return err(s.get("image").unwrap_or(s), format!("service `{name}`: the image is empty"));
    }
    let restart = match opt_string(s.get("restart"), &f("restart"))? {
        None => RestartPolicy::No,
        Some(r) => {
            let policy = match r.split_once(':') {
                None if r == "no" => Some(RestartPolicy::No),
                None if r == "always" => Some(RestartPolicy::Always),
                None if r == "unless-stopped" => Some(RestartPolicy::UnlessStopped),
                None if r == "on-failure" => Some(RestartPolicy::OnFailure(None)),
                Some(("on-failure", n)) => n.parse::<u32>().ok().map(|n| RestartPolicy::OnFailure(Some(n))),
                _ => None,
            };
            match policy {
                Some(p) => p,
                None => {
                    return err(
                        s.get("restart").unwrap_or(s),
                        format!(
                            "{}: `{r}` is not a restart policy (no, always, on-failure[:N], unless-stopped)",
                            f("restart")
                        ),
                    );
                }
            }
        }
    };
    let mut service_networks = Vec::new();
    if let Some(n) = s.get("networks") {
        match &n.kind {
            Kind::Seq(items) => {
                for i in items {
                    service_networks.push((string(i, &f("networks"))?, Vec::new()));
                }
            }
            Kind::Map(entries) => {
                for (key, v) in entries {
                    let aliases = match v.get("aliases") {
                        Some(a) => string_list(a, &f("networks.aliases"))?,
                        None => Vec::new(),
                    };
                    service_networks.push((key.clone(), aliases));
                }
            }
            _ => return err(n, format!("{} must be a list or a mapping", f("networks"))),
        }
        for (key, _) in &service_networks {
            if key != "default" && !networks.contains(key) {
                return err(n, format!("service `{name}` refers to undefined network `{key}`"));
            }
        }
    }
    let network = match opt_string(s.get("network_mode"), &f("network_mode"))?.as_deref() {
        None => {
            if service_networks.is_empty() {
                service_networks.push(("default".to_string(), Vec::new()));
            }
            NetworkMode::Networks(
                service_networks.into_iter().map(|(network, aliases)| NetworkAttachment { network, aliases }).collect(),
            )
        }
        Some(mode) if s.get("networks").is_some() => {
            return err(s, format!("service `{name}`: network_mode `{mode}` cannot be combined with networks"));
        }
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::NoNetwork,
        Some(other) => {
            return err(
                s.get("network_mode").unwrap_or(s),
                format!(
                    "{}: `{other}` is not supported: a service joins the project's networks, `none` or `host`",
                    f("network_mode")
                ),
            );
        }
    };
    let pid_host = match opt_string(s.get("pid"), &f("pid"))?.as_deref() {
        None => false,
        Some("host") => true,
        Some(other) => {
            return err(s.get("pid").unwrap_or(s), format!("{}: `{other}` is not supported (only `host`)", f("pid")));
        }
    };
    let ipc = match opt_string(s.get("ipc"), &f("ipc"))?.as_deref() {
        None => None,
        Some("private") => Some(IpcMode::Private),
        Some("shareable") => Some(IpcMode::Shareable),
        Some("host") => Some(IpcMode::Host),
        Some(other) => {
            return err(
                s.get("ipc").unwrap_or(s),
                format!("{}: `{other}` is not supported (private, shareable, host)", f("ipc")),
            );
        }
    };
    let (ports, port_modes) =
        s.get("ports").map(|n| ports(n, &f("ports"))).transpose()?.unwrap_or_default().into_iter().unzip();
    Ok(Service {
        name: name.to_string(),
        image,
        command: s.get("command").filter(|n| n.kind != Kind::Null).map(|n| command(n, &f("command"))).transpose()?,
        entrypoint: s
            .get("entrypoint")
            .filter(|n| n.kind != Kind::Null)
            .map(|n| command(n, &f("entrypoint")))
            .transpose()?,
        environment: s
            .get("environment")
            .map(|n| key_values(n, &f("environment"), lookup))
            .transpose()?
            .unwrap_or_default(),
        ports,
        port_modes,
        mounts: s.get("volumes").map(|n| mounts(n, &f("volumes"), dir, volumes)).transpose()?.unwrap_or_default(),
        depends_on: s.get("depends_on").map(depends_on).transpose()?.unwrap_or_default(),
        healthcheck: s.get("healthcheck").map(healthcheck).transpose()?.flatten(),
        restart,
        hostname: opt_string(s.get("hostname"), &f("hostname"))?,
        user: opt_string(s.get("user"), &f("user"))?,
        working_dir: opt_string(s.get("working_dir"), &f("working_dir"))?,
        container_name: opt_string(s.get("container_name"), &f("container_name"))?,
        labels: s.get("labels").map(|n| key_values(n, &f("labels"), &|_| None)).transpose()?.unwrap_or_default(),
        network,
        privileged: s.get("privileged").map(|n| boolean(n, &f("privileged"))).transpose()?.unwrap_or(false),
        cap_add: s.get("cap_add").map(|n| string_list(n, &f("cap_add"))).transpose()?.unwrap_or_default(),
        devices: s.get("devices").map(|n| devices(n, &f("devices"))).transpose()?.unwrap_or_default(),
        pid_host,
        ipc,
        stop_grace_period_ms: s
            .get("stop_grace_period")
            .map(|n| duration_ms(n, &f("stop_grace_period")))
            .transpose()?,
        stop_signal: opt_string(s.get("stop_signal"), &f("stop_signal"))?,
        ulimits: s.get("ulimits").map(ulimits).transpose()?.unwrap_or_default(),
        extra_hosts: s.get("extra_hosts").map(|n| extra_hosts(n, &f("extra_hosts"))).transpose()?.unwrap_or_default(),
        deploy: s.get("deploy").map(|n| deploy(n, &f("deploy"), warnings)).transpose()?.flatten(),
        key_lines: s.map().unwrap_or_default().iter().map(|(k, n)| (k.clone(), n.line)).collect(),
        line: s.line,
    })
}

/// A whole number (an integer, or a string of digits as interpolation leaves it).
fn whole<T: std::str::FromStr>(node: &Node, field: &str) -> R<T> {
    match node.kind {
        Kind::Int(_) | Kind::Str(_) => {}
        _ => return err(node, format!("{field} must be a whole number, not {}", node.type_name())),
    }
    let text = string(node, field)?;
    text.trim().parse::<T>().map_err(|_| ModelError {
        line: node.line,
        message: format!("{field}: `{text}` is not a whole number in range"),
    })
}

/// A decimal number (an integer, a float, or a string holding one).
fn decimal(node: &Node, field: &str) -> R<f64> {
    let value = match &node.kind {
        Kind::Int(i) => Some(*i as f64),
        Kind::Float(f) => Some(*f),
        Kind::Str(s) => s.trim().parse::<f64>().ok(),
        _ => return err(node, format!("{field} must be a number, not {}", node.type_name())),
    };
    match value {
        Some(v) if v.is_finite() => Ok(v),
        _ => err(node, format!("{field}: `{}` is not a number", node.scalar().unwrap_or_default())),
    }
}

/// One of `choices` (`(text, value)`), else an error listing them.
fn choice<T: Copy>(node: &Node, field: &str, choices: &[(&str, T)]) -> R<T> {
    let text = string(node, field)?;
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            err(node, format!("{field}: `{text}` is not one of {}", names.join(", ")))
        }
    }
}

/// The mapping under `node`, warning about keys not in `known` (compose's style) and about the
/// `ignored` ones it does not use.
fn section<'a>(
    node: &'a Node,
    field: &str,
    known: &[&str],
    ignored: &[&str],
    warnings: &mut Vec<String>,
) -> R<&'a [(String, Node)]> {
    let Some(entries) = node.map() else { return err(node, format!("{field} must be a mapping")) };
    for (key, value) in entries {
        if ignored.contains(&key.as_str()) {
            warnings.push(format!("line {}: {field}.{key} is ignored", value.line));
        } else if !known.contains(&key.as_str()) && !key.starts_with("x-") {
            warnings.push(format!("line {}: unknown key {field}.{key} ignored", value.line));
        }
    }
    Ok(entries)
}

/// `deploy:`: replicas and mode, endpoint mode, service labels, placement constraints, restart
/// policy, update config and resources. Unknown keys are warnings, wrong values errors.
fn deploy(node: &Node, field: &str, warnings: &mut Vec<String>) -> R<Option<Deploy>> {
    if node.kind == Kind::Null {
        return Ok(None);
    }
    section(
        node,
        field,
        &["mode", "replicas", "endpoint_mode", "labels", "placement", "restart_policy", "update_config", "resources"],
        &["rollback_config"],
        warnings,
    )?;
    let f = |key: &str| format!("{field}.{key}");
    let non_null = |key: &str| present(node, key);
    let replicas = non_null("replicas").map(|n| whole::<u32>(n, &f("replicas"))).transpose()?;
    let mode = match non_null("mode") {
        None => DeployMode::Replicated(replicas.unwrap_or(1)),
        Some(n) => match string(n, &f("mode"))?.as_str() {
            "replicated" => DeployMode::Replicated(replicas.unwrap_or(1)),
            "global" if replicas.is_some() => {
                return err(
                    node.get("replicas").unwrap_or(n),
                    format!("{}: replicas cannot be used with mode `global` (one task per node)", f("replicas")),
                );
            }
            "global" => DeployMode::Global,
            other => {
                return err(n, format!("{}: `{other}` is not supported (replicated, global)", f("mode")));
            }
        },
    };
    let endpoint_mode = match non_null("endpoint_mode") {
        None => EndpointMode::Vip,
        Some(n) => choice(n, &f("endpoint_mode"), &[("vip", EndpointMode::Vip), ("dnsrr", EndpointMode::Dnsrr)])?,
    };
    let labels = non_null("labels").map(|n| key_values(n, &f("labels"), &|_| None)).transpose()?.unwrap_or_default();
    let constraints = match non_null("placement") {
        None => Vec::new(),
        Some(p) => {
            let pf = f("placement");
            section(p, &pf, &["constraints"], &["preferences", "max_replicas_per_node"], warnings)?;
            p.get("constraints").map(|c| string_list(c, &format!("{pf}.constraints"))).transpose()?.unwrap_or_default()
        }
    };
    let restart_policy =
        non_null("restart_policy").map(|n| deploy_restart_policy(n, &f("restart_policy"), warnings)).transpose()?;
    let update_config =
        non_null("update_config").map(|n| update_config(n, &f("update_config"), warnings)).transpose()?;
    let resources = non_null("resources").map(|n| resources(n, &f("resources"), warnings)).transpose()?;
    Ok(Some(Deploy {
        mode,
        endpoint_mode,
        labels,
        constraints,
        restart_policy,
        update_config,
        resources,
        line: node.line,
    }))
}

/// The value under `key` of a mapping, unless absent or null.
fn present<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.get(key).filter(|n| n.kind != Kind::Null)
}

fn deploy_restart_policy(node: &Node, field: &str, warnings: &mut Vec<String>) -> R<DeployRestartPolicy> {
    section(node, field, &["condition", "delay", "max_attempts", "window"], &[], warnings)?;
    let f = |key: &str| format!("{field}.{key}");
    Ok(DeployRestartPolicy {
        condition: match present(node, "condition") {
            None => RestartCondition::Any,
            Some(n) => choice(
                n,
                &f("condition"),
                &[
                    ("none", RestartCondition::None),
                    ("on-failure", RestartCondition::OnFailure),
                    ("any", RestartCondition::Any),
                ],
            )?,
        },
        delay_ms: present(node, "delay").map(|n| duration_ms(n, &f("delay"))).transpose()?,
        max_attempts: present(node, "max_attempts").map(|n| whole::<u32>(n, &f("max_attempts"))).transpose()?,
        window_ms: present(node, "window").map(|n| duration_ms(n, &f("window"))).transpose()?,
    })
}

fn update_config(node: &Node, field: &str, warnings: &mut Vec<String>) -> R<UpdateConfig> {
    section(
        node,
        field,
        &["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"],
        &[],
        warnings,
    )?;
    let f = |key: &str| format!("{field}.{key}");
    let max_failure_ratio = match present(node, "max_failure_ratio") {
        None => None,
        Some(n) => {
            let ratio = decimal(n, &f("max_failure_ratio"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return err(n, format!("{} must be between 0 and 1", f("max_failure_ratio")));
            }
            Some(ratio as f32)
        }
    };
    Ok(UpdateConfig {
        parallelism: present(node, "parallelism").map(|n| whole::<u32>(n, &f("parallelism"))).transpose()?.unwrap_or(1),
        delay_ms: present(node, "delay").map(|n| duration_ms(n, &f("delay"))).transpose()?.unwrap_or(0),
        failure_action: match present(node, "failure_action") {
            None => FailureAction::Pause,
            Some(n) => choice(
                n,
                &f("failure_action"),
                &[
                    ("pause", FailureAction::Pause),
                    ("continue", FailureAction::Continue),
                    ("rollback", FailureAction::Rollback),
                ],
            )?,
        },
        monitor_ms: present(node, "monitor").map(|n| duration_ms(n, &f("monitor"))).transpose()?,
        max_failure_ratio,
        order: match present(node, "order") {
            None => UpdateOrder::StopFirst,
            Some(n) => choice(
                n,
                &f("order"),
                &[("stop-first", UpdateOrder::StopFirst), ("start-first", UpdateOrder::StartFirst)],
            )?,
        },
    })
}

/// `resources.limits` and `resources.reservations`: `cpus` (`"0.5"`: half a CPU) and `memory`.
fn resources(node: &Node, field: &str, warnings: &mut Vec<String>) -> R<Resources> {
    section(node, field, &["limits", "reservations"], &[], warnings)?;
    let mut out = Resources::default();
    for (key, cpus, memory) in [
        ("limits", &mut out.limit_nano_cpus, &mut out.limit_memory_bytes),
        ("reservations", &mut out.reserve_nano_cpus, &mut out.reserve_memory_bytes),
    ] {
        let Some(set) = present(node, key) else { continue };
        let sf = format!("{field}.{key}");
        let ignored: &[&str] = if key == "limits" { &["pids"] } else { &["devices", "generic_resources"] };
        section(set, &sf, &["cpus", "memory"], ignored, warnings)?;
        if let Some(n) = present(set, "cpus") {
            let value = decimal(n, &format!("{sf}.cpus"))?;
            let nano = (value * 1e9).round();
            if value <= 0.0 || nano >= i64::MAX as f64 {
                return err(n, format!("{sf}.cpus must be a positive number of CPUs (e.g. \"0.5\")"));
            }
            *cpus = Some(nano as i64);
        }
        if let Some(n) = present(set, "memory") {
            let bytes = byte_size(n, &format!("{sf}.memory"))?;
            *memory = Some(
                i64::try_from(bytes)
                    .map_err(|_| ModelError { line: n.line, message: format!("{sf}.memory is too large") })?,
            );
        }
    }
    Ok(out)
}

/// `HOST[:CONTAINER[:PERMISSIONS]]` device entries.
fn devices(node: &Node, field: &str) -> R<Vec<Device>> {
    string_list(node, field)?
        .into_iter()
        .map(|d| {
            let mut parts = d.splitn(3, ':');
            let host_path = parts.next().unwrap_or_default().to_string();
            let container_path = parts.next().map(String::from).unwrap_or_else(|| host_path.clone());
            let permissions = parts.next().unwrap_or("rwm").to_string();
            if host_path.is_empty() {
                return err(node, format!("{field}: `{d}` names no device"));
            }
            Ok(Device { host_path, container_path, permissions })
        })
        .collect()
}

/// `HOST=IP` or `HOST:IP` list entries, or a `HOST: IP` mapping.
fn extra_hosts(node: &Node, field: &str) -> R<Vec<(String, String)>> {
    match &node.kind {
        Kind::Map(entries) => entries.iter().map(|(k, v)| Ok((k.clone(), string(v, field)?))).collect(),
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                let text = string(i, field)?;
                match text.split_once('=').or_else(|| text.split_once(':')) {
                    Some((host, ip)) => Ok((host.to_string(), ip.to_string())),
                    None => err(i, format!("{field}: `{text}` is not HOST=IP")),
                }
            })
            .collect(),
        Kind::Null => Ok(Vec::new()),
        _ => err(node, format!("{field} must be a list of HOST=IP or a mapping")),
    }
}

fn find_cycle(services: &[Service]) -> Option<Vec<String>> {
    let deps: BTreeMap<&str, Vec<&str>> =
        services.iter().map(|s| (s.name.as_str(), s.depends_on.iter().map(|d| d.service.as_str()).collect())).collect();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(&n) {
            return None;
        }
        path.push(n);
        for d in deps.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(n);
        None
    }
    let mut done = Vec::new();
    for s in services {
        if let Some(c) = visit(&s.name, &deps, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

impl Project {
    /// Services in dependency order (dependencies first), stable by file order.
    pub fn ordered(&self) -> Vec<&Service> {
        let mut out: Vec<&Service> = Vec::new();
        while out.len() < self.services.len() {
            let before = out.len();
            for s in &self.services {
                if out.iter().any(|o| o.name == s.name) {
                    continue;
                }
                if s.depends_on.iter().all(|d| out.iter().any(|o| o.name == d.service)) {
                    out.push(s);
                }
            }
            if out.len() == before {
                break; // a cycle; rejected at load time
            }
        }
        out
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl Service {
    /// The line of the service's key `key` (e.g. `privileged`), else of the service.
    pub fn line_of(&self, key: &str) -> u64 {
        self.key_lines.iter().find(|(k, _)| k == key).map(|(_, l)| *l).unwrap_or(self.line)
    }

    /// Compose's `config-hash`: sha256 over the service's configuration, dependencies excluded.
    pub fn config_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    #[test]
    fn extra_hosts_and_devices_parse_into_their_records() {
        let p = load(
            "services:\n  a:\n    image: x\n    extra_hosts: [\"db=10.0.0.1\", \"gw:host-gateway\"]\n    devices: [\"/dev/fuse\"]\n",
        )
        .expect("loads");
        let a = &p.services[0];
        assert_eq!(a.extra_hosts, vec![("db".into(), "10.0.0.1".into()), ("gw".into(), "host-gateway".into())]);
        assert_eq!(
            a.devices,
            vec![Device {
                host_path: "/dev/fuse".into(),
                container_path: "/dev/fuse".into(),
                permissions: "rwm".into()
            }]
        );
    }

    fn load(text: &str) -> R<Project> {
        let root = parse(text).expect("yaml");
        project(&root, "/proj", &|k| (k == "FROM_ENV").then(|| "env-value".to_string()), &mut Vec::new())
    }

    #[test]
    fn a_realistic_file_loads() {
        let p = load(
            r#"
x-hc: &hc
  interval: 2s
  timeout: 1s
  retries: 5
services:
  etcd1:
    image: operator/etcd:3.4.23
    command: etcd --name etcd1 --data-dir "/data dir"
    environment:
      ETCD_LOG: info
      FROM_ENV:
      MISSING:
    ports: ["127.0.0.1:2379:2379", "9000-9001:9000-9001/udp"]
    volumes: ["./conf.yml:/etc/conf.yml:ro", "data:/data", "/tmp/x"]
    healthcheck:
      <<: *hc
      test: ["CMD", "etcdctl", "endpoint", "health"]
    ulimits:
      nofile: { soft: 1024, hard: 2048 }
  prom:
    image: prom
    depends_on:
      etcd1:
        condition: service_healthy
    restart: on-failure:3
    stop_grace_period: 1m30s
volumes:
  data:
"#,
        )
        .expect("loads");
        let e = &p.services[0];
        assert_eq!(
            e.command.as_deref(),
            Some(&["etcd", "--name", "etcd1", "--data-dir", "/data dir"].map(String::from)[..])
        );
        assert_eq!(e.environment, vec![("ETCD_LOG".into(), "info".into()), ("FROM_ENV".into(), "env-value".into())]);
        assert_eq!(e.ports.len(), 3);
        assert_eq!(
            e.ports[0],
            PortBinding {
                container_port: 2379,
                host_port: Some(2379),
                host_ip: Some("127.0.0.1".into()),
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(
            e.ports[2],
            PortBinding { container_port: 9001, host_port: Some(9001), host_ip: None, protocol: Protocol::Udp }
        );
        assert_eq!(
            e.mounts[0],
            Mount::Bind(BindMount { source: "/proj/conf.yml".into(), target: "/etc/conf.yml".into(), read_only: true })
        );
        assert_eq!(
            e.mounts[1],
            Mount::Volume(VolumeMount { key: Some("data".into()), target: "/data".into(), read_only: false })
        );
        assert_eq!(e.mounts[2], Mount::Volume(VolumeMount { key: None, target: "/tmp/x".into(), read_only: false }));
        let hc = e.healthcheck.as_ref().expect("healthcheck");
        assert_eq!((hc.interval_ms, hc.retries), (2000, 5));
        assert_eq!(e.ulimits, vec![Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }]);
        assert_eq!(
            e.network,
            NetworkMode::Networks(vec![NetworkAttachment { network: "default".into(), aliases: vec![] }])
        );
        let prom = &p.services[1];
        // The retry count travels with the policy.
        assert_eq!(prom.restart, RestartPolicy::OnFailure(Some(3)));
        assert_eq!(prom.depends_on[0].condition, Condition::Healthy);
        assert_eq!(prom.stop_grace_period_ms, Some(90_000));
        assert_eq!(p.ordered().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["etcd1", "prom"]);
    }

    fn error_of(text: &str) -> ModelError {
        load(text).expect_err("invalid")
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        let e = error_of("services:\n  a:\n    image: x\n    ports:\n      - \"abc\"\n");
        assert_eq!(e.line, 5);
        assert!(e.message.contains("`abc` is not a port mapping"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    depends_on: [b]\n");
        assert!(e.message.contains("depends on undefined service `b`"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    volumes: [\"data:/d\"]\n");
        assert!(e.message.contains("undefined volume `data`"), "{e:?}");
        let e =
            error_of("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n");
        assert!(e.message.contains("dependency cycle found: a -> b -> a"), "{e:?}");
        let e = error_of("services:\n  a:\n    build: .\n");
        assert!(e.message.contains("building images is not supported"), "{e:?}");
        let e =
            error_of("services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, x]\n      interval: soon\n");
        assert_eq!(e.line, 6);
        assert!(e.message.contains("`soon` is not a duration"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    restart: sometimes\n");
        assert!(e.message.contains("not a restart policy"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    restart: on-failure:many\n");
        assert!(e.message.contains("not a restart policy"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    network_mode: container:other\n");
        assert!(e.message.contains("is not supported"), "{e:?}");
        let e = error_of("services:\n  a:\n    image: x\n    pid: container:other\n");
        assert!(e.message.contains("is not supported"), "{e:?}");
    }

    #[test]
    fn shell_words_split_like_a_shell() {
        assert_eq!(
            shell_split(r#"a "b c" 'd e' f\ g"#),
            Some(vec!["a".into(), "b c".into(), "d e".into(), "f g".into()])
        );
        assert_eq!(shell_split("a 'b"), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2"), Some(2000));
        assert_eq!(parse_duration_ms("x"), None);
    }

    fn load_warning(text: &str) -> (Project, Vec<String>) {
        let root = parse(text).expect("yaml");
        let mut warnings = Vec::new();
        let p = project(&root, "/proj", &|_| None, &mut warnings).expect("loads");
        (p, warnings)
    }

    #[test]
    fn deploy_parses_into_the_model() {
        let p = load(
            r#"
services:
  a:
    image: x
    ports:
      - "80:80"
      - { target: 2379, published: 2379, mode: host }
      - { target: 53, protocol: udp, mode: ingress }
    deploy:
      replicas: "3"
      endpoint_mode: dnsrr
      labels: [tier=db]
      placement:
        constraints: ["node.role == manager", "node.labels.zone == a"]
      restart_policy:
        condition: on-failure
        delay: 5s
        max_attempts: 3
        window: 1m
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      resources:
        limits: { cpus: "0.5", memory: 512m }
        reservations: { cpus: 2, memory: 1gb }
"#,
        )
        .expect("loads");
        let a = &p.services[0];
        assert_eq!(a.ports.len(), 3);
        assert_eq!(a.port_modes, vec![None, Some(PublishMode::Host), Some(PublishMode::Ingress)]);
        let d = a.deploy.as_ref().expect("deploy");
        assert_eq!(d.line, 10);
        assert_eq!(d.mode, DeployMode::Replicated(3));
        assert_eq!(d.endpoint_mode, EndpointMode::Dnsrr);
        assert_eq!(d.labels, vec![("tier".to_string(), "db".to_string())]);
        assert_eq!(d.constraints, vec!["node.role == manager".to_string(), "node.labels.zone == a".to_string()]);
        assert_eq!(
            d.restart_policy,
            Some(DeployRestartPolicy {
                condition: RestartCondition::OnFailure,
                delay_ms: Some(5000),
                max_attempts: Some(3),
                window_ms: Some(60_000)
            })
        );
        assert_eq!(
            d.update_config,
            Some(UpdateConfig {
                parallelism: 2,
                delay_ms: 10_000,
                failure_action: FailureAction::Rollback,
                monitor_ms: Some(30_000),
                max_failure_ratio: Some(0.25),
                order: UpdateOrder::StartFirst
            })
        );
        assert_eq!(
            d.resources,
            Some(Resources {
                limit_nano_cpus: Some(500_000_000),
                limit_memory_bytes: Some(512 << 20),
                reserve_nano_cpus: Some(2_000_000_000),
                reserve_memory_bytes: Some(1 << 30),
            })
        );
        assert_eq!(a.line_of("deploy"), 10);
        assert_eq!(a.line_of("no-such-key"), a.line);
    }

    #[test]
    fn deploy_defaults_follow_compose() {
        let (p, warnings) = load_warning(
            "services:\n  a:\n    image: x\n    deploy:\n      restart_policy: {}\n      update_config: {}\n  b:\n    image: x\n    deploy:\n      mode: global\n  c:\n    image: x\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let a = p.services[0].deploy.as_ref().expect("a deploys");
        assert_eq!((a.mode, a.endpoint_mode), (DeployMode::Replicated(1), EndpointMode::Vip));
        assert_eq!(
            a.restart_policy.map(|r| (r.condition, r.delay_ms, r.max_attempts)),
            Some((RestartCondition::Any, None, None))
        );
        assert_eq!(
            a.update_config,
            Some(UpdateConfig {
                parallelism: 1,
                delay_ms: 0,
                failure_action: FailureAction::Pause,
                monitor_ms: None,
                max_failure_ratio: None,
                order: UpdateOrder::StopFirst
            })
        );
        assert_eq!(a.resources, None);
        assert_eq!(p.services[1].deploy.as_ref().map(|d| d.mode), Some(DeployMode::Global));
        assert_eq!(p.services[2].deploy, None);
    }

    #[test]
    fn unknown_deploy_keys_warn_like_compose() {
        let (p, warnings) = load_warning(
            "services:\n  a:\n    image: x\n    deploy:\n      rollback_config: { parallelism: 1 }\n      colour: red\n      placement:\n        preferences: [{ spread: node.labels.zone }]\n      resources:\n        limits: { pids: 10 }\n        reservations: { generic_resources: [] }\n",
        );
        assert!(p.services[0].deploy.is_some());
        assert_eq!(
            warnings,
            vec![
                "line 5: services.a.deploy.rollback_config is ignored".to_string(),
                "line 6: unknown key services.a.deploy.colour ignored".to_string(),
                "line 8: services.a.deploy.placement.preferences is ignored".to_string(),
                "line 10: services.a.deploy.resources.limits.pids is ignored".to_string(),
                "line 11: services.a.deploy.resources.reservations.generic_resources is ignored".to_string(),
            ]
        );
    }

    #[test]
    fn deploy_errors_name_the_line_and_the_field() {
        let cases: &[(&str, u64, &str)] = &[
            ("deploy: [1]", 4, "services.a.deploy must be a mapping"),
            ("deploy:\n      replicas: many", 5, "services.a.deploy.replicas: `many` is not a whole number"),
            ("deploy:\n      replicas: -1", 5, "services.a.deploy.replicas: `-1` is not a whole number"),
            ("deploy:\n      replicas: 1.5", 5, "services.a.deploy.replicas must be a whole number, not a number"),
            ("deploy:\n      mode: replicated-job", 5, "services.a.deploy.mode: `replicated-job` is not supported"),
            ("deploy:\n      mode: global\n      replicas: 2", 6, "replicas cannot be used with mode `global`"),
            (
                "deploy:\n      endpoint_mode: magic",
                5,
                "services.a.deploy.endpoint_mode: `magic` is not one of vip, dnsrr",
            ),
            ("deploy:\n      labels: 3", 5, "services.a.deploy.labels must be a list of KEY=VALUE or a mapping"),
            ("deploy:\n      placement: [x]", 5, "services.a.deploy.placement must be a mapping"),
            (
                "deploy:\n      placement:\n        constraints: node.role",
                6,
                "services.a.deploy.placement.constraints must be a list",
            ),
            (
                "deploy:\n      restart_policy:\n        condition: sometimes",
                6,
                "services.a.deploy.restart_policy.condition: `sometimes` is not one of none, on-failure, any",
            ),
            (
                "deploy:\n      restart_policy:\n        delay: soon",
                6,
                "services.a.deploy.restart_policy.delay: `soon` is not a duration",
            ),
            (
                "deploy:\n      restart_policy:\n        max_attempts: lots",
                6,
                "services.a.deploy.restart_policy.max_attempts: `lots` is not a whole number",
            ),
            (
                "deploy:\n      restart_policy:\n        window: forever",
                6,
                "services.a.deploy.restart_policy.window: `forever` is not a duration",
            ),
            (
                "deploy:\n      update_config:\n        parallelism: all",
                6,
                "services.a.deploy.update_config.parallelism: `all` is not a whole number",
            ),
            (
                "deploy:\n      update_config:\n        delay: later",
                6,
                "services.a.deploy.update_config.delay: `later` is not a duration",
            ),
            (
                "deploy:\n      update_config:\n        failure_action: panic",
                6,
                "services.a.deploy.update_config.failure_action: `panic` is not one of pause, continue, rollback",
            ),
            (
                "deploy:\n      update_config:\n        monitor: x",
                6,
                "services.a.deploy.update_config.monitor: `x` is not a duration",
            ),
            (
                "deploy:\n      update_config:\n        max_failure_ratio: 2",
                6,
                "services.a.deploy.update_config.max_failure_ratio must be between 0 and 1",
            ),
            (
                "deploy:\n      update_config:\n        max_failure_ratio: half",
                6,
                "services.a.deploy.update_config.max_failure_ratio: `half` is not a number",
            ),
            (
                "deploy:\n      update_config:\n        order: random",
                6,
                "services.a.deploy.update_config.order: `random` is not one of stop-first, start-first",
            ),
            (
                "deploy:\n      resources:\n        limits: { cpus: lots }",
                6,
                "services.a.deploy.resources.limits.cpus: `lots` is not a number",
            ),
            (
                "deploy:\n      resources:\n        limits: { cpus: 0 }",
                6,
                "services.a.deploy.resources.limits.cpus must be a positive number of CPUs",
            ),
            (
                "deploy:\n      resources:\n        reservations: { memory: lots }",
                6,
                "services.a.deploy.resources.reservations.memory: `lots` is not a size",
            ),
            ("deploy:\n      resources:\n        limits: 1", 6, "services.a.deploy.resources.limits must be a mapping"),
            (
                "ports:\n      - { target: 80, mode: mesh }",
                5,
                "services.a.ports: `mesh` is not a publish mode (ingress, host)",
            ),
        ];
        for (tail, line, message) in cases {
            let e = error_of(&format!("services:\n  a:\n    image: x\n    {tail}\n"));
            assert!(e.message.contains(message), "{tail}: {e:?}");
            assert_eq!(e.line, *line, "{tail}: {e:?}");
        }
    }

    /// Compose's containers are recreated when their hash changes, so what only Swarm reads
    /// (`deploy`, port modes) must not enter it: this file hashed to this value before they existed.
    #[test]
    fn the_compose_config_hash_ignores_what_only_swarm_reads() {
        let text = "services:\n  a:\n    image: x:1\n    ports: [\"127.0.0.1:80:80\", {target: 81, published: 8081, mode: host}]\n    volumes: [\"./c:/c:ro\", \"d:/d\"]\n    healthcheck: {test: [CMD, x], interval: 2s}\n    restart: on-failure\n    labels: {a: b}\n    deploy: {replicas: 2}\nvolumes:\n  d:\n";
        let p = load(text).expect("loads");
        assert_eq!(p.services[0].config_hash(), "6edb8212de5da08b82041449ed4c66389a21439397cd12a8e1124fcdda128c8a");
    }

    #[test]
    fn the_config_hash_changes_with_the_configuration() {
        let a = load("services:\n  a:\n    image: x:1\n").expect("a");
        let b = load("services:\n  a:\n    image: x:2\n").expect("b");
        let a2 = load("services:\n  a:\n    image: x:1\n").expect("a2");
        assert_ne!(a.services[0].config_hash(), b.services[0].config_hash());
        assert_eq!(a.services[0].config_hash(), a2.services[0].config_hash());
    }
}
