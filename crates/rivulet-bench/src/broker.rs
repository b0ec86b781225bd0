//! The processes a bench measures from outside itself: its own broker when no `--brokers` is
//! given, `rivulet up` for `bench pipeline --parts rss`, the query processes of `bench scale`.
//!
//! They run as separate processes, so their memory (`/proc/<pid>/status`) and CPU
//! (`/proc/<pid>/stat`) are theirs alone and the figures in docs/BENCHMARKS.md keep meaning the
//! broker's. The bench does not know which program that is: the binary hands in a
//! [`Launcher`] that builds the commands (itself, `rivulet broker …` / `rivulet up …`), and
//! the bench runs them and waits for their ready line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::BenchError;

/// The line a launched broker or `up` prints on stdout once it accepts connections,
/// followed by its address.
pub const READY_PREFIX: &str = "rivulet broker listening on ";

/// How long the broker may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the commands of the processes a bench starts. Each must print
/// [`READY_PREFIX`]`<host:port>` on stdout once its broker accepts connections; its stderr
/// goes to a log file shown when it fails to start.
pub trait Launcher: Send + Sync {
    /// A broker listening on a free loopback port (`127.0.0.1:0`), keeping its data in
    /// `data_dir`, with `fsync` as its fsync policy (`always` or an interval like `100ms`).
    fn broker(&self, data_dir: &Path, fsync: &str) -> Command;

    /// The whole default pipeline (`rivulet up`): embedded broker on a free loopback port with
    /// its data in `data_dir`, generator at `rate` events/s, the default query and the
    /// dashboard (on a free port).
    fn up(&self, data_dir: &Path, rate: u64) -> Command;

    /// `rivulet run` with `flags` (the flags start with `run`): a query process of
    /// `bench scale`.
    fn run(&self, flags: &[String]) -> Command;
}

/// Resident memory of the broker process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rss {
    /// `VmHWM`: the peak resident set size.
    pub peak_kib: u64,
    /// `VmRSS`: the resident set size now.
    pub current_kib: u64,
}

/// A running child broker; killed when dropped.
pub(crate) struct BenchBroker {
    child: Child,
    addr: String,
    stderr_path: PathBuf,
    // Dropped after the child is killed (field order does not matter: Drop kills first).
    _dir: tempfile::TempDir,
}

impl BenchBroker {
    /// Starts the launcher's broker with `--fsync fsync` and waits (bounded) for its ready
    /// line.
    pub(crate) async fn start(
        launcher: Arc<dyn Launcher>,
        fsync: &str,
    ) -> Result<BenchBroker, BenchError> {
        let fsync = fsync.to_string();
        crate::kafka::blocking(move || {
            BenchBroker::start_with(|data_dir| launcher.broker(data_dir, &fsync))
        })
        .await
    }

    /// Starts the command `make(data dir)` gives (one that prints the ready line, a broker or
    /// `up`) with a throw-away data directory and waits (bounded) for the ready line.
    pub(crate) fn start_with(
        make: impl FnOnce(&Path) -> Command,
    ) -> Result<BenchBroker, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("rivulet-bench-")
            .tempdir()
            .map_err(BenchError::io("creating the bench data directory"))?;
        let data_dir = dir.path().join("data");
        // The broker's logs go to a file, not our terminal: they would interleave with the
        // figures; they are shown if the broker fails to start.
        let stderr_path = dir.path().join("broker.log");
        let stderr = std::fs::File::create(&stderr_path).map_err(BenchError::io(format!(
            "creating {}",
            stderr_path.display()
        )))?;
        let mut command = make(&data_dir);
        let shown = format!("{:?}", command.get_program());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(BenchError::io(format!("starting the bench broker {shown}")))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::BrokerProcess(
                "no stdout pipe to the broker".into(),
            ));
        };
        // A thread reads stdout for the whole life of the broker, so the pipe never fills up;
        // lines reach us through a channel, which makes the wait boundable.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("bench-broker-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // Once the bench has the address it stops listening; keep draining.
                    let _ = tx.send(line);
                }
            })
            .map_err(BenchError::io("starting the broker stdout reader"))?;

        let mut broker = BenchBroker {
            child,
            addr: String::new(),
            stderr_path,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BenchError::BrokerProcess(format!(
                    "no `{READY_PREFIX}<addr>` line within {}s{}",
                    START_TIMEOUT.as_secs(),
                    broker.log_tail()
                )));
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix(READY_PREFIX) {
                        broker.addr = addr.trim().to_string();
                        return Ok(broker);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = broker
                        .child
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(BenchError::BrokerProcess(format!(
                        "the broker exited ({status}) before it was ready{}",
                        broker.log_tail()
                    )));
                }
            }
        }
    }

    /// The address the broker listens on, for `bootstrap.servers`.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current and peak RSS of the broker (zeros if /proc cannot be read, e.g. not Linux).
    pub(crate) fn rss(&self) -> Rss {
        let path = format!("/proc/{}/status", self.child.id());
        std::fs::read_to_string(path)
            .map(|s| parse_status(&s))
            .unwrap_or_default()
    }

    /// Reads the RSS figures, then kills the broker.
    pub(crate) fn stop(mut self) -> Rss {
        let rss = self.rss();
        self.kill();
        rss
    }

    fn kill(&mut self) {
        // SIGKILL: the data directory is thrown away anyway, a clean shutdown buys nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the broker's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!("; broker log:\n{}", tail.join("\n"))
        }
    }
}

impl Drop for BenchBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Extracts VmHWM and VmRSS (KiB) from the text of `/proc/<pid>/status`.
fn parse_status(status: &str) -> Rss {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Rss {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any program that prints the ready line will do: the bench does not need `rivulet`.
    #[test]
    fn starts_what_the_launcher_gives_and_waits_for_its_ready_line() {
        let b = BenchBroker::start_with(|dir| {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "test -n '{}' && echo starting && echo '{READY_PREFIX}127.0.0.1:1' && exec sleep 60",
                    dir.display()
                ));
            c
        })
        .expect("started");
        assert_eq!(b.addr(), "127.0.0.1:1");
        assert!(b.pid() > 0);
        drop(b);

        let e = BenchBroker::start_with(|_| {
            let mut c = Command::new("sh");
            c.arg("-c").arg("echo 'no room' >&2; exit 3");
            c
        })
        .err()
        .expect("fails");
        let msg = e.to_string();
        assert!(msg.contains("exited") && msg.contains("no room"), "{msg}");
    }

    #[test]
    fn parses_proc_status() {
        let s = "Name:\trivulet\nVmPeak:\t  9000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    2345 kB\n";
        let r = parse_status(s);
        assert_eq!((r.peak_kib, r.current_kib), (12345, 2345));
        let r = parse_status("garbage");
        assert_eq!((r.peak_kib, r.current_kib), (0, 0));
    }
}
