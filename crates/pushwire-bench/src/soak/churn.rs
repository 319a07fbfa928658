//! The soak's subscribers: each opens a connection over its transport, subscribes
//! to a few topics (from its last positions, when it has them), reads for a while
//! (over `/ws` it also unsubscribes and resubscribes one topic meanwhile), closes,
//! pauses and does it again, checking every message against its [`Track`]s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::check::{Position, Reply, Subscribed, Track, positions_text, same_positions};
use super::http::Client;
use super::{Settings, Shared, Transport};
use crate::conn::{Conn, Frame, Target};

/// One subscriber, across all its connections.
pub(crate) struct Churner {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    transport: Transport,
    /// Offer permessage-deflate (WebSocket only).
    deflate: bool,
    /// The topics (indices into `shared.topics`) and what is known of each.
    slots: Vec<(usize, Track)>,
    /// Per slot, since when its live stream runs in this connection (`/ws` and
    /// `/sse` only).
    live_from: Vec<Option<Instant>>,
    /// Whether its first subscriptions were all answered (and counted).
    first_subscribed: bool,
}

/// A live stream that lacks a message acknowledged this long before its
/// connection closed counts as a stall (reported, not a failure: it is timing).
pub(crate) const STALL_GRACE: Duration = Duration::from_secs(5);

/// When a session ends.
#[derive(Clone, Copy)]
enum Until {
    /// At this time, or when the run stops.
    Deadline(Instant),
    /// When every topic reached the publishers' last offset, or at this time.
    Caught(Instant),
}

impl Until {
    fn at(self) -> Instant {
        match self {
            Self::Deadline(at) | Self::Caught(at) => at,
        }
    }
}

/// A message from the server, in any of the shapes the protocol has.
#[derive(Debug, Deserialize)]
struct Incoming {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    ok: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// One entry of a `subs` list (SSE `subscribed`, long-poll answers).
#[derive(Debug, Deserialize)]
struct SubEntry {
    topic: String,
    epoch: String,
    offset: u64,
    #[serde(default)]
    recovered: Option<bool>,
}

/// Request ids over `/ws`: `sub` of slot i is `SUB_ID + i`, `unsub` `UNSUB_ID + i`.
const SUB_ID: u64 = 1000;
const UNSUB_ID: u64 = 2000;

impl Churner {
    pub(crate) fn new(
        shared: Arc<Shared>,
        settings: Arc<Settings>,
        transport: Transport,
        deflate: bool,
    ) -> Self {
        Self {
            shared,
            settings,
            transport,
            deflate,
            slots: Vec::new(),
            live_from: Vec::new(),
            first_subscribed: false,
        }
    }

    /// Picks a new set of topics and forgets every position.
    fn pick_topics(&mut self) {
        let count = self.shared.topics.len();
        let wanted = rand::random_range(1..=self.settings.topics_per_subscriber.clamp(1, count));
        let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
        while chosen.len() < wanted {
            let topic = rand::random_range(0..count);
            if !chosen.contains(&topic) {
                chosen.push(topic);
            }
        }
        self.slots = chosen.into_iter().map(|t| (t, Track::default())).collect();
        self.live_from = vec![None; self.slots.len()];
    }

