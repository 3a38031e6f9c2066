//! The compose project model: the subset of the compose specification a local cluster needs,
//! read from the YAML tree with every error naming its file, line and field.
//!
//! Unknown keys are warnings (as in compose), not errors; keys whose meaning we cannot honour
//! (`build`, `extends`, `env_file`, external networks) are errors that say so.

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
    #[serde(skip)]
    pub line: u64,
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
/// host address is left to the host (which publishes on 127.0.0.1 unless granted more).
fn ports(node: &Node, field: &str) -> R<Vec<PortBinding>> {
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
            out.push(PortBinding {
                container_port: container,
                host_port: host,
                host_ip: opt_string(item.get("host_ip"), "host_ip")?.filter(|ip| !ip.is_empty()),
                protocol: protocol(&proto).ok_or_else(|| ModelError {
                    line: item.line,
                    message: format!("{field}: `{proto}` is not a protocol (tcp, udp, sctp)"),
                })?,
            });
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
            out.push(PortBinding { container_port: c, host_port: h, host_ip, protocol: proto });
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
    Ok(Project { services, networks, volumes, name })
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
            "deploy" | "profiles" | "pull_policy" | "tty" | "stdin_open" | "init" | "logging" | "platform"
            | "expose" => {
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
        ports: s.get("ports").map(|n| ports(n, &f("ports"))).transpose()?.unwrap_or_default(),
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
        line: s.line,
    })
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

    #[test]
    fn the_config_hash_changes_with_the_configuration() {
        let a = load("services:\n  a:\n    image: x:1\n").expect("a");
        let b = load("services:\n  a:\n    image: x:2\n").expect("b");
        let a2 = load("services:\n  a:\n    image: x:1\n").expect("a2");
        assert_ne!(a.services[0].config_hash(), b.services[0].config_hash());
        assert_eq!(a.services[0].config_hash(), a2.services[0].config_hash());
    }
}
