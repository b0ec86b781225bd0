//! Coordinator tests driven with kafka-protocol request structs (no sockets).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::*;

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        max_metadata_bytes: 4096,
    }
}

fn st(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn client(version: i16) -> ClientInfo {
    ClientInfo {
        version,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn join_req(group: &str, member: &str, session_ms: i32, meta: &'static [u8]) -> JoinGroupRequest {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = st("range");
    p.metadata = Bytes::from_static(meta);
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(st(group));
    r.member_id = st(member);
    r.session_timeout_ms = session_ms;
    r.rebalance_timeout_ms = 2_000;
    r.protocol_type = st("consumer");
    r.protocols = vec![p];
    r
}

async fn join(c: &GroupCoordinator, group: &str, member: &str, v: i16) -> JoinGroupResponse {
    c.join_group(join_req(group, member, 10_000, b"m"), client(v))
        .await
}

/// Two-step join; returns the member id and the completed join response.
async fn join_new(c: &Arc<GroupCoordinator>, group: &str) -> (String, JoinGroupResponse) {
    let first = join(c, group, "", 9).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let id = first.member_id.to_string();
    assert!(id.starts_with("c-"));
    let r = join(c, group, &id, 9).await;
    (id, r)
}

fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default();
    r.group_id = GroupId(st(group));
    r.member_id = st(member);
    r.generation_id = generation;
    r.assignments = assignments
        .iter()
        .map(|(m, a)| {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = st(m);
            x.assignment = Bytes::from_static(a);
            x
        })
        .collect();
    r
}

fn hb(c: &GroupCoordinator, group: &str, member: &str, generation: i32) -> i16 {
    let mut r = HeartbeatRequest::default();
    r.group_id = GroupId(st(group));
    r.member_id = st(member);
    r.generation_id = generation;
    c.heartbeat(r, 4).error_code
}

fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    parts: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(st(group));
    r.member_id = st(member);
    r.generation_id_or_member_epoch = generation;
    for (t, p, o) in parts {
        let mut part = OffsetCommitRequestPartition::default();
        part.partition_index = *p;
        part.committed_offset = *o;
        part.committed_metadata = Some(st("meta"));
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = TopicName(st(t));
        topic.partitions = vec![part];
        r.topics.push(topic);
    }
    r
}

fn exists(topic: &str, partition: i32) -> bool {
    topic != "missing" && (0..4).contains(&partition)
}

async fn commit(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    parts: &[(&str, i32, i64)],
) -> Vec<i16> {
    let r = c
        .offset_commit(commit_req(group, member, generation, parts), 8, &exists)
        .await;
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

fn fetch(
    c: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, i32)]>,
) -> Vec<(String, i32, i64, String)> {
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(st(group));
    r.topics = topics.map(|ts| {
        ts.iter()
            .map(|(t, p)| {
                let mut x = OffsetFetchRequestTopic::default();
                x.name = TopicName(st(t));
                x.partition_indexes = vec![*p];
                x
            })
            .collect()
    });
    let resp = c.offset_fetch(r, 7);
    assert_eq!(resp.error_code, 0);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn two_step_join_single_member_becomes_stable() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let (id, r) = join_new(&c, "g").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader.to_string(), id);
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    let s = c.sync_group(sync_req("g", &id, 1, &[(&id, b"A")]), 5).await;
    assert_eq!(s.error_code, 0);
    assert_eq!(&s.assignment[..], b"A");
    assert_eq!(s.protocol_name.as_deref(), Some("range"));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(hb(&c, "g", &id, 1), 0);
    c.shutdown().unwrap();
}

#[tokio::test]
async fn old_versions_join_directly_and_encode_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let r = join(&c, "g", "", 0).await;
    assert_eq!(r.error_code, 0);
    assert!(!r.member_id.is_empty());
    assert_eq!(r.protocol_type, None, "protocol_type only exists in v7+");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    // Must encode at every version the response is built for.
    use kafka_protocol::protocol::Encodable;
    for v in 0..=9 {
        let mut buf = bytes::BytesMut::new();
        join_response(JoinOutcome::error("", ResponseError::MemberIdRequired), v)
            .encode(&mut buf, v)
            .unwrap();
    }
    c.shutdown().unwrap();
}

