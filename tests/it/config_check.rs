//! `pushwire config check FILE` and `pushwire --version`, over the built binary.

use crate::common;

use std::process::{Command, Stdio};

use common::binary::pushwire;
use common::tls::make_cert_for;

/// Runs to completion and returns (exit code, stdout, stderr).
fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let output = command.stdin(Stdio::null()).output().expect("run pushwire");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A settings file with `text`, in `dir`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// The line of the listing that sets `key` (or says it is not set).
fn line_of<'a>(listing: &'a str, key: &str) -> &'a str {
    listing
        .lines()
        .find(|line| {
            line.starts_with(&format!("{key} = ")) || line.starts_with(&format!("# {key} is "))
        })
        .unwrap_or_else(|| panic!("no line for {key} in:\n{listing}"))
}

/// A failure: exit status 2, nothing on stdout, one line on stderr that says `all`.
fn assert_fails_saying(result: (Option<i32>, String, String), all: &[&str]) {
    let (code, stdout, stderr) = result;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stdout, "", "printed settings although it failed");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    for part in all {
        assert!(stderr.contains(part), "{stderr:?} does not say {part:?}");
    }
}

#[test]
fn config_check_says_where_each_setting_came_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(
        &dir,
        "pushwire.toml",
        "# settings\nbind = \"0.0.0.0\"\n\nport = 8001\nhistory_ttl = \"10m\"\npresence = [\"chat\", \"room\"]\napi-key = \"s3cret\"\nmax-connections = 100\n",
    );
    let (code, listing, stderr) = run(pushwire()
        .args(["config", "check", &path, "--max-connections", "5"])
        .env("PUSHWIRE_BROKER", "redis://127.0.0.1:6379/0"));
    assert_eq!(code, Some(0), "{stderr}");
    let says = |key: &str, setting: &str, origin: &str| {
        let line = line_of(&listing, key);
        assert!(line.starts_with(setting), "{line:?} is not {setting:?}");
        assert!(
            line.ends_with(&format!("# {origin}")),
            "{line:?} does not come from {origin:?}"
        );
    };
    says("bind", "bind = \"0.0.0.0\"", &format!("{path}:2"));
    says("port", "port = 8001", &format!("{path}:4"));
    says("history-ttl", "history-ttl = \"10m\"", &format!("{path}:5"));
    says(
        "presence",
        "presence = [\"chat\", \"room\"]",
        &format!("{path}:6"),
    );
    says("api-key", "# api-key is set (hidden)", &format!("{path}:7"));
    assert!(!listing.contains("s3cret"), "a secret was printed");
    says(
        "broker",
        "broker = \"redis://127.0.0.1:6379/0\"",
        "PUSHWIRE_BROKER",
    );
    says(
        "max-connections",
        "max-connections = 5",
        "--max-connections",
    );
    says("interval", "interval = \"1s\"", "default");
    says("tls-cert", "# tls-cert is not set", "default");
}

#[test]
fn config_check_lists_every_flag_of_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(&dir, "pushwire.toml", "port = 8001\n");
    let (code, listing, stderr) = run(pushwire().args(["config", "check", &path]));
    assert_eq!(code, Some(0), "{stderr}");
    let (_, help, _) = run(pushwire().args(["serve", "--help"]));
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| flag.trim_end_matches([',', '.', ')', ':']))
        .filter(|flag| !flag.is_empty() && !["help", "version", "config"].contains(flag))
        .collect();
    assert!(
        flags.len() > 20,
        "too few flags found in serve --help: {flags:?}"
    );
    for flag in flags {
        line_of(&listing, flag);
    }
}

#[test]
fn what_config_check_prints_is_a_settings_file_with_the_same_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = file(
        &dir,
        "first.toml",
        "port = 8001\npresence = [\"a\", \"b\"]\nallowed-origin = \"https://app.example.com\"\n",
    );
    let (code, listing, stderr) = run(pushwire().args(["config", "check", &first]));
    assert_eq!(code, Some(0), "{stderr}");
    let second = file(&dir, "second.toml", &listing);
    let (code, again, stderr) = run(pushwire().args(["config", "check", &second]));
    assert_eq!(code, Some(0), "{stderr}");
    let settings = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                line.split(" # ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(settings(&listing), settings(&again));
    assert!(again.contains("allowed-origin = [\"https://app.example.com\"]"));
}

#[test]
fn config_check_fails_on_an_unknown_key_naming_it_and_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(
        &dir,
        "pushwire.toml",
        "port = 8001\n\n# typo\nprot = 8002\n",
    );
    assert_fails_saying(
        run(pushwire().args(["config", "check", &path])),
        &[&format!("{path}:4: prot: unknown setting")],
    );
}

