//! `pushwire serve`: the counter demo server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::auth::{AUTH_TIMEOUT, AuthConfig};
use crate::broker::RedisConfig;
use crate::config::{
    ServeConfig, parse_broker, parse_interval, parse_leeway, parse_timeout, parse_ttl,
};
use crate::hub::{HistoryConfig, HubConfig};
use crate::{Error, demo};

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

    /// Require tokens (JWT) on topics, HS256-signed with this shared secret. With no
    /// token key at all, topics are open to everyone.
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    token_secret: Option<String>,

    /// Require tokens signed by this key: a PEM RSA (RS256) or EC P-256 (ES256)
    /// public key; repeat for several.
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
}

impl ServeArgs {
    /// The settings file these flags were read with, if any.
    pub(crate) fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    pub(crate) fn into_config(self) -> ServeConfig {
        ServeConfig {
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
            api_key: self.api_key.filter(|key| !key.is_empty()),
            broker: (self.broker != "memory").then_some(RedisConfig {
                url: self.broker,
                command_timeout: self.broker_timeout,
                presence_ttl: self.presence_ttl,
                max_pending: self.broker_max_pending as usize,
            }),
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
        }
    }
}

/// Binds, says where to look, and serves until SIGINT or SIGTERM.
pub(crate) async fn run(config: ServeConfig) -> Result<(), Error> {
    let server = demo::app(&config)?.bind(config.addr()).await?;
    let addr = browsable(server.local_addr());
    // One write, and no panic if nobody reads standard output any more (a closed
    // pipe must not take the server down).
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        format!(
            "pushwire: counter demo at http://{addr}/ (Ctrl-C stops)\n\
             pushwire: chat demo at http://{addr}/chat, topics at ws://{addr}/ws\n\
             pushwire: broker {}\n",
            config.broker.as_ref().map_or_else(
                || String::from("memory (this process only)"),
                |b| without_password(&b.url)
            )
        )
        .as_bytes(),
    );
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
