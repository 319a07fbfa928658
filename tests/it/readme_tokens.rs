//! The README's "Tokens, over TLS" example, run as written: its shell lines go to
//! bash with only the port (a free one instead of 8888) and the binary's path
//! changed, and what they print must be what the README says they print.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The lines between `<!-- readme-example:NAME -->` and its end marker, without the
/// fence, with `\`-continued lines joined.
fn readme_block(name: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split(&format!("<!-- readme-example:{name} -->"))
        .nth(1)
        .and_then(|rest| {
            rest.split(&format!("<!-- /readme-example:{name} -->"))
                .next()
        })
        .unwrap_or_else(|| panic!("the README's {name} example"));
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in block.lines().filter(|l| !l.trim().starts_with("```")) {
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                if !pending.trim().is_empty() {
                    lines.push(pending.trim().to_owned());
                }
                pending.clear();
            }
        }
    }
    lines
}

#[test]
fn the_readme_tokens_over_tls_example_works_as_written() {
    let lines = readme_block("tokens");
    assert_eq!(lines[0], "cargo build --release", "{lines:?}");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let binary = env!("CARGO_BIN_EXE_pushwire");
    let mut script =
        String::from("set -u\ntrap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT\n");
    for line in &lines[1..] {
        assert!(
            !line.contains("8888")
                || line.contains("127.0.0.1:8888")
                || line.contains("--port 8888"),
            "{line}"
        );
        let line = line
            .replace("target/release/pushwire", binary)
            .replace("127.0.0.1:8888", &format!("127.0.0.1:{port}"))
            .replace("--port 8888", &format!("--port {port}"));
        script.push_str(&line);
        script.push('\n');
    }
    // Time for the SSE event to be printed before the trap ends the stream.
    script.push_str("sleep 1\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env_remove("PUSHWIRE_TOKEN_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash");
    let pid = child.id();
    let started = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if started.elapsed() > Duration::from_secs(60) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{pid}")])
                    .status();
                panic!("the README example ran for over a minute");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("counter demo at https://127.0.0.1:{port}/")),
        "{context}"
    );
    // The SSE stream (with the token) shows the message as an event.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("data: ") && l.contains(r#""data":"hello, alice""#)),
        "{context}"
    );
    // The publish answered its position.
    assert!(
        stdout.contains(r#"{"topic":"news","epoch":"#) && stdout.contains(r#""offset":1"#),
        "{context}"
    );
    // Without a token: 401.
    assert!(
        stdout.contains(r#"{"error":{"code":401,"message":"a token is required"}}"#),
        "{context}"
    );
}
