//! [`Member`]: one client present on a topic.

use std::sync::Arc;

use super::data::Data;

/// One client present on a topic: its id and what it said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The client id (from the WebSocket `hello`).
    pub client: Arc<str>,
    /// The user id of the client's token (`sub`), when authentication is on.
    pub user: Option<Arc<str>>,
    /// The `info` the client gave when subscribing (JSON), if any.
    pub info: Option<Data>,
}
