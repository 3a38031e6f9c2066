//! Deploying a subject's local cluster: resolving the compose project (files, name, `.env`,
//! the variables it refers to) and calling a deployment driver with a Docker capability
//! scoped to that project.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::InstancePre;

use crate::bindings::deployment as b;
use crate::bindings::deployment::exports::operator::core::deployment_target as t;
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::host::docker::engine::DockerEngine;
use crate::host::docker::scope::LogLine;
use crate::host::docker::{DockerGrants, LogStream, ScopedDocker};
use crate::host::progress::ProgressHandle;
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::sandbox::{CallOutcome, FailedCall, HostState, Policy};

/// Compose's default file names, in the order compose looks for them.
pub const COMPOSE_FILES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];

/// A resolved compose project.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub name: String,
    /// Absolute project folder.
    pub dir: PathBuf,
    pub files: Vec<(PathBuf, String)>,
    pub env_file: Option<String>,
    /// The operator's variables the files refer to (and only those).
    pub environment: Vec<(String, String)>,
}

/// Why a project cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no compose file in {dir} (looked for {})", COMPOSE_FILES.join(", "))]
    NoComposeFile { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid project name `{0}`: it must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    )]
    BadName(String),
}

impl ComposeProject {
    /// Resolves the project in `dir`: the compose file (`file`, or compose's default names),
    /// the name (`name_flag`, then `COMPOSE_PROJECT_NAME`, then the file's `name:`, then the
    /// folder's name), `.env`, and the variables the files refer to.
    pub fn resolve(dir: &Path, file: Option<&str>, name_flag: Option<&str>) -> Result<Self, ProjectError> {
        let dir = dir.canonicalize().map_err(|source| ProjectError::Read { path: dir.to_path_buf(), source })?;
        let path = match file {
            Some(f) => dir.join(f),
            None => COMPOSE_FILES
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| ProjectError::NoComposeFile { dir: dir.clone() })?,
        };
        let text =
            std::fs::read_to_string(&path).map_err(|source| ProjectError::Read { path: path.clone(), source })?;
        let env_path = dir.join(".env");
        let env_file = match std::fs::read_to_string(&env_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ProjectError::Read { path: env_path, source }),
        };

        let name = match name_flag
            .map(String::from)
            .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok().filter(|n| !n.is_empty()))
        {
            Some(explicit) => {
                let lower = explicit.to_lowercase();
                if !valid_project_name(&lower) {
                    return Err(ProjectError::BadName(explicit));
                }
                lower
            }
            None => match top_level_name(&text) {
                Some(n) if valid_project_name(&n.to_lowercase()) => n.to_lowercase(),
                Some(n) => return Err(ProjectError::BadName(n)),
                None => normalize_name(&dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            },
        };

        let mut environment = Vec::new();
        let mut refs = referenced_names(&text);
        if let Some(env) = &env_file {
            refs.extend(referenced_names(env));
        }
        for n in refs {
            if let Ok(v) = std::env::var(&n)
                && !environment.iter().any(|(k, _): &(String, String)| k == &n)
            {
                environment.push((n, v));
            }
        }
        Ok(ComposeProject { name, dir, files: vec![(path, text)], env_file, environment })
    }

    /// Like [`ComposeProject::resolve`], but a missing compose file is allowed: `down` and
    /// `status` work from the containers' labels alone.
    pub fn resolve_or_labels(dir: &Path, file: Option<&str>, name_flag: Option<&str>) -> Result<Self, ProjectError> {
        match Self::resolve(dir, file, name_flag) {
            Err(ProjectError::NoComposeFile { dir }) => {
                let name = match name_flag
                    .map(String::from)
                    .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok().filter(|n| !n.is_empty()))
                {
                    Some(n) if valid_project_name(&n.to_lowercase()) => n.to_lowercase(),
                    Some(n) => return Err(ProjectError::BadName(n)),
                    None => {
                        normalize_name(&dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
                    }
                };
                Ok(ComposeProject { name, dir, files: Vec::new(), env_file: None, environment: Vec::new() })
            }
            other => other,
        }
    }

    fn input(&self) -> t::Project {
        t::Project {
            name: self.name.clone(),
            directory: self.dir.display().to_string(),
            files: self
                .files
                .iter()
                .map(|(p, c)| t::ComposeFile { path: p.display().to_string(), contents: c.clone() })
                .collect(),
            env_file: self.env_file.clone(),
            environment: self.environment.clone(),
        }
    }
}

