//! [`GenConfig`]: what a generator run produces, where and how fast. The `rivulet gen` flags
//! (in the binary) and every other caller (`rivulet up`, the benches, tests) build one as plain
//! data; the flag parsers for its text forms ([`parse_duration`], [`parse_start_time`]) live
//! here so every front end reads them the same way.

use std::time::Duration;

use rivulet_client::KafkaConnection;

use crate::error::GenError;
use crate::stream::{StreamConfig, ValueDist};
use crate::time;

/// Producer compression (librdkafka's `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// A generator run: produce JSON events into `topic` (see [`crate::run`]).
///
/// With `seed` and `start_ms` given the sequence of (key, payload) is fully reproducible; see
/// [`crate::stream`] for the exact rule. [`GenConfig::new`] gives the defaults of `rivulet gen`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// The cluster to produce to (any Kafka-compatible broker).
    pub connection: KafkaConnection,
    /// Topic to produce to.
    pub topic: String,
    /// Events per second (0: as fast as the brokers take them). Also spaces the event
    /// timestamps 1/rate apart (1 ms apart when 0).
    pub rate: u64,
    /// Stop after this many events (None: run until cancelled).
    pub count: Option<u64>,
    /// Id cardinality: ids are 0..keys; the record key is the id in decimal.
    pub keys: u64,
    /// Value distribution.
    pub dist: ValueDist,
    /// Decimal places of the value.
    pub decimals: u8,
    /// RNG seed for a reproducible sequence (None: random, reported in the summary).
    pub seed: Option<u64>,
    /// Event time of the first event, epoch ms (None: now).
    pub start_ms: Option<i64>,
    /// Fraction of events (0..1) whose timestamp is late by up to `late_by`.
    pub late_fraction: f64,
    /// Largest lateness of a late event.
    pub late_by: Duration,
    /// Fraction of events (0..1) with a malformed payload.
    pub bad_fraction: f64,
    /// Producer compression.
    pub compression: Compression,
    /// The idempotent producer (no duplicates on retries).
    pub idempotence: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
}

impl GenConfig {
    /// `rivulet gen`'s defaults, producing to `topic` on `bootstrap_servers`: 1000 events/s,
    /// no count, 100 ids, uniform values in 0..=100 with 2 decimals, a random seed, starting
    /// now, nothing late or malformed, no compression, idempotent, with progress lines.
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> GenConfig {
        GenConfig {
            connection: KafkaConnection::new(bootstrap_servers),
            topic: topic.into(),
            rate: 1000,
            count: None,
            keys: 100,
            dist: ValueDist::Uniform {
                min: 0.0,
                max: 100.0,
            },
            decimals: 2,
            seed: None,
            start_ms: None,
            late_fraction: 0.0,
            late_by: Duration::from_secs(5),
            bad_fraction: 0.0,
            compression: Compression::None,
            idempotence: true,
            quiet: false,
        }
    }

    /// The stream this run produces, with `seed` and `start_ms` resolved by the caller
    /// (`run` uses the configured ones or a random seed and the current time).
    pub fn stream_config(&self, seed: u64, start_ms: i64) -> StreamConfig {
        StreamConfig {
            seed,
            start_ms,
            rate: self.rate,
            keys: self.keys,
            dist: self.dist,
            decimals: self.decimals,
            late_fraction: self.late_fraction,
            late_by_ms: u64::try_from(self.late_by.as_millis()).unwrap_or(u64::MAX),
            bad_fraction: self.bad_fraction,
        }
    }

    /// Checks what the stream does not cover.
    pub(crate) fn validate(&self) -> Result<(), GenError> {
        if self.topic.is_empty() {
            return Err(GenError::InvalidArgs("--topic must not be empty".into()));
        }
        if self.connection.bootstrap_servers.is_empty() {
            return Err(GenError::InvalidArgs("--brokers must not be empty".into()));
        }
        Ok(())
    }
}

/// `--start-time`: RFC 3339 or integer epoch milliseconds.
pub fn parse_start_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return if (time::MIN_MS..=time::MAX_MS).contains(&ms) {
            Ok(ms)
        } else {
            Err(format!("{ms} ms is outside 0000-01-01..9999-12-31 UTC"))
        };
    }
    time::parse_rfc3339(s)
}

/// `--late-by`: a whole number with a unit `ms`, `s`, `m` or `h` (`0` alone is allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("expected a duration like 500ms, 5s, 2m or 1h, got `{s}`");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|_| err())?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(err()),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "5",
            "s",
            "-5s",
            "1.5s",
            "5 s",
            "5sec",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_times() {
        assert_eq!(
            parse_start_time("1795514400123").unwrap(),
            1_795_514_400_123
        );
        assert_eq!(
            parse_start_time("2026-11-24T10:00:00.123Z").unwrap(),
            1_795_514_400_123
        );
        assert!(parse_start_time("yesterday").is_err());
        assert!(parse_start_time("999999999999999999").is_err());
    }

    #[test]
    fn defaults_and_stream() {
        let c = GenConfig::new("h:1", "events");
        assert_eq!(c.connection, KafkaConnection::new("h:1"));
        assert_eq!((c.rate, c.count, c.keys), (1000, None, 100));
        assert_eq!(c.late_by, Duration::from_secs(5));
        assert_eq!(c.compression, Compression::None);
        assert!(c.idempotence && !c.quiet);
        let c = GenConfig {
            dist: ValueDist::Normal {
                mean: -3.5,
                stddev: 10.0,
            },
            late_by: Duration::from_millis(750),
            ..c
        };
        let s = c.stream_config(9, 0);
        assert_eq!(
            s.dist,
            ValueDist::Normal {
                mean: -3.5,
                stddev: 10.0
            }
        );
        assert_eq!((s.seed, s.late_by_ms), (9, 750));
        assert!(GenConfig::new("", "t").validate().is_err());
        assert!(GenConfig::new("h:1", "").validate().is_err());
    }
}
