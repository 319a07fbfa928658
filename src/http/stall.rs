//! A stream whose writes give up when the peer stops reading.
//!
//! hyper has no write timeout: a client that sends a request and never reads the
//! answer (an SSE stream, a long-poll's answer, a large file) would hold its
//! connection, and what was queued for it, for as long as the TCP connection lives.
//! [`WriteTimeout`] fails a write that has made no progress for its limit, which
//! ends the connection, as the WebSocket layer's own write timeout does for
//! WebSockets. After an upgrade the WebSocket layer takes the TCP stream back out
//! ([`WriteTimeout::into_inner`]) and applies its own.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// `S` with writes that fail once one has made no progress for `limit`.
#[derive(Debug)]
pub(crate) struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Runs from the first write the peer pushed back on; boxed, and only there
    /// while writes stall.
    timer: Option<Pin<Box<Sleep>>>,
    /// Bytes went out since the timer was last set.
    progressed: bool,
}

impl<S> WriteTimeout<S> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            progressed: false,
        }
    }

    /// The stream itself.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    /// Called when a write went nowhere: starts (or, after progress, restarts) the
    /// timer, and fails once it has run out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let deadline = Instant::now() + self.limit;
        match &mut self.timer {
            None => self.timer = Some(Box::pin(sleep_until(deadline))),
            Some(timer) if self.progressed => timer.as_mut().reset(deadline),
            Some(_) => {}
        }
        self.progressed = false;
        if let Some(timer) = &mut self.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            self.timer = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading (write timed out)",
            )));
        }
        Poll::Pending
    }

    fn written(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Pending => self.stalled(cx),
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed = true;
                }
                Poll::Ready(Ok(n))
            }
            ready => ready,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_limit() {
        let (client, server) = tokio::io::duplex(1024);
        let mut stream = WriteTimeout::new(server, Duration::from_millis(200));
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                stream.write_all(&[0u8; 512]).await?;
            }
        })
        .await;
        let err: io::Result<()> = result.unwrap_or_else(|_| panic!("the write never gave up"));
        assert_eq!(err.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_slowly_but_steadily_is_kept() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = WriteTimeout::new(server, Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 4096 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += client.read(&mut buf).await?;
            }
            Ok::<_, io::Error>(total)
        });
        // 64 reads of 64 bytes, 20 ms apart (on the paused clock): over a second in
        // all, never 300 ms without progress.
        stream.write_all(&[1u8; 4096]).await?;
        let total = reader.await.map_err(io::Error::other)??;
        assert_eq!(total, 4096);
        Ok(())
    }
}
