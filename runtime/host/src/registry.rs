//! Where components and subjects are found by name.
//!
//! Components: a path (anything with a `/` or ending in `.wasm`), else `<name>.wasm` in the
//! component directories in order, else the built-in components the embedding program hands
//! over ([`Components::with_builtins`]). [`Components::default_dirs`] are the user's
//! (`$OPERATOR_COMPONENTS_DIR`, colon-separated, then `$XDG_DATA_HOME/operator/components`);
//! the CLI adds its own after them, so a locally built adapter can stand in for a built-in one.
//!
//! Subjects: a folder `<dir>/<name>/` holding `operator.toml` (the grant manifest) and the
//! subject's other assets, searched in the directories given, by default
//! `$OPERATOR_SUBJECTS_DIR` and `$XDG_CONFIG_HOME/operator/subjects`.
//!
//! This library knows no source tree: where a binary was built from is the CLI's business.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::MAX_COMPONENT_SIZE;
use crate::error::LoadError;
use crate::files::{BoundedRead, read_bounded};
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestError};

/// A component compiled into the embedding program.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// The world it was built for.
    pub world: &'static str,
    pub bytes: &'static [u8],
}

/// Where a component's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum ComponentSource {
    /// Built into this binary from `components/`.
    Builtin,
    /// A `.wasm` file in a component directory, or given by path.
    File(PathBuf),
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::Builtin => f.write_str("built-in"),
            ComponentSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A component's bytes with its name and origin.
#[derive(Debug, Clone)]
pub struct ComponentFile {
    pub name: String,
    pub source: ComponentSource,
    /// The world it was built for, when known without decoding (built-ins).
    pub declared_world: Option<String>,
    pub bytes: Cow<'static, [u8]>,
}

/// Finds components by name or path.
#[derive(Debug, Clone)]
pub struct Components {
    dirs: Vec<PathBuf>,
    builtins: &'static [Builtin],
    /// A folder of component sources (`<name>/build`), for the hint when one is missing.
    sources: Option<PathBuf>,
}

impl Components {
    /// Searches `dirs`; no built-ins.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Components { dirs, builtins: &[], sources: None }
    }

    /// Falls back to `builtins` after the directories.
    pub fn with_builtins(mut self, builtins: &'static [Builtin]) -> Self {
        self.builtins = builtins;
        self
    }

    /// Names `<sources>/<name>/build` in the error when a component is missing and has one.
    pub fn with_sources(mut self, sources: PathBuf) -> Self {
        self.sources = Some(sources);
        self
    }

    /// The user's directories: `$OPERATOR_COMPONENTS_DIR`, `$XDG_DATA_HOME/operator/components`.
    pub fn default_dirs() -> Vec<PathBuf> {
        let mut dirs = env_dirs("OPERATOR_COMPONENTS_DIR");
        if let Some(data) = xdg_dir("XDG_DATA_HOME", ".local/share") {
            dirs.push(data.join("operator").join("components"));
        }
        dirs
    }

    /// Resolves a reference a subject's manifest makes: a name, or a path relative to the
    /// subject folder that stays inside it (a manifest cannot point the host at its files).
    pub fn resolve_in(&self, reference: &str, folder: &Path) -> Result<ComponentFile, LoadError> {
        if !is_path(reference) {
            return self.resolve(reference);
        }
        let path = folder.join(reference);
        let outside = |real: PathBuf| LoadError::Outside { path: path.clone(), real, folder: folder.to_path_buf() };
        let read = |source| LoadError::Read { path: path.clone(), source };
        let real = path.canonicalize().map_err(read)?;
        let folder_real = folder.canonicalize().map_err(read)?;
        if !real.starts_with(&folder_real) {
            return Err(outside(real));
        }
        read_file(&real, file_stem(&path))
    }

    /// Resolves a name or a path to a component file.
    pub fn resolve(&self, reference: &str) -> Result<ComponentFile, LoadError> {
        if is_path(reference) {
            let path = PathBuf::from(reference);
            return read_file(&path, file_stem(&path));
        }
        for dir in &self.dirs {
            let path = dir.join(format!("{reference}.wasm"));
            if path.is_file() {
                return read_file(&path, reference.to_string());
            }
        }
        if let Some(b) = self.builtins.iter().find(|b| b.name == reference) {
            return Ok(builtin_file(b));
        }
        let mut names: Vec<String> = self.list().into_iter().map(|c| c.name).collect();
        names.dedup();
        let available = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        // A component of the source tree that cargo does not build (Python) has a build script.
        let script = self.sources.as_ref().map(|s| s.join(reference).join("build"));
        let hint = match script.filter(|s| s.is_file()) {
            Some(script) => format!("\n  hint: build it with {}", script.canonicalize().unwrap_or(script).display()),
            None => String::new(),
        };
        Err(LoadError::NotFound { name: reference.into(), available, hint })
    }

    /// Every named component, user directories first; a name shadowed by an earlier one is
    /// listed once.
    pub fn list(&self) -> Vec<ComponentFile> {
        let mut seen = BTreeMap::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "wasm")) {
                let name = file_stem(&path);
                if !seen.contains_key(&name)
                    && let Ok(file) = read_file(&path, name.clone())
                {
                    seen.insert(name, file);
                }
            }
        }
        for b in self.builtins {
            seen.entry(b.name.to_string()).or_insert_with(|| builtin_file(b));
        }
        seen.into_values().collect()
    }
}

