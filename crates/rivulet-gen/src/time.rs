//! RFC 3339 UTC timestamps with millisecond precision, to and from epoch milliseconds, as the
//! generator writes and reads them: `rivulet_time`'s (calendar by chrono), limited to years
//! 0000–9999, the range RFC 3339 can write.

/// Milliseconds from the epoch to 0000-01-01T00:00:00.000Z, the earliest writable instant.
pub const MIN_MS: i64 = -62_167_219_200_000;
/// Milliseconds from the epoch to 9999-12-31T23:59:59.999Z, the latest writable instant.
pub const MAX_MS: i64 = 253_402_300_799_999;

pub use rivulet_time::now_ms;

/// Appends `ms` (epoch milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Instants outside
/// 0000–9999 are clamped to the nearest writable one (the generator never gets there unless
/// given an absurd `--start-time`).
pub fn write_rfc3339_millis(out: &mut String, ms: i64) {
    rivulet_time::write_rfc3339_ms(out, ms.clamp(MIN_MS, MAX_MS));
}

/// `ms` (epoch milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`; see [`write_rfc3339_millis`].
pub fn format_rfc3339_millis(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_millis(&mut s, ms);
    s
}

/// Parses an RFC 3339 timestamp (`2026-11-24T10:00:00Z`, `2026-11-24T10:00:00.123+01:00`;
/// `T` may be `t` or a space, `Z` may be `z`) to epoch milliseconds. Fractions beyond
/// milliseconds are truncated. Leap seconds (`:60`) are refused.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let ms = match rivulet_time::parse_rfc3339(s) {
        Ok(t) if !t.leap_second => t.ms,
        _ => {
            return Err(format!(
                "expected an RFC 3339 timestamp like 2026-11-24T10:00:00.000Z, got `{s}`"
            ))
        }
    };
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(format!("`{s}` is outside 0000-01-01..9999-12-31 UTC"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rivulet_time::MS_PER_DAY;

    // Reference values from `date -u -d @SECONDS`.
    const KNOWN: &[(i64, &str)] = &[
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_795_514_400_123, "2026-11-24T10:00:00.123Z"),
        (MAX_MS, "9999-12-31T23:59:59.999Z"),
        (MIN_MS, "0000-01-01T00:00:00.000Z"),
    ];

    #[test]
    fn formats_known_values() {
        for (ms, text) in KNOWN {
            assert_eq!(format_rfc3339_millis(*ms), *text, "{ms}");
        }
    }

    #[test]
    fn parses_known_values() {
        for (ms, text) in KNOWN {
            assert_eq!(parse_rfc3339(text).unwrap(), *ms, "{text}");
        }
        assert_eq!(
            parse_rfc3339("2026-11-24T10:00:00Z").unwrap(),
            1_795_514_400_000
        );
        assert_eq!(
            parse_rfc3339("2026-11-24t11:00:00.1239+01:00").unwrap(),
            1_795_514_400_123
        );
        assert_eq!(
            parse_rfc3339("2026-11-24 09:30:00.5-00:30").unwrap(),
            1_795_514_400_500
        );
    }

    #[test]
    fn clamps_out_of_range() {
        assert_eq!(format_rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339_millis(i64::MIN), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn round_trips_every_day_boundary_over_centuries() {
        // Every 7th day from 1599 to 2401 crosses all leap-year rules, month ends included.
        let from = rivulet_time::days_from_civil(1599, 1, 1).unwrap();
        let to = rivulet_time::days_from_civil(2401, 12, 31).unwrap();
        let mut d = from;
        while d <= to {
            for ms in [d * MS_PER_DAY, d * MS_PER_DAY + MS_PER_DAY - 1] {
                let s = format_rfc3339_millis(ms);
                assert_eq!(parse_rfc3339(&s).unwrap(), ms, "{s}");
            }
            d += 7;
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:60:00Z",
            "2026-11-24T10:00:60Z",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T10:00:00+0100",
            "2026-11-24T10:00:00Zjunk",
            "+026-11-24T10:00:00Z",
            "2026-11-24T10:00:00 Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
    }
}
