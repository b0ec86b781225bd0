//! How a command stops, written once for `broker`, `gen`, `run` and `up` (the SQL shell handles
//! Ctrl-C itself: there it stops a query, not the process).
//!
//! A command starts its long-running parts through [`Shutdown`] in the order they must stop:
//! sources first (the generator), then what reads them (the query: it finishes its
//! micro-batch, its sinks drain and it checkpoints), then what watches them (the dashboard)
//! and what serves them all (the broker). [`Shutdown::run`] waits for the first Ctrl-C /
//! SIGTERM or for a part that ends on its own (an error, a bounded generator, a query that
//! stopped), then stops the parts one after the other in that order, each within its grace
//! period if it has one. A second Ctrl-C / SIGTERM at any point of the stop exits at once.
//!
//! One token belongs to the command; each part's stop token is a child of it, cancelled in
//! turn, and the command's token goes last so nothing outlives the command.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::signals::Signals;

/// Exit status after a second signal (128 + SIGINT, as shells report Ctrl-C).
const FORCED_EXIT: i32 = 130;

/// The parts of a running command and the order they stop in (see the module docs).
pub struct Shutdown {
    token: CancellationToken,
    /// Notified when a part whose end ends the command returns.
    ended: Arc<Notify>,
    parts: Vec<Part>,
    signals: Signals,
    /// Logged when a signal starts the stop.
    stopping: Option<&'static str>,
    /// Printed when a second signal exits at once.
    forced: &'static str,
}

struct Part {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<Result<()>>,
    /// At most this long once asked to stop (None: as long as it takes; a second signal is
    /// the way out).
    grace: Option<Duration>,
}

impl Shutdown {
    /// Installs the signal handlers. `stopping` is logged when the first signal comes (what
    /// happens now); `forced` is printed when a second one exits at once (what is skipped).
    pub fn new(stopping: Option<&'static str>, forced: &'static str) -> Result<Shutdown> {
        Ok(Shutdown {
            token: CancellationToken::new(),
            ended: Arc::new(Notify::new()),
            parts: Vec::new(),
            signals: Signals::install()?,
            stopping,
            forced,
        })
    }

    /// Starts a part that holds data (generator, query, broker): when it returns on its own
    /// the command stops; once asked to stop it is waited for as long as it takes. `part` gets
    /// the token that asks it to stop.
    pub fn start<F, Fut>(&mut self, name: &'static str, part: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.spawn(name, None, true, part);
    }

    /// Starts a part beside the others (the dashboard): its end does not stop the command, and
    /// once asked to stop it gets at most `grace`.
    pub fn start_aside<F, Fut>(&mut self, name: &'static str, grace: Duration, part: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.spawn(name, Some(grace), false, part);
    }

    fn spawn<F, Fut>(&mut self, name: &'static str, grace: Option<Duration>, ends: bool, part: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let stop = self.token.child_token();
        let run = part(stop.clone());
        let ended = self.ended.clone();
        let task = tokio::spawn(async move {
            let r = run.await;
            if ends {
                ended.notify_one();
            }
            r
        });
        self.parts.push(Part {
            name,
            stop,
            task,
            grace,
        });
    }

    /// Runs until the first signal or until a part ends on its own, then stops every part in
    /// the order they were started. The first part's error is the command's; later ones are
    /// logged.
    pub async fn run(mut self) -> Result<()> {
        tokio::select! {
            _ = self.signals.next() => {
                if let Some(m) = self.stopping {
                    tracing::info!("{m}");
                }
            }
            _ = self.ended.notified() => {}
        }
        let (mut signals, forced) = (self.signals, self.forced);
        tokio::spawn(async move {
            signals.next().await;
            eprintln!("{forced}");
            std::process::exit(FORCED_EXIT);
        });
        let mut first_error = None;
        for part in self.parts {
            part.stop.cancel();
            let result = match part.grace {
                None => Some(part.task.await),
                Some(grace) => match tokio::time::timeout(grace, part.task).await {
                    Ok(r) => Some(r),
                    Err(_) => {
                        tracing::warn!("{} did not stop within {} s", part.name, grace.as_secs());
                        None
                    }
                },
            };
            let error = match result {
                Some(Ok(Ok(()))) | None => continue,
                Some(Ok(Err(e))) => e,
                Some(Err(e)) => anyhow!("{} task: {e}", part.name),
            };
            match first_error {
                None => first_error = Some(error),
                Some(_) => tracing::error!("{}: {error:#}", part.name),
            }
        }
        self.token.cancel();
        first_error.map_or(Ok(()), Err)
    }
}
