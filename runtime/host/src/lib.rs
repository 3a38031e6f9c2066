//! The operator runtime: runs WebAssembly components that observe and operate distributed
//! systems, giving each one only what its grants allow.
//!
//! - [`engine`]: the wasmtime engine, the compile cache and loading of components.
//! - [`sandbox`]: the store data of a call, its policy, budgets and named errors;
//!   [`call`]: one supervised call, the same for every contract.
//! - [`host`]: the capabilities a component may import (HTTP, log, Docker, progress).
//! - [`manifest`]: grant manifests; [`limits`]: the budgets and their units.
//! - [`registry`]: finding components and subjects by name.
//! - [`subject`]: typed calls to Subject adapters; [`dynamic`]: calls to any export;
//!   [`inspect`]: a component's world without running it.
//! - [`text`]: foreign text made safe for a terminal; [`files`]: foreign files read bounded.

pub mod audit;
mod bindings;
pub mod cache;
pub mod call;
pub mod capability;
pub mod conformance;
pub mod contract;
pub mod control;
pub mod deploy;
pub mod dynamic;
pub mod engine;
pub mod error;
pub mod files;
pub mod gate;
pub mod inspect;
pub mod limits;
pub mod manifest;
pub mod policy;
pub mod registry;
pub mod sandbox;
pub mod subject;
pub mod text;

pub use engine::{LoadOrigin, LoadedComponent, Runtime, RuntimeOptions};
pub use error::{Budget, CallError, LoadError};
pub use sandbox::{CallOutcome, CallReport, FailedCall, Overrides, Policy};
