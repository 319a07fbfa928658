//! [`Pusher`]: what every Pusher connection and API request of a server shares —
//! the apps, the hub, the socket ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tokio_util::sync::CancellationToken;

use super::app::{PusherApp, PusherApps, WebhookEvent};
use super::channel::Channel;
use super::notice::Notice;
use super::socket_id::{SocketId, SocketIds};
use super::webhook::outboxes::Outboxes;
use crate::broker::OccupancyChange;
use crate::hub::Hub;

/// Why Pusher apps cannot be served on a hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PusherSetupError {
    /// The hub does not track presence in an app's namespace, so its `presence-`
    /// channels would have no members.
    #[error(
        "Pusher app {app}: the hub must track presence in its namespace {namespace:?} (HubConfig::presence; PusherApps::hub_config does it)"
    )]
    NoPresence {
        /// The app id.
        app: String,
        /// Its namespace.
        namespace: String,
    },
    /// The hub does not guard the topics of an app's private channels, so
    /// pushwire's own clients could read them without the app's signature.
    #[error(
        "Pusher app {app}: the hub must guard the topics starting with {prefix:?} (HubConfig::guarded; PusherApps::hub_config does it)"
    )]
    NotGuarded {
        /// The app id.
        app: String,
        /// The prefix not guarded.
        prefix: String,
    },
    /// An app's webhook URL cannot be posted to (not `http://` or `https://`).
    #[error("Pusher app {app}: webhook {url:?}: {why}")]
    WebhookUrl {
        /// The app id.
        app: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The Pusher side of a server: apps on a hub. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

struct Inner {
    apps: PusherApps,
    hub: Hub,
    ids: SocketIds,
    /// Open connections per app id on this node (for `max_connections`).
    connections: HashMap<String, Arc<AtomicUsize>>,
    /// The apps' webhook queues.
    webhooks: Outboxes,
}

/// One admitted connection of an app: counted until dropped.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("apps", &self.inner.apps)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// Serves `apps` on `hub`; refuses an app whose namespace has no presence in
    /// the hub, or with a webhook URL that cannot be posted to.
    pub fn new(apps: PusherApps, hub: Hub) -> Result<Self, PusherSetupError> {
        for app in apps.iter() {
            let probe = Channel::parse("presence-probe").map(|c| app.topic(&c));
            if !probe.is_ok_and(|topic| hub.presence_enabled(&topic)) {
                return Err(PusherSetupError::NoPresence {
                    app: app.id.clone(),
                    namespace: app.namespace.clone(),
                });
            }
            if let Some(prefix) = app
                .guarded_prefixes()
                .into_iter()
                .find(|prefix| !hub.config().guarded.contains(prefix))
            {
                return Err(PusherSetupError::NotGuarded {
                    app: app.id.clone(),
                    prefix,
                });
            }
        }
        let connections = apps
            .iter()
            .map(|app| (app.id.clone(), Arc::default()))
            .collect();
        let webhooks = Outboxes::new(&apps)?;
        Ok(Self {
            inner: Arc::new(Inner {
                apps,
                hub,
                ids: SocketIds::new(),
                connections,
                webhooks,
            }),
        })
    }

    /// The apps.
    pub fn apps(&self) -> &PusherApps {
        &self.inner.apps
    }

    /// The app whose clients connect with `key`.
    pub fn app_by_key(&self, key: &str) -> Option<&Arc<PusherApp>> {
        self.inner.apps.by_key(key)
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Tells `app`'s webhooks about `notice` (queued; never waits).
    pub fn notify(&self, app: &PusherApp, notice: Notice) {
        self.inner.webhooks.notify(app, notice);
    }

    /// Starts the webhook senders (one per webhook) and reports the hub's
    /// occupancy transitions of the apps' channels to them as `channel_occupied` /
    /// `channel_vacated`; everything stops when `stop` is cancelled. Called once,
    /// when the server starts.
    pub fn start(&self, stop: &CancellationToken) {
        let webhooks = &self.inner.webhooks;
        webhooks.start(self.inner.hub.metrics().cloned(), stop);
        if webhooks.wants(WebhookEvent::ChannelOccupied)
            || webhooks.wants(WebhookEvent::ChannelVacated)
        {
            let pusher: Weak<Inner> = Arc::downgrade(&self.inner);
            self.inner.hub.on_occupancy(move |topic, change| {
                let Some(inner) = pusher.upgrade() else {
                    return;
                };
                for app in inner.apps.iter() {
                    let Some(channel) = app.channel(topic) else {
                        continue;
                    };
                    let notice = match change {
                        OccupancyChange::Occupied => Notice::ChannelOccupied { channel },
                        OccupancyChange::Vacated => Notice::ChannelVacated { channel },
                    };
                    inner.webhooks.notify(app, notice);
                }
            });
        }
    }

    /// Counts a new connection of `app`; `None` when the app already has its
    /// `max_connections` on this node.
    pub(crate) fn admit(&self, app: &PusherApp) -> Option<Admitted> {
        let count = Arc::clone(self.inner.connections.get(&app.id)?);
        let before = count.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(count);
        match app.limits.max_connections {
            Some(max) if before >= max => None,
            _ => Some(admitted),
        }
    }

    /// A new connection's socket id.
    pub fn next_socket_id(&self) -> SocketId {
        self.inner.ids.next_id()
    }
}
