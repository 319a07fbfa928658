//! `pushwire serve`: the counter demo server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{ServeConfig, parse_interval};
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

    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "PUSHWIRE_PORT", default_value_t = 8888)]
    port: u16,

    /// Time between two counter messages on /socket, such as 1s or 200ms.
    #[arg(long, env = "PUSHWIRE_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = parse_interval)]
    interval: Duration,

    /// Serve this folder below /static/ instead of the assets built into the binary.
    #[arg(long, env = "PUSHWIRE_STATIC_DIR", value_name = "DIR")]
    static_dir: Option<PathBuf>,
}

impl ServeArgs {
    pub(crate) fn into_config(self) -> ServeConfig {
        ServeConfig {
            bind: self.bind,
            port: self.port,
            interval: self.interval,
            static_dir: self.static_dir,
        }
    }
}

/// Binds, says where to look, and serves until SIGINT or SIGTERM.
pub(crate) async fn run(config: ServeConfig) -> Result<(), Error> {
    let server = demo::app(&config).bind(config.addr()).await?;
    println!(
        "pushwire: counter demo at http://{}/ (Ctrl-C stops)",
        browsable(server.local_addr())
    );
    server.run().await
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
