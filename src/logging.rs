//! Log output for programs built on pushwire: human lines or JSON, to standard
//! error, filtered with `RUST_LOG`-style directives.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::ops::ErrorLayer;

/// The filter used when none is given and `RUST_LOG` is unset (or invalid).
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, for people: time, level, target, message,
    /// then the fields as `name=value`.
    #[default]
    Human,
    /// One JSON object per line, for machines: `timestamp`, `level`, `target`,
    /// `message` and every field of the event at the top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "human" | "text" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("write human or json, not {text:?}")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Human => "human",
            Self::Json => "json",
        })
    }
}

/// Checks a filter in `RUST_LOG` syntax (`info`, `warn,pushwire=debug`,
/// `info,pushwire::conn=off`); answers it unchanged, or why it is not one.
pub fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|err| {
            format!("not a log filter ({err}); write such as info or warn,pushwire=debug")
        })
}

/// Sends `tracing` output to standard error as human lines, at `info` unless
/// `RUST_LOG` says otherwise (for example `RUST_LOG=pushwire=debug`); colours only
/// on a terminal. Calling it twice is harmless.
pub fn init() {
    init_with(LogFormat::Human, None);
}

/// Sends `tracing` output to standard error in `format`, filtered by `filter`
/// (`RUST_LOG` syntax), else by `RUST_LOG`, else at `info`. Calling it again, or
/// after another subscriber was set, changes nothing. The `warn` and `error`
/// events the filter lets through are also kept for the admin page
/// ([`crate::ops::errors`]).
pub fn init_with(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|text| EnvFilter::try_new(text).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A write that fails (a full disk, a log reader that went away) is
        // dropped. With internal errors logged, tracing-subscriber reports it with
        // `eprintln!`, which panics when stderr itself fails: the task that logged
        // (a WebSocket upgrade logs "Opened") would die with its connection.
        .log_internal_errors(false);
    // Fails only if a subscriber is already set, which is fine.
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(ErrorLayer)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(ErrorLayer)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_filters_parse() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("Human".parse(), Ok(LogFormat::Human));
        assert!("yaml".parse::<LogFormat>().is_err());
        assert!(parse_filter("warn,pushwire::conn=info").is_ok());
        assert!(parse_filter("pushwire=loud").is_err());
    }
}
