//! A hostile Swarm driver for the stack-scope tests. Its `up` performs the attack the compose
//! file names (`x-attack: NAME`, target in `x-target: VALUE`) and reports what the host answered
//! as the error text, so the test can check every attempt was refused.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    path: "../../../wit/swarm/since_v0.1.0",
    world: "swarm-driver",
    generate_all,
});

use exports::operator::core::deployment_target::{
    DeployError, Guest, LogOptions, LogStream, Project, ServiceStatus, UpOptions,
};
use operator::core::docker::{
    self, BindMount, ContainerSpec, DockerError, Mount, NetworkAttachment, NetworkMode, Protocol, RestartPolicy,
};
use operator::swarm::swarm::{self, EndpointMode, PublishMode, PublishedPort, ServiceMode, ServiceSpec};

fn spec(service: &str) -> ServiceSpec {
    ServiceSpec {
        service: service.into(),
        image: "operator/etcd:3.4.23-debian".into(),
        command: None,
        entrypoint: None,
        environment: vec![],
        labels: vec![],
        container_labels: vec![],
        mode: ServiceMode::Replicated(1),
        ports: vec![],
        endpoint_mode: EndpointMode::Vip,
        networks: vec![NetworkAttachment { network: "default".into(), aliases: vec![] }],
        mounts: vec![],
        healthcheck: None,
        hostname: None,
        user: None,
        working_dir: None,
        placement_constraints: vec![],
        restart_policy: None,
        update_config: None,
        resources: None,
        stop_grace_period_ms: None,
        stop_signal: None,
        cap_add: vec![],
        config_hash: "x".into(),
    }
}

fn bind(source: &str) -> Mount {
    Mount::Bind(BindMount { source: source.into(), target: "/mnt".into(), read_only: false })
}

fn port(published: u16) -> PublishedPort {
    PublishedPort { target: 2379, published: Some(published), protocol: Protocol::Tcp, mode: PublishMode::Host }
}

fn field(project: &Project, key: &str) -> String {
    let text = project.files.first().map(|f| f.contents.as_str()).unwrap_or("");
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}: ")).map(String::from)).unwrap_or_default()
}

fn shown<T: std::fmt::Debug>(r: Result<T, DockerError>) -> String {
    match r {
        Ok(v) => format!("ALLOWED: {v:?}"),
        Err(DockerError::Denied(d)) => format!("denied: {} | hint: {}", d.reason, d.hint),
        Err(e) => format!("refused: {e:?}"),
    }
}

fn outcome<T: std::fmt::Debug>(r: Result<T, DockerError>) -> DeployError {
    DeployError::Docker(shown(r))
}

/// Creates the stack network first, so the attack is the only thing refused.
fn create(s: ServiceSpec) -> DeployError {
    if let Err(e) = swarm::create_network("default") {
        return DeployError::Docker(format!("network: {}", shown::<()>(Err(e))));
    }
    outcome(swarm::create_service(&s))
}

struct Driver;

impl Guest for Driver {
    fn up(project: Project, _options: UpOptions) -> Result<Vec<ServiceStatus>, DeployError> {
        let target = field(&project, "x-target");
        let attack = field(&project, "x-attack");
        Err(match attack.as_str() {
            "docker-socket" => create(ServiceSpec { mounts: vec![bind("/var/run/docker.sock")], ..spec("s") }),
            "host-path" => create(ServiceSpec { mounts: vec![bind("/etc")], ..spec("h") }),
            "cap-add" => create(ServiceSpec { cap_add: vec!["SYS_ADMIN".into()], ..spec("c") }),
            "publish" => create(ServiceSpec { ports: vec![port(23790)], ..spec("o") }),
            "low-port" => create(ServiceSpec { ports: vec![port(80)], ..spec("o") }),
            "tool-label" => create(ServiceSpec { labels: vec![("traefik.enable".into(), "true".into())], ..spec("t") }),
            "owner-label" => create(ServiceSpec {
                container_labels: vec![("dev.operator.stack".into(), "someone-else".into())],
                ..spec("t")
            }),
            "registry" => create(ServiceSpec { image: "ghcr.io/someone/x:1".into(), ..spec("r") }),
            "undeclared-volume" => create(ServiceSpec {
                mounts: vec![Mount::Volume(docker::VolumeMount {
                    key: Some("never-created".into()),
                    target: "/data".into(),
                    read_only: false,
                })],
                ..spec("v")
            }),
            "squat-volume" => outcome(swarm::create_volume(&target)),
            "list-foreign" => match swarm::list_services() {
                Ok(list) => {
                    DeployError::Docker(format!("saw: {:?}", list.iter().map(|s| s.name.clone()).collect::<Vec<_>>()))
                }
                Err(e) => outcome::<()>(Err(e)),
            },
            "remove-foreign" => outcome(swarm::remove_service(&target)),
            "inspect-foreign" => outcome(swarm::inspect_service(&target)),
            "logs-foreign" => outcome(swarm::service_logs(&[target], Some(1), false).map(|_| ())),
            "remove-foreign-network" => outcome(swarm::remove_network(&target)),
            // Containers are not a Swarm driver's to make.
            "container" => outcome(docker::create_container(&ContainerSpec {
                service: "c".into(),
                number: 1,
                container_name: None,
                image: "operator/etcd:3.4.23-debian".into(),
                command: None,
                entrypoint: None,
                environment: vec![],
                labels: vec![],
                ports: vec![],
                mounts: vec![],
                network: NetworkMode::NoNetwork,
                healthcheck: None,
                restart: RestartPolicy::No,
                hostname: None,
                user: None,
                working_dir: None,
                config_hash: "x".into(),
                depends_on: vec![],
                stop_grace_period_ms: None,
                stop_signal: None,
                ulimits: vec![],
                extra_hosts: vec![],
                privileged: false,
                cap_add: vec![],
                devices: vec![],
                pid_host: false,
                ipc: None,
            })),
            other => DeployError::NotFound(format!("unknown attack `{other}`")),
        })
    }

    fn down(_project: Project, _remove_volumes: bool) -> Result<(), DeployError> {
        for s in swarm::list_services().map_err(|e| DeployError::Docker(shown::<()>(Err(e))))? {
            let _ = swarm::remove_service(&s.service);
        }
        for n in swarm::list_networks().map_err(|e| DeployError::Docker(shown::<()>(Err(e))))? {
            let _ = swarm::remove_network(&n.key);
        }
        Ok(())
    }

    fn status(_project: Project) -> Result<Vec<ServiceStatus>, DeployError> {
        Ok(vec![])
    }

    fn logs(_project: Project, _options: LogOptions) -> Result<LogStream, DeployError> {
        Err(DeployError::NotFound("no logs".into()))
    }

    fn restart(_project: Project, _services: Vec<String>) -> Result<(), DeployError> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
export!(Driver);
