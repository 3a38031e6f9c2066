//! Flags that shape a sandboxed call (grants and limits), shared by `subject` and `call`, and
//! the steps they share: loading a component with a progress spinner, building the policy,
//! and reporting what the call did besides its result.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use operator_host::limits::{ByteSize, HumanDuration, LimitOverrides};
use operator_host::manifest::{Manifest, parse_endpoint_url, valid_name};
use operator_host::registry::ComponentFile;
use operator_host::{CallReport, LoadedComponent, Overrides, Policy, Runtime};
use url::Url;

/// Grant and limit flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Point endpoint NAME at URL. A name the manifest lacks is granted GET and HEAD only.
    #[arg(long = "endpoint", global = true, value_name = "NAME=URL", value_parser = parse_endpoint)]
    pub endpoints: Vec<(String, Url)>,
    /// Grant manifest to use instead of the subject's `operator.toml`.
    #[arg(long, global = true, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Guest execution time allowed per call (host calls excluded), e.g. 500ms, 5s.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Time allowed waiting in host calls (HTTP...) per call.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub host_time: Option<Duration>,
    /// Linear memory allowed, e.g. 64MiB.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Largest HTTP response body a component may receive.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub response_limit: Option<u64>,
    /// Largest result a call may return.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub output_limit: Option<u64>,
}

impl SandboxArgs {
    /// The manifest to use: `--manifest`, else the given default.
    pub fn manifest(&self, default: Option<Manifest>) -> anyhow::Result<Option<Manifest>> {
        match &self.manifest {
            Some(path) => Ok(Some(operator_host::registry::load_named_manifest(path)?)),
            None => Ok(default),
        }
    }

    /// Grants and limits from the manifest, then these flags.
    pub fn policy(&self, manifest: Option<&Manifest>) -> Policy {
        Policy::from_manifest(manifest, &self.overrides())
    }

    /// What these flags change over a manifest.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            endpoints: self.endpoints.clone(),
            limits: LimitOverrides {
                deadline: self.deadline,
                host_time: self.host_time,
                memory: self.memory,
                response_size: self.response_limit,
                output: self.output_limit,
                stdio: None,
            },
        }
    }
}

pub(crate) fn parse_endpoint(s: &str) -> Result<(String, Url), String> {
    let (name, url) = s.split_once('=').ok_or("expected NAME=URL, e.g. pd=http://127.0.0.1:2379")?;
    if !valid_name(name) {
        return Err(format!("`{name}` is not an endpoint name (lower-case letters, digits, `-`)"));
    }
    Ok((name.to_string(), parse_endpoint_url(url)?))
}

/// A duration flag (`500ms`, `5s`, `2m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>().map(|d| d.0).map_err(|e| e.to_string())
}

fn parse_size(s: &str) -> Result<u64, String> {
    let size = s.parse::<ByteSize>().map_err(|e| e.to_string())?.0;
    if size > operator_host::limits::MAX_MEMORY {
        return Err("sizes above 4GiB cannot be used by a 32-bit wasm guest".into());
    }
    Ok(size)
}

/// Compiles or loads a component, with a spinner while a (slow) compile runs.
pub fn load(runtime: &Runtime, file: &ComponentFile) -> anyhow::Result<LoadedComponent> {
    let spinner = ProgressBar::new_spinner();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(format!("loading {}", operator_host::text::escape(&file.name)));
        spinner.enable_steady_tick(Duration::from_millis(100));
    } else {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let loaded = runtime.load(&file.name, &file.bytes);
    spinner.finish_and_clear();
    Ok(loaded?)
}

/// Reports what a call did besides its result: refused requests (with the grant that would
/// allow them), cut output, dropped logs; and with -v its costs and its stdout/stderr.
pub fn report(component: &str, r: &CallReport) {
    // A component's name is its file's: a subject folder chooses it.
    let component = &*operator_host::text::escape(component);
    for d in &r.denials {
        super::render::denial(&d.reason, &d.hint);
    }
    if r.denials_dropped > 0 {
        eprintln!("denied: {} more requests (not shown)", r.denials_dropped);
    }
    for (stream, c) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if c.dropped > 0 {
            eprintln!(
                "warning: output-too-large: {component} wrote {} to {stream}; the middle {} was cut (not an error)",
                ByteSize(c.total),
                ByteSize(c.dropped)
            );
        }
        if !c.text.is_empty() {
            tracing::info!("{component} {stream}:\n{}", operator_host::text::escape_lines(c.text.trim_end()));
        }
    }
    if r.logs_dropped > 0 {
        eprintln!("warning: {component} logged too much; {} messages were dropped", r.logs_dropped);
    }
    if r.progress_dropped > 0 {
        eprintln!(
            "warning: {component} reported progress too often or on too many tasks; {} reports were not shown",
            r.progress_dropped
        );
    }
    tracing::info!(
        "{component}: guest time {:.2?}, host time {:.2?}, peak memory {}",
        r.guest_time,
        r.host_time,
        ByteSize(r.peak_memory)
    );
}
