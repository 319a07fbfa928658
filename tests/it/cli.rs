//! The `pushwire` binary as a user meets it: flags, env vars, errors as one line,
//! the URL it prints, logs, and a graceful stop on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{Process, pushwire, spawn_with_first_line};
use common::tls::make_cert_for;
use common::{STEP, connect, next_text};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Runs to completion (bounded) and returns (exit code, stdout, stderr).
fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let deadline = Instant::now() + STEP;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pushwire did not exit within {STEP:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A failure is exactly one line on stderr, no panic, no backtrace, non-zero exit.
fn assert_one_line_failure(result: (Option<i32>, String, String), mentions: &str) {
    let (code, _, stderr) = result;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(
        stderr.contains(mentions),
        "{stderr:?} does not mention {mentions:?}"
    );
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
fn help_documents_every_flag_with_its_env_var_and_default() {
    let (code, stdout, _) = run(pushwire().arg("--help"));
    assert_eq!(code, Some(0));
    for expected in [
        "--bind",
        "PUSHWIRE_BIND",
        "127.0.0.1",
        "--port",
        "PUSHWIRE_PORT",
        "8888",
        "--interval",
        "PUSHWIRE_INTERVAL",
        "1s",
        "--static-dir",
        "PUSHWIRE_STATIC_DIR",
        "--tls-cert",
        "PUSHWIRE_TLS_CERT",
        "--tls-key",
        "PUSHWIRE_TLS_KEY",
        "--http2-idle-timeout",
        "PUSHWIRE_HTTP2_IDLE_TIMEOUT",
    ] {
        assert!(
            stdout.contains(expected),
            "--help lacks {expected}:\n{stdout}"
        );
    }
}

#[test]
fn bad_values_fail_in_one_line() {
    assert_one_line_failure(run(pushwire().args(["--interval", "soon"])), "--interval");
    assert_one_line_failure(run(pushwire().args(["--interval", "0s"])), "--interval");
    assert_one_line_failure(
        run(pushwire().args(["--http2-idle-timeout", "0s"])),
        "--http2-idle-timeout",
    );
    assert_one_line_failure(run(pushwire().args(["--port", "99999"])), "--port");
    assert_one_line_failure(run(pushwire().args(["--bind", "nowhere"])), "--bind");
    assert_one_line_failure(run(pushwire().env("PUSHWIRE_INTERVAL", "fast")), "fast");
    assert_one_line_failure(run(pushwire().arg("--no-such-flag")), "--no-such-flag");
}

#[test]
fn a_port_in_use_fails_in_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    assert_one_line_failure(run(pushwire().args(["--port", &port])), "cannot listen on");
}

#[test]
fn a_missing_or_unreadable_static_dir_fails_in_one_line() {
    assert_one_line_failure(
        run(pushwire().args(["--port", "0", "--static-dir", "/no/such/folder"])),
        "cannot serve static folder /no/such/folder",
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let path = file.path().display().to_string();
    assert_one_line_failure(
        run(pushwire().args(["--port", "0", "--static-dir", &path])),
        "cannot serve static folder",
    );
}

/// Starts `pushwire` (the counter demo, 100 ms ticks) on a free port with piped
/// output, and returns it, the URL it printed first, and its stderr.
async fn start_counter_demo() -> (Process, String, std::process::ChildStderr) {
    let mut child = pushwire()
        .env("PUSHWIRE_PORT", "0")
        .args(["--interval", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let server = Process(child);
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(STEP, first_line)
        .await
        .expect("no URL printed")
        .expect("reader")
        .expect("read stdout");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (server, url, stderr)
}

#[tokio::test]
async fn serves_prints_its_url_logs_and_stops_on_sigterm_with_1001() {
    let (mut server, url, stderr) = start_counter_demo().await;
    let ws_url = format!("{}/socket", url.replacen("http://", "ws://", 1));
    let mut client = connect(&ws_url).await;
    assert_eq!(next_text(&mut client).await, "1");
    assert_eq!(next_text(&mut client).await, "2");

    let pid = server.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let close = common::next_close(&mut client).await.expect("a close code");
    assert_eq!(close.code, CloseCode::Away);
    drop(client);

    let deadline = Instant::now() + STEP;
    let exit = loop {
        if let Some(exit) = server.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {STEP:?} of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    let logs =
        tokio::task::spawn_blocking(move || std::io::read_to_string(stderr).unwrap_or_default())
            .await
            .expect("reader");
    let opened = logs
        .lines()
        .find(|l| l.contains("Opened: c"))
        .expect("an Opened line");
    assert!(opened.contains("127.0.0.1:"), "{opened}");
    let closed = logs
        .lines()
        .find(|l| l.contains("Closed: c"))
        .unwrap_or_else(|| panic!("no Closed line in {logs}"));
    assert!(
        closed.contains(r#"1001 "server shutting down" after "#) && closed.contains(" messages"),
        "{closed}"
    );
}

/// A log that can no longer be written (a full disk, a log reader that went away)
/// must not cost clients anything. Found by the soak (`scripts/soak`): on a full
/// disk every new WebSocket was closed right after its handshake (the upgrade logs
/// "Opened", and a failed log write panicked the task) while SSE and long-poll,
/// which log nothing per request, went on.
#[tokio::test]
async fn websockets_keep_working_when_the_log_cannot_be_written() {
    let (mut server, url, stderr) = start_counter_demo().await;
    // Whoever read the log is gone: from now on every write to stderr fails.
    drop(stderr);
    let ws_url = format!("{}/socket", url.replacen("http://", "ws://", 1));
    for _ in 0..3 {
        let mut client = connect(&ws_url).await;
        assert_eq!(next_text(&mut client).await, "1");
        assert_eq!(next_text(&mut client).await, "2");
    }
    assert!(
        server.0.try_wait().expect("wait").is_none(),
        "the server exited"
    );
}

/// The first line the server prints (its URL), then the server is stopped.
fn first_line(command: &mut Command) -> String {
    spawn_with_first_line(command).1
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_config_file_sets_the_defaults_that_variables_and_flags_override() {
    let (from_file, from_env) = (free_port(), free_port());
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut file,
        format!(
            "# pushwire settings\nport = {from_file}\nhistory_size = 10\ninterval = \"250ms\"\npresence = [\"chat\", \"news\"]\n"
        )
        .as_bytes(),
    )
    .expect("write");
    let path = file.path().display().to_string();
    let line = first_line(pushwire().args(["--config", &path]));
    assert!(line.contains(&format!("127.0.0.1:{from_file}/")), "{line}");
    // The variable names the file just as well.
    let line = first_line(pushwire().env("PUSHWIRE_CONFIG", &path));
    assert!(line.contains(&format!("127.0.0.1:{from_file}/")), "{line}");
    // A variable wins over the file, a flag over both.
    let line = first_line(
        pushwire()
            .args(["--config", &path])
            .env("PUSHWIRE_PORT", from_env.to_string()),
    );
    assert!(line.contains(&format!("127.0.0.1:{from_env}/")), "{line}");
    let line = first_line(
        pushwire()
            .args(["serve", "--config", &path, "--port", "0"])
            .env("PUSHWIRE_PORT", from_env.to_string()),
    );
    assert!(
        !line.contains(&format!(":{from_env}/")) && !line.contains(&format!(":{from_file}/")),
        "{line}"
    );
}

#[test]
fn a_bad_config_file_fails_in_one_line_naming_the_file() {
    let write = |text: &str| {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
        file
    };
    let unknown = write("port = 0\nprot = 1\n");
    let path = unknown.path().display().to_string();
    assert_one_line_failure(
        run(pushwire().args(["--config", &path])),
        &format!("config file {path}:2: prot: unknown setting"),
    );
    let broken = write("port = [\n");
    assert_one_line_failure(
        run(pushwire().args(["--config", &broken.path().display().to_string()])),
        "not valid TOML",
    );
    let table = write("[port]\nx = 1\n");
    assert_one_line_failure(
        run(pushwire().args(["--config", &table.path().display().to_string()])),
        "port: must be a string, a number, a boolean or a list of those",
    );
    // Values go through the flag's own checks.
    let bad_value = write("port = 99999\n");
    assert_one_line_failure(
        run(pushwire().args(["--config", &bad_value.path().display().to_string()])),
        "--port",
    );
    assert_one_line_failure(
        run(pushwire().args(["--config", "/no/such/pushwire.toml"])),
        "cannot read config file /no/such/pushwire.toml",
    );
    // Other subcommands never read it.
    let (code, _, stderr) = run(pushwire()
        .env("PUSHWIRE_CONFIG", "/no/such/pushwire.toml")
        .args(["bench", "counter", "--url", "http://nope"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("ws://"), "{stderr}");
}

#[test]
fn unusable_tls_settings_fail_in_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = make_cert_for(&["127.0.0.1"]);
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let cert = file("cert.pem", &made.cert_pem);
    let key = file("key.pem", &made.key_pem);
    let garbage = file("garbage.pem", "this is not PEM\n");

    assert_one_line_failure(
        run(pushwire().args([
            "--port",
            "0",
            "--tls-cert",
            "/no/such/cert.pem",
            "--tls-key",
            &key,
        ])),
        "cannot read TLS certificate file /no/such/cert.pem",
    );
    assert_one_line_failure(
        run(pushwire().args([
            "--port",
            "0",
            "--tls-cert",
            &cert,
            "--tls-key",
            "/no/such/key.pem",
        ])),
        "cannot read TLS private key file /no/such/key.pem",
    );
    assert_one_line_failure(
        run(pushwire().args(["--port", "0", "--tls-key", &key])),
        "--tls-key needs --tls-cert",
    );
    assert_one_line_failure(
        run(pushwire()
            .args(["--port", "0"])
            .env("PUSHWIRE_TLS_CERT", &cert)),
        "--tls-cert needs --tls-key",
    );
    assert_one_line_failure(
        run(pushwire().args(["--port", "0", "--tls-cert", &garbage, "--tls-key", &key])),
        &format!("no certificate (-----BEGIN CERTIFICATE-----) in TLS certificate file {garbage}"),
    );
    assert_one_line_failure(
        run(pushwire().args(["--port", "0", "--tls-cert", &cert, "--tls-key", &garbage])),
        "no private key",
    );
    // The settings file takes them by the flags' names, and checks them the same way.
    let settings = file("pushwire.toml", &format!("port = 0\ntls-cert = {cert:?}\n"));
    assert_one_line_failure(
        run(pushwire().args(["--config", &settings])),
        "--tls-cert needs --tls-key",
    );
    let settings = file(
        "pushwire.toml",
        &format!("port = 0\ntls_cert = {cert:?}\ntls-key = {garbage:?}\n"),
    );
    // (After the line that says where the settings came from.)
    let (code, _, stderr) = run(pushwire().args(["--config", &settings]));
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("pushwire: error: no private key"),
        "{stderr}"
    );
}

#[test]
fn with_tls_the_server_prints_https_and_wss_urls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = make_cert_for(&["127.0.0.1"]);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert_pem).expect("write cert");
    std::fs::write(&key, made.key_pem).expect("write key");
    let line = first_line(
        pushwire()
            .args(["--port", "0"])
            .env("PUSHWIRE_TLS_CERT", &cert)
            .env("PUSHWIRE_TLS_KEY", &key),
    );
    assert!(
        line.contains("counter demo at https://127.0.0.1:"),
        "{line}"
    );
}

/// A server started with `args` (on a free port) and its `/ws` URL.
fn serve_with(args: &[&str]) -> (Process, String) {
    let (server, line) = spawn_with_first_line(pushwire().args(["--port", "0"]).args(args));
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1);
    (server, format!("{url}/ws"))
}

/// Sends one request over `client` and answers the reply (skipping other messages).
async fn ask(client: &mut common::Client, request: serde_json::Value) -> serde_json::Value {
    use futures_util::SinkExt;
    let id = request["id"].clone();
    tokio::time::timeout(
        STEP,
        client.send(tokio_tungstenite::tungstenite::Message::text(
            request.to_string(),
        )),
    )
    .await
    .expect("send timed out")
    .expect("send");
    loop {
        let text = next_text(client).await;
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if value["id"] == id {
            return value;
        }
    }
}

#[tokio::test]
async fn a_minted_token_is_accepted_by_a_server_with_the_same_secret() {
    let secret = "cli-test-secret-0123456789abcdef";
    let (code, token, stderr) = run(pushwire()
        .env("PUSHWIRE_TOKEN_SECRET", secret)
        .args(["token", "--sub", "alice", "--ttl", "10m"])
        .args(["--topic", "chat:*=sub,pub,presence", "--topic", "news=sub"])
        .args(["--aud", "pushwire", "--iss", "backend"]));
    assert_eq!(code, Some(0), "{stderr}");
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let (server, url) = serve_with(&[
        "--token-secret",
        secret,
        "--token-audience",
        "pushwire",
        "--token-issuer",
        "backend",
    ]);
    let mut client = connect(&url).await;
    next_text(&mut client).await; // hello
    let reply = ask(
        &mut client,
        serde_json::json!({"op": "auth", "id": 1, "token": token}),
    )
    .await;
    assert_eq!(reply["ok"]["user"], "alice", "{reply}");
    let reply = ask(
        &mut client,
        serde_json::json!({"op": "pub", "id": 2, "topic": "chat:x", "data": 1}),
    )
    .await;
    assert!(reply["ok"].is_object(), "{reply}");
    let reply = ask(
        &mut client,
        serde_json::json!({"op": "pub", "id": 3, "topic": "news", "data": 1}),
    )
    .await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    drop(client);
    drop(server);
}

#[tokio::test]
async fn a_token_signed_with_a_private_key_is_accepted_with_its_public_key() {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let (code, token, stderr) = run(pushwire()
        .args(["token", "--sub", "bob", "--alg", "RS256"])
        .args(["--private-key", &format!("{keys}/rsa-private.pem")])
        .args(["--subscription", "chat:room-1"]));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, connection, stderr) = run(pushwire()
        .args(["token", "--sub", "bob", "--alg", "RS256"])
        .args(["--private-key", &format!("{keys}/rsa-private.pem")]));
    assert_eq!(code, Some(0), "{stderr}");
    let (server, url) = serve_with(&["--token-public-key", &format!("{keys}/rsa-public.pem")]);
    let mut client = connect(&url).await;
    next_text(&mut client).await; // hello
    let reply = ask(
        &mut client,
        serde_json::json!({"op": "auth", "id": 1, "token": connection.trim()}),
    )
    .await;
    assert_eq!(reply["ok"]["user"], "bob", "{reply}");
    let reply = ask(
        &mut client,
        serde_json::json!({"op": "sub", "id": 2, "topic": "chat:room-1", "token": token.trim()}),
    )
    .await;
    assert_eq!(reply["ok"]["topic"], "chat:room-1", "{reply}");
    drop(client);
    drop(server);
}

#[test]
fn token_without_a_key_or_with_a_bad_grant_fails_in_one_line() {
    assert_one_line_failure(
        run(pushwire().args(["token", "--sub", "a"])),
        "give --secret",
    );
    assert_one_line_failure(
        run(pushwire().args([
            "token",
            "--secret",
            "s",
            "--sub",
            "a",
            "--topic",
            "news=read",
        ])),
        "unknown permission",
    );
    assert_one_line_failure(
        run(pushwire().args(["--token-public-key", "/no/such/key.pem", "--port", "0"])),
        "cannot read key file /no/such/key.pem",
    );
}

/// Writes `text` to `name` in `dir` and returns the path.
fn write_key(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write key file");
    path.display().to_string()
}

#[test]
fn a_token_public_key_of_the_wrong_kind_fails_the_start_in_one_line_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let cases = [
        (
            write_key(dir.path(), "p384-public.pem", &p384.public_key_pem()),
            "holds an EC public key on P-384",
        ),
        (
            format!("{keys}/rsa-private.pem"),
            "holds a private key (BEGIN RSA PRIVATE KEY)",
        ),
        (
            write_key(dir.path(), "p256-private.pem", &p256.serialize_pem()),
            "holds a private key (BEGIN PRIVATE KEY)",
        ),
    ];
    for (path, what) in cases {
        let result = run(pushwire().args(["--token-public-key", &path, "--port", "0"]));
        let stderr = result.2.clone();
        assert_one_line_failure(result, what);
        assert!(stderr.contains(&format!("key file {path}: ")), "{stderr}");
    }
    // The same P-256 key's public half is accepted: the server starts.
    let public = write_key(dir.path(), "p256-public.pem", &p256.public_key_pem());
    let (server, _url) = serve_with(&["--token-public-key", &public]);
    drop(server);
}

#[test]
fn pub_and_sub_send_their_token_first() {
    let secret = "cli-pubsub-secret-0123456789abcdef";
    let (code, token, stderr) = run(pushwire().env("PUSHWIRE_TOKEN_SECRET", secret).args([
        "token",
        "--sub",
        "ann",
        "--topic",
        "news=sub,pub",
    ]));
    assert_eq!(code, Some(0), "{stderr}");
    let token = token.trim().to_owned();
    let (_server, url) = serve_with(&["--token-secret", secret]);
    let subscriber = pushwire()
        .args(["sub", "news", "--count", "1", "--url", &url])
        .env("PUSHWIRE_TOKEN", &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire sub");
    let mut subscriber = Process(subscriber);
    // Publish until the subscriber (which may not have subscribed yet) has its message.
    let deadline = Instant::now() + STEP;
    loop {
        let (code, _, stderr) =
            run(pushwire().args(["pub", "news", "hello", "--url", &url, "--token", &token]));
        assert_eq!(code, Some(0), "{stderr}");
        if subscriber.0.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the subscriber got nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    if let Some(mut stdout) = subscriber.0.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("read");
    }
    assert_eq!(out.trim(), "\"hello\"", "sub prints the data as JSON");
    let (code, _, stderr) = run(pushwire().args(["pub", "news", "x", "--url", &url]));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("401"), "{stderr}");
    let (code, _, stderr) =
        run(pushwire().args(["pub", "news", "x", "--url", &url, "--token", "bad"]));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("the token was refused"), "{stderr}");
}

