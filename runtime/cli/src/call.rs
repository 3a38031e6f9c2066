//! `operator call <COMPONENT|PATH> <FUNCTION> [ARGS...]`: invoke any export in the sandbox.

use operator_host::dynamic;

use super::render;
use super::sandbox_args::{self, SandboxArgs};
use super::{Context, Output, Reported};

#[derive(Debug, clap::Args)]
#[command(after_help = "ARGS are WAVE values typed by the function's parameters: 42, \"text\" (or bare text for a \
string), [1, 2], {id: 7}, some(3), none, ok(1). FUNCTION is a bare name when unique, or interface#name \
(e.g. subject#get-stores).\n\nExamples:\n  operator call tikv describe\n  operator call ./adapter.wasm \
get-hot-write-regions 5 --endpoint pd=http://127.0.0.1:2379 --deadline 1s")]
pub struct Args {
    /// A component name (see `operator components`) or a path to a .wasm file.
    component: String,
    /// The export to call.
    function: String,
    /// Arguments, one per parameter.
    args: Vec<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let file = ctx.components.resolve(&args.component)?;
    // A named component gets the grants of the subject that uses it, unless --manifest says otherwise.
    let subject_manifest = match file.source {
        operator_host::registry::ComponentSource::Builtin => ctx.subjects.for_component(&file.name).map(|s| s.manifest),
        _ => None,
    };
    let manifest = args.sandbox.manifest(subject_manifest)?;
    if let Some(m) = &manifest {
        tracing::info!("grants from {}", m.path.display());
    }
    let policy = args.sandbox.policy(manifest.as_ref());
    let runtime = ctx.runtime()?;
    let component = sandbox_args::load(&runtime, &file)?;

    let funcs = dynamic::exported_functions(&runtime, &component);
    let func = dynamic::find_function(&funcs, &args.function)?;
    let values = dynamic::parse_args(func, &args.args)?;
    let outcome = match dynamic::call(&runtime, &component, &policy, func, values).await {
        Ok(o) => o,
        Err(f) => {
            sandbox_args::report(&file.name, &f.report);
            return Err(f.into());
        }
    };
    sandbox_args::report(&file.name, &outcome.report);

    let results = &outcome.value.0;
    match ctx.output {
        Output::Json => match results.as_slice() {
            [one] => render::json(&dynamic::to_json(one))?,
            many => render::json(&many.iter().map(dynamic::to_json).collect::<Vec<_>>())?,
        },
        Output::Table => {
            for v in results {
                println!("{}", operator_host::text::escape(&dynamic::to_wave(v)));
            }
        }
    }
    if results.iter().any(dynamic::is_error) {
        return Err(Reported.into());
    }
    Ok(())
}