/// Compose's rule for a project name.
pub fn valid_project_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A folder name as a project name: lower-cased, only `[a-z0-9_-]`, no leading `_`/`-`.
pub fn normalize_name(dir: &str) -> String {
    dir.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect::<String>()
        .trim_start_matches(['-', '_'])
        .to_string()
}

/// The value of a top-level `name:` key, if the file has one (read without a YAML parser:
/// an unindented `name:` line).
fn top_level_name(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix("name:")?.trim();
        let v = v.split(" #").next().unwrap_or(v).trim().trim_matches(['"', '\'']);
        (!v.is_empty() && !v.contains('$')).then(|| v.to_string())
    })
}

/// The variable names a text refers to (`$VAR`, `${VAR...}`), `$$` excluded.
pub fn referenced_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let start = if bytes.get(i + 1) == Some(&b'{') { i + 2 } else { i + 1 };
        let mut j = start;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        if j > start {
            let n = text[start..j].to_string();
            if !names.contains(&n) {
                names.push(n);
            }
        }
        i = j.max(i + 1);
    }
    names
}

/// One service's state after `up` or for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub state: String,
    pub health: Option<String>,
    pub ports: Vec<String>,
}

/// Why a deployment operation failed (the driver's own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error("invalid-project: {0}")]
    InvalidProject(String),
    #[error("docker: {0}")]
    Docker(String),
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("not-found: {0}")]
    NotFound(String),
}

fn deploy_error(e: t::DeployError) -> DeployError {
    match e {
        t::DeployError::InvalidProject(m) => DeployError::InvalidProject(m),
        t::DeployError::Docker(m) => DeployError::Docker(m),
        t::DeployError::Unhealthy(m) => DeployError::Unhealthy(m),
        t::DeployError::Timeout(m) => DeployError::Timeout(m),
        t::DeployError::NotFound(m) => DeployError::NotFound(m),
    }
}

fn statuses(v: Vec<t::ServiceStatus>) -> Vec<ServiceStatus> {
    v.into_iter()
        .map(|s| ServiceStatus {
            service: s.service,
            container: s.container,
            state: s.state,
            health: s.health,
            ports: s.ports,
        })
        .collect()
}

/// Default limits of a deployment call: planning is cheap, waiting (pulls, health) is long.
pub fn default_limits() -> Limits {
    Limits { deadline: Duration::from_secs(30), host_time: Duration::from_secs(2 * 3600), ..Limits::default() }
}

/// The Docker grants a manifest gives (relative host paths resolve against the subject folder).
pub fn grants(manifest: Option<&Manifest>, dir: &Path) -> DockerGrants {
    let Some(m) = manifest else { return DockerGrants::default() };
    let d = m.deployment.clone().unwrap_or_default().docker;
    DockerGrants {
        privileged: d.privileged,
        host_network: d.host_network,
        host_pid: d.host_pid,
        host_ipc: d.host_ipc,
        docker_socket: d.docker_socket,
        cap_add: d.cap_add,
        devices: d.devices,
        host_paths: d.host_paths.iter().map(|p| dir.join(p)).collect(),
        manifest: Some(m.path.clone()),
    }
}

/// A deployment driver ready to call for one project.
pub struct Deployer<'r> {
    runtime: &'r Runtime,
    component: &'r LoadedComponent,
    pre: b::DeploymentDriverPre<HostState>,
    project: ComposeProject,
    policy: Policy,
}

impl<'r> Deployer<'r> {
    /// Checks that `component` implements the DeploymentTarget contract and scopes Docker to
    /// `project`.
    pub fn new(
        runtime: &'r Runtime,
        component: &'r LoadedComponent,
        project: ComposeProject,
        engine: Arc<dyn DockerEngine>,
        grants: DockerGrants,
        limits: Limits,
        progress: ProgressHandle,
    ) -> Result<Self, CallError> {
        let pre = b::DeploymentDriverPre::new(component.pre.clone()).map_err(|e| CallError::ContractMismatch {
            detail: format!(
                "`{}` does not implement the DeploymentTarget contract (operator:core/deployment-target@0.1.x): {e:#}",
                component.name
            ),
        })?;
        let files = project.files.iter().map(|(p, _)| p.clone()).collect();
        let docker = ScopedDocker::new(engine, &project.name, &project.dir, files, grants, progress.clone());
        let policy = Policy { docker: Some(Arc::new(docker)), limits, progress, ..Policy::default() };
        Ok(Deployer { runtime, component, pre, project, policy })
    }

    /// The project being deployed.
    pub fn project(&self) -> &ComposeProject {
        &self.project
    }

