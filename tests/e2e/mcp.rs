//! `operator mcp` driven by a client no one here wrote: the official Python MCP SDK (`mcp` from
//! PyPI, in a venv under the target directory), over stdio, in both protocol generations.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{Sim, root, shared_cache, target_dir, test_component};

/// A Python with the official MCP SDK, installed once per target directory.
fn python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let py = PY.get_or_init(|| {
        let venv = target_dir().join("mcp-py");
        let python = venv.join("bin").join("python3");
        let has = |p: &Path| Command::new(p).args(["-c", "import mcp"]).status().is_ok_and(|s| s.success());
        if has(&python) {
            return Ok(python);
        }
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success())
            && Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "mcp==2.3.0"])
                .status()
                .is_ok_and(|s| s.success());
        if made && has(&python) {
            Ok(python)
        } else {
            Err(format!("could not install the MCP SDK (mcp==2.3.0 from PyPI) into {}", venv.display()))
        }
    });
    py.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// How the client negotiates: `legacy` (handshake; elicitation requests) or `auto` (2026-07-28;
/// input-required results).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    Legacy,
    Auto,
}

/// How the person answers a confirmation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Person {
    Accepts,
    Declines,
    /// The client has no elicitation support.
    Absent,
}

/// Runs `steps` in one client session against `operator mcp <server_args>`; one JSON result each.
pub(crate) fn session(mode: Mode, person: Person, server_args: &[String], steps: Value) -> Vec<Value> {
    session_env(mode, person, server_args, steps, &[])
}

/// [`session`], with variables added to the server's environment.
pub(crate) fn session_env(
    mode: Mode,
    person: Person,
    server_args: &[String],
    steps: Value,
    env: &[(&str, &str)],
) -> Vec<Value> {
    let mode = match mode {
        Mode::Legacy => "legacy",
        Mode::Auto => "auto",
    };
    let person = match person {
        Person::Accepts => "accept",
        Person::Declines => "decline",
        Person::Absent => "none",
    };
    // The server gets only what its command line says (the SDK starts it with a clean environment).
    let mut cmd = Command::new(python());
    for (k, v) in env {
        cmd.env(format!("MCP_SERVER_ENV_{k}"), v);
    }
    let out = cmd
        .arg(root().join("tests/e2e/mcp_client.py"))
        .args([mode, person, &steps.to_string(), "--"])
        .arg(env!("CARGO_BIN_EXE_operator"))
        .arg("--cache-dir")
        .arg(shared_cache())
        .arg("mcp")
        .args(server_args)
        .output()
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// `--subject tikv` pointed at the simulator, with its own audit log.
fn tikv_args(sim: &Sim, audit: &Path) -> Vec<String> {
    let mut args = vec!["--subject".to_string(), "tikv".into(), "--audit".into(), audit.display().to_string()];
    args.extend(sim.endpoints());
    args
}

/// A hot region and a store holding a follower of it, not used by `taken`.
fn movable(sim: &Sim, taken: &[u64]) -> (u64, u64) {
    let regions = sim.subject_json(&["hot-write-regions", "--limit", "64"]);
    regions
        .as_array()
        .expect("regions")
        .iter()
        .filter_map(|r| {
            let id = r["id"].as_u64()?;
            let leader = r["leader_store_id"].as_u64()?;
            let to = r["peer_store_ids"].as_array()?.iter().filter_map(Value::as_u64).find(|p| *p != leader)?;
            (!taken.contains(&id)).then_some((id, to))
        })
        .next()
        .expect("a hot region with a follower")
}

fn transfer(region: u64, to: u64) -> Value {
    serde_json::json!({"tool": "transfer_leader", "args": {"subject": "tikv", "region_id": region, "to_store_id": to}})
}

fn audit_events(audit: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("an audit event")).collect()
}

