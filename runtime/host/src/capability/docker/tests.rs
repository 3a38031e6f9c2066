//! The scoped capability against the in-memory engine: each planning step, project ownership,
//! names checked against labels, and streams that end with their owner.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::models::{MountBindOptionsPropagationEnum, MountType, RestartPolicyNameEnum};

use super::binds::{BindRules, EngineLocation};
use super::engine::{DockerEngine, EngineError, LogChunk};
use super::error::DockerError;
use super::grants::DockerGrants;
use super::memory::MemoryEngine;
use super::plan::Planner;
use super::scope::{Project, ScopedDocker, labels};
use crate::bindings::docker as wit;
use crate::capability::progress::ProgressHandle;
use crate::manifest::DockerSection;

/// A project folder with a config file, a data folder and a fake Docker socket folder.
struct Case {
    _root: tempfile::TempDir,
    root: PathBuf,
    project: Project,
}

fn case() -> Case {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(r.join("proj/conf")).expect("mkdir");
    std::fs::create_dir_all(r.join("data/d")).expect("mkdir");
    std::fs::create_dir_all(r.join("run")).expect("mkdir");
    let project = Project {
        name: "p".into(),
        dir: r.join("proj"),
        config_files: vec![r.join("proj/compose.yaml")],
        registries: vec!["docker.io".into()],
        named: false,
    };
    Case { _root: root, root: r, project }
}

impl Case {
    fn binds(&self) -> BindRules {
        BindRules {
            project_dir: self.project.dir.clone(),
            engine: EngineLocation::Local { socket: self.root.join("run/docker.sock") },
            data_root: None,
        }
    }

    fn plan(&self, grants: &DockerGrants, spec: &wit::ContainerSpec) -> Result<super::plan::Plan, DockerError> {
        Planner { project: &self.project, grants, binds: &self.binds() }.plan(spec)
    }

    fn engine(&self) -> MemoryEngine {
        MemoryEngine::new(&self.root.join("run/docker.sock"))
    }

    fn scoped(&self, engine: &MemoryEngine, project: &str, grants: DockerGrants) -> ScopedDocker {
        let p = Project { name: project.into(), ..self.project.clone() };
        ScopedDocker::new(Arc::new(engine.clone()), p, grants, ProgressHandle::default())
    }
}

