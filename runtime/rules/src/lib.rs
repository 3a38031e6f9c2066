//! Rules both sides of the sandbox must agree on, in one place: the host (`operator-host`) and
//! the components (the compose driver) depend on this crate instead of each writing its own.
//!
//! - [`names`]: how a project's containers, networks and volumes are named. The host is the
//!   owner — it names what it creates and returns the real names — and a driver that must know
//!   a name before asking (to wait for a dependency) derives it with the same function.
//! - [`vars`]: compose's `$VAR` syntax, evaluated by the driver against the variables it is
//!   given and by the host, with none, to find the registries a compose file names literally.
//! - [`calendar`]: civil dates, for the CLI's tables and the simulator's timestamps.
//!
//! Pure and dependency-free: it compiles for the host and for `wasm32-wasip2` alike.

pub mod calendar;
pub mod names;
pub mod vars;
