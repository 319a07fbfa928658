//! The `pushwire` command line: a thin layer that parses flags and runs the library.

mod config_check;
mod config_file;
mod pubsub;
mod serve;
mod token;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// What `pushwire --version` prints after the name: the package's version and the
/// git commit it was built from (`unknown` when built outside a git checkout; see
/// `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PUSHWIRE_GIT_COMMIT"),
    ")"
);

/// pushwire: a real-time push server. Browsers connect over WebSocket and get data the
/// moment the server has it.
///
/// Run without a subcommand, pushwire serves the counter demo: open the URL it prints,
/// and the page counts up once a second over its own WebSocket.
#[derive(Debug, Parser)]
#[command(name = "pushwire", version = VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the counter demo (what pushwire does without a subcommand).
    // Boxed: the serve flags are many, and the other commands should not pay for them.
    Serve(Box<serve::ServeArgs>),
    /// Measure a running server (see `pushwire bench --help`).
    #[command(subcommand)]
    Bench(pushwire_bench::Scenario),
    /// Publish a message on a topic of a running server.
    #[command(long_about = pubsub::PUB_ABOUT)]
    Pub(pubsub::PubArgs),
    /// Print the messages of topics of a running server.
    #[command(long_about = pubsub::SUB_ABOUT)]
    Sub(pubsub::SubArgs),
    /// Print a token (JWT) for a client of a server that requires them.
    #[command(long_about = token::TOKEN_ABOUT)]
    Token(token::TokenArgs),
    /// Check a settings file (see `pushwire config check --help`).
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
}

/// Parses the command line and runs it; returns the process's exit code.
///
/// Every failure is one line on standard error and a non-zero exit: never a panic
/// message or a backtrace.
pub fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    // The server's settings file, for the server only: other subcommands never
    // fail on it.
    let serving = !matches!(
        raw.get(1).and_then(|a| a.to_str()),
        Some("bench" | "pub" | "sub" | "token" | "config" | "help")
    );
    if serving && let Some(path) = config_file::path(&raw) {
        match config_file::read(&path, &command) {
            Ok(settings) => command = config_file::apply(command, &settings, &[&["serve"]]),
            Err(err) => {
                eprintln!("pushwire: error: {err}");
                return ExitCode::from(2);
            }
        }
    }
    let parsed = command
        .try_get_matches_from(&raw)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let rendered = err.render().to_string();
            eprintln!("pushwire: {} (see pushwire --help)", one_line(&rendered));
            return ExitCode::from(2);
        }
    };
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Bench(scenario)) => {
            return block_on(async {
                pushwire_bench::run(scenario)
                    .await
                    .map_err(|e| e.to_string())
            });
        }
        Some(Command::Pub(args)) => return pubsub::publish(args),
        Some(Command::Sub(args)) => return pubsub::subscribe(args),
        Some(Command::Token(args)) => return token::run(args),
        Some(Command::Config(config_check::ConfigCommand::Check(args))) => {
            return config_check::run(&raw, args.file());
        }
        None => cli.serve,
    };
    let config_file = args.config_file().map(std::path::Path::to_owned);
    let config = match args.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("pushwire: error: {err}");
            return ExitCode::from(2);
        }
    };
    pushwire::logging::init_with(config.log_format, config.log_filter.as_deref());
    if let Some(file) = config_file {
        tracing::info!("settings from {}", file.display());
    }
    block_on(async { serve::run(config).await.map_err(|e| e.to_string()) })
}

/// A clap error as one line: its message and details (such as the missing
/// arguments), without the usage and tips that follow.
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    if parts.is_empty() {
        String::from("error: invalid arguments")
    } else {
        parts.join(" ")
    }
}

/// Runs `work` on a new multi-threaded runtime; an error is one line on stderr.
fn block_on(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pushwire: error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pushwire: error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clap_error_keeps_its_details_on_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <TOPIC>...\n\nUsage: pushwire sub <TOPIC>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: <TOPIC>..."
        );
        assert_eq!(
            one_line(
                "error: unexpected argument '--x' found\n\n  tip: to pass '--x' as a value, use '-- --x'\n\nUsage: pushwire\n"
            ),
            "error: unexpected argument '--x' found"
        );
        assert_eq!(one_line(""), "error: invalid arguments");
    }
}
