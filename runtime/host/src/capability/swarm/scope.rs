//! The stack-scoped Swarm capability.
//!
//! A Swarm driver is started for one stack, named by the operator (`-p`, else the subject),
//! never by the compose file. Everything the host creates carries the stack's label
//! (`com.docker.stack.namespace`, so `docker stack ps <stack>` and `docker service ls` show it)
//! and the host's own ownership label [`labels::OWNER`]; the host sees and touches only what
//! carries both, and refuses a stack holding anything it did not create (a `docker stack deploy`
//! of the same name). The ownership label is not compose's: a compose project of the same name
//! (`deploy local`) names its volumes the same way (`<name>_<key>`), and its volume is refused as
//! another owner's, never adopted with its data.
//!
//! Names are derived here (`<stack>_<key>`) and checked back against the labels. Services are
//! planned by [`super::plan`] with the container rules; their images must come from a registry
//! the manifest allows, since every node pulls what it does not have.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::engine::{ServiceView, SwarmEngine, TaskView};
use super::plan::{ServicePlan, plan};
use crate::bindings::swarm::ServiceSpec;
use crate::capability::docker::binds::BindRules;
use crate::capability::docker::engine::{EngineError, NetworkView, VolumeView};
use crate::capability::docker::grants::DockerGrants;
use crate::capability::docker::image::{ImageRef, normalize_registry};
use crate::capability::docker::plan::Planner;
use crate::capability::docker::scope::valid_key;
use crate::capability::docker::streams::{self, LogSource, LogStream};
use crate::capability::docker::{DockerError, Project};

/// Label keys: the stack's (as `docker stack deploy` writes them) and the host's.
pub mod labels {
    /// The stack a service, network or volume belongs to.
    pub const NAMESPACE: &str = "com.docker.stack.namespace";
    /// The image a service was deployed with.
    pub const STACK_IMAGE: &str = "com.docker.stack.image";
    /// Set by this host on everything it creates for a stack: the stack that owns it.
    pub const OWNER: &str = "dev.operator.stack";
    /// The canonical subject folder it was created from.
    pub const FOLDER: &str = "dev.operator.folder";
    /// The key of a service, network or volume inside its stack.
    pub const SERVICE: &str = "dev.operator.service";
    pub const NETWORK: &str = "dev.operator.network";
    pub const VOLUME: &str = "dev.operator.volume";
    /// The driver's hash of a service's configuration.
    pub const CONFIG_HASH: &str = "dev.operator.config-hash";
    /// `true` when a service's tasks have a healthcheck. Recorded at creation: the client
    /// library cannot read a service's healthcheck back (the engine spells it `Healthcheck`).
    pub const HEALTHCHECK: &str = "dev.operator.healthcheck";
}

/// Services one stack may have.
pub const MAX_SERVICES: usize = 64;
/// Networks one stack may have.
pub const MAX_NETWORKS: usize = 8;
/// Volumes one stack may have.
pub const MAX_VOLUMES: usize = 256;
/// Tasks one stack may run (replicas summed; a global service counts one per node), as many
/// as a compose project may have containers.
pub const MAX_TASKS: usize = crate::capability::docker::scope::MAX_CONTAINERS;
/// Ports one stack may publish (each on every node).
pub const MAX_PUBLISHED_PORTS: usize = crate::capability::docker::scope::MAX_PUBLISHED_PORTS;
/// How long removing a service waits for its containers on this node to go.
pub const REMOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// A service of the stack, as the driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StackService {
    pub key: String,
    pub view: ServiceView,
}

/// A task of the stack, with its service's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackTask {
    pub service: String,
    pub view: TaskView,
}

/// The Swarm capability of one deployment driver, scoped to one stack.
pub struct ScopedSwarm {
    engine: Arc<dyn SwarmEngine>,
    /// The stack, in the container scope's terms (its name is the stack's).
    stack: Project,
    grants: DockerGrants,
    binds: BindRules,
    read_only: bool,
}

impl std::fmt::Debug for ScopedSwarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedSwarm")
            .field("engine", &self.engine.describe())
            .field("stack", &self.stack.name)
            .field("dir", &self.stack.dir)
            .finish()
    }
}

fn key(what: &str, key: &str) -> Result<(), DockerError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(DockerError::Invalid(format!(
            "{what} `{}` is not a valid name (letters, digits, `_`, `.`, `-`)",
            crate::text::escape(key)
        )))
    }
}

