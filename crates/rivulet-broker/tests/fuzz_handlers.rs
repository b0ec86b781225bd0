//! Issue 12: requests through the whole handler path, not only the decoder. A proptest builds
//! well-formed requests of the APIs the outside probe used (ApiVersions, Metadata, Produce
//! v3–v10 with every codec and with forged record sections, Fetch, JoinGroup, SyncGroup,
//! OffsetCommit, Heartbeat, CreateTopics, CreatePartitions, DeleteTopics, InitProducerId,
//! AlterConfigs) with random and extreme fields, mutates their bytes (flips, cuts, junk, a
//! lying length prefix), and sends each to one real broker with a small data directory and
//! small limits. Properties, per case: the request is answered or its connection closed within
//! [`CASE_BOUND`] (an ApiVersions sent right behind it must come back, unless the connection is
//! closed first); a fresh client is answered within a second. After all cases the broker still
//! produces and fetches. A modest case count keeps it in the normal test suite;
//! `PROPTEST_CASES=5000` runs more. `fuzz/fuzz_targets/broker_requests.rs` is the cargo-fuzz
//! version.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::{self, call, connect, forge, produce};
use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rivulet_broker::codec::{decode_request, supported_range, Decoded};
use rivulet_broker::BrokerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Longest a case may take: the broker's request timeout here is 1 s, group waits are bounded
/// by a 3 s session timeout, fetch waits by the cases' 500 ms.
const CASE_BOUND: Duration = Duration::from_secs(10);
/// A topic with records written before the cases.
const SEEDED: &str = "seeded-before-the-cases";
/// Correlation id of the ApiVersions sent behind each case.
const MARKER: i32 = 0x7fff_0001;

fn config(c: &mut BrokerConfig) {
    *c = c.clone().with_small_limits();
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Flip(Vec<(usize, u8)>),
    Cut(usize),
    Junk(Vec<u8>),
    /// Replace the length prefix.
    Length(i32),
}

#[derive(Debug, Clone)]
struct Case {
    api: usize,
    version: i16,
    name: String,
    number: i64,
    codec: usize,
    forged: Option<Vec<u8>>,
    mutation: Mutation,
}