fn spec(service: &str) -> wit::ContainerSpec {
    wit::ContainerSpec {
        service: service.into(),
        number: 1,
        container_name: None,
        image: "operator/etcd:3.4.23-debian".into(),
        command: Some(vec!["etcd".into()]),
        entrypoint: None,
        environment: vec![("A".into(), "1".into())],
        labels: vec![],
        ports: vec![],
        mounts: vec![],
        network: wit::NetworkMode::Networks(vec![wit::NetworkAttachment {
            network: "default".into(),
            aliases: vec![service.into()],
        }]),
        healthcheck: None,
        restart: wit::RestartPolicy::No,
        hostname: None,
        user: None,
        working_dir: None,
        config_hash: "abc".into(),
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

fn denied<T: std::fmt::Debug>(r: Result<T, DockerError>) -> (String, String) {
    match r {
        Err(DockerError::Denied { reason, hint }) => (reason, hint),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, DockerError>) -> String {
    match r {
        Err(DockerError::Invalid(m)) => m,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn bind(source: &str, read_only: bool) -> wit::Mount {
    wit::Mount::Bind(wit::BindMount { source: source.into(), target: "/mnt".into(), read_only })
}

fn port(host_ip: Option<&str>, host_port: Option<u16>) -> wit::PortBinding {
    wit::PortBinding {
        container_port: 2379,
        protocol: wit::Protocol::Tcp,
        host_ip: host_ip.map(String::from),
        host_port,
    }
}

#[test]
fn a_spec_becomes_a_typed_body_with_the_hosts_labels() {
    let c = case();
    let s = wit::ContainerSpec {
        mounts: vec![
            bind("conf", true),
            wit::Mount::Volume(wit::VolumeMount { key: Some("data".into()), target: "/data".into(), read_only: false }),
            wit::Mount::Tmpfs(wit::TmpfsMount { target: "/tmp".into(), size_bytes: Some(1 << 20) }),
        ],
        ports: vec![port(None, Some(2379))],
        restart: wit::RestartPolicy::OnFailure(Some(3)),
        healthcheck: Some(wit::Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: 2000,
            timeout_ms: 1,
            retries: 3,
            start_period_ms: 0,
            start_interval_ms: 0,
        }),
        ..spec("etcd1")
    };
    let plan = c.plan(&DockerGrants::default(), &s).expect("planned");
    assert_eq!(plan.name, "p-etcd1-1");
    assert_eq!(plan.volumes, vec!["data".to_string()]);
    let host = plan.body.host_config.clone().expect("host config");
    assert_eq!(host.binds, None, "no `source:target` strings for the engine to parse");
    let mounts = host.mounts.expect("mounts");
    assert_eq!(mounts[0].typ, Some(MountType::BIND));
    assert_eq!(mounts[0].source.as_deref(), Some(c.project.dir.join("conf").to_str().expect("utf-8")));
    assert_eq!(mounts[0].read_only, Some(true));
    let options = mounts[0].bind_options.clone().expect("bind options");
    assert_eq!(options.propagation, Some(MountBindOptionsPropagationEnum::RPRIVATE));
    assert_eq!(options.create_mountpoint, Some(false));
    assert_eq!(mounts[1].source.as_deref(), Some("p_data"));
    assert_eq!(mounts[2].tmpfs_options.clone().and_then(|t| t.size_bytes), Some(1 << 20));
    // Loopback unless granted more.
    let bindings = host.port_bindings.expect("ports")["2379/tcp"].clone().expect("bindings");
    assert_eq!(bindings[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(bindings[0].host_port.as_deref(), Some("2379"));
    let restart = host.restart_policy.expect("restart");
    assert_eq!((restart.name, restart.maximum_retry_count), (Some(RestartPolicyNameEnum::ON_FAILURE), Some(3)));
    assert_eq!(host.network_mode.as_deref(), Some("p_default"));
    assert_eq!(plan.body.healthcheck.and_then(|h| h.interval), Some(2_000_000_000));
    let labels = plan.body.labels.expect("labels");
    assert_eq!(labels[labels::PROJECT], "p");
    assert_eq!(labels[labels::OWNER], "p");
    assert_eq!(labels[labels::SERVICE], "etcd1");
    assert_eq!(plan.body.env, Some(vec!["A=1".to_string()]));
}

#[test]
fn privileges_each_need_their_grant_and_the_hint_names_it_exactly() {
    let c = case();
    let none = DockerGrants::default();
    let cases: Vec<(wit::ContainerSpec, &str)> = vec![
        (wit::ContainerSpec { privileged: true, ..spec("a") }, "`privileged = true`"),
        (wit::ContainerSpec { pid_host: true, ..spec("a") }, "`host-pid = true`"),
        (wit::ContainerSpec { ipc: Some(wit::IpcMode::Host), ..spec("a") }, "`host-ipc = true`"),
        (wit::ContainerSpec { network: wit::NetworkMode::Host, ..spec("a") }, "`host-network = true`"),
        (wit::ContainerSpec { cap_add: vec!["cap_net_admin".into()], ..spec("a") }, "`cap-add = [\"NET_ADMIN\"]`"),
        (
            wit::ContainerSpec {
                devices: vec![wit::Device {
                    host_path: "/dev/fuse".into(),
                    container_path: "/dev/fuse".into(),
                    permissions: "rw".into(),
                }],
                ..spec("a")
            },
            "`devices = [\"/dev/fuse\"]`",
        ),
        (
            wit::ContainerSpec { ports: vec![port(Some("0.0.0.0"), None)], ..spec("a") },
            "`publish-addresses = [\"0.0.0.0\"]`",
        ),
        (
            wit::ContainerSpec { ports: vec![port(Some("10.1.2.3"), Some(8080))], ..spec("a") },
            "`publish-addresses = [\"10.1.2.3\"]`",
        ),
        (wit::ContainerSpec { ports: vec![port(None, Some(80))], ..spec("a") }, "`low-ports = true`"),
        (wit::ContainerSpec { restart: wit::RestartPolicy::Always, ..spec("a") }, "`restart-always = true`"),
        (wit::ContainerSpec { restart: wit::RestartPolicy::UnlessStopped, ..spec("a") }, "`restart-always = true`"),
        (
            wit::ContainerSpec {
                ulimits: vec![wit::Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }],
                ..spec("a")
            },
            "`ulimits = [\"nofile\"]`",
        ),
        (
            wit::ContainerSpec { extra_hosts: vec![("db".into(), "10.0.0.1".into())], ..spec("a") },
            "`extra-hosts = true`",
        ),
        (
            wit::ContainerSpec { labels: vec![("traefik.enable".into(), "true".into())], ..spec("a") },
            "`labels = [\"traefik.enable\"]`",
        ),
    ];
    for (s, grant) in &cases {
        let (_, hint) = denied(c.plan(&none, s));
        assert!(hint.contains(grant), "{grant}: {hint}");
    }
    let allow = DockerSection {
        privileged: true,
        host_network: true,
        host_pid: true,
        host_ipc: true,
        cap_add: vec!["NET_ADMIN".into()],
        devices: vec!["/dev/fuse".into()],
        publish_addresses: vec!["0.0.0.0".into(), "10.1.2.3".into()],
        low_ports: true,
        ulimits: vec!["nofile".into()],
        extra_hosts: true,
        restart_always: true,
        labels: vec!["traefik.".into()],
        ..DockerSection::default()
    };
    let all = DockerGrants { allow, ..DockerGrants::default() };
    for (s, grant) in &cases {
        assert!(c.plan(&all, s).is_ok(), "granted {grant} and still refused");
    }
    // Every interface, when granted, is compose's empty address; loopback needs no grant.
    let p = c.plan(&all, &wit::ContainerSpec { ports: vec![port(None, None)], ..spec("a") }).expect("ok");
    let host = p.body.host_config.expect("host");
    assert_eq!(host.port_bindings.expect("ports")["2379/tcp"].clone().expect("b")[0].host_ip.as_deref(), Some(""));
    assert!(c.plan(&none, &wit::ContainerSpec { ports: vec![port(Some("::1"), Some(8080))], ..spec("a") }).is_ok());
}

#[test]
fn a_read_only_scope_lists_but_refuses_every_change_by_name() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default()).read_only();
    block(async {
        assert!(docker.list_containers().await.expect("list").is_empty());
        assert!(docker.list_networks().await.expect("list").is_empty());
        let (reason, hint) = denied(docker.create_network("default").await);
        assert!(reason.starts_with("creating a network changes the project"), "{reason}");
        assert!(hint.contains("operator deploy local"), "{hint}");
        assert!(denied(docker.create_volume("data").await).0.starts_with("creating a volume"));
        assert!(denied(docker.remove_container("p-etcd1-1", true).await).0.starts_with("removing a container"));
        assert!(denied(docker.stop_container("p-etcd1-1", None).await).0.starts_with("stopping a container"));
        assert!(denied(docker.pull_image("etcd:3.4").await).0.starts_with("pulling an image"));
        assert!(denied(docker.create_container(&spec("etcd1")).await).0.starts_with("creating a container"));
    });
}

#[test]
fn labels_of_docker_and_of_the_host_cannot_be_set() {
    let c = case();
    let allow = DockerSection { labels: vec!["com.docker.".into(), "dev.operator.".into()], ..Default::default() };
    let g = DockerGrants { allow, ..Default::default() };
    for key in ["com.docker.compose.project", "dev.operator.project", "io.docker.x"] {
        let m = invalid(c.plan(&g, &wit::ContainerSpec { labels: vec![(key.into(), "x".into())], ..spec("a") }));
        assert!(m.contains("is reserved for the host"), "{key}: {m}");
    }
    assert!(c.plan(&g, &wit::ContainerSpec { labels: vec![("tier".into(), "db".into())], ..spec("a") }).is_ok());
}

#[test]
fn mount_targets_are_clean_absolute_paths() {
    let c = case();
    let g = DockerGrants::default();
    for target in ["relative", "/", "/a/../b", "/a//b", "/mnt:/host", "/a,b", "/a/./b", "/x\n"] {
        let s = wit::ContainerSpec {
            mounts: vec![wit::Mount::Tmpfs(wit::TmpfsMount { target: target.into(), size_bytes: None })],
            ..spec("a")
        };
        let m = invalid(c.plan(&g, &s));
        assert!(m.contains("mount target"), "{target:?}: {m}");
    }
    let twice = wit::ContainerSpec { mounts: vec![bind("conf", true), bind(".", true)], ..spec("a") };
    assert!(invalid(c.plan(&g, &twice)).contains("two mounts at /mnt"));
}

#[test]
fn a_container_always_joins_a_project_network_or_none() {
    let c = case();
    let g = DockerGrants::default();
    let m = invalid(c.plan(&g, &wit::ContainerSpec { network: wit::NetworkMode::Networks(vec![]), ..spec("a") }));
    assert!(m.contains("at least one project network"), "{m}");
    let p = c.plan(&g, &wit::ContainerSpec { network: wit::NetworkMode::NoNetwork, ..spec("a") }).expect("none");
    assert_eq!(p.body.host_config.and_then(|h| h.network_mode).as_deref(), Some("none"));
}

#[test]
fn binds_follow_the_bind_rules() {
    let c = case();
    let g = DockerGrants { writable_paths: vec![c.root.join("data")], ..Default::default() };
    let (reason, _) = denied(c.plan(&g, &wit::ContainerSpec { mounts: vec![bind(".", false)], ..spec("a") }));
    assert!(reason.contains("never bound read-write"), "{reason}");
    let data = c.root.join("data");
    assert!(
        c.plan(&g, &wit::ContainerSpec { mounts: vec![bind(data.to_str().expect("utf-8"), false)], ..spec("a") })
            .is_ok()
    );
    let inside = data.join("d");
    let (reason, _) = denied(
        c.plan(&g, &wit::ContainerSpec { mounts: vec![bind(inside.to_str().expect("utf-8"), true)], ..spec("a") }),
    );
    assert!(reason.contains("which containers of this project can write"), "{reason}");
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

#[test]
fn a_project_holding_resources_operator_did_not_create_is_refused() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "someone-else", DockerGrants::default());
    block(async {
        assert!(docker.check_ownership().await.is_ok(), "an empty project is ours to create");
        // `docker compose -p someone-else up` made this: compose's labels, not ours.
        let labels = [(labels::PROJECT.to_string(), "someone-else".to_string())];
        engine.create_network("someone-else_default", labels.into_iter().collect()).await.expect("network");
        let e = docker.check_ownership().await.expect_err("not ours");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m.contains("holds resources operator did not create (network someone-else_default)")),
            "{e:?}"
        );
        assert!(docker.list_networks().await.expect("list").is_empty(), "a foreign network is invisible");
        assert!(matches!(docker.remove_network("default").await, Err(DockerError::Engine(EngineError::NotFound(_)))));
    });
}

