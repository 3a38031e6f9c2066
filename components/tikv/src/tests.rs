//! Each PD/Prometheus wire quirk as its own case, replayed from recorded bodies in the shapes
//! PD v7.1–v8.5 and Prometheus 2.x emit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::*;
use crate::bindings::operator::core::http::{HttpError, Method, Request, Response};

/// A recorded answer: a status and body, or a transport error.
type Answer = Result<(u16, String), HttpError>;
/// Checks an error is the expected one.
type Expect = fn(&SubjectError) -> bool;

/// A transport that answers from recorded bodies, keyed by "METHOD endpoint path[?query]".
#[derive(Default)]
struct Recorded {
    routes: HashMap<String, Vec<Answer>>,
    sent: RefCell<Vec<String>>,
    clock: Cell<u64>,
}

impl Recorded {
    /// Adds an answer; several answers for one key are given in turn (the last repeats).
    fn on(mut self, key: &str, status: u16, body: &str) -> Self {
        self.routes.entry(key.into()).or_default().push(Ok((status, body.into())));
        self
    }

    fn fail(mut self, key: &str, error: HttpError) -> Self {
        self.routes.entry(key.into()).or_default().push(Err(error));
        self
    }
}

fn key_of(r: &Request) -> String {
    let method = match r.method {
        Method::Get => "GET",
        Method::Post => "POST",
        _ => "OTHER",
    };
    let mut key = format!("{method} {} {}", r.endpoint, r.path);
    if !r.query.is_empty() {
        let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        key.push('?');
        key.push_str(&q.join("&"));
    }
    key
}

impl Http for Recorded {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let key = key_of(request);
        let count = self.sent.borrow().iter().filter(|k| **k == key).count();
        self.sent.borrow_mut().push(key.clone());
        let answers = self.routes.get(&key).unwrap_or_else(|| panic!("no recorded answer for {key}"));
        let answer = answers[count.min(answers.len() - 1)].clone();
        answer.map(|(status, body)| Response { status, headers: vec![], body: body.into_bytes() })
    }

    fn sleep_ms(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    fn now_ms(&self) -> u64 {
        self.clock.get()
    }

    fn log(&self, _level: Level, _message: &str) {}
}

const STORES: &str = r#"{
  "count": 5,
  "stores": [
    {
      "store": {
        "id": 1,
        "address": "tikv1:20160",
        "version": "8.5.5",
        "peer_address": "tikv1:20160",
        "status_address": "tikv1:20180",
        "git_hash": "a1b2c3",
        "start_timestamp": 1735000000,
        "deploy_path": "/",
        "last_heartbeat": 1735003600123456789,
        "node_state": 1,
        "state_name": "Up"
      },
      "status": {
        "capacity": "1.636TiB",
        "available": "1.555TiB",
        "used_size": "79.3GiB",
        "leader_count": 7,
        "leader_weight": 1,
        "leader_score": 7,
        "leader_size": 7,
        "region_count": 21,
        "region_weight": 1,
        "region_score": 21.000123,
        "region_size": 21,
        "slow_score": 1,
        "start_ts": "2024-12-24T00:26:40Z",
        "last_heartbeat_ts": "2024-12-24T01:26:40.123456789Z",
        "uptime": "1h0m0.123456789s"
      }
    },
    {
      "store": {
        "id": 9007199254740993,
        "address": "tikv4:20160",
        "labels": [{"key": "zone", "value": "z2"}],
        "version": "8.5.5",
        "state_name": "Disconnected"
      },
      "status": {"capacity": "0B", "available": "0B", "used_size": "0B", "region_count": 3}
    },
    {
      "store": {"id": 5, "address": "tikv5:20160", "state_name": "Down"},
      "status": {"capacity": "512MiB"}
    },
    {
      "store": {"id": 6, "address": "tikv6:20160", "state": 1}
    },
    {
      "store": {"id": 7, "address": "tikv7:20160", "state": 2, "state_name": "Tombstone"},
      "status": {}
    }
  ]
}
"#;

