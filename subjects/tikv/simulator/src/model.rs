//! The simulated cluster: stores, regions with skewed write load, PD's hotspot bookkeeping,
//! transfer-leader operators, and stores that stop heartbeating.
//!
//! Time is real time. Every heartbeat (`Config::heartbeat`, 1 s by default) each region
//! reports the bytes and keys written "during its last heartbeat interval" (TiKV reports every
//! 60 s; the simulator reports amounts for a 60-second window so the numbers have the same
//! scale as a real cluster), hot degrees move up or down as in PD, running operators finish
//! after `Config::operator_delay`, and regions led by a stopped store elect a new leader.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the simulated cluster is shaped and paced.
#[derive(Debug, Clone)]
pub struct Config {
    pub stores: usize,
    pub regions: usize,
    pub seed: u64,
    pub heartbeat: Duration,
    /// How long a transfer-leader operator takes, like PD's (a few heartbeats).
    pub operator_delay: Duration,
    /// A stopped store turns Disconnected after this (PD: 20 s without a heartbeat).
    pub disconnect_after: Duration,
    /// ... and Down after this (PD: `max-store-down-time`, 30 min by default).
    pub down_after: Duration,
    /// Total write throughput of the cluster, bytes per second.
    pub write_rate: f64,
    /// Ids are allocated from here up (PD's allocator starts at 1; a base above 2^53 makes
    /// ids that a JSON parser going through floating point would round).
    pub first_id: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stores: 3,
            regions: 64,
            seed: 42,
            heartbeat: Duration::from_secs(1),
            operator_delay: Duration::from_millis(1500),
            disconnect_after: Duration::from_secs(20),
            down_after: Duration::from_secs(30 * 60),
            write_rate: 24.0 * 1024.0 * 1024.0,
            first_id: 1,
        }
    }
}

/// PD's cluster id: larger than 2^53, as real ones are.
pub const CLUSTER_ID: u64 = 7_284_901_213_432_114_389;
/// The TiKV version the simulated stores report.
pub const TIKV_VERSION: &str = "8.5.5";
/// Bytes per second above which PD counts a region's write flow as hot.
const HOT_THRESHOLD: f64 = 256.0 * 1024.0;
/// Seconds a region's reported write amounts cover (TiKV's region heartbeat interval).
const REPORT_WINDOW: f64 = 60.0;

/// A deterministic xorshift generator (tests get the same cluster for the same seed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
pub struct SimStore {
    pub id: u64,
    pub name: String,
    pub capacity: u64,
    pub base_used: u64,
    pub zone: String,
    pub started: SystemTime,
    pub last_heartbeat: SystemTime,
    pub stopped_at: Option<Instant>,
}

/// A store's state as PD names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Up,
    Disconnected,
    Down,
}

