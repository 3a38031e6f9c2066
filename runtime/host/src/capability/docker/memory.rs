//! An in-memory [`DockerEngine`] for the scope's unit tests: containers, networks, volumes and
//! images as plain data, with what was created kept for inspection. Label filters, name
//! conflicts and Docker's "an existing volume name returns the existing volume" behave as the
//! real engine's do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bollard::models::ContainerCreateBody;
use futures::stream::{self, BoxStream, StreamExt};

use super::binds::EngineLocation;
use super::engine::*;

/// A container the fake engine holds.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub view: ContainerView,
    pub body: ContainerCreateBody,
    /// Extra networks connected after creation, with aliases.
    pub connected: Vec<(String, Vec<String>)>,
}

/// The fake engine's state.
#[derive(Debug, Default)]
pub struct State {
    pub containers: Vec<FakeContainer>,
    pub networks: Vec<NetworkView>,
    pub volumes: Vec<VolumeView>,
    pub images: Vec<String>,
    pub pulled: Vec<String>,
    /// Chunks each container's log stream yields (then it pends, as with `follow`).
    pub logs: BTreeMap<String, Vec<LogChunk>>,
    next_id: u64,
}

/// The fake engine.
#[derive(Debug, Clone)]
pub struct MemoryEngine {
    pub state: Arc<Mutex<State>>,
    pub location: EngineLocation,
    /// The engine's data root, as `docker info` reports it.
    pub data_root: Option<std::path::PathBuf>,
    /// Set when a log stream handed out was dropped (its reader stopped).
    pub log_stream_dropped: Arc<AtomicBool>,
}

impl MemoryEngine {
    /// An empty engine whose socket is at `socket`.
    pub fn new(socket: &std::path::Path) -> Self {
        MemoryEngine {
            state: Arc::new(Mutex::new(State::default())),
            location: EngineLocation::Local { socket: socket.to_path_buf() },
            data_root: None,
            log_stream_dropped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The state, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body a container was created with.
    pub fn body(&self, name: &str) -> Option<ContainerCreateBody> {
        self.lock().containers.iter().find(|c| c.view.name == name).map(|c| c.body.clone())
    }
}

fn matches(labels: &BTreeMap<String, String>, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    })
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFut<'a, T> {
    Box::pin(async move { v })
}

