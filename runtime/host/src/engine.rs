//! The wasmtime engine, the linker every component is checked against, and loading
//! (compile-or-cache) of components.
//!
//! One [`Runtime`] per process. Its engine interrupts guests by epochs: a ticker thread bumps
//! the epoch every [`EPOCH_TICK`], and each store's callback decides, from the call's own
//! clock, whether to keep going or stop. Instances come from the pooling allocator when the
//! machine allows it (virtual memory is reserved up front) and from the on-demand allocator
//! otherwise.
//!
//! Compiling untrusted bytes is not bounded by wasmtime (compile-time denial of service is
//! outside its threat model), so compilation runs on its own thread and the load gives up
//! after a timeout.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::cache::ArtifactCache;
use crate::capability::http::{HttpTransport, ReqwestTransport};
use crate::error::{CallError, HostAbort, LoadError};
use crate::sandbox::{CallState, EPOCH_TICK};

/// The largest component accepted.
pub const MAX_COMPONENT_SIZE: u64 = 256 * 1024 * 1024;
/// Guest wasm stack; overflowing it is a clean trap.
const MAX_WASM_STACK: usize = 1024 * 1024;

/// How a [`Runtime`] is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled artifacts are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How long compiling one component may take.
    pub compile_timeout: Duration,
    /// Use the pooling allocator when the machine allows it.
    pub pooling: bool,
    /// Write `/tmp/perf-<pid>.map` so `perf report` names the guest's functions: how an
    /// adapter author profiles a component (`operator --perf-map`, `OPERATOR_PERFMAP=1`).
    pub perf_map: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: ArtifactCache::default_dir(),
            compile_timeout: Duration::from_secs(300),
            pooling: true,
            perf_map: false,
        }
    }
}

/// The sandbox host: an engine, the linker with every host capability, and the compile cache.
pub struct Runtime {
    pub(crate) engine: Engine,
    linker: Linker<CallState>,
    cache: Option<ArtifactCache>,
    compat: String,
    compile_timeout: Duration,
    pub(crate) transport: Arc<dyn HttpTransport>,
    pooling: bool,
}

/// A component compiled and linked, ready to instantiate many times.
pub struct LoadedComponent {
    /// Name it was loaded under (a registry name or a file stem).
    pub name: String,
    /// Hex sha256 of the component bytes.
    pub digest: String,
    /// Size of the component bytes.
    pub size: u64,
    /// How it was obtained: compiled now or loaded from the cache.
    pub origin: LoadOrigin,
    pub(crate) component: Component,
    pub(crate) pre: InstancePre<CallState>,
}

/// Whether a load compiled the component or reused a cached artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOrigin {
    Compiled { took: Duration, cached_at: Option<PathBuf> },
    Cache { path: PathBuf, took: Duration },
}

