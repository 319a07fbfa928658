//! Pusher Channels for the fan-out (`pushwire bench fanout --protocol pusher`):
//! subscribers speak the Pusher client protocol, version 7, as pusher-js does
//! (`/app/{key}?protocol=7…`, `pusher:connection_established`,
//! `pusher:subscribe`, `pusher_internal:subscription_succeeded`, `pusher:ping` →
//! `pusher:pong`), and the publisher triggers events through the app's HTTP API
//! ([`EventPublisher`], signed by [`AppSigner`]). This crate does not depend on
//! the server: it is what a third-party client sends, written from Pusher's
//! protocol reference, so it measures pushwire and other Pusher servers alike.

mod publisher;
mod signing;

pub(crate) use publisher::EventPublisher;
pub(crate) use signing::AppSigner;

use serde_json::{Value, json};

use super::conn::{Conn, Frame};

/// The event name every published message carries.
pub(crate) const EVENT: &str = "bench";

/// What a subscriber answers to the server's `pusher:ping`.
pub(crate) const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

/// The path and query a subscriber of app `key` connects to.
pub(crate) fn subscriber_path(key: &str) -> String {
    format!(
        "/app/{key}?protocol=7&client=bench&version={}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether `message` is the server's `pusher:ping` (which wants a `pusher:pong`).
pub(crate) fn is_ping(message: &[u8]) -> bool {
    // Pings are short; events of the benchmark are not looked into.
    message.len() < 96 && message.windows(13).any(|w| w == b"\"pusher:ping\"")
}

/// Checks a Pusher channel name: at most 164 of `A-Z a-z 0-9 _ - = @ , . ;`.
pub(crate) fn check_channel(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 164
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
    {
        return Err(format!(
            "{name:?} is not a Pusher channel name (1 to 164 of A-Z a-z 0-9 _ - = @ , . ;)"
        ));
    }
    Ok(())
}

/// Waits for the connection to be established, subscribes to `channel` and waits
/// for the subscription to succeed; pings are answered meanwhile.
pub(crate) async fn subscribe(conn: &mut Conn, channel: &str) -> Result<(), String> {
    wait_for(conn, "pusher:connection_established").await?;
    let request = json!({ "event": "pusher:subscribe", "data": { "channel": channel } });
    conn.send_text(request.to_string()).await?;
    wait_for(conn, "pusher_internal:subscription_succeeded").await
}

/// Reads until event `wanted`; a `pusher:error`, a `pusher:subscription_error` or
/// the connection's end is an error.
async fn wait_for(conn: &mut Conn, wanted: &str) -> Result<(), String> {
    loop {
        let message: Value = match conn.next().await? {
            Frame::Data(message) => serde_json::from_slice(message).map_err(|e| {
                format!(
                    "not a Pusher message ({e}): {}",
                    String::from_utf8_lossy(&message[..message.len().min(120)])
                )
            })?,
            Frame::Closed(code) => {
                return Err(format!("closed with {code} while waiting for {wanted}"));
            }
        };
        match message.get("event").and_then(Value::as_str) {
            Some(event) if event == wanted => return Ok(()),
            Some("pusher:ping") => conn.send_text(PONG.to_owned()).await?,
            Some(event @ ("pusher:error" | "pusher:subscription_error")) => {
                let data = message.get("data").cloned().unwrap_or_default();
                return Err(format!("{event} while waiting for {wanted}: {data}"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_are_told_from_events() {
        assert!(is_ping(br#"{"event":"pusher:ping","data":{}}"#));
        assert!(is_ping(br#"{"data":"{}","event":"pusher:ping"}"#));
        assert!(!is_ping(br#"{"event":"pusher:pong","data":{}}"#));
        assert!(!is_ping(
            br#"{"event":"bench","channel":"bench","data":"1 2 xx"}"#
        ));
    }

    #[test]
    fn channel_names_are_checked() {
        assert!(check_channel("bench").is_ok());
        assert!(check_channel("a-b_c=d@e,f.g;h").is_ok());
        assert!(check_channel("").is_err());
        assert!(check_channel("a b").is_err());
        assert!(check_channel("a\"b").is_err());
        assert!(check_channel(&"x".repeat(165)).is_err());
    }

    #[test]
    fn subscribers_ask_for_protocol_7() {
        assert!(subscriber_path("k1").starts_with("/app/k1?protocol=7&client=bench&version="));
    }
}