#[test]
fn stores_read_state_names_omitted_zeros_big_ids_and_byte_sizes() {
    let http = Recorded::default().on("GET pd /pd/api/v1/stores", 200, STORES);
    let stores = stores(&http).expect("stores");
    let ids: Vec<u64> = stores.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![1, 5, 6, 9_007_199_254_740_993], "tombstones are excluded; ids exact past 2^53");

    let s1 = &stores[0];
    assert_eq!(s1.state, StoreState::Up);
    assert_eq!(s1.capacity_bytes, (1.636 * 1024f64.powi(4)).round() as u64);
    assert_eq!(s1.used_bytes, (79.3 * 1024f64.powi(3)).round() as u64);
    assert_eq!((s1.leader_count, s1.region_count), (7, 21));
    assert!(s1.details.iter().any(|d| d.key == "status-address" && d.value == "tikv1:20180"));

    let big = &stores[3];
    assert_eq!(big.state, StoreState::Disconnected);
    assert_eq!(big.labels[0].key, "zone");
    assert_eq!((big.leader_count, big.capacity_bytes), (0, 0), "absent leader_count means 0");

    assert_eq!(stores[1].state, StoreState::Down);
    assert_eq!(stores[1].capacity_bytes, 512 << 20);
    assert_eq!(stores[2].state, StoreState::Offline, "numeric state without state_name");
    assert_eq!(stores[2].version, "");
}

#[test]
fn a_size_pd_cannot_have_written_is_a_bad_response() {
    let body = r#"{"count":1,"stores":[{"store":{"id":1},"status":{"capacity":"a lot"}}]}"#;
    let http = Recorded::default().on("GET pd /pd/api/v1/stores", 200, body);
    let e = stores(&http).expect_err("bad size");
    assert!(matches!(&e, SubjectError::BadResponse(m) if m.contains("capacity \"a lot\"")), "{e:?}");
}

const HOT: &str = r#"{
  "as_peer": {
    "1": {"store_bytes": 10, "store_keys": 1, "store_query": 0, "total_flow_bytes": 300, "total_flow_keys": 3, "total_flow_query": 0, "regions_count": 2,
          "statistics": [
            {"store_id": 1, "stores": [1, 4, 5], "is_leader": false, "is_learner": false, "region_id": 12, "hot_degree": 3, "flow_bytes": 100.5, "flow_keys": 1, "flow_query": 0, "anti_count": 2, "last_update_time": "2024-12-24T01:26:00Z"},
            {"store_id": 1, "stores": [1, 4, 5], "is_leader": true, "is_learner": false, "region_id": 2, "hot_degree": 6, "flow_bytes": 2097152.0, "flow_keys": 2048, "flow_query": 0, "anti_count": 2, "last_update_time": "2024-12-24T01:26:00Z"}
          ]},
    "4": {"store_bytes": 0, "store_keys": 0, "store_query": 0, "total_flow_bytes": 0, "total_flow_keys": 0, "total_flow_query": 0, "regions_count": 0, "statistics": []},
    "5": null
  },
  "as_leader": {
    "1": {"regions_count": 1, "statistics": [
      {"store_id": 1, "stores": [1, 4, 5], "is_leader": true, "region_id": 2, "hot_degree": 6, "flow_bytes": 2097152.0, "flow_keys": 2048}
    ]},
    "4": {"regions_count": 1, "statistics": [
      {"store_id": 4, "stores": [1, 4, 5], "is_leader": true, "region_id": 12, "hot_degree": 3, "flow_bytes": 1048576.0, "flow_keys": 512}
    ]},
    "5": {"regions_count": 0, "statistics": null}
  }
}
"#;

