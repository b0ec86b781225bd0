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
    /// `cleanup.policy` (default "delete"). "compact" is accepted and stored but not yet acted on.
    pub cleanup_policy: String,
    /// `index.interval.bytes` (default 4096): bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type` ("CreateTime" default, or "LogAppendTime").
    pub message_timestamp_type: String,
}

/// Longest topic config value accepted: Rivulet's topic configs are numbers and short words,
/// and stored values end up in the topic file and in every DescribeConfigs answer.
pub const MAX_CONFIG_VALUE_BYTES: usize = 1024;

/// The topic config keys Rivulet understands, in DescribeConfigs order.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

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
    /// (at most [`MAX_CONFIG_VALUE_BYTES`]; type, range: segment.bytes >= 14, index.interval.bytes >= 0, max.message.bytes >= 0,
    /// retention.* >= -1, cleanup.policy in {delete, compact, "compact,delete"},
    /// message.timestamp.type in {CreateTime, LogAppendTime}). Unknown keys are
    /// [`LogError::InvalidConfig`].
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
            match key.as_str() {
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
                _ => return Err(invalid(key, v, "unknown topic config")),
            }
        }
        Ok(c)
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
            _ => return None,
        })
    }
    /// All (key, value) pairs in [`TOPIC_CONFIG_KEYS`] order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        TOPIC_CONFIG_KEYS
            .iter()
            .filter_map(|k| self.get(k).map(|v| (*k, v)))
            .collect()
    }
    /// Whether the broker stamps batches with its own clock (`LogAppendTime`).
    pub fn log_append_time(&self) -> bool {
        self.message_timestamp_type == "LogAppendTime"
    }
}
