//! [`DockerEngine`] on bollard (the Docker Engine API over its socket).
//!
//! Pitfalls handled here (see the project's compose/bollard notes): logs need stdout and
//! stderr asked for explicitly; `from_image` without a tag pulls every tag, so the reference is
//! parsed and one tag or digest always named; the pull stream is drained to the end and may end in an error item; lists need
//! `all`; `DOCKER_HOST` of any scheme is honoured; every model field is treated as optional
//! (an old daemon leaves newer ones out).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::binds::EngineLocation;
use super::engine::*;
use super::image::ImageRef;

/// The real engine.
pub struct BollardEngine {
    pub(crate) docker: Docker,
    pub(crate) host: String,
}

impl BollardEngine {
    /// Connects as the `docker` CLI would: `DOCKER_HOST` (unix, tcp, ssh...) or the local socket.
    pub fn connect() -> Result<Self, EngineError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_defaults().map_err(|e| unavailable(&host, &e))?;
        // Long operations (stop with a grace period, pulls) are bounded by the call's host-time
        // budget, not by the client.
        Ok(BollardEngine { docker: docker.with_timeout(Duration::from_secs(3600)), host })
    }
}

pub(crate) fn unavailable(host: &str, e: &BollardError) -> EngineError {
    EngineError::Unavailable(format!(
        "cannot reach the Docker daemon at {host}: {}; is Docker running (and DOCKER_HOST right)?",
        chain(e)
    ))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        source = c.source();
    }
    s
}

impl BollardEngine {
    pub(crate) fn map(&self, e: BollardError) -> EngineError {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, message } => EngineError::NotFound(message),
            BollardError::DockerResponseServerError { status_code: 409, message } => EngineError::Conflict(message),
            BollardError::DockerResponseServerError { status_code, message } => {
                EngineError::Failed(format!("the daemon answered {status_code}: {message}"))
            }
            BollardError::DockerStreamError { error } => EngineError::Failed(error),
            BollardError::RequestTimeoutError => EngineError::Failed("the Docker daemon did not answer in time".into()),
            other @ (BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::UnsupportedURISchemeError { .. }) => unavailable(&self.host, &other),
            other => EngineError::Failed(chain(&other)),
        }
    }
}

/// Docker ANDs several `label` filters.
pub(crate) fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// The bind mounts among a container's mounts.
fn binds(mounts: Option<Vec<bollard::models::MountPoint>>) -> Vec<BindView> {
    mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("bind"))
        .map(|m| BindView { source: m.source.unwrap_or_default(), read_only: m.rw == Some(false) })
        .collect()
}

fn btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

impl DockerEngine for BollardEngine {
    fn describe(&self) -> String {
        self.host.clone()
    }

