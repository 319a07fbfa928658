//! The Pusher fan-out's publisher: each message is an event triggered through
//! the app's HTTP API, signed as Pusher's SDKs sign it, on one keep-alive
//! connection with one request in flight (a server need not answer pipelined
//! requests: soketi's uWebSockets.js closes the connection on them). One queued
//! event goes as `POST /apps/{id}/events`; when several have queued while the
//! previous request was out, they go together, in order, as
//! `POST /apps/{id}/batch_events` (at most [`MAX_BATCH`], Pusher's limit), so the
//! round trip does not cap the publish rate. Events stay in order. Answers that
//! are not a success are counted, and the first is kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::signing::AppSigner;
use crate::queued::{Answers, Queued};
use crate::stats::now_micros;

/// The longest status or header line accepted from the server.
const MAX_LINE: usize = 8 * 1024;
/// The largest answer body accepted (Pusher's answers are `{}` or a short error).
const MAX_BODY: usize = 64 * 1024;
/// The most events in one `batch_events` request (Pusher's limit).
const MAX_BATCH: usize = 10;

/// Triggers events through the HTTP API of one app, on a task of its own.
pub(crate) struct EventPublisher;

/// Where and what the publishing task sends.
struct Api {
    addr: SocketAddr,
    signer: AppSigner,
    channel: String,
    name: String,
}

impl EventPublisher {
    /// Connects to the server at `addr`, which serves the HTTP API of `signer`'s
    /// app, to trigger events `name` on `channel`; each queued message is an
    /// event's data (sent as a JSON string, as every Pusher SDK sends it).
    pub(crate) async fn connect(
        addr: SocketAddr,
        signer: AppSigner,
        channel: &str,
        name: &str,
    ) -> Result<Queued, String> {
        let connection = Connection::open(addr).await?;
        let api = Api {
            addr,
            signer,
            channel: channel.to_owned(),
            name: name.to_owned(),
        };
        Ok(Queued::start(move |queued, answers| {
            publish_queued(api, connection, queued, answers)
        }))
    }
}