#[tokio::test]
async fn invalid_requests() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    assert_eq!(
        join(&c, "", "", 9).await.error_code,
        ResponseError::InvalidGroupId.code()
    );
    let r = c.join_group(join_req("g", "", 5, b"m"), client(9)).await;
    assert_eq!(r.error_code, ResponseError::InvalidSessionTimeout.code());
    assert_eq!(
        join(&c, "g", "bogus", 9).await.error_code,
        ResponseError::UnknownMemberId.code()
    );
    // Different protocol type than the group's.
    let (_id, _) = join_new(&c, "g").await;
    let mut other = join_req("g", "", 10_000, b"m");
    other.protocol_type = st("connect");
    let r = c.join_group(other, client(3)).await;
    assert_eq!(
        r.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    c.shutdown().unwrap();
}

#[tokio::test]
async fn three_members_then_one_leaves_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = cfg();
    config.initial_rebalance_delay = Duration::from_millis(100);
    let c = GroupCoordinator::open(dir.path(), config).unwrap();
    // Get three member ids, then join concurrently; the initial delay gathers them in one round.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = join(&c, "g", "", 9).await;
        ids.push(r.member_id.to_string());
    }
    let futs: Vec<_> = ids
        .iter()
        .map(|id| c.join_group(join_req("g", id, 10_000, b"m"), client(9)))
        .collect();
    let rs = futures::future::join_all(futs).await;
    assert!(rs.iter().all(|r| r.error_code == 0 && r.generation_id == 1));
    let leader = rs[0].leader.to_string();
    assert_eq!(leader, ids[0], "first to join leads");
    assert_eq!(rs.iter().filter(|r| !r.members.is_empty()).count(), 1);
    assert_eq!(rs[0].members.len(), 3);

    // Followers sync first and wait; the leader's sync releases them.
    let f1 = c.sync_group(sync_req("g", &ids[1], 1, &[]), 5);
    let f2 = c.sync_group(sync_req("g", &ids[2], 1, &[]), 5);
    let fl = c.sync_group(
        sync_req(
            "g",
            &ids[0],
            1,
            &[(&ids[0], b"0"), (&ids[1], b"1"), (&ids[2], b"2")],
        ),
        5,
    );
    let (s1, s2, sl) = tokio::join!(f1, f2, fl);
    assert_eq!(
        (&s1.assignment[..], &s2.assignment[..], &sl.assignment[..]),
        (&b"1"[..], &b"2"[..], &b"0"[..])
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // Member 2 leaves (v3 batch form).
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(st("g"));
    let mut mi = MemberIdentity::default();
    mi.member_id = st(&ids[2]);
    let mut unknown = MemberIdentity::default();
    unknown.member_id = st("nobody");
    leave.members = vec![mi, unknown];
    let lr = c.leave_group(leave, 3);
    assert_eq!(lr.error_code, 0);
    assert_eq!(lr.members[0].error_code, 0);
    assert_eq!(
        lr.members[1].error_code,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));

    // The others learn through heartbeats and rejoin; generation 2.
    assert_eq!(
        hb(&c, "g", &ids[0], 1),
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(
        hb(&c, "g", &ids[2], 1),
        ResponseError::UnknownMemberId.code()
    );
    let (r0, r1) = tokio::join!(
        c.join_group(join_req("g", &ids[0], 10_000, b"m"), client(9)),
        c.join_group(join_req("g", &ids[1], 10_000, b"m"), client(9)),
    );
    assert_eq!((r0.error_code, r1.error_code), (0, 0));
    assert_eq!((r0.generation_id, r1.generation_id), (2, 2));
    assert_eq!(r0.members.len(), 2);
    // A sync with the old generation is refused.
    let old = c.sync_group(sync_req("g", &ids[1], 1, &[]), 5).await;
    assert_eq!(old.error_code, ResponseError::IllegalGeneration.code());
    let (s0, s1) = tokio::join!(
        c.sync_group(
            sync_req("g", &ids[0], 2, &[(&ids[0], b"x"), (&ids[1], b"y")]),
            5
        ),
        c.sync_group(sync_req("g", &ids[1], 2, &[]), 5),
    );
    assert_eq!(
        (&s0.assignment[..], &s1.assignment[..]),
        (&b"x"[..], &b"y"[..])
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    c.shutdown().unwrap();
}

#[tokio::test]
async fn heartbeat_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    assert_eq!(
        hb(&c, "nope", "m", 1),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(hb(&c, "", "m", 1), ResponseError::InvalidGroupId.code());
    let (id, r) = join_new(&c, "g").await;
    // CompletingRebalance: heartbeat fine, sync from wrong member / generation refused.
    assert_eq!(hb(&c, "g", &id, r.generation_id), 0);
    assert_eq!(hb(&c, "g", &id, 7), ResponseError::IllegalGeneration.code());
    assert_eq!(
        hb(&c, "g", "other", 1),
        ResponseError::UnknownMemberId.code()
    );
    let s = c.sync_group(sync_req("g", "other", 1, &[]), 3).await;
    assert_eq!(s.error_code, ResponseError::UnknownMemberId.code());
    // A new member's join puts the group into PreparingRebalance.
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        c2.join_group(join_req("g", "", 10_000, b"m"), client(3))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        hb(&c, "g", &id, 1),
        ResponseError::RebalanceInProgress.code()
    );
    let s = c.sync_group(sync_req("g", &id, 1, &[]), 3).await;
    assert_eq!(s.error_code, ResponseError::RebalanceInProgress.code());
    let r1 = join(&c, "g", &id, 3).await;
    let r2 = pending.await.unwrap();
    assert_eq!((r1.error_code, r2.error_code, r1.generation_id), (0, 0, 2));
    c.shutdown().unwrap();
}

