//! The CLI surface: exit codes, the compile cache, inspect, components, bad components.

use crate::harness::{hostile, manifest, operator, run};

#[test]
fn a_well_behaved_call_prints_its_result_as_wave_or_json() {
    let h = hostile();
    run(operator().arg("call").arg(&h).args(["add", "2", "40"])).expect_code(0).stdout_has("42");
    let r = run(operator().arg("call").arg(&h).args(["echo", "hello world", "--output", "json"]));
    r.expect_code(0);
    assert_eq!(r.stdout.trim(), "\"hello world\"");
}

#[test]
fn usage_errors_exit_with_code_2() {
    let h = hostile();
    run(operator().arg("call").arg(&h).args(["add", "two", "3"])).expect_code(2).stderr_has("argument `a`");
    run(operator().arg("call").arg(&h).args(["add", "1"])).expect_code(2).stderr_has("takes 2 argument(s), 1 given");
    run(operator().arg("call").arg(&h).arg("no-such-export"))
        .expect_code(2)
        .stderr_has("exports no function `no-such-export`");
    run(operator().args(["call", "no-such-component", "f"]))
        .expect_code(2)
        .stderr_has("no component named `no-such-component`");
    run(operator().arg("call").arg(&h).args(["add", "1", "2", "--endpoint", "pd"]))
        .expect_code(2)
        .stderr_has("NAME=URL");
    run(operator().arg("call").arg(&h).args(["add", "1", "2", "--deadline", "soon"]))
        .expect_code(2)
        .stderr_has("invalid duration");
    run(operator().args(["subject", "no-such-subject", "stores"]))
        .expect_code(2)
        .stderr_has("no subject named `no-such-subject`");
    run(operator().arg("frobnicate")).expect_code(2);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["subject", "--help"],
        &["inspect", "--help"],
        &["call", "--help"],
        &["components", "--help"],
    ] {
        run(operator().args(args)).expect_code(0).stdout_has("Usage:");
    }
}

#[test]
fn a_second_run_uses_the_cached_compiled_artifact() {
    let h = hostile();
    let cache = tempfile::tempdir().expect("tempdir");
    let first =
        run(operator().env("OPERATOR_CACHE_DIR", cache.path()).arg("-v").arg("call").arg(&h).args(["add", "1", "1"]));
    first.expect_code(0).stderr_has("compiled in").stderr_has("cached at");
    let second =
        run(operator().env("OPERATOR_CACHE_DIR", cache.path()).arg("-v").arg("call").arg(&h).args(["add", "1", "1"]));
    second.expect_code(0).stderr_has("loaded compiled artifact from cache");
}

#[test]
fn operator_perfmap_names_the_guest_functions_for_perf() {
    let h = hostile();
    let map_of = |perf_map: Option<&str>| {
        let mut cmd = operator();
        cmd.arg("call").arg(&h).args(["add", "1", "1"]).stdout(std::process::Stdio::null());
        match perf_map {
            Some(v) => cmd.env("OPERATOR_PERFMAP", v),
            None => cmd.env_remove("OPERATOR_PERFMAP"),
        };
        let mut child = cmd.spawn().expect("spawn operator");
        assert!(child.wait().expect("wait").success());
        let path = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let map = std::fs::read_to_string(&path).ok();
        let _ = std::fs::remove_file(&path);
        map
    };
    // Loaded from the cache on the second run: the map names the functions either way.
    for _ in 0..2 {
        let map = map_of(Some("1")).expect("OPERATOR_PERFMAP=1 writes /tmp/perf-<pid>.map");
        assert!(map.lines().any(|l| l.contains("wasm[0]::function[")), "no guest function in the map:\n{map}");
    }
    assert_eq!(map_of(None), None, "no map without OPERATOR_PERFMAP");
    assert_eq!(map_of(Some("0")), None, "OPERATOR_PERFMAP=0 writes no map");
}

