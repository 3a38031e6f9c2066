//! The `docker` capability: Docker operations for a deployment driver, scoped to its project.
//!
//! - [`scope`]: the project (identity, ownership, names) and the operations on it;
//! - [`plan`]: a `container-spec` checked step by step into the engine's create body, with
//!   [`binds`] deciding which host paths may be mounted and how, and [`grants`] what the
//!   manifest allows beyond the defaults;
//! - [`streams`]: bounded log and event streams; [`image`]: references and registries;
//! - [`engine`]: the engine as a plain trait; [`bollard_engine`]: the real one;
//! - this module: the glue to the WIT interface.
//!
//! A component that was not started for a project (no [`ScopedDocker`] in its policy) gets
//! `denied` for every operation.

pub mod binds;
pub mod bollard_engine;
pub mod engine;
pub mod error;
pub mod grants;
pub mod image;
#[cfg(test)]
pub mod memory;
pub mod plan;
pub mod scope;
pub mod streams;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Resource, ResourceTable};

use super::context::CallContext;
use crate::bindings::docker as wit;
pub use engine::EngineError;
pub use error::DockerError;
pub use grants::DockerGrants;
use scope::ProjectContainer;
pub use scope::{Project, ScopedDocker};
use streams::StreamSlots;
pub use streams::{EventStream, LogLine, LogStream};

/// Longest wait a guest may ask of a stream in one call.
const MAX_STREAM_WAIT: Duration = Duration::from_secs(60);

/// The `docker` capability of one call: the project scope (if the call has one), the call's
/// open streams and their table.
pub struct DockerHost {
    scope: Option<Arc<ScopedDocker>>,
    /// The Swarm stack scope (`operator:swarm/swarm`), for a Swarm driver; its log streams live
    /// in this capability's table beside the container ones.
    pub(crate) swarm: Option<Arc<crate::capability::swarm::ScopedSwarm>>,
    pub(crate) streams: StreamSlots,
    pub(crate) table: ResourceTable,
    pub(crate) context: Arc<CallContext>,
}

impl DockerHost {
    /// The capability for a call with `context`; `scope` `None` denies every operation.
    pub fn new(scope: Option<Arc<ScopedDocker>>, context: Arc<CallContext>) -> Self {
        DockerHost { scope, swarm: None, streams: StreamSlots::default(), table: ResourceTable::new(), context }
    }

    /// The same capability serving a Swarm stack scope too.
    pub fn with_swarm(mut self, swarm: Option<Arc<crate::capability::swarm::ScopedSwarm>>) -> Self {
        self.swarm = swarm;
        self
    }
}

/// A Docker error for the guest; a denial is recorded for the call's report.
pub(crate) fn to_wit_error(context: &CallContext, e: DockerError) -> wit::DockerError {
    match e {
        DockerError::Denied { reason, hint } => wit::DockerError::Denied(context.deny("docker", reason, hint)),
        DockerError::Invalid(m) => wit::DockerError::Invalid(m),
        DockerError::Engine(EngineError::NotFound(m)) => wit::DockerError::NotFound(m),
        DockerError::Engine(EngineError::Conflict(m)) => wit::DockerError::Conflict(m),
        DockerError::Engine(EngineError::ImageUnavailable(m)) => wit::DockerError::ImageUnavailable(m),
        DockerError::Engine(EngineError::Unavailable(m)) => wit::DockerError::Unavailable(m),
        DockerError::LimitExceeded(m) => wit::DockerError::LimitExceeded(m),
        DockerError::Engine(EngineError::Failed(m)) => wit::DockerError::Failed(m),
    }
}

fn info(c: ProjectContainer) -> wit::ContainerInfo {
    wit::ContainerInfo {
        id: c.view.id,
        name: c.view.name,
        service: c.service,
        number: c.number,
        image: c.view.image,
        state: c.view.state,
        health: c.view.health,
        exit_code: c.view.exit_code,
        status: c.view.status,
        ports: c
            .view
            .ports
            .into_iter()
            .map(|p| wit::PortBinding {
                container_port: p.container_port,
                protocol: match p.protocol.as_str() {
                    "udp" => wit::Protocol::Udp,
                    "sctp" => wit::Protocol::Sctp,
                    _ => wit::Protocol::Tcp,
                },
                host_ip: (!p.host_ip.is_empty()).then_some(p.host_ip),
                host_port: p.host_port,
            })
            .collect(),
        config_hash: c.config_hash,
        depends_on: c.depends_on,
    }
}

