//! `pushwire serve`: the counter demo server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use pushwire::auth::{AUTH_TIMEOUT, AuthConfig};
use pushwire::broker::RedisConfig;
use pushwire::config::{
    ServeConfig, parse_broker, parse_handshake_timeout, parse_heartbeat, parse_idle_timeout,
    parse_interval, parse_leeway, parse_mercure_audience, parse_mercure_cookie,
    parse_mercure_namespace, parse_origin, parse_timeout, parse_ttl, parse_wait,
};
use pushwire::hub::HubConfig;
use pushwire::interop::mercure::{Issuer, KeySpec, MercureConfig};
use pushwire::interop::pusher::PusherApp;
use pushwire::logging::{LogFormat, parse_filter};
use pushwire::protocol::session::SessionConfig;
use pushwire::topic::HistoryConfig;
use pushwire::{ConnectionLimits, HttpLimits, MetricsAccess, Origins};
use pushwire::{Error, TlsConfig, node};

/// Flags of `pushwire serve`, each also read from a `PUSHWIRE_*` variable.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; 0.0.0.0 or :: for every interface.
    #[arg(
        long,
        env = "PUSHWIRE_BIND",
        default_value = "127.0.0.1",
        value_name = "ADDR"
    )]
    bind: IpAddr,

    /// Read settings from this TOML file, by these flags' names (`port = 8001`,
    /// `broker = "redis://…"`); PUSHWIRE_* variables and flags win over it.
    #[arg(long, env = "PUSHWIRE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "PUSHWIRE_PORT", default_value_t = 8888)]
    port: u16,

    /// Time between two counter messages on /socket, such as 1s or 200ms.
    #[arg(long, env = "PUSHWIRE_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = parse_interval)]
    interval: Duration,

    /// Serve this folder below /static/ instead of the assets built into the binary.
    #[arg(long, env = "PUSHWIRE_STATIC_DIR", value_name = "DIR")]
    static_dir: Option<PathBuf>,

    /// Messages each topic keeps for recovery (0 turns recovery off).
    #[arg(long, env = "PUSHWIRE_HISTORY_SIZE", default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    history_size: u32,

    /// How long a topic keeps a message for recovery, such as 5m or 30s.
    #[arg(long, env = "PUSHWIRE_HISTORY_TTL", default_value = "5m", value_name = "DURATION", value_parser = parse_ttl)]
    history_ttl: Duration,

    /// Track presence (join/leave, members) on topics of this namespace (the part
    /// before the first ':'); repeat for several. "" means topics without one.
    #[arg(
        long = "presence",
        env = "PUSHWIRE_PRESENCE",
        value_delimiter = ',',
        default_value = "chat",
        value_name = "NAMESPACE"
    )]
    presence: Vec<String>,

    /// The largest published value, in bytes of JSON.
    #[arg(long, env = "PUSHWIRE_MAX_DATA_SIZE", default_value_t = 65536, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    max_data_size: u32,

    /// Key required on the publish API (Authorization: Bearer <key>). Without it the
    /// API accepts requests from loopback addresses only.
    #[arg(
        long,
        env = "PUSHWIRE_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// Serve the admin page at /admin to whoever knows this password (live
    /// connections, topics, rates, latency, nodes, errors). Off when unset.
    #[arg(
        long,
        env = "PUSHWIRE_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    admin_password: Option<String>,

    /// A Pusher Channels app: ID:KEY:SECRET[?option=value&…] (repeat for several;
    /// in the variable, separate them with spaces). pusher-js and Laravel Echo
    /// connect to /app/KEY, the pusher server SDKs publish to /apps/ID; channel C
    /// is the topic ID:C. Options: client-events=true, namespace=NAME,
    /// webhook=URL (webhook-events=channel_occupied,…), max-connections=N,
    /// max-event-size=BYTES, max-presence-members=N,
    /// max-client-events-per-second=N, activity-timeout=SECONDS (docs/interop.md).
    #[arg(
        long = "pusher-app",
        env = "PUSHWIRE_PUSHER_APPS",
        value_delimiter = ' ',
        value_name = "ID:KEY:SECRET",
        hide_env_values = true,
        value_parser = Secret(parse_pusher_app)
    )]
    pusher_app: Vec<PusherApp>,

    /// Serve a Mercure hub at /.well-known/mercure: browsers subscribe with
    /// EventSource, backends publish with a form POST; the topic IRI I is the
    /// pushwire topic mercure:I (percent-encoded). Implied by every other Mercure
    /// setting below (docs/interop.md).
    #[arg(long, env = "PUSHWIRE_MERCURE")]
    mercure: bool,

    /// A trusted Mercure token issuer and its key: ISS=KEY, KEY one of
    /// hs256:SECRET, hs256-file:PATH, pem:PATH (RS256/ES256) or jwks:PATH (repeat
    /// for several; in the variable, separate them with spaces). Tokens must be
    /// at+jwt access tokens from one of them, verified with its key only.
    #[arg(
        long = "mercure-issuer",
        env = "PUSHWIRE_MERCURE_ISSUERS",
        value_delimiter = ' ',
        value_name = "ISS=KEY",
        hide_env_values = true,
        value_parser = Secret(parse_mercure_issuer)
    )]
    mercure_issuer: Vec<Issuer>,

    /// The Mercure hub's resource identifier that tokens' aud must hold, such as
    /// https://example.com/.well-known/mercure. Unset: derived from each request's
    /// Host.
    #[arg(long, env = "PUSHWIRE_MERCURE_AUDIENCE", value_name = "URL", value_parser = parse_mercure_audience)]
    mercure_audience: Option<String>,

    /// Let Mercure subscribers without a token receive public updates (without
    /// it they get 401).
    #[arg(long, env = "PUSHWIRE_MERCURE_ANONYMOUS")]
    mercure_anonymous: bool,

    /// The cookie browsers send their Mercure token in [default:
    /// __Secure-mercure_access_token].
    #[arg(long, env = "PUSHWIRE_MERCURE_COOKIE", value_name = "NAME", value_parser = parse_mercure_cookie)]
    mercure_cookie: Option<String>,

    /// Also accept Mercure 0.x clients: tokens without typ, iss or aud verified
    /// with this key (hs256:SECRET, hs256-file:PATH, pem:PATH or jwks:PATH), the
    /// mercure claim, topic= URI Templates, the mercureAuthorization cookie and the
    /// authorization query parameter (docs/security.md says what that weakens).
    #[arg(
        long,
        env = "PUSHWIRE_MERCURE_COMPAT",
        value_name = "KEY",
        hide_env_values = true,
        value_parser = Secret(parse_mercure_key)
    )]
    mercure_compat: Option<KeySpec>,

    /// Announce Mercure subscriptions as private updates and serve the
    /// subscriptions API at /.well-known/mercure/subscriptions.
    #[arg(long, env = "PUSHWIRE_MERCURE_SUBSCRIPTIONS")]
    mercure_subscriptions: bool,

    /// The namespace of Mercure topics: the IRI I is the topic NS:I
    /// (percent-encoded) [default: mercure].
    #[arg(long, env = "PUSHWIRE_MERCURE_NAMESPACE", value_name = "NS", value_parser = parse_mercure_namespace)]
    mercure_namespace: Option<String>,

    /// How often an idle Mercure stream gets a comment line, such as 15s
    /// [default: 15s].
    #[arg(long, env = "PUSHWIRE_MERCURE_HEARTBEAT", value_name = "DURATION", value_parser = parse_heartbeat)]
    mercure_heartbeat: Option<Duration>,

    /// Prometheus metrics at /metrics: on (readers as the publish API: its key, or
    /// loopback clients without one), public (anyone who reaches the port), or off
    /// (nothing is counted).
    #[arg(long, env = "PUSHWIRE_METRICS", default_value = "on", value_name = "on|off|public", value_parser = ["on", "off", "public"])]
    metrics: String,

    /// A key of its own for /metrics (Authorization: Bearer <key>), instead of the
    /// publish API's.
    #[arg(
        long,
        env = "PUSHWIRE_METRICS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    metrics_key: Option<String>,

    /// Where topics live: memory (this process only) or redis://host:port/db to
    /// share topics, history and presence with every node on the same Redis.
    #[arg(long, env = "PUSHWIRE_BROKER", default_value = "memory", value_name = "URL", value_parser = parse_broker)]
    broker: String,

    /// How long a Redis command may take before the request that needed it fails
    /// (503), such as 1s or 500ms.
    #[arg(long, env = "PUSHWIRE_BROKER_TIMEOUT", default_value = "1s", value_name = "DURATION", value_parser = parse_timeout)]
    broker_timeout: Duration,

    /// The most publishes that may wait for Redis at once; more are refused (503).
    #[arg(long, env = "PUSHWIRE_BROKER_MAX_PENDING", default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    broker_max_pending: u32,

    /// With Redis: how long a member of a node that stopped (crashed) stays present,
    /// such as 15s. Each node refreshes its members every third of this.
    #[arg(long, env = "PUSHWIRE_PRESENCE_TTL", default_value = "15s", value_name = "DURATION", value_parser = parse_ttl)]
    presence_ttl: Duration,

    /// How long a long-poll client (one that sends ?client=) stays present on its
    /// topics after its last poll ended, such as 15s.
    #[arg(long, env = "PUSHWIRE_POLL_LAPSE", default_value = "15s", value_name = "DURATION", value_parser = parse_ttl)]
    poll_lapse: Duration,

    /// Also let pages from this origin (https://app.example.com) open sockets, SSE
    /// streams and polls and call the publish API; repeat for several, * for any.
    /// Pages from the server's own host always may; clients that send no Origin
    /// (not browsers) always may.
    #[arg(long = "allowed-origin", env = "PUSHWIRE_ALLOWED_ORIGIN", value_delimiter = ',', value_name = "ORIGIN", value_parser = parse_origin)]
    allowed_origin: Vec<String>,

    /// The most connections this node holds at once; more get 503 (0: no limit).
    #[arg(
        long,
        env = "PUSHWIRE_MAX_CONNECTIONS",
        default_value_t = 0,
        value_name = "N"
    )]
    max_connections: usize,

    /// The most connections one IP address (IPv6: one /64 network) holds at once;
    /// more get 429 (0: no limit; behind a load balancer every client shares its
    /// address).
    #[arg(
        long,
        env = "PUSHWIRE_MAX_CONNECTIONS_PER_IP",
        default_value_t = 0,
        value_name = "N"
    )]
    max_connections_per_ip: usize,

    /// The most new connections one IP address may open per second; more get 429
    /// (0: no limit).
    #[arg(
        long,
        env = "PUSHWIRE_MAX_NEW_CONNECTIONS_PER_IP",
        default_value_t = 0,
        value_name = "N"
    )]
    max_new_connections_per_ip: u32,

    /// The most requests a /ws client may send per second; more are answered 429,
    /// and a client a whole second over is closed with 1008 (0: no limit).
    #[arg(
        long,
        env = "PUSHWIRE_MAX_REQUESTS_PER_SECOND",
        default_value_t = 1000,
        value_name = "N"
    )]
    max_requests_per_second: u32,

    /// The most topics one /ws client may subscribe to at once.
    #[arg(long, env = "PUSHWIRE_MAX_SUBSCRIPTIONS", default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_subscriptions: u32,

    /// Time a client has to send a whole request head (and a WebSocket handshake),
    /// such as 10s; slower clients are disconnected.
    #[arg(long, env = "PUSHWIRE_HANDSHAKE_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = parse_handshake_timeout)]
    handshake_timeout: Duration,

    /// The largest request head, in bytes (8 KiB at least); larger ones get 431.
    #[arg(long, env = "PUSHWIRE_MAX_HEADER_SIZE", default_value_t = 16384, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    max_header_size: u32,

    /// Close an HTTP/2 connection (https) that has had no request in flight for
    /// this long, such as 60s; an open SSE stream counts as one.
    #[arg(long, env = "PUSHWIRE_HTTP2_IDLE_TIMEOUT", default_value = "60s", value_name = "DURATION", value_parser = parse_idle_timeout)]
    http2_idle_timeout: Duration,

    /// Serve https and wss with the certificate chain in this PEM file (the
    /// server's certificate first); needs --tls-key. SIGHUP reloads both files.
    #[arg(long, env = "PUSHWIRE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, in a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PUSHWIRE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Require tokens (JWT) on topics, HS256-signed with this shared secret. With no
    /// token key at all, topics are open to everyone.
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    token_secret: Option<String>,

    /// Require tokens signed by this key: a PEM RSA (RS256, 2048 to 8192 bits) or
    /// EC P-256 (ES256) public key; repeat for several. A private key, a P-384 key
    /// or a certificate stops the start with a line saying so.
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN_PUBLIC_KEY",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    token_public_key: Vec<PathBuf>,

    /// Require tokens signed by a key of this JWKS file (RSA and P-256 keys, picked
    /// by the token's kid); repeat for several.
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN_JWKS",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    token_jwks: Vec<PathBuf>,

    /// Tokens must name this audience (aud).
    #[arg(long, env = "PUSHWIRE_TOKEN_AUDIENCE", value_name = "AUD")]
    token_audience: Option<String>,

    /// Tokens must come from this issuer (iss).
    #[arg(long, env = "PUSHWIRE_TOKEN_ISSUER", value_name = "ISS")]
    token_issuer: Option<String>,

    /// Clock skew allowed on a token's exp and nbf, such as 30s.
    #[arg(long, env = "PUSHWIRE_TOKEN_LEEWAY", default_value = "30s", value_name = "DURATION", value_parser = parse_leeway)]
    token_leeway: Duration,

    /// Anyone may subscribe to topics matching this pattern without a token (an
    /// exact name, or a prefix ending in '*'); repeat for several.
    #[arg(
        long,
        env = "PUSHWIRE_PUBLIC_TOPIC",
        value_delimiter = ',',
        value_name = "PATTERN"
    )]
    public_topic: Vec<String>,

    /// How log lines are written to standard error: human (a line of text per
    /// event) or json (an object per line, every field at the top level).
    #[arg(long, env = "PUSHWIRE_LOG_FORMAT", default_value = "human", value_name = "FORMAT", value_parser = <LogFormat as std::str::FromStr>::from_str)]
    log_format: LogFormat,

    /// Which log lines are written, in RUST_LOG syntax: info, warn,pushwire=debug,
    /// info,pushwire::conn=off (no connection lines). Wins over RUST_LOG; without
    /// either, info.
    #[arg(long = "log", env = "PUSHWIRE_LOG", value_name = "FILTER", value_parser = parse_filter)]
    log: Option<String>,
    /// On SIGTERM or SIGINT, answer 503 on /readyz for this long (0s: not at all)
    /// while serving as before, so that a load balancer stops sending new clients;
    /// then tell every client to reconnect. The signal again ends the wait.
    #[arg(long, env = "PUSHWIRE_DRAIN_DELAY", default_value = "5s", value_name = "DURATION", value_parser = parse_wait)]
    drain_delay: Duration,

    /// After clients were told to reconnect, wait at most this long for their
    /// connections to close before exiting.
    #[arg(long, env = "PUSHWIRE_SHUTDOWN_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = parse_wait)]
    shutdown_timeout: Duration,
}