impl Runtime {
    /// Builds the engine (pooling if possible), the linker and the cache; starts the epoch ticker.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Runtime> {
        let (engine, pooling) = match options.pooling.then(|| Engine::new(&config(true, options.perf_map))) {
            Some(Ok(engine)) => (engine, true),
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!("pooling allocator unavailable ({e}); using on-demand allocation");
                }
                (
                    Engine::new(&config(false, options.perf_map))
                        .map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))?,
                    false,
                )
            }
        };
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        link_host(&mut linker).map_err(|e| anyhow::anyhow!("cannot link host capabilities: {e}"))?;

        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);

        // A folder that cannot be created or written just means compiling every time; one that
        // someone else controls could feed us native code, so it stops the runtime.
        let cache = match options.cache_dir.as_deref().map(ArtifactCache::open) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e @ crate::cache::CacheError::Unsafe { .. })) => return Err(e.into()),
            Some(Err(e)) => {
                tracing::warn!("not using the compile cache: {e}");
                None
            }
        };
        let transport = Arc::new(ReqwestTransport::new()?);
        Ok(Runtime { engine, linker, cache, compat, compile_timeout: options.compile_timeout, transport, pooling })
    }

    /// Replaces the HTTP transport (tests use an in-process one).
    pub fn with_transport(mut self, transport: Arc<dyn HttpTransport>) -> Self {
        self.transport = transport;
        self
    }

    /// True when instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Compiles (or loads from the cache) and links a component.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        if bytes.len() as u64 > MAX_COMPONENT_SIZE {
            return Err(LoadError::TooBig { name: name.into(), size: bytes.len() as u64, limit: MAX_COMPONENT_SIZE });
        }
        check_component_header(bytes)?;
        let digest = hex::encode(Sha256::digest(bytes));
        let start = Instant::now();

        let cached = self.cache.as_ref().and_then(|c| {
            let artifact = c.get(&digest, &self.compat)?;
            // SAFETY: the file carries a MAC keyed by this cache's private key, so it is exactly
            // an artifact this runtime produced with `precompile_component` on an engine with the
            // same compatibility hash; it is mapped through the descriptor that was verified, and
            // the cache never modifies a file in place (new artifacts are renamed over old ones).
            match unsafe { Component::deserialize_file(&self.engine, artifact.path()) } {
                Ok(component) => Some((component, c.path(&digest, &self.compat))),
                Err(e) => {
                    tracing::debug!("cached artifact unusable, recompiling: {e}");
                    None
                }
            }
        });

        let (component, origin) = match cached {
            Some((component, path)) => {
                let took = start.elapsed();
                tracing::info!(
                    component = name,
                    "loaded compiled artifact from cache {} in {:.2?}",
                    path.display(),
                    took
                );
                (component, LoadOrigin::Cache { path, took })
            }
            None => {
                let artifact = self.compile(name, bytes)?;
                let cached_at = self.cache.as_ref().and_then(|c| match c.put(&digest, &self.compat, &artifact) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!("could not cache the compiled component: {e}");
                        None
                    }
                });
                // SAFETY: `artifact` was produced just now by `precompile_component` on this engine.
                let component = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| CallError::InvalidComponent { detail: format!("{e:#}") })?;
                let took = start.elapsed();
                match &cached_at {
                    Some(p) => tracing::info!(component = name, "compiled in {took:.2?}; cached at {}", p.display()),
                    None => tracing::info!(component = name, "compiled in {took:.2?} (not cached)"),
                }
                (component, LoadOrigin::Compiled { took, cached_at })
            }
        };

        let pre = self.link(&component)?;
        Ok(LoadedComponent { name: name.into(), digest, size: bytes.len() as u64, origin, component, pre })
    }

    fn compile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        let engine = self.engine.clone();
        let bytes = bytes.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("compile-{name}"))
            .spawn(move || {
                let _ = tx.send(engine.precompile_component(&bytes));
            })
            .map_err(|e| CallError::InvalidComponent { detail: format!("cannot start the compiler thread: {e}") })?;
        match rx.recv_timeout(self.compile_timeout) {
            Ok(Ok(artifact)) => Ok(artifact),
            Ok(Err(e)) => Err(CallError::InvalidComponent { detail: format!("{e:#}") }.into()),
            Err(_) => Err(LoadError::CompileTimeout { name: name.into(), limit: self.compile_timeout }),
        }
    }

    /// Links a component against the host. Imports the host does not provide are linked to a
    /// function that fails with `denied` when called, so a component can still run the parts
    /// that do not need them.
    fn link(&self, component: &Component) -> Result<InstancePre<CallState>, CallError> {
        let mut linker = self.linker.clone();
        stub_foreign_imports(&mut linker, component, &self.engine)
            .map_err(|e| CallError::InvalidComponent { detail: format!("{e:#}") })?;
        linker.instantiate_pre(component).map_err(|e| CallError::ContractMismatch {
            detail: format!("the component's imports do not match what this host provides: {e:#}"),
        })
    }
}

