//! Server settings and their validation.
//!
//! Every setting has a default, can be set in a TOML file (`--config FILE`), with a
//! `PUSHWIRE_*` environment variable (which wins over the file), and with a
//! command-line flag (which wins over both); see `pushwire --help`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::AuthConfig;
use crate::broker::RedisConfig;
use crate::http::{
    ConnectionLimits, HTTP2_IDLE_TIMEOUT, HttpLimits, MetricsAccess, Origins, TlsConfig,
};
use crate::hub::HubConfig;
use crate::interop::mercure::MercureConfig;
use crate::interop::pusher::PusherApp;
use crate::logging::LogFormat;
use crate::protocol::session::SessionConfig;

/// The shortest counter interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest counter interval accepted (one day).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// How `pushwire serve` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Time between two counter messages.
    pub interval: Duration,
    /// Folder to serve below `/static/` instead of the embedded assets.
    pub static_dir: Option<PathBuf>,
    /// Topics: history, presence, limits.
    pub hub: HubConfig,
    /// The rules each client of the topics follows.
    pub session: SessionConfig,
    /// The publish API's key; `None` opens it to loopback clients only.
    pub api_key: Option<String>,
    /// The admin page's password; `None`: no admin page.
    pub admin_password: Option<String>,
    /// Pusher Channels apps served on the topics (`/app/{key}`, `/apps/{id}`);
    /// none by default.
    pub pusher: Vec<PusherApp>,
    /// A Mercure hub served on the topics (`/.well-known/mercure`); `None`: no
    /// hub (the default).
    pub mercure: Option<MercureConfig>,
    /// Share topics with other nodes through this Redis; `None`: the in-process
    /// broker (one node).
    pub broker: Option<RedisConfig>,
    /// Which pages may connect (the `Origin` check).
    pub origins: Origins,
    /// Connections per node and per IP address.
    pub connection_limits: ConnectionLimits,
    /// Request heads: time to send one, largest size.
    pub http_limits: HttpLimits,
    /// How long an HTTP/2 connection may go without a request in flight.
    pub http2_idle_timeout: Duration,
    /// Serve https and wss with this certificate and key; `None`: plain http and ws.
    pub tls: Option<TlsConfig>,
    /// Tokens: keys, claims checked, public topics; no key means no tokens needed.
    pub auth: AuthConfig,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Which log lines are written (`RUST_LOG` syntax); `None`: `RUST_LOG`, else
    /// `info`.
    pub log_filter: Option<String>,
    /// Who may read `/metrics`; `None`: no `/metrics` (and nothing is counted,
    /// unless the admin page is on).
    pub metrics: Option<MetricsAccess>,
    /// How long `/readyz` answers 503 before clients are told to reconnect, at
    /// SIGTERM (see [`crate::App::drain_delay`]); none by default (`pushwire
    /// serve`: 5 s).
    pub drain_delay: Duration,
    /// How long shutdown waits for connections to close after telling them to
    /// (see [`crate::App::shutdown_timeout`]).
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8888,
            interval: Duration::from_secs(1),
            static_dir: None,
            hub: demo_hub_config(),
            session: SessionConfig::default(),
            api_key: None,
            admin_password: None,
            pusher: Vec::new(),
            mercure: None,
            broker: None,
            origins: Origins::default(),
            connection_limits: ConnectionLimits::default(),
            http_limits: HttpLimits::default(),
            http2_idle_timeout: HTTP2_IDLE_TIMEOUT,
            tls: None,
            auth: AuthConfig::default(),
            log_format: LogFormat::default(),
            log_filter: None,
            metrics: Some(MetricsAccess::LikePublish),
            // None here, as for `App`; `pushwire serve` drains 5 s by default.
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses a `--drain-delay` or `--shutdown-timeout` such as `5s` (0 to 1 h).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let wait = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 5s, or 0s)"))?;
    if wait > Duration::from_secs(3600) {
        return Err(String::from("must be at most 1h"));
    }
    Ok(wait)
}

impl ServeConfig {
    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// The hub settings of `pushwire serve`: the library's defaults, with presence on
/// for the `chat` namespace (the chat demo's).
pub fn demo_hub_config() -> HubConfig {
    HubConfig {
        presence: vec![String::from("chat")],
        ..HubConfig::default()
    }
}

/// Parses a history age such as `5m` or `30s` (1 s to 30 days).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 5m or 30s)"))?;
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(30 * 24 * 60 * 60) {
        return Err(String::from("must be between 1s and 30days"));
    }
    Ok(ttl)
}

/// Parses a `--broker` value: `memory` (the default, in-process) or a
/// `redis://host:port/db` URL.
pub fn parse_broker(text: &str) -> Result<String, String> {
    if text == "memory" {
        return Ok(String::from("memory"));
    }
    if !text.starts_with("redis://")
        && !text.starts_with("redis+unix://")
        && !text.starts_with("unix://")
    {
        return Err(String::from("write memory or redis://host:port/db"));
    }
    ::redis::Client::open(text).map_err(|err| format!("not a Redis URL: {err}"))?;
    Ok(text.to_owned())
}

