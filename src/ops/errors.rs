//! The last errors: a bounded ring of the latest `warn` and `error` log events,
//! filled by a `tracing` layer ([`ErrorLayer`]) and shown on the admin page.
//!
//! The ring is one per process (logging is too): [`crate::logging::init`] installs
//! the layer, and [`recent_errors`] reads the ring. Programs that set up their own
//! subscriber add [`ErrorLayer`] to it.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::clock::unix_millis;
use crate::sync::lock;

/// How many events the ring keeps: the oldest goes when a new one comes.
pub const ERROR_RING_SIZE: usize = 50;

/// The longest message kept, in bytes (longer ones are cut, with `…`).
const MAX_MESSAGE: usize = 500;

/// One `warn` or `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEvent {
    /// When (Unix milliseconds).
    pub time: u64,
    /// `"WARN"` or `"ERROR"`.
    pub level: &'static str,
    /// The module that logged it (`pushwire::http::publish`).
    pub target: String,
    /// The message and its fields (`error=…`), as one line.
    pub message: String,
}

/// The process's ring of the latest warn and error events.
fn ring() -> &'static Mutex<VecDeque<ErrorEvent>> {
    static RING: OnceLock<Mutex<VecDeque<ErrorEvent>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(ERROR_RING_SIZE)))
}

/// The latest warn and error events, oldest first (at most [`ERROR_RING_SIZE`]).
/// Empty unless an [`ErrorLayer`] is installed.
pub fn recent_errors() -> Vec<ErrorEvent> {
    lock(ring()).iter().cloned().collect()
}

/// A `tracing` layer that keeps every `warn` and `error` event it sees in the ring
/// read by [`recent_errors`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorLayer;

impl<S: Subscriber> Layer<S> for ErrorLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let entry = ErrorEvent {
            time: unix_millis(),
            level: if level == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: event.metadata().target().to_owned(),
            message: line.text,
        };
        let mut ring = lock(ring());
        if ring.len() >= ERROR_RING_SIZE {
            ring.pop_front();
        }
        ring.push_back(entry);
    }
}

/// An event's message and fields as one line, at most [`MAX_MESSAGE`] bytes.
#[derive(Default)]
struct Line {
    text: String,
}

impl Line {
    fn push(&mut self, args: fmt::Arguments<'_>) {
        if self.text.len() >= MAX_MESSAGE {
            return;
        }
        let _ = self.text.write_fmt(args);
        if self.text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !self.text.is_char_boundary(end) {
                end -= 1;
            }
            self.text.truncate(end);
            self.text.push('…');
        }
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let sep = if self.text.is_empty() { "" } else { " " };
        if field.name() == "message" {
            self.push(format_args!("{sep}{value:?}"));
        } else {
            self.push(format_args!("{sep}{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let sep = if self.text.is_empty() { "" } else { " " };
        if field.name() == "message" {
            self.push(format_args!("{sep}{value}"));
        } else {
            self.push(format_args!("{sep}{}={value}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn warnings_and_errors_are_kept_and_the_ring_is_bounded() {
        let subscriber = tracing_subscriber::registry().with(ErrorLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(code = 7, "first warning");
            for n in 0..ERROR_RING_SIZE {
                tracing::error!("error {n}");
            }
        });
        let events = recent_errors();
        assert_eq!(events.len(), ERROR_RING_SIZE);
        assert!(events.iter().all(|e| e.level == "ERROR"));
        assert_eq!(
            events.last().map(|e| e.message.as_str()),
            Some(format!("error {}", ERROR_RING_SIZE - 1).as_str())
        );
        assert!(events.iter().all(|e| !e.message.contains("not kept")));
    }

    #[test]
    fn long_messages_are_cut() {
        let mut line = Line::default();
        line.push(format_args!("{}", "é".repeat(MAX_MESSAGE)));
        assert!(line.text.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(line.text.ends_with('…'));
    }
}
