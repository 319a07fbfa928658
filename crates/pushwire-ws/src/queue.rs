//! The state one connection task shares with the application's handles: the outbound
//! queue (frames, bounded in bytes by high/low watermarks), the inbound queue
//! (messages, bounded in count), and the wake-ups between them.
//!
//! Both queues are plain `VecDeque`s under one short-lived lock. They allocate only
//! while something is queued and give their memory back once drained, so an idle
//! connection holds no buffers here. Waiting senders park their wakers in the same
//! state, so a send future is a few words, not a `Notify` registration.
//!
//! Keepalive lives here too: the connection task stamps the time of every read, and
//! a sweeper that visits every connection once a second (`super::registry`) raises
//! a ping or an idle-timeout event only for those that are due. An idle connection
//! therefore owns no timer.
//!
//! A ping goes only to a peer that has been silent for a ping interval: one that is
//! sending needs no proof of life, and a ping it answers in the middle of sending
//! could land where it does harm (Autobahn|Testsuite's fuzzer writes its pong into
//! the middle of a text frame it is sending in pieces, which then fails as invalid
//! UTF-8; see `docs/conformance.md`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use super::message::{CloseFrame, Message};

/// What the connection task should do next for the application.
pub(crate) enum Outgoing {
    /// Write these frames (already moved into the batch); `bytes` is their total size.
    Frames { bytes: usize },
    /// Start the close handshake.
    Close(CloseFrame),
    /// Every application handle is gone: close normally.
    AppGone,
    /// The application has handled every message it was given (see
    /// [`Shared::watch_idle`]).
    Idle,
    /// Timer and lifecycle events ([`EVENT_PING`], [`EVENT_IDLE`], [`EVENT_SHUTDOWN`]).
    Events(u8),
}

/// Time to send a keepalive ping.
pub(crate) const EVENT_PING: u8 = 1;
/// Nothing arrived from the peer for the idle timeout.
pub(crate) const EVENT_IDLE: u8 = 2;
/// The server is shutting down.
pub(crate) const EVENT_SHUTDOWN: u8 = 4;

/// Milliseconds since a day before the first call: the keepalive clock. (Starting
/// at a day, not at zero, lets a time be set in the past without saturating.)
pub(crate) fn clock_ms() -> u64 {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + DAY_MS
}

/// Adds `waker` to `waiters` unless it is already there.
fn park(waiters: &mut Vec<Waker>, waker: &Waker) {
    if !waiters.iter().any(|w| w.will_wake(waker)) {
        waiters.push(waker.clone());
    }
}

fn wake_all(waiters: Vec<Waker>) {
    for waker in waiters {
        waker.wake();
    }
}

/// Why a frame could not be queued without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The outbound queue is above its high watermark: the peer is not keeping up.
    #[error("the peer is not keeping up (outbound queue full)")]
    Full,
    /// The connection is closed or closing.
    #[error("the WebSocket connection is closed")]
    Closed,
}

#[derive(Default)]
struct State {
    outbox: VecDeque<Bytes>,
    queued_bytes: usize,
    close: Option<Box<CloseFrame>>,
    inbox: VecDeque<Message>,
    /// No more sending: the connection is closing or closed.
    finished: bool,
    /// The owning `Socket` was dropped.
    app_gone: bool,
    /// The application took a message and has not come back to `recv` since: it may
    /// still be answering it.
    taken_since_park: bool,
    /// The connection task waits for the application to be idle.
    watching_idle: bool,
    /// Events raised for the connection task.
    events: u8,
    /// How the connection ended (its close code), once it has.
    close_code: Option<u16>,
    /// Senders waiting for the outbox to drain to the low watermark.
    send_waiters: Vec<Waker>,
    /// Everyone waiting for the connection to end.
    close_waiters: Vec<Waker>,
}

impl State {
    fn app_idle(&self) -> bool {
        self.app_gone || (self.inbox.is_empty() && !self.taken_since_park)
    }
}

