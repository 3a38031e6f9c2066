//! `operator check`: the conformance suites against the project's own components, against
//! test components that each break one rule of the Subject contract, and against hostile ones.
//! (The etcd adapter against a real etcd cluster is in `etcd.rs`.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{Run, evict_leader_component, operator, run, test_component};

const TIKV_MANIFEST: &str = "subjects/tikv/operator.toml";

fn manifest() -> PathBuf {
    crate::harness::root().join(TIKV_MANIFEST)
}

fn check(args: &[&str]) -> Run {
    run(operator().arg("check").args(args))
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", r.stdout, r.stderr))
}

/// The rules that failed in a JSON report.
fn failed_rules(report: &Value) -> BTreeSet<String> {
    report["summary"]["failed_rules"]
        .as_array()
        .expect("failed_rules")
        .iter()
        .map(|r| r.as_str().expect("a rule").to_string())
        .collect()
}

#[test]
fn check_passes_the_tikv_adapter_on_every_case_and_lists_exactly_the_grants_its_manifest_gives() {
    let r = check(&["tikv", "--output", "json"]);
    r.expect_code(0);
    let report = json(&r);
    let summary = &report["summary"];
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["not_run"], 0, "{summary}");
    assert!(summary["passed"].as_u64().expect("passed") >= 30, "{summary}");
    // Every rule of the Subject suite was checked at least once, and passed.
    let checked: BTreeSet<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|c| c["findings"].as_array().expect("findings").iter())
        .map(|f| {
            assert_eq!(f["passed"], true, "{f}");
            f["rule"].as_str().expect("rule")
        })
        .collect();
    for rule in [
        "no-trap",
        "within-limits",
        "fast-enough",
        "within-grants",
        "answers",
        "errors-named",
        "describe-pure",
        "describe-actions",
        "stores-unique",
        "stores-no-tombstones",
        "stores-match-cluster",
        "hot-regions-sorted",
        "hot-regions-limit",
        "hot-regions-leader-a-peer",
        "hot-regions-match-cluster",
        "ids-exact",
        "metrics-store-count",
        "transfer-rejected",
        "transfer-truthful",
        "reads-consistent",
    ] {
        assert!(checked.contains(rule), "rule {rule} was never checked: {checked:?}");
    }
    // Costs per operation, and what it touched: exactly what subjects/tikv/operator.toml grants.
    let costs: Vec<&str> =
        summary["costs"].as_array().expect("costs").iter().map(|c| c["call"].as_str().expect("call")).collect();
    assert_eq!(costs, ["describe", "get-cluster-metrics", "get-hot-write-regions", "get-stores", "transfer-leader"]);
    assert!(summary["requests"].to_string().contains("/pd/api/v1/operators"), "{summary}");
    assert!(report.get("unused_grants").is_none(), "the manifest grants nothing unused: {report}");
    assert!(report.get("wider_grants").is_none(), "nor anything wider than used: {report}");
    assert_eq!(report["learned"]["endpoints"]["pd"]["methods"]["POST"], serde_json::json!(["/pd/api/v1/operators"]));
}

/// Each flawed copy of the TiKV adapter fails the rule it breaks, and only that rule, with a
/// message that names what it did.
#[test]
fn each_flawed_adapter_fails_exactly_the_rule_it_breaks() {
    let flaws = [
        ("flawed-unsorted", "hot-regions-sorted", "not highest first"),
        ("flawed-over-limit", "hot-regions-limit", "11 regions for limit 10"),
        (
            "flawed-swallows-errors",
            "errors-named",
            "returned a success (0 stores) although every request met `connection-refused`",
        ),
        ("flawed-ungranted", "within-grants", "/pd/api/v1/config"),
        ("flawed-unconfirmed", "transfer-truthful", "but the cluster's leader of region"),
        ("flawed-float-ids", "ids-exact", "went through floating point"),
        ("flawed-describe-io", "describe-pure", "describe tried a request: path `/pd/api/v1/version`"),
        ("flawed-slow", "fast-enough", "of guest time; this suite allows 1.00s"),
    ];
    let paths: Vec<PathBuf> = flaws.iter().map(|(c, _, _)| test_component(c)).collect();
    // The runs wait on the simulator most of the time: run them side by side.
    let handles: Vec<_> = paths
        .iter()
        .map(|p| {
            let (p, m) = (p.clone(), manifest());
            std::thread::spawn(move || {
                run(operator().arg("check").arg(&p).arg("--manifest").arg(&m).args(["--output", "json"]))
            })
        })
        .collect();
    for ((component, rule, message), h) in flaws.iter().zip(handles) {
        let r = h.join().expect("a check run");
        r.expect_code(1);
        let report = json(&r);
        assert_eq!(failed_rules(&report), BTreeSet::from([rule.to_string()]), "{component}: {}", report["summary"]);
        let details: Vec<String> = report["results"]
            .as_array()
            .expect("results")
            .iter()
            .flat_map(|c| c["findings"].as_array().expect("findings").iter())
            .filter(|f| f["passed"] == false)
            .map(|f| f["detail"].as_str().expect("detail").to_string())
            .collect();
        assert!(details.iter().any(|d| d.contains(message)), "{component}: no finding says {message:?}: {details:#?}");
    }
}

