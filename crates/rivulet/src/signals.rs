//! SIGINT (Ctrl-C) and SIGTERM, handled by the process itself: installed before a command
//! starts its work, so neither kills it before it can stop cleanly ([`crate::shutdown`]) or,
//! in the SQL shell, so Ctrl-C stops a query instead of the process.

use anyhow::{Context, Result};

/// A signal the process acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// The installed handlers; signals that arrive while nobody waits are kept for the next
/// [`Signals::next`].
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (needs a running tokio runtime).
    pub fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) -> Sig {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.int.recv() => Sig::Interrupt,
                Some(()) = self.term.recv() => Sig::Terminate,
                else => std::future::pending::<Sig>().await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Sig::Interrupt
        }
    }

    /// Forgets a Ctrl-C that came while nothing was running, so it cannot stop what starts
    /// next.
    pub async fn drain_interrupts(&mut self) {
        #[cfg(unix)]
        {
            for _ in 0..4 {
                if tokio::time::timeout(std::time::Duration::ZERO, self.int.recv())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}
