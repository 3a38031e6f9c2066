//! The project-scoped Docker capability.
//!
//! A deployment driver is started for one compose project. Everything it names is a key inside
//! that project; this layer turns keys into Docker names (`<project>-<service>-<n>`,
//! `<project>_<key>`), writes compose's labels (so `docker compose ps` in the project folder
//! sees the containers), and only ever sees or touches resources that carry the project's
//! label. Settings that would let a container escape the project (privileged mode, host
//! namespaces, added capabilities, devices, the Docker socket, host paths outside the project
//! folder) are refused unless the subject's manifest grants them, naming the line to add.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::engine::*;
use crate::host::progress::{Phase, ProgressHandle};

/// Compose's label keys.
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
}

/// What a subject's manifest grants its driver beyond the project's own resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerGrants {
    pub privileged: bool,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub docker_socket: bool,
    pub cap_add: Vec<String>,
    pub devices: Vec<String>,
    /// Host directories bind mounts may use besides the project folder.
    pub host_paths: Vec<PathBuf>,
    /// Where to say a grant goes (`subjects/x/operator.toml`), if there is a manifest.
    pub manifest: Option<PathBuf>,
}

/// Why a scoped operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    #[error("{reason}")]
    Denied { reason: String, hint: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ImageUnavailable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl From<EngineError> for DockerError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(m) => DockerError::Unavailable(m),
            EngineError::NotFound(m) => DockerError::NotFound(m),
            EngineError::Conflict(m) => DockerError::Conflict(m),
            EngineError::ImageUnavailable(m) => DockerError::ImageUnavailable(m),
            EngineError::Failed(m) => DockerError::Failed(m),
        }
    }
}

/// A mount as a driver asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// A project volume by key (empty: anonymous).
    Volume {
        key: String,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
    },
}

/// A published port as a driver asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
    pub host_port: Option<u16>,
}

/// A container as a driver asks for it (keys, not Docker names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerRequest {
    pub service: String,
    pub number: u32,
    pub container_name: Option<String>,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub ports: Vec<PortRequest>,
    pub mounts: Vec<MountRequest>,
    pub networks: Vec<(String, Vec<String>)>,
    pub healthcheck: Option<HealthSpec>,
    pub restart: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub config_hash: String,
    pub depends_on: Vec<String>,
    pub stop_grace_period_s: Option<i64>,
    pub stop_signal: Option<String>,
    pub ulimits: Vec<(String, i64, i64)>,
    pub extra_hosts: Vec<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub devices: Vec<String>,
    pub network_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
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

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub service: String,
    pub container: String,
    pub stderr: bool,
    pub line: String,
}

/// A change to a project container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEvent {
    pub container: String,
    pub service: String,
    pub action: String,
}

/// The Docker capability of one deployment driver, scoped to one project.
pub struct ScopedDocker {
    engine: Arc<dyn DockerEngine>,
    project: String,
    project_dir: PathBuf,
    config_files: Vec<PathBuf>,
    grants: DockerGrants,
    progress: ProgressHandle,
}

impl std::fmt::Debug for ScopedDocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedDocker")
            .field("engine", &self.engine.describe())
            .field("project", &self.project)
            .field("project_dir", &self.project_dir)
            .finish()
    }
}

/// True for names Docker and compose accept as keys and names.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && key.len() <= 128
}

