//! [`Pusher`]: what every Pusher connection and API request of a server shares —
//! the apps, the hub, the socket ids.

use std::sync::Arc;

use super::app::{PusherApp, PusherApps};
use super::channel::Channel;
use super::notice::Notice;
use super::socket_id::{SocketId, SocketIds};
use crate::hub::Hub;

/// Why Pusher apps cannot be served on a hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PusherSetupError {
    /// The hub does not track presence in an app's namespace, so its `presence-`
    /// channels would have no members.
    #[error(
        "Pusher app {app}: the hub must track presence in its namespace {namespace:?} (HubConfig::presence)"
    )]
    NoPresence {
        /// The app id.
        app: String,
        /// Its namespace.
        namespace: String,
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
    /// the hub.
    pub fn new(apps: PusherApps, hub: Hub) -> Result<Self, PusherSetupError> {
        for app in apps.iter() {
            let probe = Channel::parse("presence-probe").map(|c| app.topic(&c));
            if !probe.is_ok_and(|topic| hub.presence_enabled(&topic)) {
                return Err(PusherSetupError::NoPresence {
                    app: app.id.clone(),
                    namespace: app.namespace.clone(),
                });
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                apps,
                hub,
                ids: SocketIds::new(),
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
        // The webhook sender is not built yet: nothing is queued.
        let _ = (app, notice);
    }

    /// A new connection's socket id.
    pub fn next_socket_id(&self) -> SocketId {
        self.inner.ids.next_id()
    }
}
