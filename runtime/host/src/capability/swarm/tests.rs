//! A service spec through the checked plan: the container rules apply to services, the
//! service-only settings are checked, and the host's labels cannot be set by the driver.

use std::path::PathBuf;

use ::bollard::models::{EndpointPortConfigPublishModeEnum, EndpointSpecModeEnum, MountType};

use super::plan::{ServicePlan, plan};
use super::scope::labels;
use crate::bindings::docker as dwit;
use crate::bindings::swarm as wit;
use crate::capability::docker::binds::{BindRules, EngineLocation};
use crate::capability::docker::plan::Planner;
use crate::capability::docker::{DockerError, DockerGrants, Project};
use crate::manifest::DockerSection;

struct Case {
    _root: tempfile::TempDir,
    root: PathBuf,
    stack: Project,
}

fn case() -> Case {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(r.join("subject/conf")).expect("mkdir");
    std::fs::create_dir_all(r.join("run")).expect("mkdir");
    let stack = Project {
        name: "etcd".into(),
        dir: r.join("subject"),
        config_files: vec![],
        registries: vec!["docker.io".into()],
        named: false,
    };
    Case { _root: root, root: r, stack }
}

impl Case {
    fn plan(&self, allow: DockerSection, spec: &wit::ServiceSpec) -> Result<ServicePlan, DockerError> {
        let grants = DockerGrants::resolve(allow, &self.stack.dir, None).expect("grants");
        let binds = BindRules {
            project_dir: self.stack.dir.clone(),
            engine: EngineLocation::Local { socket: self.root.join("run/docker.sock") },
            data_root: None,
        };
        plan(&Planner { project: &self.stack, grants: &grants, binds: &binds }, spec)
    }
}

fn ports() -> DockerSection {
    DockerSection { swarm_ports: true, ..Default::default() }
}

fn spec() -> wit::ServiceSpec {
    wit::ServiceSpec {
        service: "etcd1".into(),
        image: "operator/etcd:3.4.23-debian".into(),
        command: Some(vec!["etcd".into(), "--name=etcd1".into()]),
        entrypoint: None,
        environment: vec![("A".into(), "1".into())],
        labels: vec![("tier".into(), "db".into())],
        container_labels: vec![],
        mode: wit::ServiceMode::Replicated(1),
        ports: vec![wit::PublishedPort {
            target: 2379,
            published: Some(2379),
            protocol: dwit::Protocol::Tcp,
            mode: wit::PublishMode::Host,
        }],
        endpoint_mode: wit::EndpointMode::Dnsrr,
        networks: vec![dwit::NetworkAttachment { network: "default".into(), aliases: vec!["etcd1".into()] }],
        mounts: vec![dwit::Mount::Volume(dwit::VolumeMount {
            key: Some("etcd1-data".into()),
            target: "/var/lib/etcd".into(),
            read_only: false,
        })],
        healthcheck: Some(dwit::Healthcheck {
            test: vec!["CMD".into(), "wget".into(), "-q".into(), "http://127.0.0.1:2381/metrics".into()],
            interval_ms: 2000,
            timeout_ms: 2000,
            retries: 30,
            start_period_ms: 0,
            start_interval_ms: 0,
        }),
        hostname: None,
        user: None,
        working_dir: None,
        placement_constraints: vec!["node.role == manager".into()],
        restart_policy: None,
        update_config: None,
        resources: None,
        stop_grace_period_ms: None,
        stop_signal: None,
        cap_add: vec![],
        config_hash: "abc".into(),
    }
}

#[test]
fn a_service_is_planned_with_the_stacks_names_labels_and_its_healthcheck() {
    let c = case();
    let p = c.plan(ports(), &spec()).expect("planned");
    assert_eq!(p.name, "etcd_etcd1");
    assert_eq!((p.networks.clone(), p.volumes.clone()), (vec!["default".to_string()], vec!["etcd1-data".to_string()]));
    let labels_of = p.spec.labels.clone().expect("labels");
    assert_eq!(labels_of.get(labels::NAMESPACE).map(String::as_str), Some("etcd"));
    assert_eq!(labels_of.get(labels::OWNER).map(String::as_str), Some("etcd"));
    assert_eq!(labels_of.get(labels::SERVICE).map(String::as_str), Some("etcd1"));
    assert_eq!(labels_of.get("tier").map(String::as_str), Some("db"));
    let task = p.spec.task_template.expect("task");
    let container = task.container_spec.expect("container");
    assert_eq!(container.args.as_deref(), Some(&["etcd".to_string(), "--name=etcd1".to_string()][..]));
    assert_eq!(container.env.as_deref(), Some(&["A=1".to_string()][..]));
    let health = container.health_check.expect("healthcheck");
    assert_eq!(health.test.expect("test")[1], "wget");
    let mounts = container.mounts.expect("mounts");
    assert_eq!((mounts[0].typ, mounts[0].source.as_deref()), (Some(MountType::VOLUME), Some("etcd_etcd1-data")));
    let networks = task.networks.expect("networks");
    assert_eq!(networks[0].target.as_deref(), Some("etcd_default"));
    assert_eq!(task.placement.expect("placement").constraints.expect("constraints"), ["node.role == manager"]);
    let endpoint = p.spec.endpoint_spec.expect("endpoint");
    assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
    assert_eq!(endpoint.ports.expect("ports")[0].publish_mode, Some(EndpointPortConfigPublishModeEnum::HOST));
}

