//! The HTTP faces of the simulator: PD's API (v8.5 wire formats: pretty JSON for most
//! endpoints, compact `application/octet-stream` JSON for region endpoints, errors as JSON
//! strings or errcode objects, `omitempty` everywhere), Prometheus's query API, and a small
//! control API (`/simulator/...`) to stop and start stores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::model::{CLUSTER_ID, Cluster, OperatorStatus, SimRegion, StoreState, TIKV_VERSION, unix};
use crate::promql::{self, Labels, Series};

/// Shared cluster state.
pub type Shared = Arc<Mutex<Cluster>>;

fn lock(c: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// PD's routes (plus the simulator's control routes).
pub fn pd_router(cluster: Shared) -> Router {
    Router::new()
        .route("/pd/api/v1/version", get(version))
        .route("/pd/api/v1/stores", get(stores))
        .route("/pd/api/v1/stores/check", get(stores_check))
        .route("/pd/api/v1/store/{id}", get(store))
        .route("/pd/api/v1/regions", get(regions))
        .route("/pd/api/v1/regions/count", get(regions_count))
        .route("/pd/api/v1/regions/writeflow", get(regions_writeflow))
        .route("/pd/api/v1/region/id/{id}", get(region))
        .route("/pd/api/v1/hotspot/regions/write", get(hot_write))
        .route("/pd/api/v1/hotspot/regions/read", get(hot_read))
        .route("/pd/api/v1/operators", get(operators).post(add_operator))
        .route("/pd/api/v1/operators/{id}", get(operator))
        .route("/pd/api/v1/health", get(health))
        .route("/pd/api/v1/members", get(members))
        .route("/pd/api/v1/leader", get(leader))
        .route("/pd/api/v1/cluster", get(cluster_info))
        .route("/pd/api/v1/ping", get(|| async { StatusCode::OK }))
        .route("/pd/health", get(|| async { StatusCode::OK }))
        .route("/pd/ping", get(|| async { StatusCode::OK }))
        .route("/pd/api/v2/ready", get(|| async { StatusCode::OK }))
        .route("/simulator", get(describe))
        .route("/simulator/stores/{id}/stop", post(stop_store))
        .route("/simulator/stores/{id}/start", post(start_store))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(cluster)
}

/// Prometheus's query API.
pub fn prometheus_router(cluster: Shared) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/-/ready", get(|| async { "Prometheus Server is Ready.\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(cluster)
}

// --- encodings ------------------------------------------------------------------------------

/// `rd.JSON`: indented JSON, trailing newline.
fn pd_json(status: StatusCode, v: &Value) -> Response {
    let mut body = serde_json::to_string_pretty(v).unwrap_or_default();
    body.push('\n');
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"))], body)
        .into_response()
}

/// `rd.Data`: compact easyjson bytes typed as binary.
fn pd_data(v: &Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], v.to_string())
        .into_response()
}

/// A PD error: a JSON string.
fn pd_error(status: StatusCode, message: &str) -> Response {
    pd_json(status, &json!(message))
}

/// An input error through `apiutil.ErrorResp`: an errcode object.
fn errcode(message: &str) -> Response {
    let mut r = pd_json(StatusCode::BAD_REQUEST, &json!({"code": "input", "msg": message, "data": null}));
    r.headers_mut().insert("TiDB-Error-Code", HeaderValue::from_static("input"));
    r
}

/// go-units `BytesSize`: `%.4g` and a binary unit, no space (`"1.636TiB"`, `"0B"`).
pub fn byte_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{}{}", g4(v), UNITS[unit])
}

/// C's `%.4g` for values below 10000: four significant digits, trailing zeros dropped.
fn g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// RFC 3339 in UTC, seconds or nanoseconds.
pub fn rfc3339(t: SystemTime, nanos: bool) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = operator_rules::calendar::civil_from_days(days);
    let base = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if nanos && d.subsec_nanos() > 0 {
        format!("{base}.{}Z", format!("{:09}", d.subsec_nanos()).trim_end_matches('0'))
    } else {
        format!("{base}Z")
    }
}

