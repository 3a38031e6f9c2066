//! `operator simulate <SYSTEM>`: simulated clusters that speak the real wire formats.

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    system: System,
}

#[derive(Debug, clap::Subcommand)]
enum System {
    /// A TiKV cluster: PD's HTTP API and Prometheus's query API (subjects/tikv/simulator).
    Tikv(tikv_simulator::SimArgs),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.system {
        System::Tikv(sim) => tikv_simulator::run(sim).await,
    }
}