/// Links every import the host does not provide to a stub that stops the call with `denied`.
fn stub_foreign_imports(
    linker: &mut Linker<CallState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;

    fn stub(
        name: String,
    ) -> impl Fn(
        wasmtime::StoreContextMut<'_, CallState>,
        wasmtime::component::types::ComponentFunc,
        &[wasmtime::component::Val],
        &mut [wasmtime::component::Val],
    ) -> wasmtime::Result<()>
    + Send
    + Sync
    + 'static {
        move |_, _, _, _| Err(HostAbort::UnknownImport(name.clone()).into())
    }

    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if crate::contract::provided_by_host(name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentFunc(_) => linker.root().func_new(name, stub(name.to_string()))?,
            ComponentItem::Resource(_) => linker.root().resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?,
            ComponentItem::ComponentInstance(instance) => {
                let mut scope = linker.instance(name)?;
                for (export, export_item) in instance.exports(engine) {
                    match export_item.ty {
                        ComponentItem::ComponentFunc(_) => scope.func_new(export, stub(format!("{name}#{export}")))?,
                        ComponentItem::Resource(_) => {
                            scope.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rejects core modules and non-wasm bytes with a precise message before compiling.
fn check_component_header(bytes: &[u8]) -> Result<(), CallError> {
    let invalid = |detail: &str| CallError::InvalidComponent { detail: detail.into() };
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(invalid("not a WebAssembly file (no `\\0asm` header)"));
    }
    match (bytes[4..6] == [1, 0], bytes[6..8] == [0, 0]) {
        (true, true) => Err(invalid(
            "this is a core wasm module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`",
        )),
        (_, false) => Ok(()),
        _ => Err(invalid("unknown WebAssembly version")),
    }
}

fn config(pooling: bool, perf_map: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if perf_map {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.max_wasm_stack(MAX_WASM_STACK);
    // Enough frames to tell a recursion that overflowed the stack in linear memory
    // (`sandbox::RECURSION_FRAMES`) from an out-of-bounds access.
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(crate::sandbox::RECURSION_FRAMES));
    config.async_stack_size(MAX_WASM_STACK + 2 * 1024 * 1024);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(16)
            .total_core_instances(512)
            .total_memories(64)
            .total_tables(256)
            .total_stacks(16)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(16 << 20)
            .max_core_instances_per_component(128)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .table_elements(200_000)
            .max_memory_size(crate::limits::MAX_MEMORY as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Links WASI (denying files, environment and sockets) and each capability to its own field of
/// the call's state.
fn link_host(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use crate::capability::docker::DockerHost;
    use crate::capability::http::HttpHost;
    use crate::capability::log::ComponentLog;
    use crate::capability::progress::ProgressHost;
    use wasmtime::component::HasSelf;
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    bindings::http::add_to_linker::<_, HasSelf<HttpHost>>(linker, |s| &mut s.http)?;
    bindings::log::add_to_linker::<_, HasSelf<ComponentLog>>(linker, |s| &mut s.log)?;
    bindings::docker::add_to_linker::<_, HasSelf<DockerHost>>(linker, |s| &mut s.docker)?;
    bindings::swarm::add_to_linker::<_, HasSelf<DockerHost>>(linker, |s| &mut s.docker)?;
    bindings::progress::add_to_linker::<_, HasSelf<ProgressHost>>(linker, |s| &mut s.progress)?;
    // `sandbox` only defines types (the `denial` the others return): nothing to route.
    bindings::sandbox::add_to_linker::<_, HasSelf<CallState>>(linker, |s| s)?;
    Ok(())
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker ({e}); guest deadlines fall back to the watchdog");
    }
}

/// Feeds `Hash` output into sha256 (stable across processes, unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_and_garbage_are_refused_before_compiling() {
        let e = check_component_header(b"\0asm\x01\0\0\0").expect_err("core module");
        assert!(e.to_string().contains("core wasm module, not a component"), "{e}");
        let e = check_component_header(b"hello world").expect_err("garbage");
        assert!(e.to_string().contains("not a WebAssembly file"), "{e}");
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
