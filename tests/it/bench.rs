//! `pushwire bench` against real servers, with small numbers: every scenario runs,
//! reports JSON, and its counts add up.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::binary::pushwire_async;
use pushwire::{App, Hub, HubConfig, Message, Socket};
use serde_json::Value;

/// Runs `pushwire bench ARGS --json` and returns its report.
async fn bench(args: &[&str]) -> Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        pushwire_async()
            .arg("bench")
            .args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("bench did not finish within 60 s")
    .expect("run pushwire bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pushwire bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Runs `pushwire bench counter` with `connections` (and `extra` flags) against the
/// demo at a 100 ms period for 1.5 s, checks every counter arrived in order, and
/// returns the report.
async fn counter_report(connections: u64, extra: &[&str]) -> Value {
    let server = common::start_demo(Duration::from_millis(100)).await;
    let url = server.ws_url("/socket");
    let count = connections.to_string();
    let mut args = vec![
        "counter",
        "--url",
        &url,
        "--connections",
        &count,
        "--duration",
        "1500ms",
        "--period",
        "100ms",
    ];
    args.extend_from_slice(extra);
    let report = bench(&args).await;
    let row = &report["results"][0];
    assert_eq!(report["scenario"], "counter");
    assert_eq!(row["gaps"], 0, "{report}");
    assert_eq!(row["dropped"], 0, "{report}");
    let messages = row["messages"].as_u64().unwrap_or(0);
    // About 15 periods for each connection; at least what every one was owed.
    assert!(
        messages >= row["owed_at_least"].as_u64().unwrap_or(u64::MAX),
        "{report}"
    );
    assert!(messages <= connections * 17, "{report}");
    assert!(row["jitter_ms"]["p99"].is_number(), "{report}");
    server.stop().await;
    report
}

#[tokio::test]
async fn counter_counts_every_connection_without_gaps() {
    let report = counter_report(20, &[]).await;
    assert_eq!(report["params"]["workers"], 1, "{report}");
}

/// Runs `pushwire bench fanout` with `subscribers` (and `extra` flags) on `/ws` at
/// 100 and then 200 msg/s for 1 s each, checks that every subscriber got every
/// message published, in order, at both rates, and returns the report.
async fn fanout_report(subscribers: u64, extra: &[&str]) -> Value {
    let server = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let url = server.ws_url("/ws");
    let count = subscribers.to_string();
    let mut args = vec![
        "fanout",
        "--url",
        &url,
        "--subscribers",
        &count,
        "--rates",
        "100,200",
        "--duration",
        "1s",
    ];
    args.extend_from_slice(extra);
    let report = bench(&args).await;
    let steps = report["results"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{report}");
    for (step, rate) in steps.iter().zip([100, 200]) {
        // The publisher aims at `rate` for a second; on a loaded machine it may fall a
        // message or two short. Every message it did publish must reach everyone.
        let published = step["published"].as_u64().expect("published");
        assert!((1..=rate).contains(&published), "{report}");
        assert_eq!(step["expected"], published * subscribers, "{report}");
        assert_eq!(step["delivered"], step["expected"], "{report}");
        assert_eq!(step["gaps"], 0, "{report}");
        assert!(step["latency_ms"]["p50"].is_number(), "{report}");
        assert!(step["latency_ms"]["p99"].is_number(), "{report}");
    }
    server.stop().await;
    report
}

#[tokio::test]
async fn fanout_delivers_every_message_to_every_subscriber_over_ws() {
    let report = fanout_report(50, &[]).await;
    for step in report["results"].as_array().expect("steps") {
        assert_eq!(step["kept_up"], true, "{report}");
    }
}

#[tokio::test]
async fn fanout_with_deflate_inflates_every_compressed_push_in_order() {
    let server = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let url = server.ws_url("/ws");
    let report = bench(&[
        "fanout",
        "--url",
        &url,
        "--deflate",
        "--subscribers",
        "50",
        "--rates",
        "100",
        "--size",
        "200",
        "--duration",
        "1s",
    ])
    .await;
    let step = &report["results"][0];
    // Every push is compressed once and reaches 50 subscribers as the same bytes;
    // the generator inflates each once per thread, and still sees every sequence
    // number in order on every connection.
    assert_eq!(report["params"]["deflate_negotiated"], 50, "{report}");
    assert_eq!(step["expected"], 100 * 50, "{report}");
    assert_eq!(step["delivered"], step["expected"], "{report}");
    assert_eq!(step["gaps"], 0, "{report}");
    server.stop().await;
}

#[tokio::test]
async fn fanout_spreads_subscribers_over_every_url_and_publishes_where_told() {
    // Two servers on one hub: what a publish on one reaches every subscriber of
    // both, as with the nodes of a cluster.
    let hub = Hub::new(HubConfig::default());
    let a = common::start(App::new().topics(hub.clone())).await;
    let b = common::start(App::new().topics(hub.clone())).await;
    let c = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let (url_a, url_b) = (a.ws_url("/ws"), b.ws_url("/ws"));
    let report = bench(&[
        "fanout",
        "--url",
        &url_a,
        "--url",
        &url_b,
        "--publish-url",
        &url_b,
        "--subscribers",
        "30",
        "--rates",
        "100",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(report["params"]["servers"], 2, "{report}");
    assert_eq!(report["params"]["publish_url"], url_b.as_str(), "{report}");
    let step = &report["results"][0];
    assert_eq!(step["expected"], 100 * 30, "{report}");
    assert_eq!(step["delivered"], step["expected"], "{report}");
    assert_eq!(step["gaps"], 0, "{report}");
    // A publisher on a server that shares nothing with the subscribers' reaches
    // none of them: the run falls behind (and says so) instead of passing.
    let url_c = c.ws_url("/ws");
    let output = pushwire_async()
        .args(["bench", "fanout", "--url", &url_a, "--url", &url_b])
        .args([
            "--publish-url",
            &url_c,
            "--subscribers",
            "10",
            "--rates",
            "50",
        ])
        .args(["--duration", "500ms", "--grace", "200ms", "--json"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run pushwire bench");
    let lonely: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(lonely["results"][0]["delivered"], 0, "{lonely}");
    assert_eq!(lonely["results"][0]["kept_up"], false, "{lonely}");
    for server in [a, b, c] {
        server.stop().await;
    }
}

/// The peers' `/broadcast`: every text message goes to every connected client.
fn broadcast_app() -> App {
    let (tx, _) = tokio::sync::broadcast::channel::<String>(65536);
    App::new().socket("/broadcast", move |mut socket: Socket| {
        let tx = tx.clone();
        let mut rx = tx.subscribe();
        async move {
            loop {
                tokio::select! {
                    message = socket.recv() => match message {
                        Some(Message::Text(text)) => { let _ = tx.send(text.to_string()); }
                        Some(_) => {}
                        None => return,
                    },
                    received = rx.recv() => match received {
                        Ok(text) => if socket.send(text).await.is_err() { return },
                        Err(_) => return,
                    },
                }
            }
        }
    })
}

#[tokio::test]
async fn fanout_raw_measures_a_broadcast_endpoint() {
    let server = common::start(broadcast_app()).await;
    let url = server.ws_url("/broadcast");
    let report = bench(&[
        "fanout",
        "--url",
        &url,
        "--raw",
        "--subscribers",
        "20",
        "--rates",
        "50",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(report["scenario"], "fanout-raw");
    let step = &report["results"][0];
    assert_eq!(step["delivered"], step["expected"], "{report}");
    assert_eq!(step["expected"], 50 * 20);
    server.stop().await;
}

#[tokio::test]
async fn echo_counts_round_trips() {
    let server = common::start(App::new().socket("/", |mut socket: Socket| async move {
        while let Some(message) = socket.recv().await {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }))
    .await;
    let url = server.ws_url("/");
    let report = bench(&[
        "echo",
        "--url",
        &url,
        "--connections",
        "4",
        "--duration",
        "1s",
    ])
    .await;
    let row = &report["results"][0];
    assert!(row["round_trips"].as_u64().unwrap_or(0) > 10, "{report}");
    assert_eq!(row["failed"], 0);
    assert_eq!(row["wrong_size"], 0);
    server.stop().await;
}

#[tokio::test]
async fn idle_holds_connections_and_reads_the_servers_memory() {
    let server = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let url = server.ws_url("/ws");
    let pid = std::process::id().to_string();
    let report = bench(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "50",
        "--hold",
        "100ms",
        "--pid",
        &pid,
        "--deflate",
    ])
    .await;
    let row = &report["results"][0];
    assert_eq!(row["connections"], 50);
    assert_eq!(row["deflate_negotiated"], 50, "{report}");
    assert!(row["rss_after_kib"].as_u64().unwrap_or(0) > 0, "{report}");
    server.stop().await;
}

#[tokio::test]
async fn counter_with_workers_adds_up_every_workers_share() {
    let report = counter_report(30, &["--workers", "3"]).await;
    assert_eq!(report["params"]["workers"], 3, "{report}");
}

#[tokio::test]
async fn fanout_with_workers_delivers_every_message_to_every_subscriber() {
    let report = fanout_report(40, &["--workers", "2"]).await;
    assert_eq!(report["params"]["workers"], 2, "{report}");
}

#[tokio::test]
async fn idle_with_workers_holds_every_share() {
    let server = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let url = server.ws_url("/ws");
    let report = bench(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "51",
        "--workers",
        "2",
        "--hold",
        "100ms",
        "--deflate",
    ])
    .await;
    let row = &report["results"][0];
    assert_eq!(report["params"]["workers"], 2, "{report}");
    assert_eq!(row["connections"], 51, "{report}");
    assert_eq!(row["deflate_negotiated"], 51, "{report}");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_url_is_one_line_and_exit_status_1() {
    let output = pushwire_async()
        .args(["bench", "counter", "--url", "http://nope"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ws://"), "{stderr}");
}

/// `http://…` for `ws://…`: the same server, for the event-stream scenarios.
fn http(ws_url: &str) -> String {
    ws_url.replacen("ws://", "http://", 1)
}

/// Checks that every step of a fan-out report kept up: every update published
/// reached every subscriber, in order, and the server accepted every publish.
fn check_every_step(report: &Value, subscribers: u64) {
    let steps = report["results"].as_array().expect("steps");
    assert!(!steps.is_empty(), "{report}");
    for step in steps {
        let published = step["published"].as_u64().expect("published");
        assert!(published >= 1, "{report}");
        assert_eq!(step["expected"], published * subscribers, "{report}");
        assert_eq!(step["delivered"], step["expected"], "{report}");
        assert_eq!(step["gaps"], 0, "{report}");
        assert_eq!(step["dropped"], 0, "{report}");
        assert_eq!(step["api_accepted"], step["api_requests"], "{report}");
        assert_eq!(step["api_refused"], 0, "{report}");
        assert!(step["latency_ms"]["p99"].is_number(), "{report}");
    }
}

/// Mercure: anonymous subscribers of `GET /.well-known/mercure?match=…`, each
/// update a form POSTed with a token the generator minted for the hub's issuer
/// (checked by the hub); then subscribers that show the token too.
#[tokio::test]
async fn fanout_over_mercure_delivers_every_update_to_every_subscriber() {
    use common::mercure::{ISSUER, SECRET, config, start_hub};
    for anonymous in [true, false] {
        let (server, _hub) = start_hub(config(anonymous), HubConfig::default()).await;
        let url = http(&server.ws_url(""));
        let mut args = vec![
            "fanout",
            "--url",
            &url,
            "--protocol",
            "mercure",
            "--jwt-secret",
            SECRET,
            "--jwt-issuer",
            ISSUER,
            "--subscribers",
            "30",
            "--rates",
            "50,100",
            "--duration",
            "1s",
        ];
        if anonymous {
            args.push("--anonymous");
        }
        let report = bench(&args).await;
        assert_eq!(report["scenario"], "fanout-mercure", "{report}");
        assert_eq!(report["params"]["anonymous"], anonymous, "{report}");
        assert_eq!(
            report["params"]["topic"], "https://example.com/bench",
            "{report}"
        );
        check_every_step(&report, 30);
        server.stop().await;
    }
}

/// A token the hub does not trust fails the run, with the hub's answer.
#[tokio::test]
async fn fanout_over_mercure_fails_on_a_refused_publish() {
    use common::mercure::{ISSUER, config, start_hub};
    let (server, _hub) = start_hub(config(true), HubConfig::default()).await;
    let url = http(&server.ws_url(""));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        pushwire_async()
            .args(["bench", "fanout", "--url", &url, "--protocol", "mercure"])
            .args(["--anonymous", "--jwt-secret", "not-the-secret"])
            .args(["--jwt-issuer", ISSUER, "--subscribers", "5"])
            .args(["--rates", "10", "--duration", "500ms", "--json"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("bench did not finish within 60 s")
    .expect("run pushwire bench");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("answered 401"), "{stderr}");
    server.stop().await;
}

/// pushwire's own `/sse` and publish API, the comparison the Mercure figures need;
/// alone, then with the subscribers in two worker processes.
#[tokio::test]
async fn fanout_over_sse_delivers_every_message_to_every_subscriber() {
    let server = common::start(App::new().topics(Hub::new(HubConfig::default()))).await;
    let url = http(&server.ws_url(""));
    for workers in ["1", "2"] {
        let report = bench(&[
            "fanout",
            "--url",
            &url,
            "--protocol",
            "sse",
            "--subscribers",
            "31",
            "--workers",
            workers,
            "--rates",
            "50,100",
            "--duration",
            "1s",
        ])
        .await;
        assert_eq!(report["scenario"], "fanout-sse", "{report}");
        assert_eq!(report["params"]["workers"].to_string(), workers, "{report}");
        assert_eq!(
            report["params"]["publish_path"], "/api/publish/bench",
            "{report}"
        );
        check_every_step(&report, 31);
    }
    server.stop().await;
}

/// `idle` holds event streams when its URL is `http://`: Mercure subscribers here.
#[tokio::test]
async fn idle_holds_mercure_subscribers_and_reads_the_servers_memory() {
    use common::mercure::{config, start_hub};
    let (server, _hub) = start_hub(config(true), HubConfig::default()).await;
    let url = http(&server.ws_url("/.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fbench"));
    let pid = std::process::id().to_string();
    let report = bench(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "40",
        "--hold",
        "100ms",
        "--pid",
        &pid,
    ])
    .await;
    let row = &report["results"][0];
    assert_eq!(report["params"]["transport"], "sse", "{report}");
    assert_eq!(row["connections"], 40, "{report}");
    assert!(row["rss_after_kib"].as_u64().unwrap_or(0) > 0, "{report}");
    server.stop().await;
}
