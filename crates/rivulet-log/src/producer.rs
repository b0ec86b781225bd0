//! Idempotent and transactional producer state per partition: for each producer id, its epoch,
//! the metadata of its last five batches (so that retries are answered with the original
//! offsets and gaps are refused as Kafka does, `ProducerStateManager`) and the first offset of
//! its open transaction; plus the partition's aborted transactions, which read_committed
//! fetches return. Persisted as a snapshot and rebuilt from batch headers after the snapshot on
//! recovery.
//!
//! The last stable offset (LSO) is the first offset of the oldest open transaction (the log end
//! when none is open): read_committed consumers read below it only.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::{increment_sequence, BatchHeader};
use crate::error::{LogError, Result};
use crate::fsutil;

/// Outcome of checking one batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New batch in sequence: append it.
    Append,
    /// Exact retry of one of the last five batches: answer with its original offsets.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, the
/// client's max.in.flight.requests.per.connection limit for idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

/// Producers silent for this long (by batch timestamp) are forgotten at retention time, as
/// Kafka's `producer.id.expiration.ms` default; a forgotten producer is treated as unknown.
pub const PRODUCER_EXPIRATION_MS: i64 = 86_400_000;

/// File name of the snapshot inside the partition directory.
pub(crate) const SNAPSHOT_FILE: &str = "producer.snapshot";
const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMeta>,
    /// Max timestamp of the producer's newest batch (for expiration).
    pub last_timestamp: i64,
    /// First offset of the producer's open transaction in this partition.
    #[serde(default)]
    pub txn_first_offset: Option<i64>,
}

/// A transaction that ended with an ABORT marker at `last_offset`: read_committed consumers
/// drop this producer's records from `first_offset` up to the marker (Kafka's `.txnindex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(MAX_CACHED_BATCHES),
            last_timestamp: -1,
            txn_first_offset: None,
        }
    }

    /// A transaction marker at `offset`: closes the open transaction (recorded in `aborted`
    /// if it is an ABORT). A marker with a newer epoch (a coordinator fencing the producer)
    /// starts a fresh sequence history.
    fn apply_marker(
        &mut self,
        producer_id: i64,
        h: &BatchHeader,
        commit: bool,
        offset: i64,
        aborted: &mut Vec<AbortedTxn>,
    ) {
        if h.producer_epoch > self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        if let Some(first_offset) = self.txn_first_offset.take() {
            if !commit {
                aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                });
            }
        }
        self.last_timestamp = self.last_timestamp.max(h.max_timestamp);
    }

    /// Records a stored batch (an epoch change starts a fresh history).
    fn apply(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        self.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
            last_offset: base_offset + i64::from(h.last_offset_delta),
        });
        while self.batches.len() > MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.last_timestamp = self.last_timestamp.max(h.max_timestamp);
    }

    /// Kafka's sequence/epoch rules for a batch from this (known) producer.
    fn check(&self, producer_id: i64, h: &BatchHeader) -> Result<SequenceCheck> {
        if h.producer_epoch < self.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id,
                current: self.epoch,
                got: h.producer_epoch,
            });
        }
        let first = h.base_sequence;
        if h.producer_epoch > self.epoch {
            // A bumped epoch restarts sequences at 0.
            if first != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id,
                    expected: 0,
                    got: first,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last = h.last_sequence();
        if let Some(b) = self
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        match self.batches.back() {
            // Known epoch but no history (e.g. from an old snapshot): nothing to compare with.
            None => Ok(SequenceCheck::Append),
            Some(newest) => {
                let expected = increment_sequence(newest.last_seq, 1);
                if first == expected {
                    Ok(SequenceCheck::Append)
                } else {
                    Err(LogError::OutOfOrderSequence {
                        producer_id,
                        expected,
                        got: first,
                    })
                }
            }
        }
    }
}

/// Result of [`ProducerStateManager::prepare`].
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The payload is a single batch that was already stored.
    Duplicate { base_offset: i64, last_offset: i64 },
    /// State to install once the write has succeeded.
    Append(Staged),
}

/// Producer entries and aborted transactions to install after a successful write.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    entries: Vec<(i64, ProducerEntry)>,
    aborted: Vec<AbortedTxn>,
}

/// All producers of one partition, and its aborted transactions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// In marker order (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    /// The state reflects every batch below this offset.
    offset: i64,
    producers: Vec<(i64, ProducerEntry)>,
    #[serde(default)]
    aborted: Vec<AbortedTxn>,
}

impl ProducerStateManager {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Checks every batch of a payload (`base_offsets[i]` is where batch `i` will land) without
    /// changing the state; the returned entries are installed with [`Self::commit`] after the
    /// write, so a failed write leaves the state untouched.
    pub fn prepare(&self, headers: &[BatchHeader], base_offsets: &[i64]) -> Result<Prepared> {
        // Few producers per payload (normally one), so a Vec beats a map here.
        let mut staged: Vec<(i64, ProducerEntry)> = Vec::new();
        for (h, &base) in headers.iter().zip(base_offsets) {
            let pid = h.producer_id;
            if pid < 0 {
                continue;
            }
            if h.base_sequence < 0 {
                return Err(LogError::InvalidRecord(format!(
                    "batch from producer {pid} has no sequence number"
                )));
            }
            let slot = staged.iter().position(|(p, _)| *p == pid);
            let current = match slot {
                Some(i) => Some(&staged[i].1),
                None => self.producers.get(&pid),
            };
            if let Some(entry) = current {
                if let SequenceCheck::Duplicate {
                    base_offset,
                    last_offset,
                } = entry.check(pid, h)?
                {
                    if headers.len() == 1 {
                        return Ok(Prepared::Duplicate {
                            base_offset,
                            last_offset,
                        });
                    }
                    return Err(LogError::InvalidRecord(format!(
                        "duplicate batch from producer {pid} inside a multi-batch payload"
                    )));
                }
            }
            // Unknown producers are accepted at any sequence: their state may have expired.
            let mut next = current
                .cloned()
                .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
            next.apply(h, base);
            if h.is_transactional() && next.txn_first_offset.is_none() {
                next.txn_first_offset = Some(base);
            }
            match slot {
                Some(i) => staged[i].1 = next,
                None => staged.push((pid, next)),
            }
        }
        Ok(Prepared::Append(Staged {
            entries: staged,
            aborted: Vec::new(),
        }))
    }

