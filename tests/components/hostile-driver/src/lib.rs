//! A hostile deployment driver for the scoped-Docker tests. Its `up` performs the attack the
//! compose file names (`x-attack: NAME`, target in `x-target: VALUE`) and reports what the host
//! answered as the error text, so the test can check every attempt was refused.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "deployment-driver",
});

use exports::operator::core::deployment_target::{
    DeployError, Guest, LogOptions, LogStream, Project, ServiceStatus, UpOptions,
};
use operator::core::docker::{
    self, BindMount, ContainerSpec, DockerError, Mount, NetworkAttachment, NetworkMode, PortBinding, Protocol,
    RestartPolicy, Ulimit, VolumeMount,
};
use operator::core::progress::{self, Phase};

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
        network: NetworkMode::Networks(vec![NetworkAttachment { network: "default".into(), aliases: vec![] }]),
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
    }
}

fn bind(source: &str, read_only: bool) -> Mount {
    Mount::Bind(BindMount { source: source.into(), target: "/mnt".into(), read_only })
}

fn port(host_ip: Option<&str>, host_port: Option<u16>) -> PortBinding {
    PortBinding { container_port: 2379, protocol: Protocol::Tcp, host_ip: host_ip.map(String::from), host_port }
}

fn field(project: &Project, key: &str) -> String {
    let text = project.files.first().map(|f| f.contents.as_str()).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).map(|v| v.trim().to_string()).unwrap_or_default()
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

/// The network the attacks' containers join.
fn network() -> Result<(), DockerError> {
    docker::create_network("default").map(|_| ())
}

fn create(s: ContainerSpec) -> DeployError {
    if let Err(e) = network() {
        return outcome::<()>(Err(e));
    }
    outcome(docker::create_container(&s))
}

struct Hostile;

impl Guest for Hostile {
    fn up(project: Project, _options: UpOptions) -> Result<Vec<ServiceStatus>, DeployError> {
        let target = field(&project, "x-target");
        let attack = field(&project, "x-attack");
        Err(match attack.as_str() {
            "privileged" => create(ContainerSpec { privileged: true, ..spec("p") }),
            "host-network" => create(ContainerSpec { network: NetworkMode::Host, ..spec("n") }),
            "host-pid" => create(ContainerSpec { pid_host: true, ..spec("n") }),
            "cap-add" => create(ContainerSpec { cap_add: vec!["SYS_ADMIN".into()], ..spec("c") }),
            "device" => create(ContainerSpec {
                devices: vec![docker::Device {
                    host_path: "/dev/kmsg".into(),
                    container_path: "/dev/kmsg".into(),
                    permissions: "r".into(),
                }],
                ..spec("d")
            }),
            "docker-socket" => create(ContainerSpec { mounts: vec![bind("/var/run/docker.sock", false)], ..spec("s") }),
            "socket-folder" => create(ContainerSpec { mounts: vec![bind(&target, true)], ..spec("s") }),
            "host-path" => create(ContainerSpec { mounts: vec![bind("/etc", true)], ..spec("h") }),
            "relative-escape" => {
                create(ContainerSpec { mounts: vec![bind("../../../../../../etc", true)], ..spec("r") })
            }
            "rw-subject" => create(ContainerSpec { mounts: vec![bind(".", false)], ..spec("w") }),
            "rw-manifest" => create(ContainerSpec { mounts: vec![bind("operator.toml", false)], ..spec("w") }),
            "colon-target" => create(ContainerSpec {
                mounts: vec![Mount::Bind(BindMount {
                    source: ".".into(),
                    target: "/mnt:/host".into(),
                    read_only: true,
                })],
                ..spec("t")
            }),
            // The check-then-mount race: a container that can write `data` could swap `data/d`
            // for a symlink to `/` before a second container's bind of it is mounted.
            "inside-writable" => {
                let first = create(ContainerSpec { mounts: vec![bind("data", false)], ..spec("writer") });
                let second = outcome(docker::create_container(&ContainerSpec {
                    mounts: vec![bind("data/d", true)],
                    ..spec("victim")
                }));
                DeployError::Docker(format!("writer: {first:?}; victim: {second:?}"))
            }
            "publish-everywhere" => create(ContainerSpec { ports: vec![port(Some("0.0.0.0"), None)], ..spec("o") }),
            "low-port" => create(ContainerSpec { ports: vec![port(None, Some(80))], ..spec("o") }),
            "ulimit" => create(ContainerSpec {
                ulimits: vec![Ulimit { name: "nofile".into(), soft: 1 << 20, hard: 1 << 20 }],
                ..spec("u")
            }),
            "extra-hosts" => {
                create(ContainerSpec { extra_hosts: vec![("registry".into(), "10.0.0.1".into())], ..spec("e") })
            }
            "restart-always" => create(ContainerSpec { restart: RestartPolicy::Always, ..spec("a") }),
            "tool-label" => {
                create(ContainerSpec { labels: vec![("traefik.enable".into(), "true".into())], ..spec("l") })
            }
            "spoof-label" => create(ContainerSpec {
                labels: vec![("com.docker.compose.project".into(), "someone-else".into())],
                ..spec("l")
            }),
            "owner-label" => create(ContainerSpec {
                labels: vec![("dev.operator.project".into(), "someone-else".into())],
                ..spec("l")
            }),
            // A container named after another object: its name, or its ID.
            "named" => create(ContainerSpec { container_name: Some(target.clone()), ..spec("named") }),
            "no-network" => create(ContainerSpec { network: NetworkMode::Networks(vec![]), ..spec("n") }),
            "undeclared-volume" => create(ContainerSpec {
                mounts: vec![Mount::Volume(VolumeMount {
                    key: Some("never-created".into()),
                    target: "/data".into(),
                    read_only: false,
                })],
                ..spec("v")
            }),
            "squat-volume" => outcome(docker::create_volume(&target)),
            "pull" => outcome(docker::pull_image(&target)),
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
            "stream-flood" => {
                let mut held = Vec::new();
                let mut logs = Vec::new();
                let mut last = String::new();
                for i in 0..3000 {
                    let r = if i % 2 == 0 {
                        docker::subscribe_events().map(|s| held.push(s))
                    } else {
                        docker::container_logs(&[], None, false).map(|s| logs.push(s))
                    };
                    if let Err(e) = r {
                        last = shown::<()>(Err(e));
                        break;
                    }
                }
                DeployError::Docker(format!("opened {} streams; then {last}", held.len() + logs.len()))
            }
            "progress-flood" => {
                for i in 0..2000 {
                    progress::report(&format!("task {i}"), Phase::Creating, "");
                }
                DeployError::Docker("progress flooded".into())
            }
            "terminal-escape" => {
                progress::report("\u{1b}[2K\rContainer fake", Phase::Done, "\u{1b}[32mhealthy\u{9b}0m");
                DeployError::Docker("\u{1b}[2K\r\u{1b}[1Adeployment finished \u{202e}".into())
            }
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
