//! What this binary knows of the source tree it was built from: the components `build.rs`
//! embedded, where `components/<name>/build` puts the components cargo does not build (the
//! Python etcd adapter), and the tree's `subjects/`. The host library knows none of this.

use std::path::{Path, PathBuf};

use operator_host::registry::{Builtin, Components, Subjects};

include!(concat!(env!("OUT_DIR"), "/builtin_components.rs"));

/// The workspace this binary was built from.
fn tree() -> &'static Path {
    Path::new(env!("OPERATOR_SOURCE_TREE"))
}

/// The user's component directories, then `<target>/components` of the source tree.
pub fn component_dirs() -> Vec<PathBuf> {
    let mut dirs = Components::default_dirs();
    let built = PathBuf::from(env!("OPERATOR_BUILT_COMPONENTS_DIR"));
    if built.is_dir() {
        dirs.push(built);
    }
    dirs
}

/// Components in `dirs`, then the ones built into this binary.
pub fn components(dirs: Vec<PathBuf>) -> Components {
    Components::new(dirs).with_builtins(BUILTIN).with_sources(tree().join("components"))
}

/// `$OPERATOR_SUBJECTS_DIR`, the source tree's `subjects/`, `$XDG_CONFIG_HOME/operator/subjects`.
pub fn subject_dirs() -> Vec<PathBuf> {
    let (mut dirs, user_config) = Subjects::default_dirs();
    if let Ok(dir) = tree().join("subjects").canonicalize() {
        dirs.push(dir);
    }
    dirs.extend(user_config);
    dirs
}