/// Go's `time.Duration.String()` for whole and fractional seconds (`"1h0m0.5s"`).
fn go_duration(secs: f64) -> String {
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    let s = format!("{s:.9}").trim_end_matches('0').trim_end_matches('.').to_string();
    if h > 0.0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0.0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Decodes `a=1&b=x+y&b=%2F` into pairs, keeping repeats in order.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn params(q: &Option<String>, key: &str) -> Vec<String> {
    decode_query(q.as_deref().unwrap_or("")).into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect()
}

// --- stores ---------------------------------------------------------------------------------

fn store_json(c: &Cluster, id: u64) -> Option<Value> {
    let s = c.store(id)?;
    let state = c.store_state(s);
    let (region_count, leader_count) = c.store_counts(id);
    let region_size: i64 =
        c.regions.values().filter(|r| r.peers.iter().any(|p| p.store_id == id)).map(|r| r.size_mib).sum();
    let leader_size: i64 = c.regions.values().filter(|r| r.leader_store() == id).map(|r| r.size_mib).sum();
    let used = s.base_used + region_size as u64 * 1024 * 1024;
    let uptime = s.last_heartbeat.duration_since(s.started).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let last_heartbeat_ns =
        s.last_heartbeat.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    // metapb.Store: omitempty everywhere; `state` is absent because Up is 0.
    let mut store = json!({
        "id": s.id,
        "address": format!("{}:20160", s.name),
        "labels": [{"key": "zone", "value": s.zone}],
        "version": TIKV_VERSION,
        "peer_address": format!("{}:20160", s.name),
        "status_address": format!("{}:20180", s.name),
        "git_hash": "5f8ac1b2e8d0a8f2c0a8c5d6e7f8091a2b3c4d5e",
        "start_timestamp": unix(s.started) as i64,
        "deploy_path": "/",
        "last_heartbeat": last_heartbeat_ns,
        "node_state": 1,
        "state_name": state.name(),
    });
    if let Some(obj) = store.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    let mut status = json!({
        "capacity": byte_size(s.capacity),
        "available": byte_size(s.capacity.saturating_sub(used)),
        "used_size": byte_size(used),
        "leader_count": leader_count,
        "leader_weight": 1,
        "leader_score": leader_size,
        "leader_size": leader_size,
        "region_count": region_count,
        "region_weight": 1,
        "region_score": region_size as f64 + 0.000123,
        "region_size": region_size,
        "slow_score": 1,
        "start_ts": rfc3339(s.started, false),
        "last_heartbeat_ts": rfc3339(s.last_heartbeat, true),
        "uptime": go_duration(uptime),
    });
    // omitempty: zero counts are absent.
    if let Some(obj) = status.as_object_mut() {
        obj.retain(|_, v| v.as_u64() != Some(0) && v.as_i64() != Some(0));
    }
    Some(json!({"store": store, "status": status}))
}

async fn stores(State(c): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let states = params(&q, "state");
    let mut wanted = Vec::new();
    for s in &states {
        match s.parse::<i64>() {
            Ok(n @ 0..=2) => wanted.push(n),
            Ok(n) => return pd_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("unknown StoreState: {n}")),
            Err(_) => {
                return pd_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("strconv.Atoi: parsing \"{s}\": invalid syntax"),
                );
            }
        }
    }
    if wanted.is_empty() {
        wanted = vec![0, 1];
    }
    let c = lock(&c);
    // Every simulated store is in state Up (0); Disconnected and Down are Up stores without heartbeats.
    let list: Vec<Value> =
        if wanted.contains(&0) { c.stores.iter().filter_map(|s| store_json(&c, s.id)).collect() } else { vec![] };
    pd_json(StatusCode::OK, &json!({"count": list.len(), "stores": list}))
}

async fn stores_check(State(c): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let names: Vec<String> = params(&q, "state").into_iter().map(|s| s.to_ascii_lowercase()).collect();
    for n in &names {
        if !["up", "offline", "tombstone", "disconnected", "down"].contains(&n.as_str()) {
            return pd_error(StatusCode::BAD_REQUEST, &format!("unknown StoreState: {n}"));
        }
    }
    let c = lock(&c);
    let list: Vec<Value> = c
        .stores
        .iter()
        .filter(|s| names.is_empty() || names.contains(&c.store_state(s).name().to_ascii_lowercase()))
        .filter_map(|s| store_json(&c, s.id))
        .collect();
    pd_json(StatusCode::OK, &json!({"count": list.len(), "stores": list}))
}

