//! The pure, deterministic event sequence: [`EventStream`] turns a [`StreamConfig`] (seed
//! included) into the exact bytes `rivulet gen` produces, so tests can compute ground truth
//! without a broker.
//!
//! # The rule, per event `i` (0-based)
//!
//! One `StdRng` seeded with `seed` (`SeedableRng::seed_from_u64`) is drawn from in this fixed
//! order, the same number of draws whatever the fractions are (so changing `--bad-fraction`
//! or `--late-fraction` flips which events are bad/late but leaves every id and value alone):
//!
//! 1. `id`: uniform in `0..keys`;
//! 2. the raw value: uniform in `[min, max]`, or normal(`mean`, `stddev`);
//! 3. `roll`: uniform in `[0, 1)`: `roll < bad_fraction` makes the event **bad**, else
//!    `roll < bad_fraction + late_fraction` makes it **late**, else it is **good**;
//! 4. `aux`: a `u64`: a late event is late by `1 + aux % late_by_ms` milliseconds; a bad
//!    event's malformation is `aux % 3` (invalid JSON, missing field, wrong type) on field
//!    `aux / 3 % 3` (id, value, timestamp).
//!
//! The value is written with `decimals` decimal places (`-0` written as `0`) and
//! [`Event::value`] is that text read back, so it is exactly what a consumer parses.
//!
//! The event time is `start_ms + floor(i × 1000 / rate)` (`start_ms + i` when `rate` is 0,
//! i.e. unpaced runs stamp 1 ms apart), minus the lateness for late events, written as RFC
//! 3339 UTC with milliseconds. The payload of a good or late event is compact JSON:
//! `{"id":42,"value":17.30,"timestamp":"2026-11-24T10:00:00.123Z"}`. The key is the id in
//! decimal (`"42"`). Bad payloads are described on [`Malformation`].
//!
//! Reproducibility holds for a given build (the `rand` 0.8 `StdRng` stream and
//! `rand_distr` 0.4 normal sampling are fixed per version).

use rand::distributions::{Distribution, Uniform};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::Normal;

use crate::error::GenError;
use crate::pacing::Schedule;
use crate::time;

/// Largest `decimals`: more digits than an f64 holds would only print noise.
pub const MAX_DECIMALS: u8 = 15;

/// How values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueDist {
    /// Uniform in `[min, max]` (`min == max` gives a constant).
    Uniform { min: f64, max: f64 },
    /// Normal (Gaussian) with this mean and standard deviation (`stddev == 0` gives a constant).
    Normal { mean: f64, stddev: f64 },
}

/// Everything that determines the event sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// RNG seed.
    pub seed: u64,
    /// Event time of event 0, epoch milliseconds.
    pub start_ms: i64,
    /// Events per second of event time (`--rate`); 0 stamps events 1 ms apart.
    pub rate: u64,
    /// Id cardinality: ids are `0..keys` (at least 1).
    pub keys: u64,
    /// Value distribution.
    pub dist: ValueDist,
    /// Decimal places of the value (0..=15).
    pub decimals: u8,
    /// Fraction of late (out-of-order) events, 0..=1.
    pub late_fraction: f64,
    /// A late event is late by 1..=late_by_ms milliseconds (≥ 1 when late_fraction > 0).
    pub late_by_ms: u64,
    /// Fraction of malformed events, 0..=1 (`bad_fraction + late_fraction <= 1`).
    pub bad_fraction: f64,
}

