//! Durable committed-offset store: an append-only log under `<data_dir>/__consumer_offsets/`.
//!
//! File format: a sequence of frames `[len: u32 BE][crc32c(payload): u32 BE][payload]`. Payload
//! kinds: `1` = one committed partition (group, topic, partition, offset, leader epoch, metadata,
//! commit timestamp), `2` = group tombstone (drop every offset of the group). On open the file is
//! replayed; the first frame that is short, oversized, fails its CRC or does not parse marks a torn
//! tail (crash mid-append) and the file is truncated there.
//!
//! Writes go through one dedicated writer thread: it drains every queued request, appends them,
//! fsyncs once (group commit) and only then applies them to the in-memory map and answers. So a
//! fetch never observes an offset that a crash could lose, and commits are durable before the
//! OffsetCommit response. When the file grows well past its live size it is compacted: live
//! entries are rewritten to a temp file, fsynced, renamed over the log and the directory fsynced.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::BrokerError;

/// Directory (under the data dir) holding the offsets log.
pub(crate) const OFFSETS_DIR: &str = "__consumer_offsets";
const LOG_FILE: &str = "offsets.log";
const TMP_FILE: &str = "offsets.log.compact";

const KIND_COMMIT: u8 = 1;
const KIND_GROUP_TOMBSTONE: u8 = 2;
/// Frame header: length + CRC.
const HEADER: usize = 8;
/// Anything larger is garbage (metadata is capped at a few KiB); treat it as a torn tail.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// Compaction triggers (see `needs_compaction`).
const COMPACT_MIN_BYTES: u64 = 1024 * 1024;
const COMPACT_HARD_BYTES: u64 = 64 * 1024 * 1024;
/// Bound on one group-commit batch so a flood of commits still gets answered progressively.
const MAX_BATCH: usize = 4096;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// `(topic, partition)`, ordered so "all offsets of a group" comes out sorted.
pub(crate) type TopicPartition = (String, i32);
type GroupOffsets = BTreeMap<TopicPartition, OffsetEntry>;

/// Durable mutations.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Commit {
        group: String,
        entries: Vec<(TopicPartition, OffsetEntry)>,
    },
    DeleteGroup {
        group: String,
    },
}

struct WriteReq {
    op: WriteOp,
    done: oneshot::Sender<Result<(), String>>,
}

/// The store: the applied (durable) offsets plus the writer thread.
pub(crate) struct OffsetStore {
    offsets: Arc<Mutex<HashMap<String, GroupOffsets>>>,
    tx: Mutex<Option<mpsc::Sender<WriteReq>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetStore").finish_non_exhaustive()
    }
}

