//! `operator components`: the named components available, with their worlds.

use operator_host::inspect::inspect;

use super::render::{self, Table};
use super::{Context, Output};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = ctx
        .components
        .list()
        .into_iter()
        .map(|c| {
            let world = match &c.declared_world {
                Some(w) => w.clone(),
                None => match inspect(&c.bytes) {
                    Ok(i) => i.contract.unwrap_or_else(|| format!("other ({})", i.world)),
                    Err(e) => format!("unreadable: {e}"),
                },
            };
            serde_json::json!({ "name": c.name, "world": world, "source": c.source.to_string(), "size": c.bytes.len() })
        })
        .collect();
    if ctx.output == Output::Json {
        return render::json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no components found; build the project's own with `cargo build`, or put <name>.wasm in a --components-dir"
        );
        return Ok(());
    }
    let mut t = Table::new(&["NAME", "WORLD", "SIZE", "SOURCE"]);
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        t.row(vec![s("name"), s("world"), render::bytes(r["size"].as_u64().unwrap_or(0)), s("source")]);
    }
    t.print();
    Ok(())
}
