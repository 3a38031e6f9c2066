//! Deploying a subject's local cluster: resolving the compose project and calling a
//! deployment driver with a Docker capability scoped to that project.
//!
//! The subject folder may come from someone else, so what the driver is handed is decided
//! here, narrowly: the project's name comes from the operator (`-p`, `COMPOSE_PROJECT_NAME`,
//! the subject), never from the file's `name:`; only files inside the folder are read (no
//! symlink or `..` out, no FIFO, at most [`MAX_FILE`] bytes, none inside a path containers can
//! write); only the environment variables the manifest declares reach interpolation; images
//! come only from registries the manifest allows, by default those the compose file names
//! literally.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::bindings::deployment as b;
use crate::bindings::deployment::exports::operator::core::deployment_target as t;
use crate::call::{Output, Sandboxed, json_size};
use crate::capability::docker::engine::DockerEngine;
use crate::capability::docker::grants::GrantError;
use crate::capability::docker::image::{DOCKER_HUB, normalize_registry, split_registry};
use crate::capability::docker::{DockerError, DockerGrants, LogLine, LogStream, Project, ScopedDocker};
use crate::capability::progress::ProgressHandle;
use crate::capability::swarm::{ScopedSwarm, SwarmEngine};
use crate::engine::{LoadedComponent, Runtime};
use crate::error::CallError;
use crate::files::{BoundedRead, read_bounded};
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::sandbox::{CallOutcome, CallState, FailedCall, Policy};

/// Compose's default file names, in the order compose looks for them.
pub const COMPOSE_FILES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];
/// Largest compose or `.env` file read.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

/// A resolved compose project.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub name: String,
    /// The user named the project (`-p`, `COMPOSE_PROJECT_NAME`): it may have been deployed
    /// from another folder. Otherwise its resources must come from this folder.
    pub named: bool,
    /// Absolute project folder.
    pub dir: PathBuf,
    pub files: Vec<(PathBuf, String)>,
    pub env_file: Option<String>,
    /// The operator's variables the manifest declares (those that are set).
    pub environment: Vec<(String, String)>,
    /// Registries images may be pulled from.
    pub registries: Vec<String>,
}

/// Where a project comes from and what the operator and the manifest say about it.
#[derive(Debug, Clone)]
pub struct ProjectSource<'a> {
    /// The subject folder (or the current folder).
    pub dir: &'a Path,
    /// The manifest's `compose-file`, relative to `dir`.
    pub compose_file: Option<&'a str>,
    /// `-p`.
    pub name_flag: Option<&'a str>,
    /// The subject's name, the default project name.
    pub subject: Option<&'a str>,
    /// Variables the manifest declares in `[deployment] env`.
    pub env: &'a [String],
    /// Registries the manifest allows; none: the compose file's literal ones.
    pub registries: Option<&'a [String]>,
    /// Paths containers may write (canonical): no project file may lie inside one.
    pub writable: &'a [PathBuf],
}

impl<'a> ProjectSource<'a> {
    /// A folder with nothing declared: no variables, the file's literal registries.
    pub fn plain(dir: &'a Path) -> Self {
        ProjectSource {
            dir,
            compose_file: None,
            name_flag: None,
            subject: None,
            env: &[],
            registries: None,
            writable: &[],
        }
    }

    /// The source for a subject's manifest (or a plain folder without one).
    pub fn new(dir: &'a Path, manifest: Option<&'a Manifest>, grants: &'a DockerGrants) -> Self {
        let d = manifest.and_then(|m| m.deployment.as_ref());
        ProjectSource {
            dir,
            compose_file: d.and_then(|d| d.compose_file.as_deref()),
            name_flag: None,
            subject: None,
            env: d.map(|d| d.env.as_slice()).unwrap_or_default(),
            registries: d.and_then(|d| d.registries.as_deref()),
            writable: &grants.writable_paths,
        }
    }
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
    #[error("{path} resolves to {real}, outside the project folder {dir}; project files are read only from inside it")]
    Outside { path: PathBuf, real: PathBuf, dir: PathBuf },
    #[error("{path} lies inside {writable}, which containers can write; keep project files out of writable paths")]
    Writable { path: PathBuf, writable: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "invalid project name `{0}`: it must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    )]
    BadName(String),
    /// The subject's or folder's name is not a project name as it is.
    #[error(
        "`{0}` is not a project name as it is (lowercase letters, digits, `-` and `_`, starting with a letter or digit); name the project with -p"
    )]
    UnusableName(String),
}

