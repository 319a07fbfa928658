//! `examples/topics.rs` runs: its clock reaches a subscriber, and so does a message
//! published through the HTTP API.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::STEP;
use common::topics::{next_json, sub};
use serde_json::Value;

fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --example {name}`",
        path.display()
    );
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_topics_example_publishes_its_clock_and_accepts_http_publishes() {
    let mut child = Command::new(example_binary("topics"))
        .arg("0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the topics example");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = Killed(child);
    let line = tokio::time::timeout(
        STEP,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("the example printed no URL")
    .expect("reader")
    .expect("read stdout");
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
fn the_readme_shows_both_examples_whole() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for example in ["examples/counter.rs", "examples/topics.rs"] {
        let code = std::fs::read_to_string(root.join(example)).expect("example source");
        assert!(
            readme.contains(&format!("```rust\n{code}```")),
            "README.md does not show {example} whole and unchanged"
        );
    }
}
