//! From a driver's `container-spec` to the engine's `ContainerCreateBody`, in small checked
//! steps: identity, process, privileges, networking, ports, mounts, labels, restart and limits.
//! Each step checks one part of the spec against the grants and writes the corresponding part
//! of the body; nothing of the spec reaches the engine without passing a step. Mounts are
//! typed (`Mounts` API, never a `Binds` string the engine parses again), the host's labels
//! (compose's and the ownership label) are written last and cannot be set by the driver.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig, Mount as EngineMount,
    MountBindOptions, MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, NetworkingConfig,
    PortBinding as EnginePort, ResourcesUlimits, RestartPolicy as EngineRestart, RestartPolicyNameEnum,
};

use super::binds::BindRules;
use super::error::DockerError;
use super::grants::{DockerGrants, normalize_capability};
use super::image::ImageRef;
use super::scope::{Project, labels, valid_key};
use crate::bindings::docker as wit;

/// A checked container: its name, the body to create it with, and the project resources it
/// relies on (which the scope checks exist and belong to the project before creating).
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub body: ContainerCreateBody,
    /// Network keys, the primary one first, with their aliases.
    pub networks: Vec<(String, Vec<String>)>,
    /// Named volume keys the mounts use.
    pub volumes: Vec<String>,
}

/// What planning checks against.
pub struct Planner<'a> {
    pub project: &'a Project,
    pub grants: &'a DockerGrants,
    pub binds: &'a BindRules,
}

/// Ulimit names Docker knows.
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// The most of each part a spec may hold: the engine stores all of it, and the host holds it
/// in memory (`dockerd` grew by gigabytes for 20 containers of 4,000 labels).
pub mod caps {
    pub const LABELS: usize = 64;
    pub const LABEL_BYTES: usize = 64 * 1024;
    pub const ENVIRONMENT: usize = 1024;
    pub const ENVIRONMENT_BYTES: usize = 1024 * 1024;
    pub const COMMAND_BYTES: usize = 1024 * 1024;
    /// Published ports of one container (each is a `docker-proxy` process on the host).
    pub const PORTS: usize = 64;
    pub const MOUNTS: usize = 64;
    pub const NETWORKS: usize = 8;
    pub const ALIASES: usize = 16;
    pub const CAPABILITIES: usize = 64;
    pub const DEVICES: usize = 64;
    pub const ULIMITS: usize = 32;
    pub const EXTRA_HOSTS: usize = 64;
    pub const HEALTHCHECK_BYTES: usize = 64 * 1024;
    /// Shortest healthcheck interval: each probe is a process the daemon starts, outside any
    /// container's limits.
    pub const HEALTHCHECK_MIN_INTERVAL_MS: u64 = 100;
}

/// Label namespaces that belong to Docker or to this host.
const RESERVED_LABELS: &[&str] = &["com.docker.", "io.docker.", "org.dockerproject.", "dev.operator."];

fn invalid(service: &str, message: impl std::fmt::Display) -> DockerError {
    DockerError::Invalid(format!("service {service}: {message}"))
}

/// Text the engine will store: bounded, no control characters.
fn text(service: &str, what: &str, value: &str, max: usize) -> Result<(), DockerError> {
    if value.len() > max || value.chars().any(|c| c.is_control()) {
        return Err(invalid(
            service,
            format_args!(
                "{what} `{}` must be at most {max} bytes without control characters",
                crate::text::escape(value)
            ),
        ));
    }
    Ok(())
}

/// An absolute, clean path inside the container: no `.`/`..`/empty segments, no `:` or `,`
/// (which engine-side parsers split on), not `/` itself.
pub fn check_target(service: &str, what: &str, target: &str) -> Result<(), DockerError> {
    let clean = target.starts_with('/')
        && target.len() > 1
        && target.len() <= 4096
        && !target.contains([':', ','])
        && !target.chars().any(char::is_control)
        && target[1..].split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if clean {
        Ok(())
    } else {
        Err(invalid(
            service,
            format_args!(
                "{what} `{}` must be an absolute path without `.`, `..`, empty segments, `:` or `,`",
                crate::text::escape(target)
            ),
        ))
    }
}

