//! `pushwire pub` and `pushwire sub` as a script meets them: the built binary against
//! a server running in the test, what it prints, and its exit status.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::binary::{Output, finish, pushwire_async};
use common::topics::start_topics;
use common::{Running, STEP};
use pushwire::App;
use pushwire::hub::{Hub, HubConfig};
use pushwire::topic::{Data, Topic};
use pushwire::topic_client::Client;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Child;

/// Runs `pushwire ARGS` to completion with `stdin` as its input.
async fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut child = pushwire_async()
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    finish(child).await
}

async fn run(args: &[&str]) -> Output {
    finish(pushwire_async().args(args).spawn().expect("spawn pushwire")).await
}

/// Success: status 0 and nothing on standard error.
fn assert_success(output: &Output) {
    assert_eq!(output.code, Some(0), "{output:?}");
    assert_eq!(output.stderr, "", "{output:?}");
}

/// A failure is exactly one line on standard error, no panic, the given status.
fn assert_failure(output: &Output, code: i32, mentions: &str) {
    assert_eq!(output.code, Some(code), "{output:?}");
    assert_eq!(output.stderr.lines().count(), 1, "not one line: {output:?}");
    assert!(
        output.stderr.contains(mentions),
        "{:?} does not mention {mentions:?}",
        output.stderr
    );
    assert!(!output.stderr.contains("panicked") && !output.stderr.contains("backtrace"));
}

/// A server with topics, and its hub (to see when a `sub` has subscribed).
async fn server() -> (Running, Hub) {
    start_topics(HubConfig::default()).await
}

fn url(server: &Running) -> String {
    server.ws_url("/ws")
}

/// Starts `pushwire sub ARGS` and waits (bounded) until `topics` each have one more
/// subscriber than before.
async fn start_sub(hub: &Hub, args: &[&str], topics: &[&str]) -> Child {
    let topics: Vec<Topic> = topics
        .iter()
        .map(|t| Topic::new(t).expect("topic"))
        .collect();
    let before: Vec<usize> = topics.iter().map(|t| hub.subscriber_count(t)).collect();
    let mut child = pushwire_async()
        .arg("sub")
        .args(args)
        .spawn()
        .expect("spawn pushwire sub");
    let deadline = Instant::now() + STEP;
    while topics
        .iter()
        .zip(&before)
        .any(|(t, n)| hub.subscriber_count(t) <= *n)
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("pushwire sub exited early with {status}");
        }
        assert!(Instant::now() < deadline, "pushwire sub did not subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child
}

/// Publishes with the library client.
async fn publish(server: &Running, topic: &str, values: &[&str]) {
    let mut client = tokio::time::timeout(STEP, Client::connect(&url(server)))
        .await
        .expect("connect in time")
        .expect("connect");
    for value in values {
        let data = Data::json(value.as_bytes().to_vec()).expect("JSON");
        tokio::time::timeout(STEP, client.publish(topic, data))
            .await
            .expect("publish in time")
            .expect("publish");
    }
    tokio::time::timeout(STEP, client.close())
        .await
        .expect("close in time");
}

/// `topic@EPOCH:offset` → (topic, epoch, offset).
fn parse_position(line: &str) -> (String, String, u64) {
    let (topic, rest) = line.rsplit_once('@').expect("topic@epoch:offset");
    let (epoch, offset) = rest.split_once(':').expect("epoch:offset");
    (topic.into(), epoch.into(), offset.parse().expect("offset"))
}

#[tokio::test]
async fn pub_prints_each_position_and_sub_since_recovers_the_rest_in_order() {
    let (server, _hub) = server().await;
    let url = url(&server);
    let mut positions = Vec::new();
    for text in ["first", "second", "third"] {
        let output = run(&["pub", "news", text, "--url", &url]).await;
        assert_success(&output);
        assert_eq!(output.lines().len(), 1, "{output:?}");
        positions.push(parse_position(output.lines()[0]));
    }
    let epoch = positions[0].1.clone();
    assert_eq!(
        positions,
        [1, 2, 3].map(|n| ("news".to_owned(), epoch.clone(), n))
    );

    let since = format!("news@{epoch}:1");
    let output = run(&[
        "sub", "news", "--since", &since, "--count", "2", "--url", &url,
    ])
    .await;
    assert_success(&output);
    assert_eq!(output.lines(), ["\"second\"", "\"third\""]);
    server.stop().await;
}

