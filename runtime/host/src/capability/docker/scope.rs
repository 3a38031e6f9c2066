//! The project-scoped Docker capability.
//!
//! A deployment driver is started for one project, whose identity belongs to the host: the
//! name comes from the operator's flags or the subject, never from the compose file. Every
//! resource the host creates carries compose's labels (so `docker compose ps` in the project
//! folder sees it) and an ownership label, [`labels::OWNER`]; the host only sees and touches
//! resources carrying both, and refuses outright a project that holds resources it did not
//! create. Names are derived here (`<project>-<service>-<n>`, `<project>_<key>`) and checked
//! back against the labels, so a name that happens to match another project's resource
//! (`p` + `b_data` = `p_b` + `data`) is a conflict, never a way in. The label also records the
//! subject folder: a subject of the same name elsewhere does not get the project unless the
//! user names it with `-p`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::binds::BindRules;
use super::engine::*;
use super::error::DockerError;
use super::grants::DockerGrants;
use super::image::{ImageRef, normalize_registry};
use super::plan::{Plan, Planner};
use super::streams::{self, EventStream, LogSource, LogStream, ProjectEvent};
use crate::bindings::docker::ContainerSpec;
use crate::capability::progress::{Phase, ProgressHandle};

/// Label keys: compose's, and the host's ownership label.
pub mod labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const NUMBER: &str = "com.docker.compose.container-number";
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    pub const VERSION: &str = "com.docker.compose.version";
    pub const IMAGE: &str = "com.docker.compose.image";
    pub const NETWORK: &str = "com.docker.compose.network";
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// Set by this host on everything it creates: the project that owns it.
    pub const OWNER: &str = "dev.operator.project";
    /// The canonical subject folder it was created from.
    pub const FOLDER: &str = "dev.operator.folder";
}

/// The project a driver is scoped to, as the host resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    /// The project (subject) folder, canonical.
    pub dir: PathBuf,
    /// The compose files, for compose's label.
    pub config_files: Vec<PathBuf>,
    /// Registries images may be pulled from (normalized hosts).
    pub registries: Vec<String>,
    /// The user named the project: its resources may come from another folder.
    pub named: bool,
}

impl Project {
    /// `<project>_<key>`: a network or volume name.
    pub fn resource_name(&self, key: &str) -> String {
        operator_rules::names::resource(&self.name, key)
    }

    /// The labels that make a resource this project's.
    pub fn owner_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::PROJECT.to_string(), self.name.clone()),
            (labels::OWNER.to_string(), self.name.clone()),
            (labels::FOLDER.to_string(), self.dir.display().to_string()),
            (labels::VERSION.to_string(), format!("operator-{}", env!("CARGO_PKG_VERSION"))),
        ])
    }

    /// The label filter for this project's resources.
    pub fn owner_filter(&self) -> Vec<String> {
        vec![format!("{}={}", labels::PROJECT, self.name), format!("{}={}", labels::OWNER, self.name)]
    }
}

/// A container of the project, as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectContainer {
    pub view: ContainerView,
    pub service: String,
    pub number: u32,
    pub config_hash: String,
    pub depends_on: Vec<String>,
}

/// The Docker capability of one deployment driver, scoped to one project.
pub struct ScopedDocker {
    engine: Arc<dyn DockerEngine>,
    project: Project,
    grants: DockerGrants,
    binds: BindRules,
    progress: ProgressHandle,
    /// Only lists, inspects and logs: for calls that must not change the project (status, logs).
    read_only: bool,
}

impl std::fmt::Debug for ScopedDocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedDocker")
            .field("engine", &self.engine.describe())
            .field("project", &self.project.name)
            .field("dir", &self.project.dir)
            .finish()
    }
}

/// Networks one project may have (each takes an address range from the engine's shared pools,
/// about 31 of them by default).
pub const MAX_NETWORKS: usize = 8;
/// Volumes one project may have.
pub const MAX_VOLUMES: usize = 256;
/// Containers one project may have.
pub const MAX_CONTAINERS: usize = 64;
/// Host ports one project may publish (each is a `docker-proxy` process and its threads).
pub const MAX_PUBLISHED_PORTS: usize = 256;