/// Drops a flag when the stream is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl DockerEngine for MemoryEngine {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn location(&self) -> EngineLocation {
        self.location.clone()
    }
    fn ping(&self) -> BoxFut<'_, Result<(), EngineError>> {
        ready(Ok(()))
    }
    fn data_root(&self) -> BoxFut<'_, Result<Option<std::path::PathBuf>, EngineError>> {
        ready(Ok(self.data_root.clone()))
    }

    fn list_networks<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<NetworkView>, EngineError>> {
        ready(Ok(self.lock().networks.iter().filter(|n| matches(&n.labels, labels)).cloned().collect()))
    }
    fn inspect_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<NetworkView, EngineError>> {
        let found = self.lock().networks.iter().find(|n| n.name == name || n.id == name).cloned();
        ready(found.ok_or_else(|| EngineError::NotFound(format!("network {name} not found"))))
    }
    fn create_network<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        let mut s = self.lock();
        if s.networks.iter().any(|n| n.name == name) {
            return ready(Err(EngineError::Conflict(format!("network with name {name} already exists"))));
        }
        s.next_id += 1;
        let id = format!("net{}", s.next_id);
        s.networks.push(NetworkView { name: name.into(), id: id.clone(), labels });
        ready(Ok(id))
    }
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        self.lock().networks.retain(|n| n.name != name && n.id != name);
        ready(Ok(()))
    }
    fn connect_network<'a>(
        &'a self,
        network: &'a str,
        container: &'a str,
        aliases: Vec<String>,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        let mut s = self.lock();
        match s.containers.iter_mut().find(|c| c.view.name == container || c.view.id == container) {
            Some(c) => {
                c.connected.push((network.into(), aliases));
                ready(Ok(()))
            }
            None => ready(Err(EngineError::NotFound(format!("No such container: {container}")))),
        }
    }

    fn list_volumes<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<VolumeView>, EngineError>> {
        ready(Ok(self.lock().volumes.iter().filter(|v| matches(&v.labels, labels)).cloned().collect()))
    }
    fn inspect_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<VolumeView, EngineError>> {
        let found = self.lock().volumes.iter().find(|v| v.name == name).cloned();
        ready(found.ok_or_else(|| EngineError::NotFound(format!("get {name}: no such volume"))))
    }
    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        let mut s = self.lock();
        // Docker: an existing name answers with the existing volume, labels unchanged.
        if !s.volumes.iter().any(|v| v.name == name) {
            s.volumes.push(VolumeView { name: name.into(), labels });
        }
        ready(Ok(()))
    }
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        self.lock().volumes.retain(|v| v.name != name);
        ready(Ok(()))
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>> {
        ready(Ok(self.lock().images.iter().any(|i| i == image)))
    }
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        _progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> BoxFut<'a, Result<(), EngineError>> {
        let mut s = self.lock();
        s.pulled.push(image.into());
        s.images.push(image.into());
        ready(Ok(()))
    }

    fn create_container<'a>(
        &'a self,
        name: &'a str,
        body: ContainerCreateBody,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        let mut s = self.lock();
        if s.containers.iter().any(|c| c.view.name == name) {
            return ready(Err(EngineError::Conflict(format!("container name \"/{name}\" is already in use"))));
        }
        s.next_id += 1;
        let id = format!("c{}", s.next_id);
        let view = ContainerView {
            id: id.clone(),
            name: name.into(),
            image: body.image.clone().unwrap_or_default(),
            labels: body.labels.clone().unwrap_or_default().into_iter().collect(),
            state: "created".into(),
            health: None,
            exit_code: None,
            status: "Created".into(),
            ports: Vec::new(),
            binds: body
                .host_config
                .as_ref()
                .and_then(|h| h.mounts.as_ref())
                .into_iter()
                .flatten()
                .filter(|m| m.typ == Some(bollard::models::MountType::BIND))
                .map(|m| BindView {
                    source: m.source.clone().unwrap_or_default(),
                    read_only: m.read_only == Some(true),
                })
                .collect(),
        };
        s.containers.push(FakeContainer { view, body, connected: Vec::new() });
        ready(Ok(id))
    }
    fn start_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        let mut s = self.lock();
        for c in s.containers.iter_mut().filter(|c| c.view.name == name || c.view.id == name) {
            c.view.state = "running".into();
        }
        ready(Ok(()))
    }
    fn stop_container<'a>(&'a self, name: &'a str, _t: Option<i64>) -> BoxFut<'a, Result<(), EngineError>> {
        let mut s = self.lock();
        for c in s.containers.iter_mut().filter(|c| c.view.name == name || c.view.id == name) {
            c.view.state = "exited".into();
        }
        ready(Ok(()))
    }
    fn restart_container<'a>(&'a self, name: &'a str, _t: Option<i64>) -> BoxFut<'a, Result<(), EngineError>> {
        self.start_container(name)
    }
    fn remove_container<'a>(&'a self, name: &'a str, _volumes: bool) -> BoxFut<'a, Result<(), EngineError>> {
        self.lock().containers.retain(|c| c.view.name != name && c.view.id != name);
        ready(Ok(()))
    }
    fn inspect_container<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<ContainerView, EngineError>> {
        let found =
            self.lock().containers.iter().find(|c| c.view.name == name || c.view.id == name).map(|c| c.view.clone());
        ready(found.ok_or_else(|| EngineError::NotFound(format!("No such container: {name}"))))
    }
    fn list_containers<'a>(&'a self, labels: &'a [String]) -> BoxFut<'a, Result<Vec<ContainerView>, EngineError>> {
        ready(Ok(self
            .lock()
            .containers
            .iter()
            .filter(|c| matches(&c.view.labels, labels))
            .map(|c| c.view.clone())
            .collect()))
    }

    fn logs(&self, name: &str, _tail: Option<u32>, _follow: bool) -> BoxStream<'static, Result<LogChunk, EngineError>> {
        let chunks = {
            let s = self.lock();
            let key = s.containers.iter().find(|c| c.view.id == name).map_or(name, |c| c.view.name.as_str());
            s.logs.get(key).cloned().unwrap_or_default()
        };
        let flag = DropFlag(self.log_stream_dropped.clone());
        stream::iter(chunks.into_iter().map(Ok))
            .chain(stream::pending())
            .map(move |c| {
                let _keep = &flag;
                c
            })
            .boxed()
    }
    fn events(&self, _labels: &[String]) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        stream::pending().boxed()
    }
}