impl StreamConfig {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), GenError> {
        let bad = |msg: String| Err(GenError::InvalidArgs(msg));
        if self.keys == 0 {
            return bad("--keys must be at least 1".into());
        }
        for (name, f) in [
            ("--late-fraction", self.late_fraction),
            ("--bad-fraction", self.bad_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return bad(format!("{name} must be between 0 and 1, got {f}"));
            }
        }
        if self.late_fraction + self.bad_fraction > 1.0 {
            return bad("--late-fraction + --bad-fraction must not exceed 1".into());
        }
        if self.late_fraction > 0.0 && self.late_by_ms == 0 {
            return bad("--late-by must be at least 1ms when --late-fraction is set".into());
        }
        if self.decimals > MAX_DECIMALS {
            return bad(format!("--decimals must be at most {MAX_DECIMALS}"));
        }
        match self.dist {
            ValueDist::Uniform { min, max } => {
                // A finite width too: rand's uniform sampler needs `max - min` to be finite.
                if !(max - min).is_finite() || min > max {
                    return bad(format!("need finite --min <= --max, got {min} and {max}"));
                }
            }
            ValueDist::Normal { mean, stddev } => {
                if !mean.is_finite() || !stddev.is_finite() || stddev < 0.0 {
                    return bad(format!(
                        "need a finite --mean and a finite --stddev >= 0, got {mean} and {stddev}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Event time of event `i` before any lateness (see the module docs for the rule).
    pub fn scheduled_ms(&self, i: u64) -> i64 {
        let offset = match Schedule::new(self.rate) {
            Some(s) => s.offset_ms(i),
            None => i,
        };
        self.start_ms
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }
}

/// A good, late or bad event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Well-formed, timestamped on schedule.
    Good,
    /// Well-formed, but its timestamp is earlier than its schedule (out of order).
    Late,
    /// Malformed payload, for testing a dead-letter path; see [`Malformation`].
    Bad,
}

/// Which field a malformation hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    Value,
    Timestamp,
}

impl Field {
    fn from_index(i: u64) -> Field {
        match i % 3 {
            0 => Field::Id,
            1 => Field::Value,
            _ => Field::Timestamp,
        }
    }

    /// The JSON member name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Value => "value",
            Field::Timestamp => "timestamp",
        }
    }
}

/// How a bad event's payload is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// Not JSON: the good payload cut in half (a strict prefix of a JSON object never parses),
    /// e.g. `{"id":42,"value":17.30,"ti`.
    InvalidJson,
    /// Valid JSON object without this member, e.g. `{"id":42,"timestamp":"…"}`.
    MissingField(Field),
    /// Valid JSON object with this member of the wrong type: `"id":"42"` (string),
    /// `"value":"17.30"` (string) or `"timestamp":1795514400123` (epoch-ms number).
    WrongType(Field),
}

/// One generated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the stream (0-based).
    pub index: u64,
    /// The id, in `0..keys`.
    pub id: u64,
    /// The record key: the id in decimal.
    pub key: String,
    /// The value as written (bad events: as it would have been written).
    pub value: f64,
    /// The event time as written, epoch ms (late events: after subtracting the lateness).
    pub timestamp_ms: i64,
    /// Good, late or bad.
    pub kind: EventKind,
    /// How late a late event is, in ms (0 otherwise).
    pub late_by_ms: u64,
    /// How a bad event is broken (`None` otherwise).
    pub malformation: Option<Malformation>,
    /// The record value.
    pub payload: Vec<u8>,
}

enum Sampler {
    Uniform(Uniform<f64>),
    Normal(Normal<f64>),
}

/// The infinite, deterministic event sequence of a [`StreamConfig`]; `take(n)` for a count.
pub struct EventStream {
    config: StreamConfig,
    rng: StdRng,
    ids: Uniform<u64>,
    values: Sampler,
    next: u64,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("config", &self.config)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// A stream starting at event 0; fails on an invalid config.
    pub fn new(config: StreamConfig) -> Result<EventStream, GenError> {
        config.validate()?;
        let values = match config.dist {
            ValueDist::Uniform { min, max } => Sampler::Uniform(Uniform::new_inclusive(min, max)),
            ValueDist::Normal { mean, stddev } => Sampler::Normal(
                Normal::new(mean, stddev).map_err(|e| GenError::InvalidArgs(e.to_string()))?,
            ),
        };
        Ok(EventStream {
            rng: StdRng::seed_from_u64(config.seed),
            ids: Uniform::new(0, config.keys),
            values,
            next: 0,
            config,
        })
    }

    /// The configuration this stream follows.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    fn next_event(&mut self) -> Event {
        let c = &self.config;
        let index = self.next;
        self.next += 1;
        // The draw order is part of the documented contract (module docs): do not reorder.
        let id = self.ids.sample(&mut self.rng);
        let raw = match &self.values {
            Sampler::Uniform(u) => u.sample(&mut self.rng),
            Sampler::Normal(n) => n.sample(&mut self.rng),
        };
        // A normal draw can overflow to ±inf with an absurd --stddev; keep the JSON valid.
        let raw = raw.clamp(f64::MIN, f64::MAX);
        let roll: f64 = self.rng.gen();
        let aux = self.rng.next_u64();