const APIS: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::OffsetCommit,
    ApiKey::Heartbeat,
    ApiKey::CreateTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::AlterConfigs,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
];

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-1i64),
        Just(0),
        Just(1),
        Just(3),
        Just(9),
        Just(i64::from(i32::MAX)),
        Just(100_000),
        -5i64..50,
        any::<i64>(),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..APIS.len(),
        0i16..20,
        prop_oneof![
            Just("fz".to_string()),
            Just("fz2".to_string()),
            "[a-z]{1,6}",
            "[ -~\n\u{1b}]{0,12}",
        ],
        number(),
        0usize..5,
        proptest::option::weighted(0.3, proptest::collection::vec(any::<u8>(), 0..200)),
        prop_oneof![
            4 => Just(Mutation::None),
            3 => proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4).prop_map(Mutation::Flip),
            2 => any::<usize>().prop_map(Mutation::Cut),
            1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Junk),
            1 => prop_oneof![Just(-1i32), Just(0), Just(7), Just(1 << 20), Just(i32::MAX), any::<i32>()].prop_map(Mutation::Length),
        ],
    )
        .prop_map(|(api, v, name, number, codec, forged, mutation)| {
            let key = APIS[api];
            let (min, max) = supported_range(key).unwrap();
            let min = if key == ApiKey::Produce { 3 } else { min };
            let max = if key == ApiKey::Produce { 10 } else { max };
            Case {
                api,
                version: min + v % (max - min + 1),
                name,
                number,
                codec,
                forged,
                mutation,
            }
        })
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The case's request, encoded (None if the version cannot carry the fields set).
fn encode(c: &Case) -> Option<BytesMut> {
    let key = APIS[c.api];
    let v = c.version;
    let n32 = c.number.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    let topic = TopicName(StrBytes::from_string(c.name.clone()));
    let group = GroupId(StrBytes::from_string(format!("{}-g", c.name)));
    let frame = |body: &dyn Fn(&mut BytesMut) -> Result<(), ()>| -> Option<BytesMut> {
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = v;
        header.correlation_id = 11;
        header.client_id = Some(StrBytes::from_string(c.name.clone()));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, key.request_header_version(v))
            .ok()?;
        body(&mut buf).ok()?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Some(buf)
    };
    match key {
        ApiKey::ApiVersions => frame(&|b| enc(&ApiVersionsRequest::default(), b, v)),
        ApiKey::Metadata => frame(&|b| {
            let mut t = MetadataRequestTopic::default();
            t.name = Some(topic.clone());
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            // Only v4+ can say "do not create".
            r.allow_auto_topic_creation = v < 4 || c.number % 2 == 0;
            enc(&r, b, v)
        }),
        ApiKey::Produce => frame(&|b| {
            let records = match &c.forged {
                Some(junk) => forge(
                    junk,
                    (c.codec % 5) as i16,
                    (c.number.rem_euclid(5) + 1) as i32,
                ),
                None => raw::batch(
                    &[
                        c.name.as_bytes().to_vec(),
                        vec![b'v'; (c.number.rem_euclid(3000)) as usize],
                    ],
                    CODECS[c.codec],
                ),
            };
            let mut p = PartitionProduceData::default();
            p.index = (c.number.rem_euclid(3)) as i32;
            p.records = Some(records);
            let mut t = TopicProduceData::default();
            t.name = topic.clone();
            t.partition_data = vec![p];
            let mut r = ProduceRequest::default();
            r.acks = [-1i16, 0, 1][c.codec % 3];
            r.timeout_ms = 5_000;
            r.topic_data = vec![t];
            enc(&r, b, v)
        }),
        ApiKey::Fetch => frame(&|b| {
            let mut p = FetchPartition::default();
            p.partition = (c.number.rem_euclid(3)) as i32;
            p.fetch_offset = c.number;
            p.partition_max_bytes = n32;
            let mut t = FetchTopic::default();
            t.topic = topic.clone();
            t.partitions = vec![p];
            let mut r = FetchRequest::default();
            r.replica_id = BrokerId(-1);
            r.max_wait_ms = (c.number.rem_euclid(500)) as i32;
            r.min_bytes = n32;
            r.max_bytes = n32;
            r.topics = vec![t];
            enc(&r, b, v)
        }),
        ApiKey::JoinGroup => frame(&|b| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = StrBytes::from_static_str("range");
            p.metadata = Bytes::from(c.name.clone().into_bytes());
            let mut r = JoinGroupRequest::default();
            r.group_id = group.clone();
            r.session_timeout_ms = 1_000 + (c.number.rem_euclid(2_000)) as i32;
            if v >= 1 {
                r.rebalance_timeout_ms = 1_000 + (c.number.rem_euclid(2_000)) as i32;
            }
            r.member_id = StrBytes::from_string(if c.number % 2 == 0 {
                String::new()
            } else {
                c.name.clone()
            });
            r.protocol_type = StrBytes::from_static_str("consumer");
            r.protocols = vec![p];
            enc(&r, b, v)
        }),
        ApiKey::SyncGroup => frame(&|b| {
            let mut r = SyncGroupRequest::default();
            r.group_id = group.clone();
            r.generation_id = n32;
            r.member_id = StrBytes::from_string(c.name.clone());
            enc(&r, b, v)
        }),
        ApiKey::OffsetCommit => frame(&|b| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = (c.number.rem_euclid(3)) as i32;
            p.committed_offset = c.number;
            let mut t = OffsetCommitRequestTopic::default();
            t.name = topic.clone();
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = group.clone();
            r.generation_id_or_member_epoch = -1;
            r.topics = vec![t];
            enc(&r, b, v)
        }),
        ApiKey::Heartbeat => frame(&|b| {
            let mut r = HeartbeatRequest::default();
            r.group_id = group.clone();
            r.generation_id = n32;
            r.member_id = StrBytes::from_string(c.name.clone());
            enc(&r, b, v)
        }),
        ApiKey::CreateTopics => frame(&|b| {
            let mut t = CreatableTopic::default();
            t.name = topic.clone();
            t.num_partitions = n32;
            t.replication_factor = if c.number % 5 == 0 { 3 } else { 1 };
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 5_000;
            enc(&r, b, v)
        }),
        ApiKey::CreatePartitions => frame(&|b| {
            let mut t = CreatePartitionsTopic::default();
            t.name = topic.clone();
            t.count = n32;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 5_000;
            enc(&r, b, v)
        }),
        ApiKey::DeleteTopics => frame(&|b| {
            let mut r = DeleteTopicsRequest::default();
            if v >= 6 {
                let mut t =
                    kafka_protocol::messages::delete_topics_request::DeleteTopicState::default();
                t.name = Some(topic.clone());
                r.topics = vec![t];
            } else {
                r.topic_names = vec![topic.clone()];
            }
            r.timeout_ms = 5_000;
            enc(&r, b, v)
        }),
        ApiKey::InitProducerId => frame(&|b| {
            let mut r = InitProducerIdRequest::default();
            if c.number % 3 == 0 {
                r.transactional_id = Some(TransactionalId(StrBytes::from_string(c.name.clone())));
            }
            r.transaction_timeout_ms = n32;
            enc(&r, b, v)
        }),
        ApiKey::AlterConfigs => frame(&|b| {
            let mut cfg = AlterableConfig::default();
            cfg.name = StrBytes::from_static_str("retention.ms");
            cfg.value = Some(StrBytes::from_string(c.number.to_string()));
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_string(c.name.clone());
            res.configs = vec![cfg];
            let mut r = AlterConfigsRequest::default();
            r.resources = vec![res];
            enc(&r, b, v)
        }),
        // Transactions: ids that exist (the name, made transactional by InitProducerId cases)
        // or not, producer ids and epochs from the number, operations in any order.
        ApiKey::AddPartitionsToTxn => frame(&|b| {
            let mut t = kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
            t.name = topic.clone();
            t.partitions = vec![(c.number.rem_euclid(4)) as i32];
            let mut r = AddPartitionsToTxnRequest::default();
            r.v3_and_below_transactional_id =
                TransactionalId(StrBytes::from_string(c.name.clone()));
            r.v3_and_below_producer_id = ProducerId(c.number.rem_euclid(8));
            r.v3_and_below_producer_epoch = (c.number.rem_euclid(3)) as i16;
            r.v3_and_below_topics = vec![t];
            enc(&r, b, v)
        }),
        ApiKey::AddOffsetsToTxn => frame(&|b| {
            let mut r = AddOffsetsToTxnRequest::default();
            r.transactional_id = TransactionalId(StrBytes::from_string(c.name.clone()));
            r.producer_id = ProducerId(c.number.rem_euclid(8));
            r.producer_epoch = (c.number.rem_euclid(3)) as i16;
            r.group_id = group.clone();
            enc(&r, b, v)
        }),
        ApiKey::TxnOffsetCommit => frame(&|b| {
            let mut p = kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
            p.partition_index = (c.number.rem_euclid(3)) as i32;
            p.committed_offset = c.number;
            let mut t = kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
            t.name = topic.clone();
            t.partitions = vec![p];
            let mut r = TxnOffsetCommitRequest::default();
            r.transactional_id = TransactionalId(StrBytes::from_string(c.name.clone()));
            r.group_id = group.clone();
            r.producer_id = ProducerId(c.number.rem_euclid(8));
            r.producer_epoch = (c.number.rem_euclid(3)) as i16;
            r.generation_id = n32;
            r.topics = vec![t];
            enc(&r, b, v)
        }),
        ApiKey::EndTxn => frame(&|b| {
            let mut r = EndTxnRequest::default();
            r.transactional_id = TransactionalId(StrBytes::from_string(c.name.clone()));
            r.producer_id = ProducerId(c.number.rem_euclid(8));
            r.producer_epoch = (c.number.rem_euclid(3)) as i16;
            r.committed = c.number % 2 == 0;
            enc(&r, b, v)
        }),
        ApiKey::DescribeTransactions => frame(&|b| {
            let mut r = DescribeTransactionsRequest::default();
            r.transactional_ids = vec![TransactionalId(StrBytes::from_string(c.name.clone()))];
            enc(&r, b, v)
        }),
        ApiKey::ListTransactions => frame(&|b| {
            let mut r = ListTransactionsRequest::default();
            r.state_filters = vec![StrBytes::from_string(c.name.clone())];
            r.duration_filter = c.number;
            enc(&r, b, v)
        }),
        ApiKey::SaslHandshake => frame(&|b| {
            let mut r = SaslHandshakeRequest::default();
            r.mechanism = StrBytes::from_string(c.name.clone());
            enc(&r, b, v)
        }),
        ApiKey::SaslAuthenticate => frame(&|b| {
            let mut r = SaslAuthenticateRequest::default();
            r.auth_bytes = bytes::Bytes::from(
                c.forged
                    .clone()
                    .unwrap_or_else(|| c.name.clone().into_bytes()),
            );
            enc(&r, b, v)
        }),
        ApiKey::CreateAcls => frame(&|b| {
            let mut a = kafka_protocol::messages::create_acls_request::AclCreation::default();
            a.resource_type = c.number.rem_euclid(7) as i8;
            a.resource_name = StrBytes::from_string(c.name.clone());
            a.resource_pattern_type = c.number.rem_euclid(6) as i8;
            a.principal = StrBytes::from_string(format!("User:{}", c.name));
            a.host = StrBytes::from_static_str("*");
            a.operation = c.number.rem_euclid(14) as i8;
            a.permission_type = c.number.rem_euclid(4) as i8;
            let mut r = CreateAclsRequest::default();
            r.creations = vec![a];
            enc(&r, b, v)
        }),
        ApiKey::DescribeAcls => frame(&|b| {
            let mut r = DescribeAclsRequest::default();
            r.resource_type_filter = c.number.rem_euclid(7) as i8;
            r.resource_name_filter = Some(StrBytes::from_string(c.name.clone()));
            r.pattern_type_filter = c.number.rem_euclid(6) as i8;
            r.operation = 1;
            r.permission_type = 1;
            enc(&r, b, v)
        }),
        ApiKey::DeleteAcls => frame(&|b| {
            let mut f = kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default();
            f.resource_type_filter = c.number.rem_euclid(7) as i8;
            f.resource_name_filter = Some(StrBytes::from_string(c.name.clone()));
            f.pattern_type_filter = 1;
            f.operation = c.number.rem_euclid(14) as i8;
            f.permission_type = 1;
            let mut r = DeleteAclsRequest::default();
            r.filters = vec![f];
            enc(&r, b, v)
        }),
        ApiKey::DescribeUserScramCredentials => frame(&|b| {
            let mut u = kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default();
            u.name = StrBytes::from_string(c.name.clone());
            let mut r = DescribeUserScramCredentialsRequest::default();
            r.users = Some(vec![u]);
            enc(&r, b, v)
        }),
        ApiKey::AlterUserScramCredentials => frame(&|b| {
            let mut u = kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
            u.name = StrBytes::from_string(c.name.clone());
            u.mechanism = c.number.rem_euclid(4) as i8;
            u.iterations = c.number as i32;
            u.salt = bytes::Bytes::from(c.name.clone().into_bytes());
            u.salted_password = bytes::Bytes::from(c.forged.clone().unwrap_or_default());
            let mut r = AlterUserScramCredentialsRequest::default();
            r.upsertions = vec![u];
            enc(&r, b, v)
        }),
        _ => None,
    }
}

