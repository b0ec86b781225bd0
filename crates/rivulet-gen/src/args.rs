//! `rivulet gen` flags.

use std::time::Duration;

use crate::error::GenError;
use crate::stream::{StreamConfig, ValueDist};
use crate::time;

/// Value distribution (`--dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dist {
    /// Uniform in [--min, --max].
    Uniform,
    /// Normal with --mean and --stddev.
    Normal,
}

/// Producer compression (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
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

/// Flags of `rivulet gen`: produce random JSON events into a topic.
///
/// With `--seed` and `--start-time` the sequence of (key, payload) is fully reproducible;
/// see [`crate::stream`] for the exact rule.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Bootstrap servers of any Kafka-compatible broker.
    #[arg(long, env = "RIVULET_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// Events per second (0: as fast as the brokers take them). Also spaces the event
    /// timestamps 1/rate apart (1 ms apart when 0).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Stop after this many events [default: run until Ctrl-C].
    #[arg(long)]
    pub count: Option<u64>,
    /// Id cardinality: ids are 0..keys; the record key is the id in decimal.
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Value distribution.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    pub dist: Dist,
    /// Smallest value (--dist uniform).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min: f64,
    /// Largest value (--dist uniform).
    #[arg(long, default_value_t = 100.0, allow_negative_numbers = true)]
    pub max: f64,
    /// Mean (--dist normal).
    #[arg(long, default_value_t = 50.0, allow_negative_numbers = true)]
    pub mean: f64,
    /// Standard deviation (--dist normal).
    #[arg(long, default_value_t = 10.0)]
    pub stddev: f64,
    /// Decimal places of the value.
    #[arg(long, default_value_t = 2)]
    pub decimals: u8,
    /// RNG seed for a reproducible sequence [default: random, printed at start].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Event time of the first event: RFC 3339 (2026-11-24T10:00:00Z) or epoch milliseconds
    /// [default: now].
    #[arg(long, value_parser = parse_start_time)]
    pub start_time: Option<i64>,
    /// Fraction of events (0..1) whose timestamp is late by up to --late-by (out of order).
    #[arg(long, default_value_t = 0.0)]
    pub late_fraction: f64,
    /// Largest lateness of a late event: e.g. 500ms, 5s, 2m, 1h.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub late_by: Duration,
    /// Fraction of events (0..1) with a malformed payload: invalid JSON, a missing field or a
    /// field of the wrong type, for testing a dead-letter path.
    #[arg(long, default_value_t = 0.0)]
    pub bad_fraction: f64,
    /// Producer compression.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Turn off the idempotent producer (on by default: no duplicates on retries).
    #[arg(long)]
    pub no_idempotence: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Lets tests and other crates build [`GenArgs`] from a command line (`["gen", "--seed", "1"]`).
#[derive(clap::Parser)]
#[command(name = "gen")]
struct GenCli {
    #[command(flatten)]
    args: GenArgs,
}

impl GenArgs {
    /// Parses a command line whose first item is the program name, e.g.
    /// `GenArgs::try_parse_from(["gen", "--count", "10"])`.
    pub fn try_parse_from<I, T>(argv: I) -> Result<GenArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser as _;
        GenCli::try_parse_from(argv).map(|c| c.args)
    }

    /// The stream these flags describe, with `seed` and `start_ms` resolved by the caller
    /// (`run` uses `--seed`/`--start-time` or a random seed and the current time).
    pub fn stream_config(&self, seed: u64, start_ms: i64) -> StreamConfig {
        StreamConfig {
            seed,
            start_ms,
            rate: self.rate,
            keys: self.keys,
            dist: match self.dist {
                Dist::Uniform => ValueDist::Uniform {
                    min: self.min,
                    max: self.max,
                },
                Dist::Normal => ValueDist::Normal {
                    mean: self.mean,
                    stddev: self.stddev,
                },
            },
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
        if self.brokers.is_empty() {
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
    fn defaults_and_flags() {
        let a = GenArgs::try_parse_from(["gen"]).unwrap();
        assert_eq!(a.topic, "events");
        assert_eq!(a.rate, 1000);
        assert_eq!(a.count, None);
        assert_eq!(a.keys, 100);
        assert_eq!(a.dist, Dist::Uniform);
        assert_eq!(a.late_by, Duration::from_secs(5));
        assert_eq!(a.compression, Compression::None);
        assert!(!a.no_idempotence);
        let a = GenArgs::try_parse_from([
            "gen",
            "--dist",
            "normal",
            "--mean",
            "-3.5",
            "--min",
            "-10",
            "--start-time",
            "2026-11-24T10:00:00Z",
            "--late-by",
            "750ms",
            "--compression",
            "zstd",
        ])
        .unwrap();
        assert_eq!(a.mean, -3.5);
        assert_eq!(a.min, -10.0);
        assert_eq!(a.start_time, Some(1_795_514_400_000));
        let c = a.stream_config(9, 0);
        assert_eq!(
            c.dist,
            ValueDist::Normal {
                mean: -3.5,
                stddev: 10.0
            }
        );
        assert_eq!(c.late_by_ms, 750);
        assert!(GenArgs::try_parse_from(["gen", "--dist", "poisson"]).is_err());
    }
}
