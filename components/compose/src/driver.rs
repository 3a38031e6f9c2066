//! What `up`, `down`, `status`, `logs` and `restart` do, written against the [`Host`] trait:
//! the host's scoped Docker capability in the component, a fake engine in tests.
//!
//! `up` follows compose: pull missing images (before creating anything, so a missing image
//! leaves nothing behind), create the networks and volumes, then per service in dependency
//! order reuse an up-to-date container (same config hash), recreate a changed one, or create a
//! new one, wait for its dependencies' conditions, and start it. Waiting is event-driven: the
//! driver subscribes to the project's container events and re-checks on each event (or each
//! second). If `up` fails on a project that had no containers before, it removes what it made.

use std::collections::BTreeMap;

use crate::bindings::exports::operator::core::deployment_target::{
    DeployError, LogOptions, Project as ProjectInput, ServiceStatus, UpOptions,
};
use crate::bindings::operator::core::docker::{
    ContainerEvent, ContainerInfo, ContainerSpec, DockerError, Mount, NetworkAttachment, NetworkInfo, NetworkMode,
    Protocol, VolumeInfo, VolumeMount,
};
use crate::bindings::operator::core::log::Level;
use crate::bindings::operator::core::progress::Phase;
use crate::model::{Condition, Project, Service};
use crate::project;
use operator_rules::names;

/// What the driver needs from its host.
pub trait Host {
    fn create_network(&self, key: &str) -> Result<NetworkInfo, DockerError>;
    fn remove_network(&self, key: &str) -> Result<(), DockerError>;
    fn list_networks(&self) -> Result<Vec<NetworkInfo>, DockerError>;
    fn create_volume(&self, key: &str) -> Result<VolumeInfo, DockerError>;
    fn remove_volume(&self, key: &str) -> Result<(), DockerError>;
    fn list_volumes(&self) -> Result<Vec<VolumeInfo>, DockerError>;
    fn image_present(&self, image: &str) -> Result<bool, DockerError>;
    fn pull_image(&self, image: &str) -> Result<(), DockerError>;
    fn create_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo, DockerError>;
    fn start_container(&self, name: &str) -> Result<(), DockerError>;
    fn stop_container(&self, name: &str, timeout_ms: Option<u64>) -> Result<(), DockerError>;
    fn restart_container(&self, name: &str, timeout_ms: Option<u64>) -> Result<(), DockerError>;
    fn remove_container(&self, name: &str, volumes: bool) -> Result<(), DockerError>;
    fn inspect_container(&self, name: &str) -> Result<ContainerInfo, DockerError>;
    fn list_containers(&self) -> Result<Vec<ContainerInfo>, DockerError>;
    /// Waits up to `timeout_ms` for container events (after `subscribe`).
    fn next_events(&self, timeout_ms: u32) -> Result<Vec<ContainerEvent>, DockerError>;
    fn subscribe(&self) -> Result<(), DockerError>;
    fn now_ms(&self) -> u64;
    fn progress(&self, task: &str, phase: Phase, detail: &str);
    fn log(&self, level: Level, message: &str);
}

fn docker_error(e: DockerError) -> DeployError {
    DeployError::Docker(describe(&e))
}

pub use crate::project::describe;

/// Loads the project (the shared loader, [`project::load`]) and logs its warnings, plus one
/// per service that has a `deploy:` section, which only the Swarm driver uses.
pub fn load(input: &ProjectInput, host: &dyn Host) -> Result<Project, DeployError> {
    let mut warnings = Vec::new();
    let project = project::load(input, &mut warnings)?;
    for s in &project.services {
        if let Some(d) = &s.deploy {
            warnings.push(format!(
                "line {}: services.{}.deploy is used only by `operator deploy swarm`; ignored here",
                d.line, s.name
            ));
        }
    }
    for w in warnings {
        host.log(Level::Warn, &w);
    }
    Ok(project)
}

fn container_name(project: &str, s: &Service) -> String {
    s.container_name.clone().unwrap_or_else(|| names::container(project, &s.name, 1))
}