const REGION_2: &str = r#"{"id":2,"start_key":"","end_key":"7480000000000000FF0500000000000000F8","epoch":{"conf_ver":5,"version":3},"peers":[{"role_name":"Voter","id":3,"store_id":1},{"role_name":"Voter","id":40,"store_id":4},{"role_name":"Voter","id":51,"store_id":5}],"leader":{"role_name":"Voter","id":3,"store_id":1},"cpu_usage":0,"written_bytes":125829120,"read_bytes":0,"written_keys":122880,"read_keys":0,"approximate_size":96,"approximate_keys":98304}"#;
const REGION_12: &str = r#"{"id":12,"start_key":"7480000000000000FF0500000000000000F8","end_key":"","epoch":{"conf_ver":5,"version":4},"peers":[{"role_name":"Voter","id":13,"store_id":1},{"role_name":"Voter","id":41,"store_id":4},{"role_name":"Voter","id":52,"store_id":5}],"leader":{"role_name":"Voter","id":41,"store_id":4},"cpu_usage":0,"written_bytes":62914560,"read_bytes":4096,"written_keys":30720,"read_keys":4,"approximate_size":1,"approximate_keys":10}"#;

#[test]
fn hot_regions_join_leader_hotspots_with_region_details_highest_first() {
    let http = Recorded::default()
        .on("GET pd /pd/api/v1/hotspot/regions/write", 200, HOT)
        .on("GET pd /pd/api/v1/region/id/2", 200, REGION_2)
        .on("GET pd /pd/api/v1/region/id/12", 200, REGION_12);
    let regions = hot_write_regions(&http, 2).expect("hot regions");
    assert_eq!(regions.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 12]);
    let r2 = &regions[0];
    assert_eq!(r2.leader_store_id, Some(1));
    assert_eq!(r2.peer_store_ids, vec![1, 4, 5]);
    assert_eq!(r2.write_bytes_per_second, Some(2_097_152.0));
    assert_eq!((r2.written_bytes, r2.written_keys), (125_829_120, 122_880));
    assert_eq!(r2.approximate_size_bytes, 96 << 20, "approximate_size is MiB");
    // Region 12's leader entry (store 4, 1 MiB/s) wins over its follower entry on store 1.
    assert_eq!(regions[1].leader_store_id, Some(4));
    assert_eq!(regions[1].write_bytes_per_second, Some(1_048_576.0));
}

#[test]
fn the_limit_cuts_the_list_without_fetching_more_regions() {
    let http = Recorded::default().on("GET pd /pd/api/v1/hotspot/regions/write", 200, HOT).on(
        "GET pd /pd/api/v1/region/id/2",
        200,
        REGION_2,
    );
    let regions = hot_write_regions(&http, 1).expect("hot regions");
    assert_eq!(regions.len(), 1);
    assert!(!http.sent.borrow().iter().any(|k| k.contains("/region/id/12")));
    assert!(hot_write_regions(&Recorded::default(), 0).expect("limit 0").is_empty());
}

#[test]
fn an_unknown_region_is_a_zero_object_or_null_and_keeps_the_hotspot_data() {
    for unknown in [
        r#"{"id":0,"start_key":"","end_key":"","leader":{"role_name":""},"cpu_usage":0,"written_bytes":0,"read_bytes":0,"written_keys":0,"read_keys":0,"approximate_size":0,"approximate_keys":0}"#,
        "null",
    ] {
        let http = Recorded::default().on("GET pd /pd/api/v1/hotspot/regions/write", 200, HOT).on(
            "GET pd /pd/api/v1/region/id/2",
            200,
            unknown,
        );
        let regions = hot_write_regions(&http, 1).expect("hot regions");
        assert_eq!(regions[0].id, 2);
        assert_eq!(regions[0].leader_store_id, Some(1), "from the hotspot's leader entry");
        assert_eq!(regions[0].peer_store_ids, vec![1, 4, 5], "from the hotspot's `stores`");
    }
}

