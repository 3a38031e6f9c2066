//! The Docker operations the scoped capability needs, as a plain trait, so the scoping policy
//! is tested against an in-memory engine ([`super::memory`]) and runs against bollard for real.
//!
//! Reads come back as small views; a container is created from bollard's own
//! `ContainerCreateBody`, built by the scope's checked plan, so nothing is converted again
//! between the check and the engine.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use bollard::models::ContainerCreateBody;
use futures::stream::BoxStream;

use super::binds::EngineLocation;

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
    /// Host paths bound into it, as the engine recorded them.
    pub binds: Vec<BindView>,
}

/// A bind mount of a container: the host path and whether it is read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindView {
    pub source: String,
    pub read_only: bool,
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
    /// Whether host paths given to the engine are this machine's, and where its socket is.
    fn location(&self) -> EngineLocation;
    /// Where the engine keeps images, containers and volumes (`/var/lib/docker`): containers
    /// write below it, so nothing there may decide a grant or be bound.
    fn data_root(&self) -> BoxFut<'_, Result<Option<std::path::PathBuf>, EngineError>>;
    fn ping(&self) -> BoxFut<'_, Result<(), EngineError>>;

    /// Networks carrying every label of `labels` (`key=value` each).
    fn list_networks<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<NetworkView>, EngineError>>;
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

    /// Volumes carrying every label of `labels`.
    fn list_volumes<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<VolumeView>, EngineError>>;
    fn inspect_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<VolumeView, EngineError>>;
    /// Creates a volume. Docker answers an existing name with the existing volume (whatever
    /// its labels), so callers inspect it afterwards.
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

    /// Creates a container called `name`; returns its id.
    fn create_container<'a>(
        &'a self,
        name: &'a str,
        body: ContainerCreateBody,
    ) -> BoxFut<'a, Result<String, EngineError>>;
    fn start_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    fn stop_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>>;
    fn restart_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>>;
    fn remove_container<'a>(&'a self, name: &'a str, volumes: bool) -> BoxFut<'a, Result<(), EngineError>>;
    fn inspect_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ContainerView, EngineError>>;
    /// All containers (stopped ones too) carrying every label of `labels`.
    fn list_containers<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<ContainerView>, EngineError>>;

    fn logs(&self, name: &str, tail: Option<u32>, follow: bool) -> BoxStream<'static, Result<LogChunk, EngineError>>;
    /// Container events of containers carrying every label of `labels`.
    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, EngineError>>;
}