/// Reads `path` if it lies inside `dir` (canonical) and outside every writable path; `None`
/// when it does not exist.
fn read_inside(dir: &Path, path: &Path, writable: &[PathBuf]) -> Result<Option<String>, ProjectError> {
    let real = match path.canonicalize() {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symlink is as absent as a missing file.
            return Ok(None);
        }
        Err(source) => return Err(ProjectError::Read { path: path.to_path_buf(), source }),
    };
    if !real.starts_with(dir) {
        return Err(ProjectError::Outside { path: path.to_path_buf(), real, dir: dir.to_path_buf() });
    }
    if let Some(w) = writable.iter().find(|w| real.starts_with(w)) {
        return Err(ProjectError::Writable { path: path.to_path_buf(), writable: w.clone() });
    }
    let bytes = read_bounded(&real, MAX_FILE).map_err(|e| match e {
        BoundedRead::NotAFile => ProjectError::NotAFile { path: path.to_path_buf() },
        BoundedRead::TooLarge { limit, .. } => ProjectError::TooLarge { path: path.to_path_buf(), limit },
        BoundedRead::Io(source) => ProjectError::Read { path: path.to_path_buf(), source },
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ProjectError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(Some(text))
}

impl ComposeProject {
    /// Resolves the project: the compose file (the manifest's, or compose's default names),
    /// `.env`, the name (`-p`, then `COMPOSE_PROJECT_NAME`, then the subject, then the folder;
    /// the file's own `name:` is ignored), the declared variables and the allowed registries.
    pub fn resolve(src: &ProjectSource) -> Result<Self, ProjectError> {
        let dir =
            src.dir.canonicalize().map_err(|source| ProjectError::Read { path: src.dir.to_path_buf(), source })?;
        let candidates: Vec<PathBuf> = match src.compose_file {
            Some(f) => vec![dir.join(f)],
            None => COMPOSE_FILES.iter().map(|f| dir.join(f)).collect(),
        };
        let mut found = None;
        for path in candidates {
            if let Some(text) = read_inside(&dir, &path, src.writable)? {
                found = Some((path, text));
                break;
            }
        }
        let Some((path, text)) = found else {
            return match src.compose_file {
                Some(f) => Err(ProjectError::Read {
                    path: dir.join(f),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
                None => Err(ProjectError::NoComposeFile { dir }),
            };
        };
        let env_file = read_inside(&dir, &dir.join(".env"), src.writable)?;
        let (name, named) = project_name(src, &dir)?;
        let environment = src.env.iter().filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v))).collect();
        let registries = match src.registries {
            Some(list) => list.to_vec(),
            None => literal_registries(&text),
        };
        Ok(ComposeProject { name, named, dir, files: vec![(path, text)], env_file, environment, registries })
    }

    /// Like [`ComposeProject::resolve`], but a missing compose file is allowed: `down` and
    /// `status` work from the containers' labels alone.
    pub fn resolve_or_labels(src: &ProjectSource) -> Result<Self, ProjectError> {
        match Self::resolve(src) {
            Err(ProjectError::NoComposeFile { dir }) => {
                let (name, named) = project_name(src, &dir)?;
                Ok(ComposeProject {
                    name,
                    named,
                    dir,
                    files: Vec::new(),
                    env_file: None,
                    environment: Vec::new(),
                    registries: Vec::new(),
                })
            }
            other => other,
        }
    }

    /// What a capability is scoped to: the project (or stack) as the host resolved it.
    fn scope(&self) -> Project {
        Project {
            name: self.name.clone(),
            dir: self.dir.clone(),
            config_files: self.files.iter().map(|(p, _)| p.clone()).collect(),
            registries: self.registries.clone(),
            named: self.named,
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

/// The project name: `-p`, `COMPOSE_PROJECT_NAME`, the subject, the folder (the user's choices
/// first; nothing from the files). A subject's or folder's name is used only when it is a
/// project name as it is.
/// Also says whether the user named it (`-p`, `COMPOSE_PROJECT_NAME`).
fn project_name(src: &ProjectSource, dir: &Path) -> Result<(String, bool), ProjectError> {
    let explicit = src
        .name_flag
        .map(String::from)
        .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok().filter(|n| !n.is_empty()));
    let named = explicit.is_some();
    let name = match explicit {
        Some(n) => {
            let lower = n.to_lowercase();
            if !valid_project_name(&lower) {
                return Err(ProjectError::BadName(n));
            }
            lower
        }
        // Taken as it is: folding `Atk-Vic.` into `atk-vic` would hand one subject another's
        // project.
        None => {
            let base = match src.subject {
                Some(s) => s.to_string(),
                None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            if !valid_project_name(&base) {
                return Err(ProjectError::UnusableName(base));
            }
            base
        }
    };
    Ok((name, named))
}

pub use operator_rules::names::valid_project_name;

/// The registries a compose file names literally: for every `image:` value, with each
/// `${VAR:-default}` replaced by its default, the registry, when no variable decides it. An
/// image without a registry part is Docker Hub's. Read from the text as written, before any
/// interpolation: a registry that only a variable names is not literal.
pub fn literal_registries(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in image_values(text) {
        // The driver's own `$VAR` evaluator, with no variable set: defaults apply, and `$`
        // marks what a variable decides.
        let Some(image) = operator_rules::vars::with_defaults(&value) else { continue };
        let registry = split_registry(&image).map_or(DOCKER_HUB, |(host, _)| host);
        if registry.contains('$') || image.starts_with('$') || image.is_empty() {
            continue;
        }
        let registry = normalize_registry(registry);
        if !out.contains(&registry) {
            out.push(registry);
        }
    }
    out
}

/// The values of `image:` keys, block or flow style, anchors stripped, aliases skipped. Linear:
/// the scan of a line resumes after each value it takes.
fn image_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("image") {
            let before = rest[..i].chars().next_back();
            let after = &rest[i + "image".len()..];
            rest = after;
            if !before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ',' | '"' | '\'')) {
                continue;
            }
            let after = after.trim_start_matches(['"', '\'']).trim_start();
            let Some(value) = after.strip_prefix(':') else { continue };
            if !(value.is_empty() || value.starts_with([' ', '\t'])) {
                continue;
            }
            let mut value = value.trim_start();
            if let Some(anchored) = value.strip_prefix('&') {
                value = anchored.split_once(' ').map(|(_, v)| v.trim_start()).unwrap_or("");
            }
            let v = match value.chars().next() {
                Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
                Some('*' | '|' | '>') | None => continue,
                Some(_) => plain_scalar(value),
            };
            // `v` lies inside `line`: go on after it.
            let end = (v.as_ptr().addr() - line.as_ptr().addr()) + v.len();
            rest = &line[end..];
            values.push(v.trim().to_string());
        }
    }
    values
}

