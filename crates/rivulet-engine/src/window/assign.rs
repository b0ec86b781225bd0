//! Window assignment: which windows an event time belongs to.
//!
//! * **Tumbling** (Spark `window(t, size)`, Flink `TumblingEventTimeWindows`): fixed,
//!   non-overlapping `[start, start + size)` with `start = floor(t / size) · size`, aligned to the
//!   epoch (so 1-hour windows start on the hour, UTC).
//! * **Hopping** (Spark `window(t, size, slide)`, Flink sliding windows): windows of `size`
//!   starting every `slide` (aligned on `slide`); an event belongs to every window
//!   `start ≤ t < start + size`, i.e. `size / slide` of them when slide divides size.
//! * **Session** (Spark `session_window`, Flink `EventTimeSessionWindows`): see
//!   [`super::session`].
//! * **Global** (no window): one running aggregate per group, never closed.
//!
//! Windows are half-open: an event exactly at `end` belongs to the next window.

use crate::error::{EngineError, Result};
use crate::plan::WindowSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assigner {
    Global,
    Tumbling { size: i64 },
    Hopping { size: i64, slide: i64 },
    Session { gap: i64 },
}

impl Assigner {
    pub fn from_spec(spec: Option<&WindowSpec>) -> Result<Self> {
        let positive = |what: &str, v: i64| {
            if v > 0 {
                Ok(v)
            } else {
                Err(EngineError::Plan(format!(
                    "window {what} must be positive, got {v}ms"
                )))
            }
        };
        Ok(match spec {
            None => Assigner::Global,
            Some(WindowSpec::Tumbling { size }) => Assigner::Tumbling {
                size: positive("size", size.0)?,
            },
            Some(WindowSpec::Hopping { size, slide }) => {
                let size = positive("size", size.0)?;
                let slide = positive("slide", slide.0)?;
                if slide > size {
                    return Err(EngineError::Plan(format!(
                        "hopping window slide ({slide}ms) must not exceed its size ({size}ms)"
                    )));
                }
                Assigner::Hopping { size, slide }
            }
            Some(WindowSpec::Session { gap }) => Assigner::Session {
                gap: positive("gap", gap.0)?,
            },
        })
    }

    pub fn is_windowed(&self) -> bool {
        !matches!(self, Assigner::Global)
    }
}

/// Start of the tumbling window of `size` holding `t` (floor division, also for negative `t`).
#[inline]
pub(crate) fn tumbling_start(t: i64, size: i64) -> i64 {
    t - t.rem_euclid(size)
}

/// Calls `f(start, end)` for every hopping window holding `t`, latest start first.
#[inline]
pub(crate) fn hopping_windows(t: i64, size: i64, slide: i64, mut f: impl FnMut(i64, i64)) {
    let mut start = tumbling_start(t, slide);
    while start.saturating_add(size) > t {
        f(start, start.saturating_add(size));
        match start.checked_sub(slide) {
            Some(s) => start = s,
            None => break,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_alignment() {
        assert_eq!(tumbling_start(0, 10), 0);
        assert_eq!(tumbling_start(9, 10), 0);
        assert_eq!(tumbling_start(10, 10), 10);
        assert_eq!(tumbling_start(-1, 10), -10);
        assert_eq!(tumbling_start(1_700_000_123_456, 60_000), 1_700_000_100_000);
    }

    #[test]
    fn hopping_membership() {
        let mut w = Vec::new();
        hopping_windows(25, 30, 10, |s, e| w.push((s, e)));
        assert_eq!(w, [(20, 50), (10, 40), (0, 30)]);
        w.clear();
        hopping_windows(30, 30, 10, |s, e| w.push((s, e)));
        assert_eq!(w, [(30, 60), (20, 50), (10, 40)]);
        w.clear();
        // Size not a multiple of slide: 2 or 3 windows.
        hopping_windows(0, 25, 10, |s, e| w.push((s, e)));
        assert_eq!(w, [(0, 25), (-10, 15), (-20, 5)]);
        w.clear();
        hopping_windows(7, 25, 10, |s, e| w.push((s, e)));
        assert_eq!(w, [(0, 25), (-10, 15)]);
    }

    #[test]
    fn invalid_specs() {
        use crate::plan::DurationMs;
        let bad = WindowSpec::Hopping {
            size: DurationMs(10),
            slide: DurationMs(20),
        };
        assert!(Assigner::from_spec(Some(&bad)).is_err());
        let bad = WindowSpec::Tumbling {
            size: DurationMs(0),
        };
        assert!(Assigner::from_spec(Some(&bad)).is_err());
    }
}