#[test]
fn a_quiet_cluster_falls_back_to_regions_by_bytes_written() {
    let quiet = r#"{"as_peer":{"1":{"regions_count":0,"statistics":[]}},"as_leader":{"1":{"regions_count":0,"statistics":[]}}}"#;
    let writeflow = format!(
        r#"{{"count":3,"regions":[{REGION_2},{REGION_12},{{"id":20,"leader":{{"role_name":""}},"written_bytes":0}}]}}"#
    );
    let http = Recorded::default().on("GET pd /pd/api/v1/hotspot/regions/write", 200, quiet).on(
        "GET pd /pd/api/v1/regions/writeflow?limit=5",
        200,
        &writeflow,
    );
    let regions = hot_write_regions(&http, 5).expect("hot regions");
    assert_eq!(
        regions.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![2, 12],
        "regions that wrote nothing are left out"
    );
    assert_eq!(regions[0].write_bytes_per_second, None, "no rate is known without hotspot statistics");
}

#[test]
fn transfer_leader_posts_the_operator_and_waits_for_the_new_leader() {
    let moved = REGION_12.replace(
        r#""leader":{"role_name":"Voter","id":41,"store_id":4}"#,
        r#""leader":{"role_name":"Voter","id":13,"store_id":1}"#,
    );
    let http = Recorded::default()
        .on("GET pd /pd/api/v1/region/id/12", 200, REGION_12)
        .on("GET pd /pd/api/v1/region/id/12", 200, REGION_12)
        .on("GET pd /pd/api/v1/region/id/12", 200, REGION_12)
        .on("GET pd /pd/api/v1/region/id/12", 200, &moved)
        .on("POST pd /pd/api/v1/operators", 200, "\"The operator is created.\"\n");
    let t = transfer_leader(&http, 12, 1).expect("transfer");
    assert_eq!(
        t,
        LeaderTransfer { region_id: 12, from_store_id: Some(4), to_store_id: 1, confirmed: true, waited_ms: 400 }
    );
}

#[test]
fn a_transfer_pd_accepts_but_never_completes_is_reported_unconfirmed() {
    let http = Recorded::default().on("GET pd /pd/api/v1/region/id/12", 200, REGION_12).on(
        "POST pd /pd/api/v1/operators",
        200,
        "\"The operator is created.\"\n",
    );
    let t = transfer_leader(&http, 12, 1).expect("transfer");
    assert!(!t.confirmed);
    assert!(t.waited_ms >= TRANSFER_WAIT_MS);
}

#[test]
fn a_failure_while_watching_an_accepted_transfer_is_unconfirmed_not_failed() {
    // PD accepted the operator; the next look at the region fails (a proxy's 502, PD busy).
    let http = Recorded::default()
        .on("GET pd /pd/api/v1/region/id/12", 200, REGION_12)
        .on("GET pd /pd/api/v1/region/id/12", 502, "bad gateway")
        .on("POST pd /pd/api/v1/operators", 200, "\"The operator is created.\"\n");
    let t = transfer_leader(&http, 12, 1).expect("an accepted transfer is not an error");
    assert_eq!(
        t,
        LeaderTransfer { region_id: 12, from_store_id: Some(4), to_store_id: 1, confirmed: false, waited_ms: 0 }
    );
}

#[test]
fn pd_refusals_are_rejected_with_pds_own_message() {
    for (status, body, message) in [
        (500, "\"region has no voter in store 7\"\n", "region has no voter in store 7"),
        (
            500,
            "\"[PD:region:ErrRegionNotFound]region 42 not found\"\n",
            "[PD:region:ErrRegionNotFound]region 42 not found",
        ),
        (
            500,
            "\"[PD:operator:ErrAddOperator]failed to add operator, maybe already have one\"\n",
            "[PD:operator:ErrAddOperator]failed to add operator, maybe already have one",
        ),
        (500, "\"no operator step is built\"\n", "no operator step is built"),
        (
            400,
            r#"{"code":"input","msg":"missing store id to transfer leader to","data":null}"#,
            "missing store id to transfer leader to",
        ),
    ] {
        let http = Recorded::default().on("GET pd /pd/api/v1/region/id/12", 200, REGION_12).on(
            "POST pd /pd/api/v1/operators",
            status,
            body,
        );
        assert_eq!(transfer_leader(&http, 12, 7), Err(SubjectError::Rejected(message.into())));
    }
}