#[test]
fn volumes_belong_to_a_project_by_label_not_by_name() {
    let c = case();
    let engine = c.engine();
    let other = c.scoped(&engine, "p_b", DockerGrants::default());
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        // `p_b` + `data` and `p` + `b_data` are both named `p_b_data`.
        other.create_volume("data").await.expect("p_b's volume");
        let e = docker.create_volume("b_data").await.expect_err("the name is taken by p_b");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m.contains("it belongs to project p_b")),
            "{e:?}"
        );
        assert!(docker.list_volumes().await.expect("list").is_empty());
        assert!(matches!(docker.remove_volume("b_data").await, Err(DockerError::Engine(EngineError::NotFound(_)))));
        // A volume Docker made implicitly (no labels) is not ours either.
        engine.create_volume("p_cache", Default::default()).await.expect("implicit");
        let e = docker.create_volume("cache").await.expect_err("unlabelled");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m.contains("operator did not create it")),
            "{e:?}"
        );
        // Its own volumes carry every label.
        let v = docker.create_volume("data").await.expect("own");
        assert_eq!(v.labels.get(labels::OWNER).map(String::as_str), Some("p"));
        assert_eq!(v.labels.get(labels::VOLUME).map(String::as_str), Some("data"));
        assert_eq!(engine.lock().volumes.iter().filter(|v| v.name == "p_b_data").count(), 1);
    });
}

