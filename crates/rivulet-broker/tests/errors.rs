//! Error handling: oversized messages, malformed frames from raw TCP clients (garbage,
//! truncated, huge or negative length prefixes) that must close only the offending connection,
//! and ApiVersions at an unsupported version (KIP-511 fallback).
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_larger_than_topic_max_is_rejected() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_topic(
        &bootstrap,
        "small-msgs",
        1,
        &[("max.message.bytes", "1024")],
    )
    .await;
    let p: FutureProducer = producer_config(&bootstrap)
        .set("message.max.bytes", "10000000")
        .set("compression.type", "none")
        .create()
        .expect("producer");
    // Incompressible-ish payload well over the limit.
    let big: String = (0..20_000u32)
        .map(|i| char::from(b'a' + ((i * 7919) % 26) as u8))
        .collect();
    let r = p
        .send(
            FutureRecord::<str, str>::to("small-msgs").payload(&big),
            Timeout::After(WAIT),
        )
        .await;
    match r {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        other => panic!(
            "expected MessageSizeTooLarge, got {:?}",
            other.map_err(|(e, _)| e)
        ),
    }
    // Nothing was written; small records still go through, at offset 0.
    let d = p
        .send(
            FutureRecord::<str, str>::to("small-msgs").payload("small"),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("small record");
    assert_eq!(d.offset, 0);
    let msgs = read_all(&bootstrap, "small-msgs", 0).await;
    assert_eq!(msgs.len(), 1);
}

fn api_versions_v0_frame(correlation_id: i32) -> BytesMut {
    raw::frame(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ApiVersionsRequest::default(),
    )
}

