//! # rivulet-time — the clock and RFC 3339 text, written once
//!
//! Every crate that needs wall-clock milliseconds or RFC 3339 timestamps uses this one:
//!
//! - [`now_ms`]: the system clock in milliseconds since the Unix epoch.
//! - [`parse_rfc3339`] / [`parse_rfc3339_ms`]: RFC 3339 text → epoch milliseconds. The digit
//!   scanner is written by hand (it is on the decoder's per-event path and its error messages
//!   end up in dead-letter reasons); the calendar is chrono's. [`Rfc3339Reader`] reads a
//!   stream of them, converting a date only when it changes.
//! - [`write_rfc3339_ms`] / [`rfc3339_ms`] and [`civil_from_ms`]: epoch milliseconds → text or
//!   fields, calendar again by chrono.
//!
//! The calendar is the proleptic Gregorian one, for every `i64` of milliseconds: chrono covers
//! about ±262,000 years, and the calendar repeats every 400 years (146,097 days), so
//! [`civil_from_days`] and [`days_from_civil`] hand chrono the date's place in its 400-year
//! cycle and add the whole cycles back themselves.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Days in one 400-year cycle of the Gregorian calendar.
const DAYS_PER_400_YEARS: i64 = 146_097;

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`; `None` when the
/// month is not 1–12 or the day is not in the month.
#[inline]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    // Years 2000–2399 stand for their whole residue class modulo 400.
    let cycles = year.div_euclid(400) - 5;
    let in_cycle = (year.rem_euclid(400) + 2000) as i32;
    let date = NaiveDate::from_ymd_opt(in_cycle, month, day)?;
    Some(i64::from(date.to_epoch_days()) + cycles * DAYS_PER_400_YEARS)
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
#[inline]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let cycles = days.div_euclid(DAYS_PER_400_YEARS);
    // 0..146_097 days after 1970-01-01: always a date chrono has.
    let in_cycle = days.rem_euclid(DAYS_PER_400_YEARS) as i32;
    let date = NaiveDate::from_epoch_days(in_cycle).unwrap_or(NaiveDate::MIN);
    (
        i64::from(date.year()) + cycles * 400,
        date.month(),
        date.day(),
    )
}

/// An instant broken down into UTC calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

/// The UTC calendar fields of `ms` (milliseconds since the epoch), for any `i64`.
pub fn civil_from_ms(ms: i64) -> Civil {
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    // 0..86_400_000: fits in u32.
    let in_day = ms.rem_euclid(MS_PER_DAY) as u32;
    Civil {
        year,
        month,
        day,
        hour: in_day / 3_600_000,
        minute: in_day / 60_000 % 60,
        second: in_day / 1000 % 60,
        milli: in_day % 1000,
    }
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`. The year is written with at least four
/// characters, sign included (`-001`, `10000`): outside 0000–9999 that is not RFC 3339,
/// and callers that must stay within it clamp first.
pub fn write_rfc3339_ms(out: &mut String, ms: i64) {
    let c = civil_from_ms(ms);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    );
}

/// `ms` as `2026-11-24T10:00:10.123Z`; see [`write_rfc3339_ms`].
pub fn rfc3339_ms(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_ms(&mut s, ms);
    s
}

/// An RFC 3339 timestamp as [`parse_rfc3339`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339 {
    /// Milliseconds since the epoch (a leap second counts as the next second).
    pub ms: i64,
    /// The seconds field was `60`.
    pub leap_second: bool,
}

/// Parses an RFC 3339 timestamp (`2026-11-24T10:00:00.123Z`, `...+02:00`): a four-digit year,
/// `T`, `t` or a space between date and time, fractions of any length (truncated to
/// milliseconds), `Z`, `z` or `±HH:MM`. A leap second (`:60`) counts as the next second and is
/// flagged. The error says what is wrong.
#[inline]
pub fn parse_rfc3339(s: &str) -> Result<Rfc3339, &'static str> {
    parse_with(s, &mut None)
}