#[test]
fn a_container_uses_only_networks_and_volumes_its_project_created() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    let with_volume = wit::ContainerSpec {
        mounts: vec![wit::Mount::Volume(wit::VolumeMount {
            key: Some("data".into()),
            target: "/d".into(),
            read_only: false,
        })],
        ..spec("a")
    };
    block(async {
        let e = docker.create_container(&with_volume).await.expect_err("no network yet");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::NotFound(m)) if m.contains("network `default` does not exist")),
            "{e:?}"
        );
        docker.create_network("default").await.expect("network");
        let e = docker.create_container(&with_volume).await.expect_err("no volume yet");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::NotFound(m)) if m.contains("volume `data` does not exist")),
            "{e:?}"
        );
        docker.create_volume("data").await.expect("volume");
        let created = docker.create_container(&with_volume).await.expect("created");
        assert_eq!(created.view.name, "p-a-1");
        assert_eq!(created.service, "a");
        let body = engine.body("p-a-1").expect("body");
        assert_eq!(body.host_config.and_then(|h| h.mounts).map(|m| m.len()), Some(1));
        assert_eq!(docker.list_containers().await.expect("list").len(), 1);
    });
}

#[test]
fn pulls_reach_only_allowed_registries() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(
        &engine,
        "p",
        DockerGrants { manifest: Some("subjects/x/operator.toml".into()), ..Default::default() },
    );
    block(async {
        let (reason, hint) = denied(docker.pull_image("127.0.0.1:5999/x:1").await);
        assert!(reason.contains("registry 127.0.0.1:5999 is not allowed (allowed: docker.io)"), "{reason}");
        assert!(hint.contains("`registries = [\"127.0.0.1:5999\"]`"), "{hint}");
        assert!(matches!(docker.pull_image("x:secret token").await, Err(DockerError::Invalid(_))));
        docker.pull_image("busybox:1").await.expect("docker.io is allowed");
        assert_eq!(engine.lock().pulled, vec!["busybox:1".to_string()]);
    });
}