/// The `container-spec` for one service: the model already holds the contract's shapes, so
/// this adds only what depends on the project (the container name and compose's aliases).
pub fn spec(project: &str, s: &Service) -> ContainerSpec {
    let name = container_name(project, s);
    ContainerSpec {
        service: s.name.clone(),
        number: 1,
        container_name: s.container_name.clone(),
        image: s.image.clone(),
        command: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        environment: s.environment.clone(),
        labels: s.labels.clone(),
        ports: s.ports.clone(),
        mounts: s.mounts.clone(),
        network: match &s.network {
            NetworkMode::Networks(list) => NetworkMode::Networks(
                list.iter()
                    .map(|a| {
                        // Compose's aliases: the service name and the container name, plus any configured.
                        let mut aliases = vec![s.name.clone(), name.clone()];
                        aliases.extend(a.aliases.iter().cloned());
                        aliases.dedup();
                        NetworkAttachment { network: a.network.clone(), aliases }
                    })
                    .collect(),
            ),
            other => other.clone(),
        },
        healthcheck: s.healthcheck.clone(),
        restart: s.restart,
        hostname: s.hostname.clone(),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        config_hash: s.config_hash(),
        depends_on: s
            .depends_on
            .iter()
            .map(|d| format!("{}:{}:{}", d.service, d.condition.name(), d.restart))
            .collect(),
        stop_grace_period_ms: s.stop_grace_period_ms,
        stop_signal: s.stop_signal.clone(),
        ulimits: s.ulimits.clone(),
        extra_hosts: s.extra_hosts.clone(),
        privileged: s.privileged,
        cap_add: s.cap_add.clone(),
        devices: s.devices.clone(),
        pid_host: s.pid_host,
        ipc: s.ipc,
    }
}

/// Where a waited-for container must get to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Healthy,
    RunningOrHealthy,
    ExitedZero,
}

/// One check of a container against a goal.
enum Check {
    Done,
    Pending,
    Failed(String),
}

fn check(c: &ContainerInfo, goal: Goal) -> Check {
    let exited = matches!(c.state.as_str(), "exited" | "dead");
    match goal {
        Goal::ExitedZero if exited => match c.exit_code {
            Some(0) => Check::Done,
            code => Check::Failed(format!(
                "service \"{}\" didn't complete successfully: exit {}",
                c.service,
                code.unwrap_or(-1)
            )),
        },
        Goal::ExitedZero => Check::Pending,
        _ if exited => Check::Failed(format!("container {} exited ({})", c.name, c.exit_code.unwrap_or(-1))),
        Goal::Healthy | Goal::RunningOrHealthy => match c.health.as_deref() {
            Some("healthy") => Check::Done,
            Some("unhealthy") => Check::Failed(format!("container {} is unhealthy", c.name)),
            Some(_) => Check::Pending,
            None if goal == Goal::Healthy => {
                Check::Failed(format!("container {} has no healthcheck configured", c.name))
            }
            None => {
                if c.state == "running" {
                    Check::Done
                } else {
                    Check::Pending
                }
            }
        },
    }
}

/// Waits until every target reaches its goal, failing fast, bounded by `deadline_ms`.
fn wait(host: &dyn Host, targets: &[(String, Goal)], deadline_ms: Option<u64>, what: &str) -> Result<(), DeployError> {
    let mut pending: Vec<(String, Goal)> = targets.to_vec();
    loop {
        let mut still = Vec::new();
        for (name, goal) in pending {
            let c = host.inspect_container(&name).map_err(docker_error)?;
            match check(&c, goal) {
                Check::Done => {
                    let detail = c.health.clone().unwrap_or_else(|| c.state.clone());
                    host.progress(&format!("Container {name}"), Phase::Done, &detail);
                }
                Check::Pending => still.push((name, goal)),
                Check::Failed(msg) => {
                    host.progress(&format!("Container {name}"), Phase::Failed, &msg);
                    return Err(DeployError::Unhealthy(msg));
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
                let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
                return Err(DeployError::Timeout(format!("{what} ({} not ready)", names.join(", "))));
            }
            Some(d) => d - now,
            None => u64::MAX,
        };
        // Woken by the next state or health change, or after a second at most.
        host.next_events(remaining.min(1000) as u32).map_err(docker_error)?;
    }
}

fn status_of(c: &ContainerInfo) -> ServiceStatus {
    ServiceStatus {
        service: c.service.clone(),
        container: c.name.clone(),
        state: c.state.clone(),
        health: c.health.clone(),
        ports: c
            .ports
            .iter()
            .filter_map(|p| {
                p.host_port.map(|h| {
                    let ip = p.host_ip.as_deref().unwrap_or("0.0.0.0");
                    let proto = match p.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                        Protocol::Sctp => "sctp",
                    };
                    format!("{ip}:{h}->{}/{proto}", p.container_port)
                })
            })
            .collect(),
    }
}