/// How many containers a log stream over `names` reads.
pub(crate) fn unique_sources(names: &[String]) -> usize {
    let mut unique: Vec<&String> = names.iter().collect();
    unique.sort();
    unique.dedup();
    unique.len()
}

fn seconds(ms: Option<u64>) -> Option<i64> {
    ms.map(|ms| i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX))
}

impl DockerHost {
    /// Runs a scoped Docker operation under the host-time budget, recording denials.
    async fn docker<T, F, Fut>(&mut self, operation: &str, op: F) -> wasmtime::Result<Result<T, wit::DockerError>>
    where
        F: FnOnce(Arc<ScopedDocker>) -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        let Some(docker) = self.scope.clone() else {
            let (reason, hint) = if self.swarm.is_some() {
                (
                    format!(
                        "docker {operation} is not granted: a Swarm driver acts through `operator:swarm/swarm`, not on \
                         containers"
                    ),
                    "`operator deploy swarm` needs a Swarm driver (the built-in `swarm`); `operator deploy local` runs \
                     container drivers such as `compose`"
                        .to_string(),
                )
            } else {
                (
                    format!("docker {operation} is not granted: this component was not started as a deployment driver"),
                    "Docker is granted only to deployment drivers run by `operator deploy`".to_string(),
                )
            };
            return Ok(Err(wit::DockerError::Denied(self.context.deny("docker", reason, hint))));
        };
        Ok(self.context.wait_budget(op(docker)).await?.map_err(|e| to_wit_error(&self.context, e)))
    }

    /// Takes a log stream the guest returned, so the host can drain it after the call.
    pub(crate) fn take_log_stream(&mut self, stream: Resource<LogStream>) -> wasmtime::Result<LogStream> {
        let mut stream = self.table.delete(stream)?;
        stream.release();
        Ok(stream)
    }
}

