//! Pusher apps: [`PusherApp`] (credentials, features, limits, webhooks) and
//! [`PusherApps`], the apps one server serves, found by key (clients) or by id
//! (the HTTP API).
//!
//! An app is written as one line, the same in a flag, an environment variable and
//! (generated from a table) the config file:
//! `ID:KEY:SECRET[?OPTION=VALUE&…]`, for example
//! `app-1:app-key:app-secret?client-events=true&webhook=http://127.0.0.1:9000/hooks`.
//! The options are listed at [`PusherApp::parse`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

use super::channel::{Channel, ChannelKind};
use crate::hub::HubConfig;
use crate::topic::{MAX_TOPIC_LEN, Topic};

/// Why an app's line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// Not `ID:KEY:SECRET`.
    #[error("a Pusher app is ID:KEY:SECRET[?option=value&…], not {0:?}")]
    Shape(String),
    /// The id, key or namespace has a character outside `A-Z a-z 0-9 _ - .`.
    #[error("a Pusher app's {what} is 1 to 64 characters of A-Z a-z 0-9 _ - . ({0:?} is not)", what = .1)]
    Name(String, &'static str),
    /// The secret is empty.
    #[error("a Pusher app's secret cannot be empty")]
    EmptySecret,
    /// An option this version does not know.
    #[error("unknown Pusher app option {0:?} (known: {known})", known = OPTIONS.join(", "))]
    UnknownOption(String),
    /// An option's value is malformed.
    #[error("Pusher app option {0}: {1}")]
    Option(String, String),
    /// Two apps share an id, a key or a namespace.
    #[error("two Pusher apps have the {what} {0:?}", what = .1)]
    Duplicate(String, &'static str),
}

/// The options of an app's line.
const OPTIONS: &[&str] = &[
    "enabled",
    "client-events",
    "namespace",
    "webhook",
    "webhook-events",
    "max-connections",
    "max-event-size",
    "max-presence-members",
    "max-client-events-per-second",
    "activity-timeout",
];

/// An app's limits; the defaults are Pusher's published ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PusherLimits {
    /// Open connections of this app on this node; `None`: only the server's limits.
    pub max_connections: Option<usize>,
    /// The largest event `data`, in bytes (Pusher: 10 KiB).
    pub max_event_size: usize,
    /// Channels one HTTP API event may name (Pusher: 100).
    pub max_channels_per_event: usize,
    /// Events in one `batch_events` request (Pusher: 10).
    pub max_batch_events: usize,
    /// The longest event name (Pusher: 200).
    pub max_event_name: usize,
    /// The longest channel name (Pusher: 164).
    pub max_channel_name: usize,
    /// Members of one presence channel (Pusher: 100).
    pub max_presence_members: usize,
    /// The largest presence `user_info`, in bytes of JSON (Pusher: 1 KiB).
    pub max_user_info: usize,
    /// Client events a connection may send per second (Pusher: 10).
    pub max_client_events_per_second: u32,
    /// Seconds of silence after which the server pings a client (and the
    /// `activity_timeout` it is told; Pusher: 120).
    pub activity_timeout: u32,
}

impl Default for PusherLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_event_size: 10 * 1024,
            max_channels_per_event: 100,
            max_batch_events: 10,
            max_event_name: 200,
            max_channel_name: 164,
            max_presence_members: 100,
            max_user_info: 1024,
            max_client_events_per_second: 10,
            activity_timeout: 120,
        }
    }
}

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A channel got its first subscriber (on any node).
    ChannelOccupied,
    /// A channel lost its last subscriber (on every node).
    ChannelVacated,
    /// A user joined a presence channel.
    MemberAdded,
    /// A user left a presence channel.
    MemberRemoved,
    /// A client sent a client event.
    ClientEvent,
}

impl WebhookEvent {
    /// Every event, in the order Pusher lists them.
    pub const ALL: [WebhookEvent; 5] = [
        Self::ChannelOccupied,
        Self::ChannelVacated,
        Self::MemberAdded,
        Self::MemberRemoved,
        Self::ClientEvent,
    ];

    /// The name Pusher gives it (`channel_occupied`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChannelOccupied => "channel_occupied",
            Self::ChannelVacated => "channel_vacated",
            Self::MemberAdded => "member_added",
            Self::MemberRemoved => "member_removed",
            Self::ClientEvent => "client_event",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an app's webhooks go, and which events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL posted to (`http://` or `https://`).
    pub url: String,
    /// The events sent there (all of them by default).
    pub events: Vec<WebhookEvent>,
}

