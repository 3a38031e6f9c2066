//! Generated host bindings for the WIT worlds in `wit/`, one module per served version of
//! `operator:core` (the list is `contract::OPERATOR_CORE`). Private to the crate: the rest of
//! the host converts to and from its own types at the edges.
//!
//! A new version gets its own module generated from its own folder, linked beside the older
//! ones; the re-exports below name the newest, which the host's own types follow.

#![allow(missing_docs, clippy::all)]

/// `operator:core@0.1.x`, from `wit/since_v0.1.0`.
pub(crate) mod v0_1 {
    /// Host side of `world subject-adapter`.
    pub(crate) mod subject {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "subject-adapter",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }

    /// Host side of `world deployment-driver`; shares the log and sandbox types with `subject`.
    pub(crate) mod deployment {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "deployment-driver",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "operator:core/log": super::subject::operator::core::log,
                "operator:core/sandbox": super::subject::operator::core::sandbox,
                "operator:core/docker.log-stream": crate::capability::docker::LogStream,
                "operator:core/docker.event-stream": crate::capability::docker::EventStream,
            },
        });
    }
}

/// `operator:policy@0.1.x`, from `wit/policy/since_v0.1.0` (on `operator:core@0.1`, whose log
/// and types it shares with the modules above).
pub(crate) mod policy_v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/policy/since_v0.1.0",
        world: "policy-component",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "operator:core/log": super::v0_1::subject::operator::core::log,
            "operator:core/types": super::v0_1::subject::operator::core::types,
        },
    });
}

/// `operator:swarm@0.1.x`, from `wit/swarm/since_v0.1.0`: the `swarm` capability a Swarm
/// driver imports. Its world includes `operator:core`'s `deployment-driver`, so a Swarm driver
/// is called through [`deployment`] like any driver; only the `swarm` import is linked from here.
pub(crate) mod swarm_v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/swarm/since_v0.1.0",
        world: "swarm-driver",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "operator:core/log": super::v0_1::subject::operator::core::log,
            "operator:core/sandbox": super::v0_1::subject::operator::core::sandbox,
            "operator:core/docker": super::v0_1::deployment::operator::core::docker,
            "operator:core/progress": super::v0_1::deployment::operator::core::progress,
        },
    });
}

pub(crate) use policy_v0_1 as policy;
pub(crate) use swarm_v0_1::operator::swarm::swarm;
pub(crate) use v0_1::deployment::operator::core::{docker, progress};
pub(crate) use v0_1::subject::operator::core::{http, log, sandbox};
pub(crate) use v0_1::{deployment, subject};