    async fn call<R, F>(&self, op: F) -> Result<CallOutcome<R>, FailedCall>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(
                &'a b::exports::operator::core::deployment_target::Guest,
                &'a mut wasmtime::Store<HostState>,
                t::Project,
            ) -> crate::sandbox::CallBody<'a, R>
            + Send
            + 'static,
    {
        let pre = self.pre.clone();
        let input = self.project.input();
        self.runtime
            .run(self.component, &self.policy, move |store, _: &InstancePre<HostState>| {
                Box::pin(async move {
                    let driver = pre.instantiate_async(&mut *store).await?;
                    op(driver.operator_core_deployment_target(), store, input).await
                })
            })
            .await
    }

    /// `up`.
    pub async fn up(
        &self,
        wait: bool,
        wait_timeout: Option<Duration>,
    ) -> Result<CallOutcome<Result<Vec<ServiceStatus>, DeployError>>, FailedCall> {
        let options = t::UpOptions { wait, wait_timeout_ms: wait_timeout.map(|d| d.as_millis() as u64) };
        self.call(move |d, store, p| {
            Box::pin(async move { Ok(d.call_up(store, &p, options).await?.map(statuses).map_err(deploy_error)) })
        })
        .await
    }

    /// `down`.
    pub async fn down(&self, remove_volumes: bool) -> Result<CallOutcome<Result<(), DeployError>>, FailedCall> {
        self.call(move |d, store, p| {
            Box::pin(async move { Ok(d.call_down(store, &p, remove_volumes).await?.map_err(deploy_error)) })
        })
        .await
    }

    /// `status`.
    pub async fn status(&self) -> Result<CallOutcome<Result<Vec<ServiceStatus>, DeployError>>, FailedCall> {
        self.call(|d, store, p| {
            Box::pin(async move { Ok(d.call_status(store, &p).await?.map(statuses).map_err(deploy_error)) })
        })
        .await
    }

    /// `restart`.
    pub async fn restart(&self, services: Vec<String>) -> Result<CallOutcome<Result<(), DeployError>>, FailedCall> {
        self.call(move |d, store, p| {
            Box::pin(async move { Ok(d.call_restart(store, &p, &services).await?.map_err(deploy_error)) })
        })
        .await
    }

    /// `logs`: the stream the driver opened, to drain after the call.
    pub async fn logs(
        &self,
        services: Vec<String>,
        tail: Option<u32>,
        follow: bool,
    ) -> Result<CallOutcome<Result<LogStream, DeployError>>, FailedCall> {
        let options = t::LogOptions { services, tail, follow };
        self.call(move |d, store, p| {
            Box::pin(async move {
                match d.call_logs(&mut *store, &p, &options).await? {
                    Ok(resource) => Ok(Ok(store.data_mut().take_log_stream(resource)?)),
                    Err(e) => Ok(Err(deploy_error(e))),
                }
            })
        })
        .await
    }
}

/// A batch of log lines, or `None` at the end (re-exported for the CLI).
pub async fn next_log_lines(stream: &mut LogStream, wait: Duration) -> Option<Vec<LogLine>> {
    stream.next_batch(wait).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_composes_rules() {
        assert_eq!(normalize_name("My_Project!"), "my_project");
        assert_eq!(normalize_name("-x"), "x");
        assert!(valid_project_name("tikv"));
        assert!(!valid_project_name("Tikv"));
        assert!(!valid_project_name("_x"));
        assert_eq!(top_level_name("# c\nname: demo # note\nservices:\n  name: no\n"), Some("demo".into()));
        assert_eq!(top_level_name("services:\n  a:\n    name: x\n"), None);
    }

    #[test]
    fn only_referenced_variables_are_found() {
        assert_eq!(referenced_names("${A:-x} $B $$C ${D} $ {E}"), vec!["A", "B", "D"]);
    }

    #[test]
    fn a_project_resolves_from_its_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("My-Cluster");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("docker-compose.yaml"), "services:\n  a:\n    image: ${OPERATOR_TEST_IMAGE_XYZ:-x}\n")
            .expect("write");
        std::fs::write(sub.join(".env"), "B=1\n").expect("write");
        let p = ComposeProject::resolve(&sub, None, None).expect("resolves");
        assert_eq!(p.name, "my-cluster");
        assert_eq!(p.env_file.as_deref(), Some("B=1\n"));
        assert!(p.environment.is_empty());
        assert_eq!(ComposeProject::resolve(&sub, None, Some("other")).expect("flag").name, "other");
        assert!(matches!(ComposeProject::resolve(&sub, None, Some("Bad Name")), Err(ProjectError::BadName(_))));
        assert!(matches!(ComposeProject::resolve(dir.path(), None, None), Err(ProjectError::NoComposeFile { .. })));
    }
}