#[test]
fn mcp_tools_carry_annotations_and_schemas_and_every_read_only_tool_answers() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let steps = serde_json::json!([
        {"list": true},
        {"tool": "list_subjects"},
        {"tool": "get_stores", "args": {"subject": "tikv"}},
        {"tool": "get_hot_write_regions", "args": {"subject": "tikv", "limit": 3}},
        {"tool": "get_cluster_metrics", "args": {"subject": "tikv"}},
        {"tool": "propose", "args": {"subject": "tikv", "policy": "hot-write-balance"}},
        {"tool": "audit_log", "args": {"subject": "tikv"}},
    ]);
    let r = session(Mode::Auto, Person::Absent, &tikv_args(&sim, &audit), steps);
    let tools = r[0]["tools"].as_array().expect("tools");
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name}"));
    let read_only = [
        "list_subjects",
        "get_stores",
        "get_hot_write_regions",
        "get_cluster_metrics",
        "deployment_status",
        "deployment_logs",
        "propose",
        "audit_log",
    ];
    assert_eq!(tools.len(), read_only.len() + 2, "{tools:?}");
    for name in read_only {
        let t = tool(name);
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
        assert!(t["outputSchema"]["properties"].is_object(), "{name} has no output schema: {t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    for name in ["transfer_leader", "apply_proposal"] {
        let t = tool(name);
        assert_eq!(t["annotations"]["destructiveHint"], true, "{t}");
        assert_eq!(t["annotations"]["readOnlyHint"], false, "{t}");
    }
    let transfer_schema = &tool("transfer_leader")["inputSchema"];
    assert_eq!(transfer_schema["required"], serde_json::json!(["subject", "region_id", "to_store_id"]));

    for step in &r[1..] {
        assert_eq!(step["is_error"], false, "{step}");
    }
    let subjects = &r[1]["structured"]["subjects"];
    assert_eq!(subjects[0]["name"], "tikv", "{subjects}");
    assert_eq!(subjects[0]["endpoints"], serde_json::json!(["pd", "prometheus"]), "{subjects}");
    assert!(!r[1]["text"].as_str().unwrap_or_default().contains("127.0.0.1"), "an endpoint URL leaked: {}", r[1]);
    assert_eq!(r[2]["structured"]["stores"].as_array().map(Vec::len), Some(3), "{}", r[2]);
    assert_eq!(r[3]["structured"]["regions"].as_array().map(Vec::len), Some(3), "{}", r[3]);
    assert_eq!(r[4]["structured"]["store_count"], 3, "{}", r[4]);
    let proposals = r[5]["structured"]["proposals"].as_array().expect("proposals");
    assert!(!proposals.is_empty() && proposals.iter().all(|p| p["id"].is_string() && p["verdict"].is_string()));
    // Proposing executes nothing.
    let operators = crate::harness::http_get(sim.sim.pd, "/pd/api/v1/operators");
    assert!(operators.trim_end().ends_with("[]"), "propose created operators: {operators}");
    assert_eq!(r[6]["structured"]["events"], serde_json::json!([]), "{}", r[6]);
}

#[test]
fn mcp_changes_need_the_persons_approval_in_both_protocol_generations_and_are_audited() {
    let sim = Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let args = tikv_args(&sim, &audit);
    let mut taken = Vec::new();
    for mode in [Mode::Legacy, Mode::Auto] {
        let (region, to) = movable(&sim, &taken);
        taken.push(region);

        let r = session(mode, Person::Absent, &args, serde_json::json!([transfer(region, to)]));
        assert_eq!(r[0]["is_error"], true, "{mode:?}: {}", r[0]);
        let text = r[0]["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("not-approved:") && text.contains("--allow-actions"), "{mode:?}: {text}");

        let r = session(mode, Person::Declines, &args, serde_json::json!([transfer(region, to)]));
        assert_eq!(r[0]["is_error"], true, "{mode:?}: {}", r[0]);
        assert!(r[0]["text"].as_str().unwrap_or_default().contains("declined"), "{mode:?}: {}", r[0]);
        assert_eq!(r[0]["asked"].as_array().map(Vec::len), Some(1), "{mode:?}: the person was not asked: {}", r[0]);

        let r = session(mode, Person::Accepts, &args, serde_json::json!([transfer(region, to)]));
        assert_eq!(r[0]["is_error"], false, "{mode:?}: {}", r[0]);
        assert_eq!(r[0]["structured"]["verdict"], "applied", "{mode:?}: {}", r[0]);
        let asked = r[0]["asked"][0].as_str().unwrap_or_default();
        assert!(asked.contains(&format!("region {region}")) && asked.contains("e2e-assistant"), "{asked}");
    }
    // Both applied moves happened at PD; the refusals left nothing.
    let events = audit_events(&audit);
    let starts: Vec<&Value> = events.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 2, "{events:?}");
    let skipped = events.iter().filter(|e| e["event"] == "skipped").count();
    assert_eq!(skipped, 4, "two refusals per generation are recorded: {events:?}");
    assert!(events.iter().any(|e| e["event"] == "round" && e["policy"] == "mcp: e2e-assistant"), "{events:?}");
    assert_eq!(events.iter().filter(|e| e["event"] == "outcome" && e["applied"] == true).count(), 2, "{events:?}");
}

