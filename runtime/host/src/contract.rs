//! Which versions of the contracts this host serves: the one place that says so.
//!
//! `wit/` holds one folder per released version of `operator:core` (`wit/since_v0.1.0/`, see
//! `wit/README.md`). Each version the host accepts has its generated bindings (a module in
//! `bindings.rs`, generated from that folder) linked side by side, so a component built against
//! an older version keeps running after a newer one lands. Within a version, wasmtime links
//! semver-compatible patch versions (`@0.1.3` to a `0.1.0` host), as the component model says.

/// Versions of `operator:core` the host serves, as `major.minor`.
pub const OPERATOR_CORE: &[&str] = &["0.1"];
/// Versions of `operator:policy` (the policy contract, `wit/policy/`) the host calls. A policy
/// imports only `operator:core/log`, so this package is only ever exported.
pub const OPERATOR_POLICY: &[&str] = &["0.1"];
/// Versions of `operator:swarm` (the Swarm capability, `wit/swarm/`) the host serves.
pub const OPERATOR_SWARM: &[&str] = &["0.1"];
/// The WASI version the host serves (without files, environment or sockets).
pub const WASI: &str = "0.2";
/// WASI packages linked (`wasi:http` is not: components use `operator:core/http`).
const WASI_PACKAGES: &[&str] =
    &["wasi:cli/", "wasi:clocks/", "wasi:filesystem/", "wasi:io/", "wasi:random/", "wasi:sockets/"];

/// True for imports this host defines, in any patch version of a version it serves.
/// (wasmtime's own `define_unknown_imports_as_traps` looks names up exactly, so it would shadow a
/// semver-compatible host definition with a trap.)
pub fn provided_by_host(import: &str) -> bool {
    let Some((iface, version)) = import.split_once('@') else { return false };
    let minor = |v: &str| version.strip_prefix(v).is_some_and(|rest| rest.starts_with('.'));
    (WASI_PACKAGES.iter().any(|p| iface.starts_with(p)) && minor(WASI))
        || (iface.starts_with("operator:core/") && OPERATOR_CORE.iter().any(|v| minor(v)))
        || (iface.starts_with("operator:swarm/") && OPERATOR_SWARM.iter().any(|v| minor(v)))
}

/// What the host serves, in a sentence for error hints.
pub fn served() -> String {
    format!(
        "operator:core {} and operator:swarm {} capabilities and WASI {WASI} without files, environment or sockets",
        OPERATOR_CORE.join(", "),
        OPERATOR_SWARM.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_are_provided_in_any_patch_version() {
        assert!(provided_by_host("wasi:cli/environment@0.2.6"));
        assert!(provided_by_host("wasi:io/streams@0.2.0"));
        assert!(provided_by_host("operator:core/http@0.1.3"));
        assert!(provided_by_host("operator:core/http@0.1.0"));
        assert!(!provided_by_host("operator:core/http@0.10.0"));
        assert!(!provided_by_host("wasi:http/outgoing-handler@0.2.6"));
        assert!(!provided_by_host("wasi:cli/environment@0.3.0"));
        assert!(!provided_by_host("acme:evil/exfiltrate@1.0.0"));
        assert!(provided_by_host("operator:swarm/swarm@0.1.2"));
        assert!(!provided_by_host("operator:swarm/swarm@0.2.0"));
    }

    /// Every served version has its frozen folder, and the bindings of each are generated from
    /// it (`bindings.rs`): a version cannot be listed here without being linked.
    #[test]
    fn every_served_version_has_its_wit_folder() {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        for v in OPERATOR_CORE {
            let dir = wit.join(format!("since_v{v}.0"));
            let mut resolve = wit_parser::Resolve::default();
            let (pkg, _) = resolve.push_dir(&dir).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
            let name = &resolve.packages[pkg].name;
            assert_eq!(name.version.as_ref().map(|v| format!("{}.{}", v.major, v.minor)).as_deref(), Some(*v));
            let bindings = include_str!("bindings.rs");
            assert!(bindings.contains(&format!("wit/since_v{v}.0")), "bindings.rs does not generate {v}");
        }
        for v in OPERATOR_POLICY {
            let dir = wit.join(format!("policy/since_v{v}.0"));
            let mut resolve = wit_parser::Resolve::default();
            let (pkg, _) = resolve.push_dir(&dir).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
            assert_eq!(resolve.packages[pkg].name.name, "policy");
            assert!(include_str!("bindings.rs").contains(&format!("wit/policy/since_v{v}.0")));
        }
        for v in OPERATOR_SWARM {
            let dir = wit.join(format!("swarm/since_v{v}.0"));
            let mut resolve = wit_parser::Resolve::default();
            let (pkg, _) = resolve.push_dir(&dir).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
            assert_eq!(resolve.packages[pkg].name.name, "swarm");
            assert!(include_str!("bindings.rs").contains(&format!("wit/swarm/since_v{v}.0")));
        }
    }
}
