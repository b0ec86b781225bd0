//! The send schedule: event `i` is due `i / rate` seconds after the start.
//!
//! Everything is computed from the absolute start instant, never by adding up sleeps, so
//! timer lateness (a sleep that wakes 1 ms late, a slow burst) delays events but cannot make
//! the run drift: the next wake-up sends every event that has become due in the meantime.
//! At high rates one wake-up per [`TICK`] sends a burst of `rate × TICK` events; at low rates
//! the sender sleeps until exactly the next event's due time. Integer nanoseconds keep the
//! schedule exact for any `u64` rate.

use std::time::Duration;

/// The shortest sleep between two bursts. 1 ms is tokio's timer resolution; at 100k events/s
/// a tick carries ~100 events.
pub const TICK: Duration = Duration::from_millis(1);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The due times of a paced run (`rate` events per second, > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    rate: u64,
}

impl Schedule {
    /// `None` for rate 0 (unpaced: as fast as the broker takes them).
    pub fn new(rate: u64) -> Option<Schedule> {
        (rate > 0).then_some(Schedule { rate })
    }

    /// Events per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// When event `i` (0-based) is due, from the start: `floor(i × 10⁹ / rate)` ns.
    pub fn due_at(&self, i: u64) -> Duration {
        let ns = u128::from(i) * NANOS_PER_SEC / u128::from(self.rate);
        duration_from_nanos(ns)
    }

