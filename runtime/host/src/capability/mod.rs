//! Host capabilities a component may import. Each owns its state ([`http::HttpHost`],
//! [`docker::DockerHost`] (which also serves [`swarm`], sharing its log streams), [`log::ComponentLog`], [`progress::ProgressHost`]) beside the call's
//! shared [`context::CallContext`] (clock, budgets, refusals), is linked to its own field of the
//! store data, and is unit-tested through its WIT trait with a fake transport or engine.

pub mod context;
pub mod docker;
pub mod http;
pub mod log;
pub mod progress;
pub mod stdio;
pub mod swarm;