#[test]
fn a_log_stream_reads_bounded_lines_and_its_reader_ends_with_it() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        docker.create_network("default").await.expect("network");
        docker.create_container(&spec("a")).await.expect("created");
        // A container printing a little over 1 MiB without a newline, then nothing: 16 full
        // pieces come out while the rest waits for more.
        let flood = LogChunk { stderr: false, text: "x".repeat((1 << 20) + 1) };
        engine.lock().logs.insert("p-a-1".into(), vec![flood]);
        let mut stream = docker.container_logs(&["p-a-1".into()], None, true).await.expect("stream");
        let mut got = 0;
        for _ in 0..100 {
            let batch = stream.next_batch(Duration::from_millis(100)).await.expect("lines");
            assert!(batch.iter().all(|l| l.line.len() == super::streams::MAX_LINE));
            got += batch.len();
            if got >= 16 {
                break;
            }
        }
        assert_eq!(got, 16);
        assert!(!engine.log_stream_dropped.load(Ordering::SeqCst));
        drop(stream);
        for _ in 0..100 {
            if engine.log_stream_dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reader outlived its stream");
    });
}

#[test]
fn an_engine_elsewhere_gets_no_binds() {
    let c = case();
    let mut engine = c.engine();
    engine.location = EngineLocation::Remote("tcp://10.0.0.1:2375".into());
    assert_eq!(engine.location(), EngineLocation::Remote("tcp://10.0.0.1:2375".into()));
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    let (reason, _) =
        denied(docker.plan_container(&wit::ContainerSpec { mounts: vec![bind("conf", true)], ..spec("a") }));
    assert!(reason.contains("tcp://10.0.0.1:2375"), "{reason}");
}

