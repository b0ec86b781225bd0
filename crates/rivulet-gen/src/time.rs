//! RFC 3339 UTC timestamps with millisecond precision, to and from epoch milliseconds.
//!
//! Written by hand (civil-from-days arithmetic after Howard Hinnant's `chrono`-compatible
//! algorithms) because the generator needs exactly one format and a date crate would be the
//! biggest dependency of the crate. Years are limited to 0000–9999, the range RFC 3339 can
//! write.

use std::fmt::Write as _;

/// Milliseconds from the epoch to 0000-01-01T00:00:00.000Z, the earliest writable instant.
pub const MIN_MS: i64 = -62_167_219_200_000;
/// Milliseconds from the epoch to 9999-12-31T23:59:59.999Z, the latest writable instant.
pub const MAX_MS: i64 = 253_402_300_799_999;

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit in u32 by construction (1..=31 and 1..=12).
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Appends `ms` (epoch milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Instants outside
/// 0000–9999 are clamped to the nearest writable one (the generator never gets there unless
/// given an absurd `--start-time`).
pub fn write_rfc3339_millis(out: &mut String, ms: i64) {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z"
    );
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
    let err = || format!("expected an RFC 3339 timestamp like 2026-11-24T10:00:00.000Z, got `{s}`");
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = b.get(from..from + len).ok_or_else(err)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(err()),
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let digits = b[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err());
        }
        // Keep the first three digits, scaled to milliseconds; the rest is truncated.
        let kept = digits.min(3);
        millis = num(pos, kept)? * 10i64.pow(3 - kept as u32);
        pos += digits;
    }
    let offset_minutes = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if pos + 6 == b.len() => {
            let sign = if *c == b'-' { -1 } else { 1 };
            let (oh, om) = (num(pos + 1, 2)?, num(pos + 4, 2)?);
            sep(pos + 3, b":")?;
            if oh > 23 || om > 59 {
                return Err(err());
            }
            sign * (oh * 60 + om)
        }
        _ => return Err(err()),
    };
    let (month, day) = (month as u32, day as u32);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(err());
    }
    let days = days_from_civil(year, month, day);
    let ms =
        days * MS_PER_DAY + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis;
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(format!("`{s}` is outside 0000-01-01..9999-12-31 UTC"));
    }
    Ok(ms)
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(MAX_MS))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let from = days_from_civil(1599, 1, 1);
        let to = days_from_civil(2401, 12, 31);
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