#[tokio::test]
async fn session_expiry_removes_member() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let first = join(&c, "g", "", 9).await;
    let id = first.member_id.to_string();
    let r = c.join_group(join_req("g", &id, 200, b"m"), client(9)).await;
    assert_eq!(r.error_code, 0);
    let s = c.sync_group(sync_req("g", &id, 1, &[(&id, b"a")]), 5).await;
    assert_eq!(s.error_code, 0);
    // Heartbeats keep it alive past one session timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(hb(&c, "g", &id, 1), 0);
    }
    // ...silence expires it and the group goes Empty (new generation).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(hb(&c, "g", &id, 1), ResponseError::UnknownMemberId.code());
    c.shutdown().unwrap();
}

#[tokio::test]
async fn member_not_rejoining_is_dropped_after_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let mut a = join_req("g", "", 10_000, b"m");
    a.rebalance_timeout_ms = 200;
    let a = c.join_group(a, client(3)).await;
    let a_id = a.member_id.to_string();
    c.sync_group(sync_req("g", &a_id, 1, &[]), 3).await;
    // B joins; A never rejoins → after A's rebalance timeout B's join completes alone.
    let mut b = join_req("g", "", 10_000, b"m");
    b.rebalance_timeout_ms = 200;
    let started = std::time::Instant::now();
    let b = c.join_group(b, client(3)).await;
    assert_eq!(b.error_code, 0);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(b.generation_id, 2);
    assert_eq!(b.leader, b.member_id);
    assert_eq!(b.members.len(), 1);
    c.shutdown().unwrap();
}

