//! The tokio driver of one Pusher connection (`/app/{key}`).
//!
//! For now it only opens the connection: an unknown key gets `pusher:error` 4001,
//! a known one `pusher:connection_established`, and pings get pongs. The client
//! protocol machine (subscriptions, presence, client events) replaces this.

use super::context::Pusher;
use crate::ws::{CloseCode, Message, Socket};

/// Serves one Pusher client until its connection closes; `key` is the app key of
/// its URL.
#[allow(clippy::manual_async_fn)] // the machine that replaces this body needs the same shape
pub(crate) fn run(
    mut socket: Socket,
    pusher: Pusher,
    key: String,
) -> impl Future<Output = ()> + Send {
    async move {
        let Some(app) = pusher.app_by_key(&key).cloned() else {
            let error = r#"{"event":"pusher:error","data":{"code":4001,"message":"App key does not exist"}}"#;
            let _ = socket.send(error).await;
            socket
                .sender()
                .close(CloseCode(4001), "App key does not exist");
            return;
        };
        let id = pusher.next_socket_id();
        let data =
            serde_json::json!({"socket_id": id.as_str(), "activity_timeout": 120}).to_string();
        let established =
            serde_json::json!({"event": "pusher:connection_established", "data": data});
        if socket.send(established.to_string()).await.is_err() {
            return;
        }
        tracing::debug!(app = %app.id, socket_id = %id, "pusher connection established");
        while let Some(message) = socket.recv().await {
            if let Message::Text(text) = message
                && text.as_str().contains("\"pusher:ping\"")
            {
                let pong = r#"{"event":"pusher:pong","data":{}}"#;
                if socket.send(pong).await.is_err() {
                    return;
                }
            }
        }
    }
}
