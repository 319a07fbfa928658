//! `pushwire pub` and `pushwire sub`: publish to and follow topics of a running server
//! from a shell, over its `/ws` endpoint ([`pushwire::topic_client`]).

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use pushwire::ws::CloseCode;
use pushwire::ws::client::{ConnectError, TlsFailure};

use clap::Args;
use tokio::io::AsyncBufReadExt as _;

use pushwire::protocol::PositionReply;
use pushwire::topic::{Data, Position, Positions, Topic};
use pushwire::topic_client::{self, Client, ClientError, ClientOptions, Event};

/// The server both commands talk to unless told otherwise.
const DEFAULT_URL: &str = "ws://127.0.0.1:8888/ws";

/// The manual of `pushwire pub` (its `--help`).
pub(crate) const PUB_ABOUT: &str = "\
Publish a message on a topic of a running pushwire server.

Connects to the server's /ws endpoint, publishes DATA on TOPIC, and prints the
message's position as TOPIC@EPOCH:OFFSET (the form `pushwire sub --since` takes), or
with --json the server's reply, {\"topic\":…,\"epoch\":…,\"offset\":…}.

DATA is published as a JSON string, unless --json is given: then it must be one JSON
value (object, array, number, string, true, false or null) and is published as that
value. With DATA `-`, every line of standard input is published as one message, in
order, and one position is printed per line; with --json, blank lines are skipped and
the first line that is not JSON stops the command (the lines before it stay
published).";

const PUB_EXAMPLES: &str = "\
Examples:
  pushwire pub news 'hello'                  publishes the JSON string \"hello\"
  pushwire pub news '{\"title\":\"hi\"}' --json   publishes a JSON object
  pushwire pub news -- -not-a-flag           DATA that starts with '-'
  tail -f app.log | pushwire pub logs -      one message per line of standard input
  seq 3 | pushwire pub n - --json            publishes the numbers 1, 2 and 3

Over TLS, give the server as https://host:port (or wss://host:port/ws; port 443 when
none is given). A server whose certificate no authority the system trusts has signed
(a self-signed one) needs that certificate in --cacert:
  pushwire pub news 'hello' --url https://127.0.0.1:8888 --cacert cert.pem

Exit status: 0 when everything was published, 1 when a publish failed (the server
refused it, the connection or its TLS handshake failed, --cacert is unusable), 2 for
bad arguments.";

/// The manual of `pushwire sub` (its `--help`).
pub(crate) const SUB_ABOUT: &str = "\
Print the messages of topics of a running pushwire server.

