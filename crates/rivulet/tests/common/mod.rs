//! Helpers for end-to-end tests that run the real `rivulet` binary: spawn `rivulet broker`,
//! wait for its "listening" line, kill it (-9) or stop it (SIGTERM/SIGINT), restart it on the
//! same port and data dir, and build librdkafka clients. Every wait is bounded.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};

/// Generous upper bound for any single wait (loaded 2-core machine).
pub const WAIT: Duration = Duration::from_secs(30);

const LISTENING: &str = "rivulet broker listening on ";

/// A `rivulet broker` child process.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    fsync: String,
    /// More `rivulet broker` flags.
    extra: Vec<String>,
    /// How many times the process was started (for log separation).
    pub starts: u32,
}

impl BrokerProcess {
    /// Starts a broker on an ephemeral port with its data in `data_dir`; its stderr goes to
    /// `log_path` (appended, shown when a wait fails).
    pub fn start(data_dir: &Path, log_path: &Path, fsync: &str) -> BrokerProcess {
        Self::start_with_args(data_dir, log_path, fsync, &[])
    }

    /// [`Self::start`] with more flags (kept on restarts).
    pub fn start_with_args(
        data_dir: &Path,
        log_path: &Path,
        fsync: &str,
        extra: &[&str],
    ) -> BrokerProcess {
        let mut b = BrokerProcess {
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
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open log: {e}"))?;
        use std::io::Write;
        let _ = writeln!(&log, "===== start #{} (port {port}) =====", self.starts);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
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
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Reads stdout for the whole life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.kill9();
                return Err("timed out waiting for the listening line".into());
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix(LISTENING) {
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
        let pid = self.pid();
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{signal} {pid} failed");
        match self.wait_exit(WAIT) {
            Some(s) => s,
            None => {
                let tail = self.log_tail();
                self.kill9();
                panic!("broker did not exit within {WAIT:?} after SIG{signal}; log:\n{tail}");
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
            let _ = f.read_to_string(&mut s);
        }
        s
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

/// librdkafka settings shared by all clients: fail fast, reconnect fast.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("broker.address.family", "v4");
    c
}

/// Idempotent acks=all producer config that rides out broker restarts.
pub fn idempotent_producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("linger.ms", "5");
    c
}

pub fn plain_consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", "unused-plain-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn group_consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    c
}

/// (low, high) watermarks of one partition. Blocking.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, partition, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("fetch_watermarks {topic}/{partition}: {e}"))
}

/// Reads `count` messages of one partition starting at `from`. Blocking, bounded.
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    count: usize,
) -> Vec<OwnedMessage> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic}/{partition} from {from}: got {} of {count}",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consume error on {topic}/{partition}: {e}"),
        }
    }
    out
}

/// Reads the whole partition as of now (low .. high watermark). Blocking.
pub fn read_all(bootstrap: &str, topic: &str, partition: i32) -> Vec<OwnedMessage> {
    let (lo, hi) = watermarks(bootstrap, topic, partition);
    read_partition(
        bootstrap,
        topic,
        partition,
        lo,
        usize::try_from(hi - lo).expect("watermarks"),
    )
}

/// Creates a topic through the AdminClient and asserts success.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let res = tokio::time::timeout(
        WAIT,
        admin.create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &opts,
        ),
    )
    .await
    .expect("create_topics timed out")
    .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e:?}"));
    }
}

/// One record batch found in a segment file: file position, base offset, record count, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBatch {
    pub position: u64,
    pub base_offset: i64,
    pub records: i32,
    pub size: u64,
}

/// Parses the batch headers of a segment file (by hand, independent of the broker's code).
pub fn segment_batches(path: &Path) -> Vec<DiskBatch> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = vec![];
    let mut pos = 0usize;
    while pos + 61 <= data.len() {
        let base = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap());
        let delta = i32::from_be_bytes(data[pos + 23..pos + 27].try_into().unwrap());
        if len < 49 || pos + 12 + len as usize > data.len() {
            break;
        }
        out.push(DiskBatch {
            position: pos as u64,
            base_offset: base,
            records: delta + 1,
            size: 12 + len as u64,
        });
        pos += 12 + len as usize;
    }
    out
}

/// Tiny deterministic PRNG (xorshift64*), so the tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in lo..hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