    /// Churns until `stop`, then catches up once `finals` says where the
    /// publishers ended.
    pub(crate) async fn run(
        mut self,
        stop: CancellationToken,
        mut finals: tokio::sync::watch::Receiver<bool>,
    ) {
        let s = Arc::clone(&self.settings);
        // Spread the first connections over the first lifetime (`--exact`: a
        // second, and the publishers wait for them).
        let start = if s.exact {
            rand_duration(Duration::ZERO, Duration::from_secs(1))
        } else {
            rand_duration(Duration::ZERO, s.max_lifetime)
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(start) => {}
        }
        let mut sessions = 0u64;
        while !stop.is_cancelled() {
            if self.slots.is_empty()
                || (s.fresh_every > 0 && rand::random_range(0..s.fresh_every) == 0)
            {
                self.pick_topics();
            }
            let lifetime = rand_duration(s.min_lifetime, s.max_lifetime);
            self.session(Until::Deadline(Instant::now() + lifetime), &stop)
                .await;
            sessions += 1;
            let pause = if s.long_pause_every > 0 && sessions.is_multiple_of(s.long_pause_every) {
                self.shared
                    .counters
                    .long_pauses
                    .fetch_add(1, Ordering::Relaxed);
                s.long_pause
            } else {
                rand_duration(Duration::ZERO, s.max_pause)
            };
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        // The last session: from the last positions, until every message published
        // is in (or the server says plainly that it cannot be).
        if finals.wait_for(|ready| *ready).await.is_err() {
            return;
        }
        let never = CancellationToken::new();
        let until = Until::Caught(Instant::now() + s.final_timeout);
        loop {
            self.session(until, &never).await;
            if self.caught_up() {
                self.shared
                    .counters
                    .caught_up
                    .fetch_add(1, Ordering::Relaxed);
                if s.exact {
                    self.check_everything_received();
                }
                return;
            }
            if Instant::now() >= until.at() {
                let behind: Vec<String> = self
                    .slots
                    .iter()
                    .map(|(t, track)| {
                        let topic = &self.shared.topics[*t];
                        format!(
                            "{} at {:?}, last published {:?}",
                            topic.name,
                            track.position().map(|p| p.offset),
                            topic.last()
                        )
                    })
                    .collect();
                self.shared.violation(format!(
                    "{} subscriber did not catch up within {}: {}",
                    self.transport.name(),
                    humantime::format_duration(s.final_timeout),
                    behind.join("; ")
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `--exact`: each topic's messages, from offset 1 to the last published, all
    /// arrived (in order, each once: the track checked that one by one).
    fn check_everything_received(&self) {
        for (t, track) in &self.slots {
            let topic = &self.shared.topics[*t];
            let last = topic.last().map_or(0, |(_, offset)| offset);
            if track.received() != last {
                self.shared.violation(format!(
                    "{} {}: received {} messages, but {last} were published",
                    self.transport.name(),
                    topic.name,
                    track.received()
                ));
            }
        }
    }

    /// Whether every topic reached the publishers' last offset.
    fn caught_up(&self) -> bool {
        self.slots.iter().all(|(t, track)| {
            self.shared.topics[*t]
                .last()
                .is_none_or(|(epoch, offset)| track.reached(&epoch, offset))
        })
    }

    /// One connection: open, subscribe, read until `until`, close.
    async fn session(&mut self, until: Until, stop: &CancellationToken) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        counters.sessions[self.transport as usize].fetch_add(1, Ordering::Relaxed);
        counters.open[self.transport as usize].fetch_add(1, Ordering::Relaxed);
        let result = match self.transport {
            Transport::Ws => self.ws_session(until, stop).await,
            Transport::Sse => self.sse_session(until, stop).await,
            Transport::Poll => self.poll_session(until, stop).await,
        };
        counters.open[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
        if result.is_ok() {
            self.report_stalls();
        }
        for (_, track) in &mut self.slots {
            track.end();
        }
        self.live_from.fill(None);
        if let Err(reason) = result {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared
                .note_error(format!("{} session: {reason}", self.transport.name()));
        }
    }

    /// Reports every live stream of this connection that lacks a message
    /// acknowledged more than [`STALL_GRACE`] ago.
    fn report_stalls(&self) {
        let Some(cutoff) = Instant::now().checked_sub(STALL_GRACE) else {
            return;
        };
        for (slot, (topic, track)) in self.slots.iter().enumerate() {
            let Some(from) = self.live_from[slot] else {
                continue;
            };
            let state = &self.shared.topics[*topic];
            let (Some((epoch, due)), Some(position)) =
                (state.acked_between(from, cutoff), track.position())
            else {
                continue;
            };
            if position.epoch == epoch && position.offset < due {
                self.shared.counters.stalls.fetch_add(1, Ordering::Relaxed);
                self.shared.note_error(format!(
                    "{} {}: stalled at offset {} although {due} was acknowledged more than {} \
                     before the connection closed",
                    self.transport.name(),
                    state.name,
                    position.offset,
                    humantime::format_duration(STALL_GRACE)
                ));
            }
        }
    }

    fn topic_name(&self, slot: usize) -> &str {
        &self.shared.topics[self.slots[slot].0].name
    }

    fn slot_of(&self, topic: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|(t, _)| self.shared.topics[*t].name == topic)
    }

    /// Applies a subscription answer for `slot`, sent with `since`.
    fn subscribed(&mut self, slot: usize, since: Option<&Position>, reply: &Reply) {
        let result = self.slots[slot].1.subscribed(since, reply);
        if self.transport != Transport::Poll {
            self.live_from[slot] = Some(Instant::now());
        }
        let counters = &self.shared.counters;
        if !self.first_subscribed && self.slots.iter().all(|(_, t)| t.position().is_some()) {
            self.first_subscribed = true;
            counters.first_subscribed.fetch_add(1, Ordering::Relaxed);
        }
        if self.settings.exact && matches!(result, Ok(Subscribed::NotRecovered)) {
            let name = self.topic_name(slot).to_owned();
            self.shared.violation(format!(
                "{} {name}: recovered: false from {since:?} (--exact: history covers every \
                 pause)",
                self.transport.name()
            ));
        }
        match result {
            Ok(Subscribed::Fresh) => counters.fresh.fetch_add(1, Ordering::Relaxed),
            Ok(Subscribed::Recovered) => counters.recovered.fetch_add(1, Ordering::Relaxed),
            Ok(Subscribed::NotRecovered) => counters.not_recovered.fetch_add(1, Ordering::Relaxed),
            Err(violation) => {
                let name = self.topic_name(slot).to_owned();
                self.shared
                    .violation(format!("{} {name}: {violation}", self.transport.name()));
                // Go on from what the server said.
                self.slots[slot].1.forget();
                let _ = self.slots[slot].1.subscribed(None, reply);
                0
            }
        };
    }

    /// Checks one message (`topic`, `epoch`, `offset`, `data`).
    fn message(&mut self, incoming: &Incoming) {
        let (Some(topic), Some(epoch), Some(offset)) =
            (&incoming.topic, &incoming.epoch, incoming.offset)
        else {
            return; // presence events and the like
        };
        let Some(slot) = self.slot_of(topic) else {
            self.shared.violation(format!(
                "{} received {topic}:{offset}, a topic it never subscribed to",
                self.transport.name()
            ));
            return;
        };
        self.shared
            .counters
            .messages
            .fetch_add(1, Ordering::Relaxed);
        let state = &self.shared.topics[self.slots[slot].0];
        if offset < state.unclean_from.load(Ordering::SeqCst) {
            let carried = incoming.data.as_ref().and_then(Value::as_u64);
            if carried != Some(offset) {
                self.shared.violation(format!(
                    "{} {topic}: offset {offset} carries {:?}, not message #{offset}",
                    self.transport.name(),
                    incoming.data
                ));
            }
        }
        if let Err(violation) = self.slots[slot].1.message(epoch, offset) {
            self.shared
                .violation(format!("{} {topic}: {violation}", self.transport.name()));
            // Go on from here, so that one fault is reported once.
            let track = &mut self.slots[slot].1;
            track.forget();
            let _ = track.subscribed(
                None,
                &Reply {
                    epoch: epoch.clone(),
                    offset,
                    recovered: None,
                },
            );
        }
    }

    /// Whether a final session has everything it waits for.
    fn done(&self, until: Until) -> bool {
        matches!(until, Until::Caught(_)) && self.caught_up()
    }

    async fn ws_session(&mut self, until: Until, stop: &CancellationToken) -> Result<(), String> {
        let (_, addr) = self.shared.node();
        let target = Target::at(addr, "/ws");
        let opening = async {
            let mut conn = Conn::open(&target, None, self.deflate).await?;
            match conn.next().await? {
                Frame::Data(hello) if hello.starts_with(b"{\"hello\"") => Ok(conn),
                Frame::Data(other) => Err(format!(
                    "expected a hello, got {}",
                    String::from_utf8_lossy(other)
                )),
                Frame::Closed(code) => Err(format!("closed with {code} before the hello")),
            }
        };
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, opening)
            .await
            .map_err(|_| {
                format!(
                    "no hello within {}",
                    humantime::format_duration(CONNECT_TIMEOUT)
                )
            })??;
        // The `since` each pending `sub` was sent with.
        let mut pending: Vec<Option<Option<Position>>> = vec![None; self.slots.len()];
        for (slot, waiting) in pending.iter_mut().enumerate() {
            let since = self.slots[slot].1.position().cloned();
            let topic = &self.shared.topics[self.slots[slot].0].name;
            send_sub(&mut conn, topic, slot, since.as_ref()).await?;
            *waiting = Some(since);
        }
        // Halfway through (more or less), one topic is unsubscribed and subscribed
        // again from its position.
        let now = Instant::now();
        let mut churn_at = match until {
            Until::Deadline(end) if end > now => {
                let span = end - now;
                Some(now + span.mul_f64(rand::random_range(0.2..0.6)))
            }
            _ => None,
        };
        let churned = rand::random_range(0..self.slots.len().max(1));
        let mut resub_at: Option<Instant> = None;
        let finished = loop {
            if self.done(until) && pending.iter().all(Option::is_none) {
                break true;
            }
            enum Event {
                End,
                Churn,
                Resub,
                Message(Box<Result<Incoming, String>>),
                Closed(u16),
            }
            let event = tokio::select! {
                () = tokio::time::sleep_until(until.at()) => Event::End,
                () = stop.cancelled() => Event::End,
                () = sleep_until_some(churn_at) => Event::Churn,
                () = sleep_until_some(resub_at) => Event::Resub,
                frame = conn.next() => match frame? {
                    Frame::Data(text) => Event::Message(Box::new(
                        serde_json::from_slice::<Incoming>(text)
                            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(text))),
                    )),
                    Frame::Closed(code) => Event::Closed(code),
                },
            };
            match event {
                Event::End => break true,
                // A node that shuts down asks us to come back (to a ready node).
                Event::Closed(1012) => {
                    self.shared.counters.told_to_reconnect[Transport::Ws as usize]
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Event::Closed(code) => {
                    return Err(format!("the server closed the connection ({code})"));
                }
                Event::Churn => {
                    churn_at = None;
                    if pending[churned].is_none() {
                        let request = format!(
                            r#"{{"op":"unsub","id":{},"topic":"{}"}}"#,
                            UNSUB_ID + churned as u64,
                            self.topic_name(churned)
                        );
                        conn.send_text(request).await?;
                        self.shared
                            .counters
                            .unsubscribes
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Its subscription is not answered yet: try later.
                        churn_at = Some(Instant::now() + Duration::from_millis(200));
                    }
                }
                Event::Resub => {
                    resub_at = None;
                    let since = self.slots[churned].1.position().cloned();
                    send_sub(&mut conn, self.topic_name(churned), churned, since.as_ref()).await?;
                    pending[churned] = Some(since);
                }
                Event::Message(message) => {
                    let incoming = match *message {
                        Ok(incoming) => incoming,
                        Err(reason) => {
                            self.shared
                                .violation(format!("ws: unreadable message: {reason}"));
                            continue;
                        }
                    };
                    let Some(id) = incoming.id.as_ref() else {
                        self.message(&incoming);
                        continue;
                    };
                    let id = id.as_u64().unwrap_or(0);
                    if (SUB_ID..SUB_ID + self.slots.len() as u64).contains(&id) {
                        let slot = (id - SUB_ID) as usize;
                        let Some(since) = pending[slot].take() else {
                            self.shared
                                .violation(format!("ws: a sub reply nobody waits for: id {id}"));
                            continue;
                        };
                        match (&incoming.ok, &incoming.error) {
                            (Some(ok), _) => match serde_json::from_value::<SubEntry>(ok.clone()) {
                                Ok(entry) => self.subscribed(
                                    slot,
                                    since.as_ref(),
                                    &Reply {
                                        epoch: entry.epoch,
                                        offset: entry.offset,
                                        recovered: entry.recovered,
                                    },
                                ),
                                Err(e) => self
                                    .shared
                                    .violation(format!("ws: unreadable sub reply {ok}: {e}")),
                            },
                            (None, error) => {
                                self.shared.note_error(format!(
                                    "ws sub {} refused: {error:?}",
                                    self.topic_name(slot)
                                ));
                                return Err("a sub was refused".into());
                            }
                        }
                    } else if (UNSUB_ID..UNSUB_ID + self.slots.len() as u64).contains(&id) {
                        let slot = (id - UNSUB_ID) as usize;
                        if incoming.ok.is_none() {
                            self.shared.violation(format!(
                                "ws: unsub {} refused: {:?}",
                                self.topic_name(slot),
                                incoming.error
                            ));
                        }
                        self.slots[slot].1.end();
                        self.live_from[slot] = None;
                        resub_at = Some(
                            Instant::now()
                                + rand_duration(Duration::ZERO, Duration::from_millis(500)),
                        );
                    } else {
                        self.shared
                            .violation(format!("ws: a reply to an unknown id: {id}"));
                    }
                }
            }
        };
        if finished && rand::random::<bool>() {
            conn.close().await;
        }
        Ok(())
    }

    /// The positions of every topic that has one, as `since` text.
    fn since_text(&self) -> String {
        positions_text(self.slots.iter().filter_map(|(t, track)| {
            track
                .position()
                .map(|p| (self.shared.topics[*t].name.as_str(), p))
        }))
    }

    fn topics_query(&self) -> String {
        self.slots
            .iter()
            .map(|(t, _)| format!("topic={}", self.shared.topics[*t].name))
            .collect::<Vec<_>>()
            .join("&")
    }

    async fn sse_session(&mut self, until: Until, stop: &CancellationToken) -> Result<(), String> {
        let mut client = connect_http(self.shared.node().1).await?;
        let since_sent: Vec<Option<Position>> = self
            .slots
            .iter()
            .map(|(_, track)| track.position().cloned())
            .collect();
        let since = self.since_text();
        let every_known = since_sent.iter().all(Option::is_some);
        let mut path = format!("/sse?{}", self.topics_query());
        let mut headers: Vec<(&str, &str)> = vec![("accept", "text/event-stream")];
        // Resume the way a browser does (Last-Event-ID) or with `since` in the URL.
        if every_known && rand::random::<bool>() {
            headers.push(("last-event-id", &since));
        } else if !since.is_empty() {
            path.push_str("&since=");
            path.push_str(&since);
        }
        let (status, mut body) = client
            .send(http::Method::GET, &path, &headers, String::new())
            .await?;
        if status != http::StatusCode::OK {
            return Err(format!("GET {path}: {status}"));
        }
        let mut buffer: Vec<u8> = Vec::new();
        let mut subscribed = false;
        let mut farewell = false;
        loop {
            if subscribed && self.done(until) {
                return Ok(());
            }
            let chunk = tokio::select! {
                () = tokio::time::sleep_until(until.at()) => return Ok(()),
                () = stop.cancelled() => return Ok(()),
                chunk = body.next() => chunk?,
            };
            let Some(chunk) = chunk else {
                if farewell {
                    // A node that shuts down ends the stream after `retry:`.
                    self.shared.counters.told_to_reconnect[Transport::Sse as usize]
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                return Err("the server ended the stream".into());
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = find(&buffer, b"\n\n") {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event).into_owned();
                farewell |= text.contains("\n: service restart");
                self.sse_event(&text, &since_sent, &mut subscribed);
            }
        }
    }

    fn sse_event(&mut self, text: &str, since_sent: &[Option<Position>], subscribed: &mut bool) {
        let (mut name, mut data, mut id) = (None, String::new(), None);
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            } else if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().to_owned());
            }
        }
        match name.as_deref() {
            Some("subscribed") => {
                let subs = serde_json::from_str::<Value>(&data)
                    .ok()
                    .and_then(|v| v.get("subs").cloned())
                    .and_then(|subs| serde_json::from_value::<Vec<SubEntry>>(subs).ok());
                let Some(subs) = subs else {
                    self.shared
                        .violation(format!("sse: unreadable subscribed event {data:?}"));
                    return;
                };
                self.apply_subs(&subs, since_sent);
                *subscribed = true;
            }
            Some(_) => {}                 // presence
            None if data.is_empty() => {} // a comment, the retry line
            None => {
                match serde_json::from_str::<Incoming>(&data) {
                    Ok(incoming) => self.message(&incoming),
                    Err(e) => {
                        self.shared
                            .violation(format!("sse: unreadable message {data:?}: {e}"));
                        return;
                    }
                }
                if let Some(id) = id
                    && !same_positions(&id, &self.since_text())
                {
                    self.shared.violation(format!(
                        "sse: event id {id:?} but the positions are {:?}",
                        self.since_text()
                    ));
                }
            }
        }
    }