#[test]
fn pd_failures_are_unreachable_or_bad_responses() {
    let cases: Vec<(Recorded, Expect)> = vec![
        (
            Recorded::default().on(
                "GET pd /pd/api/v1/stores",
                500,
                "\"[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first\"\n",
            ),
            |e| matches!(e, SubjectError::BadResponse(m) if m.contains("HTTP 500") && m.contains("not bootstrapped")),
        ),
        (
            Recorded::default().on(
                "GET pd /pd/api/v1/stores",
                503,
                "[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader",
            ),
            |e| matches!(e, SubjectError::Unreachable(m) if m.contains("no leader")),
        ),
        (
            Recorded::default().on("GET pd /pd/api/v1/stores", 200, "<html><body>proxy error</body></html>"),
            |e| matches!(e, SubjectError::BadResponse(m) if m.contains("unexpected answer") && m.contains("<html>")),
        ),
        (
            Recorded::default().on("GET pd /pd/api/v1/stores", 200, r#"{"count":1,"stores":[{"store":{"id":"one"}}]}"#),
            |e| matches!(e, SubjectError::BadResponse(_)),
        ),
        (
            Recorded::default().fail("GET pd /pd/api/v1/stores", HttpError::Unreachable("connection refused".into())),
            |e| matches!(e, SubjectError::Unreachable(m) if m.contains("pd is unreachable: connection refused")),
        ),
        (
            Recorded::default()
                .fail("GET pd /pd/api/v1/stores", HttpError::Timeout("no complete response within 5s".into())),
            |e| matches!(e, SubjectError::Unreachable(m) if m.contains("did not answer")),
        ),
        (
            Recorded::default().fail("GET pd /pd/api/v1/stores", HttpError::TooLarge(1024)),
            |e| matches!(e, SubjectError::BadResponse(m) if m.contains("1024-byte limit")),
        ),
    ];
    for (http, expected) in cases {
        let e = stores(&http).expect_err("failure");
        assert!(expected(&e), "{e:?}");
    }
}

const PROM_OK: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"tikv1:20180"},"value":[1795424442.956,"21"]},{"metric":{"instance":"tikv4:20180"},"value":[1795424442.956,"NaN"]}]}}"#;

#[test]
fn metrics_combine_pd_counts_and_prometheus_vectors() {
    let mut http = Recorded::default().on("GET pd /pd/api/v1/stores", 200, STORES).on(
        "GET pd /pd/api/v1/regions/count",
        200,
        "{\"count\":42,\"regions\":null}\n",
    );
    for q in prom::QUERIES {
        http = http.on(&format!("GET prometheus /api/v1/query?query={}", q.promql), 200, PROM_OK);
    }
    let m = metrics(&http).expect("metrics");
    assert_eq!((m.store_count, m.region_count), (4, 42));
    assert_eq!(m.leaders_per_store[0], StoreCount { store_id: 1, count: 7 });
    assert_eq!(m.samples.len(), 2 * prom::QUERIES.len());
    let first = &m.samples[0];
    assert_eq!((first.name.as_str(), first.value, first.unit.as_str()), ("region-count", 21.0, "count"));
    assert_eq!(first.labels[0].value, "tikv1:20180");
    assert!(m.samples[1].value.is_nan());
}

#[test]
fn prometheus_errors_are_bad_responses_with_its_message() {
    let q = &prom::QUERIES[0];
    let e = prom::samples(
        q,
        400,
        br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#,
    )
    .expect_err("error");
    assert!(matches!(&e, SubjectError::BadResponse(m) if m.contains("parse error") && m.contains("bad_data")), "{e:?}");
    let e = prom::samples(q, 200, br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
        .expect_err("matrix");
    assert!(matches!(&e, SubjectError::BadResponse(m) if m.contains("got a matrix")), "{e:?}");
    let e = prom::samples(q, 502, b"Bad Gateway").expect_err("proxy");
    assert!(matches!(&e, SubjectError::BadResponse(m) if m.contains("HTTP 502")), "{e:?}");
    let empty =
        prom::samples(q, 200, br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#).expect("empty");
    assert!(empty.is_empty());
}