/// Checks that a connection still works: ApiVersions v0 round trip.
async fn assert_connection_works(s: &mut tokio::net::TcpStream, correlation_id: i32) {
    let resp: ApiVersionsResponse = raw::call(
        s,
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(resp.error_code, 0);
    assert!(!resp.api_keys.is_empty());
}

async fn produce_works(bootstrap: &str, topic: &str) {
    let p = producer(bootstrap);
    p.send(
        FutureRecord::<str, str>::to(topic).payload("still alive"),
        Timeout::After(WAIT),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("produce after bad clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_frames_close_only_that_connection() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "survivor", 1, &[]).await;

    // A well-behaved raw client connected before the attacks and used after each one.
    let mut good = raw::connect(&bootstrap).await;
    assert_connection_works(&mut good, 1).await;

    let mut cases: Vec<(&str, Vec<u8>, bool)> = vec![];
    // (name, bytes, half-close write side after sending)
    // 1. Garbage: a plausible length, then bytes that are no request (api key 0x7a7a).
    let mut g = vec![0, 0, 0, 32];
    g.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(0x7a)));
    cases.push(("garbage body", g, false));
    // 2. Pure noise, no framing at all (first four bytes read as a length ~ 1.9 GB).
    cases.push((
        "ascii noise",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        false,
    ));
    // 3. Huge length prefix (2 GiB - 1) followed by a few bytes: refused before allocation.
    let mut h = 0x7fff_ffffu32.to_be_bytes().to_vec();
    h.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1]);
    cases.push(("2 GiB length prefix", h, false));
    // 4. Negative length prefix.
    cases.push((
        "negative length",
        vec![0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4],
        false,
    ));
    // 5. Truncated frame: length says 100, 20 bytes sent, then EOF.
    let mut t = 100u32.to_be_bytes().to_vec();
    t.extend_from_slice(&api_versions_v0_frame(5)[4..]);
    t.resize(24, 0);
    cases.push(("truncated frame then EOF", t, true));
    // 6. Complete frame whose body is truncated: a Metadata v1 request claiming 1000 topics but
    //    carrying only one.
    let mut md = BytesMut::new();
    md.put_i32(0);
    md.put_i16(ApiKey::Metadata as i16);
    md.put_i16(1);
    md.put_i32(6);
    md.put_i16(4);
    md.put_slice(b"test");
    md.put_i32(1000); // topics array length
    md.put_i16(3);
    md.put_slice(b"abc");
    let len = (md.len() - 4) as i32;
    md[..4].copy_from_slice(&len.to_be_bytes());
    cases.push(("metadata body shorter than its array", md.to_vec(), false));
    // 7. Header too short for a request header.
    cases.push(("2-byte frame", vec![0, 0, 0, 2, 0, 18], false));
    // 8. Unknown API key in a well-formed header.
    let mut u = BytesMut::new();
    u.put_i32(0);
    u.put_i16(9999);
    u.put_i16(0);
    u.put_i32(7);
    u.put_i16(-1);
    let len = (u.len() - 4) as i32;
    u[..4].copy_from_slice(&len.to_be_bytes());
    cases.push(("unknown api key", u.to_vec(), false));
    // 9. A valid request followed by garbage on the same connection: the valid one is answered
    //    (responses in order), then the connection closes.
    let mut vg = api_versions_v0_frame(9).to_vec();
    vg.extend_from_slice(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef]);
    cases.push(("valid request then garbage", vg, false));

    for (i, (name, bytes, half_close)) in cases.into_iter().enumerate() {
        let mut bad = raw::connect(&bootstrap).await;
        bad.write_all(&bytes)
            .await
            .unwrap_or_else(|e| panic!("{name}: write: {e}"));
        if half_close {
            bad.shutdown().await.ok();
        }
        assert!(
            raw::closed_by_peer(&mut bad).await,
            "{name}: broker kept the connection open"
        );
        assert_connection_works(&mut good, 100 + i as i32).await;
    }
    // Real client still served.
    produce_works(&bootstrap, "survivor").await;
    assert_eq!(read_all(&bootstrap, "survivor", 0).await.len(), 1);

    // Many bad connections at once do not hurt either.
    let mut handles = vec![];
    for i in 0..20u32 {
        let b = bootstrap.clone();
        handles.push(tokio::spawn(async move {
            let mut s = raw::connect(&b).await;
            let _ = s.write_all(&(0x7000_0000u32 + i).to_be_bytes()).await;
            raw::closed_by_peer(&mut s).await
        }));
    }
    for h in handles {
        assert!(
            h.await.expect("task"),
            "oversize-prefix connection stayed open"
        );
    }
    assert_connection_works(&mut good, 500).await;
    produce_works(&bootstrap, "survivor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_versions_unsupported_version_gets_v0_fallback() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let mut s = raw::connect(&bootstrap).await;
    // ApiVersions v99, header v2 + a v3-style body (what a newer client would send).
    let mut f = BytesMut::new();
    f.put_i32(0);
    f.put_i16(ApiKey::ApiVersions as i16);
    f.put_i16(99);
    f.put_i32(4242);
    f.put_i16(4);
    f.put_slice(b"test");
    f.put_u8(0); // header tagged fields
    f.put_u8(5); // compact string "rust" (len + 1)
    f.put_slice(b"rust");
    f.put_u8(4); // compact string "1.0"
    f.put_slice(b"1.0");
    f.put_u8(0); // body tagged fields
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&f).await.expect("write");
    let mut body = tokio::time::timeout(WAIT, raw::read_frame(&mut s))
        .await
        .expect("no response to ApiVersions v99")
        .expect("read");
    // v0 response: header v0 (correlation id only), body v0.
    let h = ResponseHeader::decode(&mut body, 0).expect("header");
    assert_eq!(h.correlation_id, 4242);
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    let find = |k: ApiKey| {
        resp.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    for k in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::ListOffsets,
    ] {
        assert!(
            find(k).is_some(),
            "{k:?} missing from fallback list: {:?}",
            resp.api_keys
        );
    }
    let (min, max) = find(ApiKey::ApiVersions).unwrap();
    assert!(min == 0 && max >= 3, "ApiVersions range {min}..{max}");

    // The connection stays usable: the client retries with a supported version.
    let resp: ApiVersionsResponse = raw::call(&mut s, ApiKey::ApiVersions, 3, 4243, &{
        let mut r = ApiVersionsRequest::default();
        r.client_software_name = StrBytes::from_static_str("rust");
        r.client_software_version = StrBytes::from_static_str("1.0");
        r
    })
    .await;
    assert_eq!(resp.error_code, 0);

    // And a normal Metadata request on the same connection works.
    let md: MetadataResponse = raw::call(
        &mut s,
        ApiKey::Metadata,
        12,
        4244,
        &MetadataRequest::default(),
    )
    .await;
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].port, i32::from(broker.port));
}