#[tokio::test]
async fn token_settings_come_from_the_settings_file_too() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut file,
        b"token_secret = \"file-secret-0123456789abcdef0123\"\npublic-topic = [\"news\"]\ntoken-leeway = \"5s\"\n",
    )
    .expect("write");
    let path = file.path().display().to_string();
    let (_server, url) = serve_with(&["--config", &path]);
    let http = url
        .replacen("ws://", "http://", 1)
        .trim_end_matches("/ws")
        .to_owned();
    let status = |path: String| async move {
        tokio::time::timeout(STEP, reqwest::get(path))
            .await
            .expect("request timed out")
            .expect("request")
            .status()
            .as_u16()
    };
    assert_eq!(
        status(format!("{http}/poll?topic=news&timeout=0")).await,
        200,
        "a public topic"
    );
    assert_eq!(
        status(format!("{http}/poll?topic=secret&timeout=0")).await,
        401
    );
    let (_, token, stderr) = run(pushwire().args([
        "token",
        "--secret",
        "file-secret-0123456789abcdef0123",
        "--sub",
        "a",
        "--topic",
        "secret=sub",
    ]));
    assert!(!token.is_empty(), "{stderr}");
    assert_eq!(
        status(format!(
            "{http}/poll?topic=secret&timeout=0&token={}",
            token.trim()
        ))
        .await,
        200
    );
}

