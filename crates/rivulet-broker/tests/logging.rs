//! Issue 12, item 6 (and 7): what the broker logs about hostile clients. The broker's tracing
//! output is captured by a `tracing_subscriber::fmt` subscriber, as the binary formats it
//! (without colours, so the escaping checked is the broker's own), and the assertions are on
//! the real log lines. This file holds the process's only subscriber.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::raw::{self, closed_by_peer, connect, produce};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, RequestHeader, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use rivulet_broker::BrokerConfig;
use tokio::io::AsyncWriteExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log, installed once for this test binary.
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture::default();
        let writer = c.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .init();
        c
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&captured().0.lock().unwrap()).into_owned()
}

const FORGED: &str =
    "evil\n2026-01-01T00:00:00.000000Z ERROR rivulet_broker: \u{1b}[31mFAKE LINE\u{1b}[0m";

/// The client id found by the probe: a newline and an ANSI escape forged an `ERROR … FAKE
/// LINE` log line. It is now quoted and escaped wherever it is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_strings_cannot_forge_log_lines() {
    captured();
    let broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    let mut s = connect(&addr).await;
    // InitProducerId with a transactional id and a timeout the broker refuses: logged with the
    // client id and the transactional id.
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::InitProducerId as i16;
    header.request_api_version = 4;
    header.correlation_id = 5;
    header.client_id = Some(StrBytes::from_static_str(FORGED));
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx\nFAKE")));
    req.transaction_timeout_ms = 0;
    let mut f = bytes::BytesMut::new();
    f.extend_from_slice(&[0; 4]);
    header
        .encode(&mut f, ApiKey::InitProducerId.request_header_version(4))
        .unwrap();
    req.encode(&mut f, 4).unwrap();
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&f).await.unwrap();
    let mut resp = tokio::time::timeout(WAIT, raw::read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    kafka_protocol::messages::ResponseHeader::decode(
        &mut resp,
        ApiKey::InitProducerId.response_header_version(4),
    )
    .unwrap();
    let r = InitProducerIdResponse::decode(&mut resp, 4).unwrap();
    assert_eq!(
        r.error_code,
        ResponseError::InvalidTransactionTimeout.code()
    );
    // A produce refused for its content is logged with the client id too.
    create_topic(&addr, "logged", 1, &[]).await;
    let bad = raw::forge(&[0x42; 40], 1, 2);
    let (code, _, _) = produce(&mut s, 6, "logged", 0, bad).await;
    assert_eq!(code, ResponseError::CorruptMessage.code());
    let log = log_text();
    let refused = log
        .lines()
        .find(|l| l.contains("transactional producer refused"))
        .expect("refusal logged");
    assert!(
        refused.contains(r#"evil\n2026-01-01T00:00:00.000000Z ERROR rivulet_broker: \u{1b}[31mFAKE LINE\u{1b}[0m"#),
        "client id not escaped: {refused}"
    );
    assert!(
        refused.contains(r#"tx\nFAKE"#),
        "transactional id not escaped: {refused}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00.000000Z"),
            "a forged line: {line}"
        );
        assert!(!line.contains("\u{1b}[31mFAKE"), "a raw escape: {line}");
    }
    assert!(log.contains("produce refused, nothing stored"));
}

/// Every malformed request logged a WARN (14,478 lines in one fuzz pass): now at most ten per
/// ten seconds per kind, the rest counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_about_bad_requests_are_rate_limited() {
    captured();
    let broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    let stats = &broker.handle.as_ref().unwrap().broker().stats;
    let before = log_text()
        .matches("closing connection after bad request")
        .count();
    let suppressed_before = stats.log_lines_suppressed.load(Ordering::Relaxed);
    for i in 0..200u32 {
        let mut s = connect(&addr).await;
        // A plausible length, then an unknown API key: malformed.
        let mut f = vec![0, 0, 0, 12, 0x7a, 0x7a, 0, 0];
        f.extend_from_slice(&i.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        s.write_all(&f).await.unwrap();
        assert!(closed_by_peer(&mut s).await);
    }
    let lines = log_text()
        .matches("closing connection after bad request")
        .count()
        - before;
    assert!(lines <= 10, "{lines} warning lines for 200 bad requests");
    assert!(lines >= 1, "bad requests must still be reported");
    assert!(stats.malformed_requests.load(Ordering::Relaxed) >= 200);
    assert!(stats.log_lines_suppressed.load(Ordering::Relaxed) - suppressed_before >= 190);
}

fn tiny_file_pool(c: &mut BrokerConfig) {
    c.max_open_files = Some(2);
}

/// Item 7: a storage error was answered with KAFKA_STORAGE_ERROR but never logged. It is now
/// logged once per cause (here: the segment file vanished while closed by the file pool), with
/// every occurrence counted, and "works again" once it clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_are_logged_once_per_cause() {
    captured();
    let broker = TestBroker::start_with(tiny_file_pool).await;
    let addr = broker.bootstrap();
    create_topic(&addr, "doomed", 1, &[]).await;
    create_topic(&addr, "other", 4, &[]).await;
    let mut s = connect(&addr).await;
    let rec = || raw::batch(&[b"v".to_vec()], Compression::None);
    assert_eq!(produce(&mut s, 1, "doomed", 0, rec()).await.0, 0);
    // Use other partitions so the pool closes doomed-0's (fsynced, clean) segment file.
    for p in 0..4 {
        assert_eq!(produce(&mut s, 2 + p, "other", p, rec()).await.0, 0);
    }
    let segment = broker
        .data_dir()
        .join("doomed-0")
        .join("00000000000000000000.log");
    let saved: Bytes = std::fs::read(&segment).unwrap().into();
    std::fs::remove_file(&segment).unwrap();
    let stats = &broker.handle.as_ref().unwrap().broker().stats;
    let errors_before = stats.storage_errors.load(Ordering::Relaxed);
    for i in 0..5 {
        let (code, msg, _) = produce(&mut s, 10 + i, "doomed", 0, rec()).await;
        assert_eq!(code, ResponseError::KafkaStorageError.code(), "{msg:?}");
    }
    assert_eq!(
        stats.storage_errors.load(Ordering::Relaxed) - errors_before,
        5
    );
    let lines: Vec<String> = log_text()
        .lines()
        .filter(|l| l.contains("storage error on doomed-0"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("No such file"), "{}", lines[0]);
    // Put the file back: appends work again and it is said once.
    std::fs::write(&segment, &saved).unwrap();
    assert_eq!(produce(&mut s, 20, "doomed", 0, rec()).await.0, 0);
    assert_eq!(
        log_text()
            .matches("storage on doomed-0 works again")
            .count(),
        1
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let msgs = read_all(&addr, "doomed", 0).await;
    assert_eq!(msgs.len(), 2);
}
