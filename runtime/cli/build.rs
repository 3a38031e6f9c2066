//! Builds the project's own components (`components/*`) for `wasm32-wasip2` and embeds them,
//! so that `operator` knows them by name with no install step; tells the binary where its
//! source tree is (`OPERATOR_SOURCE_TREE`, for `sources.rs`).
//!
//! A component crate opts in with `[package.metadata.operator]` naming the component and its
//! world. The wasm build runs as a nested cargo with its own target directory
//! (`<target>/wasm`), so it never contends with the outer build's lock; a clean environment
//! keeps the outer build's flags, wrappers (clippy) and build-script variables out of it.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

struct ComponentCrate {
    package: String,
    name: String,
    world: String,
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().nth(2).expect("runtime/cli/ lives inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed={}", root.join("components").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!("cargo:rerun-if-env-changed=OPERATOR_SKIP_COMPONENT_BUILD");

    // Components built outside cargo (Python ones: `components/<name>/build`) land here.
    let target_dir = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target_dir = if target_dir.is_absolute() { target_dir } else { root.join(target_dir) };
    println!("cargo:rustc-env=OPERATOR_BUILT_COMPONENTS_DIR={}", target_dir.join("components").display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rustc-env=OPERATOR_SOURCE_TREE={}", root.display());

    let crates = discover(&root.join("components"));
    let mut generated = String::from("/// Components built from `components/` and embedded at build time.\n");
    generated.push_str("static BUILTIN: &[Builtin] = &[\n");

    if !crates.is_empty() {
        let wasm_dir = build_wasm(&root, &crates);
        for c in &crates {
            let file = wasm_dir.join(format!("{}.wasm", c.package.replace('-', "_")));
            if !file.exists() {
                panic!("building component `{}` produced no {}", c.package, file.display());
            }
            println!("cargo:rerun-if-changed={}", file.display());
            writeln!(
                generated,
                "    Builtin {{ name: {:?}, world: {:?}, bytes: include_bytes!({:?}) }},",
                c.name,
                c.world,
                file.display().to_string()
            )
            .expect("writing to a String");
        }
    }
    generated.push_str("];\n");
    fs::write(out_dir.join("builtin_components.rs"), generated).expect("write builtin_components.rs");
}

/// Finds component crates: directories under `components/` whose Cargo.toml has
/// `[package.metadata.operator]` with `component` and `world`.
fn discover(dir: &Path) -> Vec<ComponentCrate> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else { continue };
        let doc: toml::Table = match text.parse() {
            Ok(doc) => doc,
            Err(e) => panic!("{}: {e}", manifest.display()),
        };
        let package = &doc["package"];
        let Some(meta) = package.get("metadata").and_then(|m| m.get("operator")) else { continue };
        let field = |key: &str| -> String {
            meta.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{}: [package.metadata.operator] needs `{key}`", manifest.display()))
                .to_string()
        };
        found.push(ComponentCrate {
            package: package["name"].as_str().expect("package.name").to_string(),
            name: field("component"),
            world: field("world"),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Runs the nested `cargo build --release --target wasm32-wasip2` and returns the output dir.
fn build_wasm(root: &Path, crates: &[ComponentCrate]) -> PathBuf {
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("wasm");
    let out = target_dir.join(WASM_TARGET).join("release");
    if env::var_os("OPERATOR_SKIP_COMPONENT_BUILD").is_some() {
        return out;
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release", "--target", WASM_TARGET, "--target-dir"]).arg(&target_dir);
    for c in crates {
        cmd.args(["-p", &c.package]);
    }
    for (key, _) in env::vars_os() {
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

    let status = cmd.status().expect("run cargo for the wasm components");
    if !status.success() {
        panic!(
            "building the wasm components failed ({status}). If the target is missing, run \
             `rustup target add {WASM_TARGET}` (or ../shared/toolchain/ensure-wasm32-wasip2)."
        );
    }
    out
}