    /// How many events are due `elapsed` after the start: the number of `i` with
    /// `due_at(i) <= elapsed`, i.e. `ceil((elapsed_ns + 1) × rate / 10⁹)`.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // floor(i·10⁹/r) ≤ e  ⇔  i·10⁹/r < e+1  ⇔  i < (e+1)·r/10⁹.
        let n = (elapsed.as_nanos() + 1) * u128::from(self.rate);
        let count = n.div_ceil(NANOS_PER_SEC);
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// Event-time offset of event `i` in whole milliseconds: `floor(i × 1000 / rate)`, which
    /// equals [`Schedule::due_at`] truncated to milliseconds.
    pub fn offset_ms(&self, i: u64) -> u64 {
        let ms = u128::from(i) * 1000 / u128::from(self.rate);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

fn duration_from_nanos(ns: u128) -> Duration {
    let secs = u64::try_from(ns / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10⁹ and fits in u32.
    Duration::new(secs, (ns % NANOS_PER_SEC) as u32)
}

/// What the sender does after a burst, given how many events are sent and how long since
/// the start (pure, so the policy is testable without clocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// More events are already due (catching up after a slow burst): send again now.
    SendNow,
    /// Sleep until this offset from the start, then send what is due.
    SleepUntil(Duration),
}

impl Schedule {
    /// The sender's next step after `sent` events at `elapsed`: sleep until the next event
    /// is due, but at least one [`TICK`] so high rates are sent in bursts instead of spinning.
    pub fn next(&self, sent: u64, elapsed: Duration) -> Next {
        if self.due_by(elapsed) > sent {
            return Next::SendNow;
        }
        Next::SleepUntil(self.due_at(sent).max(elapsed + TICK))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RATES: &[u64] = &[
        1, 3, 7, 10, 333, 1000, 4096, 100_000, 999_983, 1_000_000, 10_000_000,
    ];

    #[test]
    fn rate_zero_is_unpaced() {
        assert!(Schedule::new(0).is_none());
    }

    #[test]
    fn due_at_is_exact() {
        let s = Schedule::new(3).unwrap();
        assert_eq!(s.due_at(0), Duration::ZERO);
        assert_eq!(s.due_at(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.due_at(2), Duration::from_nanos(666_666_666));
        assert_eq!(s.due_at(3), Duration::from_secs(1));
        assert_eq!(s.due_at(3_000_000), Duration::from_secs(1_000_000));
        let s = Schedule::new(100_000).unwrap();
        assert_eq!(s.due_at(1), Duration::from_micros(10));
        assert_eq!(s.due_at(100_000 * 3600), Duration::from_secs(3600));
    }

    #[test]
    fn due_by_inverts_due_at() {
        for &r in RATES {
            let s = Schedule::new(r).unwrap();
            for i in (0..2000).chain([r - 1, r, r + 1, 10 * r, 1 << 40]) {
                let at = s.due_at(i);
                // Event i becomes due exactly at due_at(i): one nanosecond before, only i are due.
                assert!(s.due_by(at) > i, "rate {r} i {i}");
                if at > Duration::ZERO {
                    assert!(
                        s.due_by(at - Duration::from_nanos(1)) <= i,
                        "rate {r} i {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_drift_over_long_runs() {
        // After exactly N seconds, exactly N × rate events (plus the one due at that instant)
        // have been due, whatever the rate: the schedule never accumulates rounding.
        for &r in RATES {
            let s = Schedule::new(r).unwrap();
            for secs in [1u64, 60, 3600, 86_400 * 365] {
                assert_eq!(
                    s.due_by(Duration::from_secs(secs)),
                    secs * r + 1,
                    "rate {r}"
                );
                assert_eq!(
                    s.due_by(Duration::from_secs(secs) - Duration::from_nanos(1)),
                    secs * r,
                    "rate {r}"
                );
            }
        }
    }

    #[test]
    fn bursts_at_high_rate_and_exact_sleeps_at_low_rate() {
        // 100k/s: after sending what is due at t=0, sleep one tick; then ~100 are due.
        let s = Schedule::new(100_000).unwrap();
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.next(1, Duration::ZERO), Next::SleepUntil(TICK));
        assert_eq!(s.due_by(TICK), 101);
        assert_eq!(s.next(101, TICK), Next::SleepUntil(TICK * 2));
        // A burst that ran late leaves due events behind: send again without sleeping.
        assert_eq!(s.next(101, TICK * 5), Next::SendNow);

        // 2/s: sleep until the next event's exact due time, no spinning in between.
        let s = Schedule::new(2).unwrap();
        assert_eq!(
            s.next(1, Duration::ZERO),
            Next::SleepUntil(Duration::from_millis(500))
        );
        assert_eq!(
            s.next(2, Duration::from_millis(503)),
            Next::SleepUntil(Duration::from_secs(1))
        );
    }

    #[test]
    fn simulated_run_sends_each_event_once_in_bounded_bursts() {
        // Drive the policy with a fake clock that wakes up `lateness` after each requested
        // time: the total sent matches the schedule at every step and bursts stay small.
        for &(r, lateness_us) in &[(100_000u64, 0u64), (100_000, 700), (1000, 300), (7, 2000)] {
            let s = Schedule::new(r).unwrap();
            let lateness = Duration::from_micros(lateness_us);
            let (mut sent, mut now, mut max_burst, mut wakes) = (0u64, Duration::ZERO, 0u64, 0);
            let mut last_wake = now;
            while now < Duration::from_secs(3) {
                let due = s.due_by(now);
                assert!(due >= sent, "the due count never goes back");
                max_burst = max_burst.max(due - sent);
                sent = due;
                last_wake = now;
                match s.next(sent, now) {
                    Next::SendNow => unreachable!("everything due was just sent"),
                    Next::SleepUntil(t) => {
                        assert!(t > now, "never sleeps zero (no spinning)");
                        now = t + lateness;
                    }
                }
                wakes += 1;
                assert!(wakes < 10_000, "bounded");
            }
            // Late wake-ups delay events but lose none: by the last wake-up, all due were sent.
            assert_eq!(sent, s.due_by(last_wake));
            assert!(last_wake + TICK + lateness + s.due_at(1) >= Duration::from_secs(3));
            // A burst carries at most (tick + lateness) worth of events, plus one.
            let bound = (TICK + lateness).as_nanos() * u128::from(r) / NANOS_PER_SEC + 2;
            assert!(
                u128::from(max_burst) <= bound,
                "rate {r}: burst {max_burst} > {bound}"
            );
        }
    }

    #[test]
    fn offset_ms_is_due_at_truncated() {
        for &r in RATES {
            let s = Schedule::new(r).unwrap();
            for i in (0..5000).chain([1 << 33, 123_456_789_012]) {
                assert_eq!(
                    u128::from(s.offset_ms(i)),
                    s.due_at(i).as_millis(),
                    "rate {r} i {i}"
                );
            }
        }
    }
}