async fn store(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errcode(&format!("strconv.ParseUint: parsing \"{id}\": invalid syntax"));
    };
    let c = lock(&c);
    match store_json(&c, id) {
        Some(v) => pd_json(StatusCode::OK, &v),
        None => pd_error(StatusCode::NOT_FOUND, &format!("[PD:core:ErrStoreNotFound]store {id} not found")),
    }
}

// --- regions --------------------------------------------------------------------------------

fn peer_json(id: u64, store_id: u64) -> Value {
    json!({"role_name": "Voter", "id": id, "store_id": store_id})
}

fn region_json(r: &SimRegion) -> Value {
    let leader = &r.peers[r.leader];
    json!({
        "id": r.id,
        "start_key": r.start_key,
        "end_key": r.end_key,
        "epoch": {"conf_ver": r.conf_ver, "version": r.version},
        "peers": r.peers.iter().map(|p| peer_json(p.id, p.store_id)).collect::<Vec<_>>(),
        "leader": peer_json(leader.id, leader.store_id),
        "cpu_usage": 0,
        "written_bytes": r.written_bytes,
        "read_bytes": r.read_bytes,
        "written_keys": r.written_keys,
        "read_keys": r.read_keys,
        "approximate_size": r.size_mib,
        "approximate_keys": r.keys,
    })
}

async fn regions(State(c): State<Shared>) -> Response {
    let c = lock(&c);
    let list: Vec<Value> = c.regions.values().map(region_json).collect();
    pd_data(&json!({"count": list.len(), "regions": list}))
}

async fn regions_count(State(c): State<Shared>) -> Response {
    pd_json(StatusCode::OK, &json!({"count": lock(&c).regions.len(), "regions": null}))
}

async fn regions_writeflow(State(c): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let limit = match params(&q, "limit").first() {
        None => 16,
        Some(l) => match l.parse::<i64>() {
            Ok(n) => n.min(10_240),
            Err(_) => {
                return pd_error(StatusCode::BAD_REQUEST, &format!("strconv.Atoi: parsing \"{l}\": invalid syntax"));
            }
        },
    };
    if limit <= 0 {
        return pd_data(&json!({"count": 0, "regions": []}));
    }
    let c = lock(&c);
    let mut list: Vec<&SimRegion> = c.regions.values().collect();
    list.sort_by_key(|r| std::cmp::Reverse(r.written_bytes));
    let list: Vec<Value> = list.into_iter().take(limit as usize).map(region_json).collect();
    pd_data(&json!({"count": list.len(), "regions": list}))
}

async fn region(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return pd_error(StatusCode::BAD_REQUEST, &format!("strconv.ParseUint: parsing \"{id}\": invalid syntax"));
    };
    let c = lock(&c);
    match c.regions.get(&id) {
        Some(r) => pd_data(&region_json(r)),
        // PD v8 answers an unknown id with 200 and an all-zero region.
        None => pd_data(&json!({
            "id": 0, "start_key": "", "end_key": "", "leader": {"role_name": ""}, "cpu_usage": 0,
            "written_bytes": 0, "read_bytes": 0, "written_keys": 0, "read_keys": 0,
            "approximate_size": 0, "approximate_keys": 0
        })),
    }
}

// --- hotspots -------------------------------------------------------------------------------