/// True for names Docker and compose accept as keys and names.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && key.len() <= 128
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

impl ScopedDocker {
    /// A capability for `project` with these grants (the engine's data root not yet known:
    /// [`ScopedDocker::open`] is the checked way in).
    pub fn new(
        engine: Arc<dyn DockerEngine>,
        project: Project,
        grants: DockerGrants,
        progress: ProgressHandle,
    ) -> Self {
        let binds = BindRules { project_dir: project.dir.clone(), engine: engine.location(), data_root: None };
        ScopedDocker { engine, project, grants, binds, progress, read_only: false }
    }

    /// The same capability, limited to reading: every operation that would change the project
    /// (create, start, stop, restart, remove, pull) is refused by name.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Refuses `what` when the capability is read-only.
    fn writable(&self, what: &str) -> Result<(), DockerError> {
        if !self.read_only {
            return Ok(());
        }
        Err(DockerError::Denied {
            reason: format!("{what} changes the project, and this call may only read it (status, logs)"),
            hint: "change the project through `operator deploy local up|down|restart`".into(),
        })
    }

    /// A capability for `project`, once the host has checked that the project is its to act
    /// on: its folder does not lie in the engine's data root (where containers write: a
    /// subject linked into a volume could have its manifest rewritten by a container), and it
    /// holds no resource operator did not create.
    pub async fn open(
        engine: Arc<dyn DockerEngine>,
        project: Project,
        grants: DockerGrants,
        progress: ProgressHandle,
    ) -> Result<Self, DockerError> {
        let mut docker = ScopedDocker::new(engine, project, grants, progress);
        let root = docker.engine.data_root().await?;
        let root = root.map(|r| r.canonicalize().unwrap_or(r));
        if let Some(r) = root.as_ref().filter(|r| docker.project.dir.starts_with(r)) {
            return Err(DockerError::Denied {
                reason: format!(
                    "the project folder {} lies inside Docker's data root {}, which containers write: a container \
                     could rewrite its manifest or compose file",
                    docker.project.dir.display(),
                    r.display()
                ),
                hint: "keep subjects outside the engine's data root (a subject linked into a volume is refused)".into(),
            });
        }
        docker.binds.data_root = root;
        docker.check_ownership().await?;
        Ok(docker)
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project.name
    }

    /// Refuses a project holding resources this host did not create (made by `docker compose`,
    /// another tool, or an older operator): acting on it would touch what is not ours.
    pub async fn check_ownership(&self) -> Result<(), DockerError> {
        let project = [format!("{}={}", labels::PROJECT, self.project.name)];
        let ours = |l: &BTreeMap<String, String>| l.get(labels::OWNER) == Some(&self.project.name);
        let folder = self.project.dir.display().to_string();
        let elsewhere = |l: &BTreeMap<String, String>| l.get(labels::FOLDER).filter(|f| **f != folder).cloned();
        let mut foreign: Vec<String> = Vec::new();
        let mut other_folder: Option<String> = None;
        let mut sort = |what: &str, name: &str, l: &BTreeMap<String, String>| {
            if !ours(l) {
                foreign.push(format!("{what} {name}"));
            } else if let Some(f) = elsewhere(l) {
                other_folder.get_or_insert(f);
            }
        };
        for c in self.engine.list_containers(&project).await? {
            sort("container", &c.name, &c.labels);
        }
        for n in self.engine.list_networks(&project).await? {
            sort("network", &n.name, &n.labels);
        }
        for v in self.engine.list_volumes(&project).await? {
            sort("volume", &v.name, &v.labels);
        }
        if let Some(f) = other_folder.filter(|_| foreign.is_empty() && !self.project.named) {
            return Err(DockerError::conflict(format!(
                "project {} was deployed from {}, not from this subject ({}): another subject of the same name \
                 does not get it; pass -p {} to act on it from here",
                self.project.name,
                crate::text::escape(&f),
                self.project.dir.display(),
                self.project.name
            )));
        }
        if foreign.is_empty() {
            return Ok(());
        }
        let shown = foreign.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
        Err(DockerError::conflict(format!(
            "project {} holds resources operator did not create ({shown}{more}); operator acts only on projects it \
             owns: remove them (`docker compose -p {} down`) or choose another name with -p",
            self.project.name, self.project.name
        )))
    }

