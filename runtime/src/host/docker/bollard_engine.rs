//! [`DockerEngine`] on bollard (the Docker Engine API over its socket).
//!
//! Pitfalls handled here (see the project's compose/bollard notes): logs need stdout and
//! stderr asked for explicitly; `from_image` without a tag pulls every tag, so the reference is
//! split; the pull stream is drained to the end and may end in an error item; lists need
//! `all`; `DOCKER_HOST` of any scheme is honoured; every model field is treated as optional
//! (an old daemon leaves newer ones out).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::engine::*;

/// The real engine.
pub struct BollardEngine {
    docker: Docker,
    host: String,
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

fn unavailable(host: &str, e: &BollardError) -> EngineError {
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
    fn map(&self, e: BollardError) -> EngineError {
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

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

fn btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// Splits `repo[:tag][@digest]` for the pull API (a registry port is not a tag).
pub fn split_image(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

impl DockerEngine for BollardEngine {
    fn describe(&self) -> String {
        self.host.clone()
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

    fn list_networks(&self, label: &str) -> BoxFut<'_, Result<Vec<NetworkView>, EngineError>> {
        let options = ListNetworksOptionsBuilder::default().filters(&label_filter(label)).build();
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

    fn list_volumes(&self, label: &str) -> BoxFut<'_, Result<Vec<VolumeView>, EngineError>> {
        let options = ListVolumesOptionsBuilder::default().filters(&label_filter(label)).build();
        Box::pin(async move {
            let r = self.docker.list_volumes(Some(options)).await.map_err(|e| self.map(e))?;
            Ok(r.volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| VolumeView { name: v.name, labels: v.labels.into_iter().collect() })
                .collect())
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
            let (repo, tag) = split_image(image);
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

    fn create_container(&self, spec: ContainerCreate) -> BoxFut<'_, Result<String, EngineError>> {
        Box::pin(async move {
            let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
            let body = container_body(spec);
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
            })
        })
    }

    fn list_containers(&self, label: &str) -> BoxFut<'_, Result<Vec<ContainerView>, EngineError>> {
        let options = ListContainersOptionsBuilder::default().all(true).filters(&label_filter(label)).build();
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

    fn events(&self, label: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![label.to_string()]),
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

fn container_body(spec: ContainerCreate) -> ContainerCreateBody {
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for m in spec.mounts {
        match m {
            // The legacy `Binds` form is what compose uses for short-syntax binds; the scope has
            // already refused missing sources, so nothing gets auto-created.
            MountSpec::Bind { source, target, read_only } => {
                binds.push(format!("{source}:{target}{}", if read_only { ":ro" } else { "" }))
            }
            MountSpec::Volume { source, target, read_only } => mounts.push(Mount {
                target: Some(target),
                source: (!source.is_empty()).then_some(source),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                ..Default::default()
            }),
            MountSpec::Tmpfs { target } => {
                mounts.push(Mount { target: Some(target), typ: Some(MountType::TMPFS), ..Default::default() })
            }
        }
    }
    let port_bindings = spec
        .ports
        .iter()
        .map(|(key, list)| {
            let bindings = list
                .iter()
                .map(|(ip, port)| PortBinding { host_ip: Some(ip.clone()), host_port: Some(port.clone()) })
                .collect();
            (key.clone(), Some(bindings))
        })
        .collect();
    let (restart_name, retries) = match spec.restart.split_once(':') {
        Some((n, r)) => (n.to_string(), r.parse::<i64>().ok()),
        None => (spec.restart.clone(), None),
    };
    let restart = match restart_name.as_str() {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    let primary_network = spec.networks.first().map(|(n, _)| n.clone());
    let endpoints: HashMap<String, EndpointSettings> = spec
        .networks
        .iter()
        .take(1)
        .map(|(n, aliases)| (n.clone(), EndpointSettings { aliases: Some(aliases.clone()), ..Default::default() }))
        .collect();
    let host_config = HostConfig {
        binds: Some(binds),
        mounts: Some(mounts),
        port_bindings: Some(port_bindings),
        network_mode: spec.network_mode.clone().or(primary_network),
        restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: retries }),
        ulimits: Some(
            spec.ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect(),
        ),
        extra_hosts: Some(spec.extra_hosts.clone()),
        privileged: Some(spec.privileged),
        cap_add: Some(spec.cap_add.clone()),
        devices: Some(
            spec.devices
                .iter()
                .map(|d| {
                    let mut parts = d.splitn(3, ':');
                    let on_host = parts.next().unwrap_or_default().to_string();
                    let in_container = parts.next().map(String::from).unwrap_or_else(|| on_host.clone());
                    let perms = parts.next().unwrap_or("rwm").to_string();
                    DeviceMapping {
                        path_on_host: Some(on_host),
                        path_in_container: Some(in_container),
                        cgroup_permissions: Some(perms),
                    }
                })
                .collect(),
        ),
        pid_mode: spec.pid_mode.clone(),
        ipc_mode: spec.ipc_mode.clone(),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image),
        cmd: spec.cmd,
        entrypoint: spec.entrypoint,
        env: Some(spec.env),
        labels: Some(spec.labels.into_iter().collect()),
        exposed_ports: Some(spec.ports.keys().cloned().collect()),
        healthcheck: spec.healthcheck.map(|h| HealthConfig {
            test: Some(h.test),
            interval: Some(h.interval_ns),
            timeout: Some(h.timeout_ns),
            retries: Some(h.retries),
            start_period: Some(h.start_period_ns),
            start_interval: Some(h.start_interval_ns),
        }),
        hostname: spec.hostname,
        user: spec.user,
        working_dir: spec.working_dir,
        stop_timeout: spec.stop_timeout_s,
        stop_signal: spec.stop_signal,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(split_image("pingcap/pd:v8.5.5"), ("pingcap/pd".into(), "v8.5.5".into()));
        assert_eq!(split_image("pingcap/pd"), ("pingcap/pd".into(), "latest".into()));
        assert_eq!(split_image("registry:5000/team/img"), ("registry:5000/team/img".into(), "latest".into()));
        assert_eq!(split_image("registry:5000/img:1.2"), ("registry:5000/img".into(), "1.2".into()));
        assert_eq!(split_image("img@sha256:abc"), ("img".into(), "sha256:abc".into()));
    }
}