/// One Pusher app: what its clients and its backend authenticate with, what it
/// allows, and which topics are its channels.
#[derive(Clone, PartialEq, Eq)]
pub struct PusherApp {
    /// The app id (the HTTP API's `/apps/{app_id}`).
    pub id: String,
    /// The public key (clients' `/app/{key}`, the signatures' `KEY:`).
    pub key: String,
    /// The secret every signature is made with.
    pub secret: String,
    /// A disabled app's clients are refused (4003) and its API answers 403.
    pub enabled: bool,
    /// Whether clients may send `client-*` events on private and presence channels.
    pub client_events: bool,
    /// The topic namespace of its channels: channel `c` is topic `{namespace}:c`.
    /// The app id by default.
    pub namespace: String,
    /// Its limits.
    pub limits: PusherLimits,
    /// Its webhooks.
    pub webhooks: Vec<Webhook>,
}

impl fmt::Debug for PusherApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PusherApp")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"…")
            .field("enabled", &self.enabled)
            .field("client_events", &self.client_events)
            .field("namespace", &self.namespace)
            .field("limits", &self.limits)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl PusherApp {
    /// An enabled app with Pusher's default limits, no client events, no webhooks,
    /// its channels in the namespace `id`.
    pub fn new(
        id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, AppError> {
        let (id, key, secret) = (id.into(), key.into(), secret.into());
        check_name(&id, "id")?;
        check_name(&key, "key")?;
        if secret.is_empty() {
            return Err(AppError::EmptySecret);
        }
        Ok(Self {
            namespace: id.clone(),
            id,
            key,
            secret,
            enabled: true,
            client_events: false,
            limits: PusherLimits::default(),
            webhooks: Vec::new(),
        })
    }

    /// Reads an app's line: `ID:KEY:SECRET[?OPTION=VALUE&…]`, values
    /// percent-encoded where needed. Options: `enabled` and `client-events`
    /// (`true`/`false`), `namespace`, `webhook` (a URL; repeat for several),
    /// `webhook-events` (a comma-separated list of `channel_occupied`,
    /// `channel_vacated`, `member_added`, `member_removed`, `client_event`, for the
    /// `webhook` before it), `max-connections`, `max-event-size` (bytes),
    /// `max-presence-members`, `max-client-events-per-second`, `activity-timeout`
    /// (seconds).
    pub fn parse(line: &str) -> Result<Self, AppError> {
        let (credentials, options) = line.split_once('?').unwrap_or((line, ""));
        let mut parts = credentials.splitn(3, ':');
        let (Some(id), Some(key), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AppError::Shape(redact(line)));
        };
        let mut app = Self::new(id, key, decode(secret, "secret")?)?;
        for pair in options.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value, name)?;
            app.set(name, &value)?;
        }
        check_name(&app.namespace, "namespace")?;
        Ok(app)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), AppError> {
        let bad = |reason: &str| AppError::Option(name.to_owned(), reason.to_owned());
        let flag = || match value {
            "true" | "on" | "1" => Ok(true),
            "false" | "off" | "0" => Ok(false),
            _ => Err(bad("write true or false")),
        };
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("write a positive whole number"))
        };
        match name {
            "enabled" => self.enabled = flag()?,
            "client-events" => self.client_events = flag()?,
            "namespace" => self.namespace = value.to_owned(),
            "webhook" => {
                if !(value.starts_with("http://") || value.starts_with("https://"))
                    || value.parse::<http::Uri>().is_err()
                {
                    return Err(bad("write an http:// or https:// URL"));
                }
                self.webhooks.push(Webhook {
                    url: value.to_owned(),
                    events: WebhookEvent::ALL.to_vec(),
                });
            }
            "webhook-events" => {
                let Some(webhook) = self.webhooks.last_mut() else {
                    return Err(bad("comes after the webhook it is for"));
                };
                webhook.events = value
                    .split(',')
                    .map(|e| {
                        WebhookEvent::parse(e.trim())
                            .ok_or_else(|| bad(&format!("{e:?} is not a webhook event")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "max-connections" => self.limits.max_connections = Some(number()?),
            "max-event-size" => self.limits.max_event_size = number()?,
            "max-presence-members" => self.limits.max_presence_members = number()?,
            "max-client-events-per-second" => {
                self.limits.max_client_events_per_second =
                    u32::try_from(number()?).map_err(|_| bad("too large"))?;
            }
            "activity-timeout" => {
                self.limits.activity_timeout =
                    u32::try_from(number()?).map_err(|_| bad("too large"))?;
            }
            _ => return Err(AppError::UnknownOption(name.to_owned())),
        }
        Ok(())
    }

    /// The topic of `channel`: `{namespace}:{channel}`, with the characters of
    /// channel names that topic names do not have written `/XX` (see
    /// [`Channel::escaped`]).
    pub fn topic(&self, channel: &Channel) -> Topic {
        let name = format!("{}:{}", self.namespace, channel.escaped());
        // A channel's escaped name and a checked namespace are in the topic grammar,
        // and `Channel::parse` refused names that would make the topic too long.
        match Topic::new(&name) {
            Ok(topic) => topic,
            Err(err) => unreachable!("channel {channel} made the bad topic {name:?}: {err}"),
        }
    }

    /// The channel a topic of this app's namespace is; `None` for any other topic.
    pub fn channel(&self, topic: &Topic) -> Option<Channel> {
        let rest = topic
            .as_str()
            .strip_prefix(self.namespace.as_str())?
            .strip_prefix(':')?;
        Channel::unescape(rest)
    }

    /// The longest channel name this app's topics can hold: Pusher's limit, or less
    /// when the namespace and escaping would make the topic too long.
    pub fn fits(&self, channel: &Channel) -> bool {
        channel.as_str().len() <= self.limits.max_channel_name
            && self.namespace.len() + 1 + channel.escaped().len() <= MAX_TOPIC_LEN
    }

    /// The topic prefixes of the channels only the Pusher protocol's signatures
    /// open: `private-` (and `private-encrypted-`), `presence-` and the users' own
    /// channels.
    pub fn guarded_prefixes(&self) -> [String; 3] {
        let user = Channel::for_user("x")
            .map(|c| c.escaped())
            .unwrap_or_default();
        let user = user.trim_end_matches('x');
        [
            format!("{}:private-", self.namespace),
            format!("{}:presence-", self.namespace),
            format!("{}:{user}", self.namespace),
        ]
    }

    /// Whether `channel` needs an auth signature to subscribe.
    pub fn needs_auth(channel: &Channel) -> bool {
        !matches!(channel.kind(), ChannelKind::Public)
    }
}

/// The apps one server serves, found by key or by id. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PusherApps {
    apps: Arc<[Arc<PusherApp>]>,
    by_key: Arc<HashMap<String, usize>>,
    by_id: Arc<HashMap<String, usize>>,
}

impl PusherApps {
    /// The apps; refuses two that share an id, a key or a namespace.
    pub fn new(apps: Vec<PusherApp>) -> Result<Self, AppError> {
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        let mut namespaces = HashMap::new();
        for (index, app) in apps.iter().enumerate() {
            if by_id.insert(app.id.clone(), index).is_some() {
                return Err(AppError::Duplicate(app.id.clone(), "id"));
            }
            if by_key.insert(app.key.clone(), index).is_some() {
                return Err(AppError::Duplicate(app.key.clone(), "key"));
            }
            if namespaces.insert(app.namespace.clone(), index).is_some() {
                return Err(AppError::Duplicate(app.namespace.clone(), "namespace"));
            }
        }
        Ok(Self {
            apps: apps.into_iter().map(Arc::new).collect(),
            by_key: Arc::new(by_key),
            by_id: Arc::new(by_id),
        })
    }

    /// The app whose clients connect with `key`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<PusherApp>> {
        self.by_key.get(key).map(|&i| &self.apps[i])
    }

    /// The app whose HTTP API is `/apps/{id}`.
    pub fn by_id(&self, id: &str) -> Option<&Arc<PusherApp>> {
        self.by_id.get(id).map(|&i| &self.apps[i])
    }

    /// Every app, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PusherApp>> {
        self.apps.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The topic namespaces of the apps: the hub must track presence in each (for
    /// their `presence-` channels).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.apps.iter().map(|app| app.namespace.as_str())
    }

    /// `hub` made fit to serve these apps: presence tracked in each app's
    /// namespace, and the topics of its private, presence and user channels
    /// guarded ([`HubConfig::guarded`]: pushwire's own clients need a token that
    /// grants them; the Pusher protocol checks its own signatures).
    pub fn hub_config(&self, mut hub: HubConfig) -> HubConfig {
        for app in self.apps.iter() {
            if !hub.presence.contains(&app.namespace) {
                hub.presence.push(app.namespace.clone());
            }
            for prefix in app.guarded_prefixes() {
                if !hub.guarded.contains(&prefix) {
                    hub.guarded.push(prefix);
                }
            }
        }
        hub
    }
}

fn check_name(name: &str, what: &'static str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::Name(name.to_owned(), what))
    }
}

