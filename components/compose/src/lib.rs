//! The compose deployment driver: brings a compose project up and down through the host's
//! project-scoped `docker` capability, following compose's semantics (naming, labels,
//! `depends_on` conditions, healthchecks, `--wait`, interpolation and `.env`, idempotent `up`,
//! `down` from labels alone).
//!
//! Parsing, interpolation and planning run here, in the sandbox; the host only executes a
//! small set of Docker operations and refuses anything outside the project.
//!
//! `yaml`, `interpolate`, `model` and `project` (the loader) are shared by source with the
//! Swarm driver (`components/swarm`), so they use only the contract's types, never `driver`'s
//! `Host`.

pub mod driver;
pub mod interpolate;
pub mod model;
pub mod project;
pub mod yaml;

/// Generated bindings for `world deployment-driver`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/since_v0.1.0",
        world: "deployment-driver",
        additional_derives: [PartialEq, Clone, serde::Serialize],
    });
}

use std::cell::RefCell;

use bindings::exports::operator::core::deployment_target::{
    DeployError, Guest, LogOptions, LogStream, Project, ServiceStatus, UpOptions,
};
use bindings::operator::core::docker::{self, ContainerEvent, ContainerInfo, ContainerSpec, DockerError, EventStream};
use bindings::operator::core::log::{self, Level};
use bindings::operator::core::progress::{self, Phase};

/// The host imports, for the component build.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct WasmHost {
    events: RefCell<Option<EventStream>>,
}

impl driver::Host for WasmHost {
    fn create_network(&self, key: &str) -> Result<docker::NetworkInfo, DockerError> {
        docker::create_network(key)
    }
    fn remove_network(&self, key: &str) -> Result<(), DockerError> {
        docker::remove_network(key)
    }
    fn list_networks(&self) -> Result<Vec<docker::NetworkInfo>, DockerError> {
        docker::list_networks()
    }
    fn create_volume(&self, key: &str) -> Result<docker::VolumeInfo, DockerError> {
        docker::create_volume(key)
    }
    fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
        docker::remove_volume(key)
    }
    fn list_volumes(&self) -> Result<Vec<docker::VolumeInfo>, DockerError> {
        docker::list_volumes()
    }
    fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        docker::image_present(image)
    }
    fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        docker::pull_image(image)
    }
    fn create_container(&self, spec: &ContainerSpec) -> Result<ContainerInfo, DockerError> {
        docker::create_container(spec)
    }
    fn start_container(&self, name: &str) -> Result<(), DockerError> {
        docker::start_container(name)
    }
    fn stop_container(&self, name: &str, timeout_ms: Option<u64>) -> Result<(), DockerError> {
        docker::stop_container(name, timeout_ms)
    }
    fn restart_container(&self, name: &str, timeout_ms: Option<u64>) -> Result<(), DockerError> {
        docker::restart_container(name, timeout_ms)
    }
    fn remove_container(&self, name: &str, volumes: bool) -> Result<(), DockerError> {
        docker::remove_container(name, volumes)
    }
    fn inspect_container(&self, name: &str) -> Result<ContainerInfo, DockerError> {
        docker::inspect_container(name)
    }
    fn list_containers(&self) -> Result<Vec<ContainerInfo>, DockerError> {
        docker::list_containers()
    }
    fn next_events(&self, timeout_ms: u32) -> Result<Vec<ContainerEvent>, DockerError> {
        match self.events.borrow().as_ref() {
            Some(stream) => stream.next(timeout_ms),
            None => {
                std::thread::sleep(std::time::Duration::from_millis(timeout_ms.into()));
                Ok(Vec::new())
            }
        }
    }
    fn subscribe(&self) -> Result<(), DockerError> {
        *self.events.borrow_mut() = Some(docker::subscribe_events()?);
        Ok(())
    }
    fn now_ms(&self) -> u64 {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
    }
    fn progress(&self, task: &str, phase: Phase, detail: &str) {
        progress::report(task, phase, detail);
    }
    fn log(&self, level: Level, message: &str) {
        log::log(level, message);
    }
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Driver;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn host() -> WasmHost {
    WasmHost { events: RefCell::new(None) }
}

impl Guest for Driver {
    fn up(project: Project, options: UpOptions) -> Result<Vec<ServiceStatus>, DeployError> {
        driver::up(&project, &options, &host())
    }

    fn down(project: Project, remove_volumes: bool) -> Result<(), DeployError> {
        driver::down(&project, remove_volumes, &host())
    }

    fn status(project: Project) -> Result<Vec<ServiceStatus>, DeployError> {
        driver::status(&project, &host())
    }

    fn logs(project: Project, options: LogOptions) -> Result<LogStream, DeployError> {
        let names = driver::log_targets(&project, &options, &host())?;
        docker::container_logs(&names, options.tail, options.follow)
            .map_err(|e| DeployError::Docker(driver::describe(&e)))
    }

    fn restart(project: Project, services: Vec<String>) -> Result<(), DeployError> {
        driver::restart(&project, &services, &host())
    }
}

// Exported only from the wasm build (export symbol names cannot go into a native library).
#[cfg(target_arch = "wasm32")]
bindings::export!(Driver with_types_in bindings);