#[test]
fn an_adapter_without_a_manifest_is_told_which_grants_it_needs_and_learn_prints_them_as_a_manifest() {
    let flawed = test_component("flawed-ungranted");
    // One screen: every case, what each operation costs, what it touched, a verdict.
    let r = check(&[flawed.to_str().expect("utf-8")]);
    r.expect_code(0)
        .stdout_has("grants   none given (no manifest)")
        .stdout_has("What each operation costs")
        .stdout_has("GET     pd          /pd/api/v1/config")
        .stdout_has("The grants it needs")
        .stdout_has("PASS: ");
    assert!(r.stdout.lines().count() < 60, "more than a screen:\n{}", r.stdout);

    let r = check(&[flawed.to_str().expect("utf-8"), "--learn"]);
    r.expect_code(0).stderr_has("PASS");
    let section = &r.stdout;
    assert!(section.starts_with("[endpoints.pd]\n"), "{section}");
    assert!(section.contains("\"/pd/api/v1/config\""), "{section}");
    assert!(section.contains("\"/pd/api/v1/region/id/\""), "ids are generalised to their prefix: {section}");
    assert!(section.contains("{ methods = [\"POST\"], paths = [\"/pd/api/v1/operators\"] }"), "{section}");
    // The section is a manifest the adapter then passes with (the placeholder URL aside).
    let dir = tempfile::tempdir().expect("tempdir");
    let learned = dir.path().join("learned.toml");
    std::fs::write(&learned, section.replace("http://CHANGE-ME", "http://127.0.0.1:9")).expect("write");
    check(&[flawed.to_str().expect("utf-8"), "--manifest", learned.to_str().expect("utf-8")]).expect_code(0);
    // With the project's manifest the same adapter is refused its extra request.
    check(&[flawed.to_str().expect("utf-8"), "--manifest", manifest().to_str().expect("utf-8")])
        .expect_code(1)
        .stdout_has("within-grants");
}

