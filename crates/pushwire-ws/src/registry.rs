//! Every open server-side connection, for the two things that concern all of them:
//! keepalive (a sweeper visits each connection once a second and raises a ping or an
//! idle timeout only where one is due) and shutdown (every connection is told at
//! once). A connection costs the registry one weak pointer, and owns no timer.
//!
//! A server keeps one [`Registry`], adds every [`Socket`] it opens, runs
//! [`Registry::sweep_until`] beside its accept loop, and calls
//! [`Registry::shutdown`] when it stops (or [`Registry::close_all`], to say why). A client holding many connections can do
//! the same through `client::ClientConfig::registry`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::CloseCode;
use super::message::CloseFrame;
use super::queue::{EVENT_SHUTDOWN, Shared, clock_ms};
use super::socket::Socket;

/// The open connections of one server.
#[derive(Default)]
pub struct Registry {
    connections: Mutex<Vec<Weak<Shared>>>,
    shutting_down: AtomicBool,
    /// The close frame of [`Registry::close_all`], for connections added after it.
    farewell: Mutex<Option<CloseFrame>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.lock().len())
            .field("shutting_down", &self.shutting_down.load(Ordering::Relaxed))
            .finish()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Shared>>> {
        crate::sync::lock(&self.connections)
    }

    /// Registers a new connection (told to close at once if shutdown has begun).
    pub fn add(&self, socket: &Socket) {
        let shared = socket.shared();
        self.lock().push(Arc::downgrade(shared));
        if self.shutting_down.load(Ordering::Acquire) {
            match crate::sync::lock(&self.farewell).clone() {
                Some(frame) => shared.request_close(frame),
                None => shared.raise(EVENT_SHUTDOWN),
            }
        }
    }

    /// Visits every connection: keepalive checks for the live ones, and the ended
    /// ones are forgotten. Returns how many are live.
    pub fn sweep(&self) -> usize {
        let now = clock_ms();
        let mut connections = self.lock();
        let mut i = 0;
        while i < connections.len() {
            match connections[i].upgrade() {
                Some(shared) => {
                    shared.tick(now);
                    i += 1;
                }
                None => {
                    connections.swap_remove(i);
                }
            }
        }
        let live = connections.len();
        if connections.capacity() > 64 && live < connections.capacity() / 4 {
            connections.shrink_to(live * 2);
        }
        live
    }

    /// Tells every connection, present and future, to close with 1001.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for shared in self.lock().iter().filter_map(Weak::upgrade) {
            shared.raise(EVENT_SHUTDOWN);
        }
    }

    /// Tells every connection, present and future, to close with `code` and
    /// `reason`, each after the messages already queued for it (as
    /// [`Sender::close`](crate::Sender::close) does). A draining server says 1012
    /// ([`CloseCode::SERVICE_RESTART`]) this way, so that clients reconnect.
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        *crate::sync::lock(&self.farewell) = Some(CloseFrame::new(code, reason));
        self.shutting_down.store(true, Ordering::Release);
        for shared in self.lock().iter().filter_map(Weak::upgrade) {
            shared.request_close(CloseFrame::new(code, reason));
        }
    }

    /// Sweeps every `period` until `stop` is cancelled.
    pub async fn sweep_until(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.sweep();
                }
                () = stop.cancelled() => return,
            }
        }
    }
}