    fn owned_labels(&self, kind_label: &str, key: &str) -> BTreeMap<String, String> {
        let mut l = self.project.owner_labels();
        l.insert(kind_label.into(), key.into());
        l
    }

    /// True when `labels` mark a resource as this project's `key` of the kind `kind_label`.
    fn is_ours(&self, labels: &BTreeMap<String, String>, kind_label: &str, key: &str) -> bool {
        labels.get(labels::PROJECT) == Some(&self.project.name)
            && labels.get(labels::OWNER) == Some(&self.project.name)
            && labels.get(kind_label).map(String::as_str) == Some(key)
    }

    fn foreign(&self, what: &str, name: &str, labels: &BTreeMap<String, String>) -> DockerError {
        let owner = match (labels.get(labels::OWNER), labels.get(labels::PROJECT)) {
            (Some(o), _) => format!("it belongs to project {o}"),
            (None, Some(p)) => format!("it belongs to compose project {p}, which operator did not create"),
            (None, None) => "operator did not create it".to_string(),
        };
        DockerError::conflict(format!(
            "a {what} named {name} exists but is not project {}'s: {owner}; remove it or choose another project name",
            self.project.name
        ))
    }

    // --- networks ---------------------------------------------------------------------------

    /// The project's networks, with their keys (consistent with their names).
    pub async fn list_networks(&self) -> Result<Vec<(String, NetworkView)>, DockerError> {
        let list = self.engine.list_networks(&self.project.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter_map(|n| {
                let key = n.labels.get(labels::NETWORK)?.clone();
                (n.name == self.project.resource_name(&key)).then_some((key, n))
            })
            .collect())
    }

    /// Creates project network `key`, or returns the project's existing one. A network of that
    /// name that is not the project's is a conflict (looked up first: older engines create
    /// duplicate names).
    pub async fn create_network(&self, key: &str) -> Result<NetworkView, DockerError> {
        self.writable("creating a network")?;
        self::key("network", key)?;
        let ours = self.list_networks().await?;
        if let Some((_, n)) = ours.iter().find(|(k, _)| k == key) {
            return Ok(n.clone());
        }
        if ours.len() >= MAX_NETWORKS {
            return Err(DockerError::LimitExceeded(format!(
                "project {} has {MAX_NETWORKS} networks, the most a project may have",
                self.project.name
            )));
        }
        let name = self.project.resource_name(key);
        match self.engine.inspect_network(&name).await {
            Ok(existing) => return Err(self.foreign("network", &name, &existing.labels)),
            Err(EngineError::NotFound(_)) => {}
            Err(e @ EngineError::Unavailable(_)) => return Err(e.into()),
            // Older engines answer a name several networks share with an error.
            Err(_) => {
                return Err(DockerError::conflict(format!(
                    "networks named {name} exist outside project {}; remove them or choose another project name",
                    self.project.name
                )));
            }
        }
        let view = match self.engine.create_network(&name, self.owned_labels(labels::NETWORK, key)).await {
            Ok(id) => self.engine.inspect_network(&id).await?,
            Err(EngineError::Conflict(_)) => self.engine.inspect_network(&name).await?,
            Err(e) => return Err(e.into()),
        };
        if !self.is_ours(&view.labels, labels::NETWORK, key) {
            return Err(self.foreign("network", &name, &view.labels));
        }
        Ok(view)
    }

    /// Removes project network `key`.
    pub async fn remove_network(&self, key: &str) -> Result<(), DockerError> {
        self.writable("removing a network")?;
        let ours: Vec<NetworkView> =
            self.list_networks().await?.into_iter().filter(|(k, _)| k == key).map(|(_, n)| n).collect();
        if ours.is_empty() {
            return Err(DockerError::not_found(format!(
                "no network `{}` in project {}",
                crate::text::escape(key),
                self.project.name
            )));
        }
        for n in ours {
            self.engine.remove_network(&n.id).await?;
        }
        Ok(())
    }

    // --- volumes ----------------------------------------------------------------------------