fn denied(r: Result<ServicePlan, DockerError>) -> (String, String) {
    match r {
        Err(DockerError::Denied { reason, hint }) => (reason, hint),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn publishing_through_swarm_needs_its_grant_and_low_ports_theirs() {
    let c = case();
    let (reason, hint) = denied(c.plan(DockerSection::default(), &spec()));
    assert!(reason.contains("every interface of every node"), "{reason}");
    assert!(hint.contains("`swarm-ports = true`"), "{hint}");
    let mut low = spec();
    low.ports[0].published = Some(80);
    let (_, hint) = denied(c.plan(ports(), &low));
    assert!(hint.contains("`low-ports = true`"), "{hint}");
    let mut mesh = spec();
    mesh.ports[0].mode = wit::PublishMode::Ingress;
    assert!(matches!(c.plan(ports(), &mesh), Err(DockerError::Invalid(m)) if m.contains("dnsrr")));
}

#[test]
fn the_container_rules_hold_for_services() {
    let c = case();
    // The Docker socket, a path outside the subject, a capability, a host label.
    let mut socket = spec();
    socket.mounts.push(dwit::Mount::Bind(dwit::BindMount {
        source: c.root.join("run/docker.sock").display().to_string(),
        target: "/var/run/docker.sock".into(),
        read_only: false,
    }));
    std::fs::write(c.root.join("run/docker.sock"), "").expect("socket stand-in");
    let (_, hint) = denied(c.plan(ports(), &socket));
    assert!(hint.contains("docker-socket = true"), "{hint}");

    let mut outside = spec();
    outside.mounts.push(dwit::Mount::Bind(dwit::BindMount {
        source: "/etc".into(),
        target: "/host-etc".into(),
        read_only: true,
    }));
    let (_, hint) = denied(c.plan(ports(), &outside));
    assert!(hint.contains("host-paths = [\"/etc\"]"), "{hint}");

    let mut caps = spec();
    caps.cap_add = vec!["SYS_ADMIN".into()];
    let (_, hint) = denied(c.plan(ports(), &caps));
    assert!(hint.contains("cap-add = [\"SYS_ADMIN\"]"), "{hint}");

    for (container, labels_of) in [(true, vec![(labels::OWNER.to_string(), "other".to_string())]), (false, vec![])] {
        let mut owner = spec();
        if container {
            owner.container_labels = labels_of;
        } else {
            owner.labels = vec![(labels::NAMESPACE.to_string(), "other".to_string())];
        }
        assert!(matches!(c.plan(ports(), &owner), Err(DockerError::Invalid(m)) if m.contains("reserved")));
    }
    let mut namespaced = spec();
    namespaced.labels = vec![("traefik.enable".into(), "true".into())];
    let (_, hint) = denied(c.plan(ports(), &namespaced));
    assert!(hint.contains("labels = [\"traefik.enable\"]"), "{hint}");
}

#[test]
fn service_only_settings_are_bounded() {
    let c = case();
    let mut many = spec();
    many.mode = wit::ServiceMode::Replicated(10_000);
    assert!(matches!(c.plan(ports(), &many), Err(DockerError::Invalid(m)) if m.contains("replicas")));
    let mut constraint = spec();
    constraint.placement_constraints = vec!["node.role\nmanager".into()];
    assert!(matches!(c.plan(ports(), &constraint), Err(DockerError::Invalid(m)) if m.contains("placement")));
    let mut negative = spec();
    negative.resources = Some(wit::Resources {
        limit_nano_cpus: Some(-1),
        limit_memory_bytes: None,
        reserve_nano_cpus: None,
        reserve_memory_bytes: None,
    });
    assert!(matches!(c.plan(ports(), &negative), Err(DockerError::Invalid(m)) if m.contains("negative")));
}

/// Swarm expands `{{…}}` in these fields on the node, after the host's checks: a bind source
/// checked as a folder of the subject could become `/`.
#[test]
fn templates_swarm_would_expand_after_the_checks_are_refused() {
    let c = case();
    let folder = c.stack.dir.join("{{\"\\x2f..\\x2f..\\x2f..\"}}");
    std::fs::create_dir_all(&folder).expect("a folder named like a template");
    let mut bind = spec();
    bind.mounts.push(dwit::Mount::Bind(dwit::BindMount {
        source: folder.display().to_string(),
        target: "/host".into(),
        read_only: true,
    }));
    let mut env = spec();
    env.environment = vec![("NODE".into(), "{{.Node.Hostname}}".into())];
    let mut target = spec();
    target.mounts.push(dwit::Mount::Tmpfs(dwit::TmpfsMount { target: "/t{{.Task.Slot}}".into(), size_bytes: None }));
    for s in [bind, env, target] {
        assert!(
            matches!(c.plan(ports(), &s), Err(DockerError::Invalid(m)) if m.contains("expand as a template")),
            "{s:?}"
        );
    }
}

#[test]
fn what_would_outlive_or_outrun_down_is_bounded() {
    let c = case();
    let mut grace = spec();
    grace.stop_grace_period_ms = Some(3_600_000);
    assert!(matches!(c.plan(ports(), &grace), Err(DockerError::Invalid(m)) if m.contains("stop grace period")));
    let mut storm = spec();
    storm.restart_policy = Some(wit::RestartPolicy {
        condition: wit::RestartCondition::Any,
        delay_ms: Some(0),
        max_attempts: None,
        window_ms: None,
    });
    assert!(matches!(c.plan(ports(), &storm), Err(DockerError::Invalid(m)) if m.contains("restart delay")));
    let mut many = spec();
    many.ports = (1..=65)
        .map(|p| wit::PublishedPort {
            target: 2000 + p,
            published: Some(20_000 + p),
            protocol: dwit::Protocol::Tcp,
            mode: wit::PublishMode::Host,
        })
        .collect();
    assert!(matches!(c.plan(ports(), &many), Err(DockerError::Invalid(m)) if m.contains("65 published ports")));
}