fn decode(value: &str, what: &str) -> Result<String, AppError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| AppError::Option(what.to_owned(), String::from("not UTF-8")))
}

/// The line without its secret, for an error message.
fn redact(line: &str) -> String {
    let mut parts = line.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(key), Some(_)) => format!("{id}:{key}:…"),
        _ => line.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_credentials_and_options() {
        let app = PusherApp::parse(
            "app-1:key:s%3Acret?client-events=true&webhook=http://127.0.0.1:9/h&webhook-events=member_added,client_event&max-event-size=2048",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((app.id.as_str(), app.key.as_str()), ("app-1", "key"));
        assert_eq!(app.secret, "s:cret");
        assert!(app.client_events && app.enabled);
        assert_eq!(app.namespace, "app-1");
        assert_eq!(app.limits.max_event_size, 2048);
        assert_eq!(
            app.webhooks,
            vec![Webhook {
                url: String::from("http://127.0.0.1:9/h"),
                events: vec![WebhookEvent::MemberAdded, WebhookEvent::ClientEvent],
            }]
        );
        assert!(
            !format!("{app:?}").contains("s:cret"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        assert!(matches!(
            PusherApp::parse("app:key"),
            Err(AppError::Shape(_))
        ));
        assert!(matches!(
            PusherApp::parse("a b:key:s"),
            Err(AppError::Name(_, "id"))
        ));
        assert_eq!(PusherApp::parse("a:k:"), Err(AppError::EmptySecret));
        assert!(matches!(
            PusherApp::parse("a:k:s?colour=red"),
            Err(AppError::UnknownOption(_))
        ));
        assert!(matches!(
            PusherApp::parse("a:k:s?webhook=ftp://x"),
            Err(AppError::Option(..))
        ));
        assert!(matches!(
            PusherApp::parse("a:k:s?webhook-events=member_added"),
            Err(AppError::Option(..))
        ));
        assert!(matches!(
            PusherApp::parse("a:k:s?namespace=a:b"),
            Err(AppError::Name(_, "namespace"))
        ));
        let shape = PusherApp::parse("only-id")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(shape.contains("ID:KEY:SECRET"));
    }

    #[test]
    fn apps_are_found_by_key_and_id_and_must_differ() {
        let one = PusherApp::new("1", "k1", "s").unwrap_or_else(|e| panic!("{e}"));
        let two = PusherApp::new("2", "k2", "s").unwrap_or_else(|e| panic!("{e}"));
        let apps = PusherApps::new(vec![one.clone(), two]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(apps.by_key("k2").map(|a| a.id.as_str()), Some("2"));
        assert_eq!(apps.by_id("1").map(|a| a.key.as_str()), Some("k1"));
        assert!(apps.by_key("nope").is_none());
        let mut same_key = PusherApp::new("3", "k1", "s").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            PusherApps::new(vec![one.clone(), same_key.clone()]),
            Err(AppError::Duplicate(_, "key"))
        ));
        same_key.key = String::from("k3");
        same_key.namespace = String::from("1");
        assert!(matches!(
            PusherApps::new(vec![one, same_key]),
            Err(AppError::Duplicate(_, "namespace"))
        ));
    }

    #[test]
    fn channels_map_to_topics_and_back() {
        let app = PusherApp::new("42", "k", "s").unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "orders",
            "presence-a@b",
            "private-x=1;y,2",
            "#server-to-user-7",
        ] {
            let channel = Channel::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let topic = app.topic(&channel);
            assert!(topic.as_str().starts_with("42:"));
            assert_eq!(app.channel(&topic).as_ref(), Some(&channel), "{name}");
        }
        let topic = app.topic(&Channel::parse("presence-a@b").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(topic.as_str(), "42:presence-a/40b");
        let other = Topic::new("43:orders").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(app.channel(&other), None);
        let bad = Topic::new("42:a/zz").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(app.channel(&bad), None, "not an escape this mapping writes");
    }
}
