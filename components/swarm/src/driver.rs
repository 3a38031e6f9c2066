//! What `up`, `down`, `status`, `logs` and `restart` do on a swarm, written against the
//! [`Host`] trait: the host's stack-scoped `swarm` capability in the component, a fake swarm in
//! tests.
//!
//! **Stacks and names.** The project's name is the stack's. The driver passes keys (`db`,
//! `default`); the host names the objects the way `docker stack deploy` does (`<stack>_<key>`)
//! and labels them, so `down`, `status`, `logs` and `restart` work from those labels alone.
//!
//! **Conversion.** Each compose service becomes one `service-spec`: `deploy:` gives the mode and
//! replicas, endpoint mode, service labels, placement constraints, restart policy, update config
//! and resources; the rest comes from the service as compose reads it. A port without a `mode`
//! is published through the routing mesh (`ingress`), unless the service uses `dnsrr`, which
//! cannot take ingress ports: then on the node (`host`). What a Swarm service cannot do
//! (privileged, devices, host PID, IPC, ulimits, extra hosts, `network_mode`,
//! `container_name`) is an `invalid-project` error naming the line; `depends_on` and `restart`
//! have no Swarm meaning and are ignored with a warning. Each spec carries a hash of itself, so
//! an unchanged service is left alone and a second `up` changes nothing.
//!
//! **Waiting.** `--wait` polls the stack's tasks about once a second. A replicated service is
//! ready when exactly its replica count of tasks meant to run are `running` (a task with a
//! healthcheck stays `starting` until healthy, so `running` means healthy); a global one when
//! at least one task is meant to run and all of them do. It fails fast, with Swarm's own
//! message, on a task that cannot be scheduled (`pending` with an error), a `rejected` task, or
//! three failed tasks of one service; and on a rolling update of a service this call changed
//! that paused or rolled back. Tasks that existed before the call are not held against it.
//! Swarm resets a service's update state when it accepts a change and sets it again once its
//! updater starts, so the first look at a changed service waits one poll.
//!
//! **Rollback.** If `up` fails on a stack that had no services, it removes the services, waits
//! for their tasks to go, then removes the networks and volumes that this call created: nothing
//! is leaked. `down` does the same for the whole stack, and keeps volumes unless asked.

use std::collections::BTreeMap;

use crate::bindings::exports::operator::core::deployment_target::{
    DeployError, LogOptions, Project as ProjectInput, ServiceStatus, UpOptions,
};
use crate::bindings::operator::core::docker::{
    DockerError, Mount, NetworkAttachment, NetworkInfo, NetworkMode, Protocol, VolumeInfo, VolumeMount,
};
use crate::bindings::operator::core::log::Level;
use crate::bindings::operator::core::progress::Phase;
use crate::bindings::operator::swarm::swarm::{
    EndpointMode, FailureAction, PublishMode, PublishedPort, Resources, RestartCondition, RestartPolicy, ServiceInfo,
    ServiceMode, ServiceSpec, TaskInfo, UpdateConfig, UpdateOrder,
};
use crate::model::{self, Project, Service};
use crate::project;
use operator_rules::names;

/// What the driver needs from its host: the `swarm` capability, time, progress and logs.
pub trait Host {
    fn swarm_active(&self) -> Result<bool, DockerError>;
    fn create_network(&self, key: &str) -> Result<NetworkInfo, DockerError>;
    fn remove_network(&self, key: &str) -> Result<(), DockerError>;
    fn list_networks(&self) -> Result<Vec<NetworkInfo>, DockerError>;
    fn create_volume(&self, key: &str) -> Result<VolumeInfo, DockerError>;
    fn remove_volume(&self, key: &str) -> Result<(), DockerError>;
    fn list_volumes(&self) -> Result<Vec<VolumeInfo>, DockerError>;
    fn image_present(&self, image: &str) -> Result<bool, DockerError>;
    fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError>;
    fn update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError>;
    fn force_update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError>;
    fn remove_service(&self, service: &str) -> Result<(), DockerError>;
    fn list_services(&self) -> Result<Vec<ServiceInfo>, DockerError>;
    /// The stack's tasks (of one service with `Some`), replaced ones included.
    fn list_tasks(&self, service: Option<&str>) -> Result<Vec<TaskInfo>, DockerError>;
    /// Blocks for `ms` (a fake only advances its clock).
    fn sleep_ms(&self, ms: u64);
    /// A monotonic clock in milliseconds, for deadlines.
    fn now_ms(&self) -> u64;
    fn progress(&self, task: &str, phase: Phase, detail: &str);
    fn log(&self, level: Level, message: &str);
}

/// How often waiting looks at the tasks.
const POLL_MS: u64 = 1000;
/// How long a rollback waits for the tasks of the services it removed to go.
const ROLLBACK_TASKS_MS: u64 = 60_000;
/// How long `down` waits for the stack's tasks to go before removing its networks.
const DOWN_TASKS_MS: u64 = 90_000;
/// How long `restart` waits for one service to converge.
const RESTART_WAIT_MS: u64 = 300_000;
/// Attempts at removing a network or volume still in use: overlay networks and volumes are
/// released asynchronously once the tasks' containers are gone.
const REMOVE_ATTEMPTS: u32 = 8;
/// Three failed tasks of one service fail `--wait`.
const FAILED_TASKS_LIMIT: usize = 3;

/// What `up` says when the engine is not a swarm manager.
pub const NOT_A_MANAGER: &str =
    "this Docker engine is not a swarm manager: run `docker swarm init` (or join a swarm as a manager) first";

fn docker_error(e: DockerError) -> DeployError {
    DeployError::Docker(describe(&e))
}

pub use crate::project::describe;

/// Loads the project with the shared compose loader and checks it for Swarm: settings a Swarm
/// service cannot honour are `invalid-project` errors naming the line; warnings (the loader's,
/// and what Swarm ignores) are logged.
pub fn load(input: &ProjectInput, host: &dyn Host) -> Result<Project, DeployError> {
    let mut warnings = Vec::new();
    let project = project::load(input, &mut warnings)?;
    for s in &project.services {
        check(input, s, &mut warnings)?;
    }
    for w in warnings {
        host.log(Level::Warn, &w);
    }
    Ok(project)
}

/// Refuses what a Swarm service cannot do, and warns about what Swarm ignores.
fn check(input: &ProjectInput, s: &Service, warnings: &mut Vec<String>) -> Result<(), DeployError> {
    let unsupported: [(&str, bool, &str); 8] = [
        ("privileged", s.privileged, "Swarm services cannot run privileged"),
        ("devices", !s.devices.is_empty(), "Swarm services cannot be given host devices"),
        ("pid", s.pid_host, "Swarm services cannot share the host's PID namespace"),
        ("ipc", s.ipc.is_some(), "Swarm services cannot choose an IPC namespace"),
        ("ulimits", !s.ulimits.is_empty(), "ulimits are not supported for Swarm services"),
        ("extra_hosts", !s.extra_hosts.is_empty(), "extra hosts are not supported for Swarm services"),
        (
            "network_mode",
            !matches!(s.network, NetworkMode::Networks(_)),
            "Swarm services join the stack's overlay networks; `host` and `none` are not supported",
        ),
        (
            "container_name",
            s.container_name.is_some(),
            "Swarm names the containers of a service's tasks itself; container_name cannot be used",
        ),
    ];
    for (key, used, reason) in unsupported {
        if used {
            return Err(project::invalid(input, s.line_of(key), &format!("services.{}.{key}: {reason}", s.name)));
        }
    }
    let dnsrr = s.deploy.as_ref().is_some_and(|d| d.endpoint_mode == model::EndpointMode::Dnsrr);
    if dnsrr && s.port_modes.contains(&Some(model::PublishMode::Ingress)) {
        return Err(project::invalid(
            input,
            s.line_of("ports"),
            &format!(
                "services.{}.ports: a port published in `ingress` mode cannot be used with endpoint_mode `dnsrr`; \
                 publish it with `mode: host`",
                s.name
            ),
        ));
    }
    if !s.depends_on.is_empty() {
        warnings.push(format!(
            "line {}: services.{}.depends_on: Swarm starts services together; depends_on ignored",
            s.line_of("depends_on"),
            s.name
        ));
    }
    if s.key_lines.iter().any(|(k, _)| k == "restart") {
        warnings.push(format!(
            "line {}: services.{}.restart ignored: use deploy.restart_policy",
            s.line_of("restart"),
            s.name
        ));
    }
    let mut addresses: Vec<&str> = s.ports.iter().filter_map(|p| p.host_ip.as_deref()).collect();
    addresses.dedup();
    for ip in addresses.into_iter().filter(|ip| *ip != "0.0.0.0") {
        warnings.push(format!(
            "line {}: services.{}.ports: the host address {ip} is ignored: Swarm publishes a port on every interface \
             of every node",
            s.line_of("ports"),
            s.name
        ));
    }
    Ok(())
}