Connects to the server's /ws endpoint, subscribes to every TOPIC, and prints one line
per message as it arrives: the message's data as JSON text (a published string is
printed with its quotes), or with --json the whole message,
{\"topic\":…,\"epoch\":…,\"offset\":…,\"data\":…}. Presence events are not printed.

With --since, each topic it names resumes after the position given: the messages
published since then come first, then live ones. When the server's history no longer
covers the gap (or the topic's epoch changed), one line on standard error says
`recovered: false` for that topic, which then continues with live messages only.

When the server restarts (it drains and closes the connection with 1012 \"service
restart\"), sub reconnects to the same URL, for up to --reconnect-for (30 s), and resumes every topic
after the last message it printed: nothing is missed or printed twice while the
server's history covers the gap.";

const SUB_EXAMPLES: &str = "\
Examples:
  pushwire sub news                               follow news until Ctrl-C
  pushwire sub news chat:lobby --json             both topics, whole messages
  pushwire sub news --since news@k3J9x0a:41       resume after offset 41
  pushwire sub news --count 1                     wait for one message, print it, exit

Over TLS, give the server as wss://host:port/ws (or https://host:port; port 443 when
none is given). A server whose certificate no authority the system trusts has signed
(a self-signed one) needs that certificate in --cacert:
  pushwire sub news --url wss://127.0.0.1:8888/ws --cacert cert.pem

To resume later, keep the last line of `--json` output: its topic, epoch and offset
make the next `--since` (topic@epoch:offset).

Exit status: 0 after --count messages or when the server closes the connection (other
than to restart), 1 when
a subscription is refused, the connection or its TLS handshake fails, or --cacert is
unusable, 2 for bad arguments.";

/// Where `pub` and `sub` connect, and how they show who they are.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The server: its WebSocket endpoint (ws://host:port/ws, or wss://host:port/ws
    /// over TLS), or http://host:port (https://host:port) for that server's /ws.
    #[arg(long, env = "PUSHWIRE_URL", default_value = DEFAULT_URL, value_name = "URL")]
    url: String,

    /// PEM certificates to trust besides the system's, for a TLS server whose
    /// certificate no authority the system trusts has signed: its self-signed
    /// certificate, or a private authority's.
    #[arg(long, env = "PUSHWIRE_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,

    /// A connection token (see `pushwire token`), for a server that requires them.
    #[arg(
        long,
        env = "PUSHWIRE_TOKEN",
        value_name = "JWT",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl ServerArgs {
    /// The client's options: the certificates of `--cacert` trusted besides the
    /// system's.
    fn options(&self) -> Result<ClientOptions, String> {
        let mut options = ClientOptions::default();
        if let Some(path) = &self.cacert {
            options.ws.extra_roots = pushwire::certs::read_certificates(path)
                .map_err(|err| format!("--cacert: {err}"))?;
        }
        Ok(options)
    }

    /// Connects to `--url` with [`options`](Self::options).
    async fn connect(&self) -> Result<Client, String> {
        let options = self.options()?;
        Client::connect_with(&self.url, &options)
            .await
            .map_err(describe)
    }
}

/// Flags of `pushwire pub`; its manual is [`PUB_ABOUT`].
#[derive(Debug, Args)]
#[command(after_long_help = PUB_EXAMPLES, allow_negative_numbers = true)]
pub(crate) struct PubArgs {
    /// The topic: 1 to 256 characters of A-Z a-z 0-9 _ - . : / % (the server checks).
    #[arg(value_name = "TOPIC")]
    topic: String,

    /// What to publish; `-` reads standard input, one message per line.
    #[arg(value_name = "DATA")]
    data: String,

    #[command(flatten)]
    server: ServerArgs,

    /// DATA (or each line of standard input) is JSON, published as that value; the
    /// reply is printed as JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `pushwire sub`; its manual is [`SUB_ABOUT`].
#[derive(Debug, Args)]
#[command(after_long_help = SUB_EXAMPLES)]
pub(crate) struct SubArgs {
    /// The topics to subscribe to.
    #[arg(value_name = "TOPIC", required = true)]
    topics: Vec<String>,

    #[command(flatten)]
    server: ServerArgs,

    /// Resume after these positions: topic@epoch:offset, comma-separated for several
    /// topics (as in SSE ids, such as news@k3J9x0a:41,chat:lobby@Qe81:7). Every
    /// topic named must also be a TOPIC.
    #[arg(long, value_name = "POSITIONS", value_parser = parse_positions)]
    since: Option<Positions>,

    /// Print each message as the whole JSON object the server sent, not only its data.
    #[arg(long)]
    json: bool,

    /// Exit (status 0) after printing N messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// When the server restarts (close 1012), try this long to reconnect and resume
    /// (then exit 1); 0s: exit 0 instead, as on a normal close.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    reconnect_for: std::time::Duration,
}

fn parse_positions(text: &str) -> Result<Positions, String> {
    let positions: Positions = text.parse().map_err(|err| format!("{err}"))?;
    if positions.0.is_empty() {
        return Err("expected topic@epoch:offset[,…]".into());
    }
    Ok(positions)
}

/// A bad argument found after parsing: one line, exit status 2.
fn usage(command: &str, message: &str) -> ExitCode {
    eprintln!("pushwire: error: {message} (see pushwire {command} --help)");
    ExitCode::from(2)
}

/// Runs `pushwire pub`.
pub(crate) fn publish(args: PubArgs) -> ExitCode {
    if let Err(err) = topic_client::ws_url(&args.server.url) {
        return usage("pub", &format!("--url: {err}"));
    }
    let data = match (args.data.as_str(), args.json) {
        ("-", _) => None,
        (text, false) => Some(Data::text(text)),
        (text, true) => match Data::json(text.as_bytes().to_vec()) {
            Ok(data) => Some(data),
            Err(err) => return usage("pub", &format!("DATA: {err}")),
        },
    };
    super::block_on(async move {
        let mut client = args.server.connect().await?;
        authenticate(&mut client, args.server.token.as_deref()).await?;
        match data {
            Some(data) => {
                let position = client
                    .publish(&args.topic, data)
                    .await
                    .map_err(|err| cannot_publish(&args.topic, err))?;
                print_position(&args.topic, &position, args.json)?;
            }
            None => publish_lines(&mut client, &args.topic, args.json).await?,
        }
        client.close().await;
        Ok(())
    })
}

/// Publishes each line of standard input.
async fn publish_lines(client: &mut Client, topic: &str, json: bool) -> Result<(), String> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0u64;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(err) => return Err(format!("cannot read standard input: {err}")),
        };
        number += 1;
        let data = if json {
            if line.trim().is_empty() {
                continue;
            }
            Data::json(line.into_bytes())
                .map_err(|err| format!("line {number} of standard input: {err}"))?
        } else {
            Data::text(&line)
        };
        let position = client
            .publish(topic, data)
            .await
            .map_err(|err| cannot_publish(topic, err))?;
        print_position(topic, &position, json)?;
    }
}

