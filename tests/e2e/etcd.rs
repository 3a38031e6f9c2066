//! The Python etcd adapter (`components/etcd`) against a real three-member etcd 3.4 cluster of
//! local processes (Debian's etcd-server) with a real Prometheus scraping it. The same adapter
//! through `operator deploy local up etcd` is covered in `deploy.rs`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    Run, etcd_binaries, etcd_component, evict_leader_component, free_ports, http_get, http_post, operator, run,
};

/// One etcd member process.
struct Member {
    name: String,
    client: u16,
    child: Option<Child>,
}

/// A three-member etcd cluster and a Prometheus on free loopback ports, killed on drop.
struct LocalEtcd {
    members: Vec<Member>,
    prometheus: u16,
    prometheus_child: Child,
    dir: tempfile::TempDir,
}

impl LocalEtcd {
    fn start() -> LocalEtcd {
        etcd_component();
        let bin = etcd_binaries();
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(7);
        let token = format!("e2e-{}-{}", std::process::id(), ports[0]);
        let initial: Vec<String> =
            (0..3).map(|i| format!("n{}=http://127.0.0.1:{}", i + 1, ports[2 * i + 1])).collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let (client, peer) = (ports[2 * i], ports[2 * i + 1]);
            let child = spawn_logged(
                Command::new(bin.join("etcd")).args([
                    &format!("--name={name}"),
                    &format!("--data-dir={}", dir.path().join(&name).display()),
                    &format!("--listen-client-urls=http://127.0.0.1:{client}"),
                    &format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                    &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                    &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                    &format!("--initial-cluster={initial}"),
                    &format!("--initial-cluster-token={token}"),
                    "--initial-cluster-state=new",
                    "--logger=zap",
                    "--log-outputs=stderr",
                ]),
                &dir.path().join(format!("{name}.log")),
            );
            members.push(Member { name, client, child: Some(child) });
        }
        let prometheus = ports[6];
        let targets: Vec<String> = members.iter().map(|m| format!("\"127.0.0.1:{}\"", m.client)).collect();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: etcd\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let prometheus_child = spawn_logged(
            Command::new(bin.join("prometheus")).args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                &format!("--web.listen-address=127.0.0.1:{prometheus}"),
            ]),
            &dir.path().join("prometheus.log"),
        );
        let cluster = LocalEtcd { members, prometheus, prometheus_child, dir };
        cluster.wait_for_leader(None);
        cluster
    }

    /// Waits (a liveness bound, not a speed check) until every running member names the same
    /// leader, other than `not`; returns it.
    fn wait_for_leader(&self, not: Option<u64>) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let leaders: Vec<Option<u64>> = self
                .members
                .iter()
                .filter(|m| m.child.is_some())
                .map(|m| status(m.client).and_then(|s| s["leader"].as_str().and_then(|l| l.parse().ok())))
                .collect();
            if let Some(Some(first)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*first))
                && Some(*first) != not
            {
                return *first;
            }
            assert!(Instant::now() < deadline, "no common leader within 60 s: {leaders:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn member_id(&self, index: usize) -> u64 {
        let s = status(self.members[index].client).expect("member answers");
        s["header"]["member_id"].as_str().and_then(|v| v.parse().ok()).expect("member_id")
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoints(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            args.push("--endpoint".to_string());
            args.push(format!("etcd{}=http://127.0.0.1:{}", i + 1, m.client));
        }
        args.push("--endpoint".into());
        args.push(format!("prometheus=http://127.0.0.1:{}", self.prometheus));
        args
    }

    fn subject(&self, args: &[&str]) -> Run {
        run(operator().args(["subject", "etcd"]).args(args).args(self.endpoints()))
    }

    fn subject_json(&self, args: &[&str]) -> Value {
        let r = self.subject(&[args, &["--output", "json"]].concat());
        r.expect_code(0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
    }

    /// Waits until Prometheus has scraped every member at least twice, so rates exist.
    fn wait_for_scrapes(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = format!("127.0.0.1:{}", self.prometheus).parse().expect("addr");
        loop {
            let body = http_get(addr, "/api/v1/query?query=count(count_over_time(up%5B1m%5D)%20%3E%3D%202)");
            if body.contains("\"value\":[") && body.contains(",\"3\"]") {
                return;
            }
            assert!(Instant::now() < deadline, "Prometheus did not scrape the members: {body}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        let names = self.members.iter().map(|m| m.name.as_str()).chain(["prometheus"]);
        for name in names {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            out += &format!("--- {name}.log (last lines)\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        out
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = self.prometheus_child.kill();
        let _ = self.prometheus_child.wait();
    }
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    let err = file.try_clone().expect("clone log file");
    cmd.stdin(Stdio::null()).stdout(file).stderr(err).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// A member's own `/v3/maintenance/status`, if it answers.
fn status(port: u16) -> Option<Value> {
    let probe = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
    probe.ok()?;
    let (code, body) = http_post(port, "/v3/maintenance/status", "{}");
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("an id that is a JSON integer: {v}"))
}

fn store(stores: &Value, id: u64) -> &Value {
    stores
        .as_array()
        .expect("array")
        .iter()
        .find(|s| id_of(s) == id)
        .unwrap_or_else(|| panic!("no store {id}: {stores}"))
}

#[test]
fn etcd_stores_are_the_three_members_with_exactly_one_leader() {
    let cluster = LocalEtcd::start();
    let stores = cluster.subject_json(&["stores"]);
    let list = stores.as_array().expect("array");
    assert_eq!(list.len(), 3, "{stores}");
    let expected: Vec<u64> = (0..3).map(|i| cluster.member_id(i)).collect();
    for id in &expected {
        let s = store(&stores, *id);
        assert_eq!(s["state"], "up", "{s}");
        assert_eq!(s["version"], "3.4.23", "{s}");
        assert!(s["used_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
        assert_eq!(s["region_count"], 1, "{s}");
        // etcd's default backend quota (2 GiB), read from the member's own /metrics.
        assert_eq!(s["capacity_bytes"], 2u64 << 30, "{s}");
        let available = s["available_bytes"].as_u64().unwrap_or(0);
        assert_eq!(available, (2u64 << 30) - s["used_bytes"].as_u64().unwrap_or(0), "{s}");
    }
    let leaders: Vec<u64> = list.iter().filter(|s| s["leader_count"] == 1).map(id_of).collect();
    assert_eq!(leaders, vec![cluster.wait_for_leader(None)], "{stores}");
    let n1 = store(&stores, expected[0]);
    assert_eq!(n1["address"], format!("127.0.0.1:{}", cluster.members[0].client));
    assert!(n1["labels"].to_string().contains("\"n1\""), "{n1}");

    // The table form names the members too.
    cluster.subject(&["stores"]).expect_code(0).stdout_has("name=n2").stdout_has("up");
}

#[test]
fn etcd_transfer_leader_moves_leadership_and_the_next_observation_shows_it() {
    let cluster = LocalEtcd::start();
    let leader = cluster.wait_for_leader(None);
    let target = (0..3).map(|i| cluster.member_id(i)).find(|id| *id != leader).expect("a follower");

    let moved = cluster.subject_json(&["transfer-leader", "1", &target.to_string()]);
    assert_eq!(moved["confirmed"], true, "{moved}");
    assert_eq!(moved["from_store_id"].as_u64(), Some(leader), "{moved}");
    assert_eq!(moved["to_store_id"].as_u64(), Some(target), "{moved}");

    let stores = cluster.subject_json(&["stores"]);
    assert_eq!(store(&stores, target)["leader_count"], 1, "{stores}");
    assert_eq!(store(&stores, leader)["leader_count"], 0, "{stores}");
    let regions = cluster.subject_json(&["hot-write-regions"]);
    assert_eq!(regions[0]["leader_store_id"].as_u64(), Some(target), "{regions}");

    // Refusals: an id that is no member, a region that does not exist, and a real etcd refusal
    // (a learner that never started cannot take the lead).
    cluster
        .subject(&["transfer-leader", "1", "12345"])
        .expect_code(1)
        .stderr_has("not-found")
        .stderr_has("no member with id 12345");
    cluster.subject(&["transfer-leader", "2", &leader.to_string()]).expect_code(1).stderr_has("single raft group");
    // etcd refuses membership changes until every member has been connected for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (code, body) = http_post(
            cluster.members[0].client,
            "/v3/cluster/member/add",
            r#"{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}"#,
        );
        if code == 200 {
            break body;
        }
        assert!(body.contains("unhealthy cluster") && Instant::now() < deadline, "member add: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let added: Value = serde_json::from_str(&body).expect("json");
    let learner = added["member"]["ID"].as_str().expect("learner id");
    cluster
        .subject(&["transfer-leader", "1", learner])
        .expect_code(1)
        .stderr_has("rejected")
        .stderr_has("etcdserver: bad leader transferee");
    let stores = cluster.subject_json(&["stores"]);
    let learner_store = store(&stores, learner.parse().expect("u64"));
    assert_eq!(learner_store["state"], "unknown", "{learner_store}");
    assert!(learner_store["labels"].to_string().contains("learner"), "{learner_store}");
}

/// One round of `operator run etcd --policy evict-leader --param store=<member> --apply`.
fn evict_round(cluster: &LocalEtcd, member: u64, audit: &Path) -> Value {
    let r = run(operator()
        .args(["run", "etcd", "--policy", "evict-leader", "--param", &format!("store={member}")])
        // The forced return comes right after the first move: no cooldown between them.
        .args(["--apply", "--rounds", "1", "--region-cooldown", "0s", "--output", "json", "--audit"])
        .arg(audit)
        .args(cluster.endpoints()));
    serde_json::from_str(r.expect_code(0).stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

#[test]
fn etcd_evict_leader_moves_the_leader_off_the_member_and_again_after_it_is_forced_back() {
    let cluster = LocalEtcd::start();
    evict_leader_component();
    let evicted = cluster.wait_for_leader(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");

    let round = evict_round(&cluster, evicted, &audit);
    let actions = round["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{round}");
    assert_eq!(actions[0]["verdict"], "applied", "{round}");
    assert_eq!(actions[0]["region_id"], 1, "{round}");
    let first = cluster.wait_for_leader(Some(evicted));
    assert_eq!(actions[0]["to_store_id"].as_u64(), Some(first), "{round}");

    // Someone moves the leader back; the next round moves it off again.
    let back = cluster.subject_json(&["transfer-leader", "1", &evicted.to_string()]);
    assert_eq!(back["confirmed"], true, "{back}");
    let round = evict_round(&cluster, evicted, &audit);
    let actions = round["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{round}");
    assert_eq!(actions[0]["verdict"], "applied", "{round}");
    assert_ne!(actions[0]["to_store_id"].as_u64(), Some(evicted), "{round}");
    cluster.wait_for_leader(Some(evicted));

    // With the leader elsewhere, a round has nothing to do.
    let round = evict_round(&cluster, evicted, &audit);
    assert_eq!(round["actions"].as_array().map(Vec::len), Some(0), "{round}");
    assert_eq!(round["round"], 3, "the audit log carries the round count across runs: {round}");
}

#[test]
fn etcd_through_mcp_an_assistant_reads_the_members_and_moves_the_leader_once_the_person_accepts() {
    use crate::mcp::{Mode, Person, session};
    let cluster = LocalEtcd::start();
    let leader = cluster.wait_for_leader(None);
    let target = (0..3).map(|i| cluster.member_id(i)).find(|id| *id != leader).expect("a follower");
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let mut args = vec!["--subject".to_string(), "etcd".into(), "--audit".into(), audit.display().to_string()];
    args.extend(cluster.endpoints());
    let r = session(
        Mode::Auto,
        Person::Accepts,
        &args,
        serde_json::json!([
            {"tool": "get_stores", "args": {"subject": "etcd"}},
            {"tool": "get_hot_write_regions", "args": {"subject": "etcd"}},
            {"tool": "transfer_leader", "args": {"subject": "etcd", "region_id": 1, "to_store_id": target}},
        ]),
    );
    assert_eq!(r[0]["structured"]["stores"].as_array().map(Vec::len), Some(3), "{}", r[0]);
    assert_eq!(r[1]["structured"]["regions"][0]["leader_store_id"].as_u64(), Some(leader), "{}", r[1]);
    assert_eq!(r[2]["is_error"], false, "{}", r[2]);
    assert_eq!(r[2]["structured"]["verdict"], "applied", "{}", r[2]);
    assert_eq!(r[2]["asked"].as_array().map(Vec::len), Some(1), "{}", r[2]);
    assert_eq!(cluster.wait_for_leader(Some(leader)), target);
    let log = std::fs::read_to_string(&audit).expect("audit");
    assert!(log.contains("\"policy\":\"mcp: e2e-assistant\"") && log.contains("\"event\":\"outcome\""), "{log}");
}

#[test]
fn etcd_with_its_leader_killed_shows_it_down_and_still_answers() {
    let mut cluster = LocalEtcd::start();
    let leader = cluster.wait_for_leader(None);
    let index = (0..3).find(|i| cluster.member_id(*i) == leader).expect("leader index");
    cluster.kill(index);

    // Right away, before or during the election, the adapter answers and names the dead member.
    let stores = cluster.subject_json(&["stores"]);
    assert_eq!(stores.as_array().map(Vec::len), Some(3), "{stores}");
    let dead = store(&stores, leader);
    assert_eq!(dead["state"], "down", "{dead}");
    assert!(dead["details"].to_string().contains("did not answer"), "{dead}");

    // Once the survivors elect a leader, the adapter shows it.
    let new_leader = cluster.wait_for_leader(Some(leader));
    let stores = cluster.subject_json(&["stores"]);
    assert_eq!(store(&stores, new_leader)["leader_count"], 1, "{stores}");
    assert_eq!(store(&stores, leader)["state"], "down", "{stores}");
    let alive: Vec<&Value> = stores.as_array().expect("array").iter().filter(|s| id_of(s) != leader).collect();
    assert!(alive.iter().all(|s| s["state"] == "up"), "{stores}");
    let metrics = cluster.subject_json(&["metrics"]);
    assert_eq!(metrics["store_count"], 3, "{metrics}");
}

#[test]
fn etcd_hot_write_regions_and_metrics_carry_the_write_rate_from_prometheus() {
    let cluster = LocalEtcd::start();
    cluster.wait_for_scrapes();
    // Writes spread over a few scrapes, so the rate over the last minute is positive.
    let deadline = Instant::now() + Duration::from_secs(60);
    let region = loop {
        for i in 0..20 {
            let (code, body) =
                http_post(cluster.members[i % 3].client, "/v3/kv/put", r#"{"key":"aG90","value":"dmFsdWU="}"#);
            assert_eq!(code, 200, "{body}");
        }
        let regions = cluster.subject_json(&["hot-write-regions", "--limit", "5"]);
        assert_eq!(regions.as_array().map(Vec::len), Some(1), "one raft group: {regions}");
        let region = regions[0].clone();
        if region["write_bytes_per_second"].as_f64().unwrap_or(0.0) > 0.0 {
            break region;
        }
        assert!(Instant::now() < deadline, "no write rate within 60 s: {region}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(region["id"], 1);
    assert_eq!(region["peer_store_ids"].as_array().map(Vec::len), Some(3), "{region}");
    assert!(region["write_keys_per_second"].as_f64().unwrap_or(0.0) > 0.0, "{region}");
    assert!(region["approximate_size_bytes"].as_u64().unwrap_or(0) > 0, "{region}");
    assert_eq!(region["leader_store_id"].as_u64(), Some(cluster.wait_for_leader(None)), "{region}");

    let metrics = cluster.subject_json(&["metrics"]);
    assert_eq!(metrics["region_count"], 1);
    let samples = metrics["samples"].as_array().expect("samples");
    let named = |name: &str| samples.iter().filter(|s| s["name"] == name).count();
    assert_eq!(named("db-size-bytes"), 3, "{metrics}");
    assert_eq!(named("has-leader"), 3, "from Prometheus, one per member: {metrics}");
    assert!(named("wal-fsync-p99-seconds") >= 1, "{metrics}");
    let has_leader = samples.iter().find(|s| s["name"] == "has-leader").expect("has-leader");
    assert!(has_leader["labels"].to_string().contains("\"member\""), "{has_leader}");
    assert_eq!(metrics["leaders_per_store"].as_array().map(|l| l.iter().filter(|c| c["count"] == 1).count()), Some(1));
    assert_eq!(cluster.subject_json(&["hot-write-regions", "--limit", "0"]), Value::Array(Vec::new()));
}

#[test]
fn etcd_without_prometheus_still_answers_and_warns() {
    let cluster = LocalEtcd::start();
    let mut args = cluster.endpoints();
    let last = args.len() - 1;
    args[last] = format!("prometheus=http://127.0.0.1:{}", free_ports(1)[0]);
    let r = run(operator().args(["subject", "etcd", "hot-write-regions", "--output", "json"]).args(&args));
    r.expect_code(0).stderr_has("write rates unavailable");
    let regions: Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(regions[0]["write_bytes_per_second"], Value::Null, "{regions}");
}

#[test]
fn etcd_with_no_member_reachable_is_unreachable_naming_each_endpoint() {
    etcd_component();
    let ports = free_ports(4);
    let r = run(operator().args(["subject", "etcd", "stores"]).args([
        "--endpoint",
        &format!("etcd1=http://127.0.0.1:{}", ports[0]),
        "--endpoint",
        &format!("etcd2=http://127.0.0.1:{}", ports[1]),
        "--endpoint",
        &format!("etcd3=http://127.0.0.1:{}", ports[2]),
        "--endpoint",
        &format!("prometheus=http://127.0.0.1:{}", ports[3]),
    ]));
    r.expect_code(1).stderr_has("unreachable").stderr_has("no etcd member answered").stderr_has("etcd3");
}

#[test]
fn the_python_component_implements_the_subject_world_and_needs_nothing_the_sandbox_lacks() {
    etcd_component();
    let r = run(operator().args(["inspect", "etcd", "--output", "json"]));
    r.expect_code(0);
    let doc: Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(doc["world"]["contract"], "subject-adapter", "{doc}");
    assert!(doc["grants"].to_string().contains("/v3/maintenance/status"), "the etcd subject's grants: {doc}");
    let imports = doc["world"]["imports"].as_array().expect("imports");
    assert!(imports.iter().any(|i| i["name"].as_str().is_some_and(|n| n.starts_with("operator:core/http"))), "{doc}");
    for import in imports {
        let name = import["name"].as_str().unwrap_or_default();
        let host = import["host"].as_str().unwrap_or_default();
        assert!(!name.contains("docker") && !name.starts_with("wasi:http"), "{name}");
        assert!(!host.starts_with("NOT PROVIDED"), "{name}: {host}");
    }
}

#[test]
fn etcd_check_passes_every_case_that_applies_against_the_real_cluster() {
    let cluster = LocalEtcd::start();
    let r = run(operator().args(["check", "etcd", "--allow-writes", "--output", "json"]).args(cluster.endpoints()));
    let report: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr));
    r.expect_code(0);
    assert_eq!(report["summary"]["failed"], 0, "{}", report["summary"]);
    assert!(
        report["cluster"].as_str().expect("cluster").starts_with("real endpoints: etcd1="),
        "{}",
        report["cluster"]
    );
    // What cannot apply says why: the simulator's own truth, and a store without a peer (etcd
    // is one raft group on every member).
    let not_run: Vec<(String, String)> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|c| c["status"] == "not-run")
        .map(|c| {
            (c["case"].as_str().unwrap_or_default().to_string(), c["reason"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    assert!(not_run.iter().any(|(c, why)| c == "ids-above-2-53" && why.contains("simulator")), "{not_run:?}");
    assert!(
        not_run.iter().any(|(c, why)| c == "transfer-to-non-peer" && why.contains("every up store holds a peer")),
        "{not_run:?}"
    );
    assert!(not_run.len() <= 5, "{not_run:?}");
    // The leader really moved to a follower (an etcd member), and the faults were each named.
    let transfer = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|c| c["case"] == "transfer-to-follower")
        .expect("the transfer case");
    assert_eq!(transfer["status"], "pass", "{transfer}");
    assert!(
        report["summary"]["requests"].to_string().contains("/v3/maintenance/transfer-leadership"),
        "{}",
        report["summary"]
    );
    // Without --allow-writes, nothing that changes the cluster runs against it.
    let r = run(operator().args(["check", "etcd", "--output", "json"]).args(cluster.endpoints()));
    let report: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let writes = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|c| c["case"].as_str().is_some_and(|n| n.starts_with("transfer-to-")))
        .all(|c| c["reason"].as_str().is_some_and(|w| w.contains("--allow-writes")));
    assert!(writes, "{report}");
}
