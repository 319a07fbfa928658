//! What every connection task of a server shares with it: the drain and shutdown
//! signals, the tracker that lets shutdown wait for them, and the open WebSockets.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ws::Registry;

/// The server's shared runtime handles; cloning is cheap.
#[derive(Clone, Default)]
pub(crate) struct Runtime {
    /// Cancelled when the server begins to drain: `/readyz` answers 503 from then
    /// on, while everything else is served as before until `shutdown`.
    pub(crate) draining: CancellationToken,
    /// Cancelled when the server begins to shut down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so that shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Every open WebSocket of the application's socket routes: keepalive and
    /// shutdown (1001).
    pub(crate) registry: Arc<Registry>,
    /// Every open `/ws` topic session: keepalive, and at shutdown 1012 "service
    /// restart" (the client reconnects and resumes).
    pub(crate) topics: Arc<Registry>,
    /// Every open Pusher connection (`/app/{key}`): keepalive, and at shutdown
    /// 4200 (pusher-js reconnects at once).
    pub(crate) pusher: Arc<Registry>,
}
