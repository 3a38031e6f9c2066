//! From a driver's `service-spec` to bollard's `ServiceSpec`, checked.
//!
//! A service's task is a container, so the container parts of the spec (identity, process,
//! capabilities, networks, mounts, labels) go through the very steps of the container
//! [`Planner`]: the same rules, the same refusals and hints, with no second copy to drift. What
//! only services have is checked here: published ports (Swarm publishes on every interface
//! of every node, so any port needs `swarm-ports = true`), placement constraints, replicas,
//! restart and update policies and resources. The host's labels (the stack's namespace and the
//! ownership label) are written last; the driver cannot set them.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, HostConfig, Limit, NetworkAttachmentConfig, ResourceObject, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use super::scope::labels;
use crate::bindings::docker as dwit;
use crate::bindings::swarm as wit;
use crate::capability::docker::DockerError;
use crate::capability::docker::plan::{Planner, bounded};

/// Caps on what one service may ask for, beyond the container caps.
pub mod caps {
    /// Replicas of one service.
    pub const REPLICAS: u32 = 64;
    /// Placement constraints of one service.
    pub const CONSTRAINTS: usize = 32;
    /// Bytes of one constraint.
    pub const CONSTRAINT_BYTES: usize = 512;
    /// Longest stop grace period: Swarm waits it out when a service is removed, and `down` must
    /// see the tasks gone (a container out-waiting it would outlive the stack, unseen).
    pub const STOP_GRACE_MS: u64 = 60_000;
    /// Shortest delay between a task's restarts (Swarm's own default is 5 s; none keeps it).
    pub const RESTART_DELAY_MS: u64 = 1_000;
}

/// Swarm's agent expands Go templates (`{{.Node.Hostname}}`) in a task's environment, hostname
/// and mount sources and targets on the node, after the host's checks: a bind source checked as
/// a folder of the subject could expand to `/`. No such field may hold `{{`.
fn no_template(service: &str, what: &str, value: &str) -> Result<(), DockerError> {
    if value.contains("{{") || value.contains("}}") {
        return Err(invalid(
            service,
            format_args!(
                "{what} `{}` contains `{{{{` or `}}}}`, which Swarm would expand as a template on the node after \
                 operator checked it",
                crate::text::escape(value)
            ),
        ));
    }
    Ok(())
}

/// Every field Swarm expands as a template.
fn no_templates(spec: &wit::ServiceSpec) -> Result<(), DockerError> {
    let s = spec.service.as_str();
    for (k, v) in &spec.environment {
        no_template(s, "environment variable", k)?;
        no_template(s, "environment value", v)?;
    }
    if let Some(h) = &spec.hostname {
        no_template(s, "hostname", h)?;
    }
    for m in &spec.mounts {
        match m {
            dwit::Mount::Bind(b) => {
                no_template(s, "bind source", &b.source)?;
                no_template(s, "mount target", &b.target)?;
            }
            dwit::Mount::Volume(v) => {
                no_template(s, "mount target", &v.target)?;
                if let Some(k) = &v.key {
                    no_template(s, "volume", k)?;
                }
            }
            dwit::Mount::Tmpfs(t) => no_template(s, "mount target", &t.target)?,
        }
    }
    Ok(())
}

/// A checked service: its engine name, the spec to create it with, and the stack resources it
/// relies on (checked to exist and be the stack's before creating).
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub spec: ServiceSpec,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

fn invalid(service: &str, message: impl std::fmt::Display) -> DockerError {
    DockerError::Invalid(format!("service {service}: {message}"))
}