#[test]
fn a_tampered_cache_artifact_is_never_loaded() {
    let h = hostile();
    let cache = tempfile::tempdir().expect("tempdir");
    run(operator().env("OPERATOR_CACHE_DIR", cache.path()).arg("call").arg(&h).args(["add", "1", "1"])).expect_code(0);
    let compiled = cache.path().join("compiled");
    for entry in std::fs::read_dir(&compiled).expect("compiled dir").flatten() {
        let mut bytes = std::fs::read(entry.path()).expect("read");
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(entry.path(), bytes).expect("write");
    }
    run(operator().env("OPERATOR_CACHE_DIR", cache.path()).arg("-v").arg("call").arg(&h).args(["add", "1", "1"]))
        .expect_code(0)
        .stdout_has("2")
        .stderr_has("ignoring a compiled artifact that this cache did not seal")
        .stderr_has("compiled in");
}

#[test]
fn inspect_shows_what_a_component_asks_for_and_what_the_host_gives() {
    let h = hostile();
    let (_dir, path) = manifest(
        "[endpoints.pd]\nurl = \"http://127.0.0.1:2379\"\nallow = [{ methods = [\"GET\"], paths = [\"/pd/api/v1/stores\"] }]\n",
    );
    run(operator().arg("inspect").arg(&h).arg("--manifest").arg(&path))
        .expect_code(0)
        .stdout_has("operator:core/http@0.1.0")
        .stdout_has("host: granted endpoints only")
        .stdout_has("wasi:filesystem/preopens")
        .stdout_has("host: no directories")
        .stdout_has("test:hostile/exfiltrate")
        .stdout_has("NOT PROVIDED")
        .stdout_has("fetch(endpoint: string, method: string, path: string) -> result<u32, http-error>")
        .stdout_has("endpoint pd -> http://127.0.0.1:2379/")
        .stdout_has("/pd/api/v1/stores");
    let r = run(operator().arg("inspect").arg(&h).args(["--output", "json"]));
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert!(
        v["world"]["imports"].as_array().is_some_and(|a| a.iter().any(|i| i["name"] == "operator:core/http@0.1.0"))
    );
}

#[test]
fn components_lists_user_components_with_their_worlds() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(hostile(), dir.path().join("evil.wasm")).expect("copy");
    run(operator().arg("components").arg("--components-dir").arg(dir.path()))
        .expect_code(0)
        .stdout_has("evil")
        .stdout_has("other (");
    run(operator().args(["call", "evil", "add", "1", "2"]).arg("--components-dir").arg(dir.path()))
        .expect_code(0)
        .stdout_has("3");
}

#[test]
fn bad_component_files_are_invalid_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").expect("write");
    run(operator().arg("call").arg(&garbage).arg("f"))
        .expect_code(1)
        .stderr_has("error: invalid-component: not a WebAssembly file");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    run(operator().arg("call").arg(&core).arg("f")).expect_code(1).stderr_has("core wasm module, not a component");
    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(hostile()).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    run(operator().arg("call").arg(&truncated).arg("f")).expect_code(1).stderr_has("error: invalid-component:");
}

#[test]
fn a_component_without_the_subject_contract_is_a_contract_mismatch() {
    let subjects = tempfile::tempdir().expect("tempdir");
    let components = tempfile::tempdir().expect("tempdir");
    std::fs::copy(hostile(), components.path().join("impostor.wasm")).expect("copy");
    std::fs::create_dir(subjects.path().join("fake")).expect("mkdir");
    std::fs::write(
        subjects.path().join("fake").join("operator.toml"),
        "[subject]\nname = \"fake\"\ncomponent = \"impostor\"\n",
    )
    .expect("write");
    run(operator()
        .arg("--subjects-dir")
        .arg(subjects.path())
        .arg("--components-dir")
        .arg(components.path())
        .args(["subject", "fake", "stores"]))
    .expect_code(1)
    .stderr_has("error: contract-mismatch: `impostor` does not implement the Subject contract");
}

#[test]
fn an_invalid_manifest_is_reported_with_file_and_line() {
    let h = hostile();
    let (_dir, path) =
        manifest("[endpoints.pd]\nurl = \"http://x\"\nallow = [{ methods = [\"FETCH\"], paths = [\"/\"] }]\n");
    run(operator().arg("call").arg(&h).args(["add", "1", "2", "--manifest"]).arg(&path))
        .expect_code(1)
        .stderr_has(&format!("{}:3: unknown method `FETCH`", path.display()));
}

