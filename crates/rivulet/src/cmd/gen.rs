//! `rivulet gen`: its flags, parsed into the generator's plain [`GenConfig`].

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use rivulet_gen::{parse_duration, parse_start_time, GenConfig, ValueDist};

use crate::shutdown::Shutdown;

/// Value distribution (`--dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dist {
    /// Uniform in [--min, --max].
    Uniform,
    /// Normal with --mean and --stddev.
    Normal,
}

/// Producer compression (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Flags of `rivulet gen`: produce random JSON events into a topic.
///
/// With `--seed` and `--start-time` the sequence of (key, payload) is fully reproducible;
/// see `rivulet_gen::stream` for the exact rule.
#[derive(Debug, Clone, Args)]
pub struct GenArgs {
    /// Bootstrap servers of any Kafka-compatible broker.
    #[arg(long, env = "RIVULET_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    #[command(flatten)]
    pub client: super::connection::ClientConfigArgs,
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

impl GenArgs {
    /// The run these flags describe.
    pub fn config(&self) -> GenConfig {
        GenConfig {
            rate: self.rate,
            count: self.count,
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
            seed: self.seed,
            start_ms: self.start_time,
            late_fraction: self.late_fraction,
            late_by: self.late_by,
            bad_fraction: self.bad_fraction,
            compression: match self.compression {
                Compression::None => rivulet_gen::Compression::None,
                Compression::Gzip => rivulet_gen::Compression::Gzip,
                Compression::Snappy => rivulet_gen::Compression::Snappy,
                Compression::Lz4 => rivulet_gen::Compression::Lz4,
                Compression::Zstd => rivulet_gen::Compression::Zstd,
            },
            idempotence: !self.no_idempotence,
            quiet: self.quiet,
            ..GenConfig::new(self.brokers.as_str(), self.topic.as_str())
        }
    }
}

/// Produces until `--count` or the first Ctrl-C/SIGTERM (the summary still accounts for every
/// event sent); a second signal exits without waiting for delivery reports.
pub async fn run(args: GenArgs) -> Result<()> {
    let mut shutdown = Shutdown::new(
        None,
        "second signal: exiting without waiting for delivery reports",
    )?;
    let config = GenConfig {
        connection: args.client.connection(&args.brokers)?,
        ..args.config()
    };
    shutdown.start("generator", |stop| async move {
        let summary = rivulet_gen::run(config, stop).await?;
        println!("{summary}");
        if summary.errors > 0 {
            bail!(
                "{} of {} events were not delivered",
                summary.errors,
                summary.sent
            );
        }
        Ok(())
    });
    shutdown.run().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenArgs,
    }

    fn parse(argv: &[&str]) -> Result<GenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("gen").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.topic, "events");
        assert_eq!(a.rate, 1000);
        assert_eq!(a.count, None);
        assert_eq!(a.keys, 100);
        assert_eq!(a.dist, Dist::Uniform);
        assert_eq!(a.late_by, Duration::from_secs(5));
        assert_eq!(a.compression, Compression::None);
        assert!(!a.no_idempotence);
        // The flags' defaults are the generator's.
        let mut defaults = GenConfig::new(a.brokers.as_str(), "events");
        assert_eq!(a.config(), defaults);
        let a = parse(&[
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
            "--no-idempotence",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(a.mean, -3.5);
        assert_eq!(a.min, -10.0);
        assert_eq!(a.start_time, Some(1_795_514_400_000));
        let c = a.config();
        assert_eq!(
            c.dist,
            ValueDist::Normal {
                mean: -3.5,
                stddev: 10.0
            }
        );
        assert_eq!(c.stream_config(9, 0).late_by_ms, 750);
        defaults.dist = c.dist;
        defaults.start_ms = Some(1_795_514_400_000);
        defaults.late_by = Duration::from_millis(750);
        defaults.compression = rivulet_gen::Compression::Zstd;
        defaults.idempotence = false;
        defaults.quiet = true;
        assert_eq!(c, defaults);
        assert!(parse(&["--dist", "poisson"]).is_err());
    }
}