#[test]
fn config_check_fails_on_a_bad_value_naming_the_key_and_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (text, line, key, says) in [
        ("port = 8001\nport-x = 1\n", 2, "port-x", "unknown setting"),
        ("bind = \"0.0.0.0\"\nport = 70000\n", 2, "port", "70000"),
        ("history-ttl = \"5 parsecs\"\n", 1, "history-ttl", "parsecs"),
        ("\n\nbroker = \"http://x\"\n", 3, "broker", "http://x"),
        ("max_subscriptions = 0\n", 1, "max_subscriptions", "0"),
        ("interval = true\n", 1, "interval", "true"),
        (
            "port = 1\n[tls-cert]\nfile = 1\n",
            2,
            "tls-cert",
            "must be a string",
        ),
    ] {
        let path = file(&dir, "pushwire.toml", text);
        assert_fails_saying(
            run(pushwire().args(["config", "check", &path])),
            &[&format!("{path}:{line}: {key}"), says],
        );
        // The server reads the file the same way, and fails the same way.
        let (code, _, stderr) = run(pushwire().args(["serve", "--port", "0", "--config", &path]));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{path}:{line}: {key}")),
            "{stderr}"
        );
    }
}

#[test]
fn config_check_fails_on_a_file_that_is_not_toml_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(&dir, "pushwire.toml", "port = 8001\nbroker = \"redis://x\n");
    assert_fails_saying(
        run(pushwire().args(["config", "check", &path])),
        &[&format!("{path}:2: not valid TOML")],
    );
    assert_fails_saying(
        run(pushwire().args(["config", "check", "/no/such/pushwire.toml"])),
        &["cannot read config file /no/such/pushwire.toml"],
    );
}