fn ns(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

/// The container parts of a service spec, as the container planner takes them.
fn as_container(spec: &wit::ServiceSpec, labels: &[(String, String)]) -> dwit::ContainerSpec {
    dwit::ContainerSpec {
        service: spec.service.clone(),
        number: 1,
        container_name: None,
        image: spec.image.clone(),
        command: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        environment: spec.environment.clone(),
        labels: labels.to_vec(),
        ports: Vec::new(),
        mounts: spec.mounts.clone(),
        network: dwit::NetworkMode::Networks(spec.networks.clone()),
        healthcheck: spec.healthcheck.clone(),
        restart: dwit::RestartPolicy::No,
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        config_hash: spec.config_hash.clone(),
        depends_on: Vec::new(),
        stop_grace_period_ms: spec.stop_grace_period_ms,
        stop_signal: spec.stop_signal.clone(),
        ulimits: Vec::new(),
        extra_hosts: Vec::new(),
        privileged: false,
        cap_add: spec.cap_add.clone(),
        devices: Vec::new(),
        pid_host: false,
        ipc: None,
    }
}

/// Checks and plans a whole service of the planner's stack (its `project` is the stack).
pub fn plan(planner: &Planner, spec: &wit::ServiceSpec) -> Result<ServicePlan, DockerError> {
    let s = spec.service.as_str();
    let container = as_container(spec, &spec.container_labels);
    bounded(&container)?;
    no_templates(spec)?;
    if spec.ports.len() > crate::capability::docker::plan::caps::PORTS {
        return Err(invalid(
            s,
            format_args!(
                "{} published ports; at most {}",
                spec.ports.len(),
                crate::capability::docker::plan::caps::PORTS
            ),
        ));
    }
    if let Some(ms) = spec.stop_grace_period_ms.filter(|ms| *ms > caps::STOP_GRACE_MS) {
        return Err(invalid(
            s,
            format_args!(
                "stop grace period {ms}ms is longer than {}ms (removing the service waits it out)",
                caps::STOP_GRACE_MS
            ),
        ));
    }
    if let Some(ms) = spec.restart_policy.and_then(|r| r.delay_ms).filter(|ms| *ms < caps::RESTART_DELAY_MS) {
        return Err(invalid(
            s,
            format_args!(
                "restart delay {ms}ms is shorter than {}ms (each restart is a new task and container)",
                caps::RESTART_DELAY_MS
            ),
        ));
    }
    bounded(&as_container(spec, &spec.labels))?;
    planner.identity(&container)?;
    let mut body = ContainerCreateBody::default();
    let mut host = HostConfig::default();
    planner.process(&container, &mut body)?;
    planner.privileges(&container, &mut host)?;
    let attachments = planner.networking(&container, &mut body, &mut host)?;
    let volumes = planner.mounts(&container, &mut host)?;
    // The driver's labels under the container rules; the host's are replaced by the stack's.
    planner.labels(&container)?;
    planner.labels(&as_container(spec, &spec.labels))?;

    let stack = &planner.project.name;
    let name = operator_rules::names::resource(stack, s);
    let mut service_labels: HashMap<String, String> = spec.labels.iter().cloned().collect();
    service_labels.extend(stack_labels(planner, s));
    service_labels.insert(labels::CONFIG_HASH.into(), spec.config_hash.clone());
    service_labels.insert(labels::STACK_IMAGE.into(), spec.image.clone());
    let checks_health = spec.healthcheck.as_ref().is_some_and(|h| h.test.first().is_some_and(|w| w != "NONE"));
    service_labels.insert(labels::HEALTHCHECK.into(), checks_health.to_string());
    let mut container_labels: HashMap<String, String> = spec.container_labels.iter().cloned().collect();
    container_labels.extend(stack_labels(planner, s));

    let mode = match spec.mode {
        wit::ServiceMode::Replicated(n) if n > caps::REPLICAS => {
            return Err(invalid(s, format_args!("{n} replicas; at most {}", caps::REPLICAS)));
        }
        wit::ServiceMode::Replicated(n) => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(n)) }),
            ..Default::default()
        },
        wit::ServiceMode::Global => ServiceSpecMode { global: Some(HashMap::new()), ..Default::default() },
    };
    let endpoint = endpoint(planner, spec)?;
    let placement = placement(spec)?;
    let resources = spec.resources.map(|r| resources(s, r)).transpose()?;

    let container_spec = TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(container_labels),
        command: body.entrypoint,
        args: body.cmd,
        hostname: body.hostname,
        env: body.env,
        dir: body.working_dir,
        user: body.user,
        mounts: host.mounts,
        stop_signal: body.stop_signal,
        stop_grace_period: spec.stop_grace_period_ms.map(ns),
        health_check: body.healthcheck,
        capability_add: host.cap_add.filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let networks = attachments
        .iter()
        .map(|(key, aliases)| NetworkAttachmentConfig {
            target: Some(operator_rules::names::resource(stack, key)),
            aliases: Some(aliases.clone()),
            driver_opts: None,
        })
        .collect();
    let task = TaskSpec {
        container_spec: Some(container_spec),
        resources,
        restart_policy: spec.restart_policy.map(restart_policy),
        placement: Some(placement),
        networks: Some(networks),
        force_update: Some(0),
        ..Default::default()
    };
    let spec = ServiceSpec {
        name: Some(name.clone()),
        labels: Some(service_labels),
        task_template: Some(task),
        mode: Some(mode),
        update_config: spec.update_config.map(update_config),
        endpoint_spec: Some(endpoint),
        ..Default::default()
    };
    Ok(ServicePlan { name, spec, networks: attachments.into_iter().map(|(k, _)| k).collect(), volumes })
}

/// The labels that make a service (or its containers) the stack's service `key`.
fn stack_labels(planner: &Planner, key: &str) -> HashMap<String, String> {
    let p = planner.project;
    HashMap::from([
        (labels::NAMESPACE.to_string(), p.name.clone()),
        (labels::OWNER.to_string(), p.name.clone()),
        (labels::FOLDER.to_string(), p.dir.display().to_string()),
        (labels::SERVICE.to_string(), key.to_string()),
    ])
}

