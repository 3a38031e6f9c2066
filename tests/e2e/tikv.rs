//! The TiKV subject end to end: `operator subject tikv ...` running the sandboxed adapter
//! against the simulator, and against PD/Prometheus stand-ins that are down, slow or wrong.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Behaviour, Sim, http_get, http_server, operator, root, run};

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().expect("array").iter().map(|s| s["id"].as_u64().expect("id")).collect()
}

#[test]
fn stores_lists_every_store_with_state_sizes_and_counts() {
    let sim = Sim::start(Default::default());
    let stores = sim.subject_json(&["stores"]);
    assert_eq!(ids(&stores), vec![1, 4, 5]);
    for s in stores.as_array().expect("array") {
        assert_eq!(s["state"], "up");
        assert_eq!(s["version"], "8.5.5");
        assert!(s["capacity_bytes"].as_u64().expect("capacity") > 1_700_000_000_000);
        assert!(s["used_bytes"].as_u64().expect("used") > 0);
        assert_eq!(s["region_count"], 64);
    }
    let leaders: u64 = stores.as_array().expect("array").iter().map(|s| s["leader_count"].as_u64().expect("n")).sum();
    assert_eq!(leaders, 64, "every region has exactly one leader");
    run(operator().args(["subject", "tikv", "stores"]).args(sim.endpoints()))
        .expect_code(0)
        .stdout_has("ID  ADDRESS")
        .stdout_has("tikv1:20160");
}

#[test]
fn hot_write_regions_come_highest_write_flow_first() {
    let sim = Sim::start(Default::default());
    let regions = sim.subject_json(&["hot-write-regions", "--limit", "5"]);
    let list = regions.as_array().expect("array");
    assert_eq!(list.len(), 5);
    let rates: Vec<f64> = list.iter().map(|r| r["write_bytes_per_second"].as_f64().expect("rate")).collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
    for r in list {
        let leader = r["leader_store_id"].as_u64().expect("leader");
        let peers: Vec<u64> = r["peer_store_ids"].as_array().expect("peers").iter().filter_map(Value::as_u64).collect();
        assert!(peers.contains(&leader));
        assert!(r["written_bytes"].as_u64().expect("written") > 0);
        assert!(r["approximate_size_bytes"].as_u64().expect("size") >= 1 << 20);
    }
}

#[test]
fn metrics_combine_pd_counts_with_prometheus_samples() {
    let sim = Sim::start(Default::default());
    let m = sim.subject_json(&["metrics"]);
    assert_eq!(m["store_count"], 3);
    assert_eq!(m["region_count"], 64);
    assert_eq!(m["leaders_per_store"].as_array().expect("array").len(), 3);
    let samples = m["samples"].as_array().expect("samples");
    let names: std::collections::BTreeSet<&str> = samples.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in
        ["region-count", "leader-count", "write-bytes-per-second", "read-bytes-per-second", "storage-used-bytes"]
    {
        assert!(names.contains(name), "missing {name}: {names:?}");
    }
    let writes: f64 = samples
        .iter()
        .filter(|s| s["name"] == "write-bytes-per-second")
        .map(|s| s["value"].as_f64().expect("value"))
        .sum();
    assert!(writes > 0.0);
}

