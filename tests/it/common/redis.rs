//! Helpers for the cluster tests: real `redis-server` processes on free loopback
//! ports, and `pushwire serve` nodes (the built binary) on top of them. Every
//! process is killed (and reaped) when its handle is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::STEP;

/// A free loopback port: bound to port 0, then released (another process may take
/// it before we use it; callers retry).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// How long a node may take to become ready.
pub const READY: Duration = Duration::from_secs(15);

/// Starts `n` nodes on `redis` with `extra` flags and waits until each is ready.
pub async fn nodes(redis: &RedisServer, n: usize, extra: &[&str]) -> Vec<Node> {
    let nodes: Vec<Node> = (0..n).map(|_| Node::start(&redis.url(), extra)).collect();
    for node in &nodes {
        wait_status(node, "/readyz", 200, READY).await;
    }
    nodes
}

/// A `redis-server` child process, without persistence, on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port (retrying on a port collision).
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = spawn_redis(port) {
                return Self {
                    port,
                    child: Some(child),
                };
            }
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    /// The URL nodes connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("redis is running")
    }

    /// SIGKILL, and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh (empty) redis-server on the same port; retries while the port
    /// is still held (TIME_WAIT does not block a listener, but be patient anyway).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Some(child) = spawn_redis(self.port) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// Sends one command (RESP) and returns the first line of the answer.
    pub fn command(&self, args: &[&str]) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        tcp.set_read_timeout(Some(STEP)).expect("timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        tcp.write_all(request.as_bytes()).expect("send command");
        let mut line = String::new();
        BufReader::new(tcp)
            .read_line(&mut line)
            .expect("read answer");
        line.trim_end().to_owned()
    }

    /// SIGSTOP: Redis stops answering but keeps its connections open.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    // The shell's own kill: no procps needed.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Spawns redis-server on `port` and waits until it answers PING; `None` when it
/// exits first (the port was taken) or never answers.
fn spawn_redis(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test installs it)");
    let deadline = Instant::now() + STEP;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ping(port) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether a Redis on `port` answers PING.
fn ping(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    if tcp.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    tcp.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

/// A `pushwire serve` child process on a free port of 127.0.0.1.
pub struct Node {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Node {
    /// Starts the binary with `--broker <redis_url>` and `extra` flags, and waits
    /// for the line that says where it listens.
    ///
    /// Unless `extra` sets `--broker-timeout`, a Redis command may take 10 s (the
    /// default is 1 s): these tests check what is delivered, not how fast, and run
    /// beside the rest of the suite on a loaded machine.
    pub fn start(redis_url: &str, extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["serve", "--port", "0", "--broker", redis_url]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if !extra.contains(&"--broker-timeout") {
            args.extend(["--broker-timeout".to_owned(), "10s".to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::start_args(&args)
    }

    /// Starts the binary with exactly `args` (which must make it serve), and waits
    /// for the line that says where it listens.
    pub fn start_args(args: &[String]) -> Self {
        let mut command = super::binary::pushwire();
        let logs = if std::env::var_os("PUSHWIRE_TEST_LOGS").is_some() {
            // The nodes log at the level the test run asks for.
            if let Some(filter) = std::env::var_os("RUST_LOG") {
                command.env("RUST_LOG", filter);
            }
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logs)
            .spawn()
            .expect("start pushwire serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut node = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: Some(child),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading so the node never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(STEP)
            .expect("pushwire serve printed no address");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        node.addr = addr;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGTERM: the node drains and shuts down (see `docs/operations.md`).
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "TERM");
        }
    }

    /// Waits (up to `limit`) for the node to exit after [`terminate`](Self::terminate);
    /// `None` when it is still running then.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the node dies at once, without closing anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of `GET path` on `node`, or `None` when it does not answer in time.
pub async fn status(node: &Node, path: &str) -> Option<u16> {
    let response = tokio::time::timeout(
        Duration::from_secs(3),
        reqwest::Client::new().get(node.url(path)).send(),
    )
    .await
    .ok()?
    .ok()?;
    Some(response.status().as_u16())
}

/// Waits (up to `limit`) until `GET path` on `node` answers `want`.
pub async fn wait_status(node: &Node, path: &str, want: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        last = status(node, path).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{path} on {} answered {last:?}, not {want}, for {limit:?}",
        node.addr
    );
}
