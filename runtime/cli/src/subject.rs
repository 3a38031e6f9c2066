//! `operator subject <SUBJECT> <ACTION>`: the Subject contract through the subject's adapter.

use operator_host::registry::Subject;
use operator_host::sandbox::{CallOutcome, FailedCall};
use operator_host::subject::{
    ClusterMetrics, ClusterStore, LeaderTransfer, Region, SubjectClient, SubjectError, SubjectResult,
};
use serde::Serialize;

use super::render::{self, Table};
use super::sandbox_args::{self, SandboxArgs};
use super::{Context, Output, Reported};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subject (a folder with an operator.toml), e.g. `tikv`.
    subject: String,
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The adapter's name, version and supported actions.
    Describe,
    /// Every store (node, member, broker) of the cluster.
    Stores,
    /// The replica groups with the most write traffic, highest first.
    HotWriteRegions {
        /// How many to show.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Cluster-wide counts and metric samples.
    Metrics,
    /// Move the leader of REGION to STORE and wait to see it happen.
    TransferLeader {
        /// Region (replica group) id.
        region: u64,
        /// Target store id.
        store: u64,
    },
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let subject: Subject = ctx.subjects.find(&args.subject)?;
    let manifest = args.sandbox.manifest(Some(subject.manifest.clone()))?;
    let policy = args.sandbox.policy(manifest.as_ref());
    let Some(section) = &subject.manifest.subject else {
        return Err(operator_host::registry::LookupError::NoComponent {
            name: subject.name.clone(),
            path: subject.manifest.path.clone(),
        }
        .into());
    };
    let component_name = section.component.clone();
    let file = ctx.components.resolve_in(&component_name, &subject.dir)?;
    let runtime = ctx.runtime()?;
    let component = sandbox_args::load(&runtime, &file)?;
    let client = SubjectClient::new(&runtime, &component, policy)?;

    match args.action {
        Action::Describe => {
            let out = finish(&file.name, client.describe().await)?;
            match ctx.output {
                Output::Json => render::json(&out)?,
                Output::Table => {
                    let e = |t: &str| operator_host::text::escape(t).into_owned();
                    println!("{} {} — {}", e(&out.name), e(&out.version), e(&out.description));
                    println!("actions: {}", e(&out.actions.join(", ")));
                }
            }
            Ok(())
        }
        Action::Stores => show(ctx, &client, finish(&file.name, client.stores().await)?, stores_table),
        Action::HotWriteRegions { limit } => {
            show(ctx, &client, finish(&file.name, client.hot_write_regions(limit).await)?, regions_table)
        }
        Action::Metrics => show(ctx, &client, finish(&file.name, client.metrics().await)?, metrics_table),
        Action::TransferLeader { region, store } => {
            show(ctx, &client, finish(&file.name, client.transfer_leader(region, store).await)?, transfer_line)
        }
    }
}

/// Reports the call's side effects and unwraps its value.
fn finish<T>(component: &str, r: Result<CallOutcome<T>, FailedCall>) -> anyhow::Result<T> {
    match r {
        Ok(o) => {
            sandbox_args::report(component, &o.report);
            Ok(o.value)
        }
        Err(f) => {
            sandbox_args::report(component, &f.report);
            Err(f.into())
        }
    }
}

/// Prints an adapter result: the value, or the adapter's error (exit 1).
fn show<T: Serialize>(ctx: &Context, client: &SubjectClient, r: SubjectResult<T>, table: fn(&T)) -> anyhow::Result<()> {
    match (r, ctx.output) {
        (Ok(v), Output::Json) => render::json(&v),
        (Ok(v), Output::Table) => {
            table(&v);
            Ok(())
        }
        (Err(e), Output::Json) => {
            render::json(&serde_json::json!({ "error": { "kind": e.kind(), "message": e.to_string() } }))?;
            Err(Reported.into())
        }
        (Err(e), Output::Table) => {
            eprintln!("error: {}", operator_host::text::escape_lines(&e.to_string()));
            if let SubjectError::Unreachable(_) = e {
                let endpoints: Vec<String> =
                    client.policy().http.endpoints().map(|g| format!("{}={}", g.name, g.url)).collect();
                eprintln!(
                    "  hint: endpoints in use: {}; point one elsewhere with --endpoint NAME=URL",
                    endpoints.join(", ")
                );
            }
            Err(Reported.into())
        }
    }
}

