//! A publisher that sends each message as its own HTTP `POST`: a Mercure update
//! (a form to `/.well-known/mercure`) or a publish to pushwire's publish API
//! (`/api/publish/{topic}`), so that the fan-out over Mercure and over `/sse` is
//! driven alike. One keep-alive connection (opened again when the server closes
//! it) with one request in flight; what queues meanwhile waits its turn, in
//! order. Answers that are not a success are counted, and the first is kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::queued::{Answers, Queued};
use super::soak::http::Client;

/// The largest answer read (an id, `{}` or a short error).
const MAX_ANSWER: usize = 64 * 1024;

/// Where and how every request goes.
#[derive(Debug, Clone)]
pub(crate) struct PostTarget {
    /// The server.
    pub(crate) addr: SocketAddr,
    /// The request's path.
    pub(crate) path: String,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its `Authorization` header, if any.
    pub(crate) authorization: Option<String>,
}

/// Sends queued bodies, one request each, on a task of its own.
pub(crate) struct PostPublisher;

impl PostPublisher {
    /// Connects to the target's server.
    pub(crate) async fn connect(target: PostTarget) -> Result<Queued, String> {
        let client = Client::connect(target.addr).await?;
        Ok(Queued::start(move |queued, answers| {
            post_queued(target, client, queued, answers)
        }))
    }
}

/// Sends what is queued, a request at a time, until the queue closes or the
/// connection fails for good.
async fn post_queued(
    target: PostTarget,
    client: Client,
    mut queued: mpsc::UnboundedReceiver<String>,
    answers: Arc<Answers>,
) {
    let mut client = Some(client);
    let mut headers = vec![("content-type", target.content_type)];
    if let Some(authorization) = &target.authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    while let Some(body) = queued.recv().await {
        answers.requests.fetch_add(1, Ordering::Relaxed);
        let open = match client.take() {
            Some(open) => Ok(open),
            None => Client::connect(target.addr).await,
        };
        let answer = match open {
            Ok(mut open) => {
                let answer = open
                    .fetch(http::Method::POST, &target.path, &headers, body, MAX_ANSWER)
                    .await;
                if answer.is_ok() && !open.closing() {
                    client = Some(open);
                }
                answer
            }
            Err(why) => Err(why),
        };
        match answer {
            Ok((status, _)) if status.is_success() => {
                answers.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => {
                answers.failed.fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                answers.fail(format!(
                    "POST {} answered {status}: {}",
                    target.path,
                    text.trim()
                ));
            }
            Err(why) => {
                answers.failed.fetch_add(1, Ordering::Relaxed);
                answers.fail(format!("POST {}: {why}", target.path));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queued::Counts;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
    use tokio::net::TcpListener;

    /// Requests go one at a time, in order, with their headers; a refusal is
    /// counted and kept with its status and text.
    #[tokio::test]
    async fn posts_go_in_order_and_refusals_are_kept() -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tcp = BufReader::new(tcp);
            let mut seen = Vec::new();
            for answer in ["200 OK", "200 OK", "403 Forbidden"] {
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    tcp.read_line(&mut line).await.ok()?;
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                        length = v.trim().parse().ok()?;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                tcp.read_exact(&mut body).await.ok()?;
                seen.push((head, String::from_utf8(body).ok()?));
                let text = if answer.starts_with('4') {
                    "no"
                } else {
                    "urn:uuid:1"
                };
                let reply = format!(
                    "HTTP/1.1 {answer}\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
                tcp.get_mut().write_all(reply.as_bytes()).await.ok()?;
            }
            Some(seen)
        });
        let mut publisher = PostPublisher::connect(PostTarget {
            addr,
            path: "/.well-known/mercure".into(),
            content_type: "application/x-www-form-urlencoded",
            authorization: Some("Bearer t".into()),
        })
        .await?;
        for n in 1..=3 {
            publisher.publish(format!("topic=a&data={n}"))?;
        }
        for _ in 0..500 {
            let counts = publisher.counts();
            if counts.accepted + counts.refused == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let seen = server
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the test server failed")?;
        let bodies: Vec<&str> = seen.iter().map(|(_, body)| body.as_str()).collect();
        assert_eq!(
            bodies,
            ["topic=a&data=1", "topic=a&data=2", "topic=a&data=3"]
        );
        for (head, _) in &seen {
            assert!(
                head.starts_with("POST /.well-known/mercure HTTP/1.1\r\n"),
                "{head}"
            );
            assert!(head.contains("content-type: application/x-www-form-urlencoded\r\n"));
            assert!(head.contains("authorization: Bearer t\r\n"));
        }
        assert_eq!(
            publisher.counts(),
            Counts {
                queued: 3,
                accepted: 2,
                refused: 1,
                requests: 3
            }
        );
        assert_eq!(
            publisher.failure().as_deref(),
            Some("POST /.well-known/mercure answered 403 Forbidden: no")
        );
        Ok(())
    }
}