impl OffsetStore {
    /// Opens (creating) `<data_dir>/__consumer_offsets/`, replays the log and starts the writer.
    pub fn open(data_dir: &Path) -> Result<OffsetStore, BrokerError> {
        let dir = data_dir.join(OFFSETS_DIR);
        std::fs::create_dir_all(&dir)?;
        // A leftover temp file is an interrupted compaction; the old log is still authoritative.
        let tmp = dir.join(TMP_FILE);
        if tmp.exists() {
            std::fs::remove_file(&tmp)?;
        }
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (offsets, valid_len) = replay(&data);
        if (valid_len as usize) < data.len() {
            tracing::warn!(
                path = %path.display(),
                valid_len,
                file_len = data.len(),
                "offsets log has a torn or corrupt tail; truncating"
            );
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        let live = live_bytes(&offsets);
        let offsets = Arc::new(Mutex::new(offsets));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir,
            file,
            file_len: valid_len,
            live_len: live,
            offsets: offsets.clone(),
            poisoned: false,
        };
        let thread = std::thread::Builder::new()
            .name("rivulet-offsets".into())
            .spawn(move || writer.run(rx))?;
        Ok(OffsetStore {
            offsets,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a durable write; the receiver resolves once it is fsynced and applied.
    /// Call while holding the group's lock so log order matches the order of group decisions.
    pub fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        let guard = self.tx.lock();
        match guard.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(req)) = tx.send(WriteReq { op, done }) {
                    let _ = req.done.send(Err("offset store writer stopped".into()));
                }
            }
            None => {
                let _ = done.send(Err("offset store is shut down".into()));
            }
        }
        rx
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<OffsetEntry> {
        self.offsets
            .lock()
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// All committed offsets of a group, sorted by topic then partition.
    pub fn all(&self, group: &str) -> Vec<(TopicPartition, OffsetEntry)> {
        self.offsets
            .lock()
            .get(group)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub fn has_offsets(&self, group: &str) -> bool {
        self.offsets
            .lock()
            .get(group)
            .is_some_and(|m| !m.is_empty())
    }

    pub fn groups(&self) -> Vec<String> {
        self.offsets.lock().keys().cloned().collect()
    }

    /// Stops the writer after it has finished (and fsynced) everything queued.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        drop(self.tx.lock().take());
        if let Some(t) = self.thread.lock().take() {
            t.join()
                .map_err(|_| BrokerError::Other("offset store writer panicked".into()))?;
        }
        Ok(())
    }
}

impl Drop for OffsetStore {
    fn drop(&mut self) {
        // Joining makes a re-open of the same directory safe right after a drop.
        let _ = self.shutdown();
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    file_len: u64,
    live_len: u64,
    offsets: Arc<Mutex<HashMap<String, GroupOffsets>>>,
    /// Set after a failed fsync: the file's durable contents are unknown, refuse further writes.
    poisoned: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriteReq>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            match result {
                Ok(()) => {
                    self.apply(&batch);
                    for req in batch {
                        let _ = req.done.send(Ok(()));
                    }
                    if self.needs_compaction() {
                        if let Err(e) = self.compact() {
                            tracing::error!(error = %e, "offsets log compaction failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "offsets log write failed");
                    let msg = e.to_string();
                    for req in batch {
                        let _ = req.done.send(Err(msg.clone()));
                    }
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[WriteReq]) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "offsets log is unusable after an earlier fsync failure",
            ));
        }
        let mut buf = Vec::new();
        for req in batch {
            match &req.op {
                WriteOp::Commit { group, entries } => {
                    for ((topic, partition), e) in entries {
                        encode_commit(&mut buf, group, topic, *partition, e);
                    }
                }
                WriteOp::DeleteGroup { group } => encode_tombstone(&mut buf, group),
            }
        }
        if let Err(e) = self.file.write_all(&buf) {
            // Cut a partial append off so later frames are not stranded behind garbage.
            if self.file.set_len(self.file_len).is_err() {
                self.poisoned = true;
            }
            return Err(e);
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(e);
        }
        self.file_len += buf.len() as u64;
        Ok(())
    }

    fn apply(&mut self, batch: &[WriteReq]) {
        let mut map = self.offsets.lock();
        for req in batch {
            match &req.op {
                WriteOp::Commit { group, entries } => {
                    let g = map.entry(group.clone()).or_default();
                    for ((topic, partition), e) in entries {
                        self.live_len += commit_frame_len(group, topic, e);
                        if let Some(old) = g.insert((topic.clone(), *partition), e.clone()) {
                            self.live_len = self
                                .live_len
                                .saturating_sub(commit_frame_len(group, topic, &old));
                        }
                    }
                }
                WriteOp::DeleteGroup { group } => {
                    if let Some(g) = map.remove(group) {
                        for ((topic, _), e) in &g {
                            self.live_len = self
                                .live_len
                                .saturating_sub(commit_frame_len(group, topic, e));
                        }
                    }
                }
            }
        }
    }

    fn needs_compaction(&self) -> bool {
        (self.file_len > COMPACT_MIN_BYTES && self.file_len > 4 * self.live_len)
            || (self.file_len > COMPACT_HARD_BYTES && self.file_len > 2 * self.live_len)
    }

    /// Rewrites the live entries to a temp file and atomically swaps it in.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.live_len as usize);
        {
            let map = self.offsets.lock();
            for (group, offsets) in map.iter() {
                for ((topic, partition), e) in offsets {
                    encode_commit(&mut buf, group, topic, *partition, e);
                }
            }
        }
        let tmp = self.dir.join(TMP_FILE);
        let path = self.dir.join(LOG_FILE);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Past the rename our handle points at the unlinked old file: if we cannot switch to
        // the new one, appending to the old handle would lose data, so stop writing instead.
        let swapped = File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .and_then(|()| OpenOptions::new().append(true).open(&path));
        match swapped {
            Ok(f) => self.file = f,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        }
        let before = self.file_len;
        self.file_len = buf.len() as u64;
        self.live_len = self.file_len;
        tracing::info!(before, after = self.file_len, "compacted offsets log");
        Ok(())
    }
}

fn live_bytes(map: &HashMap<String, GroupOffsets>) -> u64 {
    map.iter()
        .flat_map(|(g, o)| o.iter().map(move |((t, _), e)| commit_frame_len(g, t, e)))
        .sum()
}

fn commit_frame_len(group: &str, topic: &str, e: &OffsetEntry) -> u64 {
    // header + kind + 3 length-prefixed strings + partition + offset + epoch + timestamp
    (HEADER + 1 + 4 + group.len() + 4 + topic.len() + 4 + 8 + 4 + 4 + e.metadata.len() + 8) as u64
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c(payload).to_be_bytes());
    buf.extend_from_slice(payload);
}

