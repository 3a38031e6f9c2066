//! `tikv-simulator`: the simulator as a standalone program (for container images).

use clap::Parser;

/// A TiKV cluster simulator serving PD's and Prometheus's HTTP APIs.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    sim: tikv_simulator::SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    tikv_simulator::run(Cli::parse().sim).await
}
