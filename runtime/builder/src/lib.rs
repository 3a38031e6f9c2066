//! The one component builder: `runtime/cli/build.rs` builds the components it embeds with it,
//! the e2e harness and the benches build the test components with it, and Python components
//! (`components/etcd/build`) go through the same script it runs.
//!
//! - Rust: a nested `cargo build --release --target wasm32-wasip2` into its own target directory
//!   (`<target>/wasm`), so it never contends with the outer build's lock; a clean environment
//!   keeps the outer build's flags, wrappers (clippy) and build-script variables out of it.
//! - Python: `scripts/componentize` (componentize-py from PyPI in a private venv, skipped when
//!   nothing changed).
//!
//! No dependencies: it is a build-dependency of the CLI, compiled before anything else.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target components are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Why a build failed: what ran, and what it said.
#[derive(Debug)]
pub struct BuildError {
    pub what: String,
    pub output: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.what)?;
        if !self.output.trim().is_empty() {
            write!(f, ":\n{}", self.output.trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// The workspace's build output: `$CARGO_TARGET_DIR` (relative to `root`), else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    if dir.is_absolute() { dir } else { root.join(dir) }
}

/// Where a Rust component crate's `.wasm` lands after [`build_rust`].
pub fn rust_output(target: &Path, package: &str) -> PathBuf {
    target.join("wasm").join(WASM_TARGET).join("release").join(format!("{}.wasm", package.replace('-', "_")))
}

/// Builds Rust component crates of the workspace at `root` for wasm32-wasip2, into
/// `<target>/wasm`. `inherit_output` shows cargo's progress (build scripts) instead of capturing it.
pub fn build_rust<S: AsRef<OsStr>>(
    root: &Path,
    target: &Path,
    packages: &[S],
    inherit_output: bool,
) -> Result<(), BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release", "--locked", "--target", WASM_TARGET, "--target-dir"]);
    cmd.arg(target.join("wasm"));
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    clean_env(&mut cmd);
    let what = format!("building the wasm components ({})", names(packages));
    let hint = format!(
        "\nIf the target is missing, run `rustup target add {WASM_TARGET}` (or ../shared/toolchain/ensure-wasm32-wasip2)."
    );
    if inherit_output {
        let status = cmd.status().map_err(|e| BuildError { what: what.clone(), output: e.to_string() })?;
        return if status.success() { Ok(()) } else { Err(BuildError { what, output: format!("{status}{hint}") }) };
    }
    let out = cmd.output().map_err(|e| BuildError { what: what.clone(), output: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError { what, output: format!("{}{hint}", String::from_utf8_lossy(&out.stderr)) })
    }
}

/// Builds a Python component: `app` in `src` against `world` of the WIT folder `wit`, into
/// `out` (componentize-py's venv lives under `target`).
pub fn build_python(
    root: &Path,
    target: &Path,
    wit: &Path,
    world: &str,
    src: &Path,
    out: &Path,
) -> Result<(), BuildError> {
    let what = format!("building the Python component {}", out.display());
    let result = Command::new(root.join("scripts").join("componentize"))
        .arg(wit)
        .arg(world)
        .arg(src)
        .arg("app")
        .arg(out)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .map_err(|e| BuildError { what: what.clone(), output: format!("cannot run scripts/componentize: {e}") })?;
    if result.status.success() {
        Ok(())
    } else {
        Err(BuildError { what, output: String::from_utf8_lossy(&result.stderr).into_owned() })
    }
}

/// Removes what the outer build sets for itself (flags, wrappers, build-script variables).
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS")
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTRIES_");
        let outer_only = (key.starts_with("CARGO_") && !keep)
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_WRAPPER"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC_LINKER"
            );
        if outer_only {
            cmd.env_remove(key);
        }
    }
}

fn names<S: AsRef<OsStr>>(packages: &[S]) -> String {
    packages.iter().map(|p| p.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crates_wasm_lands_under_the_nested_target() {
        let p = rust_output(Path::new("/t"), "hostile-driver");
        assert_eq!(p, Path::new("/t/wasm/wasm32-wasip2/release/hostile_driver.wasm"));
    }

    #[test]
    fn a_failed_build_says_what_ran_and_what_it_said() {
        let e = BuildError { what: "building x".into(), output: "boom\n".into() };
        assert_eq!(e.to_string(), "building x failed:\nboom");
    }
}
