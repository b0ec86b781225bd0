//! All topics and partitions under one data directory: creation, deletion, configs, the
//! recovery checkpoint and the clean-shutdown marker, producer id allocation.
//!
//! Metadata files are replaced atomically (temp file, fsync, rename, directory fsync). The
//! topic file is the commit point of every change to a topic's partitions: creation and growth
//! make the new partition directories first and write the topic file last; deletion removes it
//! first. A partition directory the topic files do not account for (no topic file, or an index
//! at or past its count) is therefore the remnant of an interrupted create, grow or delete and
//! is removed on the next start, so a failure or a crash at any point leaves a data directory
//! that opens, with the same topics as before the change or after it.
//!
//! Admin work is bounded before it starts ([`TopicLimits`]), runs on the caller's thread (the
//! broker uses its blocking pool) and stops early once [`LogManager::begin_shutdown`] is called,
//! undoing what it did.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::filepool::{default_max_open_files, FilePool, FilePoolStats};
use crate::fsutil::{remove_if_exists, sync_dir, write_atomic};
use crate::partition::{PartitionLog, Recovery};

const META_FILE: &str = "meta.properties";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
const TOPICS_DIR: &str = "topics";
/// Producer ids are reserved on disk this many at a time, so allocation rarely fsyncs.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Suffix of partition directories being deleted (renamed first so a recreated topic of the same
/// name can never share a directory with a still-open old partition).
const DELETE_SUFFIX: &str = "-delete";

/// Limits on topic metadata, checked before any directory is made (the broker sets them from
/// its flags). Each bounds memory, descriptors and the time one admin request can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Most partitions one topic may have, at creation and after growth
    /// ([`LogError::InvalidPartitions`] beyond).
    pub max_partitions_per_topic: i32,
    /// Most topics in the data directory ([`LogError::PolicyViolation`] beyond).
    pub max_topics: usize,
    /// Most partitions in the data directory, all topics together
    /// ([`LogError::PolicyViolation`] beyond).
    pub max_partitions: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits {
            max_partitions_per_topic: 10_000,
            max_topics: 10_000,
            max_partitions: 100_000,
        }
    }
}

/// How a [`LogManager`] uses the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// Segment files kept open at once (see `filepool.rs`); the default is
    /// [`default_max_open_files`].
    pub max_open_files: usize,
    pub limits: TopicLimits,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_open_files: default_max_open_files(),
            limits: TopicLimits::default(),
        }
    }
}

/// Kafka's topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(LogError::InvalidTopic {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("name is empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Mutex<PartitionLog>,
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
    /// Overrides set on this topic (key -> value); the rest come from the broker defaults.
    pub overrides: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let i = usize::try_from(index).ok()?;
        self.partitions.read().get(i).cloned()
    }
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.read().len()).unwrap_or(i32::MAX)
    }
}

/// Contents of `topics/<topic>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct TopicFile {
    id: String,
    partitions: i32,
    #[serde(default)]
    overrides: BTreeMap<String, String>,
}

/// Producer ids handed out from `next` up to (excluding) `block_end`, which is on disk.
#[derive(Debug)]
struct ProducerIdBlock {
    next: i64,
    block_end: i64,
}

