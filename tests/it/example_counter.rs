//! `examples/counter.rs`, the README's program, runs and counts.

use crate::common;

use common::{connect, next_text, raw_get};

#[tokio::test]
async fn the_counter_example_serves_the_page_and_counts() {
    let (_example, line) = common::start_example("counter").await;
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