#[test]
fn transfer_leader_moves_the_leader_and_the_next_observation_shows_it() {
    let sim = Sim::start(tikv_simulator::Config { operator_delay: Duration::from_millis(300), ..Default::default() });
    let hottest = sim.subject_json(&["hot-write-regions", "--limit", "1"]);
    let region = &hottest[0];
    let id = region["id"].as_u64().expect("id");
    let leader = region["leader_store_id"].as_u64().expect("leader");
    let target = region["peer_store_ids"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(Value::as_u64)
        .find(|&s| s != leader)
        .expect("a follower");
    let before = sim.subject_json(&["stores"]);

    let t = sim.subject_json(&["transfer-leader", &id.to_string(), &target.to_string()]);
    assert_eq!(t["confirmed"], true, "{t}");
    assert_eq!(t["from_store_id"], leader);
    assert_eq!(t["to_store_id"], target);

    let after = sim.subject_json(&["hot-write-regions", "--limit", "64"]);
    let moved = after.as_array().expect("array").iter().find(|r| r["id"] == id).expect("region still listed");
    assert_eq!(moved["leader_store_id"], target);
    let count = |v: &Value, store: u64| {
        v.as_array().expect("array").iter().find(|s| s["id"] == store).expect("store")["leader_count"]
            .as_u64()
            .expect("n")
    };
    assert_eq!(count(&after_stores(&sim), target), count(&before, target) + 1);
}

fn after_stores(sim: &Sim) -> Value {
    sim.subject_json(&["stores"])
}

#[test]
fn pd_refusals_come_back_as_rejected_with_pds_message() {
    let sim = Sim::start(Default::default());
    let hottest = sim.subject_json(&["hot-write-regions", "--limit", "1"]);
    let id = hottest[0]["id"].as_u64().expect("id").to_string();
    let leader = hottest[0]["leader_store_id"].as_u64().expect("leader").to_string();
    let tikv = |args: &[&str]| run(operator().args(["subject", "tikv"]).args(args).args(sim.endpoints()));
    tikv(&["transfer-leader", &id, &leader]).expect_code(1).stderr_has("error: rejected: no operator step is built");
    tikv(&["transfer-leader", &id, "77"]).expect_code(1).stderr_has("error: rejected: region has no voter in store 77");
    tikv(&["transfer-leader", "999999", "1"])
        .expect_code(1)
        .stderr_has("error: rejected: [PD:region:ErrRegionNotFound]region 999999 not found");
    let r = tikv(&["transfer-leader", "999999", "1", "--output", "json"]);
    r.expect_code(1);
    let v: Value = serde_json::from_str(&r.stdout).expect("json error");
    assert_eq!(v["error"]["kind"], "rejected");
}

#[test]
fn a_stopped_store_turns_disconnected_then_down_and_the_adapter_still_answers() {
    let sim = Sim::start(tikv_simulator::Config {
        heartbeat: Duration::from_millis(200),
        disconnect_after: Duration::from_millis(500),
        down_after: Duration::from_millis(1500),
        ..Default::default()
    });
    sim.sim.cluster.lock().expect("cluster").stop_store(4);
    let state_of_4 = || {
        let stores = sim.subject_json(&["stores"]);
        stores.as_array().expect("array").iter().find(|s| s["id"] == 4).expect("store 4")["state"].clone()
    };
    let mut seen = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < give_up {
        let s = state_of_4();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "down" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen.contains(&Value::from("disconnected")), "{seen:?}");
    assert_eq!(seen.last(), Some(&Value::from("down")), "{seen:?}");
    // Its leaders moved to live peers, and it is no transfer target.
    let stores = sim.subject_json(&["stores"]);
    assert_eq!(stores.as_array().expect("array").iter().find(|s| s["id"] == 4).expect("store")["leader_count"], 0);
}

#[test]
fn the_simulator_says_it_is_a_simulator() {
    let sim = Sim::start(Default::default());
    let answer = http_get(sim.sim.pd, "/pd/api/v1/version");
    assert!(answer.contains("\"version\": \"v8.5.5-simulator\""), "{answer}");
}

#[test]
fn pd_down_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    run(operator().args(["subject", "tikv", "stores", "--endpoint", &format!("pd=http://{closed}")]))
        .expect_code(1)
        .stderr_has("error: unreachable: pd is unreachable: connection failed")
        .stderr_has(&format!("hint: endpoints in use: pd=http://{closed}/, prometheus=http://127.0.0.1:9090/"));
}

#[test]
fn pd_that_never_answers_is_unreachable_after_the_request_timeout() {
    let addr = http_server(Behaviour::Silent);
    run(operator().args(["subject", "tikv", "stores", "--endpoint", &format!("pd=http://{addr}")]))
        .expect_code(1)
        .stderr_has("error: unreachable: pd did not answer /pd/api/v1/stores: no complete response within 5s");
}

#[test]
fn pd_answering_garbage_is_a_bad_response() {
    let addr = http_server(Behaviour::Ok("<html><body>502 Bad Gateway</body></html>"));
    run(operator().args(["subject", "tikv", "stores", "--endpoint", &format!("pd=http://{addr}")]))
        .expect_code(1)
        .stderr_has("error: bad-response: pd /pd/api/v1/stores: unexpected answer");
    let addr = http_server(Behaviour::Status(
        500,
        "\"[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first\"\n",
    ));
    run(operator().args(["subject", "tikv", "stores", "--endpoint", &format!("pd=http://{addr}")]))
        .expect_code(1)
        .stderr_has("error: bad-response: pd /pd/api/v1/stores: HTTP 500: [PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped");
}

