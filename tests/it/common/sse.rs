//! Server-Sent Events read with reqwest, an independent client: open a `/sse`
//! stream, then read it event by event.

use serde_json::Value;

use super::STEP;

/// `GET url` (a `/sse?…` URL) with `Last-Event-ID` if given: the response, checked
/// to be a 200 event stream, its body not read yet.
pub async fn get(url: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("SSE request timed out")
        .expect("SSE request failed");
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    response
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An open `/sse` stream, read event by event.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `url` (see [`get`]).
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        Self {
            response: get(url, last_event_id).await,
            buffer: String::new(),
        }
    }

    /// The next event (comments and the `retry:` preamble skipped), failing the
    /// test after [`STEP`].
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event.event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data.push_str(v);
                        has_data = true;
                    }
                }
                if has_data {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(STEP, self.response.chunk())
                .await
                .expect("no SSE event within the time limit")
                .expect("SSE stream failed")
                .expect("SSE stream ended");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("SSE is UTF-8"));
        }
    }

    /// The next event and its data as JSON.
    pub async fn json(&mut self) -> (Event, Value) {
        let event = self.next().await;
        let value = serde_json::from_str(&event.data).expect("event data is JSON");
        (event, value)
    }
}
