//! `operator components`: the named components available, with their worlds;
//! `operator components compile`: compile components into the cache ahead of their first call
//! (what a Python component's build script does, so its first call starts at once).

use operator_host::LoadOrigin;
use operator_host::inspect::inspect;

use super::render::{self, Table};
use super::{Context, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Compile components (names or paths) into the compile cache now.
    Compile {
        /// Components to compile.
        #[arg(required = true, value_name = "COMPONENT")]
        components: Vec<String>,
    },
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    match args.action {
        None => list(ctx),
        Some(Action::Compile { components }) => compile(ctx, &components),
    }
}

fn compile(ctx: &Context, components: &[String]) -> anyhow::Result<()> {
    let runtime = ctx.runtime()?;
    let mut rows = Vec::new();
    for reference in components {
        let file = ctx.components.resolve(reference)?;
        let loaded = super::sandbox_args::load(&runtime, &file)?;
        let (origin, took, cached) = match &loaded.origin {
            LoadOrigin::Compiled { took, cached_at } => ("compiled", *took, cached_at.clone()),
            LoadOrigin::Cache { path, took } => ("already cached", *took, Some(path.clone())),
        };
        if cached.is_none() {
            eprintln!(
                "warning: {} was compiled but not cached (no usable cache folder; see -v)",
                operator_host::text::escape(&file.name)
            );
        }
        rows.push(serde_json::json!({
            "name": file.name,
            "digest": loaded.digest,
            "origin": origin,
            "took_ms": took.as_millis() as u64,
            "cached_at": cached.map(|p| p.display().to_string()),
        }));
    }
    if ctx.output == Output::Json {
        return render::json(&rows);
    }
    let mut t = Table::new(&["NAME", "RESULT", "TOOK", "CACHED AT"]);
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        t.row(vec![s("name"), s("origin"), format!("{} ms", r["took_ms"]), s("cached_at")]);
    }
    t.print();
    Ok(())
}

fn list(ctx: &Context) -> anyhow::Result<()> {
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
