//! Topic-level log configuration with Kafka's names, defaults and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{LogError, Result};

/// Effective configuration of one topic's partitions (broker defaults + topic overrides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// `segment.bytes` (default 1 GiB): roll the active segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms` (default 7 days): roll the active segment once it is this old.
    pub segment_ms: i64,
    /// `retention.ms` (default 7 days, -1 = forever): delete whole segments older than this.
    pub retention_ms: i64,
    /// `retention.bytes` (default -1 = unlimited): delete oldest segments past this size.
    pub retention_bytes: i64,
    /// `max.message.bytes` (default 1048588): largest record batch accepted.
    pub max_message_bytes: i32,
    /// `cleanup.policy` (default "delete"; "compact" or "compact,delete" run the cleaner).
    pub cleanup_policy: String,
    /// `index.interval.bytes` (default 4096): bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type` ("CreateTime" default, or "LogAppendTime").
    pub message_timestamp_type: String,
    /// `delete.retention.ms` (default 1 day): how long a tombstone (and an ended transaction's
    /// marker) stays once it is in the cleaned part of a compacted log.
    #[serde(default = "defaults::delete_retention_ms")]
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio` (default 0.5): clean once the uncleaned part is at least
    /// this share of the cleanable log. Kept as given (a decimal); see [`Self::dirty_ratio`].
    #[serde(default = "defaults::min_cleanable_dirty_ratio")]
    pub min_cleanable_dirty_ratio: String,
    /// `min.compaction.lag.ms` (default 0): records newer than this are not compacted.
    #[serde(default)]
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (default Long.MAX_VALUE): a record is compacted within this
    /// long of being written, whatever the dirty ratio.
    #[serde(default = "defaults::max_compaction_lag_ms")]
    pub max_compaction_lag_ms: i64,
    /// Topic configs Kafka documents that Rivulet accepts, validates and reports but does not
    /// act on (overrides only; see [`not_acted_on`]).
    #[serde(default)]
    pub other: BTreeMap<String, String>,
}

mod defaults {
    pub fn delete_retention_ms() -> i64 {
        86_400_000
    }
    pub fn min_cleanable_dirty_ratio() -> String {
        "0.5".to_string()
    }
    pub fn max_compaction_lag_ms() -> i64 {
        i64::MAX
    }
}

/// Longest topic config value accepted: Rivulet's topic configs are numbers and short words,
/// and stored values end up in the topic file and in every DescribeConfigs answer.
pub const MAX_CONFIG_VALUE_BYTES: usize = 1024;

/// What a config's value must be.
#[derive(Debug, Clone, Copy)]
pub enum ConfigKind {
    Int {
        min: i64,
        max: i64,
    },
    Long {
        min: i64,
        max: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A comma-separated list (free text).
    List,
    /// Free text.
    Text,
}

const I32: i64 = i32::MAX as i64;

/// Every topic config Kafka documents (Kafka 3.x and 4.x), with its type and default, in
/// DescribeConfigs order, and whether Rivulet acts on it. Unknown names are refused.
pub const TOPIC_CONFIGS: &[(&str, ConfigKind, &str, bool)] = &[
    ("cleanup.policy", ConfigKind::List, "delete", true),
    (
        "compression.gzip.level",
        ConfigKind::Int { min: -1, max: 9 },
        "-1",
        false,
    ),
    (
        "compression.lz4.level",
        ConfigKind::Int { min: 1, max: 17 },
        "9",
        false,
    ),
    (
        "compression.type",
        ConfigKind::Enum(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "producer",
        false,
    ),
    (
        "compression.zstd.level",
        ConfigKind::Int {
            min: -131072,
            max: 22,
        },
        "3",
        false,
    ),
    (
        "delete.retention.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "86400000",
        true,
    ),
    (
        "file.delete.delay.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "60000",
        false,
    ),
    (
        "flush.messages",
        ConfigKind::Long {
            min: 1,
            max: i64::MAX,
        },
        "9223372036854775807",
        false,
    ),
    (
        "flush.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "9223372036854775807",
        false,
    ),
    (
        "follower.replication.throttled.replicas",
        ConfigKind::List,
        "",
        false,
    ),
    (
        "index.interval.bytes",
        ConfigKind::Int { min: 0, max: I32 },
        "4096",
        true,
    ),
    (
        "leader.replication.throttled.replicas",
        ConfigKind::List,
        "",
        false,
    ),
    (
        "local.retention.bytes",
        ConfigKind::Long {
            min: -2,
            max: i64::MAX,
        },
        "-2",
        false,
    ),
    (
        "local.retention.ms",
        ConfigKind::Long {
            min: -2,
            max: i64::MAX,
        },
        "-2",
        false,
    ),
    (
        "max.compaction.lag.ms",
        ConfigKind::Long {
            min: 1,
            max: i64::MAX,
        },
        "9223372036854775807",
        true,
    ),
    (
        "max.message.bytes",
        ConfigKind::Int { min: 0, max: I32 },
        "1048588",
        true,
    ),
    (
        "message.downconversion.enable",
        ConfigKind::Bool,
        "true",
        false,
    ),
    ("message.format.version", ConfigKind::Text, "3.0-IV1", false),
    (
        "message.timestamp.after.max.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "9223372036854775807",
        false,
    ),
    (
        "message.timestamp.before.max.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "9223372036854775807",
        false,
    ),
    (
        "message.timestamp.difference.max.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "9223372036854775807",
        false,
    ),
    (
        "message.timestamp.type",
        ConfigKind::Enum(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
        true,
    ),
    (
        "min.cleanable.dirty.ratio",
        ConfigKind::Double { min: 0.0, max: 1.0 },
        "0.5",
        true,
    ),
    (
        "min.compaction.lag.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "0",
        true,
    ),
    (
        "min.insync.replicas",
        ConfigKind::Int { min: 1, max: I32 },
        "1",
        false,
    ),
    ("preallocate", ConfigKind::Bool, "false", false),
    ("remote.log.copy.disable", ConfigKind::Bool, "false", false),
    (
        "remote.log.delete.on.disable",
        ConfigKind::Bool,
        "false",
        false,
    ),
    ("remote.storage.enable", ConfigKind::Bool, "false", false),
    (
        "retention.bytes",
        ConfigKind::Long {
            min: -1,
            max: i64::MAX,
        },
        "-1",
        true,
    ),
    (
        "retention.ms",
        ConfigKind::Long {
            min: -1,
            max: i64::MAX,
        },
        "604800000",
        true,
    ),
    (
        "segment.bytes",
        ConfigKind::Int { min: 14, max: I32 },
        "1073741824",
        true,
    ),
    (
        "segment.index.bytes",
        ConfigKind::Int { min: 4, max: I32 },
        "10485760",
        false,
    ),
    (
        "segment.jitter.ms",
        ConfigKind::Long {
            min: 0,
            max: i64::MAX,
        },
        "0",
        false,
    ),
    (
        "segment.ms",
        ConfigKind::Long {
            min: 1,
            max: i64::MAX,
        },
        "604800000",
        true,
    ),
    (
        "unclean.leader.election.enable",
        ConfigKind::Bool,
        "false",
        false,
    ),
];

/// The configs Rivulet accepts and reports but does not act on (the README lists them with
/// the reason): compression on the broker, flush and segment tuning, replication, tiered
/// storage, timestamp bounds, the old message formats.
pub fn not_acted_on() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIGS
        .iter()
        .filter(|(_, _, _, acted)| !acted)
        .map(|(k, _, _, _)| *k)
}

/// The topic config keys, in DescribeConfigs order.
pub fn topic_config_keys() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIGS.iter().map(|(k, _, _, _)| *k)
}

/// The kind of a topic config, `None` for a name Kafka does not document.
pub fn config_kind(key: &str) -> Option<ConfigKind> {
    TOPIC_CONFIGS
        .iter()
        .find(|(k, _, _, _)| *k == key)
        .map(|(_, kind, _, _)| *kind)
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            cleanup_policy: "delete".to_string(),
            index_interval_bytes: 4096,
            message_timestamp_type: "CreateTime".to_string(),
            delete_retention_ms: defaults::delete_retention_ms(),
            min_cleanable_dirty_ratio: defaults::min_cleanable_dirty_ratio(),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: defaults::max_compaction_lag_ms(),
            other: BTreeMap::new(),
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> LogError {
    LogError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks `value` against the config's kind (type and range).
fn check_kind(key: &str, value: &str, kind: ConfigKind) -> Result<()> {
    let v = value.trim();
    match kind {
        ConfigKind::Int { min, max } | ConfigKind::Long { min, max } => {
            parse_int(key, v, min, max).map(|_| ())
        }
        ConfigKind::Double { min, max } => match v.parse::<f64>() {
            Ok(d) if d.is_finite() && (min..=max).contains(&d) => Ok(()),
            Ok(_) => Err(invalid(
                key,
                value,
                format!("must be between {min} and {max}"),
            )),
            Err(_) => Err(invalid(key, value, "not a number")),
        },
        ConfigKind::Bool => match v {
            "true" | "false" => Ok(()),
            _ => Err(invalid(key, value, "must be true or false")),
        },
        ConfigKind::Enum(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    format!("must be one of {}", words.join(", ")),
                ))
            }
        }
        ConfigKind::List | ConfigKind::Text => Ok(()),
    }
}

/// Parses an integer value and checks it lies in `min..=max`.
fn parse_int(key: &str, value: &str, min: i64, max: i64) -> Result<i64> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if v < min || v > max {
        return Err(invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

impl LogConfig {
    /// Applies `key -> value` overrides (Kafka names) on top of `self`, validating each value
    /// (at most [`MAX_CONFIG_VALUE_BYTES`]; type and range as [`TOPIC_CONFIGS`] says;
    /// cleanup.policy in {delete, compact, "compact,delete"}; min.compaction.lag.ms at most
    /// max.compaction.lag.ms). Unknown keys are [`LogError::InvalidConfig`].
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig> {
        let mut c = self.clone();
        for (key, value) in overrides {
            let v = value.as_str();
            if v.len() > MAX_CONFIG_VALUE_BYTES {
                return Err(invalid(
                    key,
                    v,
                    format!("longer than {MAX_CONFIG_VALUE_BYTES} bytes"),
                ));
            }
            let Some(kind) = config_kind(key) else {
                return Err(invalid(key, v, "unknown topic config"));
            };
            check_kind(key, v, kind)?;
            match key.as_str() {
                "delete.retention.ms" => c.delete_retention_ms = parse_int(key, v, 0, i64::MAX)?,
                "min.cleanable.dirty.ratio" => c.min_cleanable_dirty_ratio = v.trim().to_string(),
                "min.compaction.lag.ms" => {
                    c.min_compaction_lag_ms = parse_int(key, v, 0, i64::MAX)?;
                }
                "max.compaction.lag.ms" => {
                    c.max_compaction_lag_ms = parse_int(key, v, 1, i64::MAX)?;
                }
                "segment.bytes" => {
                    // Kafka's minimum: room for one tiny batch.
                    c.segment_bytes = parse_int(key, v, 14, i64::from(i32::MAX))? as u64;
                }
                "segment.ms" => c.segment_ms = parse_int(key, v, 1, i64::MAX)?,
                "retention.ms" => c.retention_ms = parse_int(key, v, -1, i64::MAX)?,
                "retention.bytes" => c.retention_bytes = parse_int(key, v, -1, i64::MAX)?,
                "max.message.bytes" => {
                    c.max_message_bytes = parse_int(key, v, 0, i64::from(i32::MAX))? as i32;
                }
                "index.interval.bytes" => {
                    c.index_interval_bytes = parse_int(key, v, 0, i64::from(i32::MAX))? as u32;
                }
                "cleanup.policy" => {
                    // Kafka accepts a comma-separated list; normalise spacing and order.
                    let mut parts: Vec<&str> = v.split(',').map(str::trim).collect();
                    parts.sort_unstable();
                    parts.dedup();
                    if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
                        return Err(invalid(key, v, "must be delete, compact or compact,delete"));
                    }
                    c.cleanup_policy = parts.join(",");
                }
                "message.timestamp.type" => {
                    if v != "CreateTime" && v != "LogAppendTime" {
                        return Err(invalid(key, v, "must be CreateTime or LogAppendTime"));
                    }
                    c.message_timestamp_type = v.to_string();
                }
                other => {
                    c.other.insert(other.to_string(), v.trim().to_string());
                }
            }
        }
        if c.min_compaction_lag_ms > c.max_compaction_lag_ms {
            return Err(invalid(
                "min.compaction.lag.ms",
                &c.min_compaction_lag_ms.to_string(),
                "must not exceed max.compaction.lag.ms",
            ));
        }
        Ok(c)
    }

    /// `min.cleanable.dirty.ratio` as a number (validated when set).
    pub fn dirty_ratio(&self) -> f64 {
        self.min_cleanable_dirty_ratio.parse().unwrap_or(0.5)
    }

    /// Whether the cleaner compacts this topic (`cleanup.policy` has `compact`).
    pub fn compact(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "compact")
    }

    /// Whether retention deletes old segments (`cleanup.policy` has `delete`).
    pub fn delete(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "delete")
    }
    /// The value of one key as Kafka prints it, or None for an unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "cleanup.policy" => self.cleanup_policy.clone(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => self.message_timestamp_type.clone(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.clone(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            other => match self.other.get(other) {
                Some(v) => v.clone(),
                None => TOPIC_CONFIGS
                    .iter()
                    .find(|(k, _, _, _)| *k == other)
                    .map(|(_, _, default, _)| default.to_string())?,
            },
        })
    }
    /// All (key, value) pairs in [`TOPIC_CONFIGS`] order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        topic_config_keys()
            .filter_map(|k| self.get(k).map(|v| (k, v)))
            .collect()
    }
    /// Whether the broker stamps batches with its own clock (`LogAppendTime`).
    pub fn log_append_time(&self) -> bool {
        self.message_timestamp_type == "LogAppendTime"
    }
}
