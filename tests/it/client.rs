//! `pushwire::topic_client` against a real server over real sockets: requests and their
//! replies, pushes queued while a reply is awaited, recovery, server errors, and the
//! end of a connection.

use crate::common;

use std::future::Future;
use std::time::Duration;

use common::topics::start_topics;
use common::{Running, STEP};
use pushwire::hub::{Hub, HubConfig};
use pushwire::topic::{Data, Epoch, Position};
use pushwire::topic_client::{Client, ClientError, ClientOptions, Event};
use pushwire::ws::client::ConnectError;
use pushwire::{App, Socket};

/// Awaits `future`, failing the test after [`STEP`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {STEP:?}"))
}

/// A server with topics (and presence on the `chat` namespace).
async fn server() -> Running {
    let config = HubConfig {
        presence: vec!["chat".into()],
        ..HubConfig::default()
    };
    start_topics(config).await.0
}

/// Closes the clients, then stops the server (gracefully, bounded).
///
/// A client that is not reading answers the server's close only after its close
/// timeout (5 s): the WebSocket layer first lets the application handle what came
/// before the close. Closing the clients first keeps the tests quick.
async fn finish(server: Running, clients: impl IntoIterator<Item = Client>) {
    for client in clients {
        within("close", client.close()).await;
    }
    within("stop", server.stop()).await;
}

async fn connect(server: &Running) -> Client {
    within("connect", Client::connect(&server.ws_url("/ws")))
        .await
        .expect("connect")
}

async fn publish(client: &mut Client, topic: &str, text: &str) -> Position {
    within("publish", client.publish(topic, Data::text(text)))
        .await
        .expect("publish")
}