#[tokio::test]
async fn with_json_pub_publishes_a_value_and_sub_prints_whole_messages() {
    let (server, _hub) = server().await;
    let url = url(&server);
    let output = run(&[
        "pub",
        "news",
        r#"{"title": "hi", "n": [1, 2]}"#,
        "--json",
        "--url",
        &url,
    ])
    .await;
    assert_success(&output);
    let reply: serde_json::Value = serde_json::from_str(output.stdout.trim()).expect("JSON reply");
    assert_eq!(reply["topic"], "news");
    assert_eq!(reply["offset"], 1);
    let epoch = reply["epoch"].as_str().expect("epoch").to_owned();
    assert_success(&run(&["pub", "news", "-7", "--json", "--url", &url]).await);

    let since = format!("news@{epoch}:0");
    let output = run(&[
        "sub", "news", "--since", &since, "--count", "2", "--json", "--url", &url,
    ])
    .await;
    assert_success(&output);
    assert_eq!(
        output.lines(),
        [
            format!(
                r#"{{"topic":"news","epoch":"{epoch}","offset":1,"data":{{"title": "hi", "n": [1, 2]}}}}"#
            ),
            format!(r#"{{"topic":"news","epoch":"{epoch}","offset":2,"data":-7}}"#),
        ]
    );
    // Without --json, the data alone.
    let output = run(&[
        "sub", "news", "--since", &since, "--count", "2", "--url", &url,
    ])
    .await;
    assert_eq!(output.lines(), [r#"{"title": "hi", "n": [1, 2]}"#, "-7"]);
    server.stop().await;
}

#[tokio::test]
async fn pub_with_json_refuses_invalid_data_before_connecting() {
    // Nothing listens there: the data is refused first.
    for bad in ["{", "hello", "1 2", ""] {
        let output = run(&["pub", "news", bad, "--json", "--url", "ws://127.0.0.1:9/ws"]).await;
        assert_failure(&output, 2, "DATA");
        assert_eq!(output.stdout, "");
    }
}

#[tokio::test]
async fn pub_dash_publishes_one_message_per_line_of_standard_input() {
    let (server, _hub) = server().await;
    let url = url(&server);
    let output = run_with_input(
        &["pub", "lines", "-", "--url", &url],
        "one\ntwo words\n\nlast\r\n",
    )
    .await;
    assert_success(&output);
    let offsets: Vec<u64> = output.lines().iter().map(|l| parse_position(l).2).collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
    let epoch = parse_position(output.lines()[0]).1;

    // With --json every line is a value; blank lines are skipped.
    let output = run_with_input(
        &["pub", "lines", "-", "--json", "--url", &url],
        "{\"a\":1}\n\n  \n[true]\n",
    )
    .await;
    assert_success(&output);
    assert_eq!(output.lines().len(), 2, "{output:?}");

    let since = format!("lines@{epoch}:0");
    let output = run(&[
        "sub", "lines", "--since", &since, "--count", "6", "--url", &url,
    ])
    .await;
    assert_success(&output);
    assert_eq!(
        output.lines(),
        [
            "\"one\"",
            "\"two words\"",
            "\"\"",
            "\"last\"",
            "{\"a\":1}",
            "[true]"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn pub_dash_with_json_stops_at_the_first_line_that_is_not_json() {
    let (server, _hub) = server().await;
    let url = url(&server);
    let output = run_with_input(
        &["pub", "lines", "-", "--json", "--url", &url],
        "1\n2\noops\n4\n",
    )
    .await;
    assert_failure(&output, 1, "line 3");
    assert_eq!(
        output.lines().len(),
        2,
        "the lines before stay published: {output:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn sub_count_exits_after_that_many_live_messages_from_any_topic() {
    let (server, hub) = server().await;
    let url = url(&server);
    let child = start_sub(
        &hub,
        &["news", "sports", "--count", "3", "--url", &url],
        &["news", "sports"],
    )
    .await;
    publish(&server, "news", &["1"]).await;
    publish(&server, "sports", &["2"]).await;
    publish(&server, "news", &["3", "4"]).await;
    let output = finish(child).await;
    assert_success(&output);
    assert_eq!(output.lines(), ["1", "2", "3"]);
    server.stop().await;
}

#[tokio::test]
async fn sub_reports_an_unrecovered_gap_on_stderr_and_continues_live() {
    let (server, hub) = server().await;
    let url = url(&server);
    publish(&server, "news", &["\"old\""]).await;
    let child = start_sub(
        &hub,
        &[
            "news",
            "--since",
            "news@NotTheEpoch:0",
            "--count",
            "1",
            "--url",
            &url,
        ],
        &["news"],
    )
    .await;
    publish(&server, "news", &["\"new\""]).await;
    let output = finish(child).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert_eq!(output.lines(), ["\"new\""]);
    let report: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(report.len(), 1, "{output:?}");
    assert!(
        report[0].contains("news") && report[0].contains("recovered: false"),
        "{report:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn sub_without_reconnecting_exits_0_when_the_server_shuts_down() {
    let (server, hub) = server().await;
    let url = url(&server);
    let args = ["news", "--url", &url, "--reconnect-for", "0s"];
    let child = start_sub(&hub, &args, &["news"]).await;
    tokio::time::timeout(STEP, server.stop())
        .await
        .expect("the server stops in time");
    let output = finish(child).await;
    assert_success(&output);
    assert_eq!(output.stdout, "");
}

/// A server that shuts down says it restarts (1012): `sub` tries to come back, and
/// fails with status 1 once `--reconnect-for` has passed without a server.
#[tokio::test]
async fn sub_fails_with_status_1_when_a_restarting_server_does_not_come_back() {
    let (server, hub) = server().await;
    let url = url(&server);
    let args = ["news", "--url", &url, "--reconnect-for", "1s"];
    let child = start_sub(&hub, &args, &["news"]).await;
    tokio::time::timeout(STEP, server.stop())
        .await
        .expect("the server stops in time");
    let output = finish(child).await;
    assert_eq!(output.code, Some(1), "{output:?}");
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{output:?}");
    assert_eq!(
        lines[0],
        "pushwire: the server restarts (1012); reconnecting"
    );
    assert!(
        lines[1].contains("could not reconnect within 1s after the server restarted"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_bad_topic_fails_with_status_1_and_the_servers_422() {
    let (server, _hub) = server().await;
    let url = url(&server);
    assert_failure(&run(&["pub", "a b", "x", "--url", &url]).await, 1, "422");
    assert_failure(&run(&["sub", "news", "a@b", "--url", &url]).await, 1, "422");
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_fails_with_status_1() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/ws", free.local_addr().expect("addr"));
    drop(free);
    assert_failure(
        &run(&["pub", "news", "x", "--url", &url]).await,
        1,
        "cannot connect",
    );
    assert_failure(
        &run(&["sub", "news", "--url", &url]).await,
        1,
        "cannot connect",
    );
}

#[tokio::test]
async fn an_unusable_cacert_file_fails_in_one_line_with_status_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate in here\n").expect("write");
    // Nothing listens there: the file is read before connecting.
    let url = "wss://127.0.0.1:9/ws";
    for (file, mentions) in [
        (&missing, "cannot read TLS certificate file"),
        (&empty, "no certificate"),
    ] {
        let file = file.to_str().expect("a UTF-8 path");
        for args in [
            &["pub", "news", "x", "--url", url, "--cacert", file][..],
            &["sub", "news", "--url", url, "--cacert", file][..],
        ] {
            let output = run(args).await;
            assert_failure(&output, 1, mentions);
            assert!(
                output.stderr.contains("--cacert") && output.stderr.contains(file),
                "{output:?}"
            );
        }
    }
    // From the environment as well.
    let output = finish(
        pushwire_async()
            .args(["sub", "news", "--url", url])
            .env("PUSHWIRE_CACERT", &missing)
            .spawn()
            .expect("spawn"),
    )
    .await;
    assert_failure(&output, 1, "missing.pem");
}

#[tokio::test]
async fn bad_arguments_fail_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["pub", "news"], "required"),
        (&["pub", "news", "x", "--url", "ftp://host/ws"], "--url"),
        (&["pub", "news", "x", "--url", "https://"], "--url"),
        (&["sub", "news", "--url", "gopher://host"], "--url"),
        (&["sub"], "required"),
        (&["sub", "news", "--count", "0"], "--count"),
        (&["sub", "news", "--count", "many"], "--count"),
        (&["sub", "news", "--since", "news"], "--since"),
        (&["sub", "news", "--since", "news@E:x"], "--since"),
        (&["sub", "news", "--since", "other@E:1"], "other"),
        (&["sub", "news", "news"], "twice"),
        (&["sub", "news", "--no-such-flag"], "--no-such-flag"),
    ];
    for (args, mentions) in cases {
        let output = run(args).await;
        assert_failure(&output, 2, mentions);
    }
}

#[tokio::test]
async fn the_url_comes_from_pushwire_url_and_may_name_the_server_over_http() {
    let (server, _hub) = server().await;
    let output = finish(
        pushwire_async()
            .args(["pub", "news", "x"])
            .env("PUSHWIRE_URL", server.url(""))
            .spawn()
            .expect("spawn"),
    )
    .await;
    assert_success(&output);
    assert_eq!(parse_position(output.stdout.trim()).2, 1);
    // --url wins over the environment.
    let output = finish(
        pushwire_async()
            .args(["pub", "news", "y", "--url", &url(&server)])
            .env("PUSHWIRE_URL", "ws://127.0.0.1:9/ws")
            .spawn()
            .expect("spawn"),
    )
    .await;
    assert_success(&output);
    server.stop().await;
}

#[tokio::test]
async fn help_reads_as_a_manual() {
    let pub_help = run(&["pub", "--help"]).await;
    assert_success(&pub_help);
    for expected in [
        "TOPIC",
        "DATA",
        "--json",
        "standard input",
        "--url",
        "PUSHWIRE_URL",
        "ws://127.0.0.1:8888/ws",
        "--cacert",
        "PUSHWIRE_CACERT",
        "https://127.0.0.1:8888 --cacert cert.pem",
        "Examples:",
        "Exit status",
    ] {
        assert!(
            pub_help.stdout.contains(expected),
            "pub --help lacks {expected}:\n{}",
            pub_help.stdout
        );
    }
    let sub_help = run(&["sub", "--help"]).await;
    assert_success(&sub_help);
    for expected in [
        "TOPIC",
        "--since",
        "topic@epoch:offset",
        "--count",
        "--json",
        "recovered: false",
        "PUSHWIRE_URL",
        "--cacert",
        "wss://127.0.0.1:8888/ws --cacert cert.pem",
        "Examples:",
        "Exit status",
    ] {
        assert!(
            sub_help.stdout.contains(expected),
            "sub --help lacks {expected}:\n{}",
            sub_help.stdout
        );
    }
    let help = run(&["--help"]).await;
    assert!(
        help.stdout.contains("pub") && help.stdout.contains("sub"),
        "{}",
        help.stdout
    );
}

#[tokio::test]
async fn sub_fails_when_the_server_drops_it() {
    let server = common::start(App::new().socket("/ws", common::topics::evictor)).await;
    let output = run(&["sub", "news", "--url", &url(&server)]).await;
    assert_failure(&output, 1, "1008");
    server.stop().await;
}
