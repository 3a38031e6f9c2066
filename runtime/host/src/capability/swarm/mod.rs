//! The `swarm` capability (`operator:swarm/swarm`): Docker Swarm operations for a deployment
//! driver, scoped to one stack.
//!
//! - [`scope`]: the stack (names, ownership, what exists) and the operations on it;
//! - [`plan`]: a `service-spec` checked into bollard's `ServiceSpec`, through the container
//!   planner's own steps;
//! - [`engine`]: the Swarm calls as a plain trait; [`bollard`]: the real one;
//! - this module: the glue to the WIT interface, implemented on [`DockerHost`] so a service's
//!   log stream is the same `log-stream` resource the container capability hands out.
//!
//! A component that was not started for a stack gets `denied` for every operation; a Swarm
//! driver, in turn, gets `denied` for every container operation of `operator:core/docker`.

pub mod bollard;
pub mod engine;
pub mod plan;
pub mod scope;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::docker as dwit;
use crate::bindings::swarm as wit;
use crate::capability::docker::{DockerError, DockerHost, LogStream, to_wit_error, unique_sources};
pub use engine::SwarmEngine;
pub use scope::{ScopedSwarm, StackService, StackTask};

impl DockerHost {
    /// Runs a stack-scoped operation under the host-time budget, recording denials.
    async fn swarm<T, F, Fut>(&mut self, operation: &str, op: F) -> wasmtime::Result<Result<T, dwit::DockerError>>
    where
        F: FnOnce(Arc<ScopedSwarm>) -> Fut,
        Fut: Future<Output = Result<T, DockerError>>,
    {
        let Some(swarm) = self.swarm.clone() else {
            let reason = format!("swarm {operation} is not granted: this component was not started as a Swarm driver");
            let hint = "Swarm is granted only to drivers run by `operator deploy swarm`".to_string();
            return Ok(Err(dwit::DockerError::Denied(self.context.deny("swarm", reason, hint))));
        };
        Ok(self.context.wait_budget(op(swarm)).await?.map_err(|e| to_wit_error(&self.context, e)))
    }
}

fn mode(spec: Option<&::bollard::models::ServiceSpecMode>) -> wit::ServiceMode {
    match spec {
        Some(m) if m.global.is_some() => wit::ServiceMode::Global,
        Some(m) => wit::ServiceMode::Replicated(
            m.replicated.as_ref().and_then(|r| r.replicas).and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
        ),
        None => wit::ServiceMode::Replicated(1),
    }
}

fn service_info(s: StackService) -> wit::ServiceInfo {
    use ::bollard::models::{EndpointPortConfigProtocolEnum as P, EndpointPortConfigPublishModeEnum as M};
    let spec = &s.view.spec;
    let endpoint = spec.endpoint_spec.as_ref();
    let ports = if s.view.ports.is_empty() {
        endpoint.and_then(|e| e.ports.clone()).unwrap_or_default()
    } else {
        s.view.ports.clone()
    };
    wit::ServiceInfo {
        id: s.view.id.clone(),
        name: s.view.name.clone(),
        service: s.key,
        image: spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        mode: mode(spec.mode.as_ref()),
        ports: ports
            .iter()
            .filter_map(|p| {
                Some(wit::PublishedPort {
                    target: u16::try_from(p.target_port?).ok()?,
                    published: p.published_port.and_then(|p| u16::try_from(p).ok()),
                    protocol: match p.protocol {
                        Some(P::UDP) => dwit::Protocol::Udp,
                        Some(P::SCTP) => dwit::Protocol::Sctp,
                        _ => dwit::Protocol::Tcp,
                    },
                    mode: match p.publish_mode {
                        Some(M::HOST) => wit::PublishMode::Host,
                        _ => wit::PublishMode::Ingress,
                    },
                })
            })
            .collect(),
        endpoint_mode: match endpoint.and_then(|e| e.mode) {
            Some(::bollard::models::EndpointSpecModeEnum::DNSRR) => wit::EndpointMode::Dnsrr,
            _ => wit::EndpointMode::Vip,
        },
        has_healthcheck: s.view.labels.get(scope::labels::HEALTHCHECK).is_some_and(|v| v == "true"),
        config_hash: s.view.labels.get(scope::labels::CONFIG_HASH).cloned().unwrap_or_default(),
        update_state: s.view.update_state.clone(),
        update_message: s.view.update_message.clone(),
    }
}

fn task_info(t: StackTask) -> wit::TaskInfo {
    let v = t.view;
    wit::TaskInfo {
        id: v.id,
        service: t.service,
        slot: v.slot,
        node_id: v.node_id,
        state: v.state,
        desired_state: v.desired_state,
        message: v.message,
        error: v.error,
        container_id: v.container_id,
        exit_code: v.exit_code,
        timestamp: v.timestamp,
    }
}

