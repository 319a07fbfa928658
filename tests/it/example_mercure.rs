//! `examples/mercure.rs` runs: its hub serves at `/.well-known/mercure`, its
//! subscriber receives the update its backend published, with the id the hub
//! answered, and a request without a token is refused as Mercure 1.0 says.

use crate::common;

use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::test]
async fn the_mercure_example_publishes_and_receives_an_update() {
    let mut example = tokio::process::Command::new(common::example_path("mercure"))
        .arg("0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the mercure example");
    let mut lines = BufReader::new(example.stdout.take().expect("stdout")).lines();
    let mut next = async || {
        tokio::time::timeout(common::STEP, lines.next_line())
            .await
            .expect("the example printed nothing in time")
            .expect("read stdout")
            .expect("the example ended")
    };

    let first = next().await;
    let url = first
        .strip_prefix("Mercure hub at ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let published = next().await;
    let id = published
        .strip_prefix("published ")
        .unwrap_or_else(|| panic!("unexpected line {published:?}"));
    assert!(id.starts_with("urn:uuid:"), "{published}");
    assert_eq!(next().await, "received");
    let mut event = Vec::new();
    loop {
        let line = next().await;
        if line.is_empty() {
            break;
        }
        event.push(line);
    }
    assert!(event.contains(&format!("id: {id}")), "{event:?}");
    assert!(
        event.contains(&String::from(r#"data: {"title":"Dune","stock":3}"#)),
        "{event:?}"
    );

    // The hub goes on serving; without a token, a subscriber is refused.
    let refused = reqwest::get(format!("{url}?match=https%3A%2F%2Fexample.com%2Fbooks%2F1"))
        .await
        .expect("GET the hub");
    assert_eq!(refused.status(), 401);
    let challenge = refused
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    drop(example);
}
