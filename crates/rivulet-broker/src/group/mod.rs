//! The group coordinator: Kafka's classic consumer group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups, ListGroups, DeleteGroups) and durable committed
//! offsets (OffsetCommit, OffsetFetch).
//!
//! Layout:
//! - [`state`]: one group's state machine (`Group`), guarded by its own `parking_lot::Mutex`.
//! - `offsets`: the append-only, fsynced offsets log and its writer thread.
//! - this file: the group map, request-level validation, version-dependent response encoding and
//!   the timer task that fires rebalance / session deadlines.
//!
//! Each request method does all state changes synchronously (so requests on one connection take
//! effect in order) and returns a `'static` future that only waits — for a rebalance to finish
//! (`oneshot` from the group) or for an fsync (`oneshot` from the offsets writer). No lock is held
//! across an `.await`. Group membership is in memory only: after a restart members get
//! UNKNOWN_MEMBER_ID and rejoin, while committed offsets are replayed from disk.

pub(crate) mod offsets;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::{Mutex, RwLock};
use rivulet_log::Quoted;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use offsets::{OffsetEntry, OffsetStore, WriteOp};
use state::{Group, GroupState, JoinOutcome, JoinParams, Pending, SyncOutcome};

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members before completing.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
    pub max_metadata_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 1_800_000,
            max_metadata_bytes: 4096,
        }
    }
}

/// Who sent a JoinGroup (recorded on the member, shown by DescribeGroups).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub version: i16,
    pub client_id: String,
    /// As Kafka prints it, e.g. "/127.0.0.1".
    pub client_host: String,
}

/// Longest the timer task sleeps without a deadline (it also re-checks the coordinator is alive).
const MAX_TIMER_IDLE: Duration = Duration::from_secs(1);
/// DescribeGroups authorized_operations for a group when asked: READ | DELETE | DESCRIBE
/// (no ACLs here, so everything a group supports).
const GROUP_AUTHORIZED_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