impl wit::Host for DockerHost {
    async fn stack_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.swarm.as_ref().map(|s| s.stack().to_string()).unwrap_or_default())
    }
    async fn swarm_active(&mut self) -> wasmtime::Result<Result<bool, dwit::DockerError>> {
        self.swarm("swarm-active", |s| async move { s.active().await }).await
    }
    async fn create_network(&mut self, key: String) -> wasmtime::Result<Result<dwit::NetworkInfo, dwit::DockerError>> {
        self.swarm("create-network", |s| async move {
            let n = s.create_network(&key).await?;
            Ok(dwit::NetworkInfo { key, name: n.name, id: n.id })
        })
        .await
    }
    async fn remove_network(&mut self, key: String) -> wasmtime::Result<Result<(), dwit::DockerError>> {
        self.swarm("remove-network", |s| async move { s.remove_network(&key).await }).await
    }
    async fn list_networks(&mut self) -> wasmtime::Result<Result<Vec<dwit::NetworkInfo>, dwit::DockerError>> {
        self.swarm("list-networks", |s| async move {
            let list = s.list_networks().await?;
            Ok(list.into_iter().map(|(key, n)| dwit::NetworkInfo { key, name: n.name, id: n.id }).collect())
        })
        .await
    }
    async fn create_volume(&mut self, key: String) -> wasmtime::Result<Result<dwit::VolumeInfo, dwit::DockerError>> {
        self.swarm("create-volume", |s| async move {
            let v = s.create_volume(&key).await?;
            Ok(dwit::VolumeInfo { key, name: v.name })
        })
        .await
    }
    async fn remove_volume(&mut self, key: String) -> wasmtime::Result<Result<(), dwit::DockerError>> {
        self.swarm("remove-volume", |s| async move { s.remove_volume(&key).await }).await
    }
    async fn list_volumes(&mut self) -> wasmtime::Result<Result<Vec<dwit::VolumeInfo>, dwit::DockerError>> {
        self.swarm("list-volumes", |s| async move {
            let list = s.list_volumes().await?;
            Ok(list.into_iter().map(|(key, v)| dwit::VolumeInfo { key, name: v.name }).collect())
        })
        .await
    }
    async fn image_present(&mut self, image: String) -> wasmtime::Result<Result<bool, dwit::DockerError>> {
        self.swarm("image-present", |s| async move { s.image_present(&image).await }).await
    }
    async fn create_service(
        &mut self,
        spec: wit::ServiceSpec,
    ) -> wasmtime::Result<Result<wit::ServiceInfo, dwit::DockerError>> {
        self.swarm("create-service", |s| async move { s.create_service(&spec).await.map(service_info) }).await
    }
    async fn update_service(
        &mut self,
        spec: wit::ServiceSpec,
    ) -> wasmtime::Result<Result<wit::ServiceInfo, dwit::DockerError>> {
        self.swarm("update-service", |s| async move { s.update_service(&spec).await.map(service_info) }).await
    }
    async fn force_update_service(
        &mut self,
        spec: wit::ServiceSpec,
    ) -> wasmtime::Result<Result<wit::ServiceInfo, dwit::DockerError>> {
        self.swarm("force-update-service", |s| async move { s.force_update_service(&spec).await.map(service_info) })
            .await
    }
    async fn remove_service(&mut self, service: String) -> wasmtime::Result<Result<(), dwit::DockerError>> {
        self.swarm("remove-service", |s| async move { s.remove_service(&service).await }).await
    }
    async fn inspect_service(
        &mut self,
        service: String,
    ) -> wasmtime::Result<Result<wit::ServiceInfo, dwit::DockerError>> {
        self.swarm("inspect-service", |s| async move { s.inspect_service(&service).await.map(service_info) }).await
    }
    async fn list_services(&mut self) -> wasmtime::Result<Result<Vec<wit::ServiceInfo>, dwit::DockerError>> {
        self.swarm(
            "list-services",
            |s| async move { Ok(s.list_services().await?.into_iter().map(service_info).collect()) },
        )
        .await
    }
    async fn list_tasks(
        &mut self,
        service: Option<String>,
    ) -> wasmtime::Result<Result<Vec<wit::TaskInfo>, dwit::DockerError>> {
        self.swarm("list-tasks", |s| async move {
            Ok(s.list_tasks(service.as_deref()).await?.into_iter().map(task_info).collect())
        })
        .await
    }
    async fn service_logs(
        &mut self,
        services: Vec<String>,
        tail: Option<u32>,
        follow: bool,
    ) -> wasmtime::Result<Result<Resource<LogStream>, dwit::DockerError>> {
        let slot = match self.streams.acquire(unique_sources(&services)) {
            Ok(slot) => slot,
            Err(e) => return Ok(Err(to_wit_error(&self.context, e))),
        };
        let mut stream =
            match self.swarm("service-logs", |s| async move { s.service_logs(&services, tail, follow).await }).await? {
                Ok(stream) => stream,
                Err(e) => return Ok(Err(e)),
            };
        stream.hold(slot);
        Ok(Ok(self.table.push(stream)?))
    }
}
