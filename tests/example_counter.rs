//! `examples/counter.rs`, the README's program, runs and counts.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{STEP, connect, next_text, raw_get};

/// `cargo test` builds the examples next to the test binaries' folder.
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
async fn the_counter_example_serves_the_page_and_counts() {
    let mut child = Command::new(example_binary("counter"))
        .arg("0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the counter example");
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
    let addr: std::net::SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let (code, page) = raw_get(addr, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains(r#"<h1 id="data">"#));
    assert_eq!(raw_get(addr, "/static/counter.js").await.0, 200);

    let mut client = connect(&format!("ws://{addr}/socket")).await;
    assert_eq!(next_text(&mut client).await, "1");
    assert_eq!(next_text(&mut client).await, "2");
}
