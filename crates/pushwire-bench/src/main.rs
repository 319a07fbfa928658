//! `pushwire-bench`: the load generator on its own, the same scenarios as
//! `pushwire bench` (`pushwire-bench fanout --url ws://…` is `pushwire bench fanout
//! --url ws://…`).

use std::process::ExitCode;

use clap::Parser;

/// Measure a running server: pushwire, or any peer offering the same endpoints.
#[derive(Debug, Parser)]
#[command(name = "pushwire-bench", version)]
struct Cli {
    #[command(subcommand)]
    scenario: pushwire_bench::Scenario,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pushwire-bench: error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pushwire_bench::run(cli.scenario)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pushwire-bench: error: {err}");
            ExitCode::FAILURE
        }
    }
}
