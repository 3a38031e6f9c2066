//! Host capabilities a component may import. Each lives in its own module behind plain Rust
//! types, with the glue to the generated WIT traits at the bottom of the module.

pub mod docker;
pub mod http;
pub mod log;
pub mod progress;
pub mod stdio;

use crate::bindings::sandbox;
use crate::sandbox::HostState;

/// `operator:core/sandbox` only defines types.
impl sandbox::Host for HostState {}
