//! Log output for programs built on pushwire.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::ops::ErrorLayer;

/// Sends `tracing` output to standard error, at `info` unless `RUST_LOG` says
/// otherwise (for example `RUST_LOG=pushwire=debug`); colours only on a terminal.
/// The `warn` and `error` events the filter lets through are also kept for the
/// admin page ([`crate::ops::errors`]). Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only if a subscriber is already set, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A write that fails (a full disk, a log reader that went away) is
        // dropped. With internal errors logged, tracing-subscriber reports it with
        // `eprintln!`, which panics when stderr itself fails: the task that logged
        // (a WebSocket upgrade logs "Opened") would die with its connection.
        .log_internal_errors(false)
        .finish()
        .with(ErrorLayer)
        .try_init();
}
