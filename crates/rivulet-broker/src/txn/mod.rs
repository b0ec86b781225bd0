//! The transaction coordinator (KIP-98, KIP-360, KIP-447): transactional ids, their producer
//! id and epoch, and the state of their current transaction; the handlers of
//! InitProducerId (with a transactional id), AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn, DescribeTransactions and ListTransactions call into it.
//!
//! State machine, as Kafka's `TransactionMetadata`:
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                                    │    └──EndTxn(abort) / timeout / fencing──▶ PrepareAbort ──▶ CompleteAbort
//!   └──────────── InitProducerId (epoch + 1) ◀── CompleteCommit / CompleteAbort ──AddPartitions──▶ Ongoing
//! ```
//!
//! Durability: every change is written to `<data-dir>/transactions.json` (replaced atomically)
//! before it is answered, so the state survives kill -9; under `--fsync always` it is fsynced
//! too (so it survives a power loss like the data), except the final Complete: losing it only
//! makes the next start complete the transaction again, which writes nothing twice. Ending a transaction is two steps
//! around the markers: Prepare is stored first, then the COMMIT/ABORT control batch is appended
//! to every partition of the transaction (and fsynced under `fsync = always`), the group offsets
//! of a commit are stored, and only then Complete. On start, a transaction found in Prepare is
//! completed, an Ongoing one aborted, and the markers of Complete ones are written again where
//! a partition still has the transaction open (after a crash under `fsync = interval`);
//! markers are idempotent (`PartitionLog::append_marker`).
//!
//! Where the protocol lets a client see it, errors follow Kafka's coordinator; the code for a
//! fenced producer depends on the request version (PRODUCER_FENCED for clients that know it,
//! INVALID_PRODUCER_EPOCH before, as Kafka's `KafkaApis` maps it).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::group::offsets::OffsetEntry;
use crate::state::Broker;

/// The coordinator's state file in the data directory.
pub(crate) const STATE_FILE: &str = "transactions.json";
const STATE_VERSION: u32 = 1;

/// Limits and defaults of the transaction coordinator (Kafka's `transaction.*` broker configs).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: InitProducerId with a longer timeout is refused.
    pub max_timeout_ms: i32,
    /// Transactional ids the coordinator keeps at most; InitProducerId for a new id beyond it
    /// is refused (a client cannot grow the state file without bound).
    pub max_transactional_ids: usize,
    /// Partitions one transaction may span.
    pub max_partitions_per_txn: usize,
    /// How often open transactions are checked against their timeout.
    pub abort_timed_out_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            max_transactional_ids: 100_000,
            max_partitions_per_txn: 10_000,
            abort_timed_out_interval_ms: 1_000,
        }
    }
}

/// A transaction's state, named as Kafka names it in DescribeTransactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
    fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset committed inside a transaction, stored when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last bump (KIP-360: a retried request with it is recognised).
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The current (or, once complete, the last) transaction's partitions.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added with AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    pub offsets: Vec<PendingOffset>,
    /// When the current transaction started (first partition or group added).
    pub started_ms: i64,
    pub updated_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    transactions: BTreeMap<String, TxnMeta>,
}

/// What produce checks a transactional batch against, without taking the coordinator's lock
/// (which is held across fsyncs).
#[derive(Debug, Clone)]
struct ProducerView {
    epoch: i16,
    ongoing: bool,
    partitions: HashSet<(String, i32)>,
}

/// A refusal: Kafka error and a message for the log.
pub(crate) type TxnError = (ResponseError, String);

/// How a transaction is to be ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
    pub offsets: Vec<PendingOffset>,
}

/// What InitProducerId found.
pub(crate) enum InitStep {
    /// The producer id and epoch to answer with.
    Ready(i64, i16),
    /// An open transaction was fenced: abort it (already in PrepareAbort), then ask again.
    Abort(Ending),
}

/// The coordinator; one per broker.
pub struct TxnCoordinator {
    path: PathBuf,
    /// Fsync state changes (`--fsync always`).
    durable: bool,
    stats: Arc<crate::state::BrokerStats>,
    config: TxnConfig,
    state: Mutex<BTreeMap<String, TxnMeta>>,
    producers: RwLock<HashMap<i64, ProducerView>>,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator").finish_non_exhaustive()
    }
}

fn fenced(msg: String) -> TxnError {
    (ResponseError::ProducerFenced, msg)
}