#[test]
fn known_failures_are_honoured_and_reported_and_junit_carries_them() {
    let flawed = test_component("flawed-unsorted");
    let dir = tempfile::tempdir().expect("tempdir");
    let known = dir.path().join("known.toml");
    std::fs::write(
        &known,
        "[[known]]\ncase = \"hot-regions\"\nreason = \"reversed on purpose\"\n\n\
         [[known]]\ncase = \"hot-regions-all/get-hot-write-regions\"\nreason = \"the same\"\n\n\
         [[known]]\ncase = \"hot-regoins\"\nreason = \"a typo\"\n",
    )
    .expect("write");
    let args = |extra: &[&str]| {
        let mut a = vec![flawed.to_str().expect("utf-8").to_string(), "--manifest".into(), TIKV_MANIFEST.into()];
        a.extend(["--known-failures".to_string(), known.to_str().expect("utf-8").to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let r = run(operator().current_dir(crate::harness::root()).arg("check").args(args(&[])));
    r.expect_code(0)
        .stdout_has("known   hot-regions-sorted  known: reversed on purpose")
        .stdout_has("`hot-regoins`, which is no case of this suite")
        .stdout_has("2 known failures");

    let r = run(operator().current_dir(crate::harness::root()).arg("check").args(args(&["--output", "junit"])));
    r.expect_code(0);
    let xml = &r.stdout;
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "), "{xml}");
    assert!(xml.contains("failures=\"0\" skipped=\"2\""), "{xml}");
    assert!(
        xml.contains("<skipped message=\"known failure: reversed on purpose\">hot-regions-sorted: region"),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 36, "{xml}");

    // Without the file the same adapter fails, and JUnit says so.
    let r = check(&[flawed.to_str().expect("utf-8"), "--manifest", manifest().to_str().expect("utf-8"), "-o", "junit"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("failures=\"2\"") && r.stdout.contains("<failure message=\"hot-regions-sorted: region"),
        "{}",
        r.stdout
    );
}

#[test]
fn cases_from_a_folder_are_added_and_a_broken_one_names_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("top-three.toml"),
        "about = \"the three hottest, sorted\"\ncall = \"get-hot-write-regions\"\nlimit = 3\n\
         rules = [\"answers\", \"hot-regions-sorted\", \"hot-regions-limit\"]\n",
    )
    .expect("write");
    let r = check(&["tikv", "--cases", dir.path().to_str().expect("utf-8"), "-o", "json"]);
    r.expect_code(0);
    let report = json(&r);
    let mine: Vec<&Value> =
        report["results"].as_array().expect("results").iter().filter(|c| c["case"] == "top-three").collect();
    assert_eq!(mine.len(), 1, "{report}");
    assert!(mine[0]["findings"].to_string().contains("3 regions for limit 3"), "{}", mine[0]);

    std::fs::write(dir.path().join("broken.toml"), "about = \"x\"\ncall = \"get-stores\"\nrules = [\"sorted-ish\"]\n")
        .expect("write");
    check(&["tikv", "--cases", dir.path().to_str().expect("utf-8")])
        .expect_code(1)
        .stderr_has("broken.toml")
        .stderr_has("sorted-ish");
}

#[test]
fn check_contains_an_adapter_that_spins_traps_and_floods() {
    let hostile = test_component("hostile-adapter");
    let r = run(operator().current_dir(crate::harness::root()).arg("check").arg(&hostile).args([
        "--manifest",
        TIKV_MANIFEST,
        "--deadline",
        "300ms",
        "--output-limit",
        "1MiB",
        "-o",
        "json",
    ]));
    r.expect_code(1);
    let report = json(&r);
    let rules = failed_rules(&report);
    assert!(rules.contains("no-trap") && rules.contains("within-limits"), "{rules:?}");
    let text = report.to_string();
    assert!(text.contains("deadline-exceeded") && text.contains("trap") && text.contains("output-too-large"), "{text}");
}

#[test]
fn a_policy_suite_passes_the_projects_policies_and_a_required_parameter_is_asked_for() {
    check(&["hot-write-balance"]).expect_code(0).stdout_has("decide-one-store-leads").stdout_has("PASS: 6 of 6");
    evict_leader_component();
    check(&["evict-leader"]).expect_code(2).stderr_has("store is required").stderr_has("stores 1, 2, 3");
    check(&["evict-leader", "--param", "nope=1"]).expect_code(2).stderr_has("no parameter `nope`");
    let r = check(&["evict-leader", "--param", "store=1", "-o", "json"]);
    r.expect_code(0);
    let report = json(&r);
    assert_eq!(report["contract"], "policy");
    assert!(report["results"].to_string().contains("at rest after"), "{report}");
}

#[test]
fn check_refuses_what_does_not_apply_with_a_usage_error() {
    check(&["hot-write-balance", "--learn"]).expect_code(2).stderr_has("a policy makes no request");
    check(&["tikv", "--learn", "--endpoint", "pd=http://127.0.0.1:9"])
        .expect_code(2)
        .stderr_has("only done on the simulator");
    check(&["tikv", "--param", "a=1"]).expect_code(2).stderr_has("--param is for policies");
    check(&["tikv", "--subject", "etcd"]).expect_code(2).stderr_has("this is no driver");
    check(&["compose", "--learn", "--subject", "etcd"])
        .expect_code(2)
        .stderr_has("a deployment driver reaches Docker only");
    check(&["no-such-component"]).expect_code(2);
    run(operator().args(["components", "--output", "junit"]))
        .expect_code(2)
        .stderr_has("--output junit is for `operator check`");
    let hostile = test_component("hostile");
    check(&[hostile.to_str().expect("utf-8")]).expect_code(2).stderr_has("exports none of the operator's contracts");
    // A run in which no case could run checked nothing, and does not pass.
    check(&["tikv", "--contract", "deployment-target", "--subject", "etcd"])
        .expect_code(1)
        .stdout_has("contract-mismatch")
        .stdout_has("NOTHING CHECKED");
    // The whole run has a budget, whatever the component spends.
    check(&["tikv", "--run-timeout", "1s"]).expect_code(1).stderr_has("the check took longer than --run-timeout 1s");
}

/// A one-service project with a healthcheck, a named volume and the default network.
const MINI_PROJECT: &str = r#"
services:
  kv:
    image: operator/etcd:3.4.23-debian
    command: ["etcd", "--data-dir=/var/lib/etcd"]
    healthcheck:
      test: ["CMD", "etcdctl", "--endpoints=http://127.0.0.1:2379", "endpoint", "health"]
      interval: 1s
      timeout: 2s
      retries: 30
    volumes:
      - data:/var/lib/etcd
volumes:
  data:
"#;

/// The project a deployment check used (`project opcheck-<pid>` in its cluster line).
fn check_project(report: &Value) -> String {
    let cluster = report["cluster"].as_str().expect("cluster");
    let start = cluster.find("project ").expect("a project") + "project ".len();
    cluster[start..].split_whitespace().next().expect("a name").to_string()
}

#[test]
fn check_passes_the_compose_driver_on_a_real_project_and_leaves_nothing() {
    let _lock = crate::deploy::docker_lock();
    crate::deploy::etcd_images();
    let (subjects, _) = crate::deploy::project_dir(MINI_PROJECT, None);
    let r = run(operator().arg("--subjects-dir").arg(subjects.path()).args([
        "check",
        "compose",
        "--subject",
        "case",
        "-o",
        "json",
    ]));
    let report = json(&r);
    let project = check_project(&report);
    r.expect_code(0);
    assert_eq!(report["contract"], "deployment-target");
    let cases: Vec<(&str, &str)> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| (c["case"].as_str().expect("case"), c["status"].as_str().expect("status")))
        .collect();
    assert_eq!(
        cases,
        [
            ("1-up", "pass"),
            ("2-up-again", "pass"),
            ("3-status", "pass"),
            ("4-logs", "pass"),
            ("5-restart", "pass"),
            ("6-down", "pass"),
            ("7-down-again", "pass")
        ],
        "{report}"
    );
    assert!(report.to_string().contains("untouched"), "the second up is judged by the engine: {report}");
    assert_eq!(crate::deploy::leftovers(&project), Vec::<String>::new());
    // The check needs a project to deploy, and says so.
    check(&["compose"]).expect_code(2).stderr_has("--subject NAME");
}

#[test]
fn a_driver_that_lies_and_leaves_resources_fails_and_the_check_removes_what_it_left() {
    let _lock = crate::deploy::docker_lock();
    crate::deploy::etcd_images();
    // The hostile driver's `up` creates the project's network, tries a container without one
    // and reports a failure; its `down` removes nothing and says Ok.
    let compose = "services:\n  a:\n    image: operator/etcd:3.4.23-debian\nx-attack: no-network\n";
    let (subjects, _) = crate::deploy::project_dir(compose, None);
    let driver = test_component("hostile-driver");
    let r = run(operator().arg("--subjects-dir").arg(subjects.path()).arg("check").arg(&driver).args([
        "--subject",
        "case",
        "-o",
        "json",
    ]));
    let report = json(&r);
    let project = check_project(&report);
    r.expect_code(1).stderr_has("the check removed it at the engine");
    let rules = failed_rules(&report);
    assert_eq!(rules, BTreeSet::from(["answers".to_string(), "down-leaves-nothing".to_string()]), "{report}");
    assert!(report.to_string().contains("left behind: networks"), "{report}");
    assert_eq!(crate::deploy::leftovers(&project), Vec::<String>::new());
    crate::deploy::scrub(&project);
}

/// On the simulator only the simulator's endpoints are granted: a manifest's other endpoints
/// would point at a real cluster, so nothing may reach them.
#[test]
fn on_the_simulator_an_endpoint_it_does_not_serve_is_never_reached() {
    crate::harness::etcd_component();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("addr").port();
    let text = std::fs::read_to_string(crate::harness::root().join("subjects/etcd/operator.toml")).expect("read");
    let text = text
        .replace("127.0.0.1:22379", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:32379", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:2379", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("operator.toml");
    std::fs::write(&manifest, text).expect("write");
    let r = check(&["etcd", "--manifest", manifest.to_str().expect("utf-8"), "-o", "json"]);
    let report = json(&r);
    r.expect_code(1);
    assert!(report["notes"].to_string().contains("etcd1, etcd2, etcd3 are not served here"), "{}", report["notes"]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something reached the manifest's endpoint: {other:?}"),
    }
}