impl StoreState {
    pub fn name(self) -> &'static str {
        match self {
            StoreState::Up => "Up",
            StoreState::Disconnected => "Disconnected",
            StoreState::Down => "Down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub id: u64,
    pub store_id: u64,
}

#[derive(Debug, Clone)]
pub struct SimRegion {
    pub id: u64,
    pub start_key: String,
    pub end_key: String,
    pub conf_ver: u64,
    pub version: u64,
    pub peers: Vec<Peer>,
    pub leader: usize,
    /// Share of the cluster's writes (a skewed distribution).
    pub weight: f64,
    /// The write load's fluctuation around its share, as the reported window averages it.
    pub noise: f64,
    pub size_mib: i64,
    pub keys: i64,
    pub write_rate: f64,
    pub key_rate: f64,
    pub read_rate: f64,
    pub written_bytes: u64,
    pub written_keys: u64,
    pub read_bytes: u64,
    pub read_keys: u64,
    pub hot_degree: i64,
    pub anti_count: i64,
    pub last_update: SystemTime,
}

impl SimRegion {
    pub fn leader_store(&self) -> u64 {
        self.peers[self.leader].store_id
    }
}

/// An operator PD is running (or ran) on a region.
#[derive(Debug, Clone)]
pub struct Operator {
    pub region_id: u64,
    pub from_store: u64,
    pub to_store: u64,
    pub created: Instant,
    pub created_wall: SystemTime,
    pub status: OperatorStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorStatus {
    Running,
    Success,
    Timeout,
}

impl OperatorStatus {
    pub fn name(self) -> &'static str {
        match self {
            OperatorStatus::Running => "RUNNING",
            OperatorStatus::Success => "SUCCESS",
            OperatorStatus::Timeout => "TIMEOUT",
        }
    }
}

/// Why PD refused an operator; the message is PD's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The whole simulated cluster.
#[derive(Debug)]
pub struct Cluster {
    pub config: Config,
    pub stores: Vec<SimStore>,
    pub regions: BTreeMap<u64, SimRegion>,
    pub operators: BTreeMap<u64, Operator>,
    pub heartbeats: u64,
    /// Cumulative counters per store, for Prometheus rates.
    pub counters: BTreeMap<u64, StoreCounters>,
    rng: Rng,
}

/// Cumulative per-store counters (Prometheus counters) and their current rates.
#[derive(Debug, Clone, Default)]
pub struct StoreCounters {
    pub wal_bytes: f64,
    pub wal_rate: f64,
    pub read_bytes: f64,
    pub read_rate: f64,
    pub grpc: BTreeMap<&'static str, (f64, f64)>,
}

impl Cluster {
    /// Builds a cluster: ids come from one allocator as in PD, so store ids are not
    /// contiguous (1, 4, 5, ...) and regions and peers share the id space.
    pub fn new(config: Config) -> Cluster {
        let mut rng = Rng::new(config.seed);
        let mut next_id = config.first_id.max(1);
        let mut alloc = || {
            let id = next_id;
            next_id = next_id.saturating_add(1);
            id
        };
        let now = SystemTime::now();
        let store_count = config.stores.max(1);
        let mut store_ids = vec![alloc()];
        // The first region bootstraps on the first store, before the others join.
        let first_region = alloc();
        let first_peer = alloc();
        for _ in 1..store_count {
            store_ids.push(alloc());
        }
        let stores: Vec<SimStore> = store_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| SimStore {
                id,
                name: format!("tikv{}", i + 1),
                capacity: 1_798_944_000_000 + i as u64 * 1_000_000_000,
                base_used: 80_000_000_000 + i as u64 * 3_000_000_000,
                zone: format!("z{}", i % 3 + 1),
                started: now - Duration::from_secs(3600),
                last_heartbeat: now,
                stopped_at: None,
            })
            .collect();

        let replicas = store_count.min(3);
        let region_count = config.regions.max(1);
        // Zipf-like skew, shuffled so the hottest regions are not simply the first ids.
        let mut weights: Vec<f64> = (0..region_count).map(|i| 1.0 / ((i + 1) as f64).powf(1.1)).collect();
        for i in (1..weights.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            weights.swap(i, j);
        }
        let total: f64 = weights.iter().sum();
        let mut regions = BTreeMap::new();
        for (i, weight) in weights.into_iter().enumerate() {
            let id = if i == 0 { first_region } else { alloc() };
            let peers: Vec<Peer> = (0..replicas)
                .map(|r| {
                    let store_id = store_ids[(i + r) % store_count];
                    let peer_id = if i == 0 && r == 0 { first_peer } else { alloc() };
                    Peer { id: peer_id, store_id }
                })
                .collect();
            let boundary = |n: usize| {
                if n == 0 || n == region_count {
                    String::new()
                } else {
                    format!("7480000000000000FF{n:04X}5F728000000000FF")
                }
            };
            regions.insert(
                id,
                SimRegion {
                    id,
                    start_key: boundary(i),
                    end_key: boundary(i + 1),
                    conf_ver: replicas as u64 + 2,
                    version: i as u64 + 1,
                    peers,
                    leader: (rng.next_u64() % replicas as u64) as usize,
                    weight: weight / total,
                    noise: 1.0,
                    size_mib: 1 + (rng.next_u64() % 96) as i64,
                    keys: 0,
                    write_rate: 0.0,
                    key_rate: 0.0,
                    read_rate: 0.0,
                    written_bytes: 0,
                    written_keys: 0,
                    read_bytes: 0,
                    read_keys: 0,
                    hot_degree: 0,
                    anti_count: 0,
                    last_update: now,
                },
            );
        }
        let mut cluster = Cluster {
            config,
            stores,
            regions,
            operators: BTreeMap::new(),
            heartbeats: 0,
            counters: BTreeMap::new(),
            rng,
        };
        // Start warmed up: hot regions have been hot for a few heartbeats already, as after
        // minutes of sustained load on a real cluster.
        for _ in 0..4 {
            cluster.heartbeat();
        }
        cluster
    }

    /// The store's state as PD would report it now.
    pub fn store_state(&self, store: &SimStore) -> StoreState {
        match store.stopped_at.map(|t| t.elapsed()) {
            Some(e) if e >= self.config.down_after => StoreState::Down,
            Some(e) if e >= self.config.disconnect_after => StoreState::Disconnected,
            _ => StoreState::Up,
        }
    }

    pub fn store(&self, id: u64) -> Option<&SimStore> {
        self.stores.iter().find(|s| s.id == id)
    }

