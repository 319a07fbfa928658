//! Autobahn|Testsuite's fuzzing server checks WebSocket clients; this program is
//! pushwire-ws's client role under that check (`scripts/autobahn --mode client`).
//!
//! It asks the fuzzing server how many cases there are, runs each one by echoing
//! every message it receives, then asks the server to write its reports.
//!
//!     wstest -m fuzzingserver -s spec.json -u 0 &
//!     cargo run --release -p pushwire-ws --example autobahn_client -- --url ws://127.0.0.1:9001 --agent pushwire

use clap::Parser;
use pushwire_ws::client::{ClientConfig, connect_with};
use tracing_subscriber::EnvFilter;

/// Runs every Autobahn fuzzing-server case against pushwire-ws's client.
#[derive(Parser)]
struct Args {
    /// The fuzzing server's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// The name the reports file this client under.
    #[arg(long, default_value = "pushwire")]
    agent: String,
    /// Turn permessage-deflate off.
    #[arg(long)]
    no_deflate: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs to standard error, at `info` unless `RUST_LOG` says otherwise.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = ClientConfig::default();
    // The suite sends messages of up to 16 MiB.
    config.ws.max_message_size = 64 << 20;
    config.ws.deflate.enabled = !args.no_deflate;
    let base = args.url.trim_end_matches('/');

    let mut counter = connect_with(&format!("{base}/getCaseCount"), &config).await?;
    let count: u32 = match counter.recv().await {
        Some(message) => message.as_text().unwrap_or("").trim().parse()?,
        None => return Err("the fuzzing server sent no case count".into()),
    };
    drop(counter);
    println!("running {count} cases as agent {:?}", args.agent);

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={}", args.agent);
        let mut socket = match connect_with(&url, &config).await {
            Ok(socket) => socket,
            Err(err) => {
                eprintln!("case {case}: {err}");
                continue;
            }
        };
        while let Some(message) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
        socket.closed().await;
    }

    let reports = connect_with(
        &format!("{base}/updateReports?agent={}", args.agent),
        &config,
    )
    .await?;
    reports.closed().await;
    println!("reports updated");
    Ok(())
}
