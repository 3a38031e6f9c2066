//! The `docker` capability, as far as the runtime grants it today: not at all.
//!
//! The contract (`wit/docker.wit`) is linked so that deployment drivers load, inspect and run;
//! every operation answers `denied` with the reason, because no command of this runtime grants
//! Docker yet. The project-scoped implementation on bollard arrives with `operator deploy`.

use wasmtime::component::Resource;

use crate::bindings::docker as wit;
use crate::bindings::sandbox::Denial;
use crate::sandbox::{Denial as RecordedDenial, HostState};

/// Host side of a `log-stream` handed to a guest.
#[derive(Debug)]
pub struct LogStream;

/// Host side of an `event-stream` handed to a guest.
#[derive(Debug)]
pub struct EventStream;

impl HostState {
    fn docker_denied<T>(&mut self, operation: &str) -> wasmtime::Result<Result<T, wit::DockerError>> {
        let reason =
            format!("docker {operation} is not granted: this component was not started as a deployment driver");
        let hint = "Docker is granted only to deployment drivers run by `operator deploy`".to_string();
        self.denials.push(RecordedDenial { capability: "docker".into(), reason: reason.clone(), hint: hint.clone() });
        Ok(Err(wit::DockerError::Denied(Denial { reason, hint })))
    }
}

impl wit::Host for HostState {
    async fn project_name(&mut self) -> wasmtime::Result<String> {
        Ok(String::new())
    }
    async fn create_network(&mut self, _key: String) -> wasmtime::Result<Result<wit::NetworkInfo, wit::DockerError>> {
        self.docker_denied("create-network")
    }
    async fn remove_network(&mut self, _key: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("remove-network")
    }
    async fn list_networks(&mut self) -> wasmtime::Result<Result<Vec<wit::NetworkInfo>, wit::DockerError>> {
        self.docker_denied("list-networks")
    }
    async fn create_volume(&mut self, _key: String) -> wasmtime::Result<Result<wit::VolumeInfo, wit::DockerError>> {
        self.docker_denied("create-volume")
    }
    async fn remove_volume(&mut self, _key: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("remove-volume")
    }
    async fn list_volumes(&mut self) -> wasmtime::Result<Result<Vec<wit::VolumeInfo>, wit::DockerError>> {
        self.docker_denied("list-volumes")
    }
    async fn image_present(&mut self, _image: String) -> wasmtime::Result<Result<bool, wit::DockerError>> {
        self.docker_denied("image-present")
    }
    async fn pull_image(&mut self, _image: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("pull-image")
    }
    async fn create_container(
        &mut self,
        _spec: wit::ContainerSpec,
    ) -> wasmtime::Result<Result<wit::ContainerInfo, wit::DockerError>> {
        self.docker_denied("create-container")
    }
    async fn start_container(&mut self, _name: String) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("start-container")
    }
    async fn stop_container(
        &mut self,
        _name: String,
        _timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("stop-container")
    }
    async fn restart_container(
        &mut self,
        _name: String,
        _timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("restart-container")
    }
    async fn remove_container(
        &mut self,
        _name: String,
        _remove_volumes: bool,
    ) -> wasmtime::Result<Result<(), wit::DockerError>> {
        self.docker_denied("remove-container")
    }
    async fn inspect_container(
        &mut self,
        _name: String,
    ) -> wasmtime::Result<Result<wit::ContainerInfo, wit::DockerError>> {
        self.docker_denied("inspect-container")
    }
    async fn list_containers(&mut self) -> wasmtime::Result<Result<Vec<wit::ContainerInfo>, wit::DockerError>> {
        self.docker_denied("list-containers")
    }
    async fn container_logs(
        &mut self,
        _names: Vec<String>,
        _tail: Option<u32>,
        _follow: bool,
    ) -> wasmtime::Result<Result<Resource<LogStream>, wit::DockerError>> {
        self.docker_denied("container-logs")
    }
    async fn subscribe_events(&mut self) -> wasmtime::Result<Result<Resource<EventStream>, wit::DockerError>> {
        self.docker_denied("subscribe-events")
    }
}

impl wit::HostLogStream for HostState {
    async fn next(
        &mut self,
        stream: Resource<LogStream>,
        _timeout_ms: u32,
    ) -> wasmtime::Result<Result<Option<Vec<wit::LogLine>>, wit::DockerError>> {
        self.table().get(&stream)?;
        Ok(Ok(None))
    }
    async fn drop(&mut self, stream: Resource<LogStream>) -> wasmtime::Result<()> {
        self.table().delete(stream)?;
        Ok(())
    }
}

impl wit::HostEventStream for HostState {
    async fn next(
        &mut self,
        stream: Resource<EventStream>,
        _timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<wit::ContainerEvent>, wit::DockerError>> {
        self.table().get(&stream)?;
        Ok(Ok(Vec::new()))
    }
    async fn drop(&mut self, stream: Resource<EventStream>) -> wasmtime::Result<()> {
        self.table().delete(stream)?;
        Ok(())
    }
}