    fn store_live(&self, id: u64) -> bool {
        self.store(id).is_some_and(|s| s.stopped_at.is_none())
    }

    /// Advances the cluster by one heartbeat.
    pub fn heartbeat(&mut self) {
        self.heartbeats += 1;
        let now = SystemTime::now();
        let dt = self.config.heartbeat.as_secs_f64();
        for s in &mut self.stores {
            if s.stopped_at.is_none() {
                s.last_heartbeat = now;
            }
        }
        self.finish_operators();
        let live: Vec<u64> = self.stores.iter().filter(|s| s.stopped_at.is_none()).map(|s| s.id).collect();

        let mut counters: BTreeMap<u64, StoreCounters> = std::mem::take(&mut self.counters);
        for c in counters.values_mut() {
            c.wal_rate = 0.0;
            c.read_rate = 0.0;
            for v in c.grpc.values_mut() {
                v.1 = 0.0;
            }
        }
        let write_rate = self.config.write_rate;
        for region in self.regions.values_mut() {
            // A region led by a stopped store elects a leader among its live peers.
            if !live.contains(&region.leader_store())
                && let Some(i) = region.peers.iter().position(|p| live.contains(&p.store_id))
            {
                region.leader = i;
            }
            // The load fluctuates ±20% from second to second, but a region reports what it wrote
            // over its last window (60 s): the reported rate is that window's average, so it
            // moves slowly (an exponential average over the window), as PD's flows do.
            let instant = 0.8 + 0.4 * self.rng.unit();
            region.noise += (dt / REPORT_WINDOW).min(1.0) * (instant - region.noise);
            region.write_rate = write_rate * region.weight * region.noise;
            region.key_rate = region.write_rate / 1024.0;
            region.read_rate = region.write_rate * 0.5 * (0.8 + 0.4 * self.rng.unit());
            region.written_bytes = (region.write_rate * REPORT_WINDOW) as u64;
            region.written_keys = (region.key_rate * REPORT_WINDOW) as u64;
            region.read_bytes = (region.read_rate * REPORT_WINDOW) as u64;
            region.read_keys = (region.read_rate / 1024.0 * REPORT_WINDOW) as u64;
            region.keys += region.written_keys as i64 / 60;
            region.size_mib = (region.size_mib + (region.write_rate * dt / (1024.0 * 1024.0 * 64.0)) as i64).max(1);
            region.last_update = now;
            if region.write_rate >= HOT_THRESHOLD {
                region.hot_degree += 1;
                region.anti_count = 2;
            } else if region.anti_count > 0 {
                region.anti_count -= 1;
            } else {
                region.hot_degree = 0;
            }
            for peer in &region.peers {
                if !live.contains(&peer.store_id) {
                    continue;
                }
                let c = counters.entry(peer.store_id).or_default();
                c.wal_rate += region.write_rate;
            }
            if live.contains(&region.leader_store()) {
                let c = counters.entry(region.leader_store()).or_default();
                c.read_rate += region.read_rate;
                for (kind, share) in [("kv_prewrite", 1.0), ("kv_commit", 1.0), ("kv_get", 4.0), ("kv_gc", 0.01)] {
                    c.grpc.entry(kind).or_default().1 += region.key_rate * share;
                }
            }
        }
        for c in counters.values_mut() {
            c.wal_bytes += c.wal_rate * dt;
            c.read_bytes += c.read_rate * dt;
            for v in c.grpc.values_mut() {
                v.0 += v.1 * dt;
            }
        }
        self.counters = counters;
    }

    fn finish_operators(&mut self) {
        let delay = self.config.operator_delay;
        let live: Vec<u64> = self.stores.iter().filter(|s| s.stopped_at.is_none()).map(|s| s.id).collect();
        for op in self.operators.values_mut().filter(|o| o.status == OperatorStatus::Running) {
            if op.created.elapsed() < delay {
                continue;
            }
            let Some(region) = self.regions.get_mut(&op.region_id) else { continue };
            match region.peers.iter().position(|p| p.store_id == op.to_store) {
                Some(i) if live.contains(&op.to_store) => {
                    region.leader = i;
                    op.status = OperatorStatus::Success;
                }
                _ => op.status = OperatorStatus::Timeout,
            }
        }
        // Finished operators stay queryable for a while, as in PD (10 min).
        self.operators
            .retain(|_, o| o.status == OperatorStatus::Running || o.created.elapsed() < Duration::from_secs(600));
    }