/// A plain (unquoted) scalar: up to a comment, or a `,`/`}` ending a flow mapping outside `${}`.
fn plain_scalar(value: &str) -> &str {
    let mut depth = 0usize;
    let mut prev = ' ';
    for (i, c) in value.char_indices() {
        match c {
            '{' if prev == '$' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => return &value[..i],
            '#' if depth == 0 && prev.is_whitespace() => return &value[..i],
            _ => {}
        }
        prev = c;
    }
    value
}

/// One service's state after `up` or for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub state: String,
    pub health: Option<String>,
    pub ports: Vec<String>,
}

/// Why a deployment operation failed (the driver's own error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
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

/// The Docker grants a manifest gives, checked against the subject folder (relative paths
/// resolve against it).
pub fn grants(manifest: Option<&Manifest>, dir: &Path) -> Result<DockerGrants, GrantError> {
    let allow = manifest.and_then(|m| m.deployment.as_ref()).map(|d| d.docker.clone()).unwrap_or_default();
    DockerGrants::resolve(allow, dir, manifest.map(|m| m.path.clone()))
}

/// Why a deployment driver could not be set up for a project.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The component is not a deployment driver.
    #[error(transparent)]
    Contract(#[from] CallError),
    /// The project holds resources this host did not create, or Docker failed.
    #[error("{0}")]
    Project(DockerError),
    /// Commands on one project take turns; the lock could not be taken.
    #[error("cannot lock project {project}: {source}")]
    Lock {
        project: String,
        #[source]
        source: std::io::Error,
    },
}