/// Published ports: each needs `swarm-ports = true` (Swarm publishes on every interface of every
/// node), low ports `low-ports = true`; `dnsrr` cannot take ingress ports.
fn endpoint(planner: &Planner, spec: &wit::ServiceSpec) -> Result<EndpointSpec, DockerError> {
    let s = spec.service.as_str();
    let g = planner.grants;
    let mut ports = Vec::new();
    for p in &spec.ports {
        if p.target == 0 {
            return Err(invalid(s, "target port 0"));
        }
        if !g.allow.swarm_ports {
            return Err(DockerError::Denied {
                reason: format!(
                    "service {s}: publishing port {} through Swarm is not granted: Swarm publishes on every interface \
                     of every node, not on 127.0.0.1",
                    p.target
                ),
                hint: g.hint("swarm-ports = true"),
            });
        }
        if let Some(port) = p.published
            && port != 0
            && port < 1024
            && !g.allow.low_ports
        {
            return Err(DockerError::Denied {
                reason: format!("service {s}: published port {port} is below 1024 (a system service's port)"),
                hint: g.hint("low-ports = true"),
            });
        }
        if spec.endpoint_mode == wit::EndpointMode::Dnsrr && p.mode == wit::PublishMode::Ingress {
            return Err(invalid(
                s,
                format_args!(
                    "port {} is published through the ingress mesh, which endpoint mode dnsrr cannot use; publish it \
                     in host mode",
                    p.target
                ),
            ));
        }
        ports.push(EndpointPortConfig {
            name: None,
            protocol: Some(match p.protocol {
                dwit::Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
                dwit::Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
                dwit::Protocol::Sctp => EndpointPortConfigProtocolEnum::SCTP,
            }),
            target_port: Some(i64::from(p.target)),
            published_port: p.published.filter(|p| *p != 0).map(i64::from),
            publish_mode: Some(match p.mode {
                wit::PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
                wit::PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
            }),
        });
    }
    Ok(EndpointSpec {
        mode: Some(match spec.endpoint_mode {
            wit::EndpointMode::Vip => EndpointSpecModeEnum::VIP,
            wit::EndpointMode::Dnsrr => EndpointSpecModeEnum::DNSRR,
        }),
        ports: Some(ports),
    })
}

/// Placement constraints: free (they only narrow where tasks run), but bounded text.
fn placement(spec: &wit::ServiceSpec) -> Result<TaskSpecPlacement, DockerError> {
    let s = spec.service.as_str();
    if spec.placement_constraints.len() > caps::CONSTRAINTS {
        return Err(invalid(
            s,
            format_args!("{} placement constraints; at most {}", spec.placement_constraints.len(), caps::CONSTRAINTS),
        ));
    }
    for c in &spec.placement_constraints {
        let ok = !c.trim().is_empty()
            && c.len() <= caps::CONSTRAINT_BYTES
            && !c.chars().any(char::is_control)
            && (c.contains("==") || c.contains("!="));
        if !ok {
            return Err(invalid(
                s,
                format_args!(
                    "placement constraint `{}` is not `<attribute> == <value>` or `!=` (at most {} bytes)",
                    crate::text::escape(c),
                    caps::CONSTRAINT_BYTES
                ),
            ));
        }
    }
    Ok(TaskSpecPlacement { constraints: Some(spec.placement_constraints.clone()), ..Default::default() })
}

fn resources(s: &str, r: wit::Resources) -> Result<TaskSpecResources, DockerError> {
    for (what, v) in [
        ("cpu limit", r.limit_nano_cpus),
        ("memory limit", r.limit_memory_bytes),
        ("cpu reservation", r.reserve_nano_cpus),
        ("memory reservation", r.reserve_memory_bytes),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(invalid(s, format_args!("a negative {what}")));
        }
    }
    let limits = (r.limit_nano_cpus.is_some() || r.limit_memory_bytes.is_some()).then_some(Limit {
        nano_cpus: r.limit_nano_cpus,
        memory_bytes: r.limit_memory_bytes,
        pids: None,
    });
    let reservations = (r.reserve_nano_cpus.is_some() || r.reserve_memory_bytes.is_some()).then_some(ResourceObject {
        nano_cpus: r.reserve_nano_cpus,
        memory_bytes: r.reserve_memory_bytes,
        generic_resources: None,
    });
    Ok(TaskSpecResources { limits, reservations, ..Default::default() })
}

fn restart_policy(r: wit::RestartPolicy) -> TaskSpecRestartPolicy {
    TaskSpecRestartPolicy {
        condition: Some(match r.condition {
            wit::RestartCondition::None => TaskSpecRestartPolicyConditionEnum::NONE,
            wit::RestartCondition::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
            wit::RestartCondition::Any => TaskSpecRestartPolicyConditionEnum::ANY,
        }),
        delay: r.delay_ms.map(ns),
        max_attempts: r.max_attempts.map(i64::from),
        window: r.window_ms.map(ns),
    }
}

fn update_config(u: wit::UpdateConfig) -> ServiceSpecUpdateConfig {
    ServiceSpecUpdateConfig {
        parallelism: Some(i64::from(u.parallelism)),
        delay: Some(ns(u.delay_ms)),
        failure_action: Some(match u.failure_action {
            wit::FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            wit::FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            wit::FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        }),
        monitor: u.monitor_ms.map(ns),
        max_failure_ratio: u.max_failure_ratio.filter(|r| r.is_finite() && *r >= 0.0).map(f64::from),
        order: Some(match u.order {
            wit::UpdateOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            wit::UpdateOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
    }
}
