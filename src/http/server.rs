//! [`Server`]: a bound app, serving until a signal, then shutting down gracefully.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::limits::Gate;
use super::runtime::Runtime;
use super::serve::{HttpLimits, accept_loop};
use super::tls::{Tls, TlsReloader};
use crate::error::Error;

/// How often keepalive visits every connection.
const KEEPALIVE_SWEEP: Duration = Duration::from_secs(1);

/// A bound server, ready to run.
pub struct Server {
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddr,
    pub(crate) router: Router,
    pub(crate) runtime: Runtime,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) limits: HttpLimits,
    pub(crate) http2_idle_timeout: Duration,
    pub(crate) gate: Option<Arc<Gate>>,
    pub(crate) tls: Option<Tls>,
    /// Stops the node heartbeat and the admin feed when the server is dropped.
    pub(crate) _background: DropGuard,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.as_ref().map(|tls| tls.reloader.config()))
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// With TLS ([`App::tls`](crate::App::tls)): what reads the certificate and key files again,
    /// for new handshakes. `None` for a plain-TCP server.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.as_ref().map(|tls| tls.reloader.clone())
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM, then shuts down gracefully. With
    /// TLS, SIGHUP reloads the certificate and key (on Unix), reading them on a
    /// blocking thread: a reload that fails is logged and keeps the certificate in
    /// use.
    pub async fn run(self) -> Result<(), Error> {
        #[cfg(unix)]
        if let Some(reloader) = self.tls_reloader() {
            // Listening before serving: a SIGHUP can no longer end the process.
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(hangups) => {
                    tokio::spawn(reload_on_sighup(
                        reloader,
                        hangups,
                        self.runtime.shutdown.clone(),
                    ));
                }
                Err(err) => tracing::warn!(
                    error = %err,
                    "cannot listen for SIGHUP; TLS files will not be reloaded"
                ),
            }
        }
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` resolves, then shuts down gracefully: stops accepting,
    /// closes every WebSocket with 1001, and waits for them (bounded by the shutdown
    /// timeout).
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let runtime = self.runtime.clone();
        let accepting = tokio::spawn(accept_loop(
            self.listener,
            self.router,
            self.limits,
            self.http2_idle_timeout,
            runtime,
            self.tls,
            self.gate,
        ));
        let sweeper = tokio::spawn(
            Arc::clone(&self.runtime.registry)
                .sweep_until(KEEPALIVE_SWEEP, self.runtime.shutdown.clone()),
        );
        signal.await;
        tracing::info!("shutting down");
        self.runtime.shutdown.cancel();
        self.runtime.registry.shutdown();
        let _ = sweeper.await;
        if let Err(err) = accepting.await {
            tracing::error!(error = %err, "the accept loop failed");
        }
        self.runtime.shutdown.cancel();
        self.runtime.tracker.close();
        if tokio::time::timeout(self.shutdown_timeout, self.runtime.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} connection tasks still running after {:?}; exiting anyway",
                self.runtime.tracker.len(),
                self.shutdown_timeout
            );
        }
        Ok(())
    }
}

/// Reloads the TLS files on every SIGHUP until shutdown.
#[cfg(unix)]
async fn reload_on_sighup(
    reloader: TlsReloader,
    mut hangups: tokio::signal::unix::Signal,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        let files = reloader.config().clone();
        // Reading files may block (a slow disk, a network mount, a FIFO): off the
        // runtime's threads, so connections keep being served meanwhile.
        let reloading = reloader.clone();
        let reloaded = match tokio::task::spawn_blocking(move || reloading.reload()).await {
            Ok(reloaded) => reloaded,
            Err(err) => {
                tracing::error!(error = %err, "SIGHUP: the TLS reload task failed");
                continue;
            }
        };
        match reloaded {
            Ok(()) => tracing::info!(
                cert = %files.cert_path().display(),
                key = %files.key_path().display(),
                "SIGHUP: TLS certificate reloaded"
            ),
            Err(err) => tracing::error!(
                error = %err,
                "SIGHUP: TLS certificate not reloaded; keeping the one in use"
            ),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