/// One operator command at a time on a project, across processes: two `up`s at once would each
/// create what the other is creating (networks of the same name on engines that allow it, past
/// the project's caps). Held for the command's life; the kernel releases it if the process dies.
#[derive(Debug)]
pub struct ProjectLock {
    _file: std::fs::File,
}

impl ProjectLock {
    /// Takes the lock of `project`, waiting (and saying so) while another command holds it.
    pub async fn acquire(project: &str) -> Result<ProjectLock, OpenError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| OpenError::Lock { project: project.into(), source };
        let path = lock_dir().map_err(err)?.join(format!("{project}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(ProjectLock { _file: file });
        }
        let busy = std::io::Error::last_os_error();
        if busy.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err(busy));
        }
        eprintln!("waiting: another operator command is acting on project {project}");
        let file = tokio::task::spawn_blocking(move || {
            // SAFETY: as above; this blocks until the other holder is done.
            match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } {
                0 => Ok(file),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
        .await
        .map_err(|e| err(std::io::Error::other(e)))?
        .map_err(err)?;
        Ok(ProjectLock { _file: file })
    }
}

/// `$XDG_RUNTIME_DIR/operator/locks`, else `<tmp>/operator-<uid>/locks`: private to the user.
fn lock_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir()) {
        Some(d) => d.join("operator"),
        None => std::env::temp_dir().join(format!("operator-{uid}")),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(base.join("locks"))?;
    for d in [base.clone(), base.join("locks")] {
        let meta = std::fs::symlink_metadata(&d)?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::other(format!("{} is not a private folder of yours; remove it", d.display())));
        }
    }
    Ok(base.join("locks"))
}

crate::call::instantiate_world!(b::DeploymentDriverPre<CallState> => b::DeploymentDriver, "the DeploymentTarget contract (operator:core/deployment-target@0.1.x)");

impl Output for Result<Vec<ServiceStatus>, DeployError> {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

impl Output for Result<(), DeployError> {
    fn output_size(&self) -> u64 {
        json_size(self)
    }
}

/// A log stream is a handle; its lines are bounded as they are read.
impl Output for Result<LogStream, DeployError> {
    fn output_size(&self) -> u64 {
        self.as_ref().err().map_or(0, json_size)
    }
}

/// What a deployment driver may do to its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything its grants allow (`up`, `down`, `restart`...).
    ReadWrite,
    /// Only list, inspect and read logs (`status`, `logs` for a caller that promises not to
    /// change the project, as MCP's read-only tools do): every change is refused by name.
    ReadOnly,
}

/// A deployment driver ready to call for one project.
pub struct Deployer<'r> {
    _lock: ProjectLock,
    inner: Sandboxed<'r, b::DeploymentDriverPre<CallState>>,
    project: ComposeProject,
}