fn encode_commit(buf: &mut Vec<u8>, group: &str, topic: &str, partition: i32, e: &OffsetEntry) {
    let mut p = Vec::with_capacity(64 + group.len() + topic.len() + e.metadata.len());
    p.push(KIND_COMMIT);
    put_str(&mut p, group);
    put_str(&mut p, topic);
    p.extend_from_slice(&partition.to_be_bytes());
    p.extend_from_slice(&e.offset.to_be_bytes());
    p.extend_from_slice(&e.leader_epoch.to_be_bytes());
    put_str(&mut p, &e.metadata);
    p.extend_from_slice(&e.commit_timestamp_ms.to_be_bytes());
    frame(buf, &p);
}

fn encode_tombstone(buf: &mut Vec<u8>, group: &str) {
    let mut p = Vec::with_capacity(5 + group.len());
    p.push(KIND_GROUP_TOMBSTONE);
    put_str(&mut p, group);
    frame(buf, &p);
}

/// Bounds-checked reader over one payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn i32(&mut self) -> Option<i32> {
        self.arr().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.arr().map(i64::from_be_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.arr()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

enum Record {
    Commit {
        group: String,
        tp: TopicPartition,
        entry: OffsetEntry,
    },
    Tombstone {
        group: String,
    },
}

fn parse_payload(p: &[u8]) -> Option<Record> {
    let mut c = Cursor(p);
    let rec = match c.u8()? {
        KIND_COMMIT => {
            let group = c.string()?;
            let topic = c.string()?;
            let partition = c.i32()?;
            let offset = c.i64()?;
            let leader_epoch = c.i32()?;
            let metadata = c.string()?;
            let commit_timestamp_ms = c.i64()?;
            Record::Commit {
                group,
                tp: (topic, partition),
                entry: OffsetEntry {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                },
            }
        }
        KIND_GROUP_TOMBSTONE => Record::Tombstone { group: c.string()? },
        _ => return None,
    };
    // Trailing bytes mean a format we do not understand: treat as corruption.
    c.0.is_empty().then_some(rec)
}

/// Replays frames; returns the state and the length of the valid prefix.
fn replay(data: &[u8]) -> (HashMap<String, GroupOffsets>, u64) {
    let mut map: HashMap<String, GroupOffsets> = HashMap::new();
    let mut pos = 0usize;
    while data.len() - pos >= HEADER {
        let mut h = Cursor(&data[pos..pos + HEADER]);
        let (Some(len), Some(crc)) = (h.arr::<4>(), h.arr::<4>()) else {
            break;
        };
        let len = u32::from_be_bytes(len) as usize;
        let crc = u32::from_be_bytes(crc);
        if len > MAX_PAYLOAD || data.len() - pos - HEADER < len {
            break;
        }
        let payload = &data[pos + HEADER..pos + HEADER + len];
        if crc32c(payload) != crc {
            break;
        }
        match parse_payload(payload) {
            Some(Record::Commit { group, tp, entry }) => {
                map.entry(group).or_default().insert(tp, entry);
            }
            Some(Record::Tombstone { group }) => {
                map.remove(&group);
            }
            None => break,
        }
        pos += HEADER + len;
    }
    (map, pos as u64)
}

use crc32c::crc32c;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(offset: i64) -> OffsetEntry {
        OffsetEntry {
            offset,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1,
        }
    }

    #[tokio::test]
    async fn commit_survives_reopen_and_tombstone_deletes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            let op = WriteOp::Commit {
                group: "g".into(),
                entries: vec![(("t".into(), 0), entry(5))],
            };
            s.submit(op).await.unwrap().unwrap();
            let op = WriteOp::Commit {
                group: "h".into(),
                entries: vec![(("t".into(), 1), entry(7))],
            };
            s.submit(op).await.unwrap().unwrap();
            s.submit(WriteOp::DeleteGroup { group: "h".into() })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(s.get("g", "t", 0), Some(entry(5)));
        }
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.get("g", "t", 0), Some(entry(5)));
        assert!(!s.has_offsets("h"));
    }

    #[tokio::test]
    async fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            for i in 0..3 {
                let op = WriteOp::Commit {
                    group: "g".into(),
                    entries: vec![(("t".into(), i), entry(i as i64))],
                };
                s.submit(op).await.unwrap().unwrap();
            }
        }
        let path = dir.path().join(OFFSETS_DIR).join(LOG_FILE);
        let full = std::fs::metadata(&path).unwrap().len();
        // Chop the last frame in half: simulates a crash mid-append.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 10).unwrap();
        drop(f);
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.all("g").len(), 2);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < full - 10, "file truncated to the valid prefix");
        // Appends after the truncation replay fine.
        let op = WriteOp::Commit {
            group: "g".into(),
            entries: vec![(("t".into(), 9), entry(9))],
        };
        s.submit(op).await.unwrap().unwrap();
        drop(s);
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.all("g").len(), 3);
    }

    #[tokio::test]
    async fn corrupt_crc_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            let op = WriteOp::Commit {
                group: "g".into(),
                entries: vec![(("t".into(), 0), entry(1))],
            };
            s.submit(op).await.unwrap().unwrap();
            let op = WriteOp::Commit {
                group: "g".into(),
                entries: vec![(("t".into(), 1), entry(2))],
            };
            s.submit(op).await.unwrap().unwrap();
        }
        let path = dir.path().join(OFFSETS_DIR).join(LOG_FILE);
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xFF;
        std::fs::write(&path, &data).unwrap();
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.all("g").len(), 1);
    }

    #[tokio::test]
    async fn compaction_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let big = "x".repeat(2000);
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            // ~2 KiB per frame, same partition over and over: forces compaction past 1 MiB.
            for i in 0..1200 {
                let e = OffsetEntry {
                    offset: i,
                    leader_epoch: -1,
                    metadata: big.clone(),
                    commit_timestamp_ms: 0,
                };
                let op = WriteOp::Commit {
                    group: "g".into(),
                    entries: vec![(("t".into(), 0), e)],
                };
                s.submit(op).await.unwrap().unwrap();
            }
        }
        let path = dir.path().join(OFFSETS_DIR).join(LOG_FILE);
        assert!(std::fs::metadata(&path).unwrap().len() < COMPACT_MIN_BYTES * 2);
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.get("g", "t", 0).map(|e| e.offset), Some(1199));
    }
}
