//! The one state the topic routes share, handed to each handler by axum's
//! `State` extractor.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::presence::PollMembers;
use super::runtime::Runtime;
use crate::admin::AdminAuth;
use crate::auth::TokenVerifier;
use crate::hub::Hub;
use crate::protocol::session::SessionConfig;
use crate::ws;

/// What `/ws`, `/sse`, `/poll` and the publish API need; cloning is cheap.
#[derive(Clone)]
pub(crate) struct TopicsState {
    /// The topics.
    pub(crate) hub: Hub,
    /// Token checks, when tokens are required.
    pub(crate) auth: Option<Arc<TokenVerifier>>,
    /// The publish API's key; without one, loopback clients may publish.
    pub(crate) api_key: Option<Arc<str>>,
    /// Cancelled when the server shuts down: streams and polls end.
    pub(crate) shutdown: CancellationToken,
    /// The rules of each client of our protocol.
    pub(crate) session: Arc<SessionConfig>,
    /// The presence of long-poll clients between their polls.
    pub(crate) poll_members: PollMembers,
    /// The WebSocket limits of `/ws`.
    pub(crate) ws_config: Arc<ws::Config>,
    /// The server's shutdown signal, task tracker and open WebSockets.
    pub(crate) runtime: Runtime,
    /// The admin credential, when the admin page is on (`/ws?admin=`).
    pub(crate) admin: Option<Arc<AdminAuth>>,
}
