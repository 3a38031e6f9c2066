//! [`SwarmEngine`] on bollard. Every model field is optional (an old daemon leaves newer ones
//! out); a spec read back is sent back whole on update, so nothing Swarm filled in is lost.

use std::collections::{BTreeMap, HashMap};

use ::bollard::models::{NetworkCreateRequest, ServiceSpec};
use ::bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::engine::*;
use crate::capability::docker::bollard_engine::{BollardEngine, label_filter, unavailable};
use crate::capability::docker::engine::{BoxFut, EngineError, LogChunk};

fn service_view(s: ::bollard::models::Service) -> ServiceView {
    let spec = s.spec.unwrap_or_default();
    let update = s.update_status.unwrap_or_default();
    ServiceView {
        id: s.id.unwrap_or_default(),
        name: spec.name.clone().unwrap_or_default(),
        version: s.version.and_then(|v| v.index).unwrap_or_default(),
        labels: spec.labels.clone().unwrap_or_default().into_iter().collect(),
        ports: s.endpoint.and_then(|e| e.ports).unwrap_or_default(),
        update_state: update.state.map(|s| s.to_string()).filter(|s| !s.is_empty()),
        update_message: update.message.filter(|m| !m.is_empty()),
        spec,
    }
}

fn task_view(t: ::bollard::models::Task) -> TaskView {
    let status = t.status.unwrap_or_default();
    let container = status.container_status.unwrap_or_default();
    TaskView {
        id: t.id.unwrap_or_default(),
        service_id: t.service_id.unwrap_or_default(),
        slot: t.slot.and_then(|s| u32::try_from(s).ok()),
        node_id: t.node_id.unwrap_or_default(),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        error: status.err.filter(|e| !e.is_empty()),
        container_id: container.container_id.filter(|c| !c.is_empty()),
        exit_code: container.exit_code,
        timestamp: status.timestamp.map(|t| t.to_string()).unwrap_or_default(),
    }
}

impl SwarmEngine for BollardEngine {
    fn swarm_state(&self) -> BoxFut<'_, Result<SwarmState, EngineError>> {
        Box::pin(async move {
            let info = self.docker.info().await.map_err(|e| self.map(e))?;
            let swarm = info.swarm.unwrap_or_default();
            Ok(SwarmState {
                local_node_state: swarm.local_node_state.map(|s| s.to_string()).unwrap_or_default(),
                manager: swarm.control_available.unwrap_or(false),
                nodes: swarm.nodes,
            })
        })
    }

    fn create_overlay_network<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("overlay".into()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            };
            let r = self.docker.create_network(request).await.map_err(|e| self.map(e))?;
            Ok(r.id)
        })
    }

    fn list_services<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<ServiceView>, EngineError>> {
        Box::pin(async move {
            let options = ListServicesOptionsBuilder::default().filters(&label_filter(labels)).build();
            let list = self.docker.list_services(Some(options)).await.map_err(|e| self.map(e))?;
            Ok(list.into_iter().map(service_view).collect())
        })
    }

    fn inspect_service<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ServiceView, EngineError>> {
        Box::pin(async move {
            let s = self.docker.inspect_service(name, None).await.map_err(|e| self.map(e))?;
            Ok(service_view(s))
        })
    }

    fn create_service(&self, spec: ServiceSpec) -> BoxFut<'_, Result<String, EngineError>> {
        Box::pin(async move {
            let r = self.docker.create_service(spec, None).await.map_err(|e| self.map(e))?;
            Ok(r.id.unwrap_or_default())
        })
    }

    fn update_service<'a>(
        &'a self,
        id: &'a str,
        spec: ServiceSpec,
        version: u64,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let version = i32::try_from(version)
                .map_err(|_| EngineError::Failed(format!("service version {version} is out of range")))?;
            let options = ::bollard::query_parameters::UpdateServiceOptions { version, ..Default::default() };
            self.docker.update_service(id, spec, options, None).await.map_err(|e| self.map(e))?;
            Ok(())
        })
    }

    fn remove_service<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move { self.docker.delete_service(id).await.map_err(|e| self.map(e)) })
    }

    fn list_tasks<'a>(&'a self, service_ids: &'a [String]) -> BoxFut<'a, Result<Vec<TaskView>, EngineError>> {
        Box::pin(async move {
            if service_ids.is_empty() {
                return Ok(Vec::new());
            }
            let filters = HashMap::from([("service".to_string(), service_ids.to_vec())]);
            let options = ListTasksOptionsBuilder::default().filters(&filters).build();
            let list = self.docker.list_tasks(Some(options)).await.map_err(|e| self.map(e))?;
            // The filter matches names too: keep exactly the services asked for.
            Ok(list.into_iter().map(task_view).filter(|t| service_ids.contains(&t.service_id)).collect())
        })
    }

    fn service_logs(
        &self,
        id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> BoxStream<'static, Result<LogChunk, EngineError>> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail).build();
        let host = self.host.clone();
        self.docker
            .service_logs(id, Some(options))
            .map(move |item| match item {
                Ok(::bollard::container::LogOutput::StdErr { message }) => {
                    Ok(LogChunk { stderr: true, text: String::from_utf8_lossy(&message).into_owned() })
                }
                Ok(out) => {
                    Ok(LogChunk { stderr: false, text: String::from_utf8_lossy(&out.into_bytes()).into_owned() })
                }
                Err(::bollard::errors::Error::DockerResponseServerError { status_code: 404, message }) => {
                    Err(EngineError::NotFound(message))
                }
                Err(e) => Err(unavailable(&host, &e)),
            })
            .boxed()
    }
}