/// Where container engines keep volumes and layers by default (rootful and rootless Docker,
/// containerd, Podman, the snap). `deploy` also asks the engine for its own.
fn engine_data_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> =
        ["/var/lib/docker", "/var/lib/containerd", "/var/lib/containers", "/var/snap/docker"].map(PathBuf::from).into();
    if let Some(data) = xdg_dir("XDG_DATA_HOME", ".local/share") {
        roots.push(data.join("docker"));
        roots.push(data.join("containers"));
    }
    roots
}

/// The root among `roots` that `dir` (canonical) lies in.
fn inside_engine_data(dir: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).find(|r| dir.starts_with(r))
}

/// Whether a component reference is a path (has a `/` or ends in `.wasm`) rather than a name.
pub fn is_path(reference: &str) -> bool {
    reference.contains('/') || reference.ends_with(".wasm")
}

fn builtin_file(b: &Builtin) -> ComponentFile {
    ComponentFile {
        name: b.name.into(),
        source: ComponentSource::Builtin,
        declared_world: Some(b.world.into()),
        bytes: Cow::Borrowed(b.bytes),
    }
}

/// Reads a component: a regular file of at most [`MAX_COMPONENT_SIZE`] bytes (never a device or
/// a FIFO, never read past the limit).
fn read_file(path: &Path, name: String) -> Result<ComponentFile, LoadError> {
    let bytes = read_bounded(path, MAX_COMPONENT_SIZE).map_err(|e| match e {
        BoundedRead::TooLarge { size, limit } => LoadError::TooBig { name: name.clone(), size, limit },
        BoundedRead::NotAFile => {
            LoadError::Read { path: path.to_path_buf(), source: std::io::Error::other("not a regular file") }
        }
        BoundedRead::Io(source) => LoadError::Read { path: path.to_path_buf(), source },
    })?;
    Ok(ComponentFile {
        name,
        source: ComponentSource::File(path.to_path_buf()),
        declared_world: None,
        bytes: Cow::Owned(bytes),
    })
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "component".into())
}

/// The directories in a colon-separated path variable.
fn env_dirs(var: &str) -> Vec<PathBuf> {
    std::env::var_os(var)
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default()
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)),
    }
}

/// A subject: its folder and its grant manifest.
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Subject {
    /// The subject `name` in `folder`, if the folder holds a manifest: checked as every subject
    /// is (not inside an engine's data root, its manifest not a link out of the folder).
    pub fn in_folder(name: &str, folder: &Path) -> Result<Option<Subject>, LookupError> {
        let manifest_path = folder.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            return Ok(None);
        }
        let real_folder = folder.canonicalize().unwrap_or_else(|_| folder.to_path_buf());
        if let Some(root) = inside_engine_data(&real_folder, &engine_data_roots()) {
            return Err(LookupError::InEngineData { name: name.into(), dir: real_folder, root });
        }
        if let Ok(real) = manifest_path.canonicalize()
            && !real.starts_with(&real_folder)
        {
            return Err(LookupError::ManifestOutside { path: manifest_path, real });
        }
        let manifest = Manifest::load(&manifest_path)?;
        Ok(Some(Subject { name: name.into(), dir: folder.to_path_buf(), manifest }))
    }
}

/// Loads a manifest the user names (`--manifest`): theirs to trust, but refused where a
/// container could rewrite it (inside a container engine's data root, a volume).
pub fn load_named_manifest(path: &Path) -> Result<Manifest, LookupError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let real = path.canonicalize().unwrap_or_else(|_| path.clone());
    if let Some(root) = inside_engine_data(&real, &engine_data_roots()) {
        return Err(LookupError::ManifestInEngineData { path, real, root });
    }
    Ok(Manifest::load(&path)?)
}

/// Why a subject cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no subject named `{name}` (looked in {searched}); available: {available}")]
    NotFound { name: String, searched: String, available: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: subject `{name}` has no adapter: add a [subject] section naming its component")]
    NoComponent { name: String, path: PathBuf },
    /// The subject folder lies where a container engine keeps volumes: containers write there.
    #[error(
        "subject `{name}` lies in {dir}, inside {root}, where container engines keep volumes and layers: a container could rewrite its grants"
    )]
    InEngineData { name: String, dir: PathBuf, root: PathBuf },
    /// A named manifest lies where a container engine keeps volumes.
    #[error(
        "{path} resolves to {real}, inside {root}, where container engines keep volumes and layers: a container could rewrite its grants"
    )]
    ManifestInEngineData { path: PathBuf, real: PathBuf, root: PathBuf },
    /// The manifest is a symlink to a file outside the subject's folder.
    #[error("{path} resolves to {real}, outside the subject folder; a subject's grants live in its own folder")]
    ManifestOutside { path: PathBuf, real: PathBuf },
}

