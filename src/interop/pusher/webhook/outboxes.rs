//! [`Outboxes`]: every app's webhook outboxes — where a notice is queued, and
//! where the senders are started.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use super::payload::kind;
use super::{QUEUE_LIMIT, post, sender};
use crate::interop::pusher::{Notice, PusherApp, PusherApps, PusherSetupError};
use crate::ops::Metrics;

/// The outboxes of every webhook of every app, by app id.
pub(crate) struct Outboxes {
    by_app: HashMap<String, Vec<Arc<Outbox>>>,
}

impl Outboxes {
    /// An outbox per webhook of `apps`; refuses a URL that is not `http://` or
    /// `https://` with a host.
    pub(crate) fn new(apps: &PusherApps) -> Result<Self, PusherSetupError> {
        let mut by_app: HashMap<String, Vec<Arc<Outbox>>> = HashMap::new();
        for app in apps.iter() {
            for webhook in &app.webhooks {
                check_url(&webhook.url).map_err(|why| PusherSetupError::WebhookUrl {
                    app: app.id.clone(),
                    url: webhook.url.clone(),
                    why,
                })?;
                by_app
                    .entry(app.id.clone())
                    .or_default()
                    .push(Arc::new(Outbox::new(
                        webhook.clone(),
                        app.key.clone(),
                        app.secret.clone(),
                        QUEUE_LIMIT,
                    )));
            }
        }
        Ok(Self { by_app })
    }

    /// Whether no app has a webhook.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_app.is_empty()
    }

    /// Whether some webhook of some app wants `event`.
    pub(crate) fn wants(&self, event: crate::interop::pusher::WebhookEvent) -> bool {
        self.by_app
            .values()
            .flatten()
            .any(|outbox| outbox.webhook.events.contains(&event))
    }

    /// Queues `notice` for every webhook of `app` that wants its kind.
    pub(crate) fn notify(&self, app: &PusherApp, notice: Notice) {
        let Some(outboxes) = self.by_app.get(&app.id) else {
            return;
        };
        let event = kind(&notice);
        for outbox in outboxes {
            if outbox.webhook.events.contains(&event) {
                outbox.push(notice.clone());
            }
        }
    }

    /// Starts a sender per webhook; they stop when `stop` is cancelled.
    pub(crate) fn start(&self, metrics: Option<Arc<Metrics>>, stop: &CancellationToken) {
        if self.is_empty() {
            return;
        }
        let client = post::client();
        for outbox in self.by_app.values().flatten() {
            tokio::spawn(sender::run(
                Arc::clone(outbox),
                client.clone(),
                metrics.clone(),
                stop.clone(),
            ));
        }
    }
}

/// Why `url` cannot be posted to, if it cannot.
fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|err| format!("{err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(String::from("not an http:// or https:// URL with a host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(check_url("http://127.0.0.1:8080/hooks").is_ok());
        assert!(check_url("http://hooks.internal/pusher").is_ok());
        assert!(check_url("https://example.com/").is_ok());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("/relative").is_err());
        assert!(check_url("not a url").is_err());
    }
}
