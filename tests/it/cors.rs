//! CORS on the publish API, `/sse` and `/poll`, from the `Origin` policy
//! (`--allowed-origin`), over real sockets with reqwest (which, not being a
//! browser, may send any `Origin`): preflights and actual requests from an allowed
//! origin, a refused one and none; credentials; `Vary: Origin`.

use http::{HeaderMap, Method, StatusCode};
use pushwire::Origins;
use pushwire::config::ServeConfig;
use serde_json::Value;

use super::common::corpus::start_with;
use super::common::{Running, STEP};

const ALLOWED: &str = "http://app.example:8080";
const REFUSED: &str = "http://evil.example";
const KEY: &str = "cors-test-key";

async fn start_server(origins: Origins) -> Running {
    start_with(ServeConfig {
        origins,
        api_key: Some(KEY.to_owned()),
        ..ServeConfig::default()
    })
    .await
}

fn listed() -> Origins {
    Origins::same_host()
        .allow(ALLOWED)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request with `Origin: origin` (when given) and `headers`; answers the
/// status and headers (the body of an SSE stream is never read).
async fn send(
    method: Method,
    url: &str,
    origin: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Option<String>) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("no answer in time")
        .expect("request failed");
    let status = response.status();
    let headers = response.headers().clone();
    let streaming = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"text/event-stream");
    let body = if streaming {
        None
    } else {
        Some(response.text().await.expect("body"))
    };
    (status, headers, body)
}