    fn apply_subs(&mut self, subs: &[SubEntry], since_sent: &[Option<Position>]) {
        let mut seen = vec![false; self.slots.len()];
        for entry in subs {
            let Some(slot) = self.slot_of(&entry.topic) else {
                self.shared.violation(format!(
                    "{}: subs names {}, which was not asked for",
                    self.transport.name(),
                    entry.topic
                ));
                continue;
            };
            seen[slot] = true;
            self.subscribed(
                slot,
                since_sent[slot].as_ref(),
                &Reply {
                    epoch: entry.epoch.clone(),
                    offset: entry.offset,
                    recovered: entry.recovered,
                },
            );
        }
        if let Some(missing) = seen.iter().position(|seen| !seen) {
            self.shared.violation(format!(
                "{}: subs lacks {}",
                self.transport.name(),
                self.topic_name(missing)
            ));
        }
    }

    async fn poll_session(&mut self, until: Until, stop: &CancellationToken) -> Result<(), String> {
        let mut client = connect_http(self.shared.node().1).await?;
        loop {
            if self.done(until) {
                return Ok(());
            }
            let remaining = until.at().saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(200) || stop.is_cancelled() {
                return Ok(());
            }
            let timeout = remaining.min(self.settings.poll_timeout);
            let since_sent: Vec<Option<Position>> = self
                .slots
                .iter()
                .map(|(_, track)| track.position().cloned())
                .collect();
            let since = self.since_text();
            let mut path = format!(
                "/poll?{}&timeout={}",
                self.topics_query(),
                timeout.as_millis()
            );
            if !since.is_empty() {
                path.push_str("&since=");
                path.push_str(&since);
            }
            let answer = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                answer = client.fetch(http::Method::GET, &path, &[], String::new(), 16 << 20) => answer?,
            };
            let (status, body) = answer;
            if status != http::StatusCode::OK {
                return Err(format!(
                    "GET {path}: {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            #[derive(Deserialize)]
            struct PollAnswer {
                since: String,
                subs: Vec<SubEntry>,
                messages: Vec<Value>,
            }
            let answer: PollAnswer = serde_json::from_slice(&body).map_err(|e| {
                format!(
                    "unreadable poll answer: {e}: {}",
                    String::from_utf8_lossy(&body)
                )
            })?;
            self.apply_subs(&answer.subs, &since_sent);
            for message in answer.messages {
                match serde_json::from_value::<Incoming>(message) {
                    Ok(incoming) => self.message(&incoming),
                    Err(e) => self
                        .shared
                        .violation(format!("poll: unreadable message: {e}")),
                }
            }
            for (_, track) in &mut self.slots {
                track.end();
            }
            if !same_positions(&answer.since, &self.since_text()) {
                self.shared.violation(format!(
                    "poll: the answer's since is {:?} but the positions are {:?}",
                    answer.since,
                    self.since_text()
                ));
            }
            if client.retry_after() || client.closing() {
                // A node that shuts down answers at once with Retry-After; one that
                // drains closes each connection after its answer: poll a ready node
                // next, on a new connection.
                self.shared.counters.told_to_reconnect[Transport::Poll as usize]
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
}

async fn send_sub(
    conn: &mut Conn,
    topic: &str,
    slot: usize,
    since: Option<&Position>,
) -> Result<(), String> {
    let id = SUB_ID + slot as u64;
    let request = match since {
        Some(p) => format!(
            r#"{{"op":"sub","id":{id},"topic":"{topic}","since":{{"epoch":"{}","offset":{}}}}}"#,
            p.epoch, p.offset
        ),
        None => format!(r#"{{"op":"sub","id":{id},"topic":"{topic}"}}"#),
    };
    conn.send_text(request).await
}

/// How long opening a connection (and, over `/ws`, getting the hello) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens an HTTP connection within [`CONNECT_TIMEOUT`].
async fn connect_http(addr: std::net::SocketAddr) -> Result<Client, String> {
    tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(addr))
        .await
        .map_err(|_| {
            format!(
                "no connection within {}",
                humantime::format_duration(CONNECT_TIMEOUT)
            )
        })?
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A random duration in `[low, high]`.
fn rand_duration(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_millis() as u64;
    low + Duration::from_millis(rand::random_range(0..=span))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