/// Finds subjects by name.
#[derive(Debug, Clone)]
pub struct Subjects {
    dirs: Vec<PathBuf>,
}

impl Subjects {
    /// Searches `dirs` in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Subjects { dirs }
    }

    /// The user's directories: `$OPERATOR_SUBJECTS_DIR`, then (the `user_config` part)
    /// `$XDG_CONFIG_HOME/operator/subjects`; the caller may put its own between them.
    pub fn default_dirs() -> (Vec<PathBuf>, Vec<PathBuf>) {
        let env = env_dirs("OPERATOR_SUBJECTS_DIR");
        let user_config = xdg_dir("XDG_CONFIG_HOME", ".config").map(|c| c.join("operator").join("subjects"));
        (env, user_config.into_iter().collect())
    }

    /// Loads the subject `name` and validates its manifest.
    pub fn find(&self, name: &str) -> Result<Subject, LookupError> {
        // A subject's name is a folder's name, never a path (it also names its audit log).
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        for dir in self.dirs.iter().filter(|_| plain) {
            if let Some(subject) = Subject::in_folder(name, &dir.join(name))? {
                return Ok(subject);
            }
        }
        let names = self.names();
        Err(LookupError::NotFound {
            name: name.into(),
            searched: self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            available: if names.is_empty() { "none".into() } else { names.join(", ") },
        })
    }

    /// Names of all subjects found.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|e| e.path().join(MANIFEST_FILE).is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The subject whose manifest names `component` as its component, if any.
    pub fn for_component(&self, component: &str) -> Option<Subject> {
        self.names()
            .into_iter()
            .filter_map(|n| self.find(&n).ok())
            .find(|s| s.manifest.subject.as_ref().is_some_and(|sub| sub.component == component))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_directory_component_is_found_by_name_and_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mine.wasm"), b"\0asm").expect("write");
        let c = Components::new(vec![dir.path().to_path_buf()]);
        let f = c.resolve("mine").expect("found");
        assert_eq!(f.source, ComponentSource::File(dir.path().join("mine.wasm")));
        assert!(c.list().iter().any(|f| f.name == "mine"));
        let e = c.resolve("nope").expect_err("missing").to_string();
        assert!(e.contains("no component named `nope`") && e.contains("mine"), "{e}");
        assert!(!e.contains("hint"), "{e}");
    }

    #[test]
    fn a_missing_component_with_a_build_script_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sources = dir.path().join("components");
        std::fs::create_dir_all(sources.join("etcd")).expect("mkdir");
        std::fs::write(sources.join("etcd/build"), "#!/bin/sh\n").expect("write");
        let c = Components::new(vec![dir.path().to_path_buf()]).with_sources(sources);
        let e = c.resolve("etcd").expect_err("not built here").to_string();
        assert!(e.contains("hint: build it with") && e.contains("components/etcd/build"), "{e}");
        assert!(!c.resolve("other").expect_err("missing").to_string().contains("hint"));
    }

    #[test]
    fn a_subject_inside_an_engines_data_root_is_found_out() {
        let root = tempfile::tempdir().expect("tempdir");
        let volume = root.path().join("docker/volumes/v/_data");
        std::fs::create_dir_all(&volume).expect("mkdir");
        let roots = vec![root.path().join("docker")];
        let found = inside_engine_data(&volume.canonicalize().expect("canonical"), &roots);
        assert_eq!(found, Some(root.path().join("docker").canonicalize().expect("canonical")));
        assert_eq!(inside_engine_data(root.path(), &roots), None);
    }

    #[test]
    fn a_manifest_linked_from_outside_its_folder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("demo")).expect("mkdir");
        std::fs::write(dir.path().join("elsewhere.toml"), "").expect("write");
        std::os::unix::fs::symlink(dir.path().join("elsewhere.toml"), dir.path().join("demo").join(MANIFEST_FILE))
            .expect("symlink");
        let e = Subjects::new(vec![dir.path().to_path_buf()]).find("demo").expect_err("outside");
        assert!(matches!(e, LookupError::ManifestOutside { .. }), "{e}");
    }

    #[test]
    fn a_subject_is_found_with_its_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("demo")).expect("mkdir");
        std::fs::write(
            dir.path().join("demo").join(MANIFEST_FILE),
            "[subject]\nname = \"demo\"\ncomponent = \"demo-adapter\"\n",
        )
        .expect("write");
        let s = Subjects::new(vec![dir.path().to_path_buf()]);
        assert_eq!(s.names(), vec!["demo".to_string()]);
        assert_eq!(s.find("demo").expect("found").name, "demo");
        assert_eq!(s.for_component("demo-adapter").map(|s| s.name), Some("demo".into()));
        let e = s.find("other").expect_err("missing").to_string();
        assert!(e.contains("available: demo"), "{e}");
    }
}