fn stores_table(stores: &Vec<ClusterStore>) {
    let mut t = Table::new(&[
        "ID",
        "ADDRESS",
        "STATE",
        "VERSION",
        "CAPACITY",
        "AVAILABLE",
        "USED",
        "LEADERS",
        "REGIONS",
        "LABELS",
    ]);
    for s in stores {
        let labels: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.key, l.value)).collect();
        t.row(vec![
            s.id.to_string(),
            s.address.clone(),
            s.state.to_string(),
            s.version.clone(),
            render::bytes(s.capacity_bytes),
            render::bytes(s.available_bytes),
            render::bytes(s.used_bytes),
            s.leader_count.to_string(),
            s.region_count.to_string(),
            labels.join(","),
        ]);
    }
    t.print();
}

fn regions_table(regions: &Vec<Region>) {
    let mut t = Table::new(&["REGION", "LEADER", "PEERS", "WRITE", "WRITE KEYS", "WRITTEN", "READ", "SIZE"]);
    for r in regions {
        let peers: Vec<String> = r.peer_store_ids.iter().map(u64::to_string).collect();
        t.row(vec![
            r.id.to_string(),
            r.leader_store_id.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            peers.join(","),
            render::rate(r.write_bytes_per_second, "B/s"),
            render::rate(r.write_keys_per_second, "/s"),
            render::bytes(r.written_bytes),
            render::bytes(r.read_bytes),
            render::bytes(r.approximate_size_bytes),
        ]);
    }
    t.print();
}

fn metrics_table(m: &ClusterMetrics) {
    println!("stores: {}   regions: {}", m.store_count, m.region_count);
    if !m.leaders_per_store.is_empty() {
        println!();
        let mut t = Table::new(&["STORE", "LEADERS"]);
        for c in &m.leaders_per_store {
            t.row(vec![c.store_id.to_string(), c.count.to_string()]);
        }
        t.print();
    }
    if !m.samples.is_empty() {
        println!();
        let mut t = Table::new(&["METRIC", "LABELS", "VALUE"]);
        for s in &m.samples {
            let labels: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.key, l.value)).collect();
            t.row(vec![s.name.clone(), labels.join(","), sample_value(s.value, &s.unit)]);
        }
        t.print();
    }
}

/// A sample value in its unit's human form.
fn sample_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return format!("{v} {unit}");
    }
    match unit {
        "bytes" => render::bytes(v.max(0.0) as u64),
        "bytes/s" => render::rate(Some(v), "B/s"),
        "count" => format!("{v:.0}"),
        // A per-second count: `0.033/s`, not `0.0 1/s`.
        "1/s" => format!("{}/s", render::number(v)),
        "" => render::number(v),
        other => format!("{} {other}", render::number(v)),
    }
}

fn transfer_line(t: &LeaderTransfer) {
    let from = t.from_store_id.map(|s| format!("store {s}")).unwrap_or_else(|| "an unknown store".into());
    if t.confirmed {
        println!(
            "region {}: leader moved from {from} to store {} (confirmed after {} ms)",
            t.region_id, t.to_store_id, t.waited_ms
        );
    } else {
        println!(
            "region {}: transfer from {from} to store {} was accepted but not yet observed after {} ms",
            t.region_id, t.to_store_id, t.waited_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::sample_value;

    #[test]
    fn small_rates_keep_their_digits_and_units_read_naturally() {
        assert_eq!(sample_value(0.0333, "1/s"), "0.0333/s");
        assert_eq!(sample_value(12.5, "1/s"), "12.5/s");
        assert_eq!(sample_value(0.0, "1/s"), "0/s");
        assert_eq!(sample_value(0.25, "ratio"), "0.25 ratio");
        assert_eq!(sample_value(2048.0, "bytes"), "2.0KiB");
    }
}