        let kind = if roll < c.bad_fraction {
            EventKind::Bad
        } else if roll < c.bad_fraction + c.late_fraction {
            EventKind::Late
        } else {
            EventKind::Good
        };
        let late_by_ms = match kind {
            EventKind::Late => 1 + aux % c.late_by_ms.max(1),
            _ => 0,
        };
        let malformation = (kind == EventKind::Bad).then(|| {
            let field = Field::from_index(aux / 3);
            match aux % 3 {
                0 => Malformation::InvalidJson,
                1 => Malformation::MissingField(field),
                _ => Malformation::WrongType(field),
            }
        });

        let mut value_text = format!("{:.*}", usize::from(c.decimals), raw);
        if value_text.starts_with('-') && value_text[1..].bytes().all(|b| b == b'0' || b == b'.') {
            // "-0.00" is valid JSON but surprising; zero is zero.
            value_text.remove(0);
        }
        // Formatting a finite f64 always reads back; fall back to the raw value regardless.
        let value = value_text.parse::<f64>().unwrap_or(raw);
        let timestamp_ms = c
            .scheduled_ms(index)
            .saturating_sub(i64::try_from(late_by_ms).unwrap_or(i64::MAX))
            .clamp(time::MIN_MS, time::MAX_MS);
        let key = id.to_string();
        let payload = render(&key, &value_text, timestamp_ms, malformation);
        Event {
            index,
            id,
            key,
            value,
            timestamp_ms,
            kind,
            late_by_ms,
            malformation,
            payload,
        }
    }
}

