//! A hostile deployment driver for the scoped-Docker tests. Its `up` performs the attack the
//! compose file names (`x-attack: NAME`, target in `x-target: NAME`) and reports what the host
//! answered as the error text, so the test can check every attempt was refused.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "deployment-driver",
});

use exports::operator::core::deployment_target::{
    DeployError, Guest, LogOptions, LogStream, Project, ServiceStatus, UpOptions,
};
use operator::core::docker::{self, ContainerSpec, DockerError, Mount, MountKind, RestartPolicy};

fn spec(service: &str) -> ContainerSpec {
    ContainerSpec {
        service: service.into(),
        number: 1,
        container_name: None,
        image: "operator/etcd:3.4.23-debian".into(),
        command: None,
        entrypoint: None,
        environment: vec![],
        labels: vec![],
        ports: vec![],
        mounts: vec![],
        networks: vec![],
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
        network_mode: None,
        pid_mode: None,
        ipc_mode: None,
    }
}

fn bind(source: &str) -> Mount {
    Mount { kind: MountKind::Bind, source: source.into(), target: "/mnt".into(), read_only: false }
}

fn field(project: &Project, key: &str) -> String {
    let text = project.files.first().map(|f| f.contents.as_str()).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn outcome<T: std::fmt::Debug>(r: Result<T, DockerError>) -> DeployError {
    DeployError::Docker(match r {
        Ok(v) => format!("ALLOWED: {v:?}"),
        Err(DockerError::Denied(d)) => format!("denied: {} | hint: {}", d.reason, d.hint),
        Err(e) => format!("refused: {e:?}"),
    })
}

struct Hostile;

impl Guest for Hostile {
    fn up(project: Project, _options: UpOptions) -> Result<Vec<ServiceStatus>, DeployError> {
        let target = field(&project, "x-target");
        let attack = field(&project, "x-attack");
        Err(match attack.as_str() {
            "privileged" => outcome(docker::create_container(&ContainerSpec { privileged: true, ..spec("p") })),
            "host-network" => {
                outcome(docker::create_container(&ContainerSpec { network_mode: Some("host".into()), ..spec("n") }))
            }
            "host-pid" => {
                outcome(docker::create_container(&ContainerSpec { pid_mode: Some("host".into()), ..spec("n") }))
            }
            "join-foreign" => outcome(docker::create_container(&ContainerSpec {
                network_mode: Some(format!("container:{target}")),
                ..spec("n")
            })),
            "cap-add" => {
                outcome(docker::create_container(&ContainerSpec { cap_add: vec!["SYS_ADMIN".into()], ..spec("c") }))
            }
            "device" => {
                outcome(docker::create_container(&ContainerSpec { devices: vec!["/dev/kmsg".into()], ..spec("d") }))
            }
            "docker-socket" => outcome(docker::create_container(&ContainerSpec {
                mounts: vec![bind("/var/run/docker.sock")],
                ..spec("s")
            })),
            "host-path" => {
                outcome(docker::create_container(&ContainerSpec { mounts: vec![bind("/etc")], ..spec("h") }))
            }
            "relative-escape" => outcome(docker::create_container(&ContainerSpec {
                mounts: vec![bind("../../../../../../etc")],
                ..spec("r")
            })),
            "spoof-label" => outcome(docker::create_container(&ContainerSpec {
                labels: vec![("com.docker.compose.project".into(), "someone-else".into())],
                ..spec("l")
            })),
            "list-foreign" => {
                let seen: Vec<String> =
                    docker::list_containers().unwrap_or_default().into_iter().map(|c| c.name).collect();
                DeployError::Docker(format!("saw: [{}]", seen.join(",")))
            }
            "inspect-foreign" => outcome(docker::inspect_container(&target)),
            "stop-foreign" => outcome(docker::stop_container(&target, Some(0))),
            "remove-foreign" => outcome(docker::remove_container(&target, true)),
            "restart-foreign" => outcome(docker::restart_container(&target, Some(0))),
            "logs-foreign" => {
                outcome(docker::container_logs(std::slice::from_ref(&target), Some(10), false).map(|_| "a log stream"))
            }
            "remove-foreign-network" => outcome(docker::remove_network(&target)),
            "remove-foreign-volume" => outcome(docker::remove_volume(&target)),
            other => DeployError::NotFound(format!("unknown attack `{other}`")),
        })
    }

    fn down(_project: Project, _remove_volumes: bool) -> Result<(), DeployError> {
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
export!(Hostile);
