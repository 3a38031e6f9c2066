//! A TiKV cluster simulator for developing and testing without a real cluster.
//!
//! It serves the PD HTTP endpoints the TiKV adapter uses (and the ones operators reach for:
//! health, members, cluster, operators) and Prometheus's instant-query API for the TiKV
//! metrics, in the wire formats of PD v8.5 and Prometheus 2.x, with live behaviour: skewed
//! write load so hotspots exist, counters that advance with each heartbeat, transfer-leader
//! operators that finish after a short delay, PD's refusals, and stores that can be stopped
//! (`POST /simulator/stores/{id}/stop`: Disconnected, later Down). `/pd/api/v1/version` says
//! it is a simulator.

pub mod api;
pub mod model;
pub mod promql;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use model::Config;

/// Flags of `operator simulate tikv` and of the `tikv-simulator` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address for PD's API.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub listen: SocketAddr,
    /// Address for Prometheus's query API; `same` serves it on the PD address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub prometheus_listen: String,
    /// Number of TiKV stores.
    #[arg(long, default_value_t = 3)]
    pub stores: usize,
    /// Number of regions.
    #[arg(long, default_value_t = 64)]
    pub regions: usize,
    /// Seed for the load pattern (same seed, same cluster).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Heartbeat interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// How long a transfer-leader operator takes.
    #[arg(long, default_value = "1500ms", value_parser = parse_duration)]
    pub operator_delay: Duration,
    /// A stopped store is Disconnected after this.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub disconnect_after: Duration,
    /// A stopped store is Down after this (PD's max-store-down-time).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub down_after: Duration,
    /// First id the allocator hands out (above 2^53 = 9007199254740992 to test that ids
    /// never go through floating point).
    #[arg(long, default_value_t = 1)]
    pub first_id: u64,
}

impl SimArgs {
    /// The cluster configuration these flags describe.
    pub fn config(&self) -> Config {
        Config {
            stores: self.stores,
            regions: self.regions,
            seed: self.seed,
            heartbeat: self.heartbeat,
            operator_delay: self.operator_delay,
            disconnect_after: self.disconnect_after,
            down_after: self.down_after,
            first_id: self.first_id,
            ..Config::default()
        }
    }
}

/// Parses `250ms`, `2s`, `1m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 250ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}` is not a duration (e.g. 250ms, 2s, 1m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A running simulator.
pub struct Simulator {
    /// Where PD's API answers.
    pub pd: SocketAddr,
    /// Where Prometheus's API answers.
    pub prometheus: SocketAddr,
    /// The simulated cluster, for tests that poke at it directly.
    pub cluster: api::Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// Binds the listeners and starts serving and heartbeating. `prometheus: None` serves
    /// Prometheus's API on the PD listener.
    pub async fn start(config: Config, pd: SocketAddr, prometheus: Option<SocketAddr>) -> std::io::Result<Simulator> {
        let heartbeat = config.heartbeat;
        let cluster = Arc::new(Mutex::new(model::Cluster::new(config)));
        let pd_listener = tokio::net::TcpListener::bind(pd).await?;
        let pd_addr = pd_listener.local_addr()?;
        let mut tasks = Vec::new();
        let prom_addr = match prometheus {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                let router = api::prometheus_router(cluster.clone());
                tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                }));
                tasks.push(tokio::spawn(serve(pd_listener, api::pd_router(cluster.clone()))));
                local
            }
            None => {
                let router = api::pd_router(cluster.clone()).merge(api::prometheus_router(cluster.clone()));
                tasks.push(tokio::spawn(serve(pd_listener, router)));
                pd_addr
            }
        };
        let ticking = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(heartbeat);
            interval.tick().await;
            loop {
                interval.tick().await;
                ticking.lock().unwrap_or_else(|p| p.into_inner()).heartbeat();
            }
        }));
        Ok(Simulator { pd: pd_addr, prometheus: prom_addr, cluster, tasks })
    }
}

async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("simulator server stopped: {e}");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the simulator until Ctrl-C, printing where it listens.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let prometheus = match args.prometheus_listen.as_str() {
        "same" => None,
        addr => Some(addr.parse().map_err(|e| anyhow::anyhow!("--prometheus-listen `{addr}`: {e}"))?),
    };
    let sim = Simulator::start(args.config(), args.listen, prometheus).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} / {}: {e} (is another PD or simulator running? pick other addresses with --listen and --prometheus-listen)", args.listen, args.prometheus_listen)
    })?;
    println!("TiKV simulator: {} stores, {} regions", args.stores, args.regions);
    println!("  PD API          http://{}", sim.pd);
    println!("  Prometheus API  http://{}", sim.prometheus);
    println!("  stop a store    curl -X POST http://{}/simulator/stores/<id>/stop", sim.pd);
    println!("Ctrl-C stops it.");
    // SIGTERM too: as a container's PID 1 nothing else would stop it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
