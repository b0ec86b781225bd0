//! Child processes of the `rivulet` binary: [`BrokerProcess`] (`rivulet broker`, killed with
//! -9 or stopped with a signal, restarted on its port and data) and the pieces any child
//! needs: signals, bounded exits, stdout lines on a thread, log files and their tails.
//!
//! The binary's path comes from the test (`env!("CARGO_BIN_EXE_rivulet")`, which Cargo sets
//! for the `rivulet` crate's integration tests only).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::wait::WAIT;

/// The line `rivulet broker` prints on stdout once it listens.
pub const BROKER_LISTENING: &str = "rivulet broker listening on ";

/// The lines `reader` yields, read on a thread of their own (so a child never blocks on a full
/// pipe); the channel closes at the end of the stream.
pub fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `rivulet up` on ports the system picks (broker and dashboard), generating 2,000 events/s:
/// the start of the command line; the caller adds `--data-dir` and the rest.
pub const UP_ON_FREE_PORTS: [&str; 7] = [
    "up",
    "--listen",
    "127.0.0.1:0",
    // Not the default 8080: tests run side by side.
    "--dashboard-listen",
    "127.0.0.1:0",
    "--rate",
    "2000",
];

/// Runs `bin args` to completion (no `RIVULET_BROKERS` from the environment) and returns its
/// output.
pub fn run_cli(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_remove("RIVULET_BROKERS")
        .output()
        .expect("runs rivulet")
}

/// [`run_cli`], asserting that it succeeds (its stderr in the failure message).
pub fn run_cli_ok(bin: &str, args: &[&str]) -> std::process::Output {
    let out = run_cli(bin, args);
    assert!(
        out.status.success(),
        "rivulet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The header [`spawn_in`] writes to `run.log` before each run.
pub const RUN_LOG_HEADER: &str = "===== rivulet run =====";

/// Starts `bin args` in working directory `dir` (created when missing), its stderr appended to
/// `<dir>/run.log` after [`RUN_LOG_HEADER`], its stdout to `<dir>/stdout.log` (where the
/// dashboard prints its address), stdin closed.
pub fn spawn_in(bin: &str, dir: &Path, args: &[String]) -> Child {
    std::fs::create_dir_all(dir).expect("creating the working directory");
    let log = append_log(&dir.join("run.log"), RUN_LOG_HEADER);
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(append_log(
            &dir.join("stdout.log"),
            RUN_LOG_HEADER,
        )))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawning rivulet")
}

/// A broker process (data and log under `dir`, `--fsync always`) whose topic `r` (one
/// partition) holds the events of the issue-11 report: `rivulet gen` of 2,000 events over 5
/// ids, seed 5, from 2026-11-24T10:00:00Z, 5 % malformed — `quick_config(.., "r", 5, 2000,
/// 5, Mix::bad(0.05))` gives the same events.
pub fn broker_with_report_events(bin: &str, dir: &Path) -> BrokerProcess {
    let broker = broker_with_topic(bin, dir, "r", 1);
    let b = broker.bootstrap();
    run_cli_ok(
        bin,
        &[
            "gen",
            "--brokers",
            &b,
            "--topic",
            "r",
            "--rate",
            "0",
            "--count",
            "2000",
            "--keys",
            "5",
            "--seed",
            "5",
            "--start-time",
            "2026-11-24T10:00:00Z",
            "--bad-fraction",
            "0.05",
        ],
    );
    broker
}

/// Sends `SIG<signal>` (`"TERM"`, `"INT"`, ...) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{signal} {pid} failed");
}

/// Waits up to `within` for `child` to exit.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `SIG<signal>` and waits up to `within` for the exit status; `None` when the child was
/// still running then (it is killed with -9 and reaped).
pub fn stop_child(child: &mut Child, signal: &str, within: Duration) -> Option<ExitStatus> {
    send_signal(child.id(), signal);
    let status = wait_exit(child, within);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Runs `cmd` to completion, bounded by `within`; panics unless it succeeds.
pub fn run_bounded(cmd: &mut Command, within: Duration, what: &str) {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    match wait_exit(&mut child, within) {
        Some(st) => assert!(st.success(), "{what} failed: {st}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {within:?}");
        }
    }
}

/// Opens `path` for appending (created if missing) and writes `header` as a line: a log file
/// several starts of a child share.
pub fn append_log(path: &Path, header: &str) -> File {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    writeln!(&f, "{header}").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    f
}

/// Waits (polling, bounded by `within`) until the log at `path` contains one of `needles`;
/// returns the one it found.
pub fn wait_for_log<'a>(path: &Path, needles: &[&'a str], within: Duration) -> Option<&'a str> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(n) = needles.iter().find(|n| text.contains(**n)) {
            return Some(n);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last 8 KB of a log file (empty when it cannot be read).
