//! `operator inspect <COMPONENT|PATH>`: what a component imports and exports, what this host
//! gives it behind each import, and the grants its subject's manifest gives it. Nothing runs.

use operator_host::inspect::inspect;
use operator_host::limits::ByteSize;
use operator_host::manifest::{DockerSection, Manifest, Origin};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::render;
use super::{Context, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A component name (see `operator components`) or a path to a .wasm file.
    component: String,
    /// Show the grants of this manifest instead of the subject's.
    #[arg(long, value_name = "FILE")]
    manifest: Option<std::path::PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let file = ctx.components.resolve(&args.component)?;
    let info = inspect(&file.bytes)?;
    let digest = hex::encode(Sha256::digest(&file.bytes));
    let manifest = match &args.manifest {
        Some(path) => Some(Manifest::load(path)?),
        // Named (not given by path): the subject that runs it by that name grants it.
        None if !operator_host::registry::is_path(&args.component) => {
            ctx.subjects.for_component(&file.name).map(|s| s.manifest)
        }
        None => None,
    };

    if ctx.output == Output::Json {
        let grants = manifest.as_ref().map(|m| {
            json!({
                "manifest": m.path,
                "endpoints": m.endpoints.values().map(|e| json!({
                    "name": e.name,
                    "url": e.url.as_str(),
                    "allow": e.rules.iter().map(|r| json!({"methods": r.methods, "paths": r.paths})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "deployment": m.deployment.as_ref().map(|d| json!({
                    "driver": d.driver,
                    "compose_file": d.compose_file,
                    "urls": d.urls,
                    "env": d.env,
                    "registries": d.registries,
                    "docker": docker_grants(&d.docker),
                })),
            })
        });
        return render::json(&json!({
            "name": file.name,
            "source": file.source,
            "sha256": digest,
            "size": file.bytes.len(),
            "world": info,
            "grants": grants,
        }));
    }

    let e = |t: &str| operator_host::text::escape(t).into_owned();
    println!("component  {} ({})", e(&file.name), e(&file.source.to_string()));
    println!("sha256     {digest}");
    println!("size       {}", ByteSize(file.bytes.len() as u64));
    println!(
        "world      {}{}",
        operator_host::text::escape(&info.world),
        info.contract.as_deref().map(|c| format!(" (implements the {c} contract)")).unwrap_or_default()
    );
    // Names and signatures come from the component's bytes: shown, never obeyed.
    println!("\nimports (what it asks for, and what this host gives it):");
    for i in &info.imports {
        println!("  {}\n      host: {}", e(&i.name), i.host.as_deref().unwrap_or("-"));
        for f in &i.functions {
            println!("      {}", e(f));
        }
    }
    println!("\nexports:");
    for x in &info.exports {
        println!("  {}", e(&x.name));
        for f in &x.functions {
            println!("      {}", e(f));
        }
    }
    println!();
    match &manifest {
        None => println!("grants: none (no subject uses this component; pass --manifest FILE to check one)"),
        Some(m) => {
            println!("grants ({}):", e(&m.path.display().to_string()));
            if m.endpoints.is_empty() {
                println!("  no HTTP endpoints");
            }
            for e in m.endpoints.values() {
                let line = match &e.origin {
                    Origin::Manifest { line, .. } => format!(" (line {line})"),
                    Origin::CommandLine => String::new(),
                };
                println!("  endpoint {} -> {}{line}", e.name, e.url);
                for r in &e.rules {
                    println!("      {:<12} {}", r.methods.join(","), r.paths.join("  "));
                }
            }
            if let Some(d) = &m.deployment {
                let env = if d.env.is_empty() { "none".to_string() } else { d.env.join(", ") };
                let registries = match &d.registries {
                    Some(r) => r.join(", "),
                    None => "those the compose file names literally".into(),
                };
                println!(
                    "  deployment: driver {}, compose file {}",
                    e(d.driver.as_deref().unwrap_or("compose")),
                    e(d.compose_file.as_deref().unwrap_or("(compose's default names)"))
                );
                println!("  deployment: environment variables passed: {env}; registries: {registries}");
                for (name, url) in &d.urls {
                    println!("  deployment: shows {} = {}", e(name), e(url));
                }
                let docker = docker_grants(&d.docker);
                if docker.is_empty() {
                    println!("  docker: nothing beyond the project's own resources");
                }
                for g in docker {
                    println!("  docker: {g}");
                }
            }
        }
    }
    Ok(())
}

/// The `[deployment.docker]` grants that open something, in manifest syntax.
fn docker_grants(d: &DockerSection) -> Vec<String> {
    let mut out = Vec::new();
    for (on, name) in [
        (d.privileged, "privileged"),
        (d.host_network, "host-network"),
        (d.host_pid, "host-pid"),
        (d.host_ipc, "host-ipc"),
        (d.docker_socket, "docker-socket"),
        (d.low_ports, "low-ports"),
        (d.swarm_ports, "swarm-ports"),
        (d.extra_hosts, "extra-hosts"),
        (d.restart_always, "restart-always"),
    ] {
        if on {
            out.push(format!("{name} = true"));
        }
    }
    for (list, name) in [
        (&d.cap_add, "cap-add"),
        (&d.devices, "devices"),
        (&d.host_paths, "host-paths"),
        (&d.writable_paths, "writable-paths"),
        (&d.publish_addresses, "publish-addresses"),
        (&d.ulimits, "ulimits"),
        (&d.labels, "labels"),
    ] {
        if !list.is_empty() {
            out.push(format!("{name} = {list:?}"));
        }
    }
    out
}