#[tokio::test]
async fn offsets_round_trip_and_survive_reopen_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
        // Simple (standalone) commit creates the group Empty.
        let codes = commit(
            &c,
            "g",
            "",
            -1,
            &[("t", 0, 42), ("t", 1, 7), ("missing", 0, 1), ("t", 99, 1)],
        )
        .await;
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(codes, vec![0, 0, unknown, unknown]);
        assert_eq!(c.group_state("g"), Some(GroupState::Empty));
        let got = fetch(&c, "g", Some(&[("t", 0), ("t", 2)]));
        assert_eq!(
            got,
            vec![
                ("t".into(), 0, 42, "meta".into()),
                ("t".into(), 2, -1, "".into())
            ]
        );
        // Dropped without shutdown: simulates a crash after the acknowledged commit.
        drop(c);
    }
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    let all = fetch(&c, "g", None);
    assert_eq!(
        all,
        vec![
            ("t".into(), 0, 42, "meta".into()),
            ("t".into(), 1, 7, "meta".into())
        ]
    );
    // Unknown group: -1 with no error.
    assert_eq!(
        fetch(&c, "other", Some(&[("t", 0)])),
        vec![("t".into(), 0, -1, "".into())]
    );
    // v8 multi-group.
    let mut r = OffsetFetchRequest::default();
    let mut g1 = OffsetFetchRequestGroup::default();
    g1.group_id = GroupId(st("g"));
    g1.topics = None;
    let mut g2 = OffsetFetchRequestGroup::default();
    g2.group_id = GroupId(st("other"));
    g2.topics = Some(vec![]);
    r.groups = vec![g1, g2];
    let resp = c.offset_fetch(r, 8);
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions[1].committed_offset, 7);
    assert!(resp.groups[1].topics.is_empty());
    c.shutdown().unwrap();
}

#[tokio::test]
async fn commit_membership_validation() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    // Unknown group with a generation: ILLEGAL_GENERATION.
    assert_eq!(
        commit(&c, "g", "m", 3, &[("t", 0, 1)]).await,
        vec![ResponseError::IllegalGeneration.code()]
    );
    let (id, _) = join_new(&c, "g").await;
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    assert_eq!(
        commit(&c, "g", &id, 1, &[("t", 0, 1)]).await,
        vec![ResponseError::RebalanceInProgress.code()]
    );
    c.sync_group(sync_req("g", &id, 1, &[]), 3).await;
    assert_eq!(commit(&c, "g", &id, 1, &[("t", 0, 5)]).await, vec![0]);
    assert_eq!(
        commit(&c, "g", &id, 2, &[("t", 0, 1)]).await,
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        commit(&c, "g", "x", 1, &[("t", 0, 1)]).await,
        vec![ResponseError::UnknownMemberId.code()]
    );
    // Simple commit to a group with members is refused.
    assert_eq!(
        commit(&c, "g", "", -1, &[("t", 0, 1)]).await,
        vec![ResponseError::UnknownMemberId.code()]
    );
    assert_eq!(fetch(&c, "g", Some(&[("t", 0)]))[0].2, 5);
    // Oversized metadata.
    let mut req = commit_req("g", &id, 1, &[("t", 1, 1)]);
    req.topics[0].partitions[0].committed_metadata = Some(st(&"x".repeat(5000)));
    let r = c.offset_commit(req, 8, &exists).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::OffsetMetadataTooLarge.code()
    );
    c.shutdown().unwrap();
}

#[tokio::test]
async fn delete_group_rules() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    commit(&c, "empty", "", -1, &[("t", 0, 3)]).await;
    let (_id, _) = join_new(&c, "busy").await;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![
        GroupId(st("empty")),
        GroupId(st("busy")),
        GroupId(st("ghost")),
    ];
    let r = c.delete_groups(req, 2).await;
    let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::NonEmptyGroup.code(),
            ResponseError::GroupIdNotFound.code()
        ]
    );
    assert_eq!(c.group_state("empty"), None);
    assert_eq!(fetch(&c, "empty", Some(&[("t", 0)]))[0].2, -1);
    drop(c);
    // The tombstone is durable.
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    assert_eq!(c.group_state("empty"), None);
    assert!(fetch(&c, "empty", None).is_empty());
    c.shutdown().unwrap();
}