/// The next event, which must be a message: (offset, data as JSON text).
async fn next_message(client: &mut Client) -> (u64, String) {
    match within("next event", client.next_event()).await {
        Ok(Some(Event::Message { position, data, .. })) => (position.offset, data.as_str().into()),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn json(text: &str) -> Data {
    Data::json(text.as_bytes().to_vec()).expect("valid JSON")
}

#[tokio::test]
async fn connecting_reads_the_hello_and_an_http_url_means_its_ws_endpoint() {
    let server = server().await;
    let a = connect(&server).await;
    let b = within("connect", Client::connect(&server.url("")))
        .await
        .expect("connect over http://");
    assert_eq!(a.protocol_version(), 1);
    for client in [&a, &b] {
        let (node, n) = client.client_id().rsplit_once('-').expect("node-n");
        assert!(
            !node.is_empty() && n.parse::<u64>().is_ok(),
            "{}",
            client.client_id()
        );
    }
    assert_ne!(a.client_id(), b.client_id());
    finish(server, [a, b]).await;
}

#[tokio::test]
async fn publishing_answers_consecutive_offsets_in_one_epoch() {
    let server = server().await;
    let mut client = connect(&server).await;
    let first = publish(&mut client, "news", "a").await;
    let second = publish(&mut client, "news", "b").await;
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);
    assert_eq!(publish(&mut client, "other", "c").await.offset, 1);
    finish(server, [client]).await;
}

#[tokio::test]
async fn resubscribing_since_a_position_recovers_the_missed_messages_in_order() {
    let server = server().await;
    let mut publisher = connect(&server).await;
    let mut positions = Vec::new();
    for text in ["m1", "m2", "m3", "m4", "m5"] {
        positions.push(publish(&mut publisher, "news", text).await);
    }

    let mut subscriber = connect(&server).await;
    let reply = within("sub", subscriber.subscribe("news", Some(&positions[1])))
        .await
        .expect("subscribe");
    assert_eq!(reply.topic.as_str(), "news");
    assert_eq!(reply.recovered, Some(true));
    assert_eq!(reply.position, positions[4]);
    for (offset, text) in [(3, "m3"), (4, "m4"), (5, "m5")] {
        assert_eq!(
            next_message(&mut subscriber).await,
            (offset, format!("\"{text}\""))
        );
    }
    // Then the live stream, with no gap.
    publish(&mut publisher, "news", "m6").await;
    assert_eq!(next_message(&mut subscriber).await, (6, "\"m6\"".into()));
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn subscribing_since_another_epoch_is_not_recovered_and_continues_live() {
    let server = server().await;
    let mut publisher = connect(&server).await;
    let before = publish(&mut publisher, "news", "old").await;
    let mut subscriber = connect(&server).await;
    let stale = Position {
        epoch: Epoch::new("SomeOtherEpoch").expect("epoch"),
        offset: 0,
    };
    assert_ne!(stale.epoch, before.epoch);
    let reply = within("sub", subscriber.subscribe("news", Some(&stale)))
        .await
        .expect("subscribe");
    assert_eq!(reply.recovered, Some(false));
    assert_eq!(reply.position, before);
    publish(&mut publisher, "news", "new").await;
    // Nothing from history: the first message is the live one.
    assert_eq!(next_message(&mut subscriber).await, (2, "\"new\"".into()));
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn subscribing_without_since_says_nothing_about_recovery_and_gets_only_live_messages() {
    let server = server().await;
    let mut publisher = connect(&server).await;
    publish(&mut publisher, "news", "before").await;
    let mut subscriber = connect(&server).await;
    let reply = within("sub", subscriber.subscribe("news", None))
        .await
        .expect("subscribe");
    assert_eq!((reply.position.offset, reply.recovered), (1, None));
    publish(&mut publisher, "news", "after").await;
    assert_eq!(next_message(&mut subscriber).await, (2, "\"after\"".into()));
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn pushes_that_arrive_while_a_reply_is_awaited_are_kept_in_order() {
    let server = server().await;
    let mut subscriber = connect(&server).await;
    within("sub", subscriber.subscribe("news", None))
        .await
        .expect("subscribe");
    let mut publisher = connect(&server).await;
    for text in ["m1", "m2", "m3"] {
        publish(&mut publisher, "news", text).await;
    }
    // The subscriber's own request: its reply comes after the three pushes (already
    // queued for it when the publisher got its replies) and after its own message.
    let own = publish(&mut subscriber, "news", "m4").await;
    assert_eq!(own.offset, 4);
    assert!(
        subscriber.queued_events() >= 3,
        "only {} pushes were queued",
        subscriber.queued_events()
    );
    for (offset, text) in [(1, "m1"), (2, "m2"), (3, "m3"), (4, "m4")] {
        assert_eq!(
            next_message(&mut subscriber).await,
            (offset, format!("\"{text}\""))
        );
    }
    assert_eq!(subscriber.queued_events(), 0);
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn a_bad_topic_is_refused_with_422_and_the_connection_stays_usable() {
    let server = server().await;
    let mut client = connect(&server).await;
    for bad in ["a b", "", "news@1", "é"] {
        match within("sub", client.subscribe(bad, None)).await {
            Err(ClientError::Server { code: 422, message }) => {
                assert!(message.contains("invalid topic"), "{message}")
            }
            other => panic!("sub {bad:?}: expected a 422, got {other:?}"),
        }
    }
    match within("pub", client.publish("a,b", Data::text("x"))).await {
        Err(ClientError::Server { code: 422, .. }) => {}
        other => panic!("pub: expected a 422, got {other:?}"),
    }
    assert_eq!(publish(&mut client, "news", "still here").await.offset, 1);
    finish(server, [client]).await;
}

#[tokio::test]
async fn the_other_refusals_reach_the_caller_with_their_codes() {
    let server = server().await;
    let mut client = connect(&server).await;
    within("sub", client.subscribe("news", None))
        .await
        .expect("subscribe");
    let codes = [
        within("sub twice", client.subscribe("news", None))
            .await
            .err(),
        within("unsub", client.unsubscribe("elsewhere")).await.err(),
        within("presence", client.presence("news")).await.err(),
    ];
    let codes: Vec<Option<u16>> = codes
        .iter()
        .map(|err| match err {
            Some(ClientError::Server { code, .. }) => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [Some(409), Some(404), Some(403)]);
    finish(server, [client]).await;
}

#[tokio::test]
async fn unsubscribing_stops_the_messages() {
    let server = server().await;
    let mut subscriber = connect(&server).await;
    within("sub", subscriber.subscribe("news", None))
        .await
        .expect("subscribe");
    within("sub", subscriber.subscribe("sports", None))
        .await
        .expect("subscribe");
    within("unsub", subscriber.unsubscribe("news"))
        .await
        .expect("unsubscribe");
    let mut publisher = connect(&server).await;
    publish(&mut publisher, "news", "unseen").await;
    publish(&mut publisher, "sports", "seen").await;
    match within("next event", subscriber.next_event()).await {
        Ok(Some(Event::Message { topic, data, .. })) => {
            assert_eq!((topic.as_str(), data.as_str()), ("sports", "\"seen\""))
        }
        other => panic!("expected the sports message, got {other:?}"),
    }
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn presence_lists_members_and_announces_joins_and_leaves() {
    let server = server().await;
    let mut ann = connect(&server).await;
    let ann_info = json(r#"{"name":"ann"}"#);
    within(
        "sub",
        ann.subscribe_with("chat:room", None, Some(&ann_info)),
    )
    .await
    .expect("subscribe");
    let mut joined = Vec::new();
    // Ann hears her own join.
    match within("join", ann.next_event()).await {
        Ok(Some(Event::Join { topic, member })) => {
            assert_eq!(topic.as_str(), "chat:room");
            joined.push(member);
        }
        other => panic!("expected ann's join, got {other:?}"),
    }
    assert_eq!(joined[0].client.as_ref(), ann.client_id());
    assert_eq!(joined[0].info.as_ref(), Some(&ann_info));

    let members = within("presence", ann.presence("chat:room"))
        .await
        .expect("presence");
    assert_eq!(members, joined);

    let mut bob = connect(&server).await;
    within("sub", bob.subscribe("chat:room", None))
        .await
        .expect("subscribe");
    match within("join", ann.next_event()).await {
        Ok(Some(Event::Join { member, .. })) => {
            assert_eq!(
                (member.client.as_ref(), member.info),
                (bob.client_id(), None)
            )
        }
        other => panic!("expected bob's join, got {other:?}"),
    }
    within("unsub", bob.unsubscribe("chat:room"))
        .await
        .expect("unsubscribe");
    match within("leave", ann.next_event()).await {
        Ok(Some(Event::Leave { member, .. })) => {
            assert_eq!(member.client.as_ref(), bob.client_id())
        }
        other => panic!("expected bob's leave, got {other:?}"),
    }
    finish(server, [ann, bob]).await;
}

#[tokio::test]
async fn data_arrives_as_the_json_text_that_was_published() {
    let server = server().await;
    let mut subscriber = connect(&server).await;
    within("sub", subscriber.subscribe("news", None))
        .await
        .expect("subscribe");
    let mut publisher = connect(&server).await;
    let values = [
        r#"{"a": [1, 2.50, "é\n\"q\""], "b": {}}"#,
        "-0.5e3",
        r#""text""#,
        "[]",
        "true",
    ];
    for value in values {
        within("pub", publisher.publish("news", json(value)))
            .await
            .expect("publish");
    }
    for (i, value) in values.iter().enumerate() {
        assert_eq!(
            next_message(&mut subscriber).await,
            (i as u64 + 1, (*value).to_owned())
        );
    }
    finish(server, [publisher, subscriber]).await;
}

/// docs/protocol.md: `data` is any JSON value, `null` included (it once read as a
/// missing field).
#[tokio::test]
async fn null_can_be_published_over_ws() {
    let server = server().await;
    let mut subscriber = connect(&server).await;
    within("sub", subscriber.subscribe("news", None))
        .await
        .expect("subscribe");
    let mut publisher = connect(&server).await;
    let published = within("pub", publisher.publish("news", json("null"))).await;
    assert_eq!(
        published.as_ref().map(|p| p.offset).ok(),
        Some(1),
        "{published:?}"
    );
    assert_eq!(next_message(&mut subscriber).await, (1, "null".into()));
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn a_message_of_the_largest_allowed_size_is_received() {
    let server = server().await;
    let mut subscriber = connect(&server).await;
    within("sub", subscriber.subscribe("big", None))
        .await
        .expect("subscribe");
    let mut publisher = connect(&server).await;
    // 65,536 bytes of JSON: the server's default limit, so the push is larger.
    let text = "x".repeat(HubConfig::default().max_data_size - 2);
    within("pub", publisher.publish("big", Data::text(&text)))
        .await
        .expect("publish");
    let (offset, data) = next_message(&mut subscriber).await;
    assert_eq!((offset, data.len()), (1, text.len() + 2));
    finish(server, [publisher, subscriber]).await;
}

#[tokio::test]
async fn the_event_stream_ends_when_the_server_shuts_down() {
    let server = server().await;
    let mut client = connect(&server).await;
    within("sub", client.subscribe("news", None))
        .await
        .expect("subscribe");
    // The client is reading when the server closes, as a subscriber would be.
    let ((), end) = within("stop", async {
        tokio::join!(server.stop(), client.next_event())
    })
    .await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(matches!(
        within("pub", client.publish("news", Data::text("late"))).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn connecting_to_a_closed_port_or_with_a_bad_url_fails_with_a_connect_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    match within("connect", Client::connect(&format!("ws://{addr}/ws"))).await {
        Err(ClientError::Connect(ConnectError::Connect { .. })) => {}
        other => panic!("expected a refused connection, got {other:?}"),
    }
    // TLS URLs are connected to like any other.
    for tls in [format!("wss://{addr}/ws"), format!("https://{addr}")] {
        match within("connect", Client::connect(&tls)).await {
            Err(ClientError::Connect(ConnectError::Connect { .. })) => {}
            other => panic!("{tls}: expected a refused connection, got {other:?}"),
        }
    }
    for bad in ["ftp://127.0.0.1:1", "127.0.0.1:1", "nonsense", "wss:///ws"] {
        match within("connect", Client::connect(bad)).await {
            Err(err @ ClientError::Connect(ConnectError::Url { .. })) => {
                assert!(err.to_string().contains(bad), "{err}")
            }
            other => panic!("{bad}: expected a URL error, got {other:?}"),
        }
    }
}

/// A `/ws` that says hello and then never answers anything.
async fn mute(socket: Socket) {
    let _ = socket
        .send(r#"{"hello":{"client":"mute-1","version":1}}"#)
        .await;
    socket.closed().await;
}

#[tokio::test]
async fn a_request_without_a_reply_times_out() {
    let server = common::start(App::new().socket("/ws", mute)).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let mut client = within(
        "connect",
        Client::connect_with(&server.ws_url("/ws"), &options),
    )
    .await
    .expect("connect");
    assert_eq!(client.client_id(), "mute-1");
    match within("sub", client.subscribe("news", None)).await {
        Err(ClientError::Timeout { op: "sub", .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    finish(server, [client]).await;
}

/// A `/ws` that does not speak the topic protocol.
async fn stranger(socket: Socket) {
    let _ = socket.send("1").await;
    socket.closed().await;
}

#[tokio::test]
async fn a_server_that_sends_no_hello_is_a_protocol_error() {
    let server = common::start(App::new().socket("/ws", stranger)).await;
    match within("connect", Client::connect(&server.ws_url("/ws"))).await {
        Err(ClientError::Protocol(message)) => assert!(message.contains("hello"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    within("stop", server.stop()).await;
}

/// When the server closes a connection (here: shutting down, 1001), it reads the
/// client's answering close frame and ends the connection then, not at its close
/// timeout (it once did: frames were parsed only while open). The timeout here is
/// 60 s, so a stop within `STEP` can only come from the answer. The peer is
/// tokio-tungstenite, to keep our own client out of the evidence.
#[tokio::test]
async fn shutting_down_ends_at_once_when_the_client_answers_the_close() {
    use futures_util::StreamExt as _;
    let config = pushwire::ws::Config {
        close_timeout: Duration::from_secs(60),
        ..pushwire::ws::Config::default()
    };
    let hub = Hub::new(HubConfig::default());
    let server = common::start(App::new().ws_config(config).topics(hub)).await;
    let mut ws = common::connect(&server.ws_url("/ws")).await;
    let hello = common::next_text(&mut ws).await;
    assert!(hello.contains("hello"), "{hello}");
    let ((), ()) = within("stop", async {
        tokio::join!(server.stop(), async {
            // Reading answers the close frame, then waits for the server's EOF.
            while let Some(Ok(_)) = ws.next().await {}
        })
    })
    .await;
}

#[tokio::test]
async fn the_close_code_tells_how_the_stream_ended() {
    let server = common::start(App::new().socket("/ws", common::topics::evictor)).await;
    let mut client = within("connect", Client::connect(&server.ws_url("/ws")))
        .await
        .expect("connect");
    assert_eq!(client.close_code(), None);
    within("sub", client.subscribe("news", None))
        .await
        .expect("subscribe");
    let end = within("end", client.next_event()).await.expect("no error");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(client.close_code(), Some(pushwire::CloseCode::POLICY));
    within("stop", server.stop()).await;
}
