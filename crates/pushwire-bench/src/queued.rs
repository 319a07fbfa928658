//! A publisher that queues: the fan-out hands it one message at a time, without
//! waiting, and a task of its own sends them in order and tallies the server's
//! answers. The Pusher publisher (`pusher::publisher`) and the POST publisher
//! (`post_publisher`) are such a task; [`Queued`] is what the fan-out holds of
//! either.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// What the server answered so far, written by the sending task.
#[derive(Default)]
pub(crate) struct Answers {
    /// Messages the server accepted.
    pub(crate) ok: AtomicU64,
    /// Messages the server refused (every message of a refused batch).
    pub(crate) failed: AtomicU64,
    /// Requests sent.
    pub(crate) requests: AtomicU64,
    /// The first thing that went wrong: a refusal, or the connection's end.
    first_failure: Mutex<Option<String>>,
}

impl Answers {
    /// Keeps `why` when it is the first failure.
    pub(crate) fn fail(&self, why: String) {
        let mut first = self.first_failure.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(why);
    }
}

/// What [`Queued::counts`] answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Messages queued.
    pub(crate) queued: u64,
    /// Messages the server accepted.
    pub(crate) accepted: u64,
    /// Messages the server refused.
    pub(crate) refused: u64,
    /// Requests sent.
    pub(crate) requests: u64,
}

/// Messages queued for a sending task of its own (stopped when this is dropped).
pub(crate) struct Queued {
    queue: mpsc::UnboundedSender<String>,
    answers: Arc<Answers>,
    sent: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Queued {
    /// Starts `send`, which takes the queued messages in order and writes what
    /// the server answers into the [`Answers`] it is given.
    pub(crate) fn start<F, Fut>(send: F) -> Self
    where
        F: FnOnce(mpsc::UnboundedReceiver<String>, Arc<Answers>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, queued) = mpsc::unbounded_channel();
        let answers = Arc::new(Answers::default());
        let task = tokio::spawn(send(queued, Arc::clone(&answers)));
        Self {
            queue,
            answers,
            sent: 0,
            task,
        }
    }

    /// Queues one message.
    pub(crate) fn publish(&mut self, message: String) -> Result<(), String> {
        self.queue.send(message).map_err(|_| {
            self.failure()
                .unwrap_or_else(|| "the publisher's connection failed".into())
        })?;
        self.sent += 1;
        Ok(())
    }

    /// Messages queued, accepted and refused so far, and the requests that
    /// carried them.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            queued: self.sent,
            accepted: self.answers.ok.load(Ordering::Relaxed),
            refused: self.answers.failed.load(Ordering::Relaxed),
            requests: self.answers.requests.load(Ordering::Relaxed),
        }
    }

    /// The first refusal or connection failure, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.answers
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