#[test]
fn a_name_that_reads_as_a_container_id_is_refused() {
    let c = case();
    let id = "e90cf57b".repeat(8);
    let m = invalid(c.plan(&DockerGrants::default(), &wit::ContainerSpec { container_name: Some(id), ..spec("a") }));
    assert!(m.contains("reads as a container ID"), "{m}");
}

#[test]
fn networks_and_new_containers_are_referred_to_by_id() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    let two = wit::ContainerSpec {
        network: wit::NetworkMode::Networks(vec![
            wit::NetworkAttachment { network: "default".into(), aliases: vec!["a".into()] },
            wit::NetworkAttachment { network: "second".into(), aliases: vec!["b".into()] },
        ]),
        ..spec("a")
    };
    block(async {
        let first = docker.create_network("default").await.expect("network");
        let second = docker.create_network("second").await.expect("network");
        let created = docker.create_container(&two).await.expect("created");
        let state = engine.lock();
        let held = state.containers.iter().find(|k| k.view.id == created.view.id).expect("held");
        let host = held.body.host_config.clone().expect("host");
        assert_eq!(host.network_mode, Some(first.id.clone()));
        let endpoints = held.body.networking_config.clone().and_then(|n| n.endpoints_config).expect("endpoints");
        assert!(endpoints.contains_key(&first.id), "{endpoints:?}");
        assert_eq!(held.connected, vec![(second.id.clone(), vec!["b".to_string()])]);
    });
}

#[test]
fn a_name_taken_outside_the_project_is_a_conflict_that_names_nothing_foreign() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        docker.create_network("default").await.expect("network");
        // Someone else's container holds the name this project would use.
        let body = bollard::models::ContainerCreateBody::default();
        let foreign_id = engine.create_container("p-a-1", body).await.expect("foreign");
        let e = docker.create_container(&spec("a")).await.expect_err("taken");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m == "the name p-a-1 is taken by a container outside project p"),
            "{e:?}"
        );
        assert!(!format!("{e:?}").contains(&foreign_id));
        // A network of the project's name that is not the project's is refused too.
        engine.create_network("p_other", Default::default()).await.expect("foreign network");
        let e = docker.create_network("other").await.expect_err("taken");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m.contains("operator did not create it")),
            "{e:?}"
        );
    });
}

#[test]
fn a_project_has_a_bounded_number_of_networks() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        for i in 0..super::scope::MAX_NETWORKS {
            docker.create_network(&format!("n{i}")).await.expect("network");
        }
        assert!(matches!(docker.create_network("one-more").await, Err(DockerError::LimitExceeded(_))));
        // An existing one is still returned.
        assert!(docker.create_network("n0").await.is_ok());
    });
}