/// The `service-spec` for one service, with its config hash.
pub fn spec(s: &Service) -> ServiceSpec {
    let deploy = s.deploy.as_ref();
    let endpoint_mode = match deploy.map(|d| d.endpoint_mode) {
        Some(model::EndpointMode::Dnsrr) => EndpointMode::Dnsrr,
        _ => EndpointMode::Vip,
    };
    let ports = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| PublishedPort {
            target: p.container_port,
            published: p.host_port,
            protocol: p.protocol,
            mode: match s.port_modes.get(i).copied().flatten() {
                Some(model::PublishMode::Host) => PublishMode::Host,
                Some(model::PublishMode::Ingress) => PublishMode::Ingress,
                None if endpoint_mode == EndpointMode::Dnsrr => PublishMode::Host,
                None => PublishMode::Ingress,
            },
        })
        .collect();
    let networks = match &s.network {
        NetworkMode::Networks(list) => list
            .iter()
            .map(|a| {
                // The service name is always an alias, as in compose.
                let mut aliases = vec![s.name.clone()];
                for alias in &a.aliases {
                    if !aliases.contains(alias) {
                        aliases.push(alias.clone());
                    }
                }
                NetworkAttachment { network: a.network.clone(), aliases }
            })
            .collect(),
        _ => Vec::new(),
    };
    let resources = deploy.and_then(|d| d.resources).map(|r| Resources {
        limit_nano_cpus: r.limit_nano_cpus,
        limit_memory_bytes: r.limit_memory_bytes,
        reserve_nano_cpus: r.reserve_nano_cpus,
        reserve_memory_bytes: r.reserve_memory_bytes,
    });
    let mut spec = ServiceSpec {
        service: s.name.clone(),
        image: s.image.clone(),
        command: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        environment: s.environment.clone(),
        labels: deploy.map(|d| d.labels.clone()).unwrap_or_default(),
        container_labels: s.labels.clone(),
        mode: match deploy.map(|d| d.mode) {
            Some(model::DeployMode::Global) => ServiceMode::Global,
            Some(model::DeployMode::Replicated(n)) => ServiceMode::Replicated(n),
            None => ServiceMode::Replicated(1),
        },
        ports,
        endpoint_mode,
        networks,
        mounts: s.mounts.clone(),
        healthcheck: s.healthcheck.clone(),
        hostname: s.hostname.clone(),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        placement_constraints: deploy.map(|d| d.constraints.clone()).unwrap_or_default(),
        restart_policy: deploy.and_then(|d| d.restart_policy).map(|r| RestartPolicy {
            condition: match r.condition {
                model::RestartCondition::None => RestartCondition::None,
                model::RestartCondition::OnFailure => RestartCondition::OnFailure,
                model::RestartCondition::Any => RestartCondition::Any,
            },
            delay_ms: r.delay_ms,
            max_attempts: r.max_attempts,
            window_ms: r.window_ms,
        }),
        update_config: deploy.and_then(|d| d.update_config).map(|u| UpdateConfig {
            parallelism: u.parallelism,
            delay_ms: u.delay_ms,
            failure_action: match u.failure_action {
                model::FailureAction::Pause => FailureAction::Pause,
                model::FailureAction::Continue => FailureAction::Continue,
                model::FailureAction::Rollback => FailureAction::Rollback,
            },
            monitor_ms: u.monitor_ms,
            max_failure_ratio: u.max_failure_ratio,
            order: match u.order {
                model::UpdateOrder::StopFirst => UpdateOrder::StopFirst,
                model::UpdateOrder::StartFirst => UpdateOrder::StartFirst,
            },
        }),
        resources,
        stop_grace_period_ms: s.stop_grace_period_ms,
        stop_signal: s.stop_signal.clone(),
        cap_add: s.cap_add.clone(),
        config_hash: String::new(),
    };
    spec.config_hash = config_hash(&spec);
    spec
}

/// The spec with every port published in `mode` (`host` also finds the service by DNS round
/// robin, which host-mode ports allow and the routing mesh does not), as `--publish-mode` asks.
pub fn published(mut spec: ServiceSpec, mode: Option<model::PublishMode>) -> ServiceSpec {
    let Some(mode) = mode else { return spec };
    let (port_mode, endpoint) = match mode {
        model::PublishMode::Host => (PublishMode::Host, EndpointMode::Dnsrr),
        model::PublishMode::Ingress => (PublishMode::Ingress, EndpointMode::Vip),
    };
    for p in &mut spec.ports {
        p.mode = port_mode;
    }
    spec.endpoint_mode = endpoint;
    spec.config_hash = config_hash(&spec);
    spec
}

/// sha256 (hex) of the spec's JSON without its `config_hash` field: equal specs, equal hashes.
pub fn config_hash(spec: &ServiceSpec) -> String {
    use sha2::{Digest, Sha256};
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("config_hash");
    }
    hex::encode(Sha256::digest(serde_json::to_vec(&value).unwrap_or_default()))
}

/// `<stack>_<service>`, as the host names it.
fn service_name(stack: &str, key: &str) -> String {
    names::resource(stack, key)
}

fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `up`: create or update the stack's services, waiting for them with `options.wait`.
pub fn up(input: &ProjectInput, options: &UpOptions, host: &dyn Host) -> Result<Vec<ServiceStatus>, DeployError> {
    let project = load(input, host)?;
    let specs: Vec<ServiceSpec> = project.services.iter().map(|s| published(spec(s), project.publish_mode)).collect();
    if !host.swarm_active().map_err(docker_error)? {
        return Err(DeployError::Docker(NOT_A_MANAGER.into()));
    }
    let existing = host.list_services().map_err(docker_error)?;
    let orphans: Vec<&str> =
        existing.iter().filter(|i| project.service(&i.service).is_none()).map(|i| i.name.as_str()).collect();
    if !orphans.is_empty() {
        host.log(
            Level::Warn,
            &format!(
                "services no longer in the compose file are left running: {} (`down` removes them)",
                orphans.join(", ")
            ),
        );
    }

    // A missing image is not an error: on a multi-node swarm the nodes that run the tasks pull
    // it, and a task that cannot get it is rejected with Swarm's message.
    let mut images: Vec<&str> = specs.iter().map(|s| s.image.as_str()).collect();
    images.sort();
    images.dedup();
    for image in images {
        if !host.image_present(image).map_err(docker_error)? {
            host.log(
                Level::Warn,
                &format!(
                    "image {image} is not present on this node: the swarm nodes that run its tasks will have to pull it"
                ),
            );
        }
    }

    let fresh = existing.is_empty();
    let before = Before {
        services: existing,
        networks: host.list_networks().map_err(docker_error)?.into_iter().map(|n| n.key).collect(),
        volumes: host.list_volumes().map_err(docker_error)?.into_iter().map(|v| v.key).collect(),
    };
    let deadline = options.wait_timeout_ms.map(|t| host.now_ms().saturating_add(t));
    let result = converge(input, &specs, &before, options, deadline, host);
    if result.is_err() && fresh {
        host.log(Level::Warn, "up failed on a new stack: removing what it created");
        roll_back(input, host, &before);
    }
    result
}

/// The stack as `up` found it.
struct Before {
    services: Vec<ServiceInfo>,
    /// Network keys.
    networks: Vec<String>,
    /// Volume keys.
    volumes: Vec<String>,
}