#[tokio::test]
async fn mercure_flags_serve_a_hub_whose_topics_are_the_namespace_s() {
    let (mut server, hub, after) = mercure_server(
        &[("PUSHWIRE_MERCURE_NAMESPACE", "news")],
        &["--mercure-anonymous"],
    )
    .await;
    assert_eq!(after, "(topics news:IRI)");
    assert!(
        hub.starts_with("http://127.0.0.1:") && hub.ends_with("/.well-known/mercure"),
        "{hub}"
    );

    // An anonymous subscriber of https://example.com/a …
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{hub}?match=https%3A%2F%2Fexample.com%2Fa"))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    // … gets what the publish API publishes to the topic news:https://example.com/a.
    let base = hub.trim_end_matches("/.well-known/mercure");
    let published = client
        .post(format!("{base}/api/publish/news:https://example.com/a"))
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("publish");
    assert!(published.status().is_success(), "{}", published.status());
    let mut text = String::new();
    for _ in 0..20 {
        if text.contains("data: {\"n\":1}\n") {
            break;
        }
        let chunk = tokio::time::timeout(STEP, stream.chunk())
            .await
            .expect("no event in time")
            .expect("read the stream")
            .expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("data: {\"n\":1}\n"), "{text:?}");
    assert!(text.contains("id: urn:pushwire:"), "{text:?}");
    drop(stream);
    // Active subscriptions are off unless asked for.
    let listing = client
        .get(format!("{hub}/subscriptions"))
        .send()
        .await
        .expect("GET the subscriptions API");
    assert_eq!(listing.status(), 404);
    let _ = server.kill().await;

    let (mut server, hub, _) =
        mercure_server(&[("PUSHWIRE_MERCURE_SUBSCRIPTIONS", "true")], &[]).await;
    let listing = client
        .get(format!("{hub}/subscriptions"))
        .send()
        .await
        .expect("GET the subscriptions API");
    assert_eq!(listing.status(), 401, "the API wants a token");
    let _ = server.kill().await;
}

