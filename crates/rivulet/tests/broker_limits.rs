//! Issue 12 against the real `rivulet broker` process and its flags: SIGTERM and kill -9 in the
//! middle of a long topic creation (SIGTERM used to be ignored while the admin work held the
//! runtime; a killed creation used to stop the broker from ever starting again), and the
//! broker's memory under the attacks that grew it, measured as the process's peak RSS
//! (`VmHWM`) — in its own process, so the test's clients do not count.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

fn frame<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = api as i16;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("broker-limits-test"));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    h.encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

fn read_frame(s: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    Bytes::from(body)
}

/// Reads one response and discards it in 64 KiB pieces; returns its length.
fn drain_frame(s: &mut TcpStream) -> u64 {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let len = u64::from(u32::from_be_bytes(len));
    let mut left = len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        s.read_exact(&mut buf[..n]).unwrap();
        left -= n as u64;
    }
    len
}

fn call<R: Encodable, T: Decodable>(s: &mut TcpStream, api: ApiKey, v: i16, body: &R) -> T {
    s.write_all(&frame(api, v, 1, body)).unwrap();
    let mut resp = read_frame(s);
    ResponseHeader::decode(&mut resp, api.response_header_version(v)).unwrap();
    T::decode(&mut resp, v).unwrap()
}

fn create_topics(name: &str, partitions: i32) -> CreateTopicsRequest {
    let mut t = CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(name.to_string()));
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 60_000;
    req
}

fn dirs_starting(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .count()
}

/// Waits (bounded) until a creation in progress has made some directories.
fn wait_for_dirs(dir: &Path, prefix: &str) {
    let deadline = Instant::now() + WAIT;
    while dirs_starting(dir, prefix) < 50 {
        assert!(Instant::now() < deadline, "the creation never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A topic is all there (topic file and every directory) or not at all.
fn all_or_nothing(dir: &Path, name: &str, partitions: usize) -> bool {
    let file = dir.join("topics").join(format!("{name}.json")).exists();
    let dirs = dirs_starting(dir, &format!("{name}-"));
    assert!(
        (file && dirs == partitions) || (!file && dirs == 0),
        "{name}: topic file {file}, {dirs} directories"
    );
    file
}

/// Items 1 and 2: SIGTERM in the middle of a 10,000-partition creation ends the broker within
/// seconds, and a kill -9 in the middle of one leaves a broker that starts; either way the topic
/// is all there or not there at all, and stays so across restarts.
#[test]
fn sigterm_and_kill9_during_a_long_topic_creation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(BIN, &data, &dir.path().join("broker.log"), "always");
    let mut s = connect(&broker.bootstrap());
    s.write_all(&frame(
        ApiKey::CreateTopics,
        5,
        1,
        &create_topics("termed", 10_000),
    ))
    .unwrap();
    wait_for_dirs(&data, "termed-");
    let started = Instant::now();
    let status = broker.stop_with("TERM");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    broker.restart();
    let termed = all_or_nothing(&data, "termed", 10_000);

    let mut s = connect(&broker.bootstrap());
    s.write_all(&frame(
        ApiKey::CreateTopics,
        5,
        1,
        &create_topics("killed", 10_000),
    ))
    .unwrap();
    wait_for_dirs(&data, "killed-");
    broker.kill9();
    broker.restart();
    let killed = all_or_nothing(&data, "killed", 10_000);
    // The CreateTopics of 100,000 partitions: refused at once, nothing left behind.
    let mut s = connect(&broker.bootstrap());
    let big =
        "0000002800130002000000010002667a000000010003626967000186a0000100000000000000000000138800";
    let bytes: Vec<u8> = (0..big.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&big[i..i + 2], 16).unwrap())
        .collect();
    s.write_all(&bytes).unwrap();
    let mut resp = read_frame(&mut s);
    ResponseHeader::decode(&mut resp, 0).unwrap();
    let r = CreateTopicsResponse::decode(&mut resp, 2).unwrap();
    assert_eq!(r.topics[0].error_code, 37, "INVALID_PARTITIONS");
    assert!(!all_or_nothing(&data, "big", 0));
    // And the view does not change across another restart.
    broker.stop_with("TERM");
    broker.restart();
    assert_eq!(all_or_nothing(&data, "termed", 10_000), termed);
    assert_eq!(all_or_nothing(&data, "killed", 10_000), killed);
    let mut s = connect(&broker.bootstrap());
    let r: CreateTopicsResponse = call(&mut s, ApiKey::CreateTopics, 5, &create_topics("ok", 3));
    assert_eq!(r.topics[0].error_code, 0);
}

fn produce_frame(topic: &str, records: Bytes, correlation_id: i32) -> Vec<u8> {
    let mut p = PartitionProduceData::default();
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data = vec![t];
    frame(ApiKey::Produce, 9, correlation_id, &req)
}

fn batch(value: Vec<u8>) -> Bytes {
    let record = rivulet_log::NewRecord::new(None, value, 1_000);
    rivulet_log::encode_batch([record], &rivulet_log::BatchSpec::default()).unwrap()
}

fn produce(s: &mut TcpStream, topic: &str, records: Bytes) -> i16 {
    s.write_all(&produce_frame(topic, records, 3)).unwrap();
    let mut resp = read_frame(s);
    ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(9)).unwrap();
    ProduceResponse::decode(&mut resp, 9).unwrap().responses[0].partition_responses[0].error_code
}