/// `up`.
pub fn up(input: &ProjectInput, options: &UpOptions, host: &dyn Host) -> Result<Vec<ServiceStatus>, DeployError> {
    let project = load(input, host)?;
    let existing = host.list_containers().map_err(docker_error)?;
    for c in &existing {
        if project.service(&c.service).is_none() {
            host.log(
                Level::Warn,
                &format!(
                    "found orphan container {} of service {} that is no longer in the compose file; `down` removes it",
                    c.name, c.service
                ),
            );
        }
    }

    // Images first: a missing image fails the whole `up` before anything is created.
    let mut images: Vec<&str> = project.services.iter().map(|s| s.image.as_str()).collect();
    images.sort();
    images.dedup();
    for image in images {
        if !host.image_present(image).map_err(docker_error)? {
            host.progress(&format!("Image {image}"), Phase::Pulling, "");
            if let Err(e) = host.pull_image(image) {
                host.progress(&format!("Image {image}"), Phase::Failed, &describe(&e));
                return Err(docker_error(e));
            }
            host.progress(&format!("Image {image}"), Phase::Done, "pulled");
        }
    }

    let fresh = existing.is_empty();
    let networks_before: Vec<String> = host.list_networks().map_err(docker_error)?.into_iter().map(|n| n.key).collect();
    let volumes_before: Vec<String> = host.list_volumes().map_err(docker_error)?.into_iter().map(|v| v.key).collect();
    host.subscribe().map_err(docker_error)?;
    let deadline = options.wait_timeout_ms.map(|t| host.now_ms() + t);
    let result = converge(input, &project, &existing, options, deadline, host);
    if result.is_err() && fresh {
        host.log(Level::Warn, "up failed on a new project: removing what it created");
        roll_back(host, &networks_before, &volumes_before);
    }
    result
}

