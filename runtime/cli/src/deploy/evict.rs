//! Moving a member's leaders away before Swarm restarts it, through the subject's own adapter
//! (the Subject contract's `stores`, `hot-write-regions` and `transfer-leader`): what TiUP and
//! TiDB Operator do before restarting a TiKV store, for any subject whose adapter can move a
//! leader.
//!
//! A service is a member when a store's address names it as its host (`etcd1:2379` is service
//! `etcd1`), as compose-style subjects advertise themselves. A service that is no member
//! (Prometheus) restarts at once.

use std::time::{Duration, Instant};

use operator_host::capability::progress::{Phase, ProgressSink};
use operator_host::engine::{LoadedComponent, Runtime};
use operator_host::sandbox::{CallOutcome, FailedCall, Overrides, Policy};
use operator_host::subject::{ClusterStore, StoreState, SubjectClient};
use operator_host::text::escape;

use crate::Context;
use crate::sandbox_args;

/// How long leaders may take to leave a member before its restart is refused.
const EVICT_TIMEOUT: Duration = Duration::from_secs(60);
/// Hot regions asked for per round: the groups whose leaders are seen and moved.
const REGIONS: u32 = 1000;

/// The subject's adapter, ready to move leaders.
pub struct Evictor {
    runtime: Runtime,
    component: LoadedComponent,
    name: String,
    policy: Policy,
}

fn value<T>(component: &str, r: Result<CallOutcome<T>, FailedCall>) -> anyhow::Result<T> {
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

/// The host part of an address (`etcd1:2379` → `etcd1`, `[::1]:2379` → `::1`).
fn host_of(address: &str) -> &str {
    let a = address.split("://").last().unwrap_or(address);
    let a = a.split('/').next().unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h)
}

/// The store a service runs, by its address's host.
fn member<'a>(stores: &'a [ClusterStore], service: &str) -> Option<&'a ClusterStore> {
    stores.iter().find(|s| host_of(&s.address).eq_ignore_ascii_case(service))
}

impl Evictor {
    /// The subject's adapter, if it has one that can move leaders; says why not otherwise.
    /// `named_stack`: the stack's name when the user chose it (`-p`), which may be a cluster
    /// other than the one the manifest's endpoints reach.
    pub async fn open(
        ctx: &Context,
        subject: &str,
        named_stack: Option<&str>,
        endpoints: Vec<(String, url::Url)>,
    ) -> anyhow::Result<Option<Evictor>> {
        let (named, named_stack) = (named_stack.is_some(), named_stack.unwrap_or_default());
        let subject = ctx.subjects.find(subject)?;
        let Some(section) = &subject.manifest.subject else {
            eprintln!("note: subject {} has no adapter: services restart without moving leaders", subject.name);
            return Ok(None);
        };
        let file = ctx.components.resolve_in(&section.component, &subject.dir)?;
        let runtime = ctx.runtime()?;
        let component = sandbox_args::load(&runtime, &file)?;
        if named && endpoints.is_empty() {
            eprintln!(
                "note: moving leaders through {}'s endpoints as its manifest gives them; if stack {} runs elsewhere, \
                 point them at it with --endpoint NAME=URL",
                subject.name,
                escape(named_stack)
            );
        }
        let overrides = Overrides { endpoints, ..Overrides::default() };
        let policy = Policy::from_manifest(Some(&subject.manifest), &overrides);
        let evictor = Evictor { runtime, component, name: file.name.clone(), policy };
        let client = SubjectClient::new(&evictor.runtime, &evictor.component, evictor.policy.clone())?;
        let info = value(&evictor.name, client.describe().await)?;
        if !info.actions.iter().any(|a| a == "transfer-leader") {
            eprintln!(
                "note: {}'s adapter cannot transfer leaders: services restart without moving leaders",
                subject.name
            );
            return Ok(None);
        }
        Ok(Some(evictor))
    }

    /// Moves every leader the adapter shows on `service`'s store to another up member, and
    /// waits until the store leads nothing, within [`EVICT_TIMEOUT`] whatever the adapter does
    /// (each of its calls is bounded by its own budget too). A service that is no member
    /// returns at once.
    pub async fn evict(&self, service: &str, ui: &dyn ProgressSink) -> anyhow::Result<()> {
        // A round's calls may each take their whole budget: the deadline is checked between
        // them, and this bounds the rest.
        let limit = EVICT_TIMEOUT + Duration::from_secs(60);
        match tokio::time::timeout(limit, self.evict_within(service, ui)).await {
            Ok(r) => r,
            Err(_) => anyhow::bail!(
                "moving the leaders off {service} took longer than {} s; not restarting it (pass --no-evict to \
                 restart anyway)",
                limit.as_secs()
            ),
        }
    }

    async fn evict_within(&self, service: &str, ui: &dyn ProgressSink) -> anyhow::Result<()> {
        let client = SubjectClient::new(&self.runtime, &self.component, self.policy.clone())?;
        let task = format!("Leaders {service}");
        let deadline = Instant::now() + EVICT_TIMEOUT;
        loop {
            let stores = value(&self.name, client.stores().await)?.map_err(|e| {
                anyhow::anyhow!(
                    "cannot list the members before restarting {service}: {e}; point the adapter at the cluster \
                         with --endpoint NAME=URL, or restart without moving leaders with --no-evict"
                )
            })?;
            let Some(store) = member(&stores, service) else { return Ok(()) };
            if store.leader_count == 0 {
                ui.report(&task, Phase::Done, &format!("store {} leads nothing", store.id));
                return Ok(());
            }
            if Instant::now() >= deadline {
                ui.report(&task, Phase::Failed, "leaders did not move");
                anyhow::bail!(
                    "store {} ({service}) still leads {} groups after {} s; not restarting it (pass --no-evict to \
                     restart anyway)",
                    store.id,
                    store.leader_count,
                    EVICT_TIMEOUT.as_secs()
                );
            }
            ui.report(&task, Phase::Stopping, &format!("moving {} leaders off store {}", store.leader_count, store.id));
            let regions = value(&self.name, client.hot_write_regions(REGIONS).await)?
                .map_err(|e| anyhow::anyhow!("cannot list the groups before restarting {service}: {e}"))?;
            let up: Vec<u64> =
                stores.iter().filter(|s| s.state == StoreState::Up && s.id != store.id).map(|s| s.id).collect();
            for r in regions.iter().filter(|r| r.leader_store_id == Some(store.id)) {
                let Some(target) = r.peer_store_ids.iter().find(|p| up.contains(p)) else { continue };
                match value(&self.name, client.transfer_leader(r.id, *target).await)? {
                    Ok(t) => tracing::info!(
                        region = t.region_id,
                        to = t.to_store_id,
                        confirmed = t.confirmed,
                        "leader moved"
                    ),
                    Err(e) => tracing::warn!(region = r.id, "transfer-leader: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_found_by_the_host_of_its_address() {
        assert_eq!(host_of("etcd1:2379"), "etcd1");
        assert_eq!(host_of("http://tikv-2:20160/x"), "tikv-2");
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("etcd3"), "etcd3");
    }
}