impl<'r> Deployer<'r> {
    /// Checks that `component` implements the DeploymentTarget contract, takes the project's
    /// lock, checks that the project is this host's to act on, and scopes Docker to it.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        runtime: &'r Runtime,
        component: &'r LoadedComponent,
        project: ComposeProject,
        engine: Arc<dyn DockerEngine>,
        grants: DockerGrants,
        limits: Limits,
        progress: ProgressHandle,
        access: Access,
    ) -> Result<Self, OpenError> {
        // The contract first: a mismatch needs neither the lock nor the engine.
        let inner = Sandboxed::bind(runtime, component, Policy::default())?;
        let scope = project.scope();
        let lock = ProjectLock::acquire(&project.name).await?;
        let docker = ScopedDocker::open(engine, scope, grants, progress.clone()).await.map_err(OpenError::Project)?;
        let docker = if access == Access::ReadOnly { docker.read_only() } else { docker };
        let policy = Policy { docker: Some(Arc::new(docker)), limits, progress, ..Policy::default() };
        Ok(Deployer { _lock: lock, inner: inner.with_policy(policy), project })
    }

    /// Like [`Deployer::open`], for a Swarm stack: the driver gets the `swarm` capability
    /// scoped to the stack named `project.name` (and no container operations). Stacks take
    /// their own lock (`stack@<name>`, which no project name can be): a stack and a compose
    /// project of one name are two things.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_swarm(
        runtime: &'r Runtime,
        component: &'r LoadedComponent,
        project: ComposeProject,
        engine: Arc<dyn SwarmEngine>,
        grants: DockerGrants,
        limits: Limits,
        progress: ProgressHandle,
        access: Access,
    ) -> Result<Self, OpenError> {
        let inner = Sandboxed::bind(runtime, component, Policy::default())?;
        let stack = project.scope();
        let lock = ProjectLock::acquire(&format!("stack@{}", project.name)).await?;
        let swarm = ScopedSwarm::open(engine, stack, grants).await.map_err(OpenError::Project)?;
        let swarm = if access == Access::ReadOnly { swarm.read_only() } else { swarm };
        let policy = Policy { swarm: Some(Arc::new(swarm)), limits, progress, ..Policy::default() };
        Ok(Deployer { _lock: lock, inner: inner.with_policy(policy), project })
    }

    /// The project being deployed.
    pub fn project(&self) -> &ComposeProject {
        &self.project
    }

    /// Runs `op` on the driver's exports with the project as the contract's input.
    async fn call<R, F>(&self, op: F) -> Result<CallOutcome<R>, FailedCall>
    where
        R: Output + Send + 'static,
        F: for<'a> FnOnce(
                &'a b::exports::operator::core::deployment_target::Guest,
                &'a mut wasmtime::Store<CallState>,
                t::Project,
            ) -> crate::call::CallBody<'a, R>
            + Send
            + 'static,
    {
        let input = self.project.input();
        self.inner.call(move |d, store| op(d.operator_core_deployment_target(), store, input)).await
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
                    Ok(resource) => Ok(Ok(store.data_mut().docker.take_log_stream(resource)?)),
                    Err(e) => Ok(Err(deploy_error(e))),
                }
            })
        })
        .await
    }
}