    /// The project's volumes, with their keys (consistent with their names).
    pub async fn list_volumes(&self) -> Result<Vec<(String, VolumeView)>, DockerError> {
        let list = self.engine.list_volumes(&self.project.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter_map(|v| {
                let key = v.labels.get(labels::VOLUME)?.clone();
                (v.name == self.project.resource_name(&key)).then_some((key, v))
            })
            .collect())
    }

    /// Creates project volume `key`, or returns the project's existing one. Docker answers an
    /// existing name with the existing volume, whoever made it: the labels decide.
    pub async fn create_volume(&self, key: &str) -> Result<VolumeView, DockerError> {
        self.writable("creating a volume")?;
        self::key("volume", key)?;
        let ours = self.list_volumes().await?;
        if let Some((_, v)) = ours.iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        if ours.len() >= MAX_VOLUMES {
            return Err(DockerError::LimitExceeded(format!(
                "project {} has {MAX_VOLUMES} volumes, the most a project may have",
                self.project.name
            )));
        }
        let name = self.project.resource_name(key);
        self.engine.create_volume(&name, self.owned_labels(labels::VOLUME, key)).await?;
        let view = self.engine.inspect_volume(&name).await?;
        if !self.is_ours(&view.labels, labels::VOLUME, key) {
            return Err(self.foreign("volume", &name, &view.labels));
        }
        Ok(view)
    }