/// Sends what is queued, a request at a time, until the queue closes or the
/// connection fails for good.
async fn publish_queued(
    api: Api,
    connection: Connection,
    mut queued: mpsc::UnboundedReceiver<String>,
    answers: Arc<Answers>,
) {
    let mut connection = Some(connection);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queued.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let (path, body) = if let [data] = batch.as_slice() {
            let body = json!({ "name": api.name, "channels": [api.channel], "data": data });
            (api.signer.events_path(), body)
        } else {
            let events: Vec<Value> = batch
                .iter()
                .map(|data| json!({ "name": api.name, "channel": api.channel, "data": data }))
                .collect();
            (api.signer.batch_events_path(), json!({ "batch": events }))
        };
        let body = body.to_string();
        let query =
            api.signer
                .signed_query("POST", &path, body.as_bytes(), now_micros() / 1_000_000);
        let request = format!(
            "POST {path}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            api.addr,
            body.len()
        );
        let count = batch.len() as u64;
        batch.clear();
        answers.requests.fetch_add(1, Ordering::Relaxed);
        // A connection the server closed after its last answer is opened again.
        let open = match connection.take() {
            Some(open) => Ok(open),
            None => Connection::open(api.addr).await,
        };
        let answer = match open {
            Ok(mut open) => match open.exchange(request.as_bytes()).await {
                Ok((status, body, keep)) => {
                    if keep {
                        connection = Some(open);
                    }
                    Ok((status, body))
                }
                Err(why) => Err(why),
            },
            Err(why) => Err(why),
        };
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                answers.ok.fetch_add(count, Ordering::Relaxed);
            }
            Ok((status, body)) => {
                answers.failed.fetch_add(count, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                answers.fail(format!("the HTTP API answered {status}: {}", text.trim()));
            }
            Err(why) => {
                answers.failed.fetch_add(count, Ordering::Relaxed);
                answers.fail(format!("the HTTP API: {why}"));
                return;
            }
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        Ok(Self {
            stream: BufReader::new(tcp),
        })
    }

    /// Sends `request` and reads its answer: status, body, and whether the
    /// connection stays open.
    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>, bool), String> {
        self.stream
            .get_mut()
            .write_all(request)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> Result<(u16, Vec<u8>, bool), String> {
        let mut line = String::new();
        if self.read_line(&mut line).await? == 0 {
            return Err("the server closed the connection".into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP status line: {:?}", line.trim_end()))?;
        let mut length = 0usize;
        let mut chunked = false;
        let mut keep = true;
        loop {
            line.clear();
            if self.read_line(&mut line).await? == 0 {
                return Err("the connection ended in the headers".into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value
                    .parse()
                    .map_err(|_| format!("a bad Content-Length: {value:?}"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep = !value.eq_ignore_ascii_case("close");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.read_line(&mut line).await?;
                let size = line.trim_end().split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| format!("a bad chunk size: {:?}", line.trim_end()))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        line.clear();
                        if self.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                self.read_body(&mut body, size).await?;
                line.clear();
                self.read_line(&mut line).await?;
            }
        } else {
            self.read_body(&mut body, length).await?;
        }
        Ok((status, body, keep))
    }

    async fn read_line(&mut self, line: &mut String) -> Result<usize, String> {
        let n = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_line(line)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == MAX_LINE && !line.ends_with('\n') {
            return Err(format!("a line over {MAX_LINE} bytes"));
        }
        Ok(n)
    }

    async fn read_body(&mut self, body: &mut Vec<u8>, length: usize) -> Result<(), String> {
        if body.len() + length > MAX_BODY {
            return Err(format!("a body over {MAX_BODY} bytes"));
        }
        let start = body.len();
        body.resize(start + length, 0);
        self.stream
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queued::Counts;
    use tokio::net::TcpListener;

    /// Reads one request (head and body) from a test server's connection.
    async fn read_request(read: &mut BufReader<TcpStream>) -> Option<(String, String)> {
        let mut head = String::new();
        let mut line = String::new();
        let mut length = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.trim().parse().ok()?;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.ok()?;
        Some((head, String::from_utf8(body).ok()?))
    }

    /// Checks that `head` is a signed POST to `path` for `body`.
    fn check_signed(head: &str, path: &str, body: &str) -> Result<(), String> {
        let signer = AppSigner::new("7", "the-key", "the-secret")?;
        let target = head.lines().next().unwrap_or_default();
        let query = target
            .strip_prefix(&format!("POST {path}?"))
            .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
            .ok_or_else(|| format!("unexpected request line {target:?}"))?;
        let timestamp: u64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("auth_timestamp="))
            .and_then(|t| t.parse().ok())
            .ok_or("no auth_timestamp")?;
        assert_eq!(
            query,
            signer.signed_query("POST", path, body.as_bytes(), timestamp)
        );
        assert!(head.contains("\r\nContent-Type: application/json\r\n"));
        Ok(())
    }

    async fn wait_for(publisher: &Queued, done: impl Fn(Counts) -> bool) -> Counts {
        for _ in 0..500 {
            if done(publisher.counts()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        publisher.counts()
    }

    /// One event at a time goes to `events`; what queued meanwhile goes to
    /// `batch_events`, in order; both signed. Answers of either framing are
    /// counted; a refusal is kept with its status and message; a connection the
    /// server closes is opened again.
    #[tokio::test]
    async fn events_are_signed_batched_in_order_and_answers_counted() -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tcp = BufReader::new(tcp);
            let mut requests = Vec::new();
            // The first request is answered only once three more are queued.
            requests.push(read_request(&mut tcp).await?);
            released.await.ok()?;
            tcp.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .await
                .ok()?;
            requests.push(read_request(&mut tcp).await?);
            tcp.get_mut()
                .write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                      1\r\n{\r\n1\r\n}\r\n0\r\n\r\n",
                )
                .await
                .ok()?;
            drop(tcp);
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tcp = BufReader::new(tcp);
            requests.push(read_request(&mut tcp).await?);
            tcp.get_mut()
                .write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 19\r\n\r\nInvalid signature\r\n",
                )
                .await
                .ok()?;
            Some(requests)
        });
        let signer = AppSigner::new("7", "the-key", "the-secret")?;
        let mut publisher = EventPublisher::connect(addr, signer, "ch", "ev").await?;
        publisher.publish("1 0 x\"y".into())?;
        wait_for(&publisher, |c| c.requests == 1).await;
        for seq in 2..=4 {
            publisher.publish(format!("{seq} 0 x"))?;
        }
        let _ = release.send(());
        wait_for(&publisher, |c| c.requests == 2).await;
        publisher.publish("5 0 x".into())?;
        let counts = wait_for(&publisher, |c| c.accepted + c.refused == 5).await;
        let requests = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .map_err(|_| "the test server saw no three requests".to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or("the test server failed")?;
        let [(head1, body1), (head2, body2), (head3, body3)] = requests.as_slice() else {
            return Err(format!("{} requests", requests.len()));
        };
        assert_eq!(
            body1,
            r#"{"name":"ev","channels":["ch"],"data":"1 0 x\"y"}"#
        );
        check_signed(head1, "/apps/7/events", body1)?;
        assert_eq!(
            body2,
            r#"{"batch":[{"name":"ev","channel":"ch","data":"2 0 x"},{"name":"ev","channel":"ch","data":"3 0 x"},{"name":"ev","channel":"ch","data":"4 0 x"}]}"#
        );
        check_signed(head2, "/apps/7/batch_events", body2)?;
        check_signed(head3, "/apps/7/events", body3)?;
        assert_eq!(
            counts,
            Counts {
                queued: 5,
                accepted: 4,
                refused: 1,
                requests: 3
            }
        );
        assert_eq!(
            publisher.failure().as_deref(),
            Some("the HTTP API answered 401: Invalid signature")
        );
        Ok(())
    }

    /// A server that goes away is a failure, not a silent loss.
    #[tokio::test]
    async fn a_lost_server_is_a_failure() -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let accepted = listener.accept().await;
            drop(accepted);
            drop(listener);
        });
        let mut publisher =
            EventPublisher::connect(addr, AppSigner::new("1", "k", "s")?, "c", "e").await?;
        let _ = server.await;
        publisher.publish("1 0 x".into())?;
        let counts = wait_for(&publisher, |c| c.refused == 1).await;
        assert_eq!(counts.refused, 1);
        assert!(
            publisher
                .failure()
                .is_some_and(|why| why.starts_with("the HTTP API: ")),
            "{:?}",
            publisher.failure()
        );
        Ok(())
    }
}