/// Parses a token clock skew such as `30s` (0 to 5 min).
pub fn parse_leeway(text: &str) -> Result<Duration, String> {
    let leeway = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 30s)"))?;
    if leeway > Duration::from_secs(300) {
        return Err(String::from("must be at most 5min"));
    }
    Ok(leeway)
}

/// Parses a broker timeout such as `1s` or `500ms` (10 ms to 1 min).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 1s or 500ms)"))?;
    if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(60) {
        return Err(String::from("must be between 10ms and 1min"));
    }
    Ok(timeout)
}

/// Parses a handshake timeout such as `10s` (100 ms to 5 min).
pub fn parse_handshake_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 10s)"))?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
        return Err(String::from("must be between 100ms and 5min"));
    }
    Ok(timeout)
}

/// Parses an HTTP/2 idle timeout such as `60s` (1 s to 1 h).
pub fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 60s)"))?;
    if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(3600) {
        return Err(String::from("must be between 1s and 1h"));
    }
    Ok(timeout)
}

/// Parses a Mercure heartbeat such as `15s` (1 s to 1 h).
pub fn parse_heartbeat(text: &str) -> Result<Duration, String> {
    let heartbeat = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 15s)"))?;
    if heartbeat < Duration::from_secs(1) || heartbeat > Duration::from_secs(3600) {
        return Err(String::from("must be between 1s and 1h"));
    }
    Ok(heartbeat)
}

/// Parses a Mercure namespace: the start of a topic name without `:` (`mercure`,
/// `orders`), short enough to leave room for topic IRIs.
pub fn parse_mercure_namespace(text: &str) -> Result<String, String> {
    const MAX_LEN: usize = 32;
    if text.is_empty() || text.len() > MAX_LEN || text.contains(':') || text.contains('%') {
        return Err(format!(
            "write 1 to {MAX_LEN} characters of A-Z a-z 0-9 _ - . / (no ':')"
        ));
    }
    let config = MercureConfig {
        namespace: text.to_owned(),
        ..MercureConfig::default()
    };
    config.journal().map_err(|err| err.to_string())?;
    crate::topic::Topic::new(&config.prefix()).map_err(|err| err.to_string())?;
    Ok(text.to_owned())
}

/// Parses a Mercure hub's resource identifier (`--mercure-audience`): an
/// `http://` or `https://` URL.
pub fn parse_mercure_audience(text: &str) -> Result<String, String> {
    if !(text.starts_with("https://") || text.starts_with("http://"))
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(String::from(
            "write the hub's URL, such as https://example.com/.well-known/mercure",
        ));
    }
    Ok(text.to_owned())
}

/// Parses a cookie name (`--mercure-cookie`): a token of RFC 6265 (letters,
/// digits and ``!#$%&'*+-.^_`|~``).
pub fn parse_mercure_cookie(text: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(token) {
        return Err(String::from(
            "a cookie name is letters, digits and !#$%&'*+-.^_`|~",
        ));
    }
    Ok(text.to_owned())
}

/// Parses an `--allowed-origin`: `scheme://host[:port]` or `*`.
pub fn parse_origin(text: &str) -> Result<String, String> {
    Origins::same_host()
        .allow(text)
        .map(|_| text.to_owned())
        .map_err(|err| err.to_string())
}

/// Parses a counter interval such as `1s`, `200ms` or `1m 30s`, within
/// [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write a duration such as 1s or 200ms)"))?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "must be at least {}",
            humantime::format_duration(MIN_INTERVAL)
        ));
    }
    if interval > MAX_INTERVAL {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(MAX_INTERVAL)
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_in_human_units() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_interval("1m 30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn brokers_are_memory_or_redis_urls() {
        assert_eq!(parse_broker("memory"), Ok(String::from("memory")));
        assert!(parse_broker("redis://127.0.0.1:6379/0").is_ok());
        assert!(parse_broker("http://x").is_err());
        assert!(parse_broker("redis://[::1").is_err());
    }

    #[test]
    fn mercure_settings_are_checked() {
        assert_eq!(parse_heartbeat("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_heartbeat("10ms").is_err());
        assert_eq!(parse_mercure_namespace("news"), Ok(String::from("news")));
        for bad in ["", "a:b", "a b", "50%", &"n".repeat(33)] {
            assert!(parse_mercure_namespace(bad).is_err(), "{bad:?}");
        }
        assert!(parse_mercure_audience("https://example.com/.well-known/mercure").is_ok());
        assert!(parse_mercure_audience("example.com").is_err());
        assert!(parse_mercure_cookie("__Host-token").is_ok());
        assert!(parse_mercure_cookie("a=b").is_err());
        assert!(parse_mercure_cookie("").is_err());
    }

    #[test]
    fn zero_tiny_huge_and_unitless_intervals_are_refused() {
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("10us").is_err());
        assert!(parse_interval("2days").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
