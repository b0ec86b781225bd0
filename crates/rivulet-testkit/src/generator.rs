//! The event generator in tests. Each way of using it is one function here ([`quick_config`],
//! [`cli_flags`], [`stream_events`], [`run_gen`], [`run_gen_with_stats`]), so a change to the
//! generator's API is a change in this file.

use std::sync::Arc;
use std::time::Duration;

use rivulet_gen::{Event, EventKind, EventStream, GenConfig, GenError, GenStats, GenSummary};
use tokio_util::sync::CancellationToken;

use crate::truth::Ev;

/// The start time the tests give the generator.
pub const START: &str = "2026-11-24T10:00:00Z";
/// [`START`] in epoch milliseconds.
pub const START_MS: i64 = 1_795_514_400_000;

/// Bound on one generator run in a test.
pub const GEN_WAIT: Duration = Duration::from_secs(60);

/// Late and malformed events in a generated stream (beyond seed, count and keys).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub late_fraction: f64,
    pub late_by: Duration,
    pub bad_fraction: f64,
}

impl Mix {
    /// Every event on time and well-formed.
    pub const NONE: Mix = Mix {
        late_fraction: 0.0,
        late_by: Duration::from_secs(5),
        bad_fraction: 0.0,
    };

    /// `fraction` of the events late by up to `by_ms` milliseconds.
    pub const fn late(fraction: f64, by_ms: u64) -> Mix {
        Mix {
            late_fraction: fraction,
            late_by: Duration::from_millis(by_ms),
            bad_fraction: 0.0,
        }
    }

    /// `fraction` of the events malformed.
    pub const fn bad(fraction: f64) -> Mix {
        Mix {
            bad_fraction: fraction,
            ..Mix::NONE
        }
    }
}

/// A quick run: into `topic` at `brokers`, as fast as possible, quietly, 1 ms apart from
/// [`START`], `keys` ids, `seed`, `count` events, with `mix`.
pub fn quick_config(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    mix: Mix,
) -> GenConfig {
    GenConfig {
        rate: 0,
        quiet: true,
        start_ms: Some(START_MS),
        keys,
        seed: Some(seed),
        count: Some(count),
        late_fraction: mix.late_fraction,
        late_by: mix.late_by,
        bad_fraction: mix.bad_fraction,
        ..GenConfig::new(brokers, topic)
    }
}

/// The `rivulet gen` flags (without the subcommand, brokers and topic) that run `config`'s
/// stream, for tests of the binary: rate, count, keys, seed, start, late and bad events.
pub fn cli_flags(config: &GenConfig) -> Vec<String> {
    let mut f: Vec<String> = vec!["--rate".into(), config.rate.to_string()];
    if let Some(n) = config.count {
        f.extend(["--count".into(), n.to_string()]);
    }
    f.extend(["--keys".into(), config.keys.to_string()]);
    if let Some(s) = config.seed {
        f.extend(["--seed".into(), s.to_string()]);
    }
    if let Some(ms) = config.start_ms {
        f.extend(["--start-time".into(), rivulet_time::rfc3339_ms(ms)]);
    }
    f.extend([
        "--late-fraction".into(),
        config.late_fraction.to_string(),
        "--late-by".into(),
        format!("{}ms", config.late_by.as_millis()),
        "--bad-fraction".into(),
        config.bad_fraction.to_string(),
    ]);
    if config.quiet {
        f.push("--quiet".into());
    }
    f
}

/// The first `count` events of the stream `config` describes with `seed` and start time
/// `start_ms`: what a run produces, computed without producing.
pub fn stream_events(config: &GenConfig, seed: u64, start_ms: i64, count: u64) -> Vec<Event> {
    EventStream::new(config.stream_config(seed, start_ms))
        .expect("a valid stream")
        .take(usize::try_from(count).expect("count"))
        .collect()
}

/// Every event (bad ones included) a run of `config` produces (its seed, start and count).
pub fn expected_events(config: &GenConfig) -> Vec<Event> {
    stream_events(
        config,
        config.seed.expect("a seeded config"),
        config.start_ms.expect("a start time"),
        config.count.expect("a count"),
    )
}

/// Runs the generator (bounded by [`GEN_WAIT`]) until it is done or `cancel`led.
pub async fn run_gen(config: GenConfig, cancel: CancellationToken) -> Result<GenSummary, GenError> {
    tokio::time::timeout(GEN_WAIT, rivulet_gen::run(config, cancel))
        .await
        .expect("generator timed out")
}

/// [`run_gen`], counting into `stats` as it goes.
pub async fn run_gen_with_stats(
    config: GenConfig,
    cancel: CancellationToken,
    stats: Arc<GenStats>,
) -> Result<GenSummary, GenError> {
    tokio::time::timeout(GEN_WAIT, rivulet_gen::run_with_stats(config, cancel, stats))
        .await
        .expect("generator timed out")
}

/// Every event (bad ones included) a [`quick_config`] run produces.
pub fn gen_events(seed: u64, count: u64, keys: u64, mix: Mix) -> Vec<Event> {
    expected_events(&quick_config(
        "unused:9092",
        "events",
        seed,
        count,
        keys,
        mix,
    ))
}

/// Produces a [`quick_config`] run and returns every event produced (see [`gen_events`]).
pub async fn produce_gen_events(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    mix: Mix,
) -> Vec<Event> {
    let config = quick_config(brokers, topic, seed, count, keys, mix);
    let summary = run_gen(config, CancellationToken::new()).await.unwrap();
    assert_eq!(summary.acknowledged, count, "{summary:?}");
    gen_events(seed, count, keys, mix)
}

/// The well-formed events of `events` (the bad ones are dead letters), as [`Ev`]s.
pub fn well_formed(events: &[Event]) -> Vec<Ev> {
    events
        .iter()
        .filter(|e| e.kind != EventKind::Bad)
        .map(|e| Ev {
            partition: -1,
            id: e.id as i64,
            ts: e.timestamp_ms,
            value: e.value,
        })
        .collect()
}

/// Produces a [`quick_config`] run and returns the well-formed events.
pub async fn produce_gen(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    mix: Mix,
) -> Vec<Ev> {
    well_formed(&produce_gen_events(brokers, topic, seed, count, keys, mix).await)
}
