//! The Docker operations the scoped capability needs, as a plain trait over plain types, so the
//! scoping policy can be tested against an in-memory engine and runs against bollard for real.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use futures::stream::BoxStream;

/// A boxed future (the trait is used as `dyn`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What went wrong talking to the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The daemon could not be reached at all.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An image is missing and cannot be pulled.
    #[error("{0}")]
    ImageUnavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// A network as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkView {
    pub name: String,
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

/// A volume as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
    pub host_port: Option<u16>,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    /// `starting`, `healthy`, `unhealthy`; none without a healthcheck.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub status: String,
    pub ports: Vec<PortView>,
}

/// A mount for a new container (after the scope resolved names and checked grants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// An absolute host path.
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// A named volume (full engine name) or, with an empty source, an anonymous one.
    Volume {
        source: String,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
    },
}

/// A healthcheck with durations in nanoseconds, as the engine wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub retries: i64,
    pub start_period_ns: i64,
    pub start_interval_ns: i64,
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCreate {
    pub name: String,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `2379/tcp` → published bindings (host ip, host port; empty port = ephemeral).
    pub ports: BTreeMap<String, Vec<(String, String)>>,
    pub mounts: Vec<MountSpec>,
    /// Network name → aliases; the first network is the primary one.
    pub networks: Vec<(String, Vec<String>)>,
    pub network_mode: Option<String>,
    pub healthcheck: Option<HealthSpec>,
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub restart: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_timeout_s: Option<i64>,
    pub stop_signal: Option<String>,
    pub ulimits: Vec<(String, i64, i64)>,
    pub extra_hosts: Vec<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub devices: Vec<String>,
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
}

/// Progress of an image pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub image: String,
    /// Bytes downloaded and total, over the layers seen so far.
    pub current: u64,
    pub total: u64,
    pub status: String,
}

/// One log line of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stderr: bool,
    pub text: String,
}

/// An engine event about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub container: String,
    pub action: String,
    pub labels: BTreeMap<String, String>,
}

/// The engine operations the scoped capability is built on.
pub trait DockerEngine: Send + Sync {
    /// Where the engine is (for messages).
    fn describe(&self) -> String;
    fn ping(&self) -> BoxFut<'_, Result<(), EngineError>>;

    fn list_networks(&self, label: &str) -> BoxFut<'_, Result<Vec<NetworkView>, EngineError>>;
    fn inspect_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<NetworkView, EngineError>>;
    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<String, EngineError>>;
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    /// Attaches a created container to one more network, with DNS aliases.
    fn connect_network<'a>(
        &'a self,
        network: &'a str,
        container: &'a str,
        aliases: Vec<String>,
    ) -> BoxFut<'a, Result<(), EngineError>>;

    fn list_volumes(&self, label: &str) -> BoxFut<'_, Result<Vec<VolumeView>, EngineError>>;
    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<(), EngineError>>;
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>>;

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>>;
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> BoxFut<'a, Result<(), EngineError>>;

    fn create_container(&self, spec: ContainerCreate) -> BoxFut<'_, Result<String, EngineError>>;
    fn start_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    fn stop_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>>;
    fn restart_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>>;
    fn remove_container<'a>(&'a self, name: &'a str, volumes: bool) -> BoxFut<'a, Result<(), EngineError>>;
    fn inspect_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ContainerView, EngineError>>;
    /// All containers (stopped ones too) carrying `label` (`key=value`).
    fn list_containers(&self, label: &str) -> BoxFut<'_, Result<Vec<ContainerView>, EngineError>>;

    fn logs(&self, name: &str, tail: Option<u32>, follow: bool) -> BoxStream<'static, Result<LogChunk, EngineError>>;
    fn events(&self, label: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>>;
}