fn converge(
    input: &ProjectInput,
    specs: &[ServiceSpec],
    before: &Before,
    options: &UpOptions,
    deadline: Option<u64>,
    host: &dyn Host,
) -> Result<Vec<ServiceStatus>, DeployError> {
    let stack = input.name.as_str();
    let mut networks: Vec<&str> = specs.iter().flat_map(|s| s.networks.iter().map(|a| a.network.as_str())).collect();
    networks.sort();
    networks.dedup();
    for key in networks {
        let task = format!("Network {}", names::resource(stack, key));
        if before.networks.iter().any(|k| k == key) {
            host.progress(&task, Phase::Done, "exists");
            continue;
        }
        host.progress(&task, Phase::Creating, "");
        host.create_network(key).map_err(docker_error)?;
        host.progress(&task, Phase::Done, "created");
    }
    let mut volumes: Vec<&str> = specs
        .iter()
        .flat_map(|s| s.mounts.iter())
        .filter_map(|m| match m {
            Mount::Volume(VolumeMount { key: Some(key), .. }) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    volumes.sort();
    volumes.dedup();
    for key in volumes {
        let task = format!("Volume {}", names::resource(stack, key));
        // The stack's own (the host lists no other): a second `up` creates nothing.
        if before.volumes.iter().any(|k| k == key) {
            host.progress(&task, Phase::Done, "exists");
            continue;
        }
        host.create_volume(key).map_err(docker_error)?;
        host.progress(&task, Phase::Done, "created");
    }

    // Tasks that exist now are not held against this `up` (an old rejected task, say).
    let baseline: Vec<String> = if options.wait {
        host.list_tasks(None).map_err(docker_error)?.into_iter().map(|t| t.id).collect()
    } else {
        Vec::new()
    };
    let mut targets = Vec::new();
    for spec in specs {
        let task = format!("Service {}", service_name(stack, &spec.service));
        let touched = match before.services.iter().find(|i| i.service == spec.service) {
            Some(current) if current.config_hash == spec.config_hash => {
                host.progress(&task, Phase::Done, "up to date");
                false
            }
            Some(_) => {
                host.progress(&task, Phase::Creating, "updating (configuration changed)");
                host.update_service(spec).map_err(docker_error)?;
                if !options.wait {
                    host.progress(&task, Phase::Done, "updated");
                }
                true
            }
            None => {
                host.progress(&task, Phase::Creating, "");
                host.create_service(spec).map_err(docker_error)?;
                if !options.wait {
                    host.progress(&task, Phase::Done, "created");
                }
                true
            }
        };
        targets.push(Target { key: spec.service.clone(), mode: spec.mode, touched });
    }

    if options.wait {
        if targets.iter().any(|t| t.touched) {
            // Let Swarm's updater start before the first look (see the module comment).
            host.sleep_ms(POLL_MS);
        }
        let what = match options.wait_timeout_ms {
            Some(t) => format!("application not healthy after {}", human_ms(t)),
            None => "application not healthy".into(),
        };
        wait(host, stack, &targets, &baseline, deadline, &what)?;
    }
    status(input, host)
}

/// Removes what a failed `up` created on a new stack: its services (then waits for their
/// tasks to go), and the networks and volumes that were not there before. Failures are logged:
/// the error the caller reports is `up`'s.
fn roll_back(input: &ProjectInput, host: &dyn Host, before: &Before) {
    if let Ok(services) = host.list_services() {
        for s in services {
            if let Err(e) = host.remove_service(&s.service) {
                host.log(Level::Warn, &format!("rollback: cannot remove service {}: {}", s.name, describe(&e)));
            }
            host.progress(&format!("Service {}", s.name), Phase::Removing, "rolled back");
        }
    }
    if let Err(e) = wait_tasks_gone(input, host, ROLLBACK_TASKS_MS) {
        host.log(Level::Warn, &format!("rollback: {}", deploy_message(&e)));
    }
    if let Ok(networks) = host.list_networks() {
        for n in networks.iter().filter(|n| !before.networks.contains(&n.key)) {
            if let Err(e) = remove_when_released(host, || host.remove_network(&n.key)) {
                host.log(Level::Warn, &format!("rollback: cannot remove network {}: {}", n.name, describe(&e)));
            }
        }
    }
    if let Ok(volumes) = host.list_volumes() {
        for v in volumes.iter().filter(|v| !before.volumes.contains(&v.key)) {
            if let Err(e) = remove_when_released(host, || host.remove_volume(&v.key)) {
                host.log(Level::Warn, &format!("rollback: cannot remove volume {}: {}", v.name, describe(&e)));
            }
        }
    }
}

fn deploy_message(e: &DeployError) -> &str {
    match e {
        DeployError::InvalidProject(m)
        | DeployError::Docker(m)
        | DeployError::Unhealthy(m)
        | DeployError::Timeout(m)
        | DeployError::NotFound(m) => m,
    }
}

/// Runs a removal, retrying while the object is still in use (`conflict`); gone already is done.
fn remove_when_released(host: &dyn Host, remove: impl Fn() -> Result<(), DockerError>) -> Result<(), DockerError> {
    let mut attempt = 1;
    loop {
        match remove() {
            Ok(()) | Err(DockerError::NotFound(_)) => return Ok(()),
            Err(DockerError::Conflict(_)) if attempt < REMOVE_ATTEMPTS => {
                attempt += 1;
                host.sleep_ms(POLL_MS);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `<service>.<slot> (<state>)`, or `<service> on <node>` for a global service's task.
fn task_label(t: &TaskInfo) -> String {
    match t.slot {
        Some(slot) => format!("{}.{slot} ({})", t.service, t.state),
        None => format!("{} on {} ({})", t.service, t.node_id, t.state),
    }
}

/// Task states after which a task's container no longer runs.
const TERMINAL: &[&str] = &["complete", "failed", "shutdown", "rejected", "orphaned", "remove"];

/// Waits until the stack lists no task at all (their containers are gone, so networks and
/// volumes can be released), bounded by `bound_ms`. Past the bound, tasks that all ended are
/// only a warning (an engine may keep ended tasks listed for a while); one still running is a
/// timeout naming every task left.
fn wait_tasks_gone(input: &ProjectInput, host: &dyn Host, bound_ms: u64) -> Result<(), DeployError> {
    let deadline = host.now_ms().saturating_add(bound_ms);
    loop {
        let tasks = host.list_tasks(None).map_err(docker_error)?;
        if tasks.is_empty() {
            return Ok(());
        }
        if host.now_ms() >= deadline {
            let left: Vec<String> = tasks.iter().map(task_label).collect();
            let message =
                format!("tasks of stack {} still there after {}: {}", input.name, human_ms(bound_ms), left.join(", "));
            if tasks.iter().all(|t| TERMINAL.contains(&t.state.as_str())) {
                host.log(Level::Warn, &format!("{message}; they have all ended, continuing"));
                return Ok(());
            }
            return Err(DeployError::Timeout(message));
        }
        host.sleep_ms(POLL_MS);
    }
}

/// A service waited for.
struct Target {
    key: String,
    mode: ServiceMode,
    /// Created, updated or restarted by this call: its update state counts.
    touched: bool,
}

/// One look at a service.
enum Check {
    Ready(String),
    /// `<running>/<desired> running`, and the longer detail for a timeout message.
    Pending {
        counts: String,
        detail: String,
    },
    Failed(String),
}

/// Orders RFC 3339 times as the engine writes them (UTC, a fraction of varying length).
fn time_key(ts: &str) -> (&str, u64) {
    let end = ts.find(['.', 'Z', '+']).unwrap_or(ts.len());
    let (seconds, rest) = ts.split_at(end);
    let digits: String =
        rest.strip_prefix('.').unwrap_or("").chars().take_while(char::is_ascii_digit).take(9).collect();
    (seconds, format!("{digits:0<9}").parse().unwrap_or(0))
}

fn latest<'a>(tasks: impl Iterator<Item = &'a TaskInfo>) -> Option<&'a TaskInfo> {
    tasks.max_by(|a, b| (time_key(&a.timestamp), &a.id).cmp(&(time_key(&b.timestamp), &b.id)))
}

/// Swarm's reason for a task's state: its error, else its message.
fn reason(t: &TaskInfo) -> &str {
    t.error.as_deref().filter(|e| !e.is_empty()).unwrap_or(&t.message)
}

/// Where a service's tasks stand.
struct Tally<'a> {
    running: usize,
    desired: usize,
    converged: bool,
    /// The latest task meant to run that does not (else the latest that ended), for messages.
    latest_trouble: Option<&'a TaskInfo>,
}

fn tally<'a>(key: &str, mode: ServiceMode, tasks: &'a [TaskInfo]) -> Tally<'a> {
    let mine: Vec<&TaskInfo> = tasks.iter().filter(|t| t.service == key).collect();
    let current: Vec<&TaskInfo> = mine.iter().copied().filter(|t| t.desired_state == "running").collect();
    let running = current.iter().filter(|t| t.state == "running").count();
    let (desired, converged) = match mode {
        ServiceMode::Replicated(n) => (n as usize, current.len() == n as usize && running == n as usize),
        ServiceMode::Global => (current.len(), !current.is_empty() && running == current.len()),
    };
    let latest_trouble = latest(current.iter().copied().filter(|t| t.state != "running"))
        .or_else(|| latest(mine.iter().copied().filter(|t| t.state != "running")));
    Tally { running, desired, converged, latest_trouble }
}

/// `<running>/<desired> running`, or when not converged `<running>/<desired> <state>: <why>` of
/// the latest task in trouble.
fn state_line(t: &Tally) -> String {
    match (t.converged, t.latest_trouble) {
        (false, Some(task)) if reason(task).is_empty() => format!("{}/{} {}", t.running, t.desired, task.state),
        (false, Some(task)) => format!("{}/{} {}: {}", t.running, t.desired, task.state, reason(task)),
        _ => format!("{}/{} running", t.running, t.desired),
    }
}

fn evaluate(target: &Target, info: Option<&ServiceInfo>, tasks: &[TaskInfo], baseline: &[String]) -> Check {
    let key = target.key.as_str();
    let Some(info) = info else {
        return Check::Failed(format!("service {key} no longer exists"));
    };
    let name = info.name.as_str();
    let mine: Vec<&TaskInfo> = tasks.iter().filter(|t| t.service == key).collect();
    if let Some(t) = mine.iter().find(|t| t.desired_state == "running" && t.state == "pending" && t.error.is_some()) {
        return Check::Failed(format!("service {name} cannot be scheduled: {}", reason(t)));
    }
    let new: Vec<&TaskInfo> = mine.iter().copied().filter(|t| !baseline.contains(&t.id)).collect();
    if let Some(t) = latest(new.iter().copied().filter(|t| t.state == "rejected")) {
        return Check::Failed(format!("service {name}: a task was rejected: {}", reason(t)));
    }
    // A service's task ends only when Swarm wants it to (`shutdown`): one that ended by itself,
    // failed or `complete` (a container stopped as unhealthy may exit 0), is a failure.
    let failed: Vec<&TaskInfo> =
        new.iter().copied().filter(|t| matches!(t.state.as_str(), "failed" | "complete")).collect();
    if failed.len() >= FAILED_TASKS_LIMIT
        && let Some(t) = latest(failed.iter().copied())
    {
        let code = t.exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default();
        return Check::Failed(format!(
            "service {name} keeps failing: {} tasks failed, the last with: {}{code}",
            failed.len(),
            reason(t)
        ));
    }
    let counts = tally(key, target.mode, tasks);
    if target.touched {
        let message = info.update_message.as_deref().unwrap_or("no message");
        match info.update_state.as_deref() {
            Some("paused") => return Check::Failed(format!("the update of service {name} paused: {message}")),
            Some("rollback_started" | "rollback_paused" | "rollback_completed") => {
                return Check::Failed(format!("the update of service {name} was rolled back: {message}"));
            }
            Some("updating") => {
                let running = format!("{}/{} running (updating)", counts.running, counts.desired);
                return Check::Pending { detail: running.clone(), counts: running };
            }
            _ => {}
        }
    }
    if counts.converged {
        Check::Ready(state_line(&counts))
    } else {
        Check::Pending { counts: format!("{}/{} running", counts.running, counts.desired), detail: state_line(&counts) }
    }
}

/// Waits until every target is converged, failing fast (see the module comment), bounded by
/// `deadline_ms`. Reports `Waiting <running>/<desired> running` per service, then `Done`.
fn wait(
    host: &dyn Host,
    stack: &str,
    targets: &[Target],
    baseline: &[String],
    deadline_ms: Option<u64>,
    what: &str,
) -> Result<(), DeployError> {
    let mut pending: Vec<&Target> = targets.iter().collect();
    // The last detail reported per service (only services that had to be waited for).
    let mut waited: BTreeMap<&str, String> = BTreeMap::new();
    loop {
        let services = host.list_services().map_err(docker_error)?;
        let tasks = host.list_tasks(None).map_err(docker_error)?;
        let mut still = Vec::new();
        let mut late = Vec::new();
        for target in pending {
            let task = format!("Service {}", service_name(stack, &target.key));
            let info = services.iter().find(|i| i.service == target.key);
            match evaluate(target, info, &tasks, baseline) {
                Check::Ready(detail) => {
                    // A service left alone that was ready at once already said "up to date".
                    if target.touched || waited.contains_key(target.key.as_str()) {
                        host.progress(&task, Phase::Done, &detail);
                    }
                }
                Check::Pending { counts, detail } => {
                    if waited.get(target.key.as_str()) != Some(&counts) {
                        host.progress(&task, Phase::Waiting, &counts);
                        waited.insert(target.key.as_str(), counts);
                    }
                    late.push(format!("{} ({detail})", target.key));
                    still.push(target);
                }
                Check::Failed(message) => {
                    host.progress(&task, Phase::Failed, &message);
                    return Err(DeployError::Unhealthy(message));
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        pending = still;
        let now = host.now_ms();
        let remaining = match deadline_ms {
            Some(d) if now >= d => {
                for target in &pending {
                    host.progress(&format!("Service {}", service_name(stack, &target.key)), Phase::Failed, "timeout");
                }
                return Err(DeployError::Timeout(format!("{what}: {}", late.join("; "))));
            }
            Some(d) => d - now,
            None => u64::MAX,
        };
        host.sleep_ms(remaining.min(POLL_MS));
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn status_of(info: &ServiceInfo, tasks: &[TaskInfo]) -> ServiceStatus {
    let counts = tally(&info.service, info.mode, tasks);
    let starting =
        tasks.iter().any(|t| t.service == info.service && t.desired_state == "running" && t.state == "starting");
    ServiceStatus {
        service: info.service.clone(),
        container: info.name.clone(),
        state: state_line(&counts),
        // A task with a healthcheck is `starting` until healthy, then `running`.
        health: if starting {
            Some("starting".to_string())
        } else if counts.converged && info.has_healthcheck {
            Some("healthy".to_string())
        } else {
            None
        },
        ports: info
            .ports
            .iter()
            .filter_map(|p| {
                let mode = match p.mode {
                    PublishMode::Ingress => "ingress",
                    PublishMode::Host => "host",
                };
                p.published
                    .map(|published| format!("*:{published}->{}/{} ({mode})", p.target, protocol_name(p.protocol)))
            })
            .collect(),
    }
}

/// `status`: one row per service of the stack, sorted by service; works from labels alone.
pub fn status(_input: &ProjectInput, host: &dyn Host) -> Result<Vec<ServiceStatus>, DeployError> {
    let mut services = host.list_services().map_err(docker_error)?;
    services.sort_by(|a, b| a.service.cmp(&b.service));
    let tasks = host.list_tasks(None).map_err(docker_error)?;
    Ok(services.iter().map(|s| status_of(s, &tasks)).collect())
}

/// `down`: remove every service of the stack, wait for their tasks to go, then remove the
/// stack's networks, and its volumes only when asked. Works from labels alone.
pub fn down(input: &ProjectInput, remove_volumes: bool, host: &dyn Host) -> Result<(), DeployError> {
    let mut services = host.list_services().map_err(docker_error)?;
    services.sort_by(|a, b| a.service.cmp(&b.service));
    let mut networks = host.list_networks().map_err(docker_error)?;
    networks.dedup_by(|a, b| a.key == b.key);
    let volumes = if remove_volumes { host.list_volumes().map_err(docker_error)? } else { Vec::new() };
    let tasks = host.list_tasks(None).map_err(docker_error)?;
    if services.is_empty() && networks.is_empty() && volumes.is_empty() && tasks.is_empty() {
        host.log(Level::Warn, &format!("no resource found to remove for stack {}", input.name));
        return Ok(());
    }
    for s in &services {
        let task = format!("Service {}", s.name);
        host.progress(&task, Phase::Removing, "");
        match host.remove_service(&s.service) {
            Ok(()) | Err(DockerError::NotFound(_)) => host.progress(&task, Phase::Done, "removed"),
            Err(e) => return Err(docker_error(e)),
        }
    }
    wait_tasks_gone(input, host, DOWN_TASKS_MS)?;
    for n in &networks {
        let task = format!("Network {}", n.name);
        host.progress(&task, Phase::Removing, "");
        remove_when_released(host, || host.remove_network(&n.key))
            .map_err(|e| DeployError::Docker(format!("cannot remove network {}: {}", n.name, describe(&e))))?;
        host.progress(&task, Phase::Done, "removed");
    }
    for v in &volumes {
        let task = format!("Volume {}", v.name);
        host.progress(&task, Phase::Removing, "");
        remove_when_released(host, || host.remove_volume(&v.key))
            .map_err(|e| DeployError::Docker(format!("cannot remove volume {}: {}", v.name, describe(&e))))?;
        host.progress(&task, Phase::Done, "removed");
    }
    Ok(())
}

/// The service keys whose logs `logs` shows: the named ones (each must be in the stack), else
/// all of the stack's, sorted.
pub fn log_targets(_input: &ProjectInput, options: &LogOptions, host: &dyn Host) -> Result<Vec<String>, DeployError> {
    let mut keys: Vec<String> = host.list_services().map_err(docker_error)?.into_iter().map(|s| s.service).collect();
    keys.sort();
    if options.services.is_empty() {
        return Ok(keys);
    }
    for s in &options.services {
        if !keys.contains(s) {
            return Err(DeployError::NotFound(format!("no such service: {s}")));
        }
    }
    Ok(options.services.clone())
}

/// `restart`: a rolling restart (`force-update-service`) of the named services, or of all of
/// them in the compose file's order, one at a time: each must be converged again, with the
/// fail-fast rules of `--wait`, before the next one starts.
pub fn restart(input: &ProjectInput, services: &[String], host: &dyn Host) -> Result<(), DeployError> {
    let existing = host.list_services().map_err(docker_error)?;
    for s in services {
        if !existing.iter().any(|i| &i.service == s) {
            return Err(DeployError::NotFound(format!("no such service: {s}")));
        }
    }
    // A service is restarted with the spec it runs, which only the compose file gives again.
    if input.files.is_empty() {
        return Err(DeployError::InvalidProject(format!(
            "restarting a Swarm service needs the compose file it was deployed from (none in {})",
            input.directory
        )));
    }
    let project = load(input, host)?;
    let specs: Vec<ServiceSpec> = project.services.iter().map(|s| published(spec(s), project.publish_mode)).collect();
    let mut order: Vec<String> = services.to_vec();
    if order.is_empty() {
        order = existing.iter().map(|i| i.service.clone()).collect();
        order.sort();
        // The file's order; the stack's others after, by name.
        order.sort_by_key(|k| specs.iter().position(|f| f.service == *k).unwrap_or(usize::MAX));
    }
    let mut seen: Vec<String> = Vec::new();
    for key in order {
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let Some(info) = existing.iter().find(|i| i.service == key) else { continue };
        let Some(spec) = specs.iter().find(|s| s.service == key) else {
            return Err(DeployError::InvalidProject(format!(
                "service {key} runs in stack {} but is not in the compose file: `up` removes nothing, `down` does",
                input.name
            )));
        };
        // The spec it runs: the file's, as deployed with whichever publish mode it was.
        let variants = [
            spec.clone(),
            published(spec.clone(), Some(model::PublishMode::Host)),
            published(spec.clone(), Some(model::PublishMode::Ingress)),
        ];
        let Some(spec) = variants.iter().find(|v| v.config_hash == info.config_hash) else {
            return Err(DeployError::InvalidProject(format!(
                "service {key} differs from the compose file: run `up` to apply the change, which rolls its tasks too"
            )));
        };
        let baseline: Vec<String> =
            host.list_tasks(Some(&key)).map_err(docker_error)?.into_iter().map(|t| t.id).collect();
        let task = format!("Service {}", info.name);
        host.progress(&task, Phase::Starting, "restarting");
        host.force_update_service(spec).map_err(docker_error)?;
        host.sleep_ms(POLL_MS);
        let deadline = host.now_ms().saturating_add(RESTART_WAIT_MS);
        let target = Target { key: key.clone(), mode: info.mode, touched: true };
        let what = format!("service {} not healthy after {}", info.name, human_ms(RESTART_WAIT_MS));
        wait(host, &input.name, std::slice::from_ref(&target), &baseline, Some(deadline), &what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::bindings::exports::operator::core::deployment_target::ComposeFile;
    use crate::bindings::operator::core::docker::{BindMount, Healthcheck, TmpfsMount};

    /// How the fake swarm runs a service's tasks.
    #[derive(Clone, Debug, PartialEq)]
    enum Behaviour {
        /// `running` at once.
        Healthy,
        /// `starting` for this many polls, then `running`.
        Slow(u32),
        /// `starting` for ever.
        NeverReady,
        /// Rejected with this error (a missing image).
        Rejected(String),
        /// `pending` with this error (no node matches).
        Unschedulable(String),
        /// Each poll, the current task fails and a new one starts.
        Failing,
        /// A rolling update pauses.
        PausedUpdate,
    }

    struct FakeTask {
        info: TaskInfo,
        /// The poll at which a `starting` task runs.
        ready_at: Option<u32>,
        /// The poll at which a removed service's task is gone.
        gone_at: Option<u32>,
    }

    /// An in-memory single-node swarm. `ops` records the changes the driver asks for.
    struct Fake {
        active: bool,
        services: RefCell<Vec<ServiceInfo>>,
        specs: RefCell<BTreeMap<String, ServiceSpec>>,
        tasks: RefCell<Vec<FakeTask>>,
        networks: RefCell<Vec<String>>,
        volumes: RefCell<Vec<String>>,
        images: Vec<String>,
        behaviour: BTreeMap<String, Behaviour>,
        /// Polls a removed service's tasks stay listed.
        linger: u32,
        /// Whether a removed service's tasks end at once (else they run until gone).
        end_on_remove: bool,
        /// Network removals answered `conflict` before one succeeds.
        network_conflicts: Cell<u32>,
        ops: RefCell<Vec<String>>,
        logs: RefCell<Vec<String>>,
        progress: RefCell<Vec<(String, Phase, String)>>,
        polls: Cell<u32>,
        clock: Cell<u64>,
        next_id: Cell<u32>,
    }

    impl Default for Fake {
        fn default() -> Self {
            Fake {
                active: true,
                services: RefCell::default(),
                specs: RefCell::default(),
                tasks: RefCell::default(),
                networks: RefCell::default(),
                volumes: RefCell::default(),
                images: vec!["db:1".into(), "app:1".into()],
                behaviour: BTreeMap::new(),
                linger: 2,
                end_on_remove: false,
                network_conflicts: Cell::new(0),
                ops: RefCell::default(),
                logs: RefCell::default(),
                progress: RefCell::default(),
                polls: Cell::new(0),
                clock: Cell::new(0),
                next_id: Cell::new(0),
            }
        }
    }

    impl Fake {
        fn with(behaviour: &[(&str, Behaviour)]) -> Fake {
            Fake { behaviour: behaviour.iter().map(|(k, b)| (k.to_string(), b.clone())).collect(), ..Fake::default() }
        }

        fn op(&self, s: String) {
            self.ops.borrow_mut().push(s);
        }

        fn id(&self) -> String {
            self.next_id.set(self.next_id.get() + 1);
            format!("t{:03}", self.next_id.get())
        }

        fn now(&self) -> String {
            // One task timestamp per millisecond of the fake clock, and in creation order.
            format!("2026-11-26T10:00:00.{:06}Z", self.clock.get() * 1000 + u64::from(self.next_id.get()))
        }

        fn behaviour(&self, key: &str) -> Behaviour {
            self.behaviour.get(key).cloned().unwrap_or(Behaviour::Healthy)
        }

        fn task(&self, service: &str, slot: Option<u32>, state: &str, error: Option<&str>) -> FakeTask {
            let id = self.id();
            FakeTask {
                info: TaskInfo {
                    id,
                    service: service.into(),
                    slot,
                    node_id: "node1".into(),
                    state: state.into(),
                    desired_state: "running".into(),
                    message: state.into(),
                    error: error.map(String::from),
                    container_id: None,
                    exit_code: None,
                    timestamp: self.now(),
                },
                ready_at: None,
                gone_at: None,
            }
        }

        /// Replaces a service's tasks as Swarm would after a create or an update.
        fn schedule(&self, key: &str, mode: ServiceMode) {
            let mut tasks = self.tasks.borrow_mut();
            for t in tasks.iter_mut().filter(|t| t.info.service == key && t.info.desired_state == "running") {
                t.info.desired_state = "shutdown".into();
                t.info.state = "shutdown".into();
            }
            let slots: Vec<Option<u32>> = match mode {
                ServiceMode::Replicated(n) => (1..=n).map(Some).collect(),
                ServiceMode::Global => vec![None],
            };
            for slot in slots {
                let polls = self.polls.get();
                match self.behaviour(key) {
                    Behaviour::Healthy | Behaviour::PausedUpdate => tasks.push(self.task(key, slot, "running", None)),
                    Behaviour::Slow(n) => {
                        let mut t = self.task(key, slot, "starting", None);
                        t.ready_at = Some(polls + n);
                        tasks.push(t);
                    }
                    Behaviour::NeverReady | Behaviour::Failing => tasks.push(self.task(key, slot, "starting", None)),
                    Behaviour::Rejected(e) => {
                        let mut t = self.task(key, slot, "rejected", Some(&e));
                        t.info.desired_state = "shutdown".into();
                        tasks.push(t);
                        tasks.push(self.task(key, slot, "assigned", None));
                    }
                    Behaviour::Unschedulable(e) => tasks.push(self.task(key, slot, "pending", Some(&e))),
                }
            }
        }

        /// One poll of the swarm: tasks start, fail, or go.
        fn tick(&self) {
            let polls = self.polls.get() + 1;
            self.polls.set(polls);
            let mut new = Vec::new();
            {
                let mut tasks = self.tasks.borrow_mut();
                tasks.retain(|t| t.gone_at.is_none_or(|g| g > polls));
                for t in tasks.iter_mut() {
                    if t.info.state == "starting" && t.ready_at.is_some_and(|r| r <= polls) {
                        t.info.state = "running".into();
                    }
                    if t.info.desired_state == "running"
                        && t.info.state == "starting"
                        && self.behaviour(&t.info.service) == Behaviour::Failing
                    {
                        t.info.state = "failed".into();
                        t.info.desired_state = "shutdown".into();
                        t.info.error = Some("task: non-zero exit (1)".into());
                        t.info.exit_code = Some(1);
                        new.push((t.info.service.clone(), t.info.slot));
                    }
                }
            }
            for (service, slot) in new {
                let t = self.task(&service, slot, "starting", None);
                self.tasks.borrow_mut().push(t);
            }
            let tasks = self.tasks.borrow();
            for s in self.services.borrow_mut().iter_mut() {
                let converged = tasks
                    .iter()
                    .filter(|t| t.info.service == s.service && t.info.desired_state == "running")
                    .all(|t| t.info.state == "running");
                if s.update_state.as_deref() == Some("updating") && converged {
                    s.update_state = Some("completed".into());
                }
            }
        }

        fn info(&self, spec: &ServiceSpec) -> ServiceInfo {
            ServiceInfo {
                id: format!("svc-{}", spec.service),
                name: names::resource("p", &spec.service),
                service: spec.service.clone(),
                image: spec.image.clone(),
                mode: spec.mode,
                ports: spec.ports.clone(),
                endpoint_mode: spec.endpoint_mode,
                has_healthcheck: spec.healthcheck.as_ref().is_some_and(|h| h.test.first().is_some_and(|w| w != "NONE")),
                config_hash: spec.config_hash.clone(),
                update_state: None,
                update_message: None,
            }
        }

        fn start_update(&self, key: &str) -> Result<ServiceInfo, DockerError> {
            let mut services = self.services.borrow_mut();
            let s = services.iter_mut().find(|s| s.service == key).ok_or_else(|| DockerError::NotFound(key.into()))?;
            if self.behaviour(key) == Behaviour::PausedUpdate {
                s.update_state = Some("paused".into());
                s.update_message = Some("update paused due to failure or early termination of task t9".into());
            } else {
                s.update_state = Some("updating".into());
            }
            Ok(s.clone())
        }

        fn spec(&self, key: &str) -> ServiceSpec {
            self.specs.borrow().get(key).cloned().expect("a created service")
        }

        fn service_keys(&self) -> Vec<String> {
            self.services.borrow().iter().map(|s| s.service.clone()).collect()
        }

        fn progress_of(&self, task: &str) -> Vec<(Phase, String)> {
            self.progress.borrow().iter().filter(|(t, _, _)| t == task).map(|(_, p, d)| (*p, d.clone())).collect()
        }

        fn is_empty(&self) -> bool {
            self.services.borrow().is_empty()
                && self.tasks.borrow().is_empty()
                && self.networks.borrow().is_empty()
                && self.volumes.borrow().is_empty()
        }
    }

    impl Host for Fake {
        fn swarm_active(&self) -> Result<bool, DockerError> {
            Ok(self.active)
        }
        fn create_network(&self, key: &str) -> Result<NetworkInfo, DockerError> {
            self.op(format!("create network {key}"));
            self.networks.borrow_mut().push(key.into());
            Ok(NetworkInfo { key: key.into(), name: names::resource("p", key), id: key.into() })
        }
        fn remove_network(&self, key: &str) -> Result<(), DockerError> {
            let attached = self.tasks.borrow().iter().any(|t| !TERMINAL.contains(&t.info.state.as_str()));
            if attached || self.network_conflicts.get() > 0 {
                self.network_conflicts.set(self.network_conflicts.get().saturating_sub(1));
                return Err(DockerError::Conflict(format!("network p_{key} has active endpoints")));
            }
            self.op(format!("remove network {key}"));
            self.networks.borrow_mut().retain(|n| n != key);
            Ok(())
        }
        fn list_networks(&self) -> Result<Vec<NetworkInfo>, DockerError> {
            Ok(self
                .networks
                .borrow()
                .iter()
                .map(|k| NetworkInfo { key: k.clone(), name: names::resource("p", k), id: k.clone() })
                .collect())
        }
        fn create_volume(&self, key: &str) -> Result<VolumeInfo, DockerError> {
            self.op(format!("create volume {key}"));
            if !self.volumes.borrow().iter().any(|v| v == key) {
                self.volumes.borrow_mut().push(key.into());
            }
            Ok(VolumeInfo { key: key.into(), name: names::resource("p", key) })
        }
        fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
            self.op(format!("remove volume {key}"));
            self.volumes.borrow_mut().retain(|v| v != key);
            Ok(())
        }
        fn list_volumes(&self) -> Result<Vec<VolumeInfo>, DockerError> {
            Ok(self
                .volumes
                .borrow()
                .iter()
                .map(|k| VolumeInfo { key: k.clone(), name: names::resource("p", k) })
                .collect())
        }
        fn image_present(&self, image: &str) -> Result<bool, DockerError> {
            Ok(self.images.iter().any(|i| i == image))
        }
        fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
            self.op(format!("create {}", spec.service));
            let info = self.info(spec);
            self.services.borrow_mut().push(info.clone());
            self.specs.borrow_mut().insert(spec.service.clone(), spec.clone());
            self.schedule(&spec.service, spec.mode);
            Ok(info)
        }
        fn update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
            self.op(format!("update {}", spec.service));
            {
                let mut services = self.services.borrow_mut();
                let s = services
                    .iter_mut()
                    .find(|s| s.service == spec.service)
                    .ok_or_else(|| DockerError::NotFound(spec.service.clone()))?;
                *s = ServiceInfo { update_state: None, ..self.info(spec) };
            }
            self.specs.borrow_mut().insert(spec.service.clone(), spec.clone());
            let info = self.start_update(&spec.service)?;
            self.schedule(&spec.service, spec.mode);
            Ok(info)
        }
        fn force_update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
            let service = spec.service.as_str();
            self.op(format!("force-update {service}"));
            let info = self.start_update(service)?;
            self.schedule(service, info.mode);
            Ok(info)
        }
        fn remove_service(&self, service: &str) -> Result<(), DockerError> {
            self.op(format!("remove {service}"));
            self.services.borrow_mut().retain(|s| s.service != service);
            let gone_at = self.polls.get() + self.linger;
            for t in self.tasks.borrow_mut().iter_mut().filter(|t| t.info.service == service) {
                t.info.desired_state = "remove".into();
                t.gone_at = Some(gone_at);
                if self.end_on_remove {
                    t.info.state = "shutdown".into();
                }
            }
            Ok(())
        }
        fn list_services(&self) -> Result<Vec<ServiceInfo>, DockerError> {
            Ok(self.services.borrow().clone())
        }
        fn list_tasks(&self, service: Option<&str>) -> Result<Vec<TaskInfo>, DockerError> {
            self.tick();
            Ok(self
                .tasks
                .borrow()
                .iter()
                .filter(|t| service.is_none_or(|s| t.info.service == s))
                .map(|t| t.info.clone())
                .collect())
        }
        fn sleep_ms(&self, ms: u64) {
            self.clock.set(self.clock.get() + ms);
        }
        fn now_ms(&self) -> u64 {
            self.clock.get()
        }
        fn progress(&self, task: &str, phase: Phase, detail: &str) {
            self.progress.borrow_mut().push((task.into(), phase, detail.into()));
        }
        fn log(&self, _level: Level, message: &str) {
            self.logs.borrow_mut().push(message.into());
        }
    }

    const FILE: &str = r#"
services:
  db:
    image: db:1
    command: ["--data", "/data"]
    healthcheck: { test: [CMD, check], interval: 2s }
    volumes: ["data:/data", "./conf:/conf:ro", { type: tmpfs, target: /tmp }]
    labels: { tier: db }
    ports:
      - "2379:2379"
      - { target: 2380, published: 2380, mode: ingress }
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      labels: { role: store }
      placement:
        constraints: ["node.role == manager"]
      restart_policy: { condition: on-failure, max_attempts: 3 }
      update_config: { parallelism: 1, delay: 10s, failure_action: rollback, order: start-first }
      resources:
        limits: { cpus: "0.5", memory: 256m }
    stop_grace_period: 30s
  app:
    image: app:1
    entrypoint: /app
    environment: { MODE: "${MODE:-normal}" }
    ports:
      - "8080:80"
      - { target: 9090, mode: host }
    networks:
      back: { aliases: [api] }
networks:
  back:
volumes:
  data:
"#;

    fn input_with(file: &str, mode: Option<&str>) -> ProjectInput {
        ProjectInput {
            name: "p".into(),
            directory: "/proj".into(),
            files: vec![ComposeFile { path: "/proj/docker-compose.yaml".into(), contents: file.into() }],
            env_file: None,
            environment: mode.map(|m| vec![("MODE".to_string(), m.to_string())]).unwrap_or_default(),
        }
    }

    /// FILE without the ingress port on the dnsrr service (which it would refuse).
    fn file() -> String {
        FILE.replace(
            "      - { target: 2380, published: 2380, mode: ingress }\n",
            "      - { target: 2380, published: 2380, mode: host }\n",
        )
    }

    fn input(mode: Option<&str>) -> ProjectInput {
        input_with(&file(), mode)
    }

    fn labels_only() -> ProjectInput {
        ProjectInput { files: vec![], ..input(None) }
    }

    fn wait() -> UpOptions {
        UpOptions { wait: true, wait_timeout_ms: Some(60_000) }
    }

    fn simple(image: &str) -> ProjectInput {
        input_with(&format!("services:\n  app:\n    image: {image}\n    deploy: {{ replicas: 2 }}\n"), None)
    }

    #[test]
    fn up_creates_networks_volumes_and_services_with_swarm_specs() {
        let host = Fake::default();
        let statuses = up(&input(None), &wait(), &host).expect("up");
        assert_eq!(
            *host.ops.borrow(),
            ["create network back", "create network default", "create volume data", "create db", "create app"]
        );
        let db = host.spec("db");
        assert_eq!(db.mode, ServiceMode::Replicated(3));
        assert_eq!(db.endpoint_mode, EndpointMode::Dnsrr);
        // dnsrr cannot take ingress ports: a port without a mode is published on the node.
        assert_eq!(
            db.ports,
            vec![
                PublishedPort { target: 2379, published: Some(2379), protocol: Protocol::Tcp, mode: PublishMode::Host },
                PublishedPort { target: 2380, published: Some(2380), protocol: Protocol::Tcp, mode: PublishMode::Host },
            ]
        );
        assert_eq!(db.command, Some(vec!["--data".to_string(), "/data".to_string()]));
        assert_eq!(db.labels, vec![("role".to_string(), "store".to_string())]);
        assert_eq!(db.container_labels, vec![("tier".to_string(), "db".to_string())]);
        assert_eq!(db.placement_constraints, vec!["node.role == manager".to_string()]);
        assert_eq!(
            db.restart_policy,
            Some(RestartPolicy {
                condition: RestartCondition::OnFailure,
                delay_ms: None,
                max_attempts: Some(3),
                window_ms: None
            })
        );
        assert_eq!(
            db.update_config,
            Some(UpdateConfig {
                parallelism: 1,
                delay_ms: 10_000,
                failure_action: FailureAction::Rollback,
                monitor_ms: None,
                max_failure_ratio: None,
                order: UpdateOrder::StartFirst
            })
        );
        assert_eq!(
            db.resources,
            Some(Resources {
                limit_nano_cpus: Some(500_000_000),
                limit_memory_bytes: Some(256 << 20),
                reserve_nano_cpus: None,
                reserve_memory_bytes: None
            })
        );
        assert_eq!(
            db.mounts,
            vec![
                Mount::Volume(VolumeMount { key: Some("data".into()), target: "/data".into(), read_only: false }),
                Mount::Bind(BindMount { source: "/proj/conf".into(), target: "/conf".into(), read_only: true }),
                Mount::Tmpfs(TmpfsMount { target: "/tmp".into(), size_bytes: None }),
            ]
        );
        assert_eq!(
            db.healthcheck,
            Some(Healthcheck {
                test: vec!["CMD".into(), "check".into()],
                interval_ms: 2000,
                timeout_ms: 0,
                retries: 0,
                start_period_ms: 0,
                start_interval_ms: 0
            })
        );
        assert_eq!(db.stop_grace_period_ms, Some(30_000));
        assert_eq!(db.networks, vec![NetworkAttachment { network: "default".into(), aliases: vec!["db".into()] }]);

        let app = host.spec("app");
        assert_eq!((app.mode, app.endpoint_mode), (ServiceMode::Replicated(1), EndpointMode::Vip));
        assert_eq!(app.entrypoint, Some(vec!["/app".to_string()]));
        assert_eq!(
            app.ports,
            vec![
                PublishedPort {
                    target: 80,
                    published: Some(8080),
                    protocol: Protocol::Tcp,
                    mode: PublishMode::Ingress
                },
                PublishedPort { target: 9090, published: None, protocol: Protocol::Tcp, mode: PublishMode::Host },
            ]
        );
        assert_eq!(
            app.networks,
            vec![NetworkAttachment { network: "back".into(), aliases: vec!["app".into(), "api".into()] }]
        );
        assert_eq!(app.environment, vec![("MODE".to_string(), "normal".to_string())]);
        assert_eq!((app.restart_policy, app.update_config, app.resources), (None, None, None));
        assert_eq!(app.config_hash, config_hash(&app));

        // Rows sorted by service, with the engine's names and published ports.
        let rows: Vec<(&str, &str, &str)> =
            statuses.iter().map(|s| (s.service.as_str(), s.container.as_str(), s.state.as_str())).collect();
        assert_eq!(rows, [("app", "p_app", "1/1 running"), ("db", "p_db", "3/3 running")]);
        assert_eq!(statuses[0].ports, vec!["*:8080->80/tcp (ingress)".to_string()]);
        assert_eq!(
            statuses[1].ports,
            vec!["*:2379->2379/tcp (host)".to_string(), "*:2380->2380/tcp (host)".to_string()]
        );
        assert_eq!(host.progress_of("Service p_db").last(), Some(&(Phase::Done, "3/3 running".to_string())));
        assert_eq!(
            host.progress_of("Network p_back"),
            [(Phase::Creating, String::new()), (Phase::Done, "created".into())]
        );
    }

    #[test]
    fn a_second_up_makes_no_create_or_update() {
        let host = Fake::default();
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        host.progress.borrow_mut().clear();
        up(&input(None), &wait(), &host).expect("up again");
        assert!(host.ops.borrow().is_empty(), "{:?}", host.ops.borrow());
        assert_eq!(host.progress_of("Service p_app"), [(Phase::Done, "up to date".to_string())]);
        // Without --wait too.
        up(&input(None), &UpOptions { wait: false, wait_timeout_ms: None }, &host).expect("up, no wait");
        assert!(host.ops.borrow().is_empty(), "{:?}", host.ops.borrow());
    }

    #[test]
    fn a_changed_service_is_updated_and_the_rest_left_alone() {
        let host = Fake::with(&[("app", Behaviour::Slow(2))]);
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        host.progress.borrow_mut().clear();
        up(&input(Some("debug")), &wait(), &host).expect("up with a changed environment");
        assert_eq!(*host.ops.borrow(), ["update app"]);
        assert_eq!(host.spec("app").environment, vec![("MODE".to_string(), "debug".to_string())]);
        assert_eq!(
            host.progress_of("Service p_app"),
            [
                (Phase::Creating, "updating (configuration changed)".to_string()),
                (Phase::Waiting, "0/1 running (updating)".to_string()),
                (Phase::Waiting, "1/1 running (updating)".to_string()),
                (Phase::Done, "1/1 running".to_string()),
            ]
        );
    }

    #[test]
    fn services_no_longer_in_the_file_are_left_running_with_a_warning() {
        let host = Fake::default();
        up(&input(None), &wait(), &host).expect("up");
        up(&input_with("services:\n  app:\n    image: app:1\n", None), &wait(), &host).expect("up with one service");
        assert_eq!(host.service_keys(), ["db", "app"]);
        assert!(
            host.logs
                .borrow()
                .iter()
                .any(|l| l == "services no longer in the compose file are left running: p_db (`down` removes them)"),
            "{:?}",
            host.logs.borrow()
        );
    }

    #[test]
    fn a_rejected_task_fails_fast_with_swarms_error_and_leaves_nothing() {
        let host =
            Fake { images: vec![], ..Fake::with(&[("app", Behaviour::Rejected("No such image: app:1".into()))]) };
        let e = up(&simple("app:1"), &wait(), &host).expect_err("the image is missing");
        assert_eq!(e, DeployError::Unhealthy("service p_app: a task was rejected: No such image: app:1".into()));
        assert!(
            host.logs.borrow().iter().any(|l| l.starts_with("image app:1 is not present on this node")),
            "{:?}",
            host.logs.borrow()
        );
        assert!(host.is_empty(), "leaked: {:?}", host.ops.borrow());
        assert_eq!(
            *host.ops.borrow(),
            ["create network default", "create app", "remove app", "remove network default"]
        );
    }

    #[test]
    fn an_unschedulable_task_fails_fast_with_swarms_error_and_leaves_nothing() {
        let why = "no suitable node (scheduling constraints not satisfied on 1 node)";
        let host = Fake::with(&[("db", Behaviour::Unschedulable(why.into()))]);
        let e = up(&input(None), &wait(), &host).expect_err("no node matches");
        assert_eq!(e, DeployError::Unhealthy(format!("service p_db cannot be scheduled: {why}")));
        assert!(host.is_empty());
        let failed = (Phase::Failed, format!("service p_db cannot be scheduled: {why}"));
        assert!(host.progress_of("Service p_db").contains(&failed));
        assert_eq!(host.progress_of("Service p_db").last(), Some(&(Phase::Removing, "rolled back".to_string())));
    }

    #[test]
    fn a_service_that_keeps_failing_fails_after_three_tasks_and_leaves_nothing() {
        let host = Fake::with(&[("app", Behaviour::Failing)]);
        let e = up(&simple("app:1"), &wait(), &host).expect_err("the task exits");
        assert_eq!(
            e,
            DeployError::Unhealthy(
                "service p_app keeps failing: 4 tasks failed, the last with: task: non-zero exit (1) (exit code 1)"
                    .into()
            )
        );
        assert!(host.clock.get() < 5000, "it did not fail fast: {} ms", host.clock.get());
        assert!(host.is_empty());
    }

    #[test]
    fn waiting_times_out_naming_what_is_not_ready() {
        let host = Fake::with(&[("app", Behaviour::NeverReady)]);
        let options = UpOptions { wait: true, wait_timeout_ms: Some(5000) };
        let e = up(&simple("app:1"), &options, &host).expect_err("never healthy");
        assert_eq!(e, DeployError::Timeout("application not healthy after 5s: app (0/2 starting: starting)".into()));
        assert!(host.is_empty());
        assert!(host.progress_of("Service p_app").contains(&(Phase::Failed, "timeout".to_string())));
    }

    #[test]
    fn a_failed_up_on_an_existing_stack_is_not_rolled_back() {
        let host = Fake::with(&[("app", Behaviour::PausedUpdate)]);
        up(&simple("app:1"), &wait(), &host).expect("up");
        let e = up(&simple("app:2"), &wait(), &host).expect_err("the update pauses");
        assert_eq!(
            e,
            DeployError::Unhealthy(
                "the update of service p_app paused: update paused due to failure or early termination of task t9"
                    .into()
            )
        );
        assert_eq!(host.service_keys(), ["app"]);
        assert_eq!(*host.networks.borrow(), ["default"]);
    }

    #[test]
    fn up_without_a_swarm_says_how_to_make_one() {
        let host = Fake { active: false, ..Fake::default() };
        let e = up(&input(None), &wait(), &host).expect_err("not a manager");
        assert_eq!(e, DeployError::Docker(NOT_A_MANAGER.into()));
        assert!(host.ops.borrow().is_empty());
    }

    #[test]
    fn what_swarm_cannot_do_is_refused_with_its_line() {
        let cases: &[(&str, &str)] = &[
            ("privileged: true", "services.app.privileged: Swarm services cannot run privileged"),
            ("devices: [/dev/fuse]", "services.app.devices: Swarm services cannot be given host devices"),
            ("pid: host", "services.app.pid: Swarm services cannot share the host's PID namespace"),
            ("ipc: host", "services.app.ipc: Swarm services cannot choose an IPC namespace"),
            ("ulimits: { nofile: 1024 }", "services.app.ulimits: ulimits are not supported for Swarm services"),
            ("extra_hosts: [\"db=10.0.0.1\"]", "services.app.extra_hosts: extra hosts are not supported"),
            ("network_mode: host", "services.app.network_mode: Swarm services join the stack's overlay networks"),
            ("network_mode: none", "services.app.network_mode: Swarm services join the stack's overlay networks"),
            ("container_name: mine", "services.app.container_name: Swarm names the containers"),
            (
                "ports: [{ target: 80, mode: ingress }]\n    deploy: { endpoint_mode: dnsrr }",
                "services.app.ports: a port published in `ingress` mode cannot be used with endpoint_mode `dnsrr`",
            ),
        ];
        for (setting, message) in cases {
            let host = Fake::default();
            let text = format!("services:\n  app:\n    image: app:1\n    {setting}\n");
            let e = up(&input_with(&text, None), &wait(), &host).expect_err(setting);
            let DeployError::InvalidProject(m) = &e else { panic!("{setting}: {e:?}") };
            assert!(m.starts_with("/proj/docker-compose.yaml:4: "), "{setting}: {m}");
            assert!(m.contains(message), "{setting}: {m}");
            assert!(host.ops.borrow().is_empty());
        }
        // A setting that is off is no problem.
        let host = Fake::default();
        up(&input_with("services:\n  app:\n    image: app:1\n    privileged: false\n", None), &wait(), &host)
            .expect("privileged: false");
    }

    #[test]
    fn depends_on_restart_and_host_addresses_are_ignored_with_a_warning() {
        let host = Fake::default();
        let text = "services:\n  db:\n    image: db:1\n  app:\n    image: app:1\n    restart: always\n    depends_on: [db]\n    ports: [\"127.0.0.1:8080:80\"]\n";
        up(&input_with(text, None), &wait(), &host).expect("up");
        assert_eq!(
            *host.logs.borrow(),
            [
                "line 7: services.app.depends_on: Swarm starts services together; depends_on ignored",
                "line 6: services.app.restart ignored: use deploy.restart_policy",
                "line 8: services.app.ports: the host address 127.0.0.1 is ignored: Swarm publishes a port on every \
                 interface of every node",
            ]
        );
    }

    #[test]
    fn global_services_wait_for_every_task_and_at_least_one() {
        let host = Fake::with(&[("app", Behaviour::Slow(3))]);
        let text = "services:\n  app:\n    image: app:1\n    deploy: { mode: global }\n";
        up(&input_with(text, None), &wait(), &host).expect("up");
        assert_eq!(host.spec("app").mode, ServiceMode::Global);
        assert_eq!(
            host.progress_of("Service p_app")[1..],
            [(Phase::Waiting, "0/1 running".to_string()), (Phase::Done, "1/1 running".to_string())]
        );
    }

    #[test]
    fn down_removes_the_stack_from_its_labels_and_tolerates_an_empty_stack() {
        let host = Fake { linger: 3, network_conflicts: Cell::new(2), ..Fake::default() };
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        down(&labels_only(), false, &host).expect("down");
        assert_eq!(*host.ops.borrow(), ["remove app", "remove db", "remove network back", "remove network default"]);
        assert!(host.tasks.borrow().is_empty());
        assert!(host.networks.borrow().is_empty());
        assert_eq!(*host.volumes.borrow(), ["data"]);
        down(&labels_only(), true, &host).expect("down -v");
        assert!(host.is_empty());
        host.ops.borrow_mut().clear();
        down(&labels_only(), true, &host).expect("down on an empty stack");
        assert!(host.ops.borrow().is_empty());
        assert_eq!(host.logs.borrow().last().map(String::as_str), Some("no resource found to remove for stack p"));
    }

    #[test]
    fn down_gives_up_on_tasks_that_stay_and_names_them() {
        let host = Fake { linger: 1000, ..Fake::default() };
        up(&simple("app:1"), &wait(), &host).expect("up");
        let e = down(&labels_only(), false, &host).expect_err("tasks stay");
        assert_eq!(
            e,
            DeployError::Timeout("tasks of stack p still there after 90s: app.1 (running), app.2 (running)".into())
        );
        assert_eq!(*host.networks.borrow(), ["default"]);

        // Tasks that ended but stay listed do not hold `down` up for ever.
        let host = Fake { linger: 1000, end_on_remove: true, ..Fake::default() };
        up(&simple("app:1"), &wait(), &host).expect("up");
        down(&labels_only(), false, &host).expect("down");
        assert!(host.networks.borrow().is_empty());
        assert_eq!(
            host.logs.borrow().last().map(String::as_str),
            Some(
                "tasks of stack p still there after 90s: app.1 (shutdown), app.2 (shutdown); they have all ended, \
                 continuing"
            )
        );
    }

    #[test]
    fn restart_rolls_one_service_at_a_time_in_file_order() {
        let host = Fake::with(&[("db", Behaviour::Slow(3)), ("app", Behaviour::Slow(2))]);
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        host.progress.borrow_mut().clear();
        restart(&input(None), &[], &host).expect("restart");
        assert_eq!(*host.ops.borrow(), ["force-update db", "force-update app"]);
        // db was running again before app was touched: its Done comes before app's Starting.
        let order: Vec<(String, Phase)> = host
            .progress
            .borrow()
            .iter()
            .map(|(t, p, _)| (t.clone(), *p))
            .filter(|(_, p)| *p != Phase::Waiting)
            .collect();
        assert_eq!(
            order,
            [
                ("Service p_db".to_string(), Phase::Starting),
                ("Service p_db".to_string(), Phase::Done),
                ("Service p_app".to_string(), Phase::Starting),
                ("Service p_app".to_string(), Phase::Done),
            ]
        );
        // In the order asked.
        host.ops.borrow_mut().clear();
        restart(&input(None), &["app".to_string(), "db".to_string()], &host).expect("restart app db");
        assert_eq!(*host.ops.borrow(), ["force-update app", "force-update db"]);
        // The spec it runs comes only from the file; a changed file is `up`'s to apply.
        let e = restart(&labels_only(), &[], &host).expect_err("no file");
        assert!(matches!(&e, DeployError::InvalidProject(m) if m.contains("needs the compose file")), "{e:?}");
        let e = restart(&input(Some("debug")), &[], &host).expect_err("changed");
        assert!(matches!(&e, DeployError::InvalidProject(m) if m.contains("run `up`")), "{e:?}");
    }

    #[test]
    fn restart_fails_fast_when_tasks_keep_failing() {
        let host = Fake::default();
        up(&simple("app:1"), &wait(), &host).expect("up");
        let host = Fake { behaviour: [("app".to_string(), Behaviour::Failing)].into(), ..host };
        let e = restart(&simple("app:1"), &[], &host).expect_err("failing");
        assert!(matches!(&e, DeployError::Unhealthy(m) if m.starts_with("service p_app keeps failing")), "{e:?}");
    }

    #[test]
    fn unknown_services_are_not_found() {
        let host = Fake::default();
        up(&input(None), &wait(), &host).expect("up");
        let e = restart(&labels_only(), &["nope".to_string()], &host).expect_err("restart nope");
        assert_eq!(e, DeployError::NotFound("no such service: nope".into()));
        let logs = |services: &[&str]| LogOptions {
            services: services.iter().map(|s| s.to_string()).collect(),
            tail: None,
            follow: false,
        };
        let e = log_targets(&labels_only(), &logs(&["db", "nope"]), &host).expect_err("logs nope");
        assert_eq!(e, DeployError::NotFound("no such service: nope".into()));
        assert_eq!(log_targets(&labels_only(), &logs(&[]), &host).expect("all"), ["app", "db"]);
        assert_eq!(log_targets(&labels_only(), &logs(&["db"]), &host).expect("db"), ["db"]);
        assert!(host.ops.borrow().iter().all(|o| !o.starts_with("force-update")));
    }

    #[test]
    fn status_shows_counts_swarms_reason_and_health_from_labels_alone() {
        let why = "no suitable node (scheduling constraints not satisfied on 1 node)";
        let host = Fake::with(&[("db", Behaviour::Unschedulable(why.into())), ("app", Behaviour::NeverReady)]);
        up(&input(None), &UpOptions { wait: false, wait_timeout_ms: None }, &host).expect("up without waiting");
        let rows = status(&labels_only(), &host).expect("status");
        let got: Vec<(&str, &str, Option<&str>)> =
            rows.iter().map(|r| (r.service.as_str(), r.state.as_str(), r.health.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("app", "0/1 starting: starting", Some("starting")),
                ("db", "0/3 pending: no suitable node (scheduling constraints not satisfied on 1 node)", None),
            ]
        );
    }

    #[test]
    fn the_config_hash_is_stable_and_follows_the_spec() {
        let load_spec = |input: &ProjectInput| {
            let project = load(input, &Fake::default()).expect("load");
            spec(project.service("app").expect("app"))
        };
        let a = load_spec(&input(None));
        assert_eq!(a.config_hash, load_spec(&input(None)).config_hash);
        assert_eq!(a.config_hash.len(), 64);
        assert_ne!(a.config_hash, load_spec(&input(Some("debug"))).config_hash);
        let replicas = input_with(&file().replace("replicas: 3", "replicas: 2"), None);
        let project = load(&replicas, &Fake::default()).expect("load");
        let db = spec(project.service("db").expect("db"));
        let before = load(&input(None), &Fake::default()).expect("load");
        assert_ne!(db.config_hash, spec(before.service("db").expect("db")).config_hash);
    }

    /// `--publish-mode host` arrives as one more file with the `x-operator-swarm` extension:
    /// every port in host mode, the service found by DNS round robin; a restart of a stack
    /// deployed that way finds the spec it runs.
    #[test]
    fn publish_mode_host_publishes_every_port_on_its_node_and_restart_finds_it() {
        let mut with_flag = simple("app:1");
        with_flag.files[0].contents.push_str("    ports: [\"8080:80\"]\n");
        let plain = with_flag.clone();
        with_flag.files.push(ComposeFile {
            path: "(operator deploy swarm --publish-mode host)".into(),
            contents: "x-operator-swarm:\n  publish-mode: host\n".into(),
        });
        let host = Fake::default();
        up(&with_flag, &wait(), &host).expect("up");
        let app = host.spec("app");
        assert_eq!((app.endpoint_mode, app.ports[0].mode), (EndpointMode::Dnsrr, PublishMode::Host));
        let project = load(&plain, &host).expect("load");
        assert_eq!(project.service("app").expect("app").ports[0].container_port, 80);
        // Restarted without the flag, the service keeps what it runs.
        host.ops.borrow_mut().clear();
        restart(&plain, &[], &host).expect("restart");
        assert_eq!(*host.ops.borrow(), ["force-update app"]);
        // A bad value names the extension; an error never names the generated file.
        let mut bad = with_flag.clone();
        bad.files[1].contents = "x-operator-swarm:\n  publish-mode: mesh\n".into();
        let e = up(&bad, &wait(), &host).expect_err("bad mode");
        assert!(
            matches!(&e, DeployError::InvalidProject(m) if m.contains("x-operator-swarm.publish-mode")
                && m.starts_with("/proj/")),
            "{e:?}"
        );
    }
}
