//! The built `pushwire` binary, run the way a user or a script runs it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use super::STEP;

/// `pushwire` with only the environment the test sets: no `PUSHWIRE_*` variable
/// and no `RUST_LOG` from the environment the tests run in, and `RUST_BACKTRACE=1`
/// (so that a panic would show in what the test reads).
pub fn pushwire() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushwire"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PUSHWIRE_") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG").env("RUST_BACKTRACE", "1");
    command
}

/// [`pushwire`] for async tests: no standard input, standard output and error
/// piped, killed when dropped.
pub fn pushwire_async() -> tokio::process::Command {
    let mut command = tokio::process::Command::from(pushwire());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What a finished command left: exit status, standard output, standard error.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The lines of standard output.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Waits (bounded by [`STEP`]) for `child` to exit; a child that does not is killed.
pub async fn finish(child: tokio::process::Child) -> Output {
    let output = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("pushwire did not exit within {STEP:?}"))
        .expect("wait for pushwire");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running child process (a server, an example, a subscriber), killed and
/// reaped when dropped, so that a failing test leaves nothing behind.
pub struct Process(pub Child);

impl Process {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (a server) without input or standard error, and answers it
/// with the first line it prints (failing the test after [`STEP`]).
pub fn spawn_with_first_line(command: &mut Command) -> (Process, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pushwire");
    let stdout = child.stdout.take().expect("stdout");
    let process = Process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    (process, rx.recv_timeout(STEP).expect("no line printed"))
}