    /// Checks a transaction marker (batch `h`, to be stored at `offset`) without changing the
    /// state: the producer's epoch must not be older than the one it last wrote with.
    pub fn prepare_marker(&self, h: &BatchHeader, commit: bool, offset: i64) -> Result<Staged> {
        let pid = h.producer_id;
        let mut entry = self
            .producers
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: pid,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        let mut aborted = Vec::new();
        entry.apply_marker(pid, h, commit, offset, &mut aborted);
        Ok(Staged {
            entries: vec![(pid, entry)],
            aborted,
        })
    }

    pub fn commit(&mut self, staged: Staged) {
        for (pid, entry) in staged.entries {
            self.producers.insert(pid, entry);
        }
        self.aborted.extend(staged.aborted);
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn ongoing(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// The first offset of the oldest open transaction, or `log_end` when none is open.
    pub fn last_stable_offset(&self, log_end: i64) -> i64 {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
            .map_or(log_end, |first| first.min(log_end))
    }

    /// Open transactions: (producer id, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        let mut open: Vec<(i64, i64)> = self
            .producers
            .iter()
            .filter_map(|(pid, e)| e.txn_first_offset.map(|f| (*pid, f)))
            .collect();
        open.sort_unstable_by_key(|(_, f)| *f);
        open
    }

    /// Aborted transactions that overlap `[from, to)`, in marker order.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the aborted transactions whose ABORT markers the cleaner removed
    /// ((producer id, marker offset)).
    pub fn forget_aborted(&mut self, removed: &[(i64, i64)]) {
        self.aborted
            .retain(|a| !removed.contains(&(a.producer_id, a.last_offset)));
    }

    /// Forgets aborted transactions that ended below `log_start` (their records are gone).
    pub fn prune_aborted(&mut self, log_start: i64) {
        let keep_from = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..keep_from);
    }

    /// Applies a stored batch during recovery, without checks (the log is the truth);
    /// `marker` is what a control batch says (COMMIT: `Some(true)`).
    pub fn replay(&mut self, h: &BatchHeader, marker: Option<bool>) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        if h.is_control() {
            if let Some(commit) = marker {
                entry.apply_marker(h.producer_id, h, commit, h.base_offset, &mut self.aborted);
            }
            return;
        }
        if h.producer_epoch >= entry.epoch {
            entry.apply(h, h.base_offset);
            if h.is_transactional() && entry.txn_first_offset.is_none() {
                entry.txn_first_offset = Some(h.base_offset);
            }
        }
    }

    /// Forgets producers whose newest batch is older than `now_ms - max_age_ms`.
    pub fn expire(&mut self, now_ms: i64, max_age_ms: i64) {
        let cutoff = now_ms.saturating_sub(max_age_ms);
        // A producer with an open transaction is kept: its transaction still holds the LSO.
        self.producers
            .retain(|_, e| e.last_timestamp >= cutoff || e.txn_first_offset.is_some());
    }

    /// Atomically writes the snapshot, valid for every batch below `offset`.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<()> {
        let mut producers: Vec<(i64, ProducerEntry)> = self
            .producers
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        producers.sort_by_key(|(k, _)| *k);
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            offset,
            producers,
            aborted: self.aborted.clone(),
        };
        let json = serde_json::to_vec(&snap).map_err(|e| {
            LogError::io(
                dir.join(SNAPSHOT_FILE),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        // A checksum line in front: a bit flip must not silently resurrect wrong sequences.
        let mut out = format!("{:08x}\n", crc32c::crc32c(&json)).into_bytes();
        out.extend_from_slice(&json);
        fsutil::write_atomic(&dir.join(SNAPSHOT_FILE), &out)
    }

    /// Loads the snapshot: `(offset, state)`, or None when missing or invalid in any way.
    pub fn load_snapshot(dir: &Path) -> Option<(i64, ProducerStateManager)> {
        let path = dir.join(SNAPSHOT_FILE);
        let raw = std::fs::read(&path).ok()?;
        let nl = raw.iter().position(|b| *b == b'\n')?;
        let crc = u32::from_str_radix(std::str::from_utf8(&raw[..nl]).ok()?, 16).ok()?;
        let json = &raw[nl + 1..];
        if crc32c::crc32c(json) != crc {
            tracing::warn!(path = %path.display(), "producer snapshot checksum mismatch, rebuilding");
            return None;
        }
        let snap: Snapshot = serde_json::from_slice(json).ok()?;
        if snap.version != SNAPSHOT_VERSION {
            return None;
        }
        Some((
            snap.offset,
            ProducerStateManager {
                producers: snap.producers.into_iter().collect(),
                aborted: snap.aborted,
            },
        ))
    }
}