impl ScopedDocker {
    /// A capability for `project`, whose compose files live in `project_dir`.
    pub fn new(
        engine: Arc<dyn DockerEngine>,
        project: &str,
        project_dir: &Path,
        config_files: Vec<PathBuf>,
        grants: DockerGrants,
        progress: ProgressHandle,
    ) -> Self {
        let project_dir = project_dir.canonicalize().unwrap_or_else(|_| project_dir.to_path_buf());
        ScopedDocker { engine, project: project.to_string(), project_dir, config_files, grants, progress }
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The engine underneath (for `ping` before any work).
    pub fn engine(&self) -> &Arc<dyn DockerEngine> {
        &self.engine
    }

    fn project_label(&self) -> String {
        format!("{}={}", labels::PROJECT, self.project)
    }

    fn key(&self, what: &str, key: &str) -> Result<(), DockerError> {
        if valid_key(key) {
            Ok(())
        } else {
            Err(DockerError::Failed(format!("{what} `{key}` is not a valid name (letters, digits, `_`, `.`, `-`)")))
        }
    }

    fn deny(&self, reason: String, grant: &str) -> DockerError {
        let hint = match &self.grants.manifest {
            Some(path) => {
                format!("add `{grant}` to [deployment.docker] in {} if this project really needs it", path.display())
            }
            None => format!("this needs the grant `{grant}` in the subject's [deployment.docker] manifest section"),
        };
        DockerError::Denied { reason, hint }
    }

    fn base_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::PROJECT.to_string(), self.project.clone()),
            (labels::VERSION.to_string(), format!("operator-{}", env!("CARGO_PKG_VERSION"))),
        ])
    }

    // --- networks and volumes ---------------------------------------------------------------

    fn network_name(&self, key: &str) -> String {
        format!("{}_{key}", self.project)
    }

    /// Creates the project network `key` (`<project>_<key>`); an existing one of this project
    /// is reused.
    pub async fn create_network(&self, key: &str) -> Result<NetworkView, DockerError> {
        self.key("network", key)?;
        let name = self.network_name(key);
        // Older engines accept duplicate network names: look before creating.
        if let Some(n) = self.list_networks().await?.into_iter().find(|n| n.name == name) {
            return Ok(n);
        }
        let mut labels = self.base_labels();
        labels.insert(labels::NETWORK.into(), key.into());
        let view = match self.engine.create_network(&name, labels).await {
            Ok(id) => self.engine.inspect_network(&id).await?,
            Err(EngineError::Conflict(_)) => self.engine.inspect_network(&name).await?,
            Err(e) => return Err(e.into()),
        };
        if view.labels.get(labels::PROJECT) != Some(&self.project) {
            return Err(DockerError::Conflict(format!(
                "a network named {name} exists but does not belong to project {}; remove it or rename the project",
                self.project
            )));
        }
        Ok(view)
    }

    /// The project's networks.
    pub async fn list_networks(&self) -> Result<Vec<NetworkView>, DockerError> {
        Ok(self.engine.list_networks(&self.project_label()).await?)
    }

    /// Removes project network `key`.
    pub async fn remove_network(&self, key: &str) -> Result<(), DockerError> {
        let name = self.network_name(key);
        let ours: Vec<NetworkView> = self.list_networks().await?.into_iter().filter(|n| n.name == name).collect();
        if ours.is_empty() {
            return Err(DockerError::NotFound(format!("no network `{key}` in project {}", self.project)));
        }
        for n in ours {
            self.engine.remove_network(&n.id).await?;
        }
        Ok(())
    }

    /// Creates project volume `key` (`<project>_<key>`); an existing one of this project is reused.
    pub async fn create_volume(&self, key: &str) -> Result<VolumeView, DockerError> {
        self.key("volume", key)?;
        let name = self.network_name(key);
        if let Some(v) = self.list_volumes().await?.into_iter().find(|v| v.name == name) {
            return Ok(v);
        }
        let mut labels = self.base_labels();
        labels.insert(labels::VOLUME.into(), key.into());
        match self.engine.create_volume(&name, labels.clone()).await {
            Ok(()) => Ok(VolumeView { name, labels }),
            Err(EngineError::Conflict(_)) => Err(DockerError::Conflict(format!(
                "a volume named {name} exists but does not belong to project {}",
                self.project
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The project's volumes.
    pub async fn list_volumes(&self) -> Result<Vec<VolumeView>, DockerError> {
        Ok(self.engine.list_volumes(&self.project_label()).await?)
    }

    /// Removes project volume `key`.
    pub async fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
        let name = self.network_name(key);
        if !self.list_volumes().await?.iter().any(|v| v.name == name) {
            return Err(DockerError::NotFound(format!("no volume `{key}` in project {}", self.project)));
        }
        Ok(self.engine.remove_volume(&name).await?)
    }

    // --- images -----------------------------------------------------------------------------

    /// Whether the engine has `image`.
    pub async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        check_image(image)?;
        Ok(self.engine.image_exists(image).await?)
    }

    /// Pulls `image`, reporting progress.
    pub async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        check_image(image)?;
        let progress = self.progress.clone();
        let report = move |p: PullProgress| {
            let detail = if p.total > 0 {
                format!("{:.1}/{:.1} MiB", p.current as f64 / 1048576.0, p.total as f64 / 1048576.0)
            } else {
                p.status.clone()
            };
            progress.report(&p.image, Phase::Pulling, &detail);
        };
        self.engine.pull_image(image, &report).await.map_err(|e| match e {
            EngineError::NotFound(m) | EngineError::Failed(m) => {
                DockerError::ImageUnavailable(format!("image {image} is not present and cannot be pulled: {m}"))
            }
            EngineError::ImageUnavailable(m) => {
                DockerError::ImageUnavailable(format!("image {image} is not present and cannot be pulled: {m}"))
            }
            other => other.into(),
        })
    }

    // --- containers -------------------------------------------------------------------------

    fn container_name(&self, r: &ContainerRequest) -> String {
        r.container_name.clone().unwrap_or_else(|| format!("{}-{}-{}", self.project, r.service, r.number))
    }

    /// Checks a request against the grants and turns it into an engine request.
    pub fn plan_container(&self, r: &ContainerRequest) -> Result<ContainerCreate, DockerError> {
        self.key("service", &r.service)?;
        let name = self.container_name(r);
        self.key("container name", &name)?;
        check_image(&r.image)?;

        if r.privileged && !self.grants.privileged {
            return Err(
                self.deny(format!("service {}: privileged containers are not granted", r.service), "privileged = true")
            );
        }
        let host_mode = |mode: &Option<String>| mode.as_deref() == Some("host");
        if host_mode(&r.network_mode) && !self.grants.host_network {
            return Err(
                self.deny(format!("service {}: network_mode host is not granted", r.service), "host-network = true")
            );
        }
        if let Some(mode) = r.network_mode.as_deref()
            && !matches!(mode, "host" | "none" | "bridge")
        {
            return Err(self.deny(
                format!("service {}: network_mode `{mode}` would join a namespace outside the project", r.service),
                "host-network = true",
            ));
        }
        if host_mode(&r.pid_mode) && !self.grants.host_pid {
            return Err(self.deny(format!("service {}: pid host is not granted", r.service), "host-pid = true"));
        }
        if host_mode(&r.ipc_mode) && !self.grants.host_ipc {
            return Err(self.deny(format!("service {}: ipc host is not granted", r.service), "host-ipc = true"));
        }
        for (mode, what) in [(&r.pid_mode, "pid"), (&r.ipc_mode, "ipc")] {
            if let Some(m) = mode.as_deref()
                && !matches!(m, "host" | "private" | "shareable" | "")
            {
                return Err(
                    self.deny(format!("service {}: {what} mode `{m}` is not allowed", r.service), "host-pid = true")
                );
            }
        }
        let caps: Vec<&String> = r.cap_add.iter().filter(|c| !self.grants.cap_add.contains(c)).collect();
        if !caps.is_empty() {
            let list = caps.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            return Err(self.deny(
                format!("service {}: added capabilities {list} are not granted", r.service),
                &format!("cap-add = [{list}]"),
            ));
        }
        let devices: Vec<&String> = r.devices.iter().filter(|d| !self.grants.devices.contains(d)).collect();
        if !devices.is_empty() {
            let list = devices.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", ");
            return Err(self.deny(
                format!("service {}: devices {list} are not granted", r.service),
                &format!("devices = [{list}]"),
            ));
        }
        for (k, _) in &r.labels {
            if k.starts_with("com.docker.compose.") {
                return Err(DockerError::Failed(format!(
                    "service {}: label `{k}` is reserved for the host",
                    r.service
                )));
            }
        }

        let mut mounts = Vec::new();
        for m in &r.mounts {
            mounts.push(match m {
                MountRequest::Bind { source, target, read_only } => {
                    let source = self.check_bind(&r.service, source)?;
                    MountSpec::Bind { source, target: target.clone(), read_only: *read_only }
                }
                MountRequest::Volume { key, target, read_only } => {
                    if !key.is_empty() {
                        self.key("volume", key)?;
                    }
                    let source = if key.is_empty() { String::new() } else { self.network_name(key) };
                    MountSpec::Volume { source, target: target.clone(), read_only: *read_only }
                }
                MountRequest::Tmpfs { target } => MountSpec::Tmpfs { target: target.clone() },
            });
        }

        let mut labels: BTreeMap<String, String> = r.labels.iter().cloned().collect();
        labels.extend(self.base_labels());
        labels.insert(labels::SERVICE.into(), r.service.clone());
        labels.insert(labels::NUMBER.into(), r.number.to_string());
        labels.insert(labels::ONEOFF.into(), "False".into());
        labels.insert(labels::CONFIG_HASH.into(), r.config_hash.clone());
        labels.insert(labels::WORKING_DIR.into(), self.project_dir.display().to_string());
        labels.insert(
            labels::CONFIG_FILES.into(),
            self.config_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","),
        );
        labels.insert(labels::DEPENDS_ON.into(), r.depends_on.join(","));
        labels.insert(labels::IMAGE.into(), r.image.clone());

        let mut networks = Vec::new();
        if r.network_mode.is_none() {
            for (key, aliases) in &r.networks {
                self.key("network", key)?;
                networks.push((self.network_name(key), aliases.clone()));
            }
        }
        let mut ports: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for p in &r.ports {
            let proto = if p.protocol.is_empty() { "tcp" } else { p.protocol.as_str() };
            ports
                .entry(format!("{}/{proto}", p.container_port))
                .or_default()
                .push((p.host_ip.clone(), p.host_port.map(|h| h.to_string()).unwrap_or_default()));
        }
        Ok(ContainerCreate {
            name,
            image: r.image.clone(),
            cmd: r.command.clone(),
            entrypoint: r.entrypoint.clone(),
            env: r.environment.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            labels,
            ports,
            mounts,
            networks,
            network_mode: r.network_mode.clone(),
            healthcheck: r.healthcheck.clone(),
            restart: r.restart.clone(),
            hostname: r.hostname.clone(),
            user: r.user.clone(),
            working_dir: r.working_dir.clone(),
            stop_timeout_s: r.stop_grace_period_s,
            stop_signal: r.stop_signal.clone(),
            ulimits: r.ulimits.clone(),
            extra_hosts: r.extra_hosts.clone(),
            privileged: r.privileged,
            cap_add: r.cap_add.clone(),
            devices: r.devices.clone(),
            pid_mode: r.pid_mode.clone(),
            ipc_mode: r.ipc_mode.clone(),
        })
    }

    /// A bind source must exist (Docker would create a missing one as an empty directory), lie
    /// inside the project folder or a granted host path, and not be the Docker socket.
    fn check_bind(&self, service: &str, source: &str) -> Result<String, DockerError> {
        let path = Path::new(source);
        let path = if path.is_absolute() { path.to_path_buf() } else { self.project_dir.join(path) };
        let real = path.canonicalize().map_err(|_| {
            DockerError::NotFound(format!(
                "service {service}: bind source {} does not exist (Docker would create an empty directory there)",
                path.display()
            ))
        })?;
        let is_socket = {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(&real).map(|m| m.file_type().is_socket()).unwrap_or(false)
        };
        let docker_socket = real.ends_with("docker.sock") || (is_socket && real.to_string_lossy().contains("docker"));
        if docker_socket && !self.grants.docker_socket {
            return Err(self.deny(
                format!(
                    "service {service}: mounting the Docker socket ({}) would hand the container the whole engine",
                    real.display()
                ),
                "docker-socket = true",
            ));
        }
        let inside = real.starts_with(&self.project_dir)
            || self.grants.host_paths.iter().any(|p| p.canonicalize().is_ok_and(|p| real.starts_with(p)));
        if !inside && !docker_socket {
            return Err(self.deny(
                format!(
                    "service {service}: bind mount of {} is outside the project folder {}",
                    real.display(),
                    self.project_dir.display()
                ),
                &format!("host-paths = [\"{}\"]", real.display()),
            ));
        }
        Ok(real.display().to_string())
    }

    /// Creates a container (and attaches its extra networks).
    pub async fn create_container(&self, r: &ContainerRequest) -> Result<ProjectContainer, DockerError> {
        let spec = self.plan_container(r)?;
        for (network, _) in &spec.networks {
            if !self.list_networks().await?.iter().any(|n| &n.name == network) {
                return Err(DockerError::NotFound(format!(
                    "service {}: network {network} does not exist; create it first",
                    r.service
                )));
            }
        }
        let name = spec.name.clone();
        let extra: Vec<(String, Vec<String>)> = spec.networks.iter().skip(1).cloned().collect();
        self.engine.create_container(spec).await.map_err(|e| match e {
            EngineError::Conflict(m) => DockerError::Conflict(format!("container {name} already exists: {m}")),
            EngineError::NotFound(m) => DockerError::ImageUnavailable(format!("service {}: {m}", r.service)),
            other => other.into(),
        })?;
        for (network, aliases) in extra {
            self.engine.connect_network(&network, &name, aliases).await?;
        }
        self.inspect_container(&name).await
    }

    /// The project's containers (stopped ones included, one-off ones not).
    pub async fn list_containers(&self) -> Result<Vec<ProjectContainer>, DockerError> {
        let list = self.engine.list_containers(&self.project_label()).await?;
        Ok(list
            .into_iter()
            .filter(|c| c.labels.get(labels::ONEOFF).is_none_or(|v| v == "False"))
            .map(project_container)
            .collect())
    }

    /// The project container called `name`, or not-found: other containers do not exist here.
    async fn find(&self, name: &str) -> Result<ProjectContainer, DockerError> {
        self.list_containers()
            .await?
            .into_iter()
            .find(|c| c.view.name == name)
            .ok_or_else(|| DockerError::NotFound(format!("no container `{name}` in project {}", self.project)))
    }

    /// Inspects a project container.
    pub async fn inspect_container(&self, name: &str) -> Result<ProjectContainer, DockerError> {
        let found = self.find(name).await?;
        let view = self.engine.inspect_container(&found.view.id).await?;
        Ok(project_container(view))
    }

    /// Starts a project container.
    pub async fn start_container(&self, name: &str) -> Result<(), DockerError> {
        let c = self.find(name).await?;
        Ok(self.engine.start_container(&c.view.id).await?)
    }

    /// Stops a project container.
    pub async fn stop_container(&self, name: &str, timeout_s: Option<i64>) -> Result<(), DockerError> {
        let c = self.find(name).await?;
        Ok(self.engine.stop_container(&c.view.id, timeout_s).await?)
    }

    /// Restarts a project container.
    pub async fn restart_container(&self, name: &str, timeout_s: Option<i64>) -> Result<(), DockerError> {
        let c = self.find(name).await?;
        Ok(self.engine.restart_container(&c.view.id, timeout_s).await?)
    }

    /// Removes a project container (forcefully; anonymous volumes only if asked).
    pub async fn remove_container(&self, name: &str, volumes: bool) -> Result<(), DockerError> {
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
    ) -> Result<mpsc::Receiver<LogLine>, DockerError> {
        let mut targets = Vec::new();
        for n in names {
            targets.push(self.find(n).await?);
        }
        let (tx, rx) = mpsc::channel(1024);
        for c in targets {
            let mut stream = self.engine.logs(&c.view.id, tail, follow);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut partial: [String; 2] = [String::new(), String::new()];
                while let Some(Ok(chunk)) = stream.next().await {
                    let buf = &mut partial[usize::from(chunk.stderr)];
                    buf.push_str(&chunk.text);
                    while let Some(pos) = buf.find('\n') {
                        let line: String = buf.drain(..=pos).collect();
                        let line = LogLine {
                            service: c.service.clone(),
                            container: c.view.name.clone(),
                            stderr: chunk.stderr,
                            line: line.trim_end_matches(['\n', '\r']).to_string(),
                        };
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
                for (i, rest) in partial.iter().enumerate() {
                    if !rest.is_empty() {
                        let line = LogLine {
                            service: c.service.clone(),
                            container: c.view.name.clone(),
                            stderr: i == 1,
                            line: rest.clone(),
                        };
                        let _ = tx.send(line).await;
                    }
                }
            });
        }
        Ok(rx)
    }

    /// Subscribes to state and health changes of the project's containers.
    pub fn subscribe_events(&self) -> mpsc::Receiver<Result<ProjectEvent, DockerError>> {
        let (tx, rx) = mpsc::channel(1024);
        let mut stream = self.engine.events(&self.project_label());
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let item = item.map_err(DockerError::from).map(|e| ProjectEvent {
                    service: e.labels.get(labels::SERVICE).cloned().unwrap_or_default(),
                    container: e.container,
                    action: e.action,
                });
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        rx
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

/// An image reference: no whitespace or control characters, no leading `-` (an option).
fn check_image(image: &str) -> Result<(), DockerError> {
    if image.is_empty()
        || image.starts_with('-')
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
        || image.len() > 512
    {
        return Err(DockerError::Failed(format!("`{image}` is not an image reference")));
    }
    Ok(())
}
