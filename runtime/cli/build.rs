//! Builds the project's own components (`components/*`) for `wasm32-wasip2` and embeds them,
//! so that `operator` knows them by name with no install step; tells the binary where its
//! source tree is (`OPERATOR_SOURCE_TREE`, for `sources.rs`).
//!
//! A component crate opts in with `[package.metadata.operator]` naming the component and its
//! world. The wasm build is `operator-builder`'s (a nested cargo with its own target directory
//! and a clean environment), the same the tests use for their components.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

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
    let target_dir = operator_builder::target_dir(&root);
    println!("cargo:rustc-env=OPERATOR_BUILT_COMPONENTS_DIR={}", target_dir.join("components").display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rustc-env=OPERATOR_SOURCE_TREE={}", root.display());

    let crates = discover(&root.join("components"));
    let mut generated = String::from("/// Components built from `components/` and embedded at build time.\n");
    generated.push_str("static BUILTIN: &[Builtin] = &[\n");

    if !crates.is_empty() {
        if env::var_os("OPERATOR_SKIP_COMPONENT_BUILD").is_none() {
            let packages: Vec<&str> = crates.iter().map(|c| c.package.as_str()).collect();
            if let Err(e) = operator_builder::build_rust(&root, &target_dir, &packages, true) {
                panic!("{e}");
            }
        }
        for c in &crates {
            let file = operator_builder::rust_output(&target_dir, &c.package);
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

    embed_conformance(&root.join("runtime").join("conformance"), &out_dir);
}

/// Embeds the conformance cases (`runtime/conformance/<contract>/*.toml`) so `operator check`
/// has its suites wherever the binary runs; a case file added there is picked up by the next
/// build with no code.
fn embed_conformance(dir: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut generated = String::from("/// The built-in conformance cases: (contract, file name, text).\n");
    generated.push_str("static CONFORMANCE: &[(&str, &str, &str)] = &[\n");
    let mut contracts: Vec<PathBuf> =
        fs::read_dir(dir).map(|e| e.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default();
    contracts.sort();
    for contract in contracts {
        println!("cargo:rerun-if-changed={}", contract.display());
        let name = contract.file_name().expect("a folder name").to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = fs::read_dir(&contract)
            .map(|e| e.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let file_name = file.file_name().expect("a file name").to_string_lossy().into_owned();
            writeln!(generated, "    ({name:?}, {file_name:?}, include_str!({:?})),", file.display().to_string())
                .expect("writing to a String");
        }
    }
    generated.push_str("];\n");
    fs::write(out_dir.join("conformance_cases.rs"), generated).expect("write conformance_cases.rs");
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
