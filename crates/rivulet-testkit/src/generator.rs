//! The event generator in tests. Each way of using it is one function here ([`gen_args`],
//! [`stream_events`], [`run_gen`], [`run_gen_with_stats`]), so a change to the generator's
//! API is a change in this file.

use std::sync::Arc;
use std::time::Duration;

use rivulet_gen::{Event, EventKind, EventStream, GenArgs, GenError, GenStats, GenSummary};
use tokio_util::sync::CancellationToken;

use crate::truth::Ev;

/// The start time the tests give the generator.
pub const START: &str = "2026-11-24T10:00:00Z";
/// [`START`] in epoch milliseconds.
pub const START_MS: i64 = 1_795_514_400_000;

/// Bound on one generator run in a test.
pub const GEN_WAIT: Duration = Duration::from_secs(60);

/// The generator's arguments from `rivulet gen` flags (without the subcommand).
pub fn gen_args<S: AsRef<str>>(flags: &[S]) -> GenArgs {
    let argv = std::iter::once("gen").chain(flags.iter().map(AsRef::as_ref));
    GenArgs::try_parse_from(argv).unwrap_or_else(|e| panic!("generator flags: {e}"))
}

/// The first `count` events of the stream `args` describe with `seed` and start time
/// `start_ms`: what a run produces, computed without producing.
pub fn stream_events(args: &GenArgs, seed: u64, start_ms: i64, count: u64) -> Vec<Event> {
    EventStream::new(args.stream_config(seed, start_ms))
        .expect("a valid stream")
        .take(usize::try_from(count).expect("count"))
        .collect()
}

/// The first `count` events `rivulet gen <flags>` produces (seed and start time as given).
pub fn expected_events<S: AsRef<str>>(
    flags: &[S],
    seed: u64,
    start_ms: i64,
    count: u64,
) -> Vec<Event> {
    stream_events(&gen_args(flags), seed, start_ms, count)
}

/// Runs the generator (bounded by [`GEN_WAIT`]) until it is done or `cancel`led.
pub async fn run_gen(args: GenArgs, cancel: CancellationToken) -> Result<GenSummary, GenError> {
    tokio::time::timeout(GEN_WAIT, rivulet_gen::run(args, cancel))
        .await
        .expect("generator timed out")
}

/// [`run_gen`], counting into `stats` as it goes.
pub async fn run_gen_with_stats(
    args: GenArgs,
    cancel: CancellationToken,
    stats: Arc<GenStats>,
) -> Result<GenSummary, GenError> {
    tokio::time::timeout(GEN_WAIT, rivulet_gen::run_with_stats(args, cancel, stats))
        .await
        .expect("generator timed out")
}

/// Flags for a quick run: into `topic` at `brokers`, as fast as possible, quietly, 1 ms apart
/// from [`START`], `keys` ids, `seed`, `count` events; then `extra`.
pub fn quick_flags(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--rate",
        "0",
        "--quiet",
        "--start-time",
        START,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(["--keys".to_string(), keys.to_string()]);
    flags.extend(["--seed".to_string(), seed.to_string()]);
    flags.extend(["--count".to_string(), count.to_string()]);
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

/// Every event (bad ones included) a run with [`quick_flags`] produces.
pub fn gen_events(seed: u64, count: u64, keys: u64, extra: &[&str]) -> Vec<Event> {
    let flags = quick_flags("unused:9092", "events", seed, count, keys, extra);
    expected_events(&flags, seed, START_MS, count)
}

/// Produces with [`quick_flags`] and returns every event produced (see [`gen_events`]).
pub async fn produce_gen_events(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> Vec<Event> {
    let args = gen_args(&quick_flags(brokers, topic, seed, count, keys, extra));
    let summary = run_gen(args, CancellationToken::new()).await.unwrap();
    assert_eq!(summary.acknowledged, count, "{summary:?}");
    gen_events(seed, count, keys, extra)
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

/// Produces with [`quick_flags`] and returns the well-formed events.
pub async fn produce_gen(
    brokers: &str,
    topic: &str,
    seed: u64,
    count: u64,
    keys: u64,
    extra: &[&str],
) -> Vec<Ev> {
    well_formed(&produce_gen_events(brokers, topic, seed, count, keys, extra).await)
}