/// [`parse_rfc3339`]'s milliseconds.
#[inline]
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, &'static str> {
    parse_rfc3339(s).map(|t| t.ms)
}

/// Reads RFC 3339 timestamps one after another exactly as [`parse_rfc3339`] does (same
/// results, same errors), remembering the last date it read: the timestamps of a stream mostly
/// share their date, and then only the time of day is read.
#[derive(Debug, Clone, Default)]
pub struct Rfc3339Reader {
    /// The last valid date (`YYYY-MM-DD`, as written) and its day number.
    last: Option<([u8; 10], i64)>,
}

impl Rfc3339Reader {
    /// See [`parse_rfc3339`].
    #[inline]
    pub fn parse(&mut self, s: &str) -> Result<Rfc3339, &'static str> {
        parse_with(s, &mut self.last)
    }

    /// See [`parse_rfc3339_ms`].
    #[inline]
    pub fn parse_ms(&mut self, s: &str) -> Result<i64, &'static str> {
        self.parse(s).map(|t| t.ms)
    }
}

/// The parser: a hand-written scanner (every check in the same order, so the same input always
/// gets the same error), the calendar by [`days_from_civil`]. `last` is a date already read
/// and checked: when `s` starts with it, its day number is reused.
#[inline]
fn parse_with(s: &str, last: &mut Option<([u8; 10], i64)>) -> Result<Rfc3339, &'static str> {
    let b = s.as_bytes();
    let num = |at: usize, n: usize| -> Result<i64, &'static str> {
        let digits = b.get(at..at + n).ok_or("too short")?;
        digits.iter().try_fold(0i64, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + i64::from(c - b'0'))
            } else {
                Err("expected a digit")
            }
        })
    };
    let expect = |at: usize, chars: &[u8], what: &'static str| -> Result<(), &'static str> {
        match b.get(at) {
            Some(c) if chars.contains(c) => Ok(()),
            _ => Err(what),
        }
    };
    // The day number of a date read before, or the fields, checked once the rest is read.
    let date: Result<i64, (i64, i64, i64)> = match (*last, b.get(..10)) {
        (Some((text, days)), Some(prefix)) if prefix == text => Ok(days),
        _ => {
            let year = num(0, 4)?;
            expect(4, b"-", "expected '-' after the year")?;
            let month = num(5, 2)?;
            expect(7, b"-", "expected '-' after the month")?;
            let day = num(8, 2)?;
            Err((year, month, day))
        }
    };
    expect(10, b"Tt ", "expected 'T' between date and time")?;
    let hour = num(11, 2)?;
    expect(13, b":", "expected ':' after the hour")?;
    let minute = num(14, 2)?;
    expect(16, b":", "expected ':' after the minutes")?;
    let second = num(17, 2)?;
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        match i - start {
            0 => return Err("expected digits after '.'"),
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            expect(i + 3, b":", "expected ':' in the UTC offset")?;
            let om = num(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("UTC offset out of range");
            }
            i += 6;
            let m = oh * 60 + om;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err("missing time zone ('Z' or ±HH:MM)"),
    };
    if i != b.len() {
        return Err("unexpected characters after the time zone");
    }
    let days = match date {
        Ok(days) => days,
        Err((year, month, day)) => {
            if !(1..=12).contains(&month) {
                return Err("month out of range");
            }
            // Two digits each: 0..=99, so the casts cannot truncate.
            let days = days_from_civil(year, month as u32, day as u32).ok_or("day out of range")?;
            if let Some(text) = b.get(..10).and_then(|p| <[u8; 10]>::try_from(p).ok()) {
                *last = Some((text, days));
            }
            days
        }
    };
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range");
    }
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(Rfc3339 {
        ms: secs * 1000 + millis,
        leap_second: second == 60,
    })
}

#[cfg(test)]
mod tests;
