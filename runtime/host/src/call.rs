//! One supervised call into a component, for every contract: a fresh store and instance, the
//! call's budgets, the output limit, and a named error for whatever went wrong.
//!
//! Every call gets a new `Store` (and so a new instance, ~20 µs from the `InstancePre`), which
//! is thrown away afterwards: a trapped instance is never entered again, and no state leaks
//! from one call to the next.
//!
//! A contract plugs in with [`Instantiate`] (how its generated `…Pre` makes its exports) and
//! its results with [`Output`] (how large they are); [`Sandboxed`] is then the one typed client
//! every contract's calls go through (`subject`, `deploy`, `dynamic`).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, UpdateDeadline};

use crate::engine::{LoadedComponent, Runtime};
use crate::error::{CallError, HostAbort};
use crate::sandbox::{CallOutcome, CallState, FailedCall, Policy, watchdog};

/// The body of a call: the future that instantiates and invokes, given the store.
pub type CallBody<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// A call's result, measured against the output limit.
pub trait Output {
    /// The size the limit applies to: bytes of the result as JSON, what `--output json` prints.
    fn output_size(&self) -> u64;
}

/// Nothing returned.
impl Output for () {
    fn output_size(&self) -> u64 {
        0
    }
}

/// Bytes of `value` as JSON.
pub fn json_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // A value that does not serialize (a float map key) counts as what it wrote so far.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

/// How a contract's pre-instantiated component becomes its typed exports in a store.
pub trait Instantiate: Clone + Send + Sync + 'static {
    /// What the instance offers the caller (the generated world struct, or the raw instance).
    type Exports: Send + Sync + 'static;
    /// The contract, for a mismatch's message (`the Subject contract (operator:core/subject@0.1.x)`).
    const CONTRACT: &'static str;
    /// Checks a linked component against the contract.
    fn bind(pre: InstancePre<CallState>) -> wasmtime::Result<Self>;
    /// Instantiates in `store`.
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<CallState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Exports>> + Send + 'a;
}

impl Instantiate for InstancePre<CallState> {
    type Exports = Instance;
    const CONTRACT: &'static str = "no contract";
    fn bind(pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        Ok(pre)
    }
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<CallState>,
    ) -> impl Future<Output = wasmtime::Result<Instance>> + Send + 'a {
        self.instantiate_async(store)
    }
}

/// Implements [`Instantiate`] for a `bindgen!`-generated `…Pre` type.
macro_rules! instantiate_world {
    ($pre:ty => $world:ty, $contract:literal) => {
        impl $crate::call::Instantiate for $pre {
            type Exports = $world;
            const CONTRACT: &'static str = $contract;
            fn bind(pre: wasmtime::component::InstancePre<$crate::sandbox::CallState>) -> wasmtime::Result<Self> {
                <$pre>::new(pre)
            }
            fn instantiate<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<$crate::sandbox::CallState>,
            ) -> impl std::future::Future<Output = wasmtime::Result<$world>> + Send + 'a {
                self.instantiate_async(store)
            }
        }
    };
}
pub(crate) use instantiate_world;

/// A component bound to a contract and a policy: each call runs on a fresh instance.
pub struct Sandboxed<'r, P> {
    runtime: &'r Runtime,
    component: &'r LoadedComponent,
    policy: Policy,
    pre: P,
}

impl<'r> Sandboxed<'r, InstancePre<CallState>> {
    /// `component` bound to no contract: calls get the raw instance (`operator call`, benches).
    pub fn untyped(runtime: &'r Runtime, component: &'r LoadedComponent, policy: Policy) -> Self {
        Sandboxed { runtime, component, policy, pre: component.pre.clone() }
    }
}

impl<'r, P: Instantiate> Sandboxed<'r, P> {
    /// Checks `component` against the contract `P` and binds it to `policy`.
    pub fn bind(runtime: &'r Runtime, component: &'r LoadedComponent, policy: Policy) -> Result<Self, CallError> {
        let pre = P::bind(component.pre.clone()).map_err(|e| CallError::ContractMismatch {
            detail: format!("`{}` does not implement {}: {e:#}", component.name, P::CONTRACT),
        })?;
        Ok(Sandboxed { runtime, component, policy, pre })
    }

    /// The same component and contract under another policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy calls run under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The component.
    pub fn component(&self) -> &LoadedComponent {
        self.component
    }

    /// Instantiates and runs `op` on the exports, under the policy.
    pub async fn call<R, F>(&self, op: F) -> Result<CallOutcome<R>, FailedCall>
    where
        R: Output + Send + 'static,
        F: for<'a> FnOnce(&'a P::Exports, &'a mut Store<CallState>) -> CallBody<'a, R> + Send + 'static,
    {
        let pre = self.pre.clone();
        self.runtime
            .run(self.component, &self.policy, move |store| {
                Box::pin(async move {
                    let exports = pre.instantiate(&mut *store).await?;
                    op(&exports, store).await
                })
            })
            .await
    }
}

impl Runtime {
    /// Runs `body` against a fresh store for `component` under `policy`; fails the call when
    /// its result is over the output limit. Whatever happens, the store is dropped afterwards.
    pub async fn run<R, F>(
        &self,
        component: &LoadedComponent,
        policy: &Policy,
        body: F,
    ) -> Result<CallOutcome<R>, FailedCall>
    where
        R: Output + Send,
        F: for<'a> FnOnce(&'a mut Store<CallState>) -> CallBody<'a, R>,
    {
        let limits = &policy.limits;
        let state = CallState::new(&component.name, policy, self.transport.clone());
        let clock = state.context.clone();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        let (tick, hook) = (clock.clone(), clock.clone());
        store.call_hook(move |_, h| {
            hook.clock().transition(h);
            Ok(())
        });
        store.epoch_deadline_callback(move |_| {
            let c = tick.clock();
            if c.guest_elapsed() >= c.deadline {
                Err(HostAbort::GuestDeadline.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        clock.clock().start();
        let result = {
            let call = body(&mut store);
            tokio::select! {
                r = call => r,
                abort = watchdog(clock.clock()) => Err(abort.into()),
            }
        };

        let state = store.data_mut();
        let report = state.report();
        match result {
            Ok(value) => {
                let size = value.output_size();
                if size > limits.output {
                    let error = CallError::OutputTooLarge { limit: limits.output, size };
                    return Err(FailedCall { error, report: Box::new(report) });
                }
                Ok(CallOutcome { value, report })
            }
            Err(e) => Err(FailedCall { error: state.classify(e, limits), report: Box::new(report) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_counts_what_json_output_prints() {
        let v = serde_json::json!({"a": [1, 2, "é"]});
        assert_eq!(json_size(&v), serde_json::to_vec(&v).expect("json").len() as u64);
    }
}
