//! Loading a project: every compose file parsed, interpolated against the operator's
//! environment and `.env`, merged (later files override), and turned into the model.
//!
//! Shared by the compose driver and the Swarm driver (`components/swarm` compiles this file
//! too), so it depends only on the parser, interpolation, the model and the contract's types —
//! not on a driver's host. Warnings are returned for the caller to log.

use crate::bindings::exports::operator::core::deployment_target::{DeployError, Project as ProjectInput};
use crate::bindings::operator::core::docker::DockerError;
use crate::interpolate::{Env, interpolate_tree, parse_dotenv};
use crate::model::{self, Project};
use crate::yaml::{self, Kind, Node};

/// Loads the project. Errors say `file:line: reason`; warnings (unset variables, ignored keys,
/// an unused `name:`) are appended to `warnings`.
pub fn load(input: &ProjectInput, warnings: &mut Vec<String>) -> Result<Project, DeployError> {
    let dotenv = match &input.env_file {
        Some(text) => parse_dotenv(text, &input.environment)
            .map_err(|e| DeployError::InvalidProject(format!("{}/{e}", input.directory)))?,
        None => Vec::new(),
    };
    let mut env = Env::new(&input.environment, &dotenv);
    env.set("COMPOSE_PROJECT_NAME", &input.name);
    let lookup = |k: &str| env.get(k).map(String::from);
    let mut merged: Option<Node> = None;
    for file in &input.files {
        let mut root =
            yaml::parse(&file.contents).map_err(|e| DeployError::InvalidProject(format!("{}: {e}", file.path)))?;
        interpolate_tree(&mut root, &env, warnings)
            .map_err(|(line, e)| DeployError::InvalidProject(format!("{}:{line}: {e}", file.path)))?;
        merged = Some(match merged {
            None => root,
            Some(base) => merge(base, root),
        });
    }
    let Some(root) = merged else {
        return Err(DeployError::InvalidProject(format!("no compose file in {}", input.directory)));
    };
    let project =
        model::project(&root, &input.directory, &lookup, warnings).map_err(|e| invalid(input, e.line, &e.message))?;
    if let Some(name) = project.name.as_deref().filter(|n| *n != input.name) {
        warnings.push(format!(
            "the compose file's `name: {name}` is not used: this project is `{}` (the host names projects after \
             the subject or -p)",
            input.name
        ));
    }
    Ok(project)
}

/// An `invalid-project` error about `line` of the merged project, as `file:line: reason` (the
/// file is the last one given, as for every model error; a file the host generated, whose path
/// is in parentheses, is not named).
pub fn invalid(input: &ProjectInput, line: u64, reason: &str) -> DeployError {
    let path = input
        .files
        .iter()
        .rev()
        .map(|f| f.path.as_str())
        .find(|p| !p.starts_with('('))
        .unwrap_or(input.directory.as_str());
    DeployError::InvalidProject(format!("{path}:{line}: {reason}"))
}

/// Deep-merges an override file into a base: mappings merge key by key, anything else is replaced.
pub fn merge(base: Node, over: Node) -> Node {
    match (base.kind, over.kind) {
        (Kind::Map(mut b), Kind::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| *bk == k) {
                    Some(i) => {
                        let (_, old) = b.remove(i);
                        b.insert(i, (k, merge(old, v)));
                    }
                    None => b.push((k, v)),
                }
            }
            Node { line: over.line, kind: Kind::Map(b) }
        }
        (_, kind) => Node { line: over.line, kind },
    }
}

/// A Docker error as one line (denials keep their hint).
pub fn describe(e: &DockerError) -> String {
    match e {
        DockerError::Denied(d) => format!("denied: {} ({})", d.reason, d.hint),
        DockerError::Invalid(m) => format!("invalid: {m}"),
        DockerError::LimitExceeded(m) => format!("limit-exceeded: {m}"),
        DockerError::NotFound(m) => m.clone(),
        DockerError::Conflict(m) => m.clone(),
        DockerError::ImageUnavailable(m) => m.clone(),
        DockerError::Unavailable(m) => m.clone(),
        DockerError::Timeout(m) => m.clone(),
        DockerError::Failed(m) => m.clone(),
    }
}