fn hot(c: &Cluster, q: &Option<String>, write: bool) -> Response {
    let mut filter = Vec::new();
    for s in params(q, "store_id") {
        match s.parse::<u64>() {
            Ok(id) => filter.push(id),
            Err(_) => return pd_error(StatusCode::BAD_REQUEST, &format!("invalid store id: {s}")),
        }
    }
    let mut as_peer = BTreeMap::new();
    let mut as_leader = BTreeMap::new();
    for s in &c.stores {
        if !filter.is_empty() && !filter.contains(&s.id) {
            continue;
        }
        for leader_only in [false, true] {
            let mut stats = Vec::new();
            for r in c.regions.values() {
                let on_store = r.peers.iter().any(|p| p.store_id == s.id);
                let is_leader = r.leader_store() == s.id;
                if r.hot_degree <= 0 || !on_store || (leader_only && !is_leader) {
                    continue;
                }
                let (bytes, keys) =
                    if write { (r.write_rate, r.key_rate) } else { (r.read_rate, r.read_rate / 1024.0) };
                stats.push(json!({
                    "store_id": s.id,
                    "stores": r.peers.iter().map(|p| p.store_id).collect::<Vec<_>>(),
                    "is_leader": is_leader,
                    "is_learner": false,
                    "region_id": r.id,
                    "hot_degree": r.hot_degree,
                    "flow_bytes": bytes,
                    "flow_keys": keys,
                    "flow_query": 0.0,
                    "anti_count": r.anti_count,
                    "last_update_time": rfc3339(r.last_update, false),
                }));
            }
            let total_bytes: f64 = stats.iter().filter_map(|v| v["flow_bytes"].as_f64()).sum();
            let total_keys: f64 = stats.iter().filter_map(|v| v["flow_keys"].as_f64()).sum();
            let counters = c.counters.get(&s.id).cloned().unwrap_or_default();
            let entry = json!({
                "store_bytes": if write { counters.wal_rate } else { counters.read_rate },
                "store_keys": if write { counters.wal_rate / 1024.0 } else { counters.read_rate / 1024.0 },
                "store_query": 0.0,
                "total_flow_bytes": total_bytes,
                "total_flow_keys": total_keys,
                "total_flow_query": 0.0,
                "regions_count": stats.len(),
                "statistics": stats,
            });
            let map = if leader_only { &mut as_leader } else { &mut as_peer };
            map.insert(s.id.to_string(), entry);
        }
    }
    pd_json(StatusCode::OK, &json!({"as_peer": as_peer, "as_leader": as_leader}))
}

async fn hot_write(State(c): State<Shared>, RawQuery(q): RawQuery) -> Response {
    hot(&lock(&c), &q, true)
}

async fn hot_read(State(c): State<Shared>, RawQuery(q): RawQuery) -> Response {
    hot(&lock(&c), &q, false)
}

// --- operators ------------------------------------------------------------------------------

fn operator_string(c: &Cluster, region_id: u64) -> Option<String> {
    let op = c.operators.get(&region_id)?;
    let r = c.regions.get(&region_id)?;
    let mut s = format!(
        "admin-transfer-leader {{transfer leader: store {} to {}}} (kind:admin,leader, region:{}({}, {}), createAt:{}, startAt:{}, currentStep:{}, size:{}, steps:[0:{{transfer leader from store {} to store {}}}], timeout:[1m0s])",
        op.from_store,
        op.to_store,
        region_id,
        r.version,
        r.conf_ver,
        rfc3339(op.created_wall, true),
        rfc3339(op.created_wall, true),
        u8::from(op.status != OperatorStatus::Running),
        r.size_mib,
        op.from_store,
        op.to_store
    );
    match op.status {
        OperatorStatus::Success => s.push_str(" finished"),
        OperatorStatus::Timeout => s.push_str(" timeout"),
        OperatorStatus::Running => {}
    }
    Some(s)
}

async fn operators(State(c): State<Shared>) -> Response {
    let c = lock(&c);
    let list: Vec<String> = c
        .operators
        .values()
        .filter(|o| o.status == OperatorStatus::Running)
        .filter_map(|o| operator_string(&c, o.region_id))
        .collect();
    pd_json(StatusCode::OK, &json!(list))
}

async fn operator(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return pd_error(StatusCode::BAD_REQUEST, &format!("strconv.ParseUint: parsing \"{id}\": invalid syntax"));
    };
    let c = lock(&c);
    match (c.operators.get(&id), operator_string(&c, id)) {
        (Some(op), Some(s)) => pd_json(StatusCode::OK, &json!(format!("status: {}, operator: {s}", op.status.name()))),
        _ => pd_error(StatusCode::INTERNAL_SERVER_ERROR, "[PD:operator:ErrOperatorNotFound]operator not found"),
    }
}

