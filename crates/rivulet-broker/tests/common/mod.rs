//! Shared helpers for the end-to-end tests of the in-process broker: start a broker on an
//! ephemeral 127.0.0.1 port in a temp dir, restart it on the same port and data dir, and build
//! librdkafka clients configured for quick test runs. No mocks: every test talks to the real
//! broker over TCP through librdkafka (or raw Kafka frames).
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::{BrokerConfig, BrokerHandle};
use tokio::net::TcpListener;

/// Generous upper bound for any single wait in these tests (loaded 2-core CI machine).
pub const WAIT: Duration = Duration::from_secs(30);

/// A broker running in this process, with its data in a temp dir that lives as long as this.
pub struct TestBroker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub handle: Option<BrokerHandle>,
    configure: fn(&mut BrokerConfig),
}

/// The config every test starts from: small rebalance delay so group tests run quickly.
pub fn base_config(dir: &Path, port: u16) -> BrokerConfig {
    let mut cfg = BrokerConfig::new(dir, "127.0.0.1", port);
    cfg.group.initial_rebalance_delay = Duration::from_millis(100);
    cfg
}

fn no_changes(_: &mut BrokerConfig) {}

impl TestBroker {
    /// Starts a broker with the default test config.
    pub async fn start() -> TestBroker {
        TestBroker::start_with(no_changes).await
    }

    /// Starts a broker, letting `configure` adjust the config (applied again on restarts).
    pub async fn start_with(configure: fn(&mut BrokerConfig)) -> TestBroker {
        init_test_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut cfg = base_config(dir.path(), port);
        configure(&mut cfg);
        let handle = tokio::time::timeout(WAIT, rivulet_broker::start(cfg, vec![listener]))
            .await
            .expect("broker start timed out")
            .expect("broker start failed");
        TestBroker {
            dir,
            port,
            handle: Some(handle),
            configure,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Graceful shutdown (clean-shutdown marker written).
    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(WAIT, h.shutdown())
                .await
                .expect("broker shutdown timed out")
                .expect("broker shutdown failed");
        }
    }

    /// Shuts down (if running) and starts again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot re-bind port {}: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let mut cfg = base_config(self.dir.path(), self.port);
        (self.configure)(&mut cfg);
        let handle = tokio::time::timeout(WAIT, rivulet_broker::start(cfg, vec![listener]))
            .await
            .expect("broker restart timed out")
            .expect("broker restart failed");
        self.handle = Some(handle);
    }
}

/// librdkafka settings shared by all clients: fail fast, reconnect fast.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("broker.address.family", "v4");
    c
}

/// Producer config: acks=all, not idempotent unless the caller sets it.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "30000")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "50");
    c
}

pub fn producer(bootstrap: &str) -> FutureProducer {
    producer_config(bootstrap)
        .create()
        .expect("create producer")
}

/// Config for a consumer without a group (manual assign), reading from the beginning.
pub fn plain_consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", "unused-plain-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap)
        .create()
        .expect("create admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(20)))
}

/// Creates a topic and asserts success.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = tokio::time::timeout(WAIT, admin.create_topics([&t], &admin_opts()))
        .await
        .expect("create_topics timed out")
        .expect("create_topics request failed");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t} failed: {e:?}"));
    }
}

/// Low/high watermarks of one partition (ListOffsets earliest/latest), blocking, bounded.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, partition, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("fetch_watermarks {topic}/{partition}: {e}"))
}

/// Reads partition `partition` of `topic` from offset `from` until `count` messages were read
/// (or the deadline passes, which panics). Blocking: call from `spawn_blocking`/a thread or
/// through [`read_partition`].
pub fn read_partition_blocking(
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
            "timed out reading {topic}/{partition} from {from}: got {} of {count} messages",
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

/// Async wrapper: reads `count` messages of one partition from `from`.
pub async fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    count: usize,
) -> Vec<OwnedMessage> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || read_partition_blocking(&b, &t, partition, from, count))
        .await
        .expect("reader thread panicked")
}

/// Reads a whole partition (low watermark .. high watermark as of now).
pub async fn read_all(bootstrap: &str, topic: &str, partition: i32) -> Vec<OwnedMessage> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let (lo, hi) = watermarks(&b, &t, partition);
        let n = usize::try_from(hi - lo).expect("watermarks");
        read_partition_blocking(&b, &t, partition, lo, n)
    })
    .await
    .expect("reader thread panicked")
}

/// Headers of a message as (key, value) pairs.
pub fn headers_of(m: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    match m.headers() {
        None => vec![],
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

pub fn payload_str(m: &OwnedMessage) -> Option<String> {
    m.payload().map(|p| String::from_utf8_lossy(p).into_owned())
}

pub fn key_str(m: &OwnedMessage) -> Option<String> {
    m.key().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Asserts that messages carry the dense offsets `first, first+1, ...`.
pub fn assert_dense(msgs: &[OwnedMessage], first: i64, what: &str) {
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(
            m.offset(),
            first + i as i64,
            "{what}: offsets not dense at index {i}"
        );
    }
}

/// Record batch headers found in a partition's segment files on disk (base offset, record count
/// as last_offset_delta+1, attributes), parsed by hand so the check is independent of the broker.
pub fn batches_on_disk(partition_dir: &Path) -> Vec<(i64, i32, i16)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    let mut out = vec![];
    for f in files {
        let data = std::fs::read(&f).unwrap_or_default();
        let mut pos = 0usize;
        while pos + 61 <= data.len() {
            let base = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
            let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap());
            let attrs = i16::from_be_bytes(data[pos + 21..pos + 23].try_into().unwrap());
            let delta = i32::from_be_bytes(data[pos + 23..pos + 27].try_into().unwrap());
            if len < 49 {
                break;
            }
            out.push((base, delta + 1, attrs));
            pos += 12 + len as usize;
        }
    }
    out
}

