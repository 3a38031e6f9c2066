//! The Swarm operations the stack-scoped capability needs, as a plain trait beside
//! [`DockerEngine`] (networks, volumes and images are the same engine calls), so the scope is
//! tested against an in-memory swarm and runs against bollard for real.
//!
//! A service is created from bollard's own `ServiceSpec`, built by the scope's checked plan;
//! reads come back as small views.

use std::collections::BTreeMap;

use bollard::models::{EndpointPortConfig, ServiceSpec};
use futures::stream::BoxStream;

use crate::capability::docker::engine::{BoxFut, DockerEngine, EngineError, LogChunk};

/// Whether the engine can run services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmState {
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    pub local_node_state: String,
    /// The node is a manager (services can be created through it).
    pub manager: bool,
    pub nodes: Option<i64>,
}

/// A service as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    /// The object version an update must name.
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    pub spec: ServiceSpec,
    /// Ports as published (with the ports Swarm assigned).
    pub ports: Vec<EndpointPortConfig>,
    pub update_state: Option<String>,
    pub update_message: Option<String>,
}

/// A task as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub id: String,
    pub service_id: String,
    pub slot: Option<u32>,
    pub node_id: String,
    pub state: String,
    pub desired_state: String,
    pub message: String,
    pub error: Option<String>,
    pub container_id: Option<String>,
    pub exit_code: Option<i64>,
    pub timestamp: String,
}

/// Swarm operations, on top of the container engine's networks, volumes and images.
pub trait SwarmEngine: DockerEngine {
    fn swarm_state(&self) -> BoxFut<'_, Result<SwarmState, EngineError>>;
    /// Creates an overlay network; returns its id.
    fn create_overlay_network<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<String, EngineError>>;
    /// Services carrying every label of `labels` (`key=value` each).
    fn list_services<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<ServiceView>, EngineError>>;
    fn inspect_service<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ServiceView, EngineError>>;
    /// Creates a service; returns its id.
    fn create_service(&self, spec: ServiceSpec) -> BoxFut<'_, Result<String, EngineError>>;
    /// Replaces the spec of service `id` at object version `version`.
    fn update_service<'a>(
        &'a self,
        id: &'a str,
        spec: ServiceSpec,
        version: u64,
    ) -> BoxFut<'a, Result<(), EngineError>>;
    fn remove_service<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>>;
    /// Tasks of the services with these ids (none: no task).
    fn list_tasks<'a>(&'a self, service_ids: &'a [String]) -> BoxFut<'a, Result<Vec<TaskView>, EngineError>>;
    fn service_logs(
        &self,
        id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> BoxStream<'static, Result<LogChunk, EngineError>>;
}
