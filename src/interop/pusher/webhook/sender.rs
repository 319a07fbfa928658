//! The sender of one webhook: waits for notices, batches them, posts each batch
//! with retries and exponential backoff, and counts what became of them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use super::payload::body;
use super::post::{HttpClient, post};
use super::{ATTEMPTS, BACKOFF_MAX, BACKOFF_MIN, BATCH_LIMIT, BATCH_WINDOW};
use crate::clock::unix_millis;
use crate::ops::{Metrics, WebhookOutcome};

/// What became of one batch.
enum Delivery {
    Sent,
    Failed,
    Stopped,
}

/// Sends the outbox's notices until `stop` is cancelled (what is still queued
/// then is not sent).
pub(crate) async fn run(
    outbox: Arc<Outbox>,
    client: HttpClient,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = outbox.wait() => {}
        }
        // More notices may follow the first one: post them together.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(BATCH_WINDOW) => {}
        }
        loop {
            let (notices, dropped) = outbox.take(BATCH_LIMIT);
            if dropped > 0 {
                tracing::warn!(
                    url = %outbox.webhook.url,
                    dropped,
                    "pusher webhook: queue full; the oldest events were dropped"
                );
                if let Some(metrics) = &metrics {
                    metrics.webhook_events(WebhookOutcome::Dropped, dropped);
                }
            }
            if notices.is_empty() {
                break;
            }
            let body = body(unix_millis(), &notices);
            let outcome = match deliver(&outbox, &client, &body, metrics.as_deref(), &stop).await {
                Delivery::Sent => WebhookOutcome::Sent,
                Delivery::Failed => WebhookOutcome::Failed,
                Delivery::Stopped => return,
            };
            if let Some(metrics) = &metrics {
                metrics.webhook_events(outcome, notices.len());
            }
        }
    }
}

/// Posts `body` until it is acknowledged, at most [`ATTEMPTS`] times.
async fn deliver(
    outbox: &Outbox,
    client: &HttpClient,
    body: &str,
    metrics: Option<&Metrics>,
    stop: &CancellationToken,
) -> Delivery {
    let mut backoff = BACKOFF_MIN;
    for attempt in 1..=ATTEMPTS {
        let err = match post(client, outbox, body).await {
            Ok(()) => return Delivery::Sent,
            Err(err) => err,
        };
        if attempt == ATTEMPTS {
            tracing::warn!(
                url = %outbox.webhook.url,
                attempts = ATTEMPTS,
                error = %err,
                "pusher webhook: giving up; its events are lost"
            );
            return Delivery::Failed;
        }
        tracing::info!(
            url = %outbox.webhook.url,
            attempt,
            error = %err,
            "pusher webhook: post failed; retrying in {backoff:?}"
        );
        if let Some(metrics) = metrics {
            metrics.webhook_retry();
        }
        tokio::select! {
            () = stop.cancelled() => return Delivery::Stopped,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    Delivery::Failed
}