async fn add_operator(State(c): State<Shared>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return errcode(&e.to_string()),
    };
    let name = v.get("name").and_then(Value::as_str);
    match name {
        None => return pd_error(StatusCode::BAD_REQUEST, "missing operator name"),
        Some("transfer-leader") => {}
        Some(
            "transfer-region" | "transfer-peer" | "add-peer" | "add-learner" | "remove-peer" | "merge-region"
            | "split-region" | "scatter-region" | "scatter-regions",
        ) => {
            return pd_error(StatusCode::INTERNAL_SERVER_ERROR, "this simulator only runs transfer-leader operators");
        }
        Some(_) => return pd_error(StatusCode::BAD_REQUEST, "unknown operator"),
    }
    // PD type-asserts float64: strings are "missing".
    let Some(region_id) = v.get("region_id").and_then(Value::as_f64) else {
        return pd_error(StatusCode::BAD_REQUEST, "missing region id");
    };
    let Some(to_store) = v.get("to_store_id").and_then(Value::as_f64) else {
        return pd_error(StatusCode::BAD_REQUEST, "missing store id to transfer leader to");
    };
    match lock(&c).add_transfer_leader(region_id as u64, to_store as u64) {
        Ok(()) => pd_json(StatusCode::OK, &json!("The operator is created.")),
        Err(refusal) => pd_error(StatusCode::INTERNAL_SERVER_ERROR, &refusal.0),
    }
}

// --- members, health, cluster ---------------------------------------------------------------

const PD_MEMBER_ID: u64 = 13_195_394_291_058_371_180;

fn member() -> Value {
    json!({
        "name": "pd1",
        "member_id": PD_MEMBER_ID,
        "peer_urls": ["http://pd1:2380"],
        "client_urls": ["http://pd1:2379"],
        "deploy_path": "/",
        "binary_version": "v8.5.5",
        "git_hash": "simulator",
    })
}

async fn version() -> Response {
    pd_json(
        StatusCode::OK,
        &json!({"version": "v8.5.5-simulator", "build_time": "", "hash": "", "branch": "operator tikv simulator"}),
    )
}

async fn health() -> Response {
    pd_json(
        StatusCode::OK,
        &json!([{"name": "pd1", "member_id": PD_MEMBER_ID, "client_urls": ["http://pd1:2379"], "health": true}]),
    )
}

async fn members() -> Response {
    pd_json(
        StatusCode::OK,
        &json!({"header": {"cluster_id": CLUSTER_ID}, "members": [member()], "leader": member(), "etcd_leader": member()}),
    )
}

async fn leader() -> Response {
    pd_json(StatusCode::OK, &member())
}

async fn cluster_info() -> Response {
    pd_json(StatusCode::OK, &json!({"id": CLUSTER_ID, "max_peer_count": 3}))
}

async fn describe(State(c): State<Shared>) -> Response {
    let c = lock(&c);
    let stores: Vec<Value> = c
        .stores
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name, "state": c.store_state(s).name(), "stopped": s.stopped_at.is_some()}))
        .collect();
    pd_json(
        StatusCode::OK,
        &json!({
            "simulator": "operator tikv simulator",
            "stores": stores,
            "regions": c.regions.len(),
            "heartbeats": c.heartbeats,
        }),
    )
}

async fn stop_store(State(c): State<Shared>, Path(id): Path<u64>) -> Response {
    set_store(&c, id, true)
}

async fn start_store(State(c): State<Shared>, Path(id): Path<u64>) -> Response {
    set_store(&c, id, false)
}

fn set_store(c: &Shared, id: u64, stop: bool) -> Response {
    let mut c = lock(c);
    let found = if stop { c.stop_store(id) } else { c.start_store(id) };
    if !found {
        return pd_error(StatusCode::NOT_FOUND, &format!("[PD:core:ErrStoreNotFound]store {id} not found"));
    }
    let state = c.store(id).map(|s| c.store_state(s)).unwrap_or(StoreState::Up);
    pd_json(StatusCode::OK, &json!({"store_id": id, "stopped": stop, "state": state.name()}))
}

// --- prometheus -----------------------------------------------------------------------------