#[test]
fn mcp_with_allow_actions_executes_without_asking_but_the_gate_still_refuses() {
    let sim = Sim::start(tikv_simulator::Config {
        operator_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let mut args = tikv_args(&sim, &audit);
    args.push("--allow-actions".into());
    let (region, to) = movable(&sim, &[]);
    let leader = sim
        .subject_json(&["hot-write-regions", "--limit", "64"])
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["id"] == region)
        .and_then(|r| r["leader_store_id"].as_u64())
        .expect("leader");
    let r = session(
        Mode::Legacy,
        Person::Declines,
        &args,
        serde_json::json!([
            transfer(region, leader),
            transfer(region, 999),
            transfer(123_456, to),
            transfer(region, to),
            transfer(region, leader),
            {"tool": "propose", "args": {"subject": "tikv", "policy": "no-such-policy"}},
            {"tool": "apply_proposal", "args": {"id": "p999"}},
        ]),
    );
    let error = |i: usize| {
        assert_eq!(r[i]["is_error"], true, "{}", r[i]);
        r[i]["text"].as_str().unwrap_or_default().to_string()
    };
    assert!(error(0).starts_with("already-leader:"), "{}", error(0));
    assert!(error(1).starts_with("unknown-store:"), "{}", error(1));
    assert!(error(2).starts_with("unknown-region:"), "{}", error(2));
    assert_eq!(r[3]["is_error"], false, "{}", r[3]);
    assert_eq!(r[3]["asked"], serde_json::json!([]), "--allow-actions asked anyway: {}", r[3]);
    // Moving it straight back: the region is cooling down.
    assert!(error(4).starts_with("cooldown:"), "{}", error(4));
    assert!(error(5).starts_with("not-found:"), "{}", error(5));
    assert!(error(6).starts_with("not-found:") && error(6).contains("propose"), "{}", error(6));
    let events = audit_events(&audit);
    assert_eq!(events.iter().filter(|e| e["event"] == "start").count(), 1);
    // Every call that reached the gate is recorded, refusals too, with the verdict's name.
    let verdicts: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "round").map(|e| &e["proposals"][0]["verdict"]).collect();
    assert_eq!(verdicts, ["already-leader", "unknown-store", "unknown-region", "admitted", "cooldown"], "{events:?}");

    // Actions per minute are counted in the log: one more is one too many at a limit of 1.
    let (other, to) = movable(&sim, &[region]);
    args.extend(["--max-actions-per-minute".to_string(), "1".into()]);
    let r = session(Mode::Legacy, Person::Declines, &args, serde_json::json!([transfer(other, to)]));
    let text = r[0]["text"].as_str().unwrap_or_default();
    assert!(r[0]["is_error"] == true && text.starts_with("rate-limit:"), "{}", r[0]);
    assert_eq!(audit_events(&audit).iter().filter(|e| e["event"] == "start").count(), 1);
}