/// A batch of log lines, or `None` at the end (for the CLI).
pub async fn next_log_lines(stream: &mut LogStream, wait: Duration) -> Option<Vec<LogLine>> {
    stream.next_batch(wait).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_composes_rules() {
        assert!(valid_project_name("tikv"));
        assert!(!valid_project_name("Tikv"));
        assert!(!valid_project_name("_x"));
    }

    fn folder(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("My-Cluster");
        std::fs::create_dir(&sub).expect("mkdir");
        for (name, text) in files {
            std::fs::write(sub.join(name), text).expect("write");
        }
        (dir, sub)
    }

    #[test]
    fn a_project_resolves_from_its_folder_and_the_files_name_is_ignored() {
        let (dir, sub) = folder(&[
            ("docker-compose.yaml", "name: someone-else\nservices:\n  a:\n    image: ${OPERATOR_TEST_IMAGE_XYZ:-x}\n"),
            (".env", "B=1\n"),
        ]);
        let src = ProjectSource::plain(&sub);
        // `My-Cluster` would fold into `my-cluster`, which may be another subject's project.
        assert!(matches!(ComposeProject::resolve(&src), Err(ProjectError::UnusableName(n)) if n == "My-Cluster"));
        let p = ComposeProject::resolve(&ProjectSource { name_flag: Some("My-Cluster"), ..src.clone() }).expect("-p");
        assert_eq!(p.name, "my-cluster");
        assert_eq!(p.env_file.as_deref(), Some("B=1\n"));
        assert!(p.environment.is_empty());
        assert_eq!(
            ComposeProject::resolve(&ProjectSource { subject: Some("etcd"), ..src.clone() }).expect("subject").name,
            "etcd"
        );
        assert_eq!(
            ComposeProject::resolve(&ProjectSource { name_flag: Some("other"), subject: Some("etcd"), ..src.clone() })
                .expect("flag")
                .name,
            "other"
        );
        assert!(matches!(
            ComposeProject::resolve(&ProjectSource { name_flag: Some("Bad Name"), ..src.clone() }),
            Err(ProjectError::BadName(_))
        ));
        let parent = ProjectSource::plain(dir.path());
        assert!(matches!(ComposeProject::resolve(&parent), Err(ProjectError::NoComposeFile { .. })));
    }

    #[test]
    fn only_declared_variables_reach_the_driver() {
        let (_dir, sub) = folder(&[("compose.yaml", "services:\n  a:\n    image: x:${OPERATOR_TEST_TAG}\n")]);
        // SAFETY: tests that read the environment use their own variable names.
        unsafe {
            std::env::set_var("OPERATOR_TEST_TAG", "1");
            std::env::set_var("OPERATOR_TEST_SECRET", "s3cret");
        }
        let declared = vec!["OPERATOR_TEST_TAG".to_string(), "OPERATOR_TEST_UNSET".to_string()];
        let src = ProjectSource { name_flag: Some("p"), ..ProjectSource::plain(&sub) };
        let p = ComposeProject::resolve(&ProjectSource { env: &declared, ..src.clone() }).expect("ok");
        assert_eq!(p.environment, vec![("OPERATOR_TEST_TAG".to_string(), "1".to_string())]);
        let p = ComposeProject::resolve(&src).expect("ok");
        assert!(p.environment.is_empty());
    }

    #[test]
    fn files_outside_the_folder_or_not_regular_are_not_read() {
        let (dir, sub) = folder(&[]);
        std::fs::write(dir.path().join("secret"), "TOKEN=x\n").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), sub.join(".env")).expect("symlink");
        std::fs::write(sub.join("compose.yaml"), "services:\n  a:\n    image: x\n").expect("write");
        let src = ProjectSource::plain(&sub);
        assert!(matches!(ComposeProject::resolve(&src), Err(ProjectError::Outside { .. })));
        std::fs::remove_file(sub.join(".env")).expect("rm");

        std::fs::remove_file(sub.join("compose.yaml")).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", sub.join("compose.yaml")).expect("symlink");
        assert!(matches!(ComposeProject::resolve(&src), Err(ProjectError::Outside { .. })));
        std::fs::remove_file(sub.join("compose.yaml")).expect("rm");

        let fifo = std::ffi::CString::new(sub.join("compose.yaml").display().to_string()).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(ComposeProject::resolve(&src), Err(ProjectError::NotAFile { .. })));
        std::fs::remove_file(sub.join("compose.yaml")).expect("rm");

        std::fs::create_dir(sub.join("data")).expect("mkdir");
        std::fs::write(sub.join("data/c.yaml"), "services: {}\n").expect("write");
        let writable = vec![sub.join("data").canonicalize().expect("canonical")];
        let src = ProjectSource { compose_file: Some("data/c.yaml"), writable: &writable, ..src };
        assert!(matches!(ComposeProject::resolve(&src), Err(ProjectError::Writable { .. })));
    }

    #[tokio::test]
    async fn commands_on_one_project_take_turns() {
        let project = format!("unit-lock-{}", std::process::id());
        let first = ProjectLock::acquire(&project).await.expect("free");
        let waiting = tokio::spawn({
            let project = project.clone();
            async move { ProjectLock::acquire(&project).await.map(|_| std::time::Instant::now()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the second command did not wait");
        let released = std::time::Instant::now();
        drop(first);
        let acquired = waiting.await.expect("joined").expect("locked");
        assert!(acquired >= released);
    }

    #[test]
    fn literal_registries_are_read_before_interpolation() {
        let text = r#"
x-etcd: &etcd
  image: ${ETCD_IMAGE:-operator/etcd:3.4.23-debian}
services:
  a: { image: "quay.io/coreos/etcd:v3.4.23", ports: ["1:1"] }
  b:
    image: 127.0.0.1:5999/x:${SOME_TOKEN}
  c:
    image: ${REGISTRY}/team/x:1
  d:
    image: ${REG:-ghcr.io}/team/y # comment
  e:
    <<: *etcd
  f:
    image: *img
    labels: [my-image: x]
"#;
        assert_eq!(literal_registries(text), ["docker.io", "quay.io", "127.0.0.1:5999", "ghcr.io"]);
        assert!(literal_registries("services:\n  a:\n    image: ${ONLY_A_VARIABLE}\n").is_empty());
    }

    #[test]
    fn a_value_is_not_scanned_again_for_more_keys() {
        // Rescanning each value for `image` kept a copy of the rest of the line per key:
        // quadratic in a line such as `# image: image: image: …`.
        assert_eq!(image_values("# image: image: image: x"), ["image: image: x"]);
        assert_eq!(image_values("{image: a, image: b}"), ["a", "b"]);
        let line = format!("# {}\nservices:\n  a:\n    image: quay.io/x:1\n", "image: ".repeat(200_000));
        assert_eq!(image_values(&line).len(), 2);
    }
}
