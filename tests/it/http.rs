//! The HTTP surface: the page, static files (embedded and from a folder), caching,
//! compression, traversal, and the answers for non-WebSocket requests.

use crate::common;

use std::time::Duration;

use common::{raw_get, raw_http, start, start_demo};
use pushwire::App;
use pushwire::config::ServeConfig;

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

async fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> String {
    raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn the_page_has_the_counter_heading_and_loads_its_script_from_static() {
    let server = start_demo(Duration::from_secs(1)).await;
    let response = get_with(server.addr, "/", "").await;
    assert_eq!(status(&response), 200);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(response.contains(r#"<h1 id="data">"#));
    assert!(response.contains(r#"src="static/counter.js""#));
    // No third-party script and no hard-coded host.
    assert!(!response.contains("http://") && !response.contains("https://"));
    let (code, script) = raw_get(server.addr, "/static/counter.js").await;
    assert_eq!(code, 200);
    assert!(script.contains("window.location") && script.contains("'wss:' : 'ws:'"));
    server.stop().await;
}

#[tokio::test]
async fn embedded_assets_have_types_etags_and_answer_304() {
    let server = start_demo(Duration::from_secs(1)).await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/static/counter.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
    ] {
        let response = get_with(server.addr, path, "").await;
        assert_eq!(status(&response), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        let etag = header(&response, "etag").expect("an ETag").to_owned();
        let again = get_with(server.addr, path, &format!("If-None-Match: {etag}\r\n")).await;
        assert_eq!(status(&again), 304, "{path}");
        assert!(again.ends_with("\r\n\r\n"), "a 304 has no body");
        let changed = get_with(server.addr, path, "If-None-Match: \"other\"\r\n").await;
        assert_eq!(status(&changed), 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn gzip_and_brotli_are_used_when_asked_for() {
    let server = start_demo(Duration::from_secs(1)).await;
    for encoding in ["gzip", "br"] {
        let response = get_with(
            server.addr,
            "/static/counter.js",
            &format!("Accept-Encoding: {encoding}\r\n"),
        )
        .await;
        assert_eq!(status(&response), 200);
        assert_eq!(header(&response, "content-encoding"), Some(encoding));
    }
    let plain = get_with(server.addr, "/static/counter.js", "").await;
    assert_eq!(header(&plain, "content-encoding"), None);
    server.stop().await;
}

/// A folder to serve (`www/`) next to a secret that must never be served, with
/// symlinks that point inside and outside.
struct Site {
    _tmp: tempfile::TempDir,
    www: std::path::PathBuf,
    secret_path: std::path::PathBuf,
}

const SECRET: &str = "TOP-SECRET-CONTENT";

fn site() -> Site {
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    std::fs::create_dir_all(www.join("js")).expect("mkdir");
    std::fs::write(www.join("js/app.js"), "console.log('app');\n").expect("write");
    std::fs::write(www.join("page.html"), "<p>hello</p>\n").expect("write");
    let secret_path = tmp.path().join("secret.txt");
    std::fs::write(&secret_path, SECRET).expect("write");
    std::os::unix::fs::symlink(&secret_path, www.join("leak.txt")).expect("symlink");
    std::os::unix::fs::symlink(tmp.path(), www.join("up")).expect("symlink");
    std::os::unix::fs::symlink(www.join("page.html"), www.join("alias.html")).expect("symlink");
    Site {
        _tmp: tmp,
        www,
        secret_path,
    }
}

#[tokio::test]
async fn a_static_folder_is_served_with_types_last_modified_and_304() {
    let site = site();
    let server = start(App::new().static_dir("/static", &site.www)).await;
    let response = get_with(server.addr, "/static/js/app.js", "").await;
    assert_eq!(status(&response), 200);
    assert_eq!(header(&response, "content-type"), Some("text/javascript"));
    assert!(response.ends_with("console.log('app');\n"));
    let modified = header(&response, "last-modified")
        .expect("Last-Modified")
        .to_owned();
    let again = get_with(
        server.addr,
        "/static/js/app.js",
        &format!("If-Modified-Since: {modified}\r\n"),
    )
    .await;
    assert_eq!(status(&again), 304);
    let html = get_with(server.addr, "/static/page.html", "").await;
    assert_eq!(header(&html, "content-type"), Some("text/html"));
    // A symlink that stays inside the folder is fine.
    let (code, body) = raw_get(server.addr, "/static/alias.html").await;
    assert_eq!((code, body.as_str()), (200, "<p>hello</p>\n"));
    server.stop().await;
}

#[tokio::test]
async fn traversal_in_every_form_answers_404_and_never_the_file() {
    let site = site();
    let absolute = site.secret_path.display().to_string();
    let encoded_absolute = absolute.replace('/', "%2F");
    let config = ServeConfig {
        port: 0,
        static_dir: Some(site.www.clone()),
        ..ServeConfig::default()
    };
    let server = start(pushwire::node::app(&config).expect("demo app")).await;
    let attempts = [
        "/static/../secret.txt".to_owned(),
        "/static/js/../../secret.txt".to_owned(),
        "/static/%2e%2e/secret.txt".to_owned(),
        "/static/%2e%2e%2fsecret.txt".to_owned(),
        "/static/%2E%2E%2Fsecret.txt".to_owned(),
        "/static/..%2fsecret.txt".to_owned(),
        "/static/..%5csecret.txt".to_owned(),
        "/static/js%5c..%5c..%5csecret.txt".to_owned(),
        format!("/static/{encoded_absolute}"),
        format!("/static/{absolute}"),
        "/static//etc/passwd".to_owned(),
        "/static/%2fetc%2fpasswd".to_owned(),
        "/static/leak.txt".to_owned(),
        "/static/up/secret.txt".to_owned(),
        "/static/js".to_owned(),
        "/static/".to_owned(),
        "/static/%00".to_owned(),
    ];
    for path in &attempts {
        let (code, body) = raw_get(server.addr, path).await;
        assert_eq!(code, 404, "{path} answered {code}");
        assert!(!body.contains(SECRET), "{path} leaked the secret");
        assert!(!body.contains("root:"), "{path} leaked /etc/passwd");
    }
    // The same, with the embedded assets.
    let embedded = start_demo(Duration::from_secs(1)).await;
    for path in &attempts {
        let (code, body) = raw_get(embedded.addr, path).await;
        assert_eq!(code, 404, "{path} answered {code} (embedded)");
        assert!(!body.contains(SECRET));
    }
    server.stop().await;
    embedded.stop().await;
}

#[tokio::test]
async fn a_raw_backslash_path_is_refused() {
    let site = site();
    let server = start(App::new().static_dir("/static", &site.www)).await;
    let response = get_with(server.addr, "/static/..\\secret.txt", "").await;
    assert!(matches!(status(&response), 400 | 404), "{response}");
    assert!(!response.contains(SECRET));
    server.stop().await;
}

#[tokio::test]
async fn a_plain_get_on_the_socket_is_400_with_an_explanation() {
    let server = start_demo(Duration::from_secs(1)).await;
    let (code, body) = raw_get(server.addr, "/socket").await;
    assert_eq!(code, 400);
    assert!(body.contains("WebSocket"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_websocket_version_is_426_naming_version_13() {
    let server = start_demo(Duration::from_secs(1)).await;
    let response = get_with(
        server.addr,
        "/socket",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    assert_eq!(status(&response), 426);
    assert_eq!(header(&response, "sec-websocket-version"), Some("13"));
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let server = start_demo(Duration::from_secs(1)).await;
    for path in ["/nope", "/static/nope.js", "/socket/extra", "/index.html"] {
        assert_eq!(raw_get(server.addr, path).await.0, 404, "{path}");
    }
    server.stop().await;
}