fn converge(
    input: &ProjectInput,
    project: &Project,
    existing: &[ContainerInfo],
    options: &UpOptions,
    deadline: Option<u64>,
    host: &dyn Host,
) -> Result<Vec<ServiceStatus>, DeployError> {
    let mut networks: Vec<&str> = project
        .services
        .iter()
        .flat_map(|s| match &s.network {
            NetworkMode::Networks(list) => list.iter().map(|a| a.network.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    networks.sort();
    networks.dedup();
    let existing_networks: Vec<String> =
        host.list_networks().map_err(docker_error)?.into_iter().map(|n| n.key).collect();
    for key in networks {
        let task = format!("Network {}", names::resource(&input.name, key));
        if existing_networks.iter().any(|k| k == key) {
            host.progress(&task, Phase::Done, "exists");
            continue;
        }
        host.progress(&task, Phase::Creating, "");
        host.create_network(key).map_err(docker_error)?;
        host.progress(&task, Phase::Done, "created");
    }
    let existing_volumes: Vec<String> = host.list_volumes().map_err(docker_error)?.into_iter().map(|v| v.key).collect();
    let mut volumes: Vec<&str> = project
        .services
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
        let existed = existing_volumes.iter().any(|k| k == key);
        host.create_volume(key).map_err(docker_error)?;
        host.progress(
            &format!("Volume {}", names::resource(&input.name, key)),
            Phase::Done,
            if existed { "exists" } else { "created" },
        );
    }

    // Services a `service_completed_successfully` dependency waits on are one-shot jobs.
    let jobs: Vec<&str> = project
        .services
        .iter()
        .flat_map(|s| s.depends_on.iter())
        .filter(|d| d.condition == Condition::CompletedSuccessfully)
        .map(|d| d.service.as_str())
        .collect();

    for s in project.ordered() {
        let name = container_name(&input.name, s);
        let task = format!("Container {name}");
        let spec = spec(&input.name, s);
        let current = existing.iter().find(|c| c.name == name);
        let fresh_container = match current {
            Some(c) if c.config_hash == spec.config_hash => false,
            Some(c) => {
                host.progress(&task, Phase::Creating, "recreating (configuration changed)");
                host.stop_container(&c.name, s.stop_grace_period_ms).map_err(docker_error)?;
                host.remove_container(&c.name, false).map_err(docker_error)?;
                true
            }
            None => true,
        };
        if fresh_container {
            host.progress(&task, Phase::Creating, "");
            host.create_container(&spec).map_err(docker_error)?;
        }

        for d in &s.depends_on {
            let Some(dep) = project.service(&d.service) else { continue };
            let goal = match d.condition {
                Condition::Started => continue,
                Condition::Healthy => Goal::Healthy,
                Condition::CompletedSuccessfully => Goal::ExitedZero,
            };
            host.progress(&task, Phase::Waiting, &format!("for {} ({})", d.service, d.condition.name()));
            let target = vec![(container_name(&input.name, dep), goal)];
            if let Err(e) = wait(host, &target, deadline, "timeout waiting for dependencies") {
                if d.required {
                    host.progress(&task, Phase::Failed, "dependency failed to start");
                    return Err(match e {
                        DeployError::Unhealthy(m) => DeployError::Unhealthy(format!("dependency failed to start: {m}")),
                        other => other,
                    });
                }
                host.log(Level::Warn, &format!("optional dependency {} of {} failed; continuing", d.service, s.name));
            }
        }

        let state = host.inspect_container(&name).map_err(docker_error)?;
        let finished_job = jobs.contains(&s.name.as_str())
            && state.state == "exited"
            && state.exit_code == Some(0)
            && !fresh_container;
        let was_running = state.state == "running";
        if !was_running && !finished_job {
            host.progress(&task, Phase::Starting, "");
            host.start_container(&name).map_err(docker_error)?;
        }
        if options.wait {
            host.progress(&task, Phase::Waiting, "");
        } else {
            host.progress(&task, Phase::Done, if was_running && !fresh_container { "up to date" } else { "started" });
        }
    }

    if options.wait {
        let targets: Vec<(String, Goal)> = project
            .services
            .iter()
            .map(|s| {
                let goal = if jobs.contains(&s.name.as_str()) { Goal::ExitedZero } else { Goal::RunningOrHealthy };
                (container_name(&input.name, s), goal)
            })
            .collect();
        let what = match options.wait_timeout_ms {
            Some(t) => format!("application not healthy after {}", human_ms(t)),
            None => "application not healthy".into(),
        };
        wait(host, &targets, deadline, &what)?;
    }
    status(input, host)
}

fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// Removes what a failed `up` created on a new project: its containers, and the networks and
/// volumes that were not there before.
fn roll_back(host: &dyn Host, networks_before: &[String], volumes_before: &[String]) {
    if let Ok(containers) = host.list_containers() {
        for c in containers {
            let _ = host.remove_container(&c.name, true);
            host.progress(&format!("Container {}", c.name), Phase::Removing, "rolled back");
        }
    }
    if let Ok(networks) = host.list_networks() {
        for n in networks.iter().filter(|n| !networks_before.contains(&n.key)) {
            let _ = host.remove_network(&n.key);
        }
    }
    if let Ok(volumes) = host.list_volumes() {
        for v in volumes.iter().filter(|v| !volumes_before.contains(&v.key)) {
            let _ = host.remove_volume(&v.key);
        }
    }
}

/// `status`: the project's containers, sorted by service.
pub fn status(_input: &ProjectInput, host: &dyn Host) -> Result<Vec<ServiceStatus>, DeployError> {
    let mut list: Vec<ServiceStatus> = host.list_containers().map_err(docker_error)?.iter().map(status_of).collect();
    list.sort_by(|a, b| (&a.service, &a.container).cmp(&(&b.service, &b.container)));
    Ok(list)
}

/// Orders containers so that each comes before the services it depends on (for stopping),
/// using the dependency labels recorded at creation: `down` works without the compose file.
fn reverse_dependency_order(containers: Vec<ContainerInfo>) -> Vec<ContainerInfo> {
    let deps: BTreeMap<String, Vec<String>> = containers
        .iter()
        .map(|c| {
            (c.service.clone(), c.depends_on.iter().filter_map(|d| d.split(':').next().map(String::from)).collect())
        })
        .collect();
    let mut started: Vec<String> = Vec::new();
    while started.len() < deps.len() {
        let before = started.len();
        for (svc, ds) in &deps {
            if !started.contains(svc) && ds.iter().all(|d| started.contains(d) || !deps.contains_key(d)) {
                started.push(svc.clone());
            }
        }
        if started.len() == before {
            started.extend(deps.keys().filter(|s| !started.contains(s)).cloned().collect::<Vec<_>>());
        }
    }
    started.reverse();
    let mut out = containers;
    out.sort_by_key(|c| started.iter().position(|s| *s == c.service).unwrap_or(usize::MAX));
    out
}

/// `down`: stop and remove the project's containers (dependents first), remove its networks,
/// and its volumes only when asked. Works from labels alone.
pub fn down(input: &ProjectInput, remove_volumes: bool, host: &dyn Host) -> Result<(), DeployError> {
    let grace: BTreeMap<String, Option<u64>> = match input.files.is_empty() {
        true => BTreeMap::new(),
        false => load(input, host)
            .map(|p| p.services.iter().map(|s| (s.name.clone(), s.stop_grace_period_ms)).collect())
            .unwrap_or_default(),
    };
    let containers = reverse_dependency_order(host.list_containers().map_err(docker_error)?);
    let networks = host.list_networks().map_err(docker_error)?;
    let volumes = if remove_volumes { host.list_volumes().map_err(docker_error)? } else { Vec::new() };
    if containers.is_empty() && networks.is_empty() && volumes.is_empty() {
        host.log(Level::Warn, &format!("no resource found to remove for project {}", input.name));
        return Ok(());
    }
    for c in &containers {
        let task = format!("Container {}", c.name);
        if c.state == "running" || c.state == "restarting" {
            host.progress(&task, Phase::Stopping, "");
            host.stop_container(&c.name, grace.get(&c.service).copied().flatten()).map_err(docker_error)?;
        }
        host.progress(&task, Phase::Removing, "");
        host.remove_container(&c.name, remove_volumes).map_err(docker_error)?;
        host.progress(&task, Phase::Done, "removed");
    }
    let mut keys: Vec<&NetworkInfo> = networks.iter().collect();
    keys.dedup_by(|a, b| a.key == b.key);
    for n in keys {
        let task = format!("Network {}", n.name);
        match host.remove_network(&n.key) {
            Ok(()) | Err(DockerError::NotFound(_)) => host.progress(&task, Phase::Done, "removed"),
            Err(DockerError::Conflict(m)) => host.log(Level::Warn, &format!("network {} is still in use: {m}", n.name)),
            Err(e) => return Err(docker_error(e)),
        }
    }
    for v in &volumes {
        host.remove_volume(&v.key).map_err(docker_error)?;
        host.progress(&format!("Volume {}", v.name), Phase::Done, "removed");
    }
    Ok(())
}

/// The containers whose logs `logs` shows.
pub fn log_targets(input: &ProjectInput, options: &LogOptions, host: &dyn Host) -> Result<Vec<String>, DeployError> {
    let containers = host.list_containers().map_err(docker_error)?;
    for s in &options.services {
        let known = containers.iter().any(|c| &c.service == s)
            || (!input.files.is_empty() && load(input, host).is_ok_and(|p| p.service(s).is_some()));
        if !known {
            return Err(DeployError::NotFound(format!("no such service: {s}")));
        }
    }
    let mut names: Vec<(String, String)> = containers
        .into_iter()
        .filter(|c| options.services.is_empty() || options.services.contains(&c.service))
        .map(|c| (c.service, c.name))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// `restart`: the named services (all when empty) in dependency order, plus the services that
/// depend on them with `restart: true`.
pub fn restart(input: &ProjectInput, services: &[String], host: &dyn Host) -> Result<(), DeployError> {
    let project = if input.files.is_empty() { None } else { Some(load(input, host)?) };
    let containers = host.list_containers().map_err(docker_error)?;
    for s in services {
        let known =
            project.as_ref().is_some_and(|p| p.service(s).is_some()) || containers.iter().any(|c| &c.service == s);
        if !known {
            return Err(DeployError::NotFound(format!("no such service: {s}")));
        }
    }
    let mut chosen: Vec<String> =
        if services.is_empty() { containers.iter().map(|c| c.service.clone()).collect() } else { services.to_vec() };
    if let Some(p) = &project {
        // Dependents with `restart: true` follow.
        loop {
            let extra: Vec<String> = p
                .services
                .iter()
                .filter(|s| !chosen.contains(&s.name))
                .filter(|s| s.depends_on.iter().any(|d| d.restart && chosen.contains(&d.service)))
                .map(|s| s.name.clone())
                .collect();
            if extra.is_empty() {
                break;
            }
            chosen.extend(extra);
        }
    }
    let order: Vec<String> = match &project {
        Some(p) => p.ordered().iter().map(|s| s.name.clone()).filter(|n| chosen.contains(n)).collect(),
        None => chosen,
    };
    for svc in order {
        let grace = project.as_ref().and_then(|p| p.service(&svc)).and_then(|s| s.stop_grace_period_ms);
        for c in containers.iter().filter(|c| c.service == svc) {
            let task = format!("Container {}", c.name);
            host.progress(&task, Phase::Starting, "restarting");
            host.restart_container(&c.name, grace).map_err(docker_error)?;
            host.progress(&task, Phase::Done, "restarted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::bindings::exports::operator::core::deployment_target::ComposeFile;

    /// An in-memory engine: containers start healthy at once (or as `sick` says).
    #[derive(Default)]
    struct Fake {
        containers: RefCell<Vec<ContainerInfo>>,
        networks: RefCell<Vec<String>>,
        volumes: RefCell<Vec<String>>,
        images: Vec<String>,
        sick: Vec<String>,
        ops: RefCell<Vec<String>>,
        logs: RefCell<Vec<String>>,
        next_id: RefCell<u32>,
    }

    impl Fake {
        fn op(&self, s: String) {
            self.ops.borrow_mut().push(s);
        }
        fn ids(&self) -> Vec<String> {
            self.containers.borrow().iter().map(|c| c.id.clone()).collect()
        }
    }

    impl Host for Fake {
        fn create_network(&self, key: &str) -> Result<NetworkInfo, DockerError> {
            self.networks.borrow_mut().push(key.into());
            Ok(NetworkInfo { key: key.into(), name: names::resource("p", key), id: key.into() })
        }
        fn remove_network(&self, key: &str) -> Result<(), DockerError> {
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
            if !self.volumes.borrow().contains(&key.to_string()) {
                self.volumes.borrow_mut().push(key.into());
            }
            Ok(VolumeInfo { key: key.into(), name: names::resource("p", key) })
        }
        fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
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
        fn pull_image(&self, image: &str) -> Result<(), DockerError> {
            Err(DockerError::ImageUnavailable(format!("image {image} is not present and cannot be pulled")))
        }
        fn create_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo, DockerError> {
            let name = spec.container_name.clone().unwrap_or_else(|| names::container("p", &spec.service, spec.number));
            *self.next_id.borrow_mut() += 1;
            let c = ContainerInfo {
                id: format!("id{}", self.next_id.borrow()),
                name: name.clone(),
                service: spec.service.clone(),
                number: 1,
                image: spec.image.clone(),
                state: "created".into(),
                health: None,
                exit_code: None,
                status: String::new(),
                ports: vec![],
                config_hash: spec.config_hash.clone(),
                depends_on: spec.depends_on.clone(),
            };
            self.op(format!("create {name}"));
            self.containers.borrow_mut().push(c.clone());
            Ok(c)
        }
        fn start_container(&self, name: &str) -> Result<(), DockerError> {
            self.op(format!("start {name}"));
            for c in self.containers.borrow_mut().iter_mut().filter(|c| c.name == name) {
                c.state = "running".into();
                c.health = Some(if self.sick.contains(&c.service) { "unhealthy" } else { "healthy" }.into());
            }
            Ok(())
        }
        fn stop_container(&self, name: &str, _t: Option<u64>) -> Result<(), DockerError> {
            self.op(format!("stop {name}"));
            for c in self.containers.borrow_mut().iter_mut().filter(|c| c.name == name) {
                c.state = "exited".into();
            }
            Ok(())
        }
        fn restart_container(&self, name: &str, _t: Option<u64>) -> Result<(), DockerError> {
            self.op(format!("restart {name}"));
            Ok(())
        }
        fn remove_container(&self, name: &str, _v: bool) -> Result<(), DockerError> {
            self.op(format!("remove {name}"));
            self.containers.borrow_mut().retain(|c| c.name != name);
            Ok(())
        }
        fn inspect_container(&self, name: &str) -> Result<ContainerInfo, DockerError> {
            self.containers
                .borrow()
                .iter()
                .find(|c| c.name == name)
                .cloned()
                .ok_or_else(|| DockerError::NotFound(name.into()))
        }
        fn list_containers(&self) -> Result<Vec<ContainerInfo>, DockerError> {
            Ok(self.containers.borrow().clone())
        }
        fn next_events(&self, _timeout_ms: u32) -> Result<Vec<ContainerEvent>, DockerError> {
            Ok(vec![])
        }
        fn subscribe(&self) -> Result<(), DockerError> {
            Ok(())
        }
        fn now_ms(&self) -> u64 {
            0
        }
        fn progress(&self, _task: &str, _phase: Phase, _detail: &str) {}
        fn log(&self, _level: Level, message: &str) {
            self.logs.borrow_mut().push(message.into());
        }
    }

    const FILE: &str = r#"
services:
  db:
    image: db:1
    healthcheck: { test: [CMD, check] }
    volumes: ["data:/data"]
  app:
    image: app:1
    environment: { MODE: "${MODE:-normal}" }
    depends_on:
      db: { condition: service_healthy }
volumes:
  data:
"#;

    fn input(mode: Option<&str>) -> ProjectInput {
        ProjectInput {
            name: "p".into(),
            directory: "/proj".into(),
            files: vec![ComposeFile { path: "/proj/docker-compose.yaml".into(), contents: FILE.into() }],
            env_file: None,
            environment: mode.map(|m| vec![("MODE".to_string(), m.to_string())]).unwrap_or_default(),
        }
    }

    fn fake() -> Fake {
        Fake { images: vec!["db:1".into(), "app:1".into()], ..Fake::default() }
    }

    fn wait() -> UpOptions {
        UpOptions { wait: true, wait_timeout_ms: Some(1000) }
    }

    #[test]
    fn up_creates_in_dependency_order_and_a_second_up_changes_nothing() {
        let host = fake();
        let statuses = up(&input(None), &wait(), &host).expect("up");
        assert_eq!(statuses.len(), 2);
        assert_eq!(*host.ops.borrow(), ["create p-db-1", "start p-db-1", "create p-app-1", "start p-app-1"]);
        assert_eq!(*host.networks.borrow(), ["default"]);
        assert_eq!(*host.volumes.borrow(), ["data"]);
        let ids = host.ids();
        host.ops.borrow_mut().clear();
        up(&input(None), &wait(), &host).expect("up again");
        assert!(host.ops.borrow().is_empty(), "{:?}", host.ops.borrow());
        assert_eq!(host.ids(), ids);
    }

    #[test]
    fn a_changed_service_is_recreated_and_the_rest_reused() {
        let host = fake();
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        up(&input(Some("debug")), &wait(), &host).expect("up with a changed environment");
        assert_eq!(*host.ops.borrow(), ["stop p-app-1", "remove p-app-1", "create p-app-1", "start p-app-1"]);
    }

    #[test]
    fn a_failed_up_on_a_new_project_leaves_nothing() {
        let host = Fake { sick: vec!["db".into()], ..fake() };
        let e = up(&input(None), &wait(), &host).expect_err("db is unhealthy");
        assert_eq!(e, DeployError::Unhealthy("dependency failed to start: container p-db-1 is unhealthy".into()));
        assert!(host.containers.borrow().is_empty());
        assert!(host.networks.borrow().is_empty());
        assert!(host.volumes.borrow().is_empty());
    }

    #[test]
    fn a_missing_image_fails_before_anything_is_created() {
        let host = Fake { images: vec!["db:1".into()], ..Fake::default() };
        let e = up(&input(None), &wait(), &host).expect_err("no app image");
        assert!(matches!(&e, DeployError::Docker(m) if m.contains("app:1")), "{e:?}");
        assert!(host.ops.borrow().is_empty());
        assert!(host.networks.borrow().is_empty());
    }

    #[test]
    fn down_stops_dependents_first_and_keeps_volumes_unless_asked() {
        let host = fake();
        up(&input(None), &wait(), &host).expect("up");
        host.ops.borrow_mut().clear();
        let labels_only = ProjectInput { files: vec![], ..input(None) };
        down(&labels_only, false, &host).expect("down");
        assert_eq!(*host.ops.borrow(), ["stop p-app-1", "remove p-app-1", "stop p-db-1", "remove p-db-1"]);
        assert!(host.networks.borrow().is_empty());
        assert_eq!(*host.volumes.borrow(), ["data"]);
        down(&labels_only, true, &host).expect("down -v");
        assert!(host.volumes.borrow().is_empty());
    }

    #[test]
    fn containers_get_compose_aliases_and_a_stable_hash() {
        let project = load(&input(None), &fake()).expect("load");
        let s = spec("p", project.service("app").expect("app"));
        let NetworkMode::Networks(networks) = &s.network else { panic!("project networks") };
        assert_eq!(networks[0].aliases, vec!["app".to_string(), "p-app-1".to_string()]);
        assert_eq!(s.depends_on, vec!["db:service_healthy:false".to_string()]);
        assert_eq!(s.environment, vec![("MODE".to_string(), "normal".to_string())]);
    }

    #[test]
    fn deploy_is_left_to_swarm_with_one_warning_per_service() {
        let file = "services:\n  a:\n    image: db:1\n    deploy: { replicas: 3 }\n  b:\n    image: app:1\n    deploy:\n      resources: { limits: { cpus: \"0.5\" } }\n";
        let host = fake();
        let with_deploy = ProjectInput {
            files: vec![ComposeFile { path: "/proj/docker-compose.yaml".into(), contents: file.into() }],
            ..input(None)
        };
        let project = load(&with_deploy, &host).expect("load");
        // A block mapping's line is its first entry's, as in every model message.
        assert_eq!(
            *host.logs.borrow(),
            [
                "line 4: services.a.deploy is used only by `operator deploy swarm`; ignored here",
                "line 8: services.b.deploy is used only by `operator deploy swarm`; ignored here",
            ]
        );
        // One container per service whatever `replicas` says.
        assert_eq!(spec("p", project.service("a").expect("a")).number, 1);
    }
}