fn check_producer(meta: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if meta.producer_id != producer_id {
        return Err((
            ResponseError::InvalidProducerIdMapping,
            format!(
                "producer id {producer_id} does not belong to this transactional id (it has {})",
                meta.producer_id
            ),
        ));
    }
    if epoch < meta.epoch {
        return Err(fenced(format!(
            "producer epoch {epoch} is older than the current epoch {}: fenced by a newer producer",
            meta.epoch
        )));
    }
    if epoch > meta.epoch {
        return Err((
            ResponseError::InvalidProducerEpoch,
            format!(
                "producer epoch {epoch} is newer than the coordinator's {}",
                meta.epoch
            ),
        ));
    }
    Ok(())
}

/// PRODUCER_FENCED only for request versions that know it (`since`); INVALID_PRODUCER_EPOCH
/// before, as Kafka answers older clients.
pub(crate) fn code_for(error: ResponseError, version: i16, since: i16) -> i16 {
    if error == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        error.code()
    }
}

impl TxnCoordinator {
    /// Loads `<data_dir>/transactions.json` (none yet: no transactions).
    pub fn open(
        data_dir: &Path,
        config: TxnConfig,
        durable: bool,
        stats: Arc<crate::state::BrokerStats>,
    ) -> Result<TxnCoordinator, BrokerError> {
        let path = data_dir.join(STATE_FILE);
        let transactions = match std::fs::read(&path) {
            Ok(raw) => {
                let file: StateFile = serde_json::from_slice(&raw).map_err(|e| {
                    BrokerError::Other(format!(
                        "transaction state {} is unreadable: {e}",
                        path.display()
                    ))
                })?;
                if file.version != STATE_VERSION {
                    return Err(BrokerError::Other(format!(
                        "transaction state {} has version {}, this broker reads {STATE_VERSION}",
                        path.display(),
                        file.version
                    )));
                }
                file.transactions
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let coordinator = TxnCoordinator {
            path,
            durable,
            stats,
            config,
            state: Mutex::new(BTreeMap::new()),
            producers: RwLock::new(HashMap::new()),
        };
        {
            let mut state = coordinator.state.lock();
            *state = transactions;
            coordinator.reindex(&state);
        }
        Ok(coordinator)
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    fn reindex(&self, state: &BTreeMap<String, TxnMeta>) {
        let mut producers = self.producers.write();
        producers.clear();
        for meta in state.values() {
            producers.insert(meta.producer_id, view(meta));
        }
    }

    /// Stores the state (fsynced when durable) and updates the produce-side view of `changed`.
    fn persist(&self, state: &BTreeMap<String, TxnMeta>, changed: &[&str]) -> Result<(), TxnError> {
        self.persist_with(state, changed, self.durable)
    }

    fn persist_with(
        &self,
        state: &BTreeMap<String, TxnMeta>,
        changed: &[&str],
        fsync: bool,
    ) -> Result<(), TxnError> {
        let file = StateFile {
            version: STATE_VERSION,
            transactions: state.clone(),
        };
        let json = serde_json::to_vec(&file).map_err(|e| {
            (
                ResponseError::UnknownServerError,
                format!("cannot encode the transaction state: {e}"),
            )
        })?;
        rivulet_log::replace_file(&self.path, &json, fsync).map_err(|e| {
            tracing::error!("cannot store the transaction state: {e}");
            (
                ResponseError::CoordinatorNotAvailable,
                format!("cannot store the transaction state: {e}"),
            )
        })?;
        let open = state
            .values()
            .filter(|m| m.state == TxnState::Ongoing || m.state.preparing())
            .count();
        self.stats
            .transactions_open
            .store(open as u64, Ordering::Relaxed);
        let mut producers = self.producers.write();
        for id in changed {
            if let Some(meta) = state.get(*id) {
                producers.insert(meta.producer_id, view(meta));
            }
        }
        Ok(())
    }

    /// Transactional ids with a transaction open (Ongoing or Prepare).
    pub fn open_count(&self) -> usize {
        self.state
            .lock()
            .values()
            .filter(|m| m.state == TxnState::Ongoing || m.state.preparing())
            .count()
    }

    // ------------------------------------------------------------ requests

    /// InitProducerId with a transactional id. `expected` is the producer id and epoch a
    /// KIP-360 client sends to bump its epoch (`(-1, -1)` otherwise).
    pub(crate) fn init_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
        allocate: &dyn Fn() -> Result<i64, TxnError>,
        now_ms: i64,
    ) -> Result<InitStep, TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err((
                ResponseError::InvalidTransactionTimeout,
                format!(
                    "transaction timeout {timeout_ms} ms is outside 1..={} ms \
                     (transaction.max.timeout.ms)",
                    self.config.max_timeout_ms
                ),
            ));
        }
        let mut state = self.state.lock();
        let Some(meta) = state.get_mut(transactional_id) else {
            if expected.0 != -1 {
                return Err((
                    ResponseError::InvalidProducerIdMapping,
                    "unknown transactional id for the given producer id".into(),
                ));
            }
            if state.len() >= self.config.max_transactional_ids {
                return Err((
                    ResponseError::PolicyViolation,
                    format!(
                        "the coordinator holds {} transactional ids, its limit",
                        self.config.max_transactional_ids
                    ),
                ));
            }
            let producer_id = allocate()?;
            state.insert(
                transactional_id.to_string(),
                TxnMeta {
                    producer_id,
                    epoch: 0,
                    last_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    offsets: Vec::new(),
                    started_ms: -1,
                    updated_ms: now_ms,
                },
            );
            self.persist(&state, &[transactional_id])?;
            return Ok(InitStep::Ready(producer_id, 0));
        };
        if expected.0 != -1
            && (expected.0 != meta.producer_id
                || (expected.1 != meta.epoch && expected.1 != meta.last_epoch))
        {
            return Err(fenced(format!(
                "producer {}/{} is not the current producer of this transactional id",
                expected.0, expected.1
            )));
        }
        if meta.state.preparing() {
            return Err((
                ResponseError::ConcurrentTransactions,
                "the previous transaction is being completed".into(),
            ));
        }
        if meta.state == TxnState::Ongoing {
            // A new producer (or a restarted one) takes over: the open transaction is aborted
            // with a bumped epoch, which fences the old producer in every partition.
            let ending = self.begin_end(&mut state, transactional_id, false, true, now_ms)?;
            return Ok(InitStep::Abort(ending));
        }
        let old_pid = meta.producer_id;
        meta.last_epoch = meta.epoch;
        if meta.epoch >= i16::MAX - 1 {
            // Epochs exhausted: a new producer id (KIP-360).
            meta.producer_id = allocate()?;
            meta.epoch = 0;
            meta.last_epoch = -1;
        } else {
            meta.epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.groups.clear();
        meta.offsets.clear();
        meta.started_ms = -1;
        meta.updated_ms = now_ms;
        let (pid, epoch) = (meta.producer_id, meta.epoch);
        if pid != old_pid {
            self.producers.write().remove(&old_pid);
        }
        self.persist(&state, &[transactional_id])?;
        Ok(InitStep::Ready(pid, epoch))
    }

    /// Puts `transactional_id`'s transaction into Ongoing (from Empty or Complete) for an
    /// AddPartitionsToTxn or AddOffsetsToTxn.
    fn ongoing<'a>(
        state: &'a mut BTreeMap<String, TxnMeta>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<&'a mut TxnMeta, TxnError> {
        let meta = state.get_mut(transactional_id).ok_or_else(|| {
            (
                ResponseError::InvalidProducerIdMapping,
                "unknown transactional id: call InitProducerId first".to_string(),
            )
        })?;
        check_producer(meta, producer_id, epoch)?;
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err((
                    ResponseError::ConcurrentTransactions,
                    "the previous transaction is being completed".into(),
                ))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                meta.state = TxnState::Ongoing;
                meta.partitions.clear();
                meta.groups.clear();
                meta.offsets.clear();
                meta.started_ms = now_ms;
            }
            TxnState::Ongoing => {}
        }
        meta.updated_ms = now_ms;
        Ok(meta)
    }

    /// AddPartitionsToTxn: `exists` says whether a partition exists. Per partition: its error
    /// code, 0 when added.
    pub(crate) fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        exists: &dyn Fn(&str, i32) -> bool,
        now_ms: i64,
    ) -> Result<Vec<i16>, TxnError> {
        let unknown: Vec<bool> = partitions.iter().map(|(t, p)| !exists(t, *p)).collect();
        if unknown.iter().any(|u| *u) {
            // Kafka adds none of them: the unknown ones fail, the others are not attempted.
            return Ok(unknown
                .iter()
                .map(|u| {
                    if *u {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        ResponseError::OperationNotAttempted.code()
                    }
                })
                .collect());
        }
        let mut state = self.state.lock();
        let before = state.get(transactional_id).cloned();
        let meta = Self::ongoing(&mut state, transactional_id, producer_id, epoch, now_ms)?;
        meta.partitions.extend(partitions.iter().cloned());
        if meta.partitions.len() > self.config.max_partitions_per_txn {
            let n = meta.partitions.len();
            if let Some(b) = before {
                state.insert(transactional_id.to_string(), b);
            }
            return Err((
                ResponseError::PolicyViolation,
                format!(
                    "a transaction may span at most {} partitions, this one would span {n}",
                    self.config.max_partitions_per_txn
                ),
            ));
        }
        self.persist(&state, &[transactional_id])?;
        Ok(vec![0; partitions.len()])
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    pub(crate) fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        let mut state = self.state.lock();
        let meta = Self::ongoing(&mut state, transactional_id, producer_id, epoch, now_ms)?;
        meta.groups.insert(group.to_string());
        self.persist(&state, &[transactional_id])
    }

    /// TxnOffsetCommit: offsets held until the transaction ends (stored on commit, dropped on
    /// abort). The group's generation is checked by the caller.
    pub(crate) fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        let mut state = self.state.lock();
        let meta = state.get_mut(transactional_id).ok_or_else(|| {
            (
                ResponseError::InvalidProducerIdMapping,
                "unknown transactional id".to_string(),
            )
        })?;
        check_producer(meta, producer_id, epoch)?;
        if meta.state != TxnState::Ongoing {
            return Err((
                ResponseError::InvalidTxnState,
                format!(
                    "offsets can be committed in an ongoing transaction only (it is {})",
                    meta.state.name()
                ),
            ));
        }
        for o in offsets {
            meta.groups.insert(o.group.clone());
            // A later commit of the same partition replaces the earlier one.
            meta.offsets.retain(|p| {
                !(p.group == o.group && p.topic == o.topic && p.partition == o.partition)
            });
            meta.offsets.push(o);
        }
        meta.updated_ms = now_ms;
        self.persist(&state, &[transactional_id])
    }

    /// EndTxn: moves the transaction to Prepare and says what to write. `Ok(None)`: nothing
    /// to do (a retry of an end that already completed, or an empty transaction).
    pub(crate) fn end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<Ending>, TxnError> {
        let mut state = self.state.lock();
        let meta = state.get_mut(transactional_id).ok_or_else(|| {
            (
                ResponseError::InvalidProducerIdMapping,
                "unknown transactional id".to_string(),
            )
        })?;
        if meta.producer_id != producer_id {
            return Err((
                ResponseError::InvalidProducerIdMapping,
                "producer id does not belong to this transactional id".into(),
            ));
        }
        // A retry with the epoch before a coordinator bump (timeout, KIP-360) of an abort that
        // already happened.
        if epoch == meta.last_epoch && epoch < meta.epoch {
            return match (meta.state, commit) {
                (TxnState::CompleteAbort, false) | (TxnState::Empty, false) => Ok(None),
                _ => Err(fenced(format!(
                    "producer epoch {epoch} was fenced (current {})",
                    meta.epoch
                ))),
            };
        }
        check_producer(meta, producer_id, epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => self
                .begin_end(&mut state, transactional_id, commit, false, now_ms)
                .map(Some),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            // Kafka lets a producer abort when nothing was added (librdkafka does so after
            // an error before the first send).
            (TxnState::Empty, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err((
                ResponseError::ConcurrentTransactions,
                "the transaction is being completed".into(),
            )),
            (s, _) => Err((
                ResponseError::InvalidTxnState,
                format!(
                    "cannot {} a transaction in state {}",
                    if commit { "commit" } else { "abort" },
                    s.name()
                ),
            )),
        }
    }

    /// Ongoing → Prepare, stored. With `bump`, the epoch is bumped first (fencing the producer:
    /// markers are written with the new epoch).
    fn begin_end(
        &self,
        state: &mut BTreeMap<String, TxnMeta>,
        transactional_id: &str,
        commit: bool,
        bump: bool,
        now_ms: i64,
    ) -> Result<Ending, TxnError> {
        let Some(meta) = state.get_mut(transactional_id) else {
            return Err((ResponseError::InvalidProducerIdMapping, "unknown".into()));
        };
        if bump && meta.epoch < i16::MAX - 1 {
            meta.last_epoch = meta.epoch;
            meta.epoch += 1;
        }
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        meta.updated_ms = now_ms;
        let ending = ending_of(transactional_id, meta, commit);
        self.persist(state, &[transactional_id])?;
        Ok(ending)
    }

    /// Prepare → Complete once the markers (and a commit's offsets) are stored; `false` when
    /// there was nothing to complete (markers written again at start).
    pub(crate) fn complete(&self, ending: &Ending, now_ms: i64) -> Result<bool, TxnError> {
        let mut state = self.state.lock();
        let Some(meta) = state.get_mut(&ending.transactional_id) else {
            return Ok(false);
        };
        let expected = if ending.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != expected || meta.producer_id != ending.producer_id {
            return Ok(false);
        }
        meta.state = if ending.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.offsets.clear();
        meta.updated_ms = now_ms;
        // Not fsynced: after a crash the Prepare on disk is completed again, idempotently.
        self.persist_with(&state, &[ending.transactional_id.as_str()], false)?;
        Ok(true)
    }

    /// Open transactions past their timeout: each moved to PrepareAbort with a bumped epoch.
    pub(crate) fn expire(&self, now_ms: i64) -> Vec<Ending> {
        let mut state = self.state.lock();
        let expired: Vec<String> = state
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.started_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut endings = Vec::new();
        for id in expired {
            match self.begin_end(&mut state, &id, false, true, now_ms) {
                Ok(e) => endings.push(e),
                Err((_, msg)) => tracing::error!("cannot abort a timed-out transaction: {msg}"),
            }
        }
        endings
    }

    /// What to finish at start: Prepare ones completed, Ongoing ones aborted (epoch bumped),
    /// Complete ones' markers written again where still missing.
    pub(crate) fn recover(&self, now_ms: i64) -> Result<Vec<Ending>, TxnError> {
        let mut state = self.state.lock();
        let ids: Vec<String> = state.keys().cloned().collect();
        let mut endings = Vec::new();
        for id in ids {
            let Some(meta) = state.get(&id) else { continue };
            match meta.state {
                TxnState::PrepareCommit => endings.push(ending_of(&id, meta, true)),
                TxnState::PrepareAbort => endings.push(ending_of(&id, meta, false)),
                TxnState::CompleteCommit => endings.push(ending_of(&id, meta, true)),
                TxnState::CompleteAbort => endings.push(ending_of(&id, meta, false)),
                TxnState::Ongoing => {
                    endings.push(self.begin_end(&mut state, &id, false, true, now_ms)?);
                }
                TxnState::Empty => {}
            }
        }
        Ok(endings)
    }

    /// Produce of a transactional batch: the producer must be the current one of its
    /// transactional id, with the partition added to its ongoing transaction.
    pub(crate) fn check_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let producers = self.producers.read();
        let Some(p) = producers.get(&producer_id) else {
            return Err((
                ResponseError::InvalidProducerIdMapping,
                format!("producer id {producer_id} has no transactional id"),
            ));
        };
        if epoch < p.epoch {
            return Err((
                ResponseError::InvalidProducerEpoch,
                format!("producer epoch {epoch} is fenced (current {})", p.epoch),
            ));
        }
        if epoch > p.epoch || !p.ongoing || !p.partitions.contains(&(topic.to_string(), partition))
        {
            return Err((
                ResponseError::InvalidTxnState,
                "the partition was not added to an ongoing transaction of this producer".into(),
            ));
        }
        Ok(())
    }

    /// Whether `group` has offsets waiting in an open transaction for `topic`/`partition`
    /// (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub(crate) fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.state.lock().values().any(|m| {
            (m.state == TxnState::Ongoing || m.state.preparing())
                && m.offsets
                    .iter()
                    .any(|o| o.group == group && o.topic == topic && o.partition == partition)
        })
    }

    /// A copy of every transactional id's state, for DescribeTransactions/ListTransactions.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, TxnMeta> {
        self.state.lock().clone()
    }
}