#[test]
fn prometheus_down_or_wrong_fails_metrics_clearly() {
    let sim = Sim::start(Default::default());
    let pd = format!("pd=http://{}", sim.sim.pd);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    run(operator().args([
        "subject",
        "tikv",
        "metrics",
        "--endpoint",
        &pd,
        "--endpoint",
        &format!("prometheus=http://{closed}"),
    ]))
    .expect_code(1)
    .stderr_has("error: unreachable: prometheus is unreachable");
    let silent = http_server(Behaviour::Silent);
    run(operator().args([
        "subject",
        "tikv",
        "metrics",
        "--endpoint",
        &pd,
        "--endpoint",
        &format!("prometheus=http://{silent}"),
    ]))
    .expect_code(1)
    .stderr_has("error: unreachable: prometheus did not answer /api/v1/query");
    let wrong = http_server(Behaviour::Status(503, "Service Unavailable"));
    run(operator().args([
        "subject",
        "tikv",
        "metrics",
        "--endpoint",
        &pd,
        "--endpoint",
        &format!("prometheus=http://{wrong}"),
    ]))
    .expect_code(1)
    .stderr_has("error: bad-response: prometheus /api/v1/query: HTTP 503");
}

#[test]
fn the_grants_allow_only_what_the_adapter_uses() {
    // A grant manifest without the operators path: transfer-leader is denied, with the line to add.
    let sim = Sim::start(Default::default());
    let text = std::fs::read_to_string(root().join("subjects/tikv/operator.toml")).expect("manifest");
    let narrowed = text.replace("  { methods = [\"POST\"], paths = [\"/pd/api/v1/operators\"] },\n", "");
    let (_dir, path) = crate::harness::manifest(&narrowed);
    run(operator()
        .args(["subject", "tikv", "transfer-leader", "2", "1", "--manifest"])
        .arg(&path)
        .args(sim.endpoints()))
    .expect_code(1)
    .stderr_has("error: denied: pd /pd/api/v1/operators: path `/pd/api/v1/operators` of endpoint `pd` is not granted")
    .stderr_has("to endpoints.pd.allow in");
}

#[test]
fn inspect_shows_the_tikv_adapter_and_its_grants() {
    run(operator().args(["inspect", "tikv"]))
        .expect_code(0)
        .stdout_has("implements the subject-adapter contract")
        .stdout_has("endpoint pd -> http://127.0.0.1:2379/")
        .stdout_has("POST         /pd/api/v1/operators");
    let r = run(operator().arg("components"));
    r.expect_code(0);
    let worlds: Vec<(&str, &str)> = r
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?, cols.next()?))
        })
        .collect();
    assert!(worlds.contains(&("tikv", "subject-adapter")), "{worlds:?}");
    assert!(worlds.contains(&("compose", "deployment-driver")), "{worlds:?}");
}

#[test]
fn the_compose_file_is_valid_for_docker_compose() {
    let file = root().join("subjects/tikv/docker-compose.yaml");
    let out = std::process::Command::new("docker-compose").arg("-f").arg(&file).args(["config", "-q"]).output();
    let out = out.expect("docker-compose is installed (CI installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_simulator_runs_as_a_container_image() {
    let script = root().join("subjects/tikv/simulator/build-image");
    let tag = "operator/tikv-simulator:e2e";
    let built = std::process::Command::new(&script).arg(tag).output().expect("run build-image");
    assert!(built.status.success(), "build-image failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let name = format!("operator-e2e-sim-{}", std::process::id());
    let started = std::process::Command::new("docker")
        .args(["run", "-d", "--rm", "--name", &name, "-p", "127.0.0.1::2379", "-p", "127.0.0.1::9090", tag])
        .output()
        .expect("docker run");
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let port = |p: &str| {
        let out = std::process::Command::new("docker").args(["port", &name, p]).output().expect("docker port");
        String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_string()
    };
    let (pd, prom) = (port("2379/tcp"), port("9090/tcp"));
    let endpoints =
        ["--endpoint".to_string(), format!("pd=http://{pd}"), "--endpoint".into(), format!("prometheus=http://{prom}")];
    // The server needs a moment after the container starts.
    let mut result = None;
    for _ in 0..50 {
        let r = run(operator().args(["subject", "tikv", "stores"]).args(&endpoints));
        if r.code == 0 {
            result = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = run(operator().args(["subject", "tikv", "metrics"]).args(&endpoints));
    let _ = std::process::Command::new("docker").args(["rm", "-f", &name]).output();
    result.expect("the containerized simulator answered").stdout_has("tikv1:20160");
    metrics.expect_code(0).stdout_has("write-bytes-per-second");
}