/// Checks that no part of a spec is larger than [`caps`] allows.
pub fn bounded(spec: &wit::ContainerSpec) -> Result<(), DockerError> {
    let s = spec.service.as_str();
    let over = |what: &str, n: usize, cap: usize| {
        if n > cap { Err(invalid(s, format_args!("{n} {what}; at most {cap}"))) } else { Ok(()) }
    };
    let words = |w: &Option<Vec<String>>| w.iter().flatten().map(|w| w.len() + 1).sum::<usize>();
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    over("labels", spec.labels.len(), caps::LABELS)?;
    over("bytes of labels", pairs(&spec.labels), caps::LABEL_BYTES)?;
    over("environment variables", spec.environment.len(), caps::ENVIRONMENT)?;
    over("bytes of environment", pairs(&spec.environment), caps::ENVIRONMENT_BYTES)?;
    over("bytes of command and entrypoint", words(&spec.command) + words(&spec.entrypoint), caps::COMMAND_BYTES)?;
    over("published ports", spec.ports.len(), caps::PORTS)?;
    over("mounts", spec.mounts.len(), caps::MOUNTS)?;
    if let wit::NetworkMode::Networks(list) = &spec.network {
        over("networks", list.len(), caps::NETWORKS)?;
        for a in list {
            over("aliases on one network", a.aliases.len(), caps::ALIASES)?;
        }
    }
    over("added capabilities", spec.cap_add.len(), caps::CAPABILITIES)?;
    if let Some(c) = spec.cap_add.iter().find(|c| c.len() > 32) {
        return Err(invalid(
            s,
            format_args!("`{}…` is not a capability name", crate::text::escape(&c[..c.floor_char_boundary(32)])),
        ));
    }
    over("devices", spec.devices.len(), caps::DEVICES)?;
    over("ulimits", spec.ulimits.len(), caps::ULIMITS)?;
    over("extra hosts", spec.extra_hosts.len(), caps::EXTRA_HOSTS)?;
    if let Some(h) = &spec.healthcheck {
        over("bytes of healthcheck test", h.test.iter().map(|w| w.len() + 1).sum(), caps::HEALTHCHECK_BYTES)?;
        for (what, ms) in [("interval", h.interval_ms), ("start_interval", h.start_interval_ms)] {
            if ms != 0 && ms < caps::HEALTHCHECK_MIN_INTERVAL_MS {
                return Err(invalid(
                    s,
                    format_args!(
                        "healthcheck {what} {ms}ms is shorter than {}ms (each probe is a process the daemon starts)",
                        caps::HEALTHCHECK_MIN_INTERVAL_MS
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn ns(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

impl Planner<'_> {
    fn deny(&self, reason: String, grant: &str) -> DockerError {
        DockerError::Denied { reason, hint: self.grants.hint(grant) }
    }

    /// Checks and plans a whole container.
    pub fn plan(&self, spec: &wit::ContainerSpec) -> Result<Plan, DockerError> {
        bounded(spec)?;
        let name = self.identity(spec)?;
        let mut body = ContainerCreateBody { image: Some(spec.image.clone()), ..Default::default() };
        let mut host = HostConfig::default();
        self.process(spec, &mut body)?;
        self.privileges(spec, &mut host)?;
        let networks = self.networking(spec, &mut body, &mut host)?;
        self.ports(spec, &mut body, &mut host)?;
        let volumes = self.mounts(spec, &mut host)?;
        self.restart(spec, &mut host)?;
        self.limits(spec, &mut host)?;
        body.labels = Some(self.labels(spec)?);
        body.host_config = Some(host);
        Ok(Plan { name, body, networks, volumes })
    }

    /// Service key, replica number, container name and image reference.
    pub fn identity(&self, spec: &wit::ContainerSpec) -> Result<String, DockerError> {
        let service = &spec.service;
        if !valid_key(service) {
            return Err(DockerError::Invalid(format!(
                "service `{}` is not a valid name (letters, digits, `_`, `.`, `-`)",
                crate::text::escape(service)
            )));
        }
        if spec.number == 0 {
            return Err(invalid(service, "replica numbers start at 1"));
        }
        let name = match &spec.container_name {
            Some(n) => n.clone(),
            None => operator_rules::names::container(&self.project.name, service, spec.number),
        };
        if !valid_key(&name) {
            return Err(invalid(service, format_args!("container name `{}` is not valid", crate::text::escape(&name))));
        }
        // Docker takes a full or partial ID for a name: a name that reads as one could stand
        // for another container.
        if name.len() >= 12 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(service, format_args!("container name `{name}` reads as a container ID")));
        }
        ImageRef::parse(&spec.image).map_err(|e| invalid(service, e))?;
        Ok(name)
    }

    /// Command, entrypoint, environment, user, directories, signals and the healthcheck.
    pub fn process(&self, spec: &wit::ContainerSpec, body: &mut ContainerCreateBody) -> Result<(), DockerError> {
        let s = spec.service.as_str();
        for (what, words) in [("command", &spec.command), ("entrypoint", &spec.entrypoint)] {
            if let Some(words) = words
                && words.iter().any(|w| w.contains('\0'))
            {
                return Err(invalid(s, format_args!("{what} contains a NUL byte")));
            }
        }
        let mut env = Vec::with_capacity(spec.environment.len());
        for (k, v) in &spec.environment {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(invalid(
                    s,
                    format_args!("environment variable `{}` is not a valid name", crate::text::escape(k)),
                ));
            }
            env.push(format!("{k}={v}"));
        }
        if let Some(h) = &spec.hostname {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !h.starts_with(['-', '.']);
            if !ok {
                return Err(invalid(s, format_args!("hostname `{}` is not a host name", crate::text::escape(h))));
            }
        }
        if let Some(u) = &spec.user {
            let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            let ok = u.len() <= 64
                && match u.split_once(':') {
                    Some((user, group)) => part(user) && part(group),
                    None => part(u),
                };
            if !ok {
                return Err(invalid(s, format_args!("user `{}` is not `name[:group]`", crate::text::escape(u))));
            }
        }
        if let Some(dir) = &spec.working_dir {
            check_target(s, "working_dir", dir)?;
        }
        if let Some(sig) = &spec.stop_signal {
            let name = sig.strip_prefix("SIG").unwrap_or(sig);
            if name.is_empty()
                || name.len() > 16
                || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
            {
                return Err(invalid(s, format_args!("stop_signal `{}` is not a signal", crate::text::escape(sig))));
            }
        }
        text(s, "config hash", &spec.config_hash, 128)?;
        if spec.depends_on.len() > 256 {
            return Err(invalid(s, "more than 256 depends_on entries"));
        }
        for d in &spec.depends_on {
            text(s, "depends_on entry", d, 512)?;
            if d.contains(',') {
                return Err(invalid(s, format_args!("depends_on entry `{}` contains `,`", crate::text::escape(d))));
            }
        }
        let healthcheck = match &spec.healthcheck {
            None => None,
            Some(h) => {
                if !matches!(h.test.first().map(String::as_str), Some("CMD" | "CMD-SHELL" | "NONE")) {
                    return Err(invalid(s, "a healthcheck test starts with CMD, CMD-SHELL or NONE"));
                }
                if h.test.iter().any(|w| w.contains('\0')) {
                    return Err(invalid(s, "the healthcheck test contains a NUL byte"));
                }
                Some(HealthConfig {
                    test: Some(h.test.clone()),
                    interval: Some(ns(h.interval_ms)),
                    timeout: Some(ns(h.timeout_ms)),
                    retries: Some(i64::from(h.retries)),
                    start_period: Some(ns(h.start_period_ms)),
                    start_interval: Some(ns(h.start_interval_ms)),
                })
            }
        };
        body.cmd = spec.command.clone();
        body.entrypoint = spec.entrypoint.clone();
        body.env = Some(env);
        body.hostname = spec.hostname.clone();
        body.user = spec.user.clone();
        body.working_dir = spec.working_dir.clone();
        body.stop_signal = spec.stop_signal.clone();
        body.stop_timeout = spec.stop_grace_period_ms.map(|ms| i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX));
        body.healthcheck = healthcheck;
        Ok(())
    }

    /// Privileged mode, host namespaces, capabilities and devices: each needs its grant.
    pub fn privileges(&self, spec: &wit::ContainerSpec, host: &mut HostConfig) -> Result<(), DockerError> {
        let s = &spec.service;
        let g = self.grants;
        if spec.privileged && !g.allow.privileged {
            return Err(self.deny(format!("service {s}: privileged containers are not granted"), "privileged = true"));
        }
        if spec.pid_host && !g.allow.host_pid {
            return Err(self.deny(format!("service {s}: pid host is not granted"), "host-pid = true"));
        }
        if spec.ipc == Some(wit::IpcMode::Host) && !g.allow.host_ipc {
            return Err(self.deny(format!("service {s}: ipc host is not granted"), "host-ipc = true"));
        }
        let mut caps = Vec::new();
        for c in &spec.cap_add {
            let name = normalize_capability(c);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(invalid(s, format_args!("`{}` is not a capability name", crate::text::escape(c))));
            }
            caps.push(name);
        }
        let missing: Vec<&String> = caps.iter().filter(|c| !g.allow.cap_add.contains(c)).collect();
        if !missing.is_empty() {
            let list = missing.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            return Err(self.deny(
                format!("service {s}: added capabilities {list} are not granted"),
                &format!("cap-add = [{list}]"),
            ));
        }
        let mut devices = Vec::new();
        for d in &spec.devices {
            check_target(s, "device path in the container", &d.container_path)?;
            if d.permissions.is_empty() || !d.permissions.bytes().all(|b| b"rwm".contains(&b)) {
                return Err(invalid(
                    s,
                    format_args!("device permissions `{}` are not some of `rwm`", crate::text::escape(&d.permissions)),
                ));
            }
            if !g.allow.devices.contains(&d.host_path) {
                let path = crate::text::escape(&d.host_path);
                return Err(self.deny(
                    format!("service {s}: devices \"{path}\" are not granted"),
                    &format!("devices = [\"{path}\"]"),
                ));
            }
            devices.push(DeviceMapping {
                path_on_host: Some(d.host_path.clone()),
                path_in_container: Some(d.container_path.clone()),
                cgroup_permissions: Some(d.permissions.clone()),
            });
        }
        host.privileged = Some(spec.privileged);
        host.pid_mode = spec.pid_host.then(|| "host".to_string());
        host.ipc_mode = spec.ipc.map(|m| {
            match m {
                wit::IpcMode::Private => "private",
                wit::IpcMode::Shareable => "shareable",
                wit::IpcMode::Host => "host",
            }
            .to_string()
        });
        host.cap_add = Some(caps);
        host.devices = Some(devices);
        Ok(())
    }

    /// Project networks (at least one; aliases checked), no network, or the host's (granted).
    /// Returns the network keys with aliases, the primary one first.
    pub fn networking(
        &self,
        spec: &wit::ContainerSpec,
        body: &mut ContainerCreateBody,
        host: &mut HostConfig,
    ) -> Result<Vec<(String, Vec<String>)>, DockerError> {
        let s = &spec.service;
        let attachments = match &spec.network {
            wit::NetworkMode::Host => {
                if !self.grants.allow.host_network {
                    return Err(
                        self.deny(format!("service {s}: network_mode host is not granted"), "host-network = true")
                    );
                }
                host.network_mode = Some("host".into());
                return Ok(Vec::new());
            }
            wit::NetworkMode::NoNetwork => {
                host.network_mode = Some("none".into());
                return Ok(Vec::new());
            }
            wit::NetworkMode::Networks(list) => list,
        };
        if attachments.is_empty() {
            return Err(invalid(s, "a container joins at least one project network (or none at all)"));
        }
        let mut networks: Vec<(String, Vec<String>)> = Vec::new();
        for a in attachments {
            if !valid_key(&a.network) {
                return Err(invalid(
                    s,
                    format_args!("network `{}` is not a valid key", crate::text::escape(&a.network)),
                ));
            }
            if networks.iter().any(|(k, _)| *k == a.network) {
                return Err(invalid(s, format_args!("network `{}` is listed twice", a.network)));
            }
            for alias in &a.aliases {
                let ok = !alias.is_empty()
                    && alias.len() <= 253
                    && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(invalid(s, format_args!("alias `{}` is not a DNS name", crate::text::escape(alias))));
                }
            }
            networks.push((a.network.clone(), a.aliases.clone()));
        }
        let (primary, aliases) = &networks[0];
        let primary_name = self.project.resource_name(primary);
        host.network_mode = Some(primary_name.clone());
        let endpoint = EndpointSettings { aliases: Some(aliases.clone()), ..Default::default() };
        body.networking_config =
            Some(NetworkingConfig { endpoints_config: Some(HashMap::from([(primary_name, endpoint)])) });
        Ok(networks)
    }

    /// Published ports: loopback unless other addresses are granted, no low host ports unless granted.
    pub fn ports(
        &self,
        spec: &wit::ContainerSpec,
        body: &mut ContainerCreateBody,
        host: &mut HostConfig,
    ) -> Result<(), DockerError> {
        let s = &spec.service;
        let g = self.grants;
        let mut bindings: BTreeMap<String, Vec<EnginePort>> = BTreeMap::new();
        for p in &spec.ports {
            if p.container_port == 0 {
                return Err(invalid(s, "container port 0"));
            }
            let address = match &p.host_ip {
                None if g.allow.publish_addresses.iter().any(|a| a == "0.0.0.0") => String::new(),
                None => "127.0.0.1".to_string(),
                Some(ip) => {
                    let parsed: IpAddr = ip.parse().map_err(|_| {
                        invalid(s, format_args!("host address `{}` is not an IP address", crate::text::escape(ip)))
                    })?;
                    let granted = g.allow.publish_addresses.iter().any(|a| a.parse::<IpAddr>().ok() == Some(parsed));
                    if !parsed.is_loopback() && !granted {
                        return Err(self.deny(
                            format!(
                                "service {s}: publishing port {} on {ip} (beyond this machine) is not granted",
                                p.container_port
                            ),
                            &format!("publish-addresses = [\"{ip}\"]"),
                        ));
                    }
                    parsed.to_string()
                }
            };
            if let Some(port) = p.host_port
                && port != 0
                && port < 1024
                && !g.allow.low_ports
            {
                return Err(self.deny(
                    format!("service {s}: host port {port} is below 1024 (a system service's port)"),
                    "low-ports = true",
                ));
            }
            let proto = match p.protocol {
                wit::Protocol::Tcp => "tcp",
                wit::Protocol::Udp => "udp",
                wit::Protocol::Sctp => "sctp",
            };
            bindings.entry(format!("{}/{proto}", p.container_port)).or_default().push(EnginePort {
                host_ip: Some(address),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            });
        }
        body.exposed_ports = Some(bindings.keys().cloned().collect());
        host.port_bindings = Some(bindings.into_iter().map(|(k, v)| (k, Some(v))).collect());
        Ok(())
    }

    /// Typed mounts: binds checked by [`BindRules`], volumes by key, tmpfs. Returns the volume keys.
    pub fn mounts(&self, spec: &wit::ContainerSpec, host: &mut HostConfig) -> Result<Vec<String>, DockerError> {
        let s = &spec.service;
        let mut mounts = Vec::new();
        let mut targets: Vec<&str> = Vec::new();
        let mut volumes = Vec::new();
        for m in &spec.mounts {
            let target = match m {
                wit::Mount::Bind(b) => &b.target,
                wit::Mount::Volume(v) => &v.target,
                wit::Mount::Tmpfs(t) => &t.target,
            };
            check_target(s, "mount target", target)?;
            if targets.contains(&target.as_str()) {
                return Err(invalid(s, format_args!("two mounts at {target}")));
            }
            targets.push(target);
            mounts.push(match m {
                wit::Mount::Bind(b) => {
                    let source: PathBuf = self.binds.check(self.grants, s, &b.source, b.read_only)?;
                    EngineMount {
                        typ: Some(MountType::BIND),
                        source: Some(source.display().to_string()),
                        target: Some(b.target.clone()),
                        read_only: Some(b.read_only),
                        bind_options: Some(MountBindOptions {
                            propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
                            create_mountpoint: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                }
                wit::Mount::Volume(v) => {
                    let source = match &v.key {
                        Some(key) => {
                            if !valid_key(key) {
                                return Err(invalid(
                                    s,
                                    format_args!("volume `{}` is not a valid key", crate::text::escape(key)),
                                ));
                            }
                            if !volumes.contains(key) {
                                volumes.push(key.clone());
                            }
                            Some(self.project.resource_name(key))
                        }
                        None => None,
                    };
                    EngineMount {
                        typ: Some(MountType::VOLUME),
                        source,
                        target: Some(v.target.clone()),
                        read_only: Some(v.read_only),
                        ..Default::default()
                    }
                }
                wit::Mount::Tmpfs(t) => EngineMount {
                    typ: Some(MountType::TMPFS),
                    target: Some(t.target.clone()),
                    tmpfs_options: t.size_bytes.map(|b| MountTmpfsOptions {
                        size_bytes: Some(i64::try_from(b).unwrap_or(i64::MAX)),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            });
        }
        host.mounts = Some(mounts);
        Ok(volumes)
    }

    /// Restart policies that outlive the operator need their grant.
    pub fn restart(&self, spec: &wit::ContainerSpec, host: &mut HostConfig) -> Result<(), DockerError> {
        let (name, retries) = match spec.restart {
            wit::RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
            wit::RestartPolicy::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
            wit::RestartPolicy::Always | wit::RestartPolicy::UnlessStopped => {
                if !self.grants.allow.restart_always {
                    let which =
                        if matches!(spec.restart, wit::RestartPolicy::Always) { "always" } else { "unless-stopped" };
                    return Err(self.deny(
                        format!(
                            "service {}: restart `{which}` restarts the container whenever the Docker daemon starts, \
                             after operator is gone",
                            spec.service
                        ),
                        "restart-always = true",
                    ));
                }
                let name = if matches!(spec.restart, wit::RestartPolicy::Always) {
                    RestartPolicyNameEnum::ALWAYS
                } else {
                    RestartPolicyNameEnum::UNLESS_STOPPED
                };
                (name, None)
            }
        };
        host.restart_policy = Some(EngineRestart { name: Some(name), maximum_retry_count: retries });
        Ok(())
    }

    /// Ulimits and extra hosts: each needs its grant.
    pub fn limits(&self, spec: &wit::ContainerSpec, host: &mut HostConfig) -> Result<(), DockerError> {
        let s = &spec.service;
        let mut ulimits = Vec::new();
        for u in &spec.ulimits {
            if !ULIMITS.contains(&u.name.as_str()) {
                return Err(invalid(
                    s,
                    format_args!("`{}` is not a ulimit ({})", crate::text::escape(&u.name), ULIMITS.join(", ")),
                ));
            }
            if u.soft < -1 || u.hard < -1 || (u.hard != -1 && (u.soft == -1 || u.soft > u.hard)) {
                return Err(invalid(
                    s,
                    format_args!("ulimit {}: soft {} and hard {} do not fit", u.name, u.soft, u.hard),
                ));
            }
            if !self.grants.allow.ulimits.contains(&u.name) {
                return Err(self.deny(
                    format!("service {s}: ulimit `{}` is not granted", u.name),
                    &format!("ulimits = [\"{}\"]", u.name),
                ));
            }
            ulimits.push(ResourcesUlimits { name: Some(u.name.clone()), soft: Some(u.soft), hard: Some(u.hard) });
        }
        let mut extra = Vec::new();
        for (name, address) in &spec.extra_hosts {
            let name_ok = !name.is_empty()
                && name.len() <= 253
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            let address_ok = address == "host-gateway" || address.parse::<IpAddr>().is_ok();
            if !name_ok || !address_ok {
                return Err(invalid(
                    s,
                    format_args!(
                        "extra host `{}:{}` is not a host name and an IP address",
                        crate::text::escape(name),
                        crate::text::escape(address)
                    ),
                ));
            }
            if !self.grants.allow.extra_hosts {
                return Err(self.deny(
                    format!("service {s}: extra host {name} → {address} (an /etc/hosts entry) is not granted"),
                    "extra-hosts = true",
                ));
            }
            extra.push(format!("{name}:{address}"));
        }
        host.ulimits = Some(ulimits);
        host.extra_hosts = Some(extra);
        Ok(())
    }

    /// The driver's labels (plain keys free, namespaced keys granted, reserved ones refused),
    /// then the host's: compose's and the ownership label.
    pub fn labels(&self, spec: &wit::ContainerSpec) -> Result<HashMap<String, String>, DockerError> {
        let s = &spec.service;
        let mut out = HashMap::new();
        for (k, v) in &spec.labels {
            text(s, "label", k, 256)?;
            text(s, "label value", v, 4096)?;
            if k.is_empty() {
                return Err(invalid(s, "a label needs a key"));
            }
            if let Some(ns) = RESERVED_LABELS.iter().find(|p| k.starts_with(*p)) {
                return Err(invalid(s, format_args!("label `{k}` is reserved for the host (namespace `{ns}`)")));
            }
            if k.contains('.') && !self.grants.label_granted(k) {
                return Err(self.deny(
                    format!("service {s}: label `{k}` is namespaced: tools on the host may read and act on it"),
                    &format!("labels = [\"{k}\"]"),
                ));
            }
            out.insert(k.clone(), v.clone());
        }
        let p = self.project;
        out.extend(p.owner_labels());
        out.insert(labels::SERVICE.into(), spec.service.clone());
        out.insert(labels::NUMBER.into(), spec.number.to_string());
        out.insert(labels::ONEOFF.into(), "False".into());
        out.insert(labels::CONFIG_HASH.into(), spec.config_hash.clone());
        out.insert(labels::WORKING_DIR.into(), p.dir.display().to_string());
        out.insert(
            labels::CONFIG_FILES.into(),
            p.config_files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(","),
        );
        out.insert(labels::DEPENDS_ON.into(), spec.depends_on.join(","));
        out.insert(labels::IMAGE.into(), spec.image.clone());
        Ok(out)
    }
}