    /// PD's checks for `POST /operators {"name":"transfer-leader",...}`, with its messages.
    pub fn add_transfer_leader(&mut self, region_id: u64, to_store: u64) -> Result<(), Refusal> {
        let Some(region) = self.regions.get(&region_id) else {
            return Err(Refusal(format!("[PD:region:ErrRegionNotFound]region {region_id} not found")));
        };
        if !region.peers.iter().any(|p| p.store_id == to_store) {
            return Err(Refusal(format!("region has no voter in store {to_store}")));
        }
        if !self.store_live(to_store) || self.store(to_store).is_some_and(|s| self.store_state(s) != StoreState::Up) {
            return Err(Refusal(format!("cannot transfer leader to {to_store}: unhealthy")));
        }
        if region.leader_store() == to_store {
            return Err(Refusal("no operator step is built".into()));
        }
        if self.operators.get(&region_id).is_some_and(|o| o.status == OperatorStatus::Running) {
            return Err(Refusal("[PD:operator:ErrAddOperator]failed to add operator, maybe already have one".into()));
        }
        let op = Operator {
            region_id,
            from_store: region.leader_store(),
            to_store,
            created: Instant::now(),
            created_wall: SystemTime::now(),
            status: OperatorStatus::Running,
        };
        self.operators.insert(region_id, op);
        Ok(())
    }

    /// Stops a store's heartbeats (it turns Disconnected, then Down).
    pub fn stop_store(&mut self, id: u64) -> bool {
        match self.stores.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.stopped_at.get_or_insert_with(Instant::now);
                true
            }
            None => false,
        }
    }

    /// Resumes a stopped store.
    pub fn start_store(&mut self, id: u64) -> bool {
        match self.stores.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.stopped_at = None;
                true
            }
            None => false,
        }
    }

    /// Regions (and leaders) a store holds.
    pub fn store_counts(&self, id: u64) -> (u64, u64) {
        let regions = self.regions.values().filter(|r| r.peers.iter().any(|p| p.store_id == id)).count() as u64;
        let leaders = self.regions.values().filter(|r| r.leader_store() == id).count() as u64;
        (regions, leaders)
    }
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster::new(Config { operator_delay: Duration::ZERO, ..Config::default() })
    }

    #[test]
    fn ids_come_from_one_allocator_like_pds() {
        let c = cluster();
        let ids: Vec<u64> = c.stores.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 4, 5]);
        assert!(c.regions.contains_key(&2));
        assert_eq!(c.regions.len(), 64);
    }

    #[test]
    fn write_load_is_skewed_and_some_regions_are_hot() {
        let c = cluster();
        let mut rates: Vec<f64> = c.regions.values().map(|r| r.write_rate).collect();
        rates.sort_by(|a, b| b.total_cmp(a));
        assert!(rates[0] > 10.0 * rates[32], "{} vs {}", rates[0], rates[32]);
        assert!(c.regions.values().any(|r| r.hot_degree > 0));
        assert!(c.regions.values().any(|r| r.hot_degree == 0));
    }

    #[test]
    fn a_transfer_completes_on_a_later_heartbeat_and_refusals_carry_pds_messages() {
        let mut c = cluster();
        let (&id, region) = c.regions.iter().next().expect("a region");
        let leader = region.leader_store();
        let target = region.peers.iter().map(|p| p.store_id).find(|&s| s != leader).expect("a follower");
        assert_eq!(c.add_transfer_leader(id, leader), Err(Refusal("no operator step is built".into())));
        assert_eq!(c.add_transfer_leader(id, 99), Err(Refusal("region has no voter in store 99".into())));
        assert!(c.add_transfer_leader(999_999, target).expect_err("unknown").0.contains("ErrRegionNotFound"));
        c.add_transfer_leader(id, target).expect("accepted");
        assert!(c.add_transfer_leader(id, target).expect_err("running").0.contains("maybe already have one"));
        assert_eq!(c.regions[&id].leader_store(), leader, "not before a heartbeat");
        c.heartbeat();
        assert_eq!(c.regions[&id].leader_store(), target);
        assert_eq!(c.operators[&id].status, OperatorStatus::Success);
    }

    #[test]
    fn a_stopped_store_turns_disconnected_then_down_and_loses_its_leaders() {
        let mut c = Cluster::new(Config {
            disconnect_after: Duration::from_millis(20),
            down_after: Duration::from_millis(60),
            ..Config::default()
        });
        c.stop_store(4);
        assert_eq!(c.store_state(c.store(4).expect("store")), StoreState::Up);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.store_state(c.store(4).expect("store")), StoreState::Disconnected);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.store_state(c.store(4).expect("store")), StoreState::Down);
        c.heartbeat();
        assert_eq!(c.store_counts(4).1, 0, "leaders moved to live peers");
        assert!(c.add_transfer_leader(*c.regions.keys().next().expect("region"), 4).is_err());
    }
}