pub fn log_tail(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A `rivulet broker` child process on 127.0.0.1, its stderr appended to a log file.
pub struct BrokerProcess {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    fsync: String,
    /// More `rivulet broker` flags (kept on restarts).
    extra: Vec<String>,
    /// How many times the process was started (for log separation).
    pub starts: u32,
}

impl BrokerProcess {
    /// Starts `bin broker` on a port the system picks (`--listen 127.0.0.1:0`) with its data in
    /// `data_dir` and `--fsync fsync`; its stderr goes to `log_path` (appended, shown when a
    /// wait fails). Returns once it prints its listening line.
    pub fn start(bin: &str, data_dir: &Path, log_path: &Path, fsync: &str) -> BrokerProcess {
        Self::start_with_args(bin, data_dir, log_path, fsync, &[])
    }

    /// [`Self::start`] with more `rivulet broker` flags (kept on restarts).
    pub fn start_with_args(
        bin: &str,
        data_dir: &Path,
        log_path: &Path,
        fsync: &str,
        extra: &[&str],
    ) -> BrokerProcess {
        let mut b = BrokerProcess {
            bin: PathBuf::from(bin),
            child: None,
            port: 0,
            data_dir: data_dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
            fsync: fsync.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            starts: 0,
        };
        b.spawn_and_wait(0);
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker not running").id()
    }

    fn spawn_and_wait(&mut self, port: u16) {
        // Restarting on a fixed port can race with the old socket going away: retry a few times
        // if the process exits before it is listening.
        let deadline = Instant::now() + WAIT;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.starts += 1;
            match self.try_spawn(port, deadline) {
                Ok(p) => {
                    assert!(
                        port == 0 || p == port,
                        "broker listens on {p}, asked for {port}"
                    );
                    self.port = p;
                    return;
                }
                Err(e) => {
                    if attempt >= 5 || Instant::now() >= deadline {
                        panic!("broker did not start ({e}); log:\n{}", self.log_tail());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
    }

    fn try_spawn(&mut self, port: u16, deadline: Instant) -> Result<u16, String> {
        let log = append_log(
            &self.log_path,
            &format!("===== start #{} (port {port}) =====", self.starts),
        );
        let mut child = Command::new(&self.bin)
            .arg("broker")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--fsync")
            .arg(&self.fsync)
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RIVULET_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        // Read for the whole life of the process, so it never blocks on a full pipe.
        let rx = lines_of(child.stdout.take().expect("stdout"));
        self.child = Some(child);
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.kill9();
                return Err("timed out waiting for the listening line".into());
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix(BROKER_LISTENING) {
                        let p = addr
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse::<u16>().ok())
                            .ok_or_else(|| format!("cannot parse port from {line:?}"))?;
                        assert!(addr.starts_with("127.0.0.1:"), "listening on {addr}");
                        return Ok(p);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process exited.
                    let status = self.wait_exit(Duration::from_secs(5));
                    return Err(format!("broker exited before listening: {status:?}"));
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("broker exited before listening: {status}"));
                }
            }
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` ("TERM", "INT") and waits (bounded) for the exit status.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut c = self.child.take().expect("broker not running");
        match stop_child(&mut c, signal, WAIT) {
            Some(s) => s,
            None => panic!(
                "broker did not exit within {WAIT:?} after SIG{signal}; log:\n{}",
                self.log_tail()
            ),
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let status = wait_exit(self.child.as_mut()?, within);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Starts again on the same port and data dir (after kill9 or stop_with).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart while running");
        let port = self.port;
        self.spawn_and_wait(port);
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// The last 8 KB of the broker's stderr log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- broker log tail ----\n{}", self.log_tail());
        }
        self.kill9();
    }
}

/// A broker process under `dir` (`data/`, `broker.log`, `--fsync always`) with `topic`
/// created through `rivulet topics create` with `partitions` partitions.
pub fn broker_with_topic(bin: &str, dir: &Path, topic: &str, partitions: i32) -> BrokerProcess {
    let broker = BrokerProcess::start(bin, &dir.join("data"), &dir.join("broker.log"), "always");
    let b = broker.bootstrap();
    let n = partitions.to_string();
    run_cli_ok(
        bin,
        &[
            "topics",
            "--brokers",
            &b,
            "create",
            topic,
            "--partitions",
            &n,
        ],
    );
    broker
}

/// `rivulet run` flags of a query checkpointed in Kafka (`--checkpoint-store kafka`) named
/// `name` over `topic`: 1 s tumbling windows per id with count, avg, min and max of `value`, no
/// lateness, append mode, from the earliest offsets, into Kafka topic `out`, with small epochs
/// (`trigger`, `records` per epoch) so a test can act in the middle of the topic.
pub fn kafka_checkpointed_query_flags(
    brokers: &str,
    topic: &str,
    name: &str,
    trigger: &str,
    records: u64,
) -> Vec<String> {
    let records = records.to_string();
    [
        "run",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--name",
        name,
        "--checkpoint-store",
        "kafka",
        "--schema",
        "id:bigint,value:double,timestamp:timestamp",
        "--event-time",
        "timestamp",
        "--lateness",
        "0s",
        "--window",
        "tumbling:1s",
        "--group-by",
        "id",
        // Keyed by id (as `rivulet gen` keys), so grouped where read: no repartition topic.
        "--key-field",
        "id",
        "--agg",
        "count",
        "--agg",
        "avg:value",
        "--agg",
        "min:value",
        "--agg",
        "max:value",
        "--mode",
        "append",
        "--trigger",
        trigger,
        "--max-records-per-trigger",
        &records,
        "--sink",
        "kafka:out",
        "--starting-offsets",
        "earliest",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
