//! Which host paths a container may bind, and how.
//!
//! A bind is checked here and handed to the engine as a typed mount of the canonical path
//! (never a `source:target` string the engine parses again). Docker resolves that path once
//! more when the container starts, so the check holds only if nothing on the path can change
//! in between. Hence the rules:
//!
//! - the source exists and is a directory or a regular file, inside the subject folder or a
//!   granted host path;
//! - it is bound read-write only when it is exactly a granted writable path, and nothing
//!   *inside* a writable path is ever bound: a container writing there could swap it for a
//!   symlink to `/` between this check and the mount;
//! - the subject folder (manifest, compose file, `.env`, scripts) is never writable by a
//!   container, so nothing a container can write decides a grant or a bind;
//! - a source that is, contains or lies inside the Docker socket's folder needs
//!   `docker-socket = true` (binding `/run` hands over the socket as surely as binding it);
//! - nothing inside the engine's data root (`/var/lib/docker`: volumes, container layers) is
//!   bound, granted or not: containers write there;
//! - with a remote engine, host paths are another machine's: binds are refused.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::error::DockerError;
use super::grants::DockerGrants;

/// Where the engine is, as far as host paths are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineLocation {
    /// On this machine, listening on this socket (canonical path).
    Local { socket: PathBuf },
    /// Elsewhere (`tcp://`, `ssh://`): its host paths are not ours.
    Remote(String),
}

/// Checks bind sources for one project.
#[derive(Debug, Clone)]
pub struct BindRules {
    /// The subject folder, canonical.
    pub project_dir: PathBuf,
    pub engine: EngineLocation,
    /// The engine's data root, canonical, when it is known.
    pub data_root: Option<PathBuf>,
}