impl ServeArgs {
    /// The settings file these flags were read with, if any.
    pub(crate) fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// The settings these flags ask for; fails when only one of --tls-cert and
    /// --tls-key is given.
    pub(crate) fn into_config(self) -> Result<ServeConfig, String> {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig::pem_files(cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(String::from(
                    "--tls-cert needs --tls-key (PUSHWIRE_TLS_KEY): give both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(String::from(
                    "--tls-key needs --tls-cert (PUSHWIRE_TLS_CERT): give both or neither",
                ));
            }
        };
        Ok(ServeConfig {
            bind: self.bind,
            port: self.port,
            interval: self.interval,
            static_dir: self.static_dir,
            hub: HubConfig {
                history: HistoryConfig {
                    size: self.history_size as usize,
                    ttl: self.history_ttl,
                },
                presence: self.presence,
                max_data_size: self.max_data_size as usize,
                ..HubConfig::default()
            },
            session: SessionConfig {
                max_subscriptions: self.max_subscriptions as usize,
                max_requests_per_second: self.max_requests_per_second,
                poll_lapse: self.poll_lapse,
                ..SessionConfig::default()
            },
            api_key: self.api_key.filter(|key| !key.is_empty()),
            admin_password: self.admin_password.filter(|password| !password.is_empty()),
            pusher: self.pusher_app,
            mercure: (self.mercure
                || !self.mercure_issuer.is_empty()
                || self.mercure_audience.is_some()
                || self.mercure_anonymous
                || self.mercure_cookie.is_some()
                || self.mercure_compat.is_some()
                || self.mercure_subscriptions
                || self.mercure_namespace.is_some()
                || self.mercure_heartbeat.is_some())
            .then(|| {
                let defaults = MercureConfig::default();
                MercureConfig {
                    issuers: self.mercure_issuer,
                    audience: self.mercure_audience,
                    anonymous: self.mercure_anonymous,
                    cookie: self.mercure_cookie.unwrap_or(defaults.cookie),
                    compat: self.mercure_compat,
                    subscriptions: self.mercure_subscriptions,
                    namespace: self.mercure_namespace.unwrap_or(defaults.namespace),
                    heartbeat: self.mercure_heartbeat.unwrap_or(defaults.heartbeat),
                }
            }),
            metrics: match (
                self.metrics.as_str(),
                self.metrics_key.filter(|k| !k.is_empty()),
            ) {
                ("off", _) => None,
                ("public", _) => Some(MetricsAccess::Public),
                (_, Some(key)) => Some(MetricsAccess::Key(key)),
                (_, None) => Some(MetricsAccess::LikePublish),
            },
            broker: (self.broker != "memory").then_some(RedisConfig {
                url: self.broker,
                command_timeout: self.broker_timeout,
                presence_ttl: self.presence_ttl,
                max_pending: self.broker_max_pending as usize,
            }),
            origins: origins(&self.allowed_origin),
            connection_limits: ConnectionLimits {
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                new_connections_per_ip: self.max_new_connections_per_ip,
            },
            http_limits: HttpLimits {
                header_timeout: self.handshake_timeout,
                max_header_size: self.max_header_size as usize,
                ..HttpLimits::default()
            },
            http2_idle_timeout: self.http2_idle_timeout,
            tls,
            auth: AuthConfig {
                secret: self.token_secret.filter(|secret| !secret.is_empty()),
                public_keys: self.token_public_key,
                jwks: self.token_jwks,
                audience: self.token_audience,
                issuer: self.token_issuer,
                leeway: self.token_leeway,
                public_topics: self.public_topic,
                auth_timeout: AUTH_TIMEOUT,
            },
            log_format: self.log_format,
            log_filter: self.log.filter(|filter| !filter.is_empty()),
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// Parses a `--pusher-app` (see [`PusherApp::parse`]).
fn parse_pusher_app(text: &str) -> Result<PusherApp, String> {
    PusherApp::parse(text).map_err(|err| err.to_string())
}

/// Parses a `--mercure-issuer` (see [`Issuer::parse`]).
fn parse_mercure_issuer(text: &str) -> Result<Issuer, String> {
    Issuer::parse(text).map_err(|err| err.to_string())
}

/// Parses a `--mercure-compat` key (see [`KeySpec::parse`]).
fn parse_mercure_key(text: &str) -> Result<KeySpec, String> {
    KeySpec::parse(text).map_err(|err| err.to_string())
}

/// The value parser of a flag whose value may hold a secret: a refusal names the
/// flag and says why, but never shows the value (clap's own message would).
#[derive(Clone)]
struct Secret<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Secret<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(|arg| arg.get_long())
            .map_or_else(String::new, |long| format!(" for '--{long}'"));
        let refuse = |reason: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value{name}: {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse(String::from("not UTF-8")))?;
        (self.0)(text).map_err(refuse)
    }
}

/// The origin policy of `--allowed-origin` values (already checked by their parser).
fn origins(allowed: &[String]) -> Origins {
    allowed
        .iter()
        .fold(Origins::same_host(), |origins, origin| {
            origins.clone().allow(origin).unwrap_or(origins)
        })
}

/// Binds, says where to look, and serves until SIGINT or SIGTERM.
pub(crate) async fn run(config: ServeConfig) -> Result<(), Error> {
    let server = node::app(&config)?.bind(config.addr()).await?;
    let addr = browsable(server.local_addr());
    let (http, ws) = if config.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    // One write, and no panic if nobody reads standard output any more (a closed
    // pipe must not take the server down).
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        format!(
            "pushwire: counter demo at {http}://{addr}/ (Ctrl-C stops)\n\
             pushwire: chat demo at {http}://{addr}/chat, topics at {ws}://{addr}/ws\n\
             pushwire: broker {}\n",
            config.broker.as_ref().map_or_else(
                || String::from("memory (this process only)"),
                |b| without_password(&b.url)
            )
        )
        .as_bytes(),
    );
    for app in &config.pusher {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!(
                "pushwire: Pusher app {} at {ws}://{addr}/app/{} (HTTP API {http}://{addr}/apps/{})\n",
                app.id, app.key, app.id
            )
            .as_bytes(),
        );
    }
    if let Some(mercure) = &config.mercure {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!(
                "pushwire: Mercure hub at {http}://{addr}/.well-known/mercure (topics {}:IRI)\n",
                mercure.namespace
            )
            .as_bytes(),
        );
    }
    if config.admin_password.is_some() {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!("pushwire: admin page at {http}://{addr}/admin\n").as_bytes(),
        );
    }
    server.run().await
}

/// A Redis URL fit to print: anything before `@` (a password) is left out.
fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_owned(),
    }
}

/// The address to put in a URL: an unspecified address (0.0.0.0, ::) is reached on
/// the loopback address of its family.
fn browsable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}