#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    cluster_id: String,
    defaults: LogConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic metadata changes (create/delete/alter) and their files.
    admin: Mutex<()>,
    /// Set by [`LogManager::begin_shutdown`]: admin work stops at its next step.
    closing: AtomicBool,
    files: Arc<FilePool>,
    limits: TopicLimits,
    /// Serialises checkpoint writes (they share a temp file name).
    checkpoint: Mutex<()>,
    producer_ids: Mutex<ProducerIdBlock>,
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn topic_file(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(TOPICS_DIR).join(format!("{topic}.json"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |e| LogError::io(path, e)
}

fn invalid_data(path: &Path, msg: String) -> LogError {
    LogError::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
    )
}

/// Kafka-style cluster id: URL-safe base64 (no padding) of a random UUID.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Reads or creates meta.properties; returns the cluster id.
fn load_or_create_meta(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(META_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cluster.id="))
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
            .ok_or_else(|| invalid_data(&path, "no cluster.id".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = new_cluster_id();
            let text = format!("version=1\ncluster.id={id}\nnode.id=0\n");
            write_atomic(&path, text.as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Parses Kafka's checkpoint text format; an unreadable file means "recover everything".
fn read_checkpoint(path: &Path) -> HashMap<(String, i32), i64> {
    let mut map = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return map;
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        tracing::warn!(path = %path.display(), "unknown checkpoint version, recovering all partitions");
        return map;
    }
    let _count = lines.next();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(t), Some(p), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(p), Ok(o)) = (p.parse::<i32>(), o.parse::<i64>()) {
            map.insert((t.to_string(), p), o);
        }
    }
    map
}

/// Splits `<topic>-<n>` into its parts (topic names may themselves contain '-').
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    validate_topic_name(topic).ok()?;
    Some((topic, index.parse().ok()?))
}

impl LogManager {
    /// Opens the data directory (creating it), recovering every partition: fast if the previous
    /// run left the clean-shutdown marker, otherwise from the recovery checkpoint. Removes the
    /// marker so a crash from now on is detected.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<LogManager> {
        Self::open_with(data_dir, defaults, StorageOptions::default())
    }

    /// [`Self::open`] with explicit limits and open-file budget.
    pub fn open_with(
        data_dir: &Path,
        defaults: LogConfig,
        options: StorageOptions,
    ) -> Result<LogManager> {
        let pool = FilePool::new(options.max_open_files);
        let topics_dir = data_dir.join(TOPICS_DIR);
        std::fs::create_dir_all(&topics_dir).map_err(io_err(&topics_dir))?;
        let cluster_id = load_or_create_meta(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let checkpoint = if clean {
            HashMap::new()
        } else {
            read_checkpoint(&data_dir.join(CHECKPOINT_FILE))
        };

        // Topic files first: they decide which partition directories are live.
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(io_err(&topics_dir))? {
            let entry = entry.map_err(io_err(&topics_dir))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.ends_with(".tmp") {
                remove_if_exists(&path)?;
            } else if let Some(topic) = name.strip_suffix(".json") {
                let raw = std::fs::read(&path).map_err(io_err(&path))?;
                let tf: TopicFile =
                    serde_json::from_slice(&raw).map_err(|e| invalid_data(&path, e.to_string()))?;
                files.push((topic.to_string(), tf, path));
            }
        }
        let mut topics = BTreeMap::new();
        for (name, tf, path) in files {
            let id = Uuid::parse_str(&tf.id).map_err(|e| invalid_data(&path, e.to_string()))?;
            let config = defaults.with_overrides(&tf.overrides).unwrap_or_else(|e| {
                tracing::warn!(topic = %name, error = %e, "invalid stored overrides, using defaults");
                defaults.clone()
            });
            let mut parts = Vec::new();
            for index in 0..tf.partitions.max(0) {
                let recovery = if clean {
                    Recovery::Clean
                } else {
                    Recovery::From(checkpoint.get(&(name.clone(), index)).copied().unwrap_or(0))
                };
                let log = PartitionLog::open_in(
                    &pool,
                    &partition_dir(data_dir, &name, index),
                    config.clone(),
                    recovery,
                )?;
                parts.push(Arc::new(Partition {
                    topic: name.clone(),
                    index,
                    log: Mutex::new(log),
                }));
            }
            let topic = Topic {
                name: name.clone(),
                id,
                partitions: RwLock::new(parts),
                overrides: RwLock::new(tf.overrides),
            };
            topics.insert(name, Arc::new(topic));
        }

        // Orphans: interrupted deletes (no topic file, or beyond the partition count).
        for entry in std::fs::read_dir(data_dir).map_err(io_err(data_dir))? {
            let entry = entry.map_err(io_err(data_dir))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !path.is_dir() {
                // A checkpoint or metadata write interrupted before its rename.
                if name.starts_with('.') && name.ends_with(".tmp") {
                    remove_if_exists(&path)?;
                }
                continue;
            }
            let orphan = if name.ends_with(DELETE_SUFFIX) {
                true
            } else if let Some((topic, index)) = parse_partition_dir(&name) {
                topics
                    .get(topic)
                    .is_none_or(|t: &Arc<Topic>| index >= t.partition_count())
            } else {
                false
            };
            if orphan {
                tracing::info!(dir = %path.display(), "removing orphan partition directory");
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }

        if clean {
            std::fs::remove_file(&marker).map_err(io_err(&marker))?;
        }
        sync_dir(data_dir)?;

        let block_path = data_dir.join(PRODUCER_ID_BLOCK_FILE);
        let next_block = match std::fs::read_to_string(&block_path) {
            Ok(t) => t
                .trim()
                .parse::<i64>()
                .map_err(|e| invalid_data(&block_path, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(LogError::io(&block_path, e)),
        };
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            cluster_id,
            defaults,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closing: AtomicBool::new(false),
            files: pool,
            limits: options.limits,
            checkpoint: Mutex::new(()),
            producer_ids: Mutex::new(ProducerIdBlock {
                next: next_block,
                block_end: next_block,
            }),
        })
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// Persistent cluster id from meta.properties (generated on first start).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }
    /// All topics sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }
    /// Effective config of a topic (defaults + overrides).
    pub fn topic_config(&self, name: &str) -> Result<LogConfig> {
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopicOrPartition(name.to_string()))?;
        let overrides = topic.overrides.read().clone();
        self.defaults.with_overrides(&overrides)
    }

    fn write_topic_file(&self, name: &str, tf: &TopicFile) -> Result<()> {
        let path = topic_file(&self.data_dir, name);
        let json = serde_json::to_vec_pretty(tf).map_err(|e| invalid_data(&path, e.to_string()))?;
        write_atomic(&path, &json)
    }

    /// The limits admin requests are checked against.
    pub fn limits(&self) -> TopicLimits {
        self.limits
    }

    /// Open segment files and the pool's counters.
    pub fn file_stats(&self) -> FilePoolStats {
        self.files.stats()
    }

    /// Makes admin work in progress stop at its next step (undoing what it did) and refuses new
    /// admin work with [`LogError::ShuttingDown`]. Called first on shutdown, so a long topic
    /// creation never holds it up.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    fn check_running(&self) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(LogError::ShuttingDown);
        }
        Ok(())
    }

    /// Refuses a change that would take the data directory past its totals.
    fn check_totals(&self, new_topics: usize, new_partitions: usize) -> Result<()> {
        let topics = self.topics.read();
        let limits = &self.limits;
        if topics.len() + new_topics > limits.max_topics {
            return Err(LogError::PolicyViolation(format!(
                "the broker has {} topics and allows at most {} (--max-topics)",
                topics.len(),
                limits.max_topics
            )));
        }
        let partitions: usize = topics.values().map(|t| t.partitions.read().len()).sum();
        if partitions + new_partitions > limits.max_partitions {
            return Err(LogError::PolicyViolation(format!(
                "{new_partitions} more partitions would make {} on the broker, which allows at \
                 most {} (--max-partitions)",
                partitions + new_partitions,
                limits.max_partitions
            )));
        }
        Ok(())
    }

    fn check_partition_count(&self, name: &str, count: i32) -> Result<()> {
        let max = self.limits.max_partitions_per_topic;
        if count > max {
            return Err(LogError::InvalidPartitions(format!(
                "topic {name} would have {count} partitions; at most {max} are allowed per \
                 topic (--max-partitions-per-topic)"
            )));
        }
        Ok(())
    }

    /// Makes the directories of partitions `range` as empty logs (removing stale leftovers
    /// of the same name first: they belong to no topic). On any failure, or when shutdown
    /// begins, removes what it made and returns the error; the caller writes the topic file
    /// only after this succeeded.
    fn make_partitions(
        &self,
        name: &str,
        range: std::ops::Range<i32>,
        config: &LogConfig,
    ) -> Result<Vec<Arc<Partition>>> {
        let mut made = Vec::with_capacity(range.len());
        let result = range.clone().try_for_each(|index| {
            self.check_running()?;
            let dir = partition_dir(&self.data_dir, name, index);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            let log = PartitionLog::open_inner(
                &self.files,
                &dir,
                config.clone(),
                Recovery::Clean,
                false,
            )?;
            made.push(Arc::new(Partition {
                topic: name.to_string(),
                index,
                log: Mutex::new(log),
            }));
            Ok(())
        });
        // The new directories and their files are durable before the topic file names them:
        // one pass of fsyncs after all of them (see `PartitionLog::open_inner`).
        let result = result.and_then(|()| {
            for p in &made {
                self.check_running()?;
                sync_dir(&partition_dir(&self.data_dir, name, p.index))?;
            }
            sync_dir(&self.data_dir)
        });
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                drop(made);
                self.remove_partition_dirs(name, range);
                Err(e)
            }
        }
    }

    /// Best-effort removal of partition directories that no topic file accounts for; whatever
    /// remains is removed as an orphan on the next start.
    fn remove_partition_dirs(&self, name: &str, range: std::ops::Range<i32>) {
        for index in range {
            let dir = partition_dir(&self.data_dir, name, index);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove partition directory of a failed change; it goes on the next start");
                }
            }
        }
    }

    /// Creates a topic: all of its partitions or nothing (see the module docs).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(LogError::InvalidPartitions(format!(
                "topic needs at least one partition, got {partitions}"
            )));
        }
        self.check_partition_count(name, partitions)?;
        let config = self.defaults.with_overrides(&overrides)?;
        self.check_running()?;
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(LogError::TopicAlreadyExists(name.to_string()));
        }
        self.check_totals(1, usize::try_from(partitions).unwrap_or(usize::MAX))?;
        let id = Uuid::new_v4();
        let make = |parts| Topic {
            name: name.to_string(),
            id,
            partitions: RwLock::new(parts),
            overrides: RwLock::new(overrides.clone()),
        };
        if validate_only {
            return Ok(Arc::new(make(Vec::new())));
        }
        let parts = self.make_partitions(name, 0..partitions, &config)?;
        let written = self.check_running().and_then(|()| {
            self.write_topic_file(
                name,
                &TopicFile {
                    id: id.to_string(),
                    partitions,
                    overrides: overrides.clone(),
                },
            )
        });
        if let Err(e) = written {
            drop(parts);
            self.remove_partition_dirs(name, 0..partitions);
            return Err(e);
        }
        let topic = Arc::new(make(parts));
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid> {
        self.check_running()?;
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopicOrPartition(name.to_string()))?;
        // The topic file goes first: after a crash the remaining directories are orphans.
        let path = topic_file(&self.data_dir, name);
        remove_if_exists(&path)?;
        sync_dir(&self.data_dir.join(TOPICS_DIR))?;
        self.topics.write().remove(name);
        let count = topic.partition_count();
        for index in 0..count {
            if self.closing.load(Ordering::SeqCst) {
                // The topic is gone already; the next start removes the rest as orphans.
                break;
            }
            let dir = partition_dir(&self.data_dir, name, index);
            if !dir.exists() {
                continue;
            }
            // File names are limited to 255 bytes: like Kafka, shorten the topic part so a
            // 249-character topic can still be deleted (names are ASCII, so slicing is safe).
            let mut prefix = format!("{name}-{index}");
            prefix.truncate(255 - 1 - 32 - DELETE_SUFFIX.len());
            let doomed = self.data_dir.join(format!(
                "{prefix}.{}{DELETE_SUFFIX}",
                Uuid::new_v4().simple()
            ));
            std::fs::rename(&dir, &doomed).map_err(io_err(&dir))?;
            if let Err(e) = std::fs::remove_dir_all(&doomed) {
                // Retried at the next start (the `-delete` suffix marks it).
                tracing::warn!(dir = %doomed.display(), error = %e, "removing deleted partition failed");
            }
        }
        sync_dir(&self.data_dir)?;
        Ok(topic.id)
    }

    /// Grows a topic to `total` partitions (never shrinks: InvalidPartitions), all new
    /// partitions or none (see the module docs).
    pub fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<()> {
        self.check_running()?;
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopicOrPartition(name.to_string()))?;
        let current = topic.partition_count();
        if total <= current {
            return Err(LogError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count {total} must be larger"
            )));
        }
        self.check_partition_count(name, total)?;
        self.check_totals(0, usize::try_from(total - current).unwrap_or(usize::MAX))?;
        if validate_only {
            return Ok(());
        }
        let overrides = topic.overrides.read().clone();
        let config = self.defaults.with_overrides(&overrides)?;
        let new_parts = self.make_partitions(name, current..total, &config)?;
        let written = self.check_running().and_then(|()| {
            self.write_topic_file(
                name,
                &TopicFile {
                    id: topic.id.to_string(),
                    partitions: total,
                    overrides,
                },
            )
        });
        if let Err(e) = written {
            drop(new_parts);
            self.remove_partition_dirs(name, current..total);
            return Err(e);
        }
        topic.partitions.write().extend(new_parts);
        Ok(())
    }

    /// Replaces the topic's overrides (validated first) and applies them to open partitions.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let _admin = self.admin.lock();
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopicOrPartition(name.to_string()))?;
        let config = self.defaults.with_overrides(&overrides)?;
        if validate_only {
            return Ok(());
        }
        self.write_topic_file(
            name,
            &TopicFile {
                id: topic.id.to_string(),
                partitions: topic.partition_count(),
                overrides: overrides.clone(),
            },
        )?;
        *topic.overrides.write() = overrides;
        for p in topic.partitions.read().iter() {
            p.log.lock().set_config(config.clone());
        }
        Ok(())
    }
    /// Every partition of every topic.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.read().clone())
            .collect()
    }
    /// Allocates a new producer id, never reused across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64> {
        let mut block = self.producer_ids.lock();
        if block.next >= block.block_end {
            // Reserve the next block on disk before handing out any id from it, so a crash
            // can only skip ids, never repeat them.
            let end = block.block_end + PRODUCER_ID_BLOCK_SIZE;
            write_atomic(
                &self.data_dir.join(PRODUCER_ID_BLOCK_FILE),
                format!("{end}\n").as_bytes(),
            )?;
            block.next = block.block_end;
            block.block_end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
    /// Atomically rewrites recovery-point-offset-checkpoint from each partition's flushed offset.
    pub fn write_recovery_checkpoint(&self) -> Result<()> {
        let _guard = self.checkpoint.lock();
        let mut lines = Vec::new();
        for p in self.partitions() {
            let flushed = p.log.lock().flushed_offset();
            lines.push(format!("{} {} {}", p.topic, p.index, flushed));
        }
        let mut text = format!("0\n{}\n", lines.len());
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        write_atomic(&self.data_dir.join(CHECKPOINT_FILE), text.as_bytes())
    }
    /// Applies retention to every partition; returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        let mut first_err = None;
        for p in self.partitions() {
            match p.log.lock().enforce_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }
    /// One cleaner round over every partition of a compacted topic (`cleaner.rs`): each
    /// partition that is due is planned and swapped under its lock and cleaned without it.
    /// Stops early at shutdown (the pass in progress is discarded). Returns what was done.
    pub fn clean(&self, now_ms: i64) -> Result<crate::cleaner::CleanStats> {
        let mut total = crate::cleaner::CleanStats::default();
        let mut first_err = None;
        for p in self.partitions() {
            if self.closing.load(Ordering::Acquire) {
                break;
            }
            let Some(plan) = p.log.lock().clean_plan(now_ms) else {
                continue;
            };
            let stop = || self.closing.load(Ordering::Acquire);
            let outcome = crate::cleaner::execute(plan, &stop).and_then(|out| {
                let stats = out.stats;
                if stop() {
                    return Err(LogError::ShuttingDown);
                }
                p.log.lock().commit_clean(out).map(|done| (done, stats))
            });
            match outcome {
                Ok((true, s)) => {
                    tracing::info!(
                        topic = %p.topic,
                        partition = p.index,
                        read = s.bytes_read,
                        written = s.bytes_written,
                        removed = s.records_removed,
                        "cleaned"
                    );
                    total.bytes_read += s.bytes_read;
                    total.bytes_written += s.bytes_written;
                    total.records_read += s.records_read;
                    total.records_removed += s.records_removed;
                }
                Ok((false, _)) | Err(LogError::ShuttingDown) => {}
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cleaning failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Clean shutdown: stop admin work (waiting for the step in progress), close every
    /// partition, write the checkpoint, then the marker.
    pub fn shutdown(&self) -> Result<()> {
        self.begin_shutdown();
        let _admin = self.admin.lock();
        for p in self.partitions() {
            p.log.lock().close()?;
        }
        self.write_recovery_checkpoint()?;
        let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&marker)
            .map_err(io_err(&marker))?;
        f.sync_all().map_err(io_err(&marker))?;
        sync_dir(&self.data_dir)
    }
}