/// Encoding errors only mean "this version cannot carry that field": the case is skipped.
fn enc<R: Encodable>(r: &R, b: &mut BytesMut, v: i16) -> Result<(), ()> {
    r.encode(b, v).map_err(|_| ())
}

fn mutate(mut f: BytesMut, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::None => {}
        Mutation::Flip(flips) => {
            for (i, b) in flips {
                // Leave the length prefix alone: that is the `Length` mutation.
                let n = f.len() - 4;
                f[4 + i % n] = *b;
            }
        }
        Mutation::Cut(at) => {
            let n = f.len() - 4;
            f.truncate(4 + at % n);
            let len = (f.len() - 4) as i32;
            f[..4].copy_from_slice(&len.to_be_bytes());
        }
        Mutation::Junk(j) => {
            f.extend_from_slice(j);
            let len = (f.len() - 4) as i32;
            f[..4].copy_from_slice(&len.to_be_bytes());
        }
        Mutation::Length(l) => f[..4].copy_from_slice(&l.to_be_bytes()),
    }
    f.to_vec()
}

/// Requests that may legitimately wait longer than the bound after a mutation (a long-poll
/// asking for a long wait, a join with a long rebalance timeout): not generated.
fn waits_long(bytes: &[u8]) -> bool {
    let Some(body) = bytes.get(4..) else {
        return false;
    };
    let Ok(len) = usize::try_from(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    else {
        return false;
    };
    if len != body.len() {
        return false;
    }
    match decode_request(Bytes::copy_from_slice(body)) {
        Ok(Decoded::Request { body, .. }) => match *body {
            RequestKind::Fetch(f) => f.max_wait_ms > 2_000,
            RequestKind::JoinGroup(j) => {
                j.rebalance_timeout_ms > 3_000 || j.session_timeout_ms > 3_000
            }
            _ => false,
        },
        _ => false,
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The ApiVersions behind it was answered (so the case was answered first, if it is
    /// answered at all: acks=0).
    Answered,
    /// The broker closed the connection.
    Closed,
}

/// Sends the case and an ApiVersions behind it; Ok if the broker answers that ApiVersions or
/// closes the connection within the bound.
async fn run_case(addr: &str, bytes: &[u8]) -> Result<Outcome, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let marker = raw::frame(
        ApiKey::ApiVersions,
        0,
        MARKER,
        &ApiVersionsRequest::default(),
    );
    let outcome = tokio::time::timeout(CASE_BOUND, async {
        // The broker may close before reading everything: write errors are an answer too.
        if s.write_all(bytes).await.is_err() || s.write_all(&marker).await.is_err() {
            return Ok(Outcome::Closed);
        }
        loop {
            match raw::read_frame(&mut s).await {
                Err(_) => return Ok(Outcome::Closed),
                Ok(frame) if frame.len() >= 4 && frame[..4] == MARKER.to_be_bytes() => {
                    return Ok(Outcome::Answered)
                }
                Ok(_) => continue, // the case's own response(s)
            }
        }
    })
    .await;
    match outcome {
        Ok(r) => r,
        Err(_) => Err(format!("neither answered nor closed within {CASE_BOUND:?}")),
    }
}

async fn lively(addr: &str) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(1), async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r: ApiVersionsResponse = call(
            &mut s,
            ApiKey::ApiVersions,
            3,
            1,
            &ApiVersionsRequest::default(),
        )
        .await;
        assert_eq!(r.error_code, 0);
    })
    .await
    .map_err(|_| "a fresh client was not answered within a second".to_string())
}

