//! `operator`: run sandboxed WebAssembly adapters against distributed systems.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
