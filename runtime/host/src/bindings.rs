//! Generated host bindings for the WIT worlds in `wit/`. Private to the crate: the rest of the
//! runtime converts to and from its own types at the edges.

#![allow(missing_docs, clippy::all)]

/// Host side of `world subject-adapter`.
pub(crate) mod subject {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "subject-adapter",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Host side of `world deployment-driver`; shares the log and sandbox types with `subject`.
pub(crate) mod deployment {
    wasmtime::component::bindgen!({
        path: "../../wit",
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

pub(crate) use deployment::operator::core::{docker, progress};
pub(crate) use subject::operator::core::{http, log, sandbox};