impl wit::Host for DockerHost {
    async fn project_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.as_ref().map(|d| d.project().to_string()).unwrap_or_default())
    }
    async fn create_network(&mut self, key: String) -> wasmtime::Result<Result<wit::NetworkInfo, wit::DockerError>> {
        self.docker("create-network", |d| async move {
            let n = d.create_network(&key).await?;
            Ok(wit::NetworkInfo { key, name: n.name, id: n.id })
        })
        .await
    }
    async fn remove_network(&mut self, key: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker("remove-network", |d| async move { d.remove_network(&key).await }).await
    }
    async fn list_networks(&mut self) -> wasmtime::Result<Result<Vec<wit::NetworkInfo>, wit::DockerError>> {
        self.docker("list-networks", |d| async move {
            let list = d.list_networks().await?;
            Ok(list.into_iter().map(|(key, n)| wit::NetworkInfo { key, name: n.name, id: n.id }).collect())
        })
        .await
    }
    async fn create_volume(&mut self, key: String) -> wasmtime::Result<Result<wit::VolumeInfo, wit::DockerError>> {
        self.docker("create-volume", |d| async move {
            let v = d.create_volume(&key).await?;
            Ok(wit::VolumeInfo { key, name: v.name })
        })
        .await
    }
    async fn remove_volume(&mut self, key: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker("remove-volume", |d| async move { d.remove_volume(&key).await }).await
    }
    async fn list_volumes(&mut self) -> wasmtime::Result<Result<Vec<wit::VolumeInfo>, wit::DockerError>> {
        self.docker("list-volumes", |d| async move {
            let list = d.list_volumes().await?;
            Ok(list.into_iter().map(|(key, v)| wit::VolumeInfo { key, name: v.name }).collect())
        })
        .await
    }
    async fn image_present(&mut self, image: String) -> wasmtime::Result<Result<bool, wit::DockerError>> {
        self.docker("image-present", |d| async move { d.image_present(&image).await }).await
    }
    async fn pull_image(&mut self, image: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker("pull-image", |d| async move { d.pull_image(&image).await }).await
    }
    async fn create_container(
        &mut self,
        spec: wit::ContainerSpec,
    ) -> wasmtime::Result<Result<wit::ContainerInfo, wit::DockerError>> {
        self.docker("create-container", |d| async move { d.create_container(&spec).await.map(info) }).await
    }
    async fn start_container(&mut self, name: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker("start-container", |d| async move { d.start_container(&name).await }).await
    }
    async fn stop_container(
        &mut self,
        name: String,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        let t = seconds(timeout_ms);
        self.docker("stop-container", |d| async move { d.stop_container(&name, t).await }).await
    }
    async fn restart_container(
        &mut self,
        name: String,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        let t = seconds(timeout_ms);
        self.docker("restart-container", |d| async move { d.restart_container(&name, t).await }).await
    }
    async fn remove_container(
        &mut self,
        name: String,
        remove_volumes: bool,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker("remove-container", |d| async move { d.remove_container(&name, remove_volumes).await }).await
    }
    async fn inspect_container(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<wit::ContainerInfo, wit::DockerError>> {
        self.docker("inspect-container", |d| async move { d.inspect_container(&name).await.map(info) }).await
    }
    async fn list_containers(&mut self) -> wasmtime::Result<Result<Vec<wit::ContainerInfo>, wit::DockerError>> {
        self.docker(
            "list-containers",
            |d| async move { Ok(d.list_containers().await?.into_iter().map(info).collect()) },
        )
        .await
    }
    async fn container_logs(
        &mut self,
        names: Vec<String>,
        tail: Option<u32>,
        follow: bool,
    ) -> wasmtime::Result<Result<Resource<LogStream>, wit::DockerError>> {
        let slot = match self.streams.acquire(unique_sources(&names)) {
            Ok(slot) => slot,
            Err(e) => return Ok(Err(to_wit_error(&self.context, e))),
        };
        let mut stream =
            match self.docker("container-logs", |d| async move { d.container_logs(&names, tail, follow).await }).await?
            {
                Ok(stream) => stream,
                Err(e) => return Ok(Err(e)),
            };
        stream.hold(slot);
        Ok(Ok(self.table.push(stream)?))
    }
    async fn subscribe_events(&mut self) -> wasmtime::Result<Result<Resource<EventStream>, wit::DockerError>> {
        let slot = match self.streams.acquire(1) {
            Ok(slot) => slot,
            Err(e) => return Ok(Err(to_wit_error(&self.context, e))),
        };
        let mut stream = match self.docker("subscribe-events", |d| async move { Ok(d.subscribe_events()) }).await? {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(e)),
        };
        stream.hold(slot);
        Ok(Ok(self.table.push(stream)?))
    }
}

impl wit::HostLogStream for DockerHost {
    async fn next(
        &mut self,
        stream: Resource<LogStream>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Option<Vec<wit::LogLine>>, wit::DockerError>> {
        let timeout = Duration::from_millis(timeout_ms.into()).min(MAX_STREAM_WAIT);
        let s = self.table.get_mut(&stream)?;
        let batch = self.context.wait_budget(s.next_batch(timeout)).await?;
        Ok(Ok(batch.map(|lines| {
            lines
                .into_iter()
                .map(|l| wit::LogLine {
                    service: l.service,
                    container: l.container,
                    source: if l.stderr { wit::LogSource::Stderr } else { wit::LogSource::Stdout },
                    line: l.line,
                })
                .collect()
        })))
    }
    async fn drop(&mut self, stream: Resource<LogStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl wit::HostEventStream for DockerHost {
    async fn next(
        &mut self,
        stream: Resource<EventStream>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<wit::ContainerEvent>, wit::DockerError>> {
        let timeout = Duration::from_millis(timeout_ms.into()).min(MAX_STREAM_WAIT);
        let s = self.table.get_mut(&stream)?;
        Ok(match self.context.wait_budget(s.next_batch(timeout)).await? {
            Ok(events) => Ok(events
                .into_iter()
                .map(|e| wit::ContainerEvent { container: e.container, service: e.service, action: e.action })
                .collect()),
            Err(e) => Err(to_wit_error(&self.context, e)),
        })
    }
    async fn drop(&mut self, stream: Resource<EventStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
