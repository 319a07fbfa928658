//! What every connection task of a server shares with it: the shutdown signal,
//! the tracker that lets shutdown wait for them, and the open WebSockets.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ws::Registry;

/// The server's shared runtime handles; cloning is cheap.
#[derive(Clone, Default)]
pub(crate) struct Runtime {
    /// Cancelled when the server begins to shut down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so that shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Every open WebSocket: keepalive and shutdown.
    pub(crate) registry: Arc<Registry>,
}
