//! The built `pushwire` binary, run the way a user or a script runs it.

use std::process::Stdio;

use super::STEP;

/// `pushwire` with only the environment the test sets: no `PUSHWIRE_*` variable
/// and no `RUST_LOG` from the environment the tests run in, and `RUST_BACKTRACE=1`
/// (so that a panic would show in what the test reads).
pub fn pushwire() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pushwire"));
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