#[test]
fn config_check_fails_on_tls_files_the_server_could_not_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = make_cert_for(&["127.0.0.1"]);
    let cert = file(&dir, "cert.pem", &made.cert_pem);
    let key = file(&dir, "key.pem", &made.key_pem);
    let good = file(
        &dir,
        "good.toml",
        &format!("tls-cert = {cert:?}\ntls-key = {key:?}\n"),
    );
    let (code, listing, stderr) = run(pushwire().args(["config", "check", &good]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(line_of(&listing, "tls-key").ends_with(&format!("# {good}:2")));
    // The key in place of the certificate: no certificate in it.
    let bad = file(
        &dir,
        "bad.toml",
        &format!("port = 1\ntls-cert = {key:?}\ntls-key = {key:?}\n"),
    );
    assert_fails_saying(
        run(pushwire().args(["config", "check", &bad])),
        &[&format!("tls-cert ({bad}:2)"), "no certificate"],
    );
    let half = file(&dir, "half.toml", &format!("tls-cert = {cert:?}\n"));
    assert_fails_saying(
        run(pushwire().args(["config", "check", &half])),
        &["--tls-cert needs --tls-key"],
    );
}

#[test]
fn version_shows_the_version_and_the_git_commit() {
    let (code, stdout, stderr) = run(pushwire().arg("--version"));
    assert_eq!(code, Some(0), "{stderr}");
    // What git says of this checkout, when it is one (else the build says unknown).
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let commit = git.unwrap_or_else(|| String::from("unknown"));
    assert_eq!(
        stdout.trim(),
        format!("pushwire {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_hides_every_secret_that_is_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(
        &dir,
        "pushwire.toml",
        "api-key = \"key-s3cret\"\nmetrics-key = \"metrics-s3cret\"\nadmin-password = \"admin-s3cret\"\n",
    );
    let (code, listing, stderr) = run(pushwire().args(["config", "check", &path]).env(
        "PUSHWIRE_TOKEN_SECRET",
        "token-s3cret-token-s3cret-token-s3cret",
    ));
    assert_eq!(code, Some(0), "{stderr}");
    for key in ["api-key", "metrics-key", "admin-password", "token-secret"] {
        let line = line_of(&listing, key);
        assert!(
            line.starts_with(&format!("# {key} is set (hidden)")),
            "{line:?} shows {key}"
        );
    }
    assert!(
        !listing.contains("s3cret"),
        "a secret was printed:\n{listing}"
    );
}

#[test]
fn pusher_apps_come_from_tables_and_a_bad_one_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = file(
        &dir,
        "apps.toml",
        "port = 8001\n\n[[pusher.apps]]\nid = \"app-1\"\nkey = \"k1\"\nsecret = \"s?&1\"\nclient_events = true\nwebhooks = [{ url = \"http://127.0.0.1:9/hooks\", events = [\"channel_occupied\"] }]\n\n[[pusher.apps]]\nid = \"app-2\"\nkey = \"k2\"\nsecret = \"s2\"\n",
    );
    let (code, listing, stderr) = run(pushwire().args(["config", "check", &good]));
    assert_eq!(code, Some(0), "{stderr}");
    let line = line_of(&listing, "pusher-app");
    assert!(line.contains("is set (hidden)"), "{line}");
    assert!(line.ends_with(&format!("{good}:3")), "{line}");
    assert!(
        !listing.contains("s?&1"),
        "a secret was printed:\n{listing}"
    );

    for (text, says) in [
        (
            "[[pusher.apps]]\nid = \"a\"\nkey = \"k\"\n",
            vec!["bad.toml:1", "pusher.apps", "an app needs secret"],
        ),
        (
            "port = 1\n[[pusher.apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\ncolour = \"red\"\n",
            vec!["bad.toml:2", "colour: unknown Pusher app setting"],
        ),
        (
            "[[pusher.apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\nwebhooks = [{ url = \"ftp://x\" }]\n",
            vec!["bad.toml:1", "webhook", "http:// or https://"],
        ),
        (
            "[[pusher.apps]]\nid = \"a b\"\nkey = \"k\"\nsecret = \"s\"\n",
            vec!["bad.toml:1", "id"],
        ),
        (
            "[pusher]\nservers = 1\n",
            vec!["bad.toml", "pusher.servers: unknown setting"],
        ),
    ] {
        let bad = file(&dir, "bad.toml", text);
        assert_fails_saying(run(pushwire().args(["config", "check", &bad])), &says);
    }
}

#[test]
fn the_mercure_table_sets_the_mercure_flags_and_never_shows_a_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = file(
        &dir,
        "mercure.toml",
        "port = 8001\n\n[mercure]\nanonymous = true\naudience = \"https://example.com/.well-known/mercure\"\nheartbeat = \"20s\"\ncompat = \"hs256:0x-compat-s3cret\"\n\n[[mercure.issuers]]\niss = \"https://auth.example.com\"\nkey = \"hs256:issuer-s3cret\"\n\n[[mercure.issuers]]\niss = \"backend\"\nkey = \"hs256:backend-s3cret\"\n",
    );
    let (code, listing, stderr) = run(pushwire()
        .args(["config", "check", &good])
        .env("PUSHWIRE_MERCURE_NAMESPACE", "news"));
    assert_eq!(code, Some(0), "{stderr}");
    let says = |key: &str, setting: &str, origin: &str| {
        let line = line_of(&listing, key);
        assert!(line.starts_with(setting), "{line:?} is not {setting:?}");
        assert!(
            line.ends_with(&format!("# {origin}")),
            "{line:?} not from {origin:?}"
        );
    };
    says(
        "mercure-anonymous",
        "mercure-anonymous = true",
        &format!("{good}:4"),
    );
    says(
        "mercure-audience",
        "mercure-audience = \"https://example.com/.well-known/mercure\"",
        &format!("{good}:5"),
    );
    says(
        "mercure-heartbeat",
        "mercure-heartbeat = \"20s\"",
        &format!("{good}:6"),
    );
    says(
        "mercure-compat",
        "# mercure-compat is set (hidden)",
        &format!("{good}:7"),
    );
    says(
        "mercure-issuer",
        "# mercure-issuer is set (hidden)",
        &format!("{good}:9"),
    );
    says(
        "mercure-namespace",
        "mercure-namespace = \"news\"",
        "PUSHWIRE_MERCURE_NAMESPACE",
    );
    says("mercure-cookie", "# mercure-cookie is not set", "default");
    assert!(
        !listing.contains("s3cret"),
        "a secret was printed:\n{listing}"
    );

    for (text, says) in [
        (
            "[[mercure.issuers]]\niss = \"a\"\n",
            vec!["bad.toml:1", "mercure.issuers", "an issuer needs key"],
        ),
        (
            "port = 1\n[[mercure.issuers]]\niss = \"a\"\nkey = \"hs512:top-s3cret\"\n",
            vec!["bad.toml:2", "mercure.issuers", "hs512:…", "is not a key"],
        ),
        (
            "[[mercure.issuers]]\niss = \"a\"\nkey = \"hs256:s3cret\"\nkid = \"k\"\n",
            vec!["bad.toml:1", "kid: unknown issuer setting"],
        ),
        (
            "[mercure]\ncompat = \"s3cret\"\n",
            vec!["bad.toml:2", "mercure.compat", "is not a key"],
        ),
        (
            "[mercure]\n\nheartbeat = \"1ms\"\n",
            vec!["bad.toml:3", "mercure.heartbeat", "between 1s and 1h"],
        ),
        (
            "[mercure]\nnamespace = \"a:b\"\n",
            vec!["bad.toml:2", "mercure.namespace"],
        ),
        (
            "[mercure]\ncolour = \"red\"\n",
            vec!["bad.toml:2", "mercure.colour: unknown setting"],
        ),
        (
            "[mercure]\nissuers = \"a=hs256:s3cret\"\n",
            vec!["bad.toml:2", "[[mercure.issuers]] table"],
        ),
    ] {
        let bad = file(&dir, "bad.toml", text);
        let result = run(pushwire().args(["config", "check", &bad]));
        assert!(
            !result.2.contains("s3cret"),
            "a secret was printed: {}",
            result.2
        );
        assert_fails_saying(result, &says);
    }
}

#[test]
fn a_mercure_key_file_that_cannot_be_read_fails_config_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = file(
        &dir,
        "keys.toml",
        "[mercure]\nanonymous = true\n\n[[mercure.issuers]]\niss = \"login\"\nkey = \"pem:/no/such/key.pem\"\n",
    );
    assert_fails_saying(
        run(pushwire().args(["config", "check", &bad])),
        &["mercure-issuer", &format!("{bad}:4"), "/no/such/key.pem"],
    );
}
