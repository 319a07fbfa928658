//! [`Server`]: a bound app, serving until a signal, then shutting down gracefully.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::limits::Gate;
use super::runtime::Runtime;
use super::serve::{HttpLimits, accept_loop};
use super::tls::{Tls, TlsReloader};
use crate::error::Error;
use crate::ws::CloseCode;

/// The close reason of `/ws` sessions when the server shuts down (with 1012).
const SERVICE_RESTART: &str = "service restart";

/// The close code that tells pusher-js to reconnect at once (Pusher's 4200–4299).
const PUSHER_RECONNECT: u16 = 4200;

/// How often keepalive visits every connection.
const KEEPALIVE_SWEEP: Duration = Duration::from_secs(1);

/// A bound server, ready to run.
pub struct Server {
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddr,
    pub(crate) router: Router,
    pub(crate) runtime: Runtime,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) drain_delay: Duration,
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

    /// Serves until SIGINT (Ctrl-C) or SIGTERM, then drains and shuts down
    /// gracefully (see [`Server::run_until`]). A second signal while draining ends
    /// the drain delay at once; one more while waiting for connections to close
    /// stops waiting. With TLS, SIGHUP reloads the certificate and key (on Unix),
    /// reading them on a blocking thread: a reload that fails is logged and keeps
    /// the certificate in use.
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
        let (tx, signals) = mpsc::unbounded_channel();
        // Listening from now on: no signal is missed between the steps.
        tokio::spawn(forward_signals(StopSignals::listen(), tx));
        self.serve(signals).await
    }

    /// Serves until `signal` resolves, then drains and shuts down gracefully:
    ///
    /// 1. for the drain delay ([`App::drain_delay`](crate::App::drain_delay), none
    ///    by default) `/readyz` answers 503 while everything else is served as
    ///    before, so that a load balancer stops sending new clients;
    /// 2. then it stops accepting and tells every client to reconnect: each `/ws`
    ///    session is closed with 1012 "service restart" (the other socket routes
    ///    with 1001 "server shutting down"), each after the messages already queued
    ///    for it; SSE streams end after a `retry:` line; waiting long-polls are
    ///    answered at once, with `Retry-After`;
    /// 3. and waits for the connections to finish, at most the shutdown timeout
    ///    ([`App::shutdown_timeout`](crate::App::shutdown_timeout)).
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (tx, signals) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(());
        });
        self.serve(signals).await
    }

    /// [`Server::run_until`] on the signals of `signals`: the first starts the
    /// drain, one during the drain delay ends it, one during the wait for
    /// connections ends that.
    async fn serve(self, mut signals: mpsc::UnboundedReceiver<()>) -> Result<(), Error> {
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
        let sweepers = [
            &self.runtime.registry,
            &self.runtime.topics,
            &self.runtime.pusher,
        ]
        .map(|registry| {
            tokio::spawn(
                Arc::clone(registry).sweep_until(KEEPALIVE_SWEEP, self.runtime.shutdown.clone()),
            )
        });
        next_signal(&mut signals).await;
        self.runtime.draining.cancel();
        if !self.drain_delay.is_zero() {
            tracing::info!(
                "draining: /readyz answers 503 for {:?} while clients are served; \
                 signal again to end the wait",
                self.drain_delay
            );
            tokio::select! {
                () = tokio::time::sleep(self.drain_delay) => {}
                () = next_signal(&mut signals) => {
                    tracing::info!("signalled again: the drain delay ends now");
                }
            }
        }
        tracing::info!("shutting down: clients are told to reconnect");
        self.runtime.shutdown.cancel();
        self.runtime
            .topics
            .close_all(CloseCode::SERVICE_RESTART, SERVICE_RESTART);
        self.runtime
            .pusher
            .close_all(CloseCode(PUSHER_RECONNECT), SERVICE_RESTART);
        self.runtime.registry.shutdown();
        for sweeper in sweepers {
            let _ = sweeper.await;
        }
        if let Err(err) = accepting.await {
            tracing::error!(error = %err, "the accept loop failed");
        }
        self.runtime.tracker.close();
        let finished = tokio::select! {
            finished = tokio::time::timeout(self.shutdown_timeout, self.runtime.tracker.wait()) => {
                finished.is_ok()
            }
            () = next_signal(&mut signals) => {
                tracing::info!("signalled again: not waiting for connections to close");
                false
            }
        };
        if !finished {
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

/// Resolves on the next signal of `signals`; never once they can no longer come.
async fn next_signal(signals: &mut mpsc::UnboundedReceiver<()>) {
    if signals.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM and SIGINT, listened for from the moment they are made.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for {name}");
                    None
                }
            };
            Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGTERM or SIGINT (Ctrl-C elsewhere).
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
                let received = match signal {
                    Some(signal) => signal.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = one(&mut self.terminate) => {}
                () = one(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Sends one `()` on `tx` per stop signal, until the server is gone.
async fn forward_signals(mut signals: StopSignals, tx: mpsc::UnboundedSender<()>) {
    loop {
        signals.next().await;
        if tx.send(()).is_err() {
            return;
        }
    }
}
