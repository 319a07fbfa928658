//! Topics from a Rust backend: a task publishes the server's uptime on topic
//! `clock` every second, and any client subscribes to it over `/ws`, `/sse` or
//! `/poll` (browsers with `/pushwire.js`). Anyone on this machine may publish too,
//! with `curl -d 'hello' http://127.0.0.1:8890/api/publish/clock`.
//!
//!     cargo run --example topics             # port 8890
//!     cargo run --example topics -- 0        # a free port

use std::time::{Duration, Instant};

use pushwire::{App, Data, Hub, HubConfig, Topic, ticker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    pushwire::logging::init();
    let port = std::env::args().nth(1).unwrap_or_else(|| "8890".into());
    let hub = Hub::new(HubConfig::default());

    // The backend: one message a second, "up 3 s".
    let clock = Topic::new("clock")?;
    let publisher = hub.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticks = ticker(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            let data = Data::text(&format!("up {} s", started.elapsed().as_secs()));
            if let Err(err) = publisher.publish(&clock, data).await {
                tracing::warn!("cannot publish: {err}");
            }
        }
    });

    let server = App::new()
        .topics(hub)
        .bind(format!("127.0.0.1:{port}"))
        .await?;
    println!("topics at ws://{}/ws", server.local_addr());
    Ok(server.run().await?)
}