impl BindRules {
    /// Checks that `service` may bind `source` (absolute, or relative to the project folder)
    /// with this access, and returns the canonical path to mount.
    pub fn check(
        &self,
        grants: &DockerGrants,
        service: &str,
        source: &str,
        read_only: bool,
    ) -> Result<PathBuf, DockerError> {
        let socket = match &self.engine {
            EngineLocation::Local { socket } => socket,
            EngineLocation::Remote(host) => {
                return Err(DockerError::Denied {
                    reason: format!(
                        "service {service}: bind mounts need a Docker engine on this machine; {host} would resolve \
                         host paths on its own machine"
                    ),
                    hint: "use named volumes, or run operator on the engine's machine".into(),
                });
            }
        };
        if source.is_empty() || source.contains('\0') {
            return Err(DockerError::Invalid(format!("service {service}: a bind needs a source path")));
        }
        let path = Path::new(source);
        let path = if path.is_absolute() { path.to_path_buf() } else { self.project_dir.join(path) };
        let real = path.canonicalize().map_err(|_| {
            DockerError::not_found(format!(
                "service {service}: bind source {} does not exist (Docker would create an empty directory there)",
                path.display()
            ))
        })?;
        let shown = real.display();

        let socket_dir = socket.parent().unwrap_or(socket);
        let touches_socket = real == *socket || socket_dir.starts_with(&real) || real.starts_with(socket_dir);
        let inside_roots = real.starts_with(&self.project_dir)
            || grants.host_paths.iter().any(|p| real.starts_with(p))
            || grants.writable_paths.iter().any(|p| real.starts_with(p));
        let root_grant = if read_only { "host-paths" } else { "writable-paths" };
        if touches_socket && !grants.allow.docker_socket {
            let what = if real == *socket {
                format!("mounting the Docker socket ({shown})")
            } else {
                format!("bind mount of {shown} (the Docker socket {} is in {})", socket.display(), socket_dir.display())
            };
            let grant = if real == *socket || inside_roots {
                "docker-socket = true".to_string()
            } else {
                format!("docker-socket = true` and `{root_grant} = [\"{shown}\"]")
            };
            return Err(DockerError::Denied {
                reason: format!("service {service}: {what} would hand the container the whole engine"),
                hint: grants.hint(&grant),
            });
        }
        if real == *socket {
            return Ok(real);
        }

        let kind = std::fs::metadata(&real).map(|m| m.file_type()).map_err(|e| {
            DockerError::not_found(format!("service {service}: bind source {shown} cannot be read: {e}"))
        })?;
        if !(kind.is_dir() || kind.is_file()) {
            let what = if kind.is_socket() {
                "a socket"
            } else if kind.is_block_device() || kind.is_char_device() {
                "a device (grant it under `devices` instead)"
            } else {
                "a FIFO"
            };
            return Err(DockerError::Denied {
                reason: format!(
                    "service {service}: bind source {shown} is {what}; only directories and files are bound"
                ),
                hint: "bind a directory or a regular file".into(),
            });
        }

        if let Some(root) = self.data_root.as_ref().filter(|r| real.starts_with(r)) {
            return Err(DockerError::Denied {
                reason: format!(
                    "service {service}: bind source {shown} lies inside Docker's data root {}, which containers \
                     write (volumes, layers)",
                    root.display()
                ),
                hint: "use a named volume of the project instead".into(),
            });
        }
        if !inside_roots {
            return Err(DockerError::Denied {
                reason: format!(
                    "service {service}: bind mount of {shown} is outside the project folder {}",
                    self.project_dir.display()
                ),
                hint: grants.hint(&format!("{root_grant} = [\"{shown}\"]")),
            });
        }
        if let Some(w) = grants.writable_paths.iter().find(|w| real.starts_with(w) && real != **w) {
            return Err(DockerError::Denied {
                reason: format!(
                    "service {service}: bind source {shown} lies inside {}, which containers of this project can \
                     write: one could replace it with a symlink between this check and the mount",
                    w.display()
                ),
                hint: format!("bind {} itself, or keep {shown} outside it", w.display()),
            });
        }
        if !read_only && !grants.writable_paths.contains(&real) {
            let holds_manifest =
                grants.manifest.as_ref().and_then(|m| m.canonicalize().ok()).is_some_and(|m| m.starts_with(&real));
            let hint = if self.project_dir.starts_with(&real) || holds_manifest {
                "mount it read-only (`:ro`); keep writable data in a named volume".to_string()
            } else {
                grants.hint(&format!("writable-paths = [\"{shown}\"]"))
            };
            let reason = if real.starts_with(&self.project_dir) {
                format!(
                    "service {service}: {shown} is in the subject folder, which is never bound read-write (a \
                     container could rewrite the grants, the compose file or scripts)"
                )
            } else {
                format!("service {service}: {shown} is granted read-only; binding it read-write is not granted")
            };
            return Err(DockerError::Denied { reason, hint });
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::docker::engine::EngineError;

    struct Case {
        _root: tempfile::TempDir,
        root: PathBuf,
        rules: BindRules,
    }

    /// A project folder, a fake socket folder with a socket in it, and some host paths.
    fn case() -> Case {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path().canonicalize().expect("canonical");
        for d in ["proj/conf", "proj/data/sub", "run", "srv/data/inner", "etc", "docker/volumes/v/_data"] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        std::fs::write(r.join("proj/operator.toml"), "").expect("write");
        let socket = r.join("run/docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
        std::os::unix::fs::symlink(r.join("etc"), r.join("proj/escape")).expect("symlink");
        let rules = BindRules {
            project_dir: r.join("proj"),
            engine: EngineLocation::Local { socket },
            data_root: Some(r.join("docker")),
        };
        Case { _root: root, root: r, rules }
    }

    fn socket() -> crate::manifest::DockerSection {
        crate::manifest::DockerSection { docker_socket: true, ..Default::default() }
    }

    fn denied(r: Result<PathBuf, DockerError>) -> (String, String) {
        match r {
            Err(DockerError::Denied { reason, hint }) => (reason, hint),
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn read_only_binds_inside_the_project_are_allowed_as_canonical_paths() {
        let c = case();
        let g = DockerGrants::default();
        assert_eq!(c.rules.check(&g, "s", "./conf", true).expect("ok"), c.root.join("proj/conf"));
        assert_eq!(c.rules.check(&g, "s", ".", true).expect("ok"), c.root.join("proj"));
    }

    #[test]
    fn the_subject_folder_is_never_bound_read_write() {
        let c = case();
        let g = DockerGrants::default();
        let (reason, hint) = denied(c.rules.check(&g, "s", ".", false));
        assert!(reason.contains("never bound read-write"), "{reason}");
        assert!(hint.contains("read-only") && !hint.contains("writable-paths"), "{hint}");
        let (_, hint) = denied(c.rules.check(&g, "s", "conf", false));
        assert!(hint.contains("writable-paths = [\""), "{hint}");
        // The manifest can never be made writable: no grant is suggested for it.
        let g = DockerGrants { manifest: Some(c.root.join("proj/operator.toml")), ..Default::default() };
        let (_, hint) = denied(c.rules.check(&g, "s", "operator.toml", false));
        assert!(hint.contains("read-only") && !hint.contains("writable-paths"), "{hint}");
    }

    #[test]
    fn symlinks_out_of_the_project_are_followed_and_refused() {
        let c = case();
        let (reason, hint) = denied(c.rules.check(&DockerGrants::default(), "s", "escape", true));
        assert!(reason.contains(&format!("bind mount of {} is outside", c.root.join("etc").display())), "{reason}");
        assert!(hint.contains(&format!("host-paths = [\"{}\"]", c.root.join("etc").display())), "{hint}");
        let (reason, _) = denied(c.rules.check(&DockerGrants::default(), "s", "../../../../../../etc", true));
        assert!(reason.contains("is outside the project folder"), "{reason}");
    }

    #[test]
    fn nothing_inside_a_writable_path_is_bound() {
        let c = case();
        let g = DockerGrants { writable_paths: vec![c.root.join("srv/data")], ..Default::default() };
        assert!(c.rules.check(&g, "s", &c.root.join("srv/data").display().to_string(), false).is_ok());
        let (reason, hint) = denied(c.rules.check(&g, "s", &c.root.join("srv/data/inner").display().to_string(), true));
        assert!(reason.contains("which containers of this project can write"), "{reason}");
        assert!(hint.starts_with("bind "), "{hint}");
    }

    #[test]
    fn read_only_grants_do_not_allow_writing() {
        let c = case();
        let srv = c.root.join("srv");
        let g = DockerGrants { host_paths: vec![srv.clone()], ..Default::default() };
        assert!(c.rules.check(&g, "s", &srv.display().to_string(), true).is_ok());
        let (reason, hint) = denied(c.rules.check(&g, "s", &srv.display().to_string(), false));
        assert!(reason.contains("granted read-only"), "{reason}");
        assert!(hint.contains(&format!("writable-paths = [\"{}\"]", srv.display())), "{hint}");
    }

    #[test]
    fn the_socket_and_its_folder_need_the_socket_grant() {
        let c = case();
        let run = c.root.join("run");
        let sock = run.join("docker.sock");
        let only_paths = DockerGrants { host_paths: vec![run.clone(), c.root.clone()], ..Default::default() };
        for source in [&sock, &run, &c.root] {
            let (reason, hint) = denied(c.rules.check(&only_paths, "s", &source.display().to_string(), true));
            assert!(reason.contains("would hand the container the whole engine"), "{source:?}: {reason}");
            assert!(hint.contains("`docker-socket = true`"), "{hint}");
        }
        // Not granted anywhere: the hint names both grants, for exactly this path.
        let (_, hint) = denied(c.rules.check(&DockerGrants::default(), "s", &run.display().to_string(), true));
        assert!(hint.contains(&format!("docker-socket = true` and `host-paths = [\"{}\"]", run.display())), "{hint}");
        let with_socket = DockerGrants { allow: socket(), ..Default::default() };
        assert_eq!(c.rules.check(&with_socket, "s", &sock.display().to_string(), false).expect("granted"), sock);
    }

    #[test]
    fn special_files_and_missing_sources_are_refused() {
        let c = case();
        let g = DockerGrants { allow: socket(), host_paths: vec![c.root.clone()], ..Default::default() };
        let other = c.root.join("proj/app.sock");
        let _l = std::os::unix::net::UnixListener::bind(&other).expect("socket");
        let (reason, _) = denied(c.rules.check(&g, "s", "app.sock", true));
        assert!(reason.contains("is a socket"), "{reason}");
        assert!(matches!(c.rules.check(&g, "s", "missing", true), Err(DockerError::Engine(EngineError::NotFound(_)))));
    }

    #[test]
    fn a_colon_in_a_source_is_just_a_character() {
        let c = case();
        // `x:` is a directory; `x` a symlink to /etc. The source names the directory.
        std::fs::create_dir_all(c.root.join("proj/x:/sub")).expect("mkdir");
        std::os::unix::fs::symlink(c.root.join("etc"), c.root.join("proj/x")).expect("symlink");
        let real = c.rules.check(&DockerGrants::default(), "s", "x:/sub", true).expect("inside");
        assert_eq!(real, c.root.join("proj/x:/sub"));
    }

    #[test]
    fn nothing_in_the_engines_data_root_is_bound_even_when_granted() {
        let c = case();
        let volume = c.root.join("docker/volumes/v/_data");
        let g = DockerGrants { host_paths: vec![c.root.clone()], ..Default::default() };
        let (reason, hint) = denied(c.rules.check(&g, "s", &volume.display().to_string(), true));
        assert!(reason.contains("lies inside Docker's data root"), "{reason}");
        assert!(hint.contains("named volume"), "{hint}");
    }

    #[test]
    fn a_remote_engine_gets_no_binds() {
        let c = case();
        let rules = BindRules { engine: EngineLocation::Remote("tcp://10.0.0.1:2375".into()), ..c.rules.clone() };
        let (reason, _) = denied(rules.check(&DockerGrants::default(), "s", "conf", true));
        assert!(reason.contains("tcp://10.0.0.1:2375"), "{reason}");
    }
}