/// Writes the payload: the good JSON object, or its malformed variant.
fn render(id: &str, value: &str, ts_ms: i64, malformation: Option<Malformation>) -> Vec<u8> {
    let mut ts = String::with_capacity(26);
    ts.push('"');
    time::write_rfc3339_millis(&mut ts, ts_ms);
    ts.push('"');
    let (mut id_json, mut value_json, mut ts_json) = (id.to_string(), value.to_string(), ts);
    let mut missing = None;
    match malformation {
        None | Some(Malformation::InvalidJson) => {}
        Some(Malformation::MissingField(f)) => missing = Some(f),
        Some(Malformation::WrongType(Field::Id)) => id_json = format!("\"{id}\""),
        Some(Malformation::WrongType(Field::Value)) => value_json = format!("\"{value}\""),
        Some(Malformation::WrongType(Field::Timestamp)) => ts_json = ts_ms.to_string(),
    }
    let members = [
        (Field::Id, id_json),
        (Field::Value, value_json),
        (Field::Timestamp, ts_json),
    ];
    let mut out = String::with_capacity(72);
    out.push('{');
    for (field, json) in members.iter().filter(|(f, _)| Some(*f) != missing) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(field.name());
        out.push_str("\":");
        out.push_str(json);
    }
    out.push('}');
    let mut bytes = out.into_bytes();
    if malformation == Some(Malformation::InvalidJson) {
        bytes.truncate(bytes.len() / 2);
    }
    bytes
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        Some(self.next_event())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    fn config() -> StreamConfig {
        StreamConfig {
            seed: 42,
            start_ms: 1_795_514_400_000, // 2026-11-24T10:00:00.000Z
            rate: 1000,
            keys: 10,
            dist: ValueDist::Uniform {
                min: 0.0,
                max: 100.0,
            },
            decimals: 2,
            late_fraction: 0.0,
            late_by_ms: 5000,
            bad_fraction: 0.0,
        }
    }

    fn mean_stddev(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn first_events_have_the_documented_shape() {
        let events: Vec<Event> = EventStream::new(config()).unwrap().take(3).collect();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.index, i as u64);
            assert_eq!(e.kind, EventKind::Good);
            assert_eq!(e.key, e.id.to_string());
            let ts = format!("2026-11-24T10:00:00.00{i}Z");
            let expected = format!(
                "{{\"id\":{},\"value\":{:.2},\"timestamp\":\"{ts}\"}}",
                e.id, e.value
            );
            assert_eq!(String::from_utf8(e.payload.clone()).unwrap(), expected);
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a: Vec<Event> = EventStream::new(config()).unwrap().take(500).collect();
        let b: Vec<Event> = EventStream::new(config()).unwrap().take(500).collect();
        assert_eq!(a, b);
        let c: Vec<Event> = EventStream::new(StreamConfig {
            seed: 43,
            ..config()
        })
        .unwrap()
        .take(500)
        .collect();
        assert_ne!(
            a.iter().map(|e| &e.payload).collect::<Vec<_>>(),
            c.iter().map(|e| &e.payload).collect::<Vec<_>>()
        );
    }

    #[test]
    fn timestamps_follow_the_schedule() {
        let cfg = StreamConfig {
            rate: 3,
            ..config()
        };
        let ts: Vec<i64> = EventStream::new(cfg.clone())
            .unwrap()
            .take(7)
            .map(|e| e.timestamp_ms - cfg.start_ms)
            .collect();
        assert_eq!(ts, [0, 333, 666, 1000, 1333, 1666, 2000]);
        let unpaced = StreamConfig {
            rate: 0,
            ..config()
        };
        let ts: Vec<i64> = EventStream::new(unpaced.clone())
            .unwrap()
            .take(4)
            .map(|e| e.timestamp_ms - unpaced.start_ms)
            .collect();
        assert_eq!(ts, [0, 1, 2, 3]);
    }

    #[test]
    fn ids_cover_the_key_range_uniformly() {
        let mut counts = [0u32; 10];
        for e in EventStream::new(config()).unwrap().take(100_000) {
            counts[usize::try_from(e.id).unwrap()] += 1;
        }
        for c in counts {
            assert!((9_000..=11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn uniform_values_stay_in_range_with_the_right_moments() {
        let cfg = StreamConfig {
            dist: ValueDist::Uniform {
                min: -20.0,
                max: 40.0,
            },
            ..config()
        };
        let xs: Vec<f64> = EventStream::new(cfg)
            .unwrap()
            .take(200_000)
            .map(|e| e.value)
            .collect();
        assert!(xs.iter().all(|x| (-20.0..=40.0).contains(x)));
        let (mean, sd) = mean_stddev(&xs);
        // Uniform[a,b]: mean (a+b)/2 = 10, stddev (b-a)/√12 ≈ 17.32.
        assert!((mean - 10.0).abs() < 0.2, "mean {mean}");
        assert!((sd - 60.0 / 12f64.sqrt()).abs() < 0.2, "stddev {sd}");
    }

    #[test]
    fn normal_values_have_the_right_moments() {
        let cfg = StreamConfig {
            dist: ValueDist::Normal {
                mean: 50.0,
                stddev: 7.5,
            },
            ..config()
        };
        let xs: Vec<f64> = EventStream::new(cfg)
            .unwrap()
            .take(200_000)
            .map(|e| e.value)
            .collect();
        let (mean, sd) = mean_stddev(&xs);
        assert!((mean - 50.0).abs() < 0.1, "mean {mean}");
        assert!((sd - 7.5).abs() < 0.1, "stddev {sd}");
        // About 68% within one standard deviation.
        let within = xs.iter().filter(|x| (**x - 50.0).abs() <= 7.5).count() as f64;
        assert!((within / xs.len() as f64 - 0.6827).abs() < 0.01);
    }

    #[test]
    fn constant_distributions_are_allowed() {
        let cfg = StreamConfig {
            dist: ValueDist::Normal {
                mean: 3.0,
                stddev: 0.0,
            },
            ..config()
        };
        assert!(EventStream::new(cfg)
            .unwrap()
            .take(100)
            .all(|e| e.value == 3.0));
        let cfg = StreamConfig {
            dist: ValueDist::Uniform { min: 5.0, max: 5.0 },
            ..config()
        };
        assert!(EventStream::new(cfg)
            .unwrap()
            .take(100)
            .all(|e| e.value == 5.0));
    }

    #[test]
    fn decimals_and_negative_zero() {
        let cfg = StreamConfig {
            dist: ValueDist::Uniform {
                min: -0.001,
                max: 0.001,
            },
            decimals: 1,
            ..config()
        };
        for e in EventStream::new(cfg).unwrap().take(100) {
            let v: Value = serde_json::from_slice(&e.payload).unwrap();
            assert_eq!(v["value"].to_string(), "0.0");
            assert_eq!(e.value, 0.0);
        }
        let cfg = StreamConfig {
            decimals: 0,
            ..config()
        };
        for e in EventStream::new(cfg).unwrap().take(100) {
            assert_eq!(e.value, e.value.round());
        }
    }

    #[test]
    fn fractions_pick_kinds_without_changing_ids_or_values() {
        let plain: Vec<Event> = EventStream::new(config()).unwrap().take(100_000).collect();
        let cfg = StreamConfig {
            late_fraction: 0.1,
            bad_fraction: 0.05,
            late_by_ms: 2000,
            ..config()
        };
        let mixed: Vec<Event> = EventStream::new(cfg.clone())
            .unwrap()
            .take(100_000)
            .collect();
        let count = |k| mixed.iter().filter(|e| e.kind == k).count();
        assert!((9_500..=10_500).contains(&count(EventKind::Late)));
        assert!((4_500..=5_500).contains(&count(EventKind::Bad)));
        for (p, m) in plain.iter().zip(&mixed) {
            assert_eq!((p.id, p.value), (m.id, m.value));
            match m.kind {
                EventKind::Good => assert_eq!(p.payload, m.payload),
                EventKind::Late => {
                    assert!((1..=2000).contains(&m.late_by_ms));
                    assert_eq!(m.timestamp_ms, p.timestamp_ms - m.late_by_ms as i64);
                    assert_eq!(
                        m.timestamp_ms,
                        cfg.scheduled_ms(m.index) - m.late_by_ms as i64
                    );
                }
                EventKind::Bad => assert!(m.malformation.is_some()),
            }
        }
        // Every malformation variant occurs.
        let mut seen: Vec<Malformation> = mixed.iter().filter_map(|e| e.malformation).collect();
        seen.sort_by_key(|m| format!("{m:?}"));
        seen.dedup();
        assert_eq!(seen.len(), 7, "{seen:?}");
    }

    /// The documented checks a consumer's validator would make.
    fn check_payload(e: &Event) {
        let parsed = serde_json::from_slice::<Value>(&e.payload);
        match e.malformation {
            None => {
                let v = parsed.unwrap();
                let obj = v.as_object().unwrap();
                assert_eq!(obj.len(), 3);
                assert_eq!(v["id"].as_u64(), Some(e.id));
                assert_eq!(v["value"].as_f64(), Some(e.value));
                let ts = v["timestamp"].as_str().unwrap();
                assert_eq!(time::parse_rfc3339(ts).unwrap(), e.timestamp_ms);
            }
            Some(Malformation::InvalidJson) => assert!(parsed.is_err(), "{e:?}"),
            Some(Malformation::MissingField(f)) => {
                let v = parsed.unwrap();
                let obj = v.as_object().unwrap();
                assert_eq!(obj.len(), 2);
                assert!(!obj.contains_key(f.name()));
            }
            Some(Malformation::WrongType(f)) => {
                let v = parsed.unwrap();
                let obj = v.as_object().unwrap();
                assert_eq!(obj.len(), 3);
                let member = &obj[f.name()];
                match f {
                    Field::Id => assert_eq!(member.as_str(), Some(e.key.as_str())),
                    Field::Value => assert!(member.is_string()),
                    Field::Timestamp => assert_eq!(member.as_i64(), Some(e.timestamp_ms)),
                }
            }
        }
    }

    #[test]
    fn payloads_are_well_formed_or_malformed_as_documented() {
        let cfg = StreamConfig {
            late_fraction: 0.2,
            bad_fraction: 0.3,
            dist: ValueDist::Normal {
                mean: 0.0,
                stddev: 1000.0,
            },
            ..config()
        };
        for e in EventStream::new(cfg).unwrap().take(20_000) {
            check_payload(&e);
        }
    }

    #[test]
    fn invalid_configs_are_refused() {
        let cases = [
            StreamConfig {
                keys: 0,
                ..config()
            },
            StreamConfig {
                late_fraction: 1.5,
                ..config()
            },
            StreamConfig {
                bad_fraction: -0.1,
                ..config()
            },
            StreamConfig {
                bad_fraction: f64::NAN,
                ..config()
            },
            StreamConfig {
                late_fraction: 0.6,
                bad_fraction: 0.6,
                ..config()
            },
            StreamConfig {
                late_fraction: 0.1,
                late_by_ms: 0,
                ..config()
            },
            StreamConfig {
                decimals: 16,
                ..config()
            },
            StreamConfig {
                dist: ValueDist::Uniform { min: 2.0, max: 1.0 },
                ..config()
            },
            StreamConfig {
                dist: ValueDist::Uniform {
                    min: 0.0,
                    max: f64::INFINITY,
                },
                ..config()
            },
            StreamConfig {
                dist: ValueDist::Normal {
                    mean: 0.0,
                    stddev: -1.0,
                },
                ..config()
            },
            StreamConfig {
                dist: ValueDist::Normal {
                    mean: f64::NAN,
                    stddev: 1.0,
                },
                ..config()
            },
        ];
        for c in cases {
            assert!(
                matches!(EventStream::new(c.clone()), Err(GenError::InvalidArgs(_))),
                "{c:?}"
            );
        }
    }
}
