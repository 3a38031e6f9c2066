//! `operator`: run sandboxed WebAssembly adapters against distributed systems.
//!
//! The command line: parse, call the host library (`operator-host`), render. One module per
//! command. This crate also wires what the library leaves open: the concrete Docker engine,
//! the components built into the binary and the source tree's folders ([`sources`]), and the
//! TiKV simulator (`operator simulate`).
//!
//! Exit codes: 0 success, 1 the operation failed (a named sandbox error, an adapter error, an
//! `err` result), 2 a usage error (bad flag, unknown component or subject, bad arguments).

mod audit;
mod call;
mod check;
mod components;
mod deploy;
mod inspect;
mod mcp;
mod render;
mod run;
mod sandbox_args;
mod simulate;
mod sources;
mod subject;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use operator_host::registry::{Components, Subjects};
use operator_host::{Runtime, RuntimeOptions};
use tracing_subscriber::EnvFilter;

/// Run sandboxed WebAssembly adapters that observe and operate distributed systems.
#[derive(Debug, Parser)]
#[command(name = "operator", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
struct Global {
    /// More output: -v shows cache use, timings and component info logs; -vv debug; -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Output format (`junit`: `operator check` only).
    #[arg(long, short = 'o', value_enum, default_value_t = OutputArg::Table, global = true)]
    output: OutputArg,
    /// Directory for compiled components [default: $XDG_CACHE_HOME/operator].
    #[arg(long, env = "OPERATOR_CACHE_DIR", global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the on-disk cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Extra directory of `<name>.wasm` components, searched before the built-in ones.
    #[arg(long, global = true, value_name = "DIR")]
    components_dir: Vec<PathBuf>,
    /// Extra directory of subjects (`<dir>/<subject>/operator.toml`), searched first.
    #[arg(long, global = true, value_name = "DIR")]
    subjects_dir: Vec<PathBuf>,
    /// Write /tmp/perf-<pid>.map so `perf report` names the component's functions.
    #[arg(long, env = "OPERATOR_PERFMAP", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    perf_map: bool,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON: the contract records with snake_case field names.
    Json,
}

/// The `--output` flag: the formats every command prints, and JUnit XML for `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputArg {
    Table,
    Json,
    /// JUnit XML, for CI (`operator check`).
    Junit,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Observe or act on a subject's cluster through its adapter.
    Subject(subject::Args),
    /// Show a component's imports and exports, and the grants its subject gives it.
    Inspect(inspect::Args),
    /// Invoke any export of any component in the sandbox and print the result.
    Call(call::Args),
    /// List the named components available, with their worlds.
    Components(components::Args),
    /// Bring a subject's local cluster up or down, and watch it.
    Deploy(deploy::Args),
    /// Run a simulated cluster for development without a real one.
    Simulate(simulate::Args),
    /// Operate a subject's cluster with a policy: observe, decide, gate, act (dry-run by default).
    Run(run::Args),
    /// Show the control loop's audit log of a subject: rounds, proposals, verdicts, outcomes.
    Audit(audit::Args),
    /// Serve the subjects as MCP tools over stdio, for AI assistants (changes gated and confirmed).
    Mcp(mcp::Args),
    /// Run a contract's conformance suite against a component: rules, faults, costs, grants.
    Check(check::Args),
}

/// A usage error: wrong name, flag value or arguments (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The operation failed and its error was already printed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("operation failed")]
pub struct Reported;

/// What commands share: the registries, the output format and a lazily built runtime.
pub struct Context {
    pub output: Output,
    pub components: Components,
    pub subjects: Subjects,
    runtime_options: RuntimeOptions,
}

impl Context {
    /// Builds the sandbox runtime (engine, linker, cache).
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        Runtime::new(self.runtime_options.clone())
    }
}

/// Runs the command and maps the outcome to an exit code.
fn main() -> ExitCode {
    // Behave like other Unix tools when the reader of our output goes away (`| head`): end
    // quietly instead of panicking on a broken pipe.
    // SAFETY: setting a signal disposition to SIG_DFL at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);

    let mut component_dirs = cli.global.components_dir.clone();
    component_dirs.extend(sources::component_dirs());
    let mut subject_dirs = cli.global.subjects_dir.clone();
    subject_dirs.extend(sources::subject_dirs());
    let mut runtime_options = RuntimeOptions { perf_map: cli.global.perf_map, ..RuntimeOptions::default() };
    if cli.global.no_cache {
        runtime_options.cache_dir = None;
    } else if let Some(dir) = &cli.global.cache_dir {
        runtime_options.cache_dir = Some(dir.clone());
    }
    let junit = cli.global.output == OutputArg::Junit;
    let ctx = Context {
        output: if cli.global.output == OutputArg::Json { Output::Json } else { Output::Table },
        components: sources::components(component_dirs),
        subjects: Subjects::new(subject_dirs),
        runtime_options,
    };

    let tokio = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = tokio.block_on(async {
        if junit && !matches!(cli.command, Command::Check(_)) {
            return Err(UsageError("--output junit is for `operator check`; use table or json here".into()).into());
        }
        match cli.command {
            Command::Subject(args) => subject::run(&ctx, args).await,
            Command::Inspect(args) => inspect::run(&ctx, args),
            Command::Call(args) => call::run(&ctx, args).await,
            Command::Components(args) => components::run(&ctx, args),
            Command::Simulate(args) => simulate::run(args).await,
            Command::Deploy(args) => deploy::run(&ctx, args).await,
            Command::Run(args) => run::run(&ctx, args).await,
            Command::Audit(args) => audit::run(&ctx, args),
            Command::Mcp(args) => mcp::run(&ctx, args).await,
            Command::Check(args) => check::run(&ctx, args, junit).await,
        }
    });
    // Do not wait for a guest still blocked in a host call to notice it was cancelled.
    tokio.shutdown_background();

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::from(1),
        Err(e) => {
            let usage = is_usage_error(&e);
            render::print_error(&e, ctx.output);
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn is_usage_error(e: &anyhow::Error) -> bool {
    use operator_host::LoadError;
    use operator_host::dynamic::ArgumentError;
    use operator_host::registry::LookupError;
    e.is::<UsageError>()
        || e.is::<ArgumentError>()
        || matches!(e.downcast_ref::<LoadError>(), Some(LoadError::NotFound { .. }))
        || matches!(e.downcast_ref::<LookupError>(), Some(LookupError::NotFound { .. }))
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,component=info",
        1 => "info",
        2 => "debug,cranelift_codegen=info,wasmtime_cranelift=info",
        _ => "trace,cranelift_codegen=info,wasmtime_cranelift=info",
    };
    let filter = EnvFilter::try_from_env("OPERATOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(verbose >= 2)
        .init();
}