#[test]
fn requests_through_every_handler_are_answered_or_closed_in_time() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = rt.block_on(TestBroker::start_with(config));
    let addr = broker.bootstrap();
    rt.block_on(async {
        create_topic(&addr, "fz", 3, &[]).await;
        // Longer than any generated name: no case can delete or alter it.
        create_topic(&addr, SEEDED, 1, &[]).await;
        let mut s = connect(&addr).await;
        for i in 0..5 {
            let b = raw::batch(&[format!("seed-{i}").into_bytes()], Compression::None);
            assert_eq!(produce(&mut s, i, SEEDED, 0, b).await.0, 0);
        }
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let tally = std::sync::Mutex::new([0usize; 3]); // skipped, answered, closed
    let result = runner.run(&case(), |c| {
        let bump = |i: usize| tally.lock().unwrap()[i] += 1;
        let Some(frame) = encode(&c) else {
            bump(0);
            return Ok(());
        };
        let bytes = mutate(frame, &c.mutation);
        if waits_long(&bytes) {
            bump(0);
            return Ok(());
        }
        let outcome = rt
            .block_on(async {
                let o = run_case(&addr, &bytes).await?;
                lively(&addr).await.map(|()| o)
            })
            .map_err(|e| TestCaseError::fail(format!("{e} for {c:?}")))?;
        bump(if outcome == Outcome::Answered { 1 } else { 2 });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let [skipped, answered, closed] = *tally.lock().unwrap();
    println!("{answered} cases answered, {closed} closed, {skipped} not sent");
    // The cases must reach the handlers, not only the decoder.
    assert!(
        answered >= cases as usize / 3,
        "only {answered} of {cases} cases were answered"
    );
    assert!(closed >= 1, "no case was refused");
    // Still serving: a librdkafka producer and consumer on a new topic.
    rt.block_on(async {
        create_topic(&addr, "after-fuzz", 1, &[]).await;
        let p = producer(&addr);
        p.send(
            rdkafka::producer::FutureRecord::<str, str>::to("after-fuzz").payload("ok"),
            rdkafka::util::Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
        let msgs = read_partition(&addr, "after-fuzz", 0, 0, 1).await;
        assert_eq!(payload_str(&msgs[0]).as_deref(), Some("ok"));
        // Data written before the cases is intact.
        let seeded = read_partition(&addr, SEEDED, 0, 0, 5).await;
        assert_eq!(payload_str(&seeded[0]).as_deref(), Some("seed-0"));
    });
    drop(broker);
}