type GroupRef = Arc<Mutex<Group>>;

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: RwLock<HashMap<String, GroupRef>>,
    store: OffsetStore,
    me: Weak<GroupCoordinator>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    timer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    timer_started: AtomicBool,
    shut: AtomicBool,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .field("groups", &self.groups.read().len())
            .finish_non_exhaustive()
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl GroupCoordinator {
    /// Opens the coordinator, loading committed offsets from `<data_dir>/__consumer_offsets/`.
    /// Groups that have offsets come back in state Empty. The timer task starts here when called
    /// inside a tokio runtime, otherwise on the first request.
    pub fn open(
        data_dir: &Path,
        config: GroupConfig,
    ) -> Result<Arc<GroupCoordinator>, BrokerError> {
        let store = OffsetStore::open(data_dir)?;
        let groups: HashMap<String, GroupRef> = store
            .groups()
            .into_iter()
            .map(|g| (g.clone(), Arc::new(Mutex::new(Group::new(g)))))
            .collect();
        let coordinator = Arc::new_cyclic(|me| GroupCoordinator {
            config,
            groups: RwLock::new(groups),
            store,
            me: me.clone(),
            wake: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
            timer: Mutex::new(None),
            timer_started: AtomicBool::new(false),
            shut: AtomicBool::new(false),
        });
        coordinator.ensure_timer();
        Ok(coordinator)
    }

    /// Stops the timer task, answers parked join/sync requests with NOT_COORDINATOR and flushes
    /// and closes the offset store (everything acknowledged is already fsynced).
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        self.shut.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        if let Some(h) = self.timer.lock().take() {
            h.abort();
        }
        for g in self.snapshot() {
            g.lock().fail_waiters(ResponseError::NotCoordinator);
        }
        self.store.shutdown()
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn is_shut(&self) -> bool {
        self.shut.load(Ordering::SeqCst)
    }

    fn ensure_timer(&self) {
        if self.timer_started.load(Ordering::Acquire) {
            return;
        }
        let mut slot = self.timer.lock();
        if slot.is_some() || self.is_shut() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (me, wake, cancel) = (self.me.clone(), self.wake.clone(), self.cancel.clone());
        *slot = Some(handle.spawn(timer_loop(me, wake, cancel)));
        self.timer_started.store(true, Ordering::Release);
    }

    /// Called after state changes that may have introduced an earlier deadline.
    fn poke(&self) {
        self.ensure_timer();
        self.wake.notify_one();
    }

    fn snapshot(&self) -> Vec<GroupRef> {
        self.groups.read().values().cloned().collect()
    }

    fn group(&self, id: &str) -> Option<GroupRef> {
        self.groups.read().get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> GroupRef {
        if let Some(g) = self.group(id) {
            return g;
        }
        self.groups
            .write()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id.to_string()))))
            .clone()
    }

    /// Fires every group's expired deadlines; returns the earliest next one.
    fn run_timers(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for g in self.snapshot() {
            if let Some(d) = g.lock().on_timer(now, &self.config) {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    // ---------------------------------------------------------------- JoinGroup

    /// JoinGroup (v0–9). The future resolves when the rebalance's join phase completes.
    pub fn join_group(
        &self,
        req: JoinGroupRequest,
        client: ClientInfo,
    ) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
        let version = client.version;
        let member_id = req.member_id.to_string();
        let pending = self.join_inner(req, client);
        self.poke();
        async move {
            let outcome = match pending {
                Pending::Now(o) => o,
                Pending::Wait(rx) => rx.await.unwrap_or_else(|_| {
                    JoinOutcome::error(member_id, ResponseError::CoordinatorNotAvailable)
                }),
            };
            join_response(outcome, version)
        }
    }

    fn join_inner(&self, req: JoinGroupRequest, client: ClientInfo) -> Pending<JoinOutcome> {
        let member_id = req.member_id.to_string();
        let err = |e: ResponseError| Pending::Now(JoinOutcome::error(member_id.clone(), e));
        if self.is_shut() {
            return err(ResponseError::CoordinatorNotAvailable);
        }
        let group_id = req.group_id.0.to_string();
        if group_id.is_empty() {
            return err(ResponseError::InvalidGroupId);
        }
        let session = req.session_timeout_ms;
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return err(ResponseError::InvalidSessionTimeout);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance = if client.version == 0 || req.rebalance_timeout_ms < 0 {
            session
        } else {
            req.rebalance_timeout_ms
        };
        let params = JoinParams {
            version: client.version,
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id,
            client_host: client.client_host,
            session_timeout: Duration::from_millis(session.max(0) as u64),
            rebalance_timeout: Duration::from_millis(rebalance.max(0) as u64),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
        };
        // Only a join without a member id may create the group.
        let group = if member_id.is_empty() {
            self.group_or_create(&group_id)
        } else {
            match self.group(&group_id) {
                Some(g) => g,
                None => return err(ResponseError::UnknownMemberId),
            }
        };
        let mut g = group.lock();
        g.join(params, Instant::now(), &self.config)
    }

    // ---------------------------------------------------------------- SyncGroup

    /// SyncGroup (v0–5). Followers wait for the leader's assignment.
    pub fn sync_group(
        &self,
        req: SyncGroupRequest,
        version: i16,
    ) -> impl Future<Output = SyncGroupResponse> + Send + 'static {
        let pending = self.sync_inner(req);
        self.poke();
        async move {
            let outcome = match pending {
                Pending::Now(o) => o,
                Pending::Wait(rx) => rx
                    .await
                    .unwrap_or_else(|_| SyncOutcome::error(ResponseError::CoordinatorNotAvailable)),
            };
            let mut r = SyncGroupResponse::default();
            r.error_code = outcome.error;
            r.assignment = outcome.assignment;
            if version >= 5 {
                r.protocol_type = outcome.protocol_type.as_deref().map(s);
                r.protocol_name = outcome.protocol_name.as_deref().map(s);
            }
            r
        }
    }

    fn sync_inner(&self, req: SyncGroupRequest) -> Pending<SyncOutcome> {
        let err = |e: ResponseError| Pending::Now(SyncOutcome::error(e));
        if self.is_shut() {
            return err(ResponseError::CoordinatorNotAvailable);
        }
        if req.group_id.0.is_empty() {
            return err(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.group(&req.group_id.0) else {
            return err(ResponseError::UnknownMemberId);
        };
        let assignments = req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        let mut g = group.lock();
        g.sync(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            req.protocol_type.as_deref(),
            req.protocol_name.as_deref(),
            assignments,
            Instant::now(),
        )
    }

    // ---------------------------------------------------------------- Heartbeat

    /// Heartbeat (v0–4).
    pub fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let code = if self.is_shut() {
            ResponseError::CoordinatorNotAvailable.code()
        } else if req.group_id.0.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            match self.group(&req.group_id.0) {
                None => ResponseError::UnknownMemberId.code(),
                Some(g) => g.lock().heartbeat(
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation_id,
                    Instant::now(),
                ),
            }
        };
        let mut r = HeartbeatResponse::default();
        r.error_code = code;
        r
    }

    // ---------------------------------------------------------------- LeaveGroup

    /// LeaveGroup (v0–2: one member id; v3–5: a batch of identities with per-member errors).
    pub fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let identities: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let mut top = 0i16;
        let mut results: Vec<i16> = Vec::with_capacity(identities.len());
        if self.is_shut() {
            top = ResponseError::CoordinatorNotAvailable.code();
        } else if req.group_id.0.is_empty() {
            top = ResponseError::InvalidGroupId.code();
        } else {
            match self.group(&req.group_id.0) {
                None => results = vec![ResponseError::UnknownMemberId.code(); identities.len()],
                Some(group) => {
                    let mut g = group.lock();
                    if g.state == GroupState::Dead {
                        top = ResponseError::CoordinatorNotAvailable.code();
                    } else {
                        let now = Instant::now();
                        for (id, inst) in &identities {
                            results.push(g.leave(id, inst.as_deref(), now, &self.config));
                        }
                    }
                }
            }
            self.poke();
        }
        let mut r = LeaveGroupResponse::default();
        if version >= 3 {
            r.error_code = top;
            if top == 0 {
                r.members = identities
                    .into_iter()
                    .zip(results)
                    .map(|((id, inst), code)| {
                        let mut m = MemberResponse::default();
                        m.member_id = s(&id);
                        m.group_instance_id = inst.as_deref().map(s);
                        m.error_code = code;
                        m
                    })
                    .collect();
            }
        } else {
            // Pre-batch versions report the single member's error at the top level.
            r.error_code = if top != 0 {
                top
            } else {
                results.first().copied().unwrap_or(0)
            };
        }
        r
    }

    // ---------------------------------------------------------------- OffsetCommit

    /// OffsetCommit (v2–8 as decoded by the vendored crate). `partition_exists` says whether a
    /// topic partition exists (UNKNOWN_TOPIC_OR_PARTITION otherwise). The future resolves once
    /// the accepted offsets are fsynced.
    pub fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        _version: i16,
        partition_exists: &dyn Fn(&str, i32) -> bool,
    ) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
        // Per topic, per partition: Some(error) decided now, None = accepted, awaiting the write.
        type Codes = Vec<(String, Vec<(i32, Option<i16>)>)>;
        let mut codes: Codes = Vec::with_capacity(req.topics.len());
        let mut entries = Vec::new();
        let ts = rivulet_time::now_ms();
        for t in &req.topics {
            let name = t.name.0.to_string();
            let mut parts = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                let code = if !partition_exists(&name, p.partition_index) {
                    Some(ResponseError::UnknownTopicOrPartition.code())
                } else if metadata.len() > self.config.max_metadata_bytes {
                    Some(ResponseError::OffsetMetadataTooLarge.code())
                } else {
                    entries.push((
                        (name.clone(), p.partition_index),
                        OffsetEntry {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: metadata.to_string(),
                            commit_timestamp_ms: ts,
                        },
                    ));
                    None
                };
                parts.push((p.partition_index, code));
            }
            codes.push((name, parts));
        }
        let outcome: Result<Option<_>, ResponseError> = if entries.is_empty() {
            Ok(None)
        } else {
            self.commit_inner(&req, entries).map(Some)
        };
        // A commit never introduces an earlier deadline: no need to wake the timer.
        self.ensure_timer();
        async move {
            let accepted_code = match outcome {
                Err(e) => e.code(),
                Ok(None) => 0,
                Ok(Some(rx)) => match rx.await {
                    Ok(Ok(())) => 0,
                    // The log write failed: retriable for the client.
                    _ => ResponseError::CoordinatorNotAvailable.code(),
                },
            };
            let mut r = OffsetCommitResponse::default();
            r.topics = codes
                .into_iter()
                .map(|(name, parts)| {
                    let mut t = OffsetCommitResponseTopic::default();
                    t.name = TopicName(s(&name));
                    t.partitions = parts
                        .into_iter()
                        .map(|(idx, code)| {
                            let mut p = OffsetCommitResponsePartition::default();
                            p.partition_index = idx;
                            p.error_code = code.unwrap_or(accepted_code);
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            r
        }
    }

    fn commit_inner(
        &self,
        req: &OffsetCommitRequest,
        entries: Vec<(offsets::TopicPartition, OffsetEntry)>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, ResponseError> {
        if self.is_shut() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let group_id = req.group_id.0.to_string();
        let generation = req.generation_id_or_member_epoch;
        let group = match self.group(&group_id) {
            Some(g) => g,
            // Not using group management (simple/admin commit): the group springs up Empty.
            None if generation < 0 => self.group_or_create(&group_id),
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut g = group.lock();
        g.validate_commit(
            &req.member_id,
            req.group_instance_id.as_deref(),
            generation,
            Instant::now(),
        )?;
        // Submitted under the group lock so the log order matches group decisions (deletes).
        Ok(self.store.submit(WriteOp::Commit {
            group: group_id,
            entries,
        }))
    }

    /// The group check of TxnOffsetCommit: member and generation as for OffsetCommit (a
    /// negative generation: a producer outside group management).
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if self.is_shut() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        match self.group(group_id) {
            Some(group) => {
                group
                    .lock()
                    .validate_commit(member_id, instance_id, generation, Instant::now())
            }
            None if generation < 0 => Ok(()),
            None => Err(ResponseError::IllegalGeneration),
        }
    }

    /// Stores the offsets of a committed transaction as commits of `group` (which springs up
    /// Empty if the broker does not know it). Resolves once they are fsynced.
    pub(crate) fn store_offsets(
        &self,
        group: &str,
        entries: Vec<(offsets::TopicPartition, OffsetEntry)>,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let rx = (!self.is_shut()).then(|| {
            let g = self.group_or_create(group);
            let _order = g.lock();
            self.store.submit(WriteOp::Commit {
                group: group.to_string(),
                entries,
            })
        });
        async move {
            match rx {
                None => Err("the group coordinator is shut down".to_string()),
                Some(rx) => rx
                    .await
                    .map_err(|_| "the offset store stopped".to_string())?,
            }
        }
    }

    // ---------------------------------------------------------------- OffsetFetch

    /// OffsetFetch (v1–8; v8 = several groups per request).
    pub fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let mut r = OffsetFetchResponse::default();
        if version >= 8 {
            r.groups = req
                .groups
                .iter()
                .map(|g| {
                    let wanted = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect::<Vec<_>>()
                    });
                    let (code, topics) = self.fetch_group(&g.group_id.0, wanted);
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = g.group_id.clone();
                    out.error_code = code;
                    out.topics = topics
                        .into_iter()
                        .map(|(name, parts)| {
                            let mut t = OffsetFetchResponseTopics::default();
                            t.name = TopicName(s(&name));
                            t.partitions = parts
                                .into_iter()
                                .map(|(idx, e)| {
                                    let mut p = OffsetFetchResponsePartitions::default();
                                    p.partition_index = idx;
                                    p.committed_offset = e.offset;
                                    p.committed_leader_epoch = e.leader_epoch;
                                    p.metadata = Some(s(&e.metadata));
                                    p.error_code = code;
                                    p
                                })
                                .collect();
                            t
                        })
                        .collect();
                    out
                })
                .collect();
            return r;
        }
        // v1 cannot ask for "all topics"; treat a null list there as empty.
        let wanted = match (&req.topics, version) {
            (None, v) if v < 2 => Some(Vec::new()),
            (topics, _) => topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            }),
        };
        let (code, topics) = self.fetch_group(&req.group_id.0, wanted);
        if version >= 2 {
            r.error_code = code;
        }
        r.topics = topics
            .into_iter()
            .map(|(name, parts)| {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = TopicName(s(&name));
                t.partitions = parts
                    .into_iter()
                    .map(|(idx, e)| {
                        let mut p = OffsetFetchResponsePartition::default();
                        p.partition_index = idx;
                        p.committed_offset = e.offset;
                        p.committed_leader_epoch = e.leader_epoch;
                        p.metadata = Some(s(&e.metadata));
                        p.error_code = code;
                        p
                    })
                    .collect();
                t
            })
            .collect();
        r
    }

    /// One group's committed offsets: `wanted = None` means every committed partition.
    /// Partitions without a commit get offset -1, metadata "" and error NONE (as Kafka).
    #[allow(clippy::type_complexity)]
    fn fetch_group(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> (i16, Vec<(String, Vec<(i32, OffsetEntry)>)>) {
        let none = || OffsetEntry {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: -1,
        };
        if self.is_shut() {
            let code = ResponseError::CoordinatorNotAvailable.code();
            let topics = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, none())).collect()))
                .collect();
            return (code, topics);
        }
        // A deleted (or never seen) group reads as "no offsets".
        let live = self
            .group(group_id)
            .is_some_and(|g| g.lock().state != GroupState::Dead);
        let present = |e: OffsetEntry| OffsetEntry {
            // The broker has no leader epochs to validate against; clients would otherwise
            // start an OffsetForLeaderEpoch validation round for nothing.
            leader_epoch: -1,
            ..e
        };
        let topics = match wanted {
            Some(list) => list
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| {
                            let e = if live {
                                self.store.get(group_id, &t, p)
                            } else {
                                None
                            };
                            (p, e.map(present).unwrap_or_else(none))
                        })
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<(i32, OffsetEntry)>)> = Vec::new();
                if live {
                    for ((t, p), e) in self.store.all(group_id) {
                        match out.last_mut() {
                            Some((name, parts)) if *name == t => parts.push((p, present(e))),
                            _ => out.push((t, vec![(p, present(e))])),
                        }
                    }
                }
                out
            }
        };
        (0, topics)
    }

    // ---------------------------------------------------------------- DescribeGroups

    /// DescribeGroups (v0–5). Unknown groups are reported as state "Dead" with error NONE.
    pub fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut r = DescribeGroupsResponse::default();
        r.groups = req
            .groups
            .iter()
            .map(|id| {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                if version >= 3 && req.include_authorized_operations {
                    d.authorized_operations = GROUP_AUTHORIZED_OPS;
                }
                if self.is_shut() {
                    d.error_code = ResponseError::CoordinatorNotAvailable.code();
                    return d;
                }
                let Some(group) = self.group(&id.0) else {
                    d.group_state = s(GroupState::Dead.name());
                    return d;
                };
                let g = group.lock();
                d.group_state = s(g.state.name());
                d.protocol_type = s(g.protocol_type.as_deref().unwrap_or_default());
                // Like Kafka: protocol, metadata and assignments only for a Stable group.
                let stable = g.state == GroupState::Stable;
                if stable {
                    d.protocol_data = s(g.protocol_name.as_deref().unwrap_or_default());
                }
                d.members = g
                    .members()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = s(&m.id);
                        dm.group_instance_id = m.instance_id.as_deref().map(s);
                        dm.client_id = s(&m.client_id);
                        dm.client_host = s(&m.client_host);
                        if stable {
                            dm.member_metadata = g.member_metadata(m);
                            dm.member_assignment = m.assignment.clone();
                        }
                        dm
                    })
                    .collect();
                d
            })
            .collect();
        r
    }

    // ---------------------------------------------------------------- ListGroups

    /// ListGroups (v0–4; v4 adds the states filter, v5's types filter is honoured too).
    pub fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let mut r = ListGroupsResponse::default();
        if self.is_shut() {
            r.error_code = ResponseError::CoordinatorNotAvailable.code();
            return r;
        }
        let states: Vec<String> = req
            .states_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        // Every group here is a classic group.
        let type_ok = req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case("classic"));
        let mut listed: Vec<(String, String, &'static str)> = Vec::new();
        if type_ok {
            for group in self.snapshot() {
                let g = group.lock();
                if g.state == GroupState::Dead {
                    continue;
                }
                if version >= 4
                    && !states.is_empty()
                    && !states.contains(&g.state.name().to_ascii_lowercase())
                {
                    continue;
                }
                listed.push((
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                ));
            }
        }
        listed.sort();
        r.groups = listed
            .into_iter()
            .map(|(id, ptype, state)| {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(s(&id));
                l.protocol_type = s(&ptype);
                if version >= 4 {
                    l.group_state = s(state);
                }
                if version >= 5 {
                    l.group_type = s("classic");
                }
                l
            })
            .collect();
        r
    }

    // ---------------------------------------------------------------- DeleteGroups

    /// DeleteGroups (v0–2): only Empty groups; their offsets are tombstoned durably before the
    /// response.
    pub fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> impl Future<Output = DeleteGroupsResponse> + Send + 'static {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for id in &req.groups_names {
            let name = id.0.to_string();
            let outcome = self.delete_one(&name);
            results.push((id.clone(), outcome));
        }
        async move {
            let mut out = Vec::with_capacity(results.len());
            for (id, outcome) in results {
                let code = match outcome {
                    Err(e) => e.code(),
                    Ok(rx) => match rx.await {
                        Ok(Ok(())) => 0,
                        _ => ResponseError::CoordinatorNotAvailable.code(),
                    },
                };
                let mut d = DeletableGroupResult::default();
                d.group_id = id;
                d.error_code = code;
                out.push(d);
            }
            let mut r = DeleteGroupsResponse::default();
            r.results = out;
            r
        }
    }

    fn delete_one(
        &self,
        id: &str,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, ResponseError> {
        if self.is_shut() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut map = self.groups.write();
        let Some(group) = map.get(id).cloned() else {
            return Err(ResponseError::GroupIdNotFound);
        };
        let mut g = group.lock();
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                g.kill(ResponseError::CoordinatorNotAvailable);
                map.remove(id);
                tracing::info!(group = %Quoted(id), "group deleted");
                Ok(self.store.submit(WriteOp::DeleteGroup {
                    group: id.to_string(),
                }))
            }
            _ => Err(ResponseError::NonEmptyGroup),
        }
    }

    // ---------------------------------------------------------------- introspection

    /// Current state of a group, if known (tests, metrics).
    pub fn group_state(&self, id: &str) -> Option<GroupState> {
        self.group(id).map(|g| g.lock().state)
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(h) = self.timer.get_mut().take() {
            h.abort();
        }
    }
}