#[test]
fn a_cache_folder_others_can_write_is_refused_and_left_as_it_is() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let r = run(operator().env("OPERATOR_CACHE_DIR", shared.path()).arg("call").arg(hostile()).args(["add", "1", "1"]));
    r.expect_code(1)
        .stderr_has("is not safe to use: it is writable by other users (mode 1777)")
        .stderr_has("--no-cache");
    let mode = std::fs::metadata(shared.path()).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "the cache folder's mode was changed");
    // Without the cache the call runs.
    run(operator()
        .env("OPERATOR_CACHE_DIR", shared.path())
        .args(["--no-cache", "call"])
        .arg(hostile())
        .args(["add", "1", "1"]))
    .expect_code(0)
    .stdout_has("2");
}

/// `tests/components/subject-v0-1-0` stays built against `wit/since_v0.1.0` whatever version of
/// the contracts is newest: the host must keep linking its 0.1.0 imports and calling its 0.1.0
/// exports (`wit/README.md`).
#[test]
fn a_component_built_against_operator_core_0_1_0_still_runs() {
    use crate::harness::test_component;
    let subjects = tempfile::tempdir().expect("tempdir");
    let folder = subjects.path().join("old");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::copy(test_component("subject-v0-1-0"), folder.join("adapter.wasm")).expect("copy");
    std::fs::write(
        folder.join("operator.toml"),
        "[subject]\nname = \"old\"\ncomponent = \"./adapter.wasm\"\n\n\
         [endpoints.first]\nurl = \"http://127.0.0.1:1\"\nallow = []\n\n\
         [endpoints.second]\nurl = \"http://127.0.0.1:2\"\nallow = []\n",
    )
    .expect("write");
    let inspect = run(operator().arg("inspect").arg(folder.join("adapter.wasm")));
    let inspect = inspect.expect_code(0);
    for import in ["operator:core/http@0.1.0", "operator:core/log@0.1.0"] {
        assert!(inspect.stdout.contains(import), "{import} not imported:\n{}", inspect.stdout);
    }
    assert!(inspect.stdout.contains("operator:core/subject@0.1.0"), "{}", inspect.stdout);
    let stores =
        run(operator().arg("--subjects-dir").arg(subjects.path()).args(["subject", "old", "stores", "-o", "json"]));
    let stores = stores.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&stores.stdout).expect("json");
    let addresses: Vec<&str> = v.as_array().expect("list").iter().filter_map(|s| s["address"].as_str()).collect();
    assert_eq!(addresses, ["first", "second"]);
}

#[test]
fn components_compile_fills_the_cache_the_next_call_loads_from() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let h = hostile();
    let first = run(operator().env("OPERATOR_CACHE_DIR", cache.path()).args(["components", "compile"]).arg(&h));
    first.expect_code(0).stdout_has("hostile").stdout_has("compiled");
    let again =
        run(operator().env("OPERATOR_CACHE_DIR", cache.path()).args(["components", "compile", "-o", "json"]).arg(&h));
    let v: serde_json::Value = serde_json::from_str(&again.expect_code(0).stdout).expect("json");
    assert_eq!(v[0]["origin"], "already cached", "{v}");
    run(operator().env("OPERATOR_CACHE_DIR", cache.path()).args(["-v", "call"]).arg(&h).args(["add", "1", "2"]))
        .expect_code(0)
        .stderr_has("loaded compiled artifact from cache");
    run(operator().args(["components", "compile", "no-such-component"]))
        .expect_code(2)
        .stderr_has("no component named");
}

/// A manifest the user names is refused where a container could rewrite it: inside a container
/// engine's data root (here the rootless engine's, under the test's XDG_DATA_HOME).
#[test]
fn a_named_manifest_inside_an_engines_volumes_is_refused() {
    let volume = crate::harness::shared_cache().join("data/docker/volumes/v/_data");
    std::fs::create_dir_all(&volume).expect("mkdir");
    let manifest = volume.join("operator.toml");
    std::fs::write(&manifest, "[limits]\ndeadline = \"1s\"\n").expect("write");
    run(operator().arg("call").arg(hostile()).args(["add", "1", "2", "--manifest"]).arg(&manifest))
        .expect_code(1)
        .stderr_has("where container engines keep volumes and layers: a container could rewrite its grants");
}