impl ScopedSwarm {
    /// A capability for `stack` once the host has checked that the stack is its to act on:
    /// its folder is not inside the engine's data root and it holds nothing the host did not
    /// create.
    pub async fn open(engine: Arc<dyn SwarmEngine>, stack: Project, grants: DockerGrants) -> Result<Self, DockerError> {
        let root = engine.data_root().await?;
        let root = root.map(|r| r.canonicalize().unwrap_or(r));
        if let Some(r) = root.as_ref().filter(|r| stack.dir.starts_with(r)) {
            return Err(DockerError::Denied {
                reason: format!(
                    "the stack folder {} lies inside Docker's data root {}, which containers write",
                    stack.dir.display(),
                    r.display()
                ),
                hint: "keep subjects outside the engine's data root".into(),
            });
        }
        let binds = BindRules { project_dir: stack.dir.clone(), engine: engine.location(), data_root: root };
        let swarm = ScopedSwarm { engine, stack, grants, binds, read_only: false };
        swarm.check_ownership().await?;
        Ok(swarm)
    }

    /// The same capability, limited to reading (status, logs).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The stack's name.
    pub fn stack(&self) -> &str {
        &self.stack.name
    }

    fn writable(&self, what: &str) -> Result<(), DockerError> {
        if !self.read_only {
            return Ok(());
        }
        Err(DockerError::Denied {
            reason: format!("{what} changes the stack, and this call may only read it (status, logs)"),
            hint: "change the stack through `operator deploy swarm up|down|restart`".into(),
        })
    }

    fn namespace_filter(&self) -> Vec<String> {
        vec![format!("{}={}", labels::NAMESPACE, self.stack.name)]
    }

    fn owner_filter(&self) -> Vec<String> {
        vec![format!("{}={}", labels::NAMESPACE, self.stack.name), format!("{}={}", labels::OWNER, self.stack.name)]
    }

