//! End-to-end tests: they build the test components from source and drive the real
//! `operator` binary (and, where a test needs one process for several calls, the library).

mod check;
mod cli;
mod deploy;
mod docker_scope;
mod etcd;
mod harness;
mod hostile;
mod hostile_policy;
mod mcp;
mod policy;
mod swarm;
mod tikv;
