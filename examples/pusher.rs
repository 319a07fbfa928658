//! Pusher Channels on pushwire: pusher-js connects to `/app/app-key`, the `pusher`
//! server SDKs publish to `/apps/1001/events` (signed with `app-secret`), and a
//! Rust task publishes the server's uptime on the channel `clock` every second,
//! which pusher-js receives as the event `message`. The channel is the topic
//! `1001:clock`, so `/ws`, SSE and long-poll clients can subscribe to it too.
//!
//!     cargo run --example pusher             # port 8891
//!     cargo run --example pusher -- 0        # a free port

use std::time::{Duration, Instant};

use pushwire::interop::pusher::{Channel, PusherApp, PusherApps};
use pushwire::{App, Data, Hub, HubConfig, ticker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    pushwire::logging::init();
    let port = std::env::args().nth(1).unwrap_or_else(|| "8891".into());

    let mut app = PusherApp::new("1001", "app-key", "app-secret")?;
    app.client_events = true;
    let clock = app.topic(&Channel::parse("clock")?);
    let apps = PusherApps::new(vec![app])?;
    // The hub tracks presence in the app's namespace (its presence- channels) and
    // guards the topics of its private channels from clients without tokens.
    let hub = Hub::new(apps.hub_config(HubConfig::default()));

    // The backend: the uptime on channel `clock`, once a second.
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
        .pusher(apps)
        .bind(format!("127.0.0.1:{port}"))
        .await?;
    println!("pusher-js at ws://{}/app/app-key", server.local_addr());
    Ok(server.run().await?)
}