    fn owned_labels(&self, kind_label: &str, key: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::NAMESPACE.to_string(), self.stack.name.clone()),
            (labels::OWNER.to_string(), self.stack.name.clone()),
            (labels::FOLDER.to_string(), self.stack.dir.display().to_string()),
            (kind_label.to_string(), key.to_string()),
        ])
    }

    fn is_ours(&self, l: &BTreeMap<String, String>, kind_label: &str, key: &str) -> bool {
        l.get(labels::NAMESPACE) == Some(&self.stack.name)
            && l.get(labels::OWNER) == Some(&self.stack.name)
            && l.get(kind_label).map(String::as_str) == Some(key)
    }

    fn foreign(&self, what: &str, name: &str, l: &BTreeMap<String, String>) -> DockerError {
        use crate::capability::docker::scope::labels as compose;
        let owner = match (l.get(labels::OWNER), l.get(labels::NAMESPACE), l.get(compose::PROJECT)) {
            (Some(o), _, _) => format!("it belongs to stack {o}"),
            (None, Some(s), _) => format!("it belongs to stack {s}, which operator did not create"),
            (None, None, Some(p)) => format!(
                "it belongs to compose project {p} (`operator deploy local` or `docker compose`); take that down first \
                 (`operator deploy local down {p} --volumes` removes its data) or deploy the stack under another name \
                 with -p"
            ),
            (None, None, None) => "operator did not create it".to_string(),
        };
        DockerError::conflict(format!("a {what} named {name} exists but is not stack {}'s: {owner}", self.stack.name))
    }

    /// Refuses a stack that holds services, networks or volumes the host did not create, and
    /// one deployed from another subject folder unless the user named the stack (`-p`): a
    /// folder of the same name elsewhere does not get the stack (nor its volumes).
    async fn check_ownership(&self) -> Result<(), DockerError> {
        let filter = self.namespace_filter();
        let folder = self.stack.dir.display().to_string();
        let mut foreign = Vec::new();
        let mut other_folder: Option<String> = None;
        let mut sort = |what: &str, name: &str, l: &BTreeMap<String, String>| {
            if l.get(labels::OWNER) != Some(&self.stack.name) {
                foreign.push(format!("{what} {name}"));
            } else if let Some(f) = l.get(labels::FOLDER).filter(|f| **f != folder) {
                other_folder.get_or_insert(f.clone());
            }
        };
        // Listing services needs a swarm; without one there are none to own.
        if self.active().await? {
            for s in self.engine.list_services(&filter).await? {
                sort("service", &s.name, &s.labels);
            }
        }
        for n in self.engine.list_networks(&filter).await? {
            sort("network", &n.name, &n.labels);
        }
        for v in self.engine.list_volumes(&filter).await? {
            sort("volume", &v.name, &v.labels);
        }
        if let Some(f) = other_folder.filter(|_| foreign.is_empty() && !self.stack.named) {
            return Err(DockerError::conflict(format!(
                "stack {} was deployed from {}, not from this subject ({}): another subject of the same name does \
                 not get it; pass -p {} to act on it from here",
                self.stack.name,
                crate::text::escape(&f),
                self.stack.dir.display(),
                self.stack.name
            )));
        }
        if foreign.is_empty() {
            return Ok(());
        }
        let shown = foreign.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
        Err(DockerError::conflict(format!(
            "stack {} holds resources operator did not create ({shown}{more}); operator acts only on stacks it owns: \
             remove them (`docker stack rm {}`) or choose another name with -p",
            self.stack.name, self.stack.name
        )))
    }

    /// Refuses a service that would take the stack past its caps on tasks and published ports
    /// (the project's caps for containers and ports: each task is a container on some node).
    async fn within_caps(&self, spec: &ServiceSpec, others: &[StackService]) -> Result<(), DockerError> {
        let nodes = self.engine.swarm_state().await?.nodes.and_then(|n| usize::try_from(n).ok()).unwrap_or(1).max(1);
        let tasks = |mode: Option<&::bollard::models::ServiceSpecMode>| match mode {
            Some(m) if m.global.is_some() => nodes,
            Some(m) => {
                m.replicated.as_ref().and_then(|r| r.replicas).and_then(|n| usize::try_from(n).ok()).unwrap_or(1)
            }
            None => 1,
        };
        let others: Vec<&StackService> = others.iter().filter(|o| o.key != spec.service).collect();
        let mine = match spec.mode {
            crate::bindings::swarm::ServiceMode::Replicated(n) => n as usize,
            crate::bindings::swarm::ServiceMode::Global => nodes,
        };
        let total = mine + others.iter().map(|o| tasks(o.view.spec.mode.as_ref())).sum::<usize>();
        if total > MAX_TASKS {
            return Err(DockerError::LimitExceeded(format!(
                "stack {} would run {total} tasks, the most a stack may run being {MAX_TASKS}",
                self.stack.name
            )));
        }
        let ports = spec.ports.len()
            + others
                .iter()
                .map(|o| o.view.spec.endpoint_spec.as_ref().and_then(|e| e.ports.as_ref()).map_or(0, Vec::len))
                .sum::<usize>();
        if ports > MAX_PUBLISHED_PORTS {
            return Err(DockerError::LimitExceeded(format!(
                "stack {} would publish {ports} ports, the most a stack may publish being {MAX_PUBLISHED_PORTS}",
                self.stack.name
            )));
        }
        Ok(())
    }

    /// Whether the engine is an active swarm node that can manage services.
    pub async fn active(&self) -> Result<bool, DockerError> {
        let state = self.engine.swarm_state().await?;
        Ok(state.local_node_state == "active" && state.manager)
    }

    async fn require_swarm(&self) -> Result<(), DockerError> {
        let state = self.engine.swarm_state().await?;
        if state.local_node_state == "active" && state.manager {
            return Ok(());
        }
        let why = if state.local_node_state == "active" {
            "is a swarm worker, not a manager".to_string()
        } else {
            format!("is not in a swarm (state `{}`)", state.local_node_state)
        };
        Err(DockerError::unavailable(format!(
            "the Docker engine at {} {why}: run `docker swarm init` (or join a swarm as a manager) first",
            self.engine.describe()
        )))
    }

    // --- networks ---------------------------------------------------------------------------

    /// The stack's networks, with their keys.
    pub async fn list_networks(&self) -> Result<Vec<(String, NetworkView)>, DockerError> {
        let list = self.engine.list_networks(&self.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter_map(|n| {
                let key = n.labels.get(labels::NETWORK)?.clone();
                (n.name == self.stack.resource_name(&key)).then_some((key, n))
            })
            .collect())
    }

    /// Creates the stack's overlay network `key`, or returns the stack's existing one.
    pub async fn create_network(&self, key: &str) -> Result<NetworkView, DockerError> {
        self.writable("creating a network")?;
        self::key("network", key)?;
        self.require_swarm().await?;
        let ours = self.list_networks().await?;
        if let Some((_, n)) = ours.iter().find(|(k, _)| k == key) {
            return Ok(n.clone());
        }
        if ours.len() >= MAX_NETWORKS {
            return Err(DockerError::LimitExceeded(format!(
                "stack {} has {MAX_NETWORKS} networks, the most a stack may have",
                self.stack.name
            )));
        }
        let name = self.stack.resource_name(key);
        match self.engine.inspect_network(&name).await {
            Ok(existing) => return Err(self.foreign("network", &name, &existing.labels)),
            Err(EngineError::NotFound(_)) => {}
            Err(e @ EngineError::Unavailable(_)) => return Err(e.into()),
            Err(_) => {
                return Err(DockerError::conflict(format!(
                    "networks named {name} exist outside stack {}; remove them or choose another name with -p",
                    self.stack.name
                )));
            }
        }
        let id = self.engine.create_overlay_network(&name, self.owned_labels(labels::NETWORK, key)).await?;
        let view = self.engine.inspect_network(&id).await?;
        if !self.is_ours(&view.labels, labels::NETWORK, key) {
            return Err(self.foreign("network", &name, &view.labels));
        }
        Ok(view)
    }

    /// Removes the stack's network `key`.
    pub async fn remove_network(&self, key: &str) -> Result<(), DockerError> {
        self.writable("removing a network")?;
        let ours: Vec<NetworkView> =
            self.list_networks().await?.into_iter().filter(|(k, _)| k == key).map(|(_, n)| n).collect();
        if ours.is_empty() {
            return Err(DockerError::not_found(format!(
                "no network `{}` in stack {}",
                crate::text::escape(key),
                self.stack.name
            )));
        }
        self.wait_removed_tasks().await?;
        for n in ours {
            self.engine.remove_network(&n.id).await?;
            // The manager removes a swarm network after answering: wait until it is gone, so
            // what the driver does next (and what the user sees) finds it gone.
            let deadline = tokio::time::Instant::now() + REMOVE_WAIT;
            loop {
                match self.engine.inspect_network(&n.id).await {
                    Err(EngineError::NotFound(_)) => break,
                    Err(e) => return Err(e.into()),
                    Ok(_) if tokio::time::Instant::now() >= deadline => {
                        return Err(DockerError::Engine(EngineError::Failed(format!(
                            "network {} was removed, but the engine still had it after {} s",
                            n.name,
                            REMOVE_WAIT.as_secs()
                        ))));
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
        Ok(())
    }

    // --- volumes ----------------------------------------------------------------------------

    /// The stack's volumes, with their keys.
    pub async fn list_volumes(&self) -> Result<Vec<(String, VolumeView)>, DockerError> {
        let list = self.engine.list_volumes(&self.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter_map(|v| {
                let key = v.labels.get(labels::VOLUME)?.clone();
                (v.name == self.stack.resource_name(&key)).then_some((key, v))
            })
            .collect())
    }

    /// Creates the stack's volume `key`, or returns the stack's own. A volume of that name
    /// someone else owns (a compose project's) is a conflict: its data is not adopted.
    pub async fn create_volume(&self, key: &str) -> Result<VolumeView, DockerError> {
        self.writable("creating a volume")?;
        self::key("volume", key)?;
        let ours = self.list_volumes().await?;
        if let Some((_, v)) = ours.iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        if ours.len() >= MAX_VOLUMES {
            return Err(DockerError::LimitExceeded(format!(
                "stack {} has {MAX_VOLUMES} volumes, the most a stack may have",
                self.stack.name
            )));
        }
        let name = self.stack.resource_name(key);
        match self.engine.inspect_volume(&name).await {
            Ok(existing) => return Err(self.foreign("volume", &name, &existing.labels)),
            Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.engine.create_volume(&name, self.owned_labels(labels::VOLUME, key)).await?;
        let view = self.engine.inspect_volume(&name).await?;
        if !self.is_ours(&view.labels, labels::VOLUME, key) {
            return Err(self.foreign("volume", &name, &view.labels));
        }
        Ok(view)
    }

    /// Removes the stack's volume `key`.
    pub async fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
        self.writable("removing a volume")?;
        let Some((_, v)) = self.list_volumes().await?.into_iter().find(|(k, _)| k == key) else {
            return Err(DockerError::not_found(format!(
                "no volume `{}` in stack {}",
                crate::text::escape(key),
                self.stack.name
            )));
        };
        self.wait_removed_tasks().await?;
        Ok(self.engine.remove_volume(&v.name).await?)
    }

    /// Whether this node has `image`.
    pub async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        ImageRef::parse(image).map_err(DockerError::Invalid)?;
        Ok(self.engine.image_exists(image).await?)
    }

    // --- services ---------------------------------------------------------------------------

    /// The stack's services, with their keys (consistent with their names).
    pub async fn list_services(&self) -> Result<Vec<StackService>, DockerError> {
        self.require_swarm().await?;
        let list = self.engine.list_services(&self.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter_map(|view| {
                let key = view.labels.get(labels::SERVICE)?.clone();
                (view.name == self.stack.resource_name(&key)).then_some(StackService { key, view })
            })
            .collect())
    }

    async fn find(&self, key: &str) -> Result<StackService, DockerError> {
        self.list_services().await?.into_iter().find(|s| s.key == key).ok_or_else(|| {
            DockerError::not_found(format!("no service `{}` in stack {}", crate::text::escape(key), self.stack.name))
        })
    }

    fn planner(&self) -> Planner<'_> {
        Planner { project: &self.stack, grants: &self.grants, binds: &self.binds }
    }

    /// Checks a spec and that everything it relies on is the stack's: its networks and volumes
    /// exist, and its image comes from an allowed registry (every node pulls what it lacks).
    async fn checked(&self, spec: &ServiceSpec) -> Result<ServicePlan, DockerError> {
        let plan = plan(&self.planner(), spec)?;
        let reference = ImageRef::parse(&spec.image).map_err(DockerError::Invalid)?;
        let registry = normalize_registry(&reference.registry);
        if !self.stack.registries.contains(&registry) {
            let allowed =
                if self.stack.registries.is_empty() { "none".to_string() } else { self.stack.registries.join(", ") };
            return Err(DockerError::Denied {
                reason: format!(
                    "service {}: image {} comes from registry {registry}, which this stack may not pull from \
                     (allowed: {allowed}); Swarm nodes pull what they lack",
                    spec.service, spec.image
                ),
                hint: format!(
                    "add \"{registry}\" to `registries` in [deployment] of {}",
                    self.grants
                        .manifest
                        .as_ref()
                        .map(|m| m.display().to_string())
                        .unwrap_or_else(|| "the subject's manifest".into())
                ),
            });
        }
        let networks = self.list_networks().await?;
        for n in &plan.networks {
            if !networks.iter().any(|(k, _)| k == n) {
                return Err(DockerError::not_found(format!(
                    "service {}: no network `{n}` in stack {}; create it first",
                    spec.service, self.stack.name
                )));
            }
        }
        let volumes = self.list_volumes().await?;
        for v in &plan.volumes {
            if !volumes.iter().any(|(k, _)| k == v) {
                return Err(DockerError::not_found(format!(
                    "service {}: no volume `{v}` in stack {}; create it first",
                    spec.service, self.stack.name
                )));
            }
        }
        Ok(plan)
    }

    /// Creates the stack's service `spec.service`.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<StackService, DockerError> {
        self.writable("creating a service")?;
        let plan = self.checked(spec).await?;
        let services = self.list_services().await?;
        if services.iter().any(|s| s.key == spec.service) {
            return Err(DockerError::conflict(format!(
                "stack {} already has service {}; update it instead",
                self.stack.name, spec.service
            )));
        }
        if services.len() >= MAX_SERVICES {
            return Err(DockerError::LimitExceeded(format!(
                "stack {} has {MAX_SERVICES} services, the most a stack may have",
                self.stack.name
            )));
        }
        self.within_caps(spec, &services).await?;
        match self.engine.inspect_service(&plan.name).await {
            Ok(existing) => return Err(self.foreign("service", &plan.name, &existing.labels)),
            Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let id = self.engine.create_service(plan.spec).await?;
        let view = self.engine.inspect_service(&id).await?;
        Ok(StackService { key: spec.service.clone(), view })
    }

    /// Replaces the spec of the stack's service `spec.service` (Swarm rolls its tasks).
    pub async fn update_service(&self, spec: &ServiceSpec) -> Result<StackService, DockerError> {
        self.writable("updating a service")?;
        self.replace(spec, false).await
    }

    /// Rolls every task of the stack's service `spec.service` with `spec` (checked and sent
    /// whole: a spec read back from the engine through the client library loses fields it
    /// cannot read, such as the healthcheck).
    pub async fn force_update_service(&self, spec: &ServiceSpec) -> Result<StackService, DockerError> {
        self.writable("restarting a service")?;
        self.replace(spec, true).await
    }

    /// Sends the checked `spec` as the service's new spec, keeping its restart counter (a lower
    /// one would roll nothing), or raising it to roll every task (`roll`).
    async fn replace(&self, spec: &ServiceSpec, roll: bool) -> Result<StackService, DockerError> {
        let plan = self.checked(spec).await?;
        let services = self.list_services().await?;
        self.within_caps(spec, &services).await?;
        let current = services.into_iter().find(|s| s.key == spec.service).ok_or_else(|| {
            DockerError::not_found(format!(
                "no service `{}` in stack {}",
                crate::text::escape(&spec.service),
                self.stack.name
            ))
        })?;
        let mut new = plan.spec;
        let old = current.view.spec.task_template.as_ref().and_then(|t| t.force_update);
        if let Some(task) = new.task_template.as_mut() {
            task.force_update = if roll { Some(old.unwrap_or(0).wrapping_add(1)) } else { old };
        }
        self.engine.update_service(&current.view.id, new, current.view.version).await?;
        let view = self.engine.inspect_service(&current.view.id).await?;
        Ok(StackService { key: spec.service.clone(), view })
    }

    /// Removes the stack's service `key`. Swarm stops its tasks after answering; removing the
    /// stack's networks and volumes waits for them ([`ScopedSwarm::wait_removed_tasks`]), so a
    /// `down` removes every service at once and waits once.
    pub async fn remove_service(&self, key: &str) -> Result<(), DockerError> {
        self.writable("removing a service")?;
        let current = self.find(key).await?;
        Ok(self.engine.remove_service(&current.view.id).await?)
    }

    /// Waits (at most [`REMOVE_WAIT`]) until this node runs no container of a service of the
    /// stack that is gone: until then its networks and volumes are in use.
    async fn wait_removed_tasks(&self) -> Result<(), DockerError> {
        const SERVICE_ID: &str = "com.docker.swarm.service.id";
        let filter = vec![format!("{}={}", labels::OWNER, self.stack.name)];
        let deadline = tokio::time::Instant::now() + REMOVE_WAIT;
        loop {
            let live: Vec<String> = self.list_services().await?.into_iter().map(|s| s.view.id).collect();
            let orphans = self
                .engine
                .list_containers(&filter)
                .await?
                .into_iter()
                .filter(|c| c.labels.get(SERVICE_ID).is_some_and(|id| !live.contains(id)))
                .count();
            if orphans == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::Engine(EngineError::Failed(format!(
                    "{orphans} containers of removed services of stack {} were still on this node after {} s",
                    self.stack.name,
                    REMOVE_WAIT.as_secs()
                ))));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The stack's service `key`.
    pub async fn inspect_service(&self, key: &str) -> Result<StackService, DockerError> {
        self.find(key).await
    }

    /// Tasks of the stack, or of its service `key`.
    pub async fn list_tasks(&self, key: Option<&str>) -> Result<Vec<StackTask>, DockerError> {
        let services = match key {
            Some(k) => vec![self.find(k).await?],
            None => self.list_services().await?,
        };
        let ids: Vec<String> = services.iter().map(|s| s.view.id.clone()).collect();
        let tasks = self.engine.list_tasks(&ids).await?;
        Ok(tasks
            .into_iter()
            .filter_map(|t| {
                let service = services.iter().find(|s| s.view.id == t.service_id)?.key.clone();
                Some(StackTask { service, view: t })
            })
            .collect())
    }

    /// Logs of the named services' tasks, merged.
    pub async fn service_logs(
        &self,
        keys: &[String],
        tail: Option<u32>,
        follow: bool,
    ) -> Result<LogStream, DockerError> {
        let services = self.list_services().await?;
        let mut sources: Vec<LogSource> = Vec::new();
        for k in keys {
            let s = services.iter().find(|s| s.key == *k).ok_or_else(|| {
                DockerError::not_found(format!("no service `{}` in stack {}", crate::text::escape(k), self.stack.name))
            })?;
            if sources.iter().any(|src| src.service == s.key) {
                continue;
            }
            sources.push(LogSource {
                service: s.key.clone(),
                container: s.view.name.clone(),
                chunks: self.engine.service_logs(&s.view.id, tail, follow),
            });
        }
        Ok(streams::log_stream(sources))
    }
}