#[test]
fn mcp_adapter_failures_are_named_tool_errors_and_the_server_keeps_serving() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    // A subject whose adapter spins, traps and floods, next to the real tikv one.
    let subjects = dir.path().join("subjects");
    let hostile = subjects.join("hostile");
    std::fs::create_dir_all(&hostile).expect("mkdir");
    std::fs::copy(test_component("hostile-adapter"), hostile.join("adapter.wasm")).expect("copy");
    std::fs::write(hostile.join("operator.toml"), "[subject]\nname = \"hostile\"\ncomponent = \"adapter.wasm\"\n")
        .expect("write");
    let closed = crate::harness::free_ports(1)[0];
    let mut args: Vec<String> = vec![
        "--subject".into(),
        "hostile".into(),
        "--subject".into(),
        "tikv".into(),
        "--deadline".into(),
        "500ms".into(),
        "--audit".into(),
        dir.path().join("audit.jsonl").display().to_string(),
        "--endpoint".into(),
        format!("pd=http://127.0.0.1:{closed}"),
        "--endpoint".into(),
        format!("prometheus=http://{}", sim.sim.prometheus),
    ];
    let mut cmd_args = vec!["--subjects-dir".to_string(), subjects.display().to_string()];
    cmd_args.append(&mut args);
    // `--subjects-dir` is a global flag: it goes before `mcp` on the command line.
    let r = session_with_global(
        &cmd_args,
        serde_json::json!([
            {"tool": "get_stores", "args": {"subject": "hostile"}},
            {"tool": "get_hot_write_regions", "args": {"subject": "hostile"}},
            {"tool": "get_cluster_metrics", "args": {"subject": "hostile"}},
            {"tool": "get_stores", "args": {"subject": "tikv"}},
            {"tool": "get_stores", "args": {"subject": "nope"}},
            {"tool": "list_subjects"},
            // A spinning adapter does not hold up a call sent beside it.
            {"parallel": [{"tool": "get_stores", "args": {"subject": "hostile"}}, {"tool": "list_subjects"}]},
        ]),
    );
    let together = r[6]["parallel"].as_array().expect("parallel results");
    assert_eq!(together[0]["tool"], "list_subjects", "the server served one call at a time: {together:?}");
    assert!(together[1]["text"].as_str().is_some_and(|t| t.starts_with("deadline-exceeded:")), "{together:?}");
    let text = |i: usize| r[i]["text"].as_str().unwrap_or_default().to_string();
    assert!(text(0).starts_with("deadline-exceeded:"), "{}", text(0));
    assert!(text(1).starts_with("trap:") && text(1).contains("hostile adapter"), "{}", text(1));
    assert!(text(2).starts_with("output-too-large:"), "{}", text(2));
    assert!(text(3).starts_with("unreachable:") && text(3).contains("hint: endpoints in use"), "{}", text(3));
    assert!(text(4).starts_with("not-found:") && text(4).contains("served: hostile, tikv"), "{}", text(4));
    for step in &r[..5] {
        assert_eq!(step["is_error"], true, "{step}");
    }
    assert_eq!(r[5]["is_error"], false, "the server stopped serving: {}", r[5]);
}

/// Like [`session`], with global flags before `mcp` (`--subjects-dir`); no person.
fn session_with_global(args: &[String], steps: Value) -> Vec<Value> {
    let (global, rest) = args.split_at(2);
    let out = Command::new(python())
        .arg(root().join("tests/e2e/mcp_client.py"))
        .args(["auto", "none", &steps.to_string(), "--"])
        .arg(env!("CARGO_BIN_EXE_operator"))
        .arg("--cache-dir")
        .arg(shared_cache())
        .args(global)
        .arg("mcp")
        .args(rest)
        .output()
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the MCP client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn mcp_a_grant_the_manifest_lacks_is_a_named_denial_and_nothing_moves() {
    let sim = Sim::start(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    // The subject's grants without the one POST that creates an operator at PD.
    let manifest = std::fs::read_to_string(root().join("subjects/tikv/operator.toml")).expect("manifest");
    let without_post = manifest.replace("  { methods = [\"POST\"], paths = [\"/pd/api/v1/operators\"] },\n", "");
    assert_ne!(manifest, without_post, "the POST grant line moved");
    let file = dir.path().join("read-only.toml");
    std::fs::write(&file, without_post).expect("write");
    let mut args = tikv_args(&sim, &audit);
    args.extend(["--manifest".to_string(), file.display().to_string(), "--allow-actions".into()]);
    let (region, to) = movable(&sim, &[]);
    let r = session(
        Mode::Auto,
        Person::Absent,
        &args,
        serde_json::json!([transfer(region, to), {"tool": "list_subjects"}]),
    );
    assert_eq!(r[0]["is_error"], true, "{}", r[0]);
    assert_eq!(r[0]["structured"]["verdict"], "failed", "{}", r[0]);
    let detail = r[0]["structured"]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("denied:") && detail.contains("/pd/api/v1/operators"), "{detail}");
    assert_eq!(r[1]["is_error"], false, "the server stopped serving: {}", r[1]);
    let operators = crate::harness::http_get(sim.sim.pd, "/pd/api/v1/operators");
    assert!(operators.trim_end().ends_with("[]"), "an operator was created: {operators}");
    let outcome = audit_events(&audit).into_iter().find(|e| e["event"] == "outcome").expect("an outcome");
    assert_eq!(outcome["applied"], false, "{outcome}");
}