/// The series a Prometheus scraping the simulated stores would hold now.
fn series(c: &Cluster) -> Vec<Series> {
    let mut out = Vec::new();
    for s in c.stores.iter().filter(|s| s.stopped_at.is_none()) {
        let instance = format!("{}:20180", s.name);
        let mut push = |name: &str, extra: &[(&str, &str)], value: f64, rate: Option<f64>| {
            let mut labels: Labels = [("__name__", name), ("instance", instance.as_str()), ("job", "tikv")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            out.push(Series { labels, value, rate });
        };
        let (regions, leaders) = c.store_counts(s.id);
        push("tikv_raftstore_region_count", &[("type", "region")], regions as f64, None);
        push("tikv_raftstore_region_count", &[("type", "leader")], leaders as f64, None);
        let region_size: i64 =
            c.regions.values().filter(|r| r.peers.iter().any(|p| p.store_id == s.id)).map(|r| r.size_mib).sum();
        let used = s.base_used as f64 + region_size as f64 * 1024.0 * 1024.0;
        push("tikv_store_size_bytes", &[("type", "capacity")], s.capacity as f64, None);
        push("tikv_store_size_bytes", &[("type", "used")], used, None);
        push("tikv_store_size_bytes", &[("type", "available")], s.capacity as f64 - used, None);
        let k = c.counters.get(&s.id).cloned().unwrap_or_default();
        push("tikv_engine_flow_bytes", &[("db", "kv"), ("type", "wal_file_bytes")], k.wal_bytes, Some(k.wal_rate));
        push(
            "tikv_engine_flow_bytes",
            &[("db", "kv"), ("type", "bytes_read")],
            k.read_bytes * 0.7,
            Some(k.read_rate * 0.7),
        );
        push(
            "tikv_engine_flow_bytes",
            &[("db", "kv"), ("type", "iter_bytes_read")],
            k.read_bytes * 0.3,
            Some(k.read_rate * 0.3),
        );
        for (kind, (total, rate)) in &k.grpc {
            push(
                "tikv_grpc_msg_duration_seconds_count",
                &[("type", kind), ("priority", "normal")],
                *total,
                Some(*rate),
            );
        }
    }
    out
}

fn prom_error(status: StatusCode, kind: &str, message: &str) -> Response {
    prom_json(status, &json!({"status": "error", "errorType": kind, "error": message}))
}

fn prom_json(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], v.to_string()).into_response()
}

async fn query(State(c): State<Shared>, method: Method, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let mut pairs = decode_query(q.as_deref().unwrap_or(""));
    if method == Method::POST {
        pairs.extend(decode_query(&String::from_utf8_lossy(&body)));
    }
    let text = pairs.into_iter().find(|(k, _)| k == "query").map(|(_, v)| v).unwrap_or_default();
    let expr = match promql::parse(&text) {
        Ok(e) => e,
        Err(e) => return prom_error(StatusCode::BAD_REQUEST, "bad_data", &format!("invalid parameter \"query\": {e}")),
    };
    let now = unix(SystemTime::now());
    let ts = (now * 1000.0).round() / 1000.0;
    let c = lock(&c);
    let result: Vec<Value> = promql::eval(&expr, &series(&c))
        .into_iter()
        .map(|(metric, v)| json!({"metric": metric, "value": [ts, promql::format_value(v)]}))
        .collect();
    prom_json(StatusCode::OK, &json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_format_like_go_units() {
        assert_eq!(byte_size(0), "0B");
        assert_eq!(byte_size(512 << 20), "512MiB");
        assert_eq!(byte_size(1_798_944_000_000), "1.636TiB");
        assert_eq!(byte_size((79.3 * 1024f64.powi(3)) as u64), "79.3GiB");
        assert_eq!(byte_size(1023), "1023B");
    }

    #[test]
    fn times_format_as_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_735_003_600_123_456_789);
        assert_eq!(rfc3339(t, true), "2024-12-24T01:26:40.123456789Z");
        assert_eq!(rfc3339(t, false), "2024-12-24T01:26:40Z");
        assert_eq!(go_duration(3600.5), "1h0m0.5s");
        assert_eq!(go_duration(90.0), "1m30s");
    }

    #[test]
    fn queries_decode_repeats_and_escapes() {
        assert_eq!(
            decode_query("state=0&state=1&query=sum%28x%29+by+%28instance%29"),
            vec![
                ("state".into(), "0".into()),
                ("state".into(), "1".into()),
                ("query".into(), "sum(x) by (instance)".into())
            ]
        );
    }
}
