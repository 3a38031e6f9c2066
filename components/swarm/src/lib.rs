//! The Swarm deployment driver: deploys a compose project as a Docker Swarm stack through the
//! host's stack-scoped `swarm` capability (`operator:swarm`), with the DeploymentTarget
//! contract of `operator:core` (`up`, `down`, `status`, `logs`, `restart`).
//!
//! The compose files are read by the compose driver's own parser, interpolation, model and
//! loader, compiled into this crate from `components/compose/src` (`#[path]` modules) rather
//! than linked as a library: every component is built in one cargo invocation, and a library
//! dependency would link compose's exports into this component. Both crates generate their
//! `bindings` so that `crate::bindings::operator::core::docker` and the deployment-target
//! types sit at the same paths. What Swarm makes of the model is `driver`'s.
//!
//! The driver never calls `operator:core/docker` (the host refuses it to a Swarm driver); it
//! uses that interface's types and the `log-stream` that `swarm.service-logs` returns.

pub mod driver;
#[path = "../../compose/src/interpolate.rs"]
pub mod interpolate;
#[path = "../../compose/src/model.rs"]
pub mod model;
#[path = "../../compose/src/project.rs"]
pub mod project;
#[path = "../../compose/src/yaml.rs"]
pub mod yaml;

/// Generated bindings for `world swarm-driver` (`wit/swarm/since_v0.1.0`), which includes
/// `operator:core`'s `deployment-driver` and imports `operator:swarm/swarm`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/swarm/since_v0.1.0",
        world: "swarm-driver",
        additional_derives: [PartialEq, Clone, serde::Serialize],
        // `operator:core/sandbox` (the denial record) is reached only through `docker`.
        generate_all,
    });
}

use bindings::exports::operator::core::deployment_target::{
    DeployError, Guest, LogOptions, LogStream, Project, ServiceStatus, UpOptions,
};
use bindings::operator::core::docker::{DockerError, NetworkInfo, VolumeInfo};
use bindings::operator::core::log::{self, Level};
use bindings::operator::core::progress::{self, Phase};
use bindings::operator::swarm::swarm::{self, ServiceInfo, ServiceSpec, TaskInfo};

/// The host imports, for the component build.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct WasmHost;

impl driver::Host for WasmHost {
    fn swarm_active(&self) -> Result<bool, DockerError> {
        swarm::swarm_active()
    }
    fn create_network(&self, key: &str) -> Result<NetworkInfo, DockerError> {
        swarm::create_network(key)
    }
    fn remove_network(&self, key: &str) -> Result<(), DockerError> {
        swarm::remove_network(key)
    }
    fn list_networks(&self) -> Result<Vec<NetworkInfo>, DockerError> {
        swarm::list_networks()
    }
    fn create_volume(&self, key: &str) -> Result<VolumeInfo, DockerError> {
        swarm::create_volume(key)
    }
    fn remove_volume(&self, key: &str) -> Result<(), DockerError> {
        swarm::remove_volume(key)
    }
    fn list_volumes(&self) -> Result<Vec<VolumeInfo>, DockerError> {
        swarm::list_volumes()
    }
    fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        swarm::image_present(image)
    }
    fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
        swarm::create_service(spec)
    }
    fn update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
        swarm::update_service(spec)
    }
    fn force_update_service(&self, spec: &ServiceSpec) -> Result<ServiceInfo, DockerError> {
        swarm::force_update_service(spec)
    }
    fn remove_service(&self, service: &str) -> Result<(), DockerError> {
        swarm::remove_service(service)
    }
    fn list_services(&self) -> Result<Vec<ServiceInfo>, DockerError> {
        swarm::list_services()
    }
    fn list_tasks(&self, service: Option<&str>) -> Result<Vec<TaskInfo>, DockerError> {
        swarm::list_tasks(service)
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
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

impl Guest for Driver {
    fn up(project: Project, options: UpOptions) -> Result<Vec<ServiceStatus>, DeployError> {
        driver::up(&project, &options, &WasmHost)
    }

    fn down(project: Project, remove_volumes: bool) -> Result<(), DeployError> {
        driver::down(&project, remove_volumes, &WasmHost)
    }

    fn status(project: Project) -> Result<Vec<ServiceStatus>, DeployError> {
        driver::status(&project, &WasmHost)
    }

    fn logs(project: Project, options: LogOptions) -> Result<LogStream, DeployError> {
        let services = driver::log_targets(&project, &options, &WasmHost)?;
        swarm::service_logs(&services, options.tail, options.follow)
            .map_err(|e| DeployError::Docker(driver::describe(&e)))
    }

    fn restart(project: Project, services: Vec<String>) -> Result<(), DeployError> {
        driver::restart(&project, &services, &WasmHost)
    }
}

// Exported only from the wasm build (export symbol names cannot go into a native library).
#[cfg(target_arch = "wasm32")]
bindings::export!(Driver with_types_in bindings);