fn print_position(topic: &str, position: &Position, json: bool) -> Result<(), String> {
    let line = if json {
        // The reply's own field order: topic, epoch, offset.
        serde_json::to_string(&PositionReply {
            topic,
            epoch: position.epoch.as_str(),
            offset: position.offset,
        })
        .map_err(|err| format!("cannot write the reply: {err}"))?
    } else {
        format!("{topic}@{}:{}", position.epoch, position.offset)
    };
    print_line(&line)
}

/// Writes one line to standard output. A reader that went away (`| head -1`) ends
/// the command quietly, as a broken pipe should.
fn print_line(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(err) => Err(format!("cannot write to standard output: {err}")),
    }
}

/// Runs `pushwire sub`.
pub(crate) fn subscribe(args: SubArgs) -> ExitCode {
    if let Err(err) = topic_client::ws_url(&args.server.url) {
        return usage("sub", &format!("--url: {err}"));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = args.topics.iter().find(|t| !seen.insert(t.as_str())) {
        return usage("sub", &format!("topic {twice:?} is given twice"));
    }
    if let Some(since) = &args.since
        && let Some((stray, _)) = since.0.iter().find(|(t, _)| !seen.contains(t.as_str()))
    {
        return usage(
            "sub",
            &format!("--since names topic {stray:?}, which is not one of the TOPICs"),
        );
    }
    super::block_on(follow(args))
}

/// Sends `auth` first when a token is given.
async fn authenticate(client: &mut Client, token: Option<&str>) -> Result<(), String> {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        client
            .authenticate(token)
            .await
            .map_err(|err| format!("the token was refused: {}", describe(err)))?;
    }
    Ok(())
}