    fn location(&self) -> EngineLocation {
        match self.host.strip_prefix("unix://") {
            Some(path) => {
                let path = std::path::Path::new(path);
                EngineLocation::Local { socket: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()) }
            }
            None => EngineLocation::Remote(self.host.clone()),
        }
    }

    fn data_root(&self) -> BoxFut<'_, Result<Option<std::path::PathBuf>, EngineError>> {
        Box::pin(async move {
            let info = self.docker.info().await.map_err(|e| self.map(e))?;
            Ok(info.docker_root_dir.map(std::path::PathBuf::from))
        })
    }

    fn ping(&self) -> BoxFut<'_, Result<(), EngineError>> {
        Box::pin(async move {
            self.docker.ping().await.map(|_| ()).map_err(|e| match self.map(e) {
                EngineError::Failed(m) => {
                    EngineError::Unavailable(format!("the Docker daemon at {} does not answer: {m}", self.host))
                }
                other => other,
            })
        })
    }

    fn list_networks<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<NetworkView>, EngineError>> {
        let options = ListNetworksOptionsBuilder::default().filters(&label_filter(labels)).build();
        Box::pin(async move {
            let list = self.docker.list_networks(Some(options)).await.map_err(|e| self.map(e))?;
            Ok(list
                .into_iter()
                .map(|n| NetworkView {
                    name: n.name.unwrap_or_default(),
                    id: n.id.unwrap_or_default(),
                    labels: btree(n.labels),
                })
                .collect())
        })
    }

    fn inspect_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<NetworkView, EngineError>> {
        Box::pin(async move {
            let n = self.docker.inspect_network(name, None).await.map_err(|e| self.map(e))?;
            Ok(NetworkView { name: n.name.unwrap_or_default(), id: n.id.unwrap_or_default(), labels: btree(n.labels) })
        })
    }

    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            };
            let r = self.docker.create_network(request).await.map_err(|e| self.map(e))?;
            Ok(r.id)
        })
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move { self.docker.remove_network(name).await.map_err(|e| self.map(e)) })
    }

    fn connect_network<'a>(
        &'a self,
        network: &'a str,
        container: &'a str,
        aliases: Vec<String>,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let request = bollard::models::NetworkConnectRequest {
                container: container.to_string(),
                endpoint_config: Some(EndpointSettings { aliases: Some(aliases), ..Default::default() }),
            };
            self.docker.connect_network(network, request).await.map_err(|e| self.map(e))
        })
    }

    fn list_volumes<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<VolumeView>, EngineError>> {
        let options = ListVolumesOptionsBuilder::default().filters(&label_filter(labels)).build();
        Box::pin(async move {
            let r = self.docker.list_volumes(Some(options)).await.map_err(|e| self.map(e))?;
            Ok(r.volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| VolumeView { name: v.name, labels: v.labels.into_iter().collect() })
                .collect())
        })
    }

    fn inspect_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<VolumeView, EngineError>> {
        Box::pin(async move {
            let v = self.docker.inspect_volume(name).await.map_err(|e| self.map(e))?;
            Ok(VolumeView { name: v.name, labels: v.labels.into_iter().collect() })
        })
    }

    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let request = VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            };
            self.docker.create_volume(request).await.map(|_| ()).map_err(|e| self.map(e))
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
                .map_err(|e| self.map(e))
        })
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            match self.docker.inspect_image(image).await {
                Ok(_) => Ok(true),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
                Err(e) => Err(self.map(e)),
            }
        })
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let (repo, tag) = ImageRef::parse(image).map_err(EngineError::ImageUnavailable)?.pull_args();
            let options = CreateImageOptionsBuilder::default().from_image(&repo).tag(&tag).build();
            let mut stream = self.docker.create_image(Some(options), None, None);
            let mut layers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            // The pull only advances while the stream is polled: drain it to the end.
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| match self.map(e) {
                    EngineError::NotFound(m) | EngineError::Failed(m) => EngineError::ImageUnavailable(m),
                    other => other,
                })?;
                if let (Some(id), Some(detail)) = (info.id.clone(), info.progress_detail) {
                    let entry = layers.entry(id).or_default();
                    if let Some(c) = detail.current {
                        entry.0 = c.max(0) as u64;
                    }
                    if let Some(t) = detail.total {
                        entry.1 = t.max(0) as u64;
                    }
                }
                let (current, total) = layers.values().fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
                progress(PullProgress {
                    image: image.to_string(),
                    current,
                    total,
                    status: info.status.unwrap_or_default(),
                });
            }
            Ok(())
        })
    }

    fn create_container<'a>(
        &'a self,
        name: &'a str,
        body: ContainerCreateBody,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let options = CreateContainerOptionsBuilder::default().name(name).build();
            let r = self.docker.create_container(Some(options), body).await.map_err(|e| self.map(e))?;
            Ok(r.id)
        })
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.docker
                .start_container(name, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| self.map(e))
        })
    }

    fn stop_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut b = StopContainerOptionsBuilder::default();
            if let Some(t) = timeout_s {
                b = b.t(t.clamp(0, i32::MAX as i64) as i32);
            }
            self.docker.stop_container(name, Some(b.build())).await.map_err(|e| self.map(e))
        })
    }

    fn restart_container<'a>(&'a self, name: &'a str, timeout_s: Option<i64>) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut b = RestartContainerOptionsBuilder::default();
            if let Some(t) = timeout_s {
                b = b.t(t.clamp(0, i32::MAX as i64) as i32);
            }
            self.docker.restart_container(name, Some(b.build())).await.map_err(|e| self.map(e))
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str, volumes: bool) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let options = RemoveContainerOptionsBuilder::default().force(true).v(volumes).build();
            self.docker.remove_container(name, Some(options)).await.map_err(|e| self.map(e))
        })
    }

    fn inspect_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ContainerView, EngineError>> {
        Box::pin(async move {
            let c = self.docker.inspect_container(name, None).await.map_err(|e| self.map(e))?;
            let state = c.state.unwrap_or_default();
            let config = c.config.unwrap_or_default();
            let ports = c
                .network_settings
                .and_then(|n| n.ports)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(key, bindings)| {
                    let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
                    let port: u16 = port.parse().unwrap_or(0);
                    let proto = proto.to_string();
                    bindings
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |b| PortView {
                            container_port: port,
                            protocol: proto.clone(),
                            host_ip: b.host_ip.unwrap_or_default(),
                            host_port: b.host_port.and_then(|p| p.parse().ok()),
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let binds = binds(c.mounts);
            let status_text = state.status.map(|s| s.to_string()).unwrap_or_default();
            let health =
                state.health.and_then(|h| h.status).map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none");
            Ok(ContainerView {
                id: c.id.unwrap_or_default(),
                name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
                image: config.image.unwrap_or_default(),
                labels: btree(config.labels),
                status: match &health {
                    Some(h) => format!("{status_text} ({h})"),
                    None => status_text.clone(),
                },
                state: status_text,
                health,
                exit_code: state.exit_code,
                ports,
                binds,
            })
        })
    }

    fn list_containers<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<ContainerView>, EngineError>> {
        let options = ListContainersOptionsBuilder::default().all(true).filters(&label_filter(labels)).build();
        Box::pin(async move {
            let list = self.docker.list_containers(Some(options)).await.map_err(|e| self.map(e))?;
            Ok(list
                .into_iter()
                .map(|c| {
                    let status = c.status.unwrap_or_default();
                    // Older daemons have no `health` in the summary; the status line carries it.
                    let health = c
                        .health
                        .and_then(|h| h.status)
                        .map(|s| s.to_string())
                        .filter(|s| !s.is_empty() && s != "none")
                        .or_else(|| {
                            ["healthy", "unhealthy", "starting"]
                                .into_iter()
                                .find(|h| {
                                    status.contains(&format!("({h})"))
                                        || (*h == "starting" && status.contains("(health: starting)"))
                                })
                                .map(String::from)
                        });
                    ContainerView {
                        id: c.id.unwrap_or_default(),
                        name: c
                            .names
                            .unwrap_or_default()
                            .first()
                            .map(|n| n.trim_start_matches('/').to_string())
                            .unwrap_or_default(),
                        image: c.image.unwrap_or_default(),
                        labels: btree(c.labels),
                        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                        health,
                        exit_code: None,
                        binds: binds(c.mounts),
                        status,
                        ports: c
                            .ports
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| PortView {
                                container_port: p.private_port,
                                protocol: p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()),
                                host_ip: p.ip.unwrap_or_default(),
                                host_port: p.public_port,
                            })
                            .collect(),
                    }
                })
                .collect())
        })
    }

    fn logs(&self, name: &str, tail: Option<u32>, follow: bool) -> BoxStream<'static, Result<LogChunk, EngineError>> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail).build();
        let host = self.host.clone();
        self.docker
            .logs(name, Some(options))
            .map(move |item| match item {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    Ok(LogChunk { stderr: true, text: String::from_utf8_lossy(&message).into_owned() })
                }
                Ok(out) => {
                    Ok(LogChunk { stderr: false, text: String::from_utf8_lossy(&out.into_bytes()).into_owned() })
                }
                Err(BollardError::DockerResponseServerError { status_code: 404, message }) => {
                    Err(EngineError::NotFound(message))
                }
                Err(e) => Err(unavailable(&host, &e)),
            })
            .boxed()
    }

    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), labels.to_vec()),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let host = self.host.clone();
        self.docker
            .events(Some(options))
            .map(move |item| match item {
                Ok(e) => {
                    let attributes = btree(e.actor.and_then(|a| a.attributes));
                    Ok(EngineEvent {
                        container: attributes.get("name").cloned().unwrap_or_default(),
                        action: e.action.unwrap_or_default(),
                        labels: attributes,
                    })
                }
                Err(e) => Err(unavailable(&host, &e)),
            })
            .boxed()
    }
}