/// Shared by a connection task and the application's handles (`Arc`).
pub(crate) struct Shared {
    high_watermark: usize,
    low_watermark: usize,
    inbound_capacity: usize,
    state: Mutex<State>,
    /// The connection task, waiting for anything: frames to write, room in the
    /// inbox, events (all its waits are in one task, so one waker serves them all).
    writer: AtomicWaker,
    /// The application, waiting in `recv`.
    reader: AtomicWaker,
    /// Keepalive: ping a peer silent for this many ms, at most once per this many
    /// ms (0: never). Each connection draws its own, between three quarters of the
    /// configured interval and all of it, so connections opened together are not
    /// pinged together.
    ping_every_ms: u64,
    /// Keepalive: give up after this many ms without hearing from the peer (0: never).
    idle_timeout_ms: u64,
    /// [`clock_ms`] of the peer's last sign of life that counts against the idle
    /// timeout: a whole frame between messages, or a whole message (see
    /// `conn.rs`; bytes of a frame still arriving do not count).
    last_seen: AtomicU64,
    /// [`clock_ms`] of the last bytes read from the peer: a peer that is sending,
    /// even a frame in pieces, is not pinged.
    last_heard: AtomicU64,
    /// [`clock_ms`] of the last ping raised.
    last_ping: AtomicU64,
}

/// The most frames handed to one vectored write.
pub(crate) const MAX_BATCH: usize = 64;

impl Shared {
    pub(crate) fn new(
        high_watermark: usize,
        low_watermark: usize,
        inbound_capacity: usize,
    ) -> Self {
        Self {
            high_watermark: high_watermark.max(1),
            low_watermark: low_watermark.min(high_watermark),
            inbound_capacity: inbound_capacity.max(1),
            state: Mutex::new(State::default()),
            writer: AtomicWaker::new(),
            reader: AtomicWaker::new(),
            ping_every_ms: 0,
            idle_timeout_ms: 0,
            last_seen: AtomicU64::new(clock_ms()),
            last_heard: AtomicU64::new(clock_ms()),
            last_ping: AtomicU64::new(clock_ms()),
        }
    }

    /// Turns keepalive on: a ping once the peer has been silent for (a little less
    /// than) `ping_every`, and an idle event after `idle_timeout` without a byte from
    /// the peer.
    pub(crate) fn with_keepalive(
        mut self,
        ping_every: Option<Duration>,
        idle_timeout: Duration,
    ) -> Self {
        let every = ping_every.map_or(0, |d| d.as_millis().max(1) as u64);
        // A period of its own: connections opened together (a deploy, a reconnect
        // wave) that stay silent are pinged spread over the last quarter of the
        // interval, not all in the same sweep.
        self.ping_every_ms = every - rand::random_range(0..=every / 4);
        self.idle_timeout_ms = idle_timeout.as_millis() as u64;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a
        // single push, pop or flag.
        crate::sync::lock(&self.state)
    }

    // ----- the application's side -----