/// The gzip "bomb" of the issue as a batch: one record whose value is 400 MiB of zeros,
/// compressed to a few hundred KB, length and CRC fixed up.
fn bomb() -> Bytes {
    let gz = gzip_bomb_records(400);
    let mut b = batch(b"x".to_vec())[..61].to_vec();
    b.extend_from_slice(&gz);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&1i16.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn vm_hwm(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Peak RSS of the broker over its whole life, after the attacks that grew it in issue 12.
const BOUND: u64 = 64 << 20;

/// Items 3, 4, 5: four fetches asking for 2 GiB of a 24 MiB partition (`--fetch-max-bytes`
/// 4 MiB), ten connections each holding 3 MiB of a 4 MiB frame (`--queued-max-request-bytes`
/// 8 MiB) and a gzip inflating to 400 MiB leave the broker's peak RSS under 64 MiB; before,
/// each fetch alone read the whole partition into memory, twice.
#[test]
fn broker_memory_stays_bounded_under_attack() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start_with_args(
        BIN,
        &data,
        &dir.path().join("broker.log"),
        "always",
        &[
            "--fetch-max-bytes",
            "4194304",
            "--max-request-bytes",
            "4194304",
            "--queued-max-request-bytes",
            "8388608",
            "--request-timeout-ms",
            "3000",
        ],
    );
    let addr = broker.bootstrap();
    let mut s = connect(&addr);
    let r: CreateTopicsResponse = call(&mut s, ApiKey::CreateTopics, 5, &create_topics("heavy", 1));
    assert_eq!(r.topics[0].error_code, 0);
    for _ in 0..24 {
        assert_eq!(produce(&mut s, "heavy", batch(vec![b'x'; 1_000_000])), 0);
    }
    let pid = broker.pid();
    let after_fill = vm_hwm(pid);

    let mut p = FetchPartition::default();
    p.partition_max_bytes = i32::MAX;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("heavy"));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.min_bytes = 1;
    req.max_bytes = i32::MAX;
    req.topics = vec![t];
    let fetch = frame(ApiKey::Fetch, 11, 2, &req);
    let fetchers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, fetch) = (addr.clone(), fetch.clone());
            std::thread::spawn(move || {
                let mut c = connect(&addr);
                (0..3)
                    .map(|_| {
                        c.write_all(&fetch).unwrap();
                        drain_frame(&mut c)
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    for f in fetchers {
        for n in f.join().unwrap() {
            assert!(
                (3 << 20..=(4 << 20) + 1_100_000).contains(&n),
                "response of {n} bytes"
            );
        }
    }
    let after_fetch = vm_hwm(pid);

    let chunk = vec![0u8; 3 << 20];
    let holders: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = connect(&addr);
            c.set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            c.write_all(&((4u32 << 20) - 4).to_be_bytes()).unwrap();
            let _ = c.write_all(&chunk);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after_frames = vm_hwm(pid);
    drop(holders);

    let mut s = connect(&addr);
    let code = produce(&mut s, "heavy", bomb());
    assert_eq!(code, 87, "INVALID_RECORD");
    let after_bomb = vm_hwm(pid);
    println!(
        "broker peak RSS: {} MiB after filling, {} after fetches, {} after partial frames, {} \
         after the bomb",
        after_fill >> 20,
        after_fetch >> 20,
        after_frames >> 20,
        after_bomb >> 20
    );
    assert!(after_bomb < BOUND, "broker peak RSS {after_bomb} bytes");
}