async fn follow(args: SubArgs) -> Result<(), String> {
    // Where each topic stands: the --since given, then each message printed.
    let mut positions = args.since.clone().unwrap_or_default();
    let mut client = subscribe_all(&args, &mut positions).await?;
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let event = client.next_event().await.map_err(describe)?;
        match event {
            // A server that restarts (it drains: 1012) asks us to come back: we
            // resubscribe from where each topic stands, on it or on whatever node
            // the URL reaches now.
            None if client.close_code() == Some(CloseCode::SERVICE_RESTART)
                && !args.reconnect_for.is_zero() =>
            {
                eprintln!("pushwire: the server restarts (1012); reconnecting");
                client = reconnect(&args, &mut positions).await?;
            }
            // A server that shuts down or closes normally ends the stream (a restart
            // too, with --reconnect-for 0s); anything else (a slow-consumer close, a
            // broken connection) is an error.
            None => {
                return match client.close_code() {
                    Some(code)
                        if code == CloseCode::NORMAL
                            || code == CloseCode::GOING_AWAY
                            || code == CloseCode::SERVICE_RESTART =>
                    {
                        Ok(())
                    }
                    Some(code) => Err(format!("the connection closed with {}", code.0)),
                    None => Err(String::from("the connection closed")),
                };
            }
            Some(event @ Event::Message { .. }) => {
                let line = match (&event, args.json) {
                    (Event::Message { data, .. }, false) => data.as_str().to_owned(),
                    _ => event.to_json(),
                };
                print_line(&line)?;
                if let Event::Message {
                    topic, position, ..
                } = event
                {
                    positions.set(&topic, position);
                }
                printed += 1;
            }
            Some(Event::Join { .. } | Event::Leave { .. }) => {}
        }
    }
    client.close().await;
    Ok(())
}

/// Connects, authenticates and subscribes to every topic, each from its position
/// in `positions` when it has one; a topic without one (or not recovered) gets the
/// position its live stream continues from.
async fn subscribe_all(args: &SubArgs, positions: &mut Positions) -> Result<Client, String> {
    let mut client = args.server.connect().await?;
    authenticate(&mut client, args.server.token.as_deref()).await?;
    for topic in &args.topics {
        let name = Topic::new(topic).ok();
        let since = name.as_ref().and_then(|t| positions.get(t).cloned());
        let reply = client
            .subscribe(topic, since.as_ref())
            .await
            .map_err(|err| format!("cannot subscribe to {topic:?}: {}", describe(err)))?;
        if reply.recovered == Some(false)
            && let Some(since) = &since
        {
            eprintln!(
                "pushwire: {topic}: recovered: false (history does not cover the messages \
                 after {topic}@{}:{}); continuing with live messages after {topic}@{}:{}",
                since.epoch, since.offset, reply.position.epoch, reply.position.offset
            );
        }
        if (since.is_none() || reply.recovered == Some(false))
            && let Some(name) = &name
        {
            positions.set(name, reply.position.clone());
        }
    }
    Ok(client)
}

/// [`subscribe_all`] again after a restart, retried with backoff (and jitter) for
/// `--reconnect-for`: the server may be gone for a moment.
async fn reconnect(args: &SubArgs, positions: &mut Positions) -> Result<Client, String> {
    let deadline = tokio::time::Instant::now() + args.reconnect_for;
    let mut ceiling = std::time::Duration::from_millis(250);
    loop {
        // At once or soon: the clients of a node do not all come back together.
        let wait = ceiling.mul_f64(rand::random_range(0.0..1.0));
        tokio::time::sleep(wait).await;
        match subscribe_all(args, positions).await {
            Ok(client) => return Ok(client),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "could not reconnect within {} after the server restarted: {err}",
                    humantime::format_duration(args.reconnect_for)
                ));
            }
            Err(_) => ceiling = (ceiling * 2).min(std::time::Duration::from_secs(2)),
        }
    }
}

fn cannot_publish(topic: &str, err: ClientError) -> String {
    format!("cannot publish on {topic:?}: {}", describe(err))
}

/// One line for a client error: the server's refusals read as such, and an
/// untrusted certificate says how to trust it.
fn describe(err: ClientError) -> String {
    match err {
        ClientError::Server { code, message } => format!("the server refused: {code} {message}"),
        ClientError::Connect(
            ref connect @ ConnectError::Tls {
                failure: TlsFailure::Untrusted,
                ..
            },
        ) => format!("{connect}; to trust it, give its certificate with --cacert FILE"),
        other => other.to_string(),
    }
}