    /// Queues `frame` (taken out of the option) unless the queue is above its high
    /// watermark; then the caller's waker is parked until it drains.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Option<Bytes>,
    ) -> Poll<Result<(), TrySendError>> {
        let mut state = self.lock();
        if state.finished {
            return Poll::Ready(Err(TrySendError::Closed));
        }
        if state.queued_bytes >= self.high_watermark {
            park(&mut state.send_waiters, cx.waker());
            return Poll::Pending;
        }
        let Some(frame) = frame.take() else {
            return Poll::Ready(Ok(()));
        };
        state.queued_bytes += frame.len();
        state.outbox.push_back(frame);
        drop(state);
        self.writer.wake();
        Poll::Ready(Ok(()))
    }

    /// Queues a frame unless the queue is above its high watermark.
    pub(crate) fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        let mut state = self.lock();
        if state.finished {
            return Err(TrySendError::Closed);
        }
        if state.queued_bytes >= self.high_watermark {
            return Err(TrySendError::Full);
        }
        state.queued_bytes += frame.len();
        state.outbox.push_back(frame);
        drop(state);
        self.writer.wake();
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }

    /// Asks the connection to close after the frames queued so far.
    pub(crate) fn request_close(&self, frame: CloseFrame) {
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return;
        }
        state.close = Some(Box::new(frame));
        drop(state);
        self.writer.wake();
    }

    /// The next received message; `None` once the connection has ended and every
    /// message received before has been taken.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.reader.register(cx.waker());
        let mut state = self.lock();
        let was_full = state.inbox.len() >= self.inbound_capacity;
        if let Some(message) = state.inbox.pop_front() {
            state.taken_since_park = true;
            if state.inbox.is_empty() {
                state.inbox = VecDeque::new();
            }
            drop(state);
            if was_full {
                self.writer.wake();
            }
            return Poll::Ready(Some(message));
        }
        if state.finished {
            return Poll::Ready(None);
        }
        state.taken_since_park = false;
        let wake_writer = state.watching_idle;
        drop(state);
        if wake_writer {
            self.writer.wake();
        }
        Poll::Pending
    }

    /// Ready once the connection has ended (or is closing).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.finished {
            return Poll::Ready(());
        }
        park(&mut state.close_waiters, cx.waker());
        Poll::Pending
    }

    /// Whether the connection has ended (or is closing).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().finished
    }

    /// The owning handle is gone: no one reads, and the connection should close.
    pub(crate) fn app_dropped(&self) {
        let mut state = self.lock();
        state.app_gone = true;
        state.inbox = VecDeque::new();
        drop(state);
        self.writer.wake();
        self.writer.wake();
    }

    // ----- the connection task's side -----

    /// Moves up to [`MAX_BATCH`] queued frames into `batch`, or reports a close
    /// request or the application's departure; pending when there is nothing to do.
    pub(crate) fn poll_outgoing(
        &self,
        cx: &mut Context<'_>,
        batch: &mut Vec<Bytes>,
    ) -> Poll<Outgoing> {
        self.writer.register(cx.waker());
        let mut state = self.lock();
        if state.events != 0 {
            let events = std::mem::take(&mut state.events);
            return Poll::Ready(Outgoing::Events(events));
        }
        if !state.outbox.is_empty() {
            let take = state.outbox.len().min(MAX_BATCH);
            let mut bytes = 0;
            batch.reserve(take);
            for frame in state.outbox.drain(..take) {
                bytes += frame.len();
                batch.push(frame);
            }
            if state.outbox.is_empty() {
                state.outbox = VecDeque::new();
            }
            return Poll::Ready(Outgoing::Frames { bytes });
        }
        if let Some(frame) = state.close.take() {
            return Poll::Ready(Outgoing::Close(*frame));
        }
        if state.app_gone {
            return Poll::Ready(Outgoing::AppGone);
        }
        if state.watching_idle && state.app_idle() {
            state.watching_idle = false;
            return Poll::Ready(Outgoing::Idle);
        }
        Poll::Pending
    }

    /// Whether the application may still be handling messages it was given; if so,
    /// [`Shared::poll_outgoing`] reports [`Outgoing::Idle`] once it has finished (it
    /// is back in `recv` with nothing left to take, or gone).
    pub(crate) fn watch_idle(&self) -> bool {
        let mut state = self.lock();
        if state.app_idle() {
            return false;
        }
        state.watching_idle = true;
        true
    }

    /// Moves every queued frame into `out` (the connection is about to close).
    pub(crate) fn take_all(&self, out: &mut Vec<Bytes>) {
        let mut state = self.lock();
        out.extend(state.outbox.drain(..));
        state.outbox = VecDeque::new();
        state.queued_bytes = 0;
        let waiters = std::mem::take(&mut state.send_waiters);
        drop(state);
        wake_all(waiters);
    }

    /// `bytes` of queued frames have been written: make room for waiting senders.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = self.lock();
        state.queued_bytes = state.queued_bytes.saturating_sub(bytes);
        let waiters = if state.queued_bytes <= self.low_watermark {
            std::mem::take(&mut state.send_waiters)
        } else {
            Vec::new()
        };
        drop(state);
        wake_all(waiters);
    }

    /// Hands a received message to the application; gives it back when the inbox is
    /// full. Messages for an application that is gone are dropped.
    pub(crate) fn deliver(&self, message: Message) -> Result<(), Message> {
        let mut state = self.lock();
        if state.app_gone {
            return Ok(());
        }
        if state.inbox.len() >= self.inbound_capacity {
            return Err(message);
        }
        state.inbox.push_back(message);
        drop(state);
        self.reader.wake();
        Ok(())
    }

    /// Ready when the inbox has room again (or no one reads it any more).
    pub(crate) fn poll_inbox_space(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.writer.register(cx.waker());
        let state = self.lock();
        if state.app_gone || state.inbox.len() < self.inbound_capacity {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// A whole frame between messages, or a whole message, arrived: the peer is
    /// alive and making progress (what the idle timeout counts).
    pub(crate) fn touch(&self) {
        self.last_seen.store(clock_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived from the peer (perhaps only part of a frame): it is sending,
    /// so it needs no ping.
    pub(crate) fn heard(&self) {
        self.last_heard.store(clock_ms(), Ordering::Relaxed);
    }

    /// Raises `event` for the connection task.
    pub(crate) fn raise(&self, event: u8) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.events |= event;
        drop(state);
        self.writer.wake();
    }

    /// Keepalive check at `now` ([`clock_ms`]): raises an idle event when the peer
    /// has made no progress for the idle timeout, or a ping when no byte came from
    /// it for its ping period and it was not pinged within it. Called about once a
    /// second.
    pub(crate) fn tick(&self, now: u64) {
        let seen = self.last_seen.load(Ordering::Relaxed);
        let heard = self.last_heard.load(Ordering::Relaxed).max(seen);
        let pinged = self.last_ping.load(Ordering::Relaxed);
        if self.idle_timeout_ms > 0 && now.saturating_sub(seen) >= self.idle_timeout_ms {
            self.raise(EVENT_IDLE);
        } else if self.ping_every_ms > 0
            && now.saturating_sub(heard.max(pinged)) >= self.ping_every_ms
        {
            self.last_ping.store(now, Ordering::Relaxed);
            self.raise(EVENT_PING);
        }
    }

    /// The connection is closing or closed: sends fail from now on, queued frames are
    /// dropped, and everyone waiting is woken. Received messages stay readable.
    /// Records how the connection ended, for [`Shared::close_code`]; the first
    /// record stands.
    pub(crate) fn record_close(&self, code: u16) {
        let mut state = self.lock();
        if state.close_code.is_none() {
            state.close_code = Some(code);
        }
    }

    /// The connection's close code, once it has ended.
    pub(crate) fn close_code(&self) -> Option<u16> {
        self.lock().close_code
    }

    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        state.outbox = VecDeque::new();
        state.queued_bytes = 0;
        state.close = None;
        let mut waiters = std::mem::take(&mut state.send_waiters);
        waiters.append(&mut state.close_waiters);
        drop(state);
        wake_all(waiters);
        self.reader.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_together_are_pinged_spread_over_the_last_quarter() {
        let every = Duration::from_secs(25);
        let due: Vec<u64> = (0..1000)
            .map(|_| {
                let shared = Shared::new(1024, 512, 4).with_keepalive(Some(every), every * 3);
                // A silent peer's first ping is due one period after it was made.
                shared.ping_every_ms
            })
            .collect();
        assert!(
            due.iter().all(|&d| (18_750..=25_000).contains(&d)),
            "every first ping within the last quarter of the interval"
        );
        // In each fifth of that quarter, about 200 of the 1,000; never all in one.
        for fifth in 0..5u64 {
            let from = 18_750 + fifth * 1_250;
            let inside = due
                .iter()
                .filter(|&&d| d >= from && (d < from + 1_250 || (fifth == 4 && d == 25_000)))
                .count();
            assert!(
                (100..=300).contains(&inside),
                "{inside} first pings in fifth {fifth}"
            );
        }
    }

    /// Raised events, taken as the connection task takes them.
    fn take_events(shared: &Shared) -> u8 {
        std::mem::take(&mut shared.lock().events)
    }

    #[test]
    fn a_peer_that_keeps_sending_is_never_pinged() {
        let every = Duration::from_secs(2);
        let shared = Shared::new(1024, 512, 4).with_keepalive(Some(every), every * 3);
        let start = clock_ms();
        // Whole frames arrive every half second for a minute of sweeps (simulated clock).
        for step in 1..=120u64 {
            let now = start + step * 500;
            shared.last_seen.store(now, Ordering::Relaxed);
            shared.tick(now);
            assert_eq!(take_events(&shared), 0, "pinged at step {step}");
        }
    }

    #[test]
    fn a_peer_trickling_a_frame_is_not_pinged_but_meets_the_idle_timeout() {
        let every = Duration::from_secs(2);
        let shared = Shared::new(1024, 512, 4).with_keepalive(Some(every), every * 5);
        let start = clock_ms();
        // A byte every half second, never a whole frame: heard, not seen.
        for step in 1..20u64 {
            let now = start + step * 500;
            shared.last_heard.store(now, Ordering::Relaxed);
            shared.tick(now);
            assert_eq!(take_events(&shared), 0, "an event at step {step}");
        }
        let now = start + 20 * 500;
        shared.last_heard.store(now, Ordering::Relaxed);
        shared.tick(now);
        assert_eq!(take_events(&shared), EVENT_IDLE);
    }

    #[test]
    fn a_silent_peer_is_pinged_once_per_period_until_the_idle_timeout() {
        let every = Duration::from_secs(2);
        let shared = Shared::new(1024, 512, 4).with_keepalive(Some(every), every * 5);
        let start = shared.last_seen.load(Ordering::Relaxed);
        let period = shared.ping_every_ms;
        shared.tick(start + period - 1);
        assert_eq!(take_events(&shared), 0, "pinged before a period of silence");
        shared.tick(start + period);
        assert_eq!(take_events(&shared), EVENT_PING);
        // No answer: the next ping comes a period after the last one, not each sweep.
        shared.tick(start + period + 1_000);
        assert_eq!(take_events(&shared), 0, "pinged again within the period");
        shared.tick(start + 2 * period);
        assert_eq!(take_events(&shared), EVENT_PING);
        // Still nothing from the peer at the idle timeout: give up on it.
        shared.tick(start + 10_000);
        assert_eq!(take_events(&shared), EVENT_IDLE);
    }

    use futures_util::task::noop_waker_ref;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn the_high_watermark_refuses_and_the_low_watermark_reopens() {
        let shared = Shared::new(100, 40, 4);
        assert_eq!(shared.try_send(frame(60)), Ok(()));
        assert_eq!(shared.try_send(frame(60)), Ok(()));
        assert_eq!(shared.try_send(frame(1)), Err(TrySendError::Full));
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut batch = Vec::new();
        match shared.poll_outgoing(&mut cx, &mut batch) {
            Poll::Ready(Outgoing::Frames { bytes }) => assert_eq!(bytes, 120),
            _ => panic!("expected frames"),
        }
        assert_eq!(batch.len(), 2);
        // Still counted until written.
        assert_eq!(shared.try_send(frame(1)), Err(TrySendError::Full));
        shared.written(120);
        assert_eq!(shared.try_send(frame(1)), Ok(()));
    }

    #[test]
    fn after_finish_sends_fail_and_recv_drains_then_ends() {
        let shared = Shared::new(100, 40, 4);
        assert!(shared.deliver(Message::from("a")).is_ok());
        shared.finish();
        assert_eq!(shared.try_send(frame(1)), Err(TrySendError::Closed));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let recv = || std::future::poll_fn(|cx| shared.poll_recv(cx));
            assert_eq!(recv().await, Some(Message::from("a")));
            assert_eq!(recv().await, None);
            std::future::poll_fn(|cx| shared.poll_closed(cx)).await;
        });
    }

    #[test]
    fn a_full_inbox_gives_the_message_back() {
        let shared = Shared::new(100, 40, 1);
        assert!(shared.deliver(Message::from("a")).is_ok());
        assert_eq!(shared.deliver(Message::from("b")), Err(Message::from("b")));
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(shared.poll_inbox_space(&mut cx).is_pending());
        shared.app_dropped();
        assert!(shared.poll_inbox_space(&mut cx).is_ready());
    }
}