#[test]
fn a_project_folder_inside_the_engines_data_root_is_refused() {
    let c = case();
    let mut engine = c.engine();
    engine.data_root = Some(c.root.clone());
    block(async {
        let p = c.project.clone();
        let e = ScopedDocker::open(Arc::new(engine.clone()), p, DockerGrants::default(), ProgressHandle::default())
            .await
            .expect_err("inside the data root");
        let (reason, _) = denied::<()>(Err(e));
        assert!(reason.contains("lies inside Docker's data root"), "{reason}");
        // The data root elsewhere: the project opens, and nothing in the data root is bound.
        engine.data_root = Some(c.root.join("data"));
        let grants = DockerGrants { host_paths: vec![c.root.clone()], ..Default::default() };
        let docker = ScopedDocker::open(Arc::new(engine), c.project.clone(), grants, ProgressHandle::default())
            .await
            .expect("elsewhere");
        let inside = c.root.join("data/d");
        let with_bind = wit::ContainerSpec { mounts: vec![bind(inside.to_str().expect("utf-8"), true)], ..spec("a") };
        let (reason, _) = denied(docker.plan_container(&with_bind));
        assert!(reason.contains("lies inside Docker's data root"), "{reason}");
    });
}

#[test]
fn a_bind_source_that_changed_since_creation_is_not_mounted_again() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        docker.create_network("default").await.expect("network");
        let created = docker
            .create_container(&wit::ContainerSpec { mounts: vec![bind("conf", true)], ..spec("a") })
            .await
            .expect("created");
        docker.start_container(&created.view.name).await.expect("unchanged: starts");
        // The subject folder is updated: `conf` now leads to the socket's folder.
        std::fs::rename(c.project.dir.join("conf"), c.project.dir.join("conf.old")).expect("mv");
        std::os::unix::fs::symlink(c.root.join("run"), c.project.dir.join("conf")).expect("symlink");
        for r in
            [docker.start_container(&created.view.name).await, docker.restart_container(&created.view.name, None).await]
        {
            let (reason, hint) = denied(r);
            assert!(
                reason.contains("now resolves to") && reason.contains("changed since the container was created"),
                "{reason}"
            );
            assert!(hint.contains("`down` then `up`"), "{hint}");
        }
    });
}

#[test]
fn a_project_of_the_same_name_from_another_folder_is_not_this_subjects() {
    let c = case();
    let engine = c.engine();
    let theirs = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        theirs.create_network("default").await.expect("their network");
        let elsewhere = Project { dir: c.root.join("data"), ..c.project.clone() };
        let ours = ScopedDocker::new(
            Arc::new(engine.clone()),
            elsewhere.clone(),
            DockerGrants::default(),
            ProgressHandle::default(),
        );
        let e = ours.check_ownership().await.expect_err("another folder's project");
        assert!(
            matches!(&e, DockerError::Engine(EngineError::Conflict(m)) if m.contains("was deployed from") && m.contains("pass -p p")),
            "{e:?}"
        );
        // Named by the user, it is theirs to act on from anywhere.
        let named = Project { named: true, ..elsewhere };
        let ours = ScopedDocker::new(Arc::new(engine), named, DockerGrants::default(), ProgressHandle::default());
        assert!(ours.check_ownership().await.is_ok());
    });
}

#[test]
fn every_part_of_a_spec_is_bounded() {
    let c = case();
    let g = DockerGrants::default();
    let labels = (0..=super::plan::caps::LABELS).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(invalid(c.plan(&g, &wit::ContainerSpec { labels, ..spec("a") })).contains("labels; at most 64"));
    let ports = (0..=super::plan::caps::PORTS as u16).map(|p| port(None, Some(20_000 + p))).collect();
    assert!(invalid(c.plan(&g, &wit::ContainerSpec { ports, ..spec("a") })).contains("published ports; at most 64"));
    let env = vec![("BIG".to_string(), "x".repeat(super::plan::caps::ENVIRONMENT_BYTES))];
    assert!(
        invalid(c.plan(&g, &wit::ContainerSpec { environment: env, ..spec("a") })).contains("bytes of environment")
    );
    let cap = vec!["X".repeat(1 << 20)];
    assert!(
        invalid(c.plan(&g, &wit::ContainerSpec { cap_add: cap, ..spec("a") })).contains("is not a capability name")
    );
    let fast = wit::Healthcheck {
        test: vec!["CMD".into(), "true".into()],
        interval_ms: 1,
        timeout_ms: 0,
        retries: 0,
        start_period_ms: 0,
        start_interval_ms: 0,
    };
    let m = invalid(c.plan(&g, &wit::ContainerSpec { healthcheck: Some(fast), ..spec("a") }));
    assert!(m.contains("healthcheck interval 1ms is shorter than 100ms"), "{m}");
}

