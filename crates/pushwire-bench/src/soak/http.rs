//! A small HTTP/1.1 client on hyper's connection API, for the soak's SSE and
//! long-poll subscribers and its publish-API publishers: one TCP connection,
//! requests one after the other on it (keep-alive), bodies read frame by frame.

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One open HTTP/1.1 connection.
pub(crate) struct Client {
    sender: SendRequest<String>,
    host: String,
    driver: tokio::task::JoinHandle<()>,
    /// Whether the last response carried `Retry-After`.
    retry_after: bool,
    /// Whether the last response carried `Connection: close`.
    closing: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Client {
    /// Connects to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
            driver,
            retry_after: false,
            closing: false,
        })
    }

    /// Whether the last response carried `Connection: close` (a draining node
    /// says so on every answer): the next request needs a new connection.
    pub(crate) fn closing(&self) -> bool {
        self.closing
    }

    /// Whether the last response carried `Retry-After` (a node that shuts down
    /// says so on the long-polls it answers).
    pub(crate) fn retry_after(&self) -> bool {
        self.retry_after
    }

    /// Sends a request and answers the response head and its body stream.
    pub(crate) async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(http::StatusCode, BodyReader), String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        self.retry_after = response.headers().contains_key(http::header::RETRY_AFTER);
        self.closing = response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        Ok((status, BodyReader(response.into_body())))
    }

    /// Sends a request and reads the whole body (at most `limit` bytes).
    pub(crate) async fn fetch(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
        limit: usize,
    ) -> Result<(http::StatusCode, Vec<u8>), String> {
        let (status, mut reader) = self.send(method, path, headers, body).await?;
        let mut all = Vec::new();
        while let Some(chunk) = reader.next().await? {
            all.extend_from_slice(&chunk);
            if all.len() > limit {
                return Err(format!("a response body over {limit} bytes"));
            }
        }
        Ok((status, all))
    }
}

/// A response body, read chunk by chunk.
pub(crate) struct BodyReader(Incoming);

impl BodyReader {
    /// The next chunk of data; `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_frame(cx)).await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("reading the body: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}