#[test]
fn a_bad_mercure_or_pusher_setting_fails_in_one_line_without_its_secret() {
    assert_one_line_failure(
        run(pushwire().args(["--mercure-issuer", "backend=hs512:top-s3cret"])),
        "--mercure-issuer",
    );
    let (_, _, stderr) = run(pushwire().args(["--mercure-issuer", "backend=hs512:top-s3cret"]));
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let (_, _, stderr) = run(pushwire().env("PUSHWIRE_MERCURE_COMPAT", "top-s3cret"));
    assert!(stderr.contains("--mercure-compat"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let (_, _, stderr) = run(pushwire().args(["--pusher-app", "1:key:top-s3cret?colour=red"]));
    assert!(stderr.contains("--pusher-app"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_one_line_failure(
        run(pushwire().args(["--mercure-namespace", "a:b"])),
        "--mercure-namespace",
    );
    assert_one_line_failure(
        run(pushwire().args(["--mercure-heartbeat", "0s"])),
        "--mercure-heartbeat",
    );
}

/// A `pushwire` started with `env` and `args`, the hub URL its banner prints, and
/// what the banner says after it.
async fn mercure_server(
    env: &[(&str, &str)],
    args: &[&str],
) -> (tokio::process::Child, String, String) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut server = common::binary::pushwire_async()
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn pushwire");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    for _ in 0..10 {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("no banner line in time")
            .expect("read stdout")
            .expect("the banner ended before the hub's line");
        if let Some(rest) = line.strip_prefix("pushwire: Mercure hub at ") {
            let (hub, after) = rest.split_once(' ').unwrap_or((rest, ""));
            return (server, hub.to_owned(), after.to_owned());
        }
    }
    panic!("the banner names no Mercure hub");
}

/// POSTs an update to `hub` with `token`: the status and the body.
async fn mercure_publish(hub: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(hub)
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%7D")
        .send()
        .await
        .expect("publish");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_symfony_command_lines_of_interop_md_accept_the_tokens_they_are_for() {
    use common::mercure::{detail, token_with, unix};
    let secret = "!ChangeThisMercureHubJWTSecretKey!";
    let public = "https://example.com/.well-known/mercure";
    let issuers = format!("symfony=hs256:{secret}");
    let compat = format!("hs256:{secret}");
    // MercureBundle's 1.0 tokens: at+jwt, iss from jwt.claims, aud its public URL.
    let v1 = token_with(
        "symfony",
        secret,
        public,
        3600,
        &[detail(&["publish"], &[("*", "exact")])],
    );
    // Its 0.x tokens: the mercure claim, no typ, iss or aud.
    let v0 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"mercure": {"publish": ["*"], "subscribe": []}, "exp": unix(3600)}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");

    let (mut server, hub, _) = mercure_server(
        &[("PUSHWIRE_MERCURE_ISSUERS", &issuers)],
        &["--mercure-audience", public],
    )
    .await;
    let (status, id) = mercure_publish(&hub, &v1).await;
    assert_eq!(status, 200, "{id}");
    assert!(id.starts_with("urn:uuid:"), "{id}");
    assert_eq!(mercure_publish(&hub, &v0).await.0, 401);
    let _ = server.kill().await;

    let (mut server, hub, _) = mercure_server(&[("PUSHWIRE_MERCURE_COMPAT", &compat)], &[]).await;
    let (status, id) = mercure_publish(&hub, &v0).await;
    assert_eq!(status, 200, "{id}");
    // No issuer is trusted there: an access token is refused.
    assert_eq!(mercure_publish(&hub, &v1).await.0, 401);
    let _ = server.kill().await;
}