fn view(meta: &TxnMeta) -> ProducerView {
    ProducerView {
        epoch: meta.epoch,
        ongoing: meta.state == TxnState::Ongoing,
        partitions: meta.partitions.iter().cloned().collect(),
    }
}

fn ending_of(transactional_id: &str, meta: &TxnMeta, commit: bool) -> Ending {
    Ending {
        transactional_id: transactional_id.to_string(),
        producer_id: meta.producer_id,
        epoch: meta.epoch,
        commit,
        partitions: meta.partitions.iter().cloned().collect(),
        offsets: if commit {
            meta.offsets.clone()
        } else {
            Vec::new()
        },
    }
}

/// Writes the markers of `ending` to its partitions (waiting for them to be durable under
/// `fsync = always`), stores a commit's group offsets, then completes it in the coordinator.
/// Runs the storage work on the blocking pool.
pub(crate) async fn finish(broker: &Arc<Broker>, ending: Ending) -> Result<(), TxnError> {
    let b = broker.clone();
    let e = ending.clone();
    let now = rivulet_time::now_ms();
    let written = tokio::task::spawn_blocking(move || write_markers(&b, &e, now))
        .await
        .map_err(|e| {
            (
                ResponseError::UnknownServerError,
                format!("marker task failed: {e}"),
            )
        })??;
    if matches!(
        broker.durability.policy(),
        crate::config::FsyncPolicy::Always
    ) {
        for (part, offset) in &written {
            broker
                .durability
                .wait_flushed(part, offset + 1)
                .await
                .map_err(|e| (ResponseError::KafkaStorageError, e))?;
        }
    }
    if ending.commit && !ending.offsets.is_empty() {
        let mut by_group: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for o in &ending.offsets {
            by_group.entry(o.group.as_str()).or_default().push((
                (o.topic.clone(), o.partition),
                OffsetEntry {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp_ms: now,
                },
            ));
        }
        for (group, entries) in by_group {
            broker
                .groups
                .store_offsets(group, entries)
                .await
                .map_err(|e| (ResponseError::CoordinatorNotAvailable, e))?;
        }
    }
    let txns = broker.txns.clone();
    let e = ending.clone();
    let completed = tokio::task::spawn_blocking(move || txns.complete(&e, rivulet_time::now_ms()))
        .await
        .map_err(|e| {
            (
                ResponseError::UnknownServerError,
                format!("txn task failed: {e}"),
            )
        })??;
    if !completed {
        return Ok(());
    }
    let counter = if ending.commit {
        &broker.stats.transactions_committed
    } else {
        &broker.stats.transactions_aborted
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

type Written = Vec<(Arc<rivulet_log::Partition>, i64)>;

fn write_markers(broker: &Broker, ending: &Ending, now_ms: i64) -> Result<Written, TxnError> {
    let mut written = Vec::new();
    for (topic, index) in &ending.partitions {
        // A partition deleted since (its topic deleted) has nothing left to mark.
        let Some(part) = broker.logs.topic(topic).and_then(|t| t.partition(*index)) else {
            continue;
        };
        let appended = part.log.lock().append_marker(
            ending.producer_id,
            ending.epoch,
            ending.commit,
            0,
            now_ms,
        );
        match appended {
            Ok(Some(offset)) => {
                broker.durability.mark_dirty(&part);
                written.push((part, offset));
            }
            Ok(None) => {}
            Err(e) => {
                broker.note_storage_error(&format!("{topic}-{index}"), &e);
                return Err((
                    ResponseError::KafkaStorageError,
                    format!("cannot write the transaction marker to {topic}-{index}: {e}"),
                ));
            }
        }
    }
    Ok(written)
}

/// Aborts transactions past their timeout, every `abort_timed_out_interval_ms`.
pub(crate) async fn abort_timed_out(broker: Arc<Broker>) {
    let every = std::time::Duration::from_millis(broker.txns.config.abort_timed_out_interval_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let txns = broker.txns.clone();
        let now = rivulet_time::now_ms();
        let endings = match tokio::task::spawn_blocking(move || txns.expire(now)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("transaction timeout task failed: {e}");
                continue;
            }
        };
        for ending in endings {
            broker
                .stats
                .transactions_timed_out
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                transactional_id = %rivulet_log::Quoted(&ending.transactional_id),
                producer_id = ending.producer_id,
                "aborting a transaction past its timeout"
            );
            if let Err((code, msg)) = finish(&broker, ending).await {
                tracing::warn!("aborting a timed-out transaction failed ({code:?}): {msg}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