#[test]
fn a_project_has_a_bounded_number_of_containers_and_published_ports() {
    let c = case();
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        docker.create_network("default").await.expect("network");
        for i in 0..super::scope::MAX_CONTAINERS {
            docker.create_container(&spec(&format!("s{i}"))).await.expect("created");
        }
        let e = docker.create_container(&spec("one-more")).await.expect_err("full");
        assert!(matches!(&e, DockerError::LimitExceeded(m) if m.contains("64 containers")), "{e:?}");
    });
    // Ports already published count against the project's total.
    let engine = c.engine();
    let docker = c.scoped(&engine, "p", DockerGrants::default());
    block(async {
        docker.create_network("default").await.expect("network");
        let created = docker.create_container(&spec("a")).await.expect("created");
        let published = (0..super::scope::MAX_PUBLISHED_PORTS as u16)
            .map(|p| super::engine::PortView {
                container_port: p + 1,
                protocol: "tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port: Some(30_000 + p),
            })
            .collect();
        if let Some(k) = engine.lock().containers.iter_mut().find(|k| k.view.id == created.view.id) {
            k.view.ports = published;
        }
        let one = wit::ContainerSpec { ports: vec![port(None, Some(8080))], ..spec("b") };
        let e = docker.create_container(&one).await.expect_err("past the project's ports");
        assert!(matches!(&e, DockerError::LimitExceeded(m) if m.contains("publishes 256 host ports")), "{e:?}");
    });
}

// --- The capability's host side, through its WIT trait --------------------------------------

fn context() -> Arc<crate::capability::context::CallContext> {
    let ctx = crate::capability::context::CallContext::new("driver", Duration::from_secs(5), Duration::from_secs(5));
    ctx.clock().start();
    ctx
}

#[test]
fn without_a_project_every_docker_operation_is_denied_and_recorded() {
    use super::DockerHost;
    use wit::Host as _;
    let ctx = context();
    let mut host = DockerHost::new(None, ctx.clone());
    let r = block(host.create_network("default".into())).expect("not a trap");
    let Err(wit::DockerError::Denied(d)) = r else { panic!("{r:?}") };
    assert!(d.reason.contains("create-network is not granted"), "{}", d.reason);
    assert_eq!(block(host.project_name()).expect("name"), "");
    let (kept, _) = ctx.take_denials();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].capability, "docker");
}

#[test]
fn the_capability_names_the_projects_resources_and_records_its_refusals() {
    use super::DockerHost;
    use wit::Host as _;
    let c = case();
    let engine = c.engine();
    let ctx = context();
    let scoped = Arc::new(c.scoped(&engine, "p", DockerGrants::default()));
    let mut host = DockerHost::new(Some(scoped), ctx.clone());
    assert_eq!(block(host.project_name()).expect("name"), "p");
    let net = block(host.create_network("default".into())).expect("not a trap").expect("created");
    // The host names it; the guest learns the real name.
    assert_eq!((net.key.as_str(), net.name.as_str()), ("default", "p_default"));
    let mut s = spec("db");
    s.privileged = true;
    let r = block(host.create_container(s)).expect("not a trap");
    assert!(matches!(r, Err(wit::DockerError::Denied(_))), "{r:?}");
    let (kept, dropped) = ctx.take_denials();
    assert_eq!((kept.len(), dropped), (1, 0));
    assert!(kept[0].hint.contains("privileged"), "{}", kept[0].hint);
}