async fn preflight(
    url: &str,
    origin: Option<&str>,
    method: &str,
    headers: &str,
) -> (StatusCode, HeaderMap) {
    let (status, answer, _) = send(
        Method::OPTIONS,
        url,
        origin,
        &[
            ("access-control-request-method", method),
            ("access-control-request-headers", headers),
        ],
        None,
    )
    .await;
    (status, answer)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The comma-separated names of header `name`, lowercased.
fn names(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn varies_on_origin(headers: &HeaderMap) -> bool {
    names(headers, "vary").iter().any(|n| n == "origin")
}

/// The offset the next publish on `topic` gets (publishing it, without an Origin).
async fn next_offset(server: &Running, topic: &str) -> u64 {
    let (status, _, body) = send(
        Method::POST,
        &server.url(&format!("/api/publish/{topic}")),
        None,
        &[("authorization", &format!("Bearer {KEY}"))],
        Some("probe"),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let body: Value = serde_json::from_str(&body.unwrap_or_default()).expect("JSON");
    body["offset"].as_u64().expect("an offset")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_allows_what_each_route_takes() {
    let server = start_server(listed()).await;
    let routes = [
        ("/api/publish/news", "POST", "authorization,content-type"),
        ("/api/publish", "POST", "authorization,content-type"),
        ("/sse?topic=news", "GET", "authorization,last-event-id"),
        ("/poll?topic=news", "GET", "authorization"),
    ];
    for (path, method, wanted) in routes {
        let (status, headers) = preflight(&server.url(path), Some(ALLOWED), method, wanted).await;
        assert!(status.is_success(), "{path}: {status}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(ALLOWED),
            "{path}: the origin, exactly"
        );
        assert_eq!(
            header(&headers, "access-control-allow-credentials"),
            Some("true"),
            "{path}"
        );
        assert_eq!(
            names(&headers, "access-control-allow-methods"),
            vec![method.to_ascii_lowercase()],
            "{path}: its one method"
        );
        let mut allowed = names(&headers, "access-control-allow-headers");
        allowed.sort();
        let mut expected: Vec<String> = wanted.split(',').map(str::to_owned).collect();
        expected.sort();
        assert_eq!(allowed, expected, "{path}: the headers it takes");
        assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
        assert!(varies_on_origin(&headers), "{path}: {headers:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn requests_from_an_allowed_origin_are_answered_with_its_exact_origin() {
    let server = start_server(listed()).await;
    let auth = format!("Bearer {KEY}");
    let (status, headers, body) = send(
        Method::POST,
        &server.url("/api/publish/news"),
        Some(ALLOWED),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(r#"{"n":1}"#),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    assert_eq!(
        header(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        names(&headers, "access-control-expose-headers"),
        vec!["retry-after"]
    );
    assert!(varies_on_origin(&headers));
    for path in ["/sse?topic=news", "/poll?topic=news"] {
        let (status, headers, _) =
            send(Method::GET, &server.url(path), Some(ALLOWED), &[], None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(ALLOWED),
            "{path}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-credentials"),
            Some("true")
        );
        assert!(varies_on_origin(&headers), "{path}");
    }
    // A page of the server's own host is named by the policy too.
    let own = format!("http://{}", server.addr);
    let (_, headers, _) = send(
        Method::GET,
        &server.url("/poll?topic=news"),
        Some(&own),
        &[],
        None,
    )
    .await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(own.as_str())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_origin_gets_403_no_cors_header_and_nothing_published() {
    let server = start_server(listed()).await;
    for (path, method) in [
        ("/api/publish/blocked", "POST"),
        ("/sse?topic=news", "GET"),
        ("/poll?topic=news", "GET"),
    ] {
        let (status, headers) =
            preflight(&server.url(path), Some(REFUSED), method, "authorization").await;
        assert_eq!(status, 403, "{path}: the preflight is refused");
        assert_eq!(cors_headers(&headers), Vec::<String>::new(), "{path}");
        assert!(varies_on_origin(&headers), "{path}");
    }
    // The request a browser would not send after that preflight, sent anyway.
    let auth = format!("Bearer {KEY}");
    let (status, headers, body) = send(
        Method::POST,
        &server.url("/api/publish/blocked"),
        Some(REFUSED),
        &[("authorization", &auth)],
        Some("not published"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.unwrap_or_default().contains("is not allowed"));
    assert_eq!(cors_headers(&headers), Vec::<String>::new());
    assert!(varies_on_origin(&headers));
    for path in ["/sse?topic=news", "/poll?topic=news"] {
        let (status, headers, _) =
            send(Method::GET, &server.url(path), Some(REFUSED), &[], None).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(cors_headers(&headers), Vec::<String>::new(), "{path}");
    }
    assert_eq!(
        next_offset(&server, "blocked").await,
        1,
        "the refused publish did not happen"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_without_origin_is_served_without_a_cors_grant() {
    let server = start_server(listed()).await;
    let auth = format!("Bearer {KEY}");
    let (status, headers, _) = send(
        Method::POST,
        &server.url("/api/publish/news"),
        None,
        &[("authorization", &auth)],
        Some("hello"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    assert!(varies_on_origin(&headers));
    let (_, headers) = preflight(
        &server.url("/api/publish/news"),
        None,
        "POST",
        "authorization",
    )
    .await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    assert_eq!(header(&headers, "access-control-max-age"), None);
    server.stop().await;
}

#[tokio::test]
async fn any_origin_is_echoed_exactly_and_never_with_credentials() {
    let server = start_server(Origins::any()).await;
    let origin = "https://anyone.example";
    let (status, headers) = preflight(
        &server.url("/api/publish/news"),
        Some(origin),
        "POST",
        "authorization",
    )
    .await;
    assert!(status.is_success());
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    assert!(varies_on_origin(&headers));
    let (status, headers, _) = send(
        Method::GET,
        &server.url("/poll?topic=news"),
        Some(origin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    server.stop().await;
    // A listed origin keeps its credentials beside `*`.
    let both = Origins::any()
        .allow(ALLOWED)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = start_server(both).await;
    let (_, headers, _) = send(
        Method::GET,
        &server.url("/poll?topic=news"),
        Some(ALLOWED),
        &[],
        None,
    )
    .await;
    assert_eq!(
        header(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    server.stop().await;
}

#[tokio::test]
async fn websocket_routes_get_no_cors_headers() {
    let server = start_server(listed()).await;
    let url = server.ws_url("/ws");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .expect("request");
    request
        .headers_mut()
        .insert("origin", http::HeaderValue::from_static(ALLOWED));
    let (client, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
    drop(client);
    server.stop().await;
}