    /// Removes project volume `key`.
    pub async fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
        self.writable("removing a volume")?;
        let Some((_, v)) = self.list_volumes().await?.into_iter().find(|(k, _)| k == key) else {
            return Err(DockerError::not_found(format!(
                "no volume `{}` in project {}",
                crate::text::escape(key),
                self.project.name
            )));
        };
        Ok(self.engine.remove_volume(&v.name).await?)
    }

    // --- images -----------------------------------------------------------------------------

    /// Whether the engine has `image`.
    pub async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        ImageRef::parse(image).map_err(DockerError::Invalid)?;
        Ok(self.engine.image_exists(image).await?)
    }

    /// Pulls `image` from an allowed registry, reporting progress.
    pub async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        self.writable("pulling an image")?;
        let reference = ImageRef::parse(image).map_err(DockerError::Invalid)?;
        let registry = normalize_registry(&reference.registry);
        if !self.project.registries.contains(&registry) {
            let allowed = if self.project.registries.is_empty() {
                "none".to_string()
            } else {
                self.project.registries.join(", ")
            };
            let hint = match &self.grants.manifest {
                Some(m) => format!(
                    "add `registries = [\"{registry}\"]` to [deployment] in {} if this project really pulls from it",
                    m.display()
                ),
                None => format!(
                    "name {registry} literally in the compose file, or grant it with `registries` in [deployment]"
                ),
            };
            return Err(DockerError::Denied {
                reason: format!("pulling {image}: registry {registry} is not allowed (allowed: {allowed})"),
                hint,
            });
        }
        let progress = self.progress.clone();
        let report = move |p: PullProgress| {
            let detail = if p.total > 0 {
                format!("{:.1}/{:.1} MiB", p.current as f64 / 1048576.0, p.total as f64 / 1048576.0)
            } else {
                crate::text::escape(&p.status).into_owned()
            };
            progress.report(&p.image, Phase::Pulling, &detail);
        };
        self.engine.pull_image(image, &report).await.map_err(|e| match e {
            EngineError::NotFound(m) | EngineError::Failed(m) | EngineError::ImageUnavailable(m) => {
                DockerError::image_unavailable(format!("image {image} is not present and cannot be pulled: {m}"))
            }
            other => other.into(),
        })
    }

    // --- containers -------------------------------------------------------------------------

    /// Checks a spec against the grants and plans its creation.
    pub fn plan_container(&self, spec: &ContainerSpec) -> Result<Plan, DockerError> {
        Planner { project: &self.project, grants: &self.grants, binds: &self.binds }.plan(spec)
    }

    /// Creates a container once every network and volume it uses exists and is the project's.
    /// Networks and the new container are referred to by ID from here on: a name can be
    /// another object's (Docker resolves a full ID before a name).
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<ProjectContainer, DockerError> {
        self.writable("creating a container")?;
        let mut plan = self.plan_container(spec)?;
        let service = &spec.service;
        let existing = self.list_containers().await?;
        if existing.len() >= MAX_CONTAINERS {
            return Err(DockerError::LimitExceeded(format!(
                "project {} has {MAX_CONTAINERS} containers, the most a project may have",
                self.project.name
            )));
        }
        let published: usize =
            existing.iter().map(|c| c.view.ports.iter().filter(|p| p.host_port.is_some()).count()).sum();
        if published + spec.ports.len() > MAX_PUBLISHED_PORTS {
            return Err(DockerError::LimitExceeded(format!(
                "project {} publishes {published} host ports; {} more would pass the {MAX_PUBLISHED_PORTS} a project may publish",
                self.project.name,
                spec.ports.len()
            )));
        }
        let mut network_ids = Vec::new();
        if !plan.networks.is_empty() {
            let networks = self.list_networks().await?;
            for (key, aliases) in &plan.networks {
                let Some((_, n)) = networks.iter().find(|(k, _)| k == key) else {
                    return Err(DockerError::not_found(format!(
                        "service {service}: network `{key}` does not exist in project {}; create it first",
                        self.project.name
                    )));
                };
                network_ids.push((n.id.clone(), aliases.clone()));
            }
            if let (Some(host), Some((primary, aliases))) = (plan.body.host_config.as_mut(), network_ids.first()) {
                host.network_mode = Some(primary.clone());
                let endpoint =
                    bollard::models::EndpointSettings { aliases: Some(aliases.clone()), ..Default::default() };
                plan.body.networking_config = Some(bollard::models::NetworkingConfig {
                    endpoints_config: Some(std::collections::HashMap::from([(primary.clone(), endpoint)])),
                });
            }
        }
        if !plan.volumes.is_empty() {
            let volumes = self.list_volumes().await?;
            for key in &plan.volumes {
                if !volumes.iter().any(|(k, _)| k == key) {
                    return Err(DockerError::not_found(format!(
                        "service {service}: volume `{key}` does not exist in project {}; create it first",
                        self.project.name
                    )));
                }
            }
        }
        let name = plan.name.clone();
        let id = match self.engine.create_container(&name, plan.body).await {
            Ok(id) => id,
            // The daemon's message names the other container's ID: not the driver's to know.
            Err(EngineError::Conflict(_)) => {
                let ours = existing.iter().any(|c| c.view.name == name);
                return Err(DockerError::conflict(if ours {
                    format!("container {name} already exists in project {}", self.project.name)
                } else {
                    format!("the name {name} is taken by a container outside project {}", self.project.name)
                }));
            }
            Err(EngineError::NotFound(m)) => {
                return Err(DockerError::image_unavailable(format!("service {service}: {m}")));
            }
            Err(other) => return Err(other.into()),
        };
        for (network, aliases) in network_ids.into_iter().skip(1) {
            self.engine.connect_network(&network, &id, aliases).await?;
        }
        let view = self.engine.inspect_container(&id).await?;
        Ok(project_container(view))
    }

    /// The project's containers (stopped ones included, one-off ones not).
    pub async fn list_containers(&self) -> Result<Vec<ProjectContainer>, DockerError> {
        let list = self.engine.list_containers(&self.project.owner_filter()).await?;
        Ok(list
            .into_iter()
            .filter(|c| c.labels.get(labels::ONEOFF).is_none_or(|v| v == "False"))
            .map(project_container)
            .collect())
    }

    /// The project container called `name`, or not-found: other containers do not exist here.
    async fn find(&self, name: &str) -> Result<ProjectContainer, DockerError> {
        self.list_containers().await?.into_iter().find(|c| c.view.name == name).ok_or_else(|| {
            DockerError::not_found(format!(
                "no container `{}` in project {}",
                crate::text::escape(name),
                self.project.name
            ))
        })
    }

    /// Inspects a project container.
    pub async fn inspect_container(&self, name: &str) -> Result<ProjectContainer, DockerError> {
        let found = self.find(name).await?;
        let view = self.engine.inspect_container(&found.view.id).await?;
        Ok(project_container(view))
    }

    /// Checks a container's binds again before the engine mounts them again: Docker resolves a
    /// bind's source at every start, and a subject folder can change between two commands (a
    /// `conf` folder that became a symlink to `/run`). Each source must still be the canonical
    /// path that was checked, and still pass the rules.
    fn recheck_binds(&self, c: &ProjectContainer) -> Result<(), DockerError> {
        for b in &c.view.binds {
            let real = std::path::Path::new(&b.source).canonicalize();
            if real.as_ref().ok().map(|r| r.as_os_str()) != Some(std::ffi::OsStr::new(&b.source)) {
                let now = match real {
                    Ok(r) => format!("now resolves to {}", r.display()),
                    Err(_) => "is gone".to_string(),
                };
                return Err(DockerError::Denied {
                    reason: format!(
                        "service {}: bind source {} {now}: it changed since the container was created",
                        c.service,
                        crate::text::escape(&b.source)
                    ),
                    hint: "check the subject folder; `down` then `up` checks it afresh".into(),
                });
            }
            self.binds.check(&self.grants, &c.service, &b.source, b.read_only)?;
        }
        Ok(())
    }

    /// Starts a project container, its binds checked again.
    pub async fn start_container(&self, name: &str) -> Result<(), DockerError> {
        self.writable("starting a container")?;
        let c = self.find(name).await?;
        self.recheck_binds(&c)?;
        Ok(self.engine.start_container(&c.view.id).await?)
    }

    /// Stops a project container.
    pub async fn stop_container(&self, name: &str, timeout_s: Option<i64>) -> Result<(), DockerError> {
        self.writable("stopping a container")?;
        let c = self.find(name).await?;
        Ok(self.engine.stop_container(&c.view.id, timeout_s).await?)
    }

    /// Restarts a project container, its binds checked again.
    pub async fn restart_container(&self, name: &str, timeout_s: Option<i64>) -> Result<(), DockerError> {
        self.writable("restarting a container")?;
        let c = self.find(name).await?;
        self.recheck_binds(&c)?;
        Ok(self.engine.restart_container(&c.view.id, timeout_s).await?)
    }

    /// Removes a project container (forcefully; anonymous volumes only if asked).
    pub async fn remove_container(&self, name: &str, volumes: bool) -> Result<(), DockerError> {
        self.writable("removing a container")?;
        let c = self.find(name).await?;
        match self.engine.remove_container(&c.view.id, volumes).await {
            Ok(()) | Err(EngineError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the logs of project containers, line by line, merged.
    pub async fn container_logs(
        &self,
        names: &[String],
        tail: Option<u32>,
        follow: bool,
    ) -> Result<LogStream, DockerError> {
        let containers = self.list_containers().await?;
        let mut sources: Vec<LogSource> = Vec::new();
        for n in names {
            let c = containers.iter().find(|c| c.view.name == *n).ok_or_else(|| {
                DockerError::not_found(format!(
                    "no container `{}` in project {}",
                    crate::text::escape(n),
                    self.project.name
                ))
            })?;
            if sources.iter().any(|s| s.container == c.view.name) {
                continue;
            }
            sources.push(LogSource {
                service: c.service.clone(),
                container: c.view.name.clone(),
                chunks: self.engine.logs(&c.view.id, tail, follow),
            });
        }
        Ok(streams::log_stream(sources))
    }

    /// Subscribes to state and health changes of the project's containers.
    pub fn subscribe_events(&self) -> EventStream {
        let events = self.engine.events(&self.project.owner_filter());
        streams::event_stream(events, |e| ProjectEvent {
            service: e.labels.get(labels::SERVICE).cloned().unwrap_or_default(),
            container: e.container,
            action: e.action,
        })
    }
}

fn project_container(view: ContainerView) -> ProjectContainer {
    let label = |k: &str| view.labels.get(k).cloned().unwrap_or_default();
    ProjectContainer {
        service: label(labels::SERVICE),
        number: label(labels::NUMBER).parse().unwrap_or(1),
        config_hash: label(labels::CONFIG_HASH),
        depends_on: label(labels::DEPENDS_ON).split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        view,
    }
}