/// The timer task: sleeps until the earliest group deadline (or a poke), fires expired ones.
/// Holds only a `Weak` so a dropped coordinator is not kept alive by it.
async fn timer_loop(me: Weak<GroupCoordinator>, wake: Arc<Notify>, cancel: CancellationToken) {
    loop {
        let next = match me.upgrade() {
            Some(c) => c.run_timers(),
            None => return,
        };
        let idle = next.map_or(MAX_TIMER_IDLE, |n| {
            n.saturating_duration_since(Instant::now())
                .min(MAX_TIMER_IDLE)
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
}

/// Encodes a join outcome for the request's version.
fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = o.error;
    r.generation_id = o.generation_id;
    if version >= 7 {
        r.protocol_type = o.protocol_type.as_deref().map(s);
        r.protocol_name = o.protocol_name.as_deref().map(s);
    } else {
        // Not nullable before v7.
        r.protocol_name = Some(s(o.protocol_name.as_deref().unwrap_or_default()));
    }
    r.leader = s(&o.leader);
    r.member_id = s(&o.member_id);
    r.skip_assignment = version >= 9 && o.skip_assignment;
    r.members = o
        .members
        .into_iter()
        .map(|(id, inst, metadata): (String, Option<String>, Bytes)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = s(&id);
            if version >= 5 {
                m.group_instance_id = inst.as_deref().map(s);
            }
            m.metadata = metadata;
            m
        })
        .collect();
    r
}