/// Runs a blocking closure on the blocking pool with a deadline.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(WAIT * 2, tokio::task::spawn_blocking(f))
        .await
        .expect("blocking step timed out")
        .expect("blocking step panicked")
}

/// Polls `cond` every 50 ms until it holds or `WAIT` passes; returns whether it held.
pub async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

pub type Overrides = BTreeMap<String, String>;

/// Raw Kafka frames over a plain TCP socket (for malformed-input tests and APIs librdkafka does
/// not expose). Encoding/decoding goes through the `kafka-protocol` crate.
pub mod raw {
    use std::time::Duration;

    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const IO_WAIT: Duration = Duration::from_secs(30);

    pub async fn connect(addr: &str) -> TcpStream {
        tokio::time::timeout(IO_WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed")
    }

    /// Encodes a full frame (length prefix, request header, body) for `api` at `version`.
    pub fn frame<R: Encodable>(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> BytesMut {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("rivulet-raw-test"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("encode header");
        body.encode(&mut buf, version).expect("encode body");
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf
    }

    /// Reads one response frame body (without the length prefix).
    pub async fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..64 << 20).contains(&len),
            "implausible response length {len}"
        );
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }

    /// Sends `body` as `api`@`version` and decodes the response (header checked).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        s: &mut TcpStream,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &Req,
    ) -> Resp {
        let f = frame(api, version, correlation_id, body);
        tokio::time::timeout(IO_WAIT, s.write_all(&f))
            .await
            .expect("write timed out")
            .expect("write");
        let mut resp = tokio::time::timeout(IO_WAIT, read_frame(s))
            .await
            .expect("response timed out")
            .expect("read response");
        let h = ResponseHeader::decode(&mut resp, api.response_header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, correlation_id, "correlation id");
        let r = Resp::decode(&mut resp, version).expect("decode response body");
        assert_eq!(
            resp.remaining(),
            0,
            "trailing bytes after {api:?} v{version} response"
        );
        r
    }

    /// Decodes a hex string (the reproductions are given as hex).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A v2 record batch of `values` (keys `k0`, `k1`, …, timestamps 1000, 1001, …).
    pub fn batch(values: &[Vec<u8>], compression: kafka_protocol::records::Compression) -> Bytes {
        use kafka_protocol::records::{
            Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.clone())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode batch");
        buf.freeze()
    }

    /// A batch whose records section is `records` (maybe garbage, maybe compressed), with codec
    /// `codec` and `count` declared records; length, offset delta and CRC-32C are fixed up so
    /// that only the content is wrong (how issue 12's hostile batches were made).
    pub fn forge(records: &[u8], codec: i16, count: i32) -> Bytes {
        let mut b =
            batch(&[b"x".to_vec()], kafka_protocol::records::Compression::None)[..61].to_vec();
        b.extend_from_slice(records);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    /// Produce v9 (acks=-1) of `records` to one partition: (error code, error message, base
    /// offset).
    pub async fn produce(
        s: &mut TcpStream,
        correlation_id: i32,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> (i16, Option<String>, i64) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        let mut p = PartitionProduceData::default();
        p.index = partition;
        p.records = Some(records);
        let mut t = TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_data = vec![p];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 30_000;
        req.topic_data = vec![t];
        let resp: ProduceResponse = call(s, ApiKey::Produce, 9, correlation_id, &req).await;
        let r = &resp.responses[0].partition_responses[0];
        (
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            r.base_offset,
        )
    }

    /// Reads one response frame and throws it away in small pieces (so a large response costs
    /// the test no memory); returns its length.
    pub async fn drain_frame(s: &mut TcpStream) -> std::io::Result<u64> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = u64::try_from(i32::from_be_bytes(len)).expect("negative response length");
        let mut left = len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            s.read_exact(&mut buf[..n]).await?;
            left -= n as u64;
        }
        Ok(len)
    }

    /// Waits until the peer closes the connection (EOF or reset) and returns true, or returns
    /// false if it is still open after `IO_WAIT`. Any bytes the broker sends first are skipped.
    pub async fn closed_by_peer(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + IO_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// Prints the broker's tracing events to stderr when `RIVULET_TEST_LOG` is set (a minimal
/// subscriber, so the tests need no extra dependency). Useful when a test fails.
pub fn init_test_tracing() {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Printer(AtomicU64);
    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }
    impl tracing::Subscriber for Printer {
        fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
            *m.level() <= tracing::Level::DEBUG
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            let mut f = Fields(String::new());
            e.record(&mut f);
            eprintln!(
                "[broker {} {}]{}",
                e.metadata().level(),
                e.metadata().target(),
                f.0
            );
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    if std::env::var_os("RIVULET_TEST_LOG").is_some() {
        let _ = tracing::subscriber::set_global_default(Printer(AtomicU64::new(0)));
    }
}
