//! `examples/topics.rs` runs: its clock reaches a subscriber, and so does a message
//! published through the HTTP API.

use crate::common;

use common::topics::{next_json, sub};
use serde_json::Value;

#[tokio::test]
async fn the_topics_example_publishes_its_clock_and_accepts_http_publishes() {
    let (_example, line) = common::start_example("topics").await;
    let url = line
        .trim()
        .strip_prefix("topics at ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let mut client = common::connect(&url).await;
    let hello = next_json(&mut client).await;
    assert!(hello["hello"]["client"].is_string());
    sub(&mut client, "clock", None).await;
    let tick = next_json(&mut client).await;
    assert_eq!(tick["topic"], "clock");
    assert!(
        tick["data"].as_str().is_some_and(|d| d.starts_with("up ")),
        "{tick}"
    );

    let http = url
        .replacen("ws://", "http://", 1)
        .replace("/ws", "/api/publish/clock");
    let response = reqwest::Client::new()
        .post(&http)
        .body("hello")
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);
    // The clock may tick in between; the published text arrives within two messages.
    let mut seen = Vec::<Value>::new();
    for _ in 0..3 {
        let push = next_json(&mut client).await;
        if push["data"] == "hello" {
            return;
        }
        seen.push(push);
    }
    panic!("the published message did not arrive: {seen:?}");
}

#[test]
fn the_readme_shows_the_examples_whole() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for example in [
        "examples/counter.rs",
        "examples/topics.rs",
        "examples/pusher.rs",
        "examples/mercure.rs",
    ] {
        let code = std::fs::read_to_string(root.join(example)).expect("example source");
        assert!(
            readme.contains(&format!("```rust\n{code}```")),
            "README.md does not show {example} whole and unchanged"
        );
    }
}