#[tokio::test]
async fn describe_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    commit(&c, "simple", "", -1, &[("t", 0, 3)]).await;
    let (id, _) = join_new(&c, "g").await;
    c.sync_group(sync_req("g", &id, 1, &[(&id, b"assign")]), 5)
        .await;

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![
        GroupId(st("g")),
        GroupId(st("simple")),
        GroupId(st("ghost")),
    ];
    let r = c.describe_groups(req, 5);
    let g = &r.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        (0, "Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.to_string(), id);
    assert_eq!(g.members[0].client_id.as_str(), "c");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(&g.members[0].member_metadata[..], b"m");
    assert_eq!(&g.members[0].member_assignment[..], b"assign");
    assert_eq!(r.groups[1].group_state.as_str(), "Empty");
    assert_eq!(
        (r.groups[2].error_code, r.groups[2].group_state.as_str()),
        (0, "Dead")
    );

    let list = c.list_groups(ListGroupsRequest::default(), 4);
    let got: Vec<(String, String, String)> = list
        .groups
        .iter()
        .map(|l| {
            (
                l.group_id.0.to_string(),
                l.protocol_type.to_string(),
                l.group_state.to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("g".into(), "consumer".into(), "Stable".into()),
            ("simple".into(), "".into(), "Empty".into())
        ]
    );
    let mut filtered = ListGroupsRequest::default();
    filtered.states_filter = vec![st("stable")];
    assert_eq!(c.list_groups(filtered, 4).groups.len(), 1);
    // Older versions carry no state.
    assert_eq!(
        c.list_groups(ListGroupsRequest::default(), 3).groups[0]
            .group_state
            .as_str(),
        ""
    );
    c.shutdown().unwrap();
}

#[tokio::test]
async fn shutdown_answers_parked_joins_and_stops_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = cfg();
    config.initial_rebalance_delay = Duration::from_secs(30);
    let c = GroupCoordinator::open(dir.path(), config).unwrap();
    let c2 = c.clone();
    let parked = tokio::spawn(async move {
        c2.join_group(join_req("g", "", 10_000, b"m"), client(3))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.shutdown().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), parked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.error_code, ResponseError::NotCoordinator.code());
    assert!(c.timer.lock().is_none());
    assert_eq!(
        commit(&c, "g", "", -1, &[("t", 0, 1)]).await,
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
}

#[tokio::test]
async fn static_member_rejoin_replaces_old_id_without_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let mut req = join_req("g", "", 10_000, b"m");
    req.group_instance_id = Some(st("inst-1"));
    // Static members skip the MEMBER_ID_REQUIRED round.
    let r = c.join_group(req.clone(), client(9)).await;
    assert_eq!(r.error_code, 0);
    let old = r.member_id.to_string();
    assert!(old.starts_with("inst-1-"));
    c.sync_group(sync_req("g", &old, 1, &[(&old, b"a")]), 5)
        .await;
    // Restarted client: same instance id, no member id → new id, same generation, no rebalance.
    let r = c.join_group(req, client(9)).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    let new = r.member_id.to_string();
    assert_ne!(new, old);
    assert!(
        r.skip_assignment,
        "the static leader keeps the existing assignment"
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    let s = c.sync_group(sync_req("g", &new, 1, &[]), 5).await;
    assert_eq!(&s.assignment[..], b"a");
    // The old incarnation is fenced.
    let mut h = HeartbeatRequest::default();
    h.group_id = GroupId(st("g"));
    h.member_id = st(&old);
    h.generation_id = 1;
    h.group_instance_id = Some(st("inst-1"));
    assert_eq!(
        c.heartbeat(h, 4).error_code,
        ResponseError::FencedInstanceId.code()
    );
    // Admin removal by instance id (empty member id).
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(st("g"));
    let mut mi = MemberIdentity::default();
    mi.group_instance_id = Some(st("inst-1"));
    leave.members = vec![mi];
    assert_eq!(c.leave_group(leave, 4).members[0].error_code, 0);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    c.shutdown().unwrap();
}

#[tokio::test]
async fn leave_group_v0_reports_member_error_at_top_level() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), cfg()).unwrap();
    let r = join(&c, "g", "", 1).await;
    let id = r.member_id.to_string();
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(st("g"));
    leave.member_id = st("nobody");
    assert_eq!(
        c.leave_group(leave.clone(), 0).error_code,
        ResponseError::UnknownMemberId.code()
    );
    leave.member_id = st(&id);
    let lr = c.leave_group(leave, 2);
    assert_eq!(lr.error_code, 0);
    assert!(lr.members.is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    c.shutdown().unwrap();
}
