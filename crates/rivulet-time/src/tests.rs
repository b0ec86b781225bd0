#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use proptest::prelude::*;

use super::*;

// Reference values computed with Python's `datetime` (proleptic Gregorian, UTC).
const KNOWN: &[(i64, &str)] = &[
    (0, "1970-01-01T00:00:00.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (-14_182_940_000, "1969-07-20T20:17:40.000Z"),
    (2_147_483_648_000, "2038-01-19T03:14:08.000Z"),
    (-11_670_953_103_211, "1600-02-29T12:34:56.789Z"),
    (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),
    (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
    (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
    (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
    (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
];

/// chrono's instants: about ±262,000 years.
const CHRONO_MIN_MS: i64 = -8_210_266_876_800_000;
const CHRONO_MAX_MS: i64 = 8_210_298_412_799_999;
/// 0000-01-02 and 9999-12-30: any offset keeps the local date within four-digit years.
const TEXT_MIN_MS: i64 = -62_167_219_200_000 + MS_PER_DAY;
const TEXT_MAX_MS: i64 = 253_402_300_799_999 - MS_PER_DAY;

#[test]
fn formats_and_parses_known_values() {
    for (ms, text) in KNOWN {
        assert_eq!(rfc3339_ms(*ms), *text, "{ms}");
        assert_eq!(parse_rfc3339_ms(text), Ok(*ms), "{text}");
    }
}

#[test]
fn years_outside_four_digits_are_written_as_before() {
    // What the hand-written formatters wrote: `{:04}` of the year, sign included.
    assert_eq!(rfc3339_ms(-62_167_219_200_001), "-001-12-31T23:59:59.999Z");
    assert_eq!(rfc3339_ms(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
    assert_eq!(
        civil_from_ms(i64::MAX),
        Civil {
            year: 292_278_994,
            month: 8,
            day: 17,
            hour: 7,
            minute: 12,
            second: 55,
            milli: 807
        }
    );
    assert_eq!(civil_from_ms(i64::MIN).year, -292_275_055);
}

#[test]
fn parse_errors_name_the_problem() {
    let cases = [
        ("", "too short"),
        ("2026-11-24", "expected 'T' between date and time"),
        ("2026-11-24T10:00", "expected ':' after the minutes"),
        ("2026-11-24T10:00:0", "too short"),
        ("2026-11-24T10:00:00", "missing time zone ('Z' or ±HH:MM)"),
        ("2026/11-24T10:00:00Z", "expected '-' after the year"),
        ("2026-11/24T10:00:00Z", "expected '-' after the month"),
        ("2026-11-24X10:00:00Z", "expected 'T' between date and time"),
        ("2026-11-24T10-00:00Z", "expected ':' after the hour"),
        ("2026-11-24T10:00-00Z", "expected ':' after the minutes"),
        ("2026-11-24T10:00:00.Z", "expected digits after '.'"),
        ("2026-11-24T10:00:00+0200", "expected ':' in the UTC offset"),
        ("2026-11-24T10:00:00+24:00", "UTC offset out of range"),
        ("2026-11-24T10:00:00+01:60", "UTC offset out of range"),
        (
            "2026-11-24T10:00:00Zx",
            "unexpected characters after the time zone",
        ),
        ("2026-13-01T00:00:00Z", "month out of range"),
        ("2026-00-01T00:00:00Z", "month out of range"),
        ("2026-02-29T00:00:00Z", "day out of range"),
        ("1900-02-29T00:00:00Z", "day out of range"),
        ("2026-11-31T00:00:00Z", "day out of range"),
        ("2026-11-00T00:00:00Z", "day out of range"),
        ("2026-11-24T24:00:00Z", "time out of range"),
        ("2026-11-24T10:60:00Z", "time out of range"),
        ("2026-11-24T10:00:61Z", "time out of range"),
        ("+026-11-24T10:00:00Z", "expected a digit"),
        ("２026-11-24T10:00:00Z", "expected a digit"),
    ];
    for (text, why) in cases {
        assert_eq!(parse_rfc3339(text), Err(why), "{text:?}");
    }
    assert_eq!(
        parse_rfc3339("2016-12-31T23:59:60.5Z"),
        Ok(Rfc3339 {
            ms: 1_483_228_800_500,
            leap_second: true
        })
    );
    assert_eq!(
        parse_rfc3339_ms("2024-02-29T00:00:00Z"),
        Ok(1_709_164_800_000)
    );
    assert_eq!(
        parse_rfc3339_ms("2026-11-24t11:00:00.1239+01:00"),
        Ok(1_795_514_400_123)
    );
    assert_eq!(
        parse_rfc3339_ms("2026-11-24 09:30:00.5-00:30"),
        Ok(1_795_514_400_500)
    );
}

#[test]
fn every_day_of_eight_centuries_round_trips() {
    // Every leap-year rule, every month end, both sides of day boundaries.
    let from = days_from_civil(1599, 1, 1).unwrap();
    let to = days_from_civil(2401, 12, 31).unwrap();
    for d in from..=to {
        let (y, m, day) = civil_from_days(d);
        assert_eq!(days_from_civil(y, m, day), Some(d));
        for ms in [d * MS_PER_DAY, d * MS_PER_DAY + MS_PER_DAY - 1] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Ok(ms), "{ms}");
        }
    }
}

#[test]
fn now_is_after_this_code_was_written() {
    assert!(now_ms() > 1_767_225_600_000, "2026-01-01");
}

/// (year, month, day, hour, minute, second, milli) of an instant by chrono.
fn chrono_fields(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
    (
        i64::from(t.year()),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fields_agree_with_chrono(ms in CHRONO_MIN_MS..=CHRONO_MAX_MS) {
        let c = civil_from_ms(ms);
        prop_assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli),
            chrono_fields(ms)
        );
    }

    #[test]
    fn text_agrees_with_chrono(ms in TEXT_MIN_MS..=TEXT_MAX_MS) {
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        prop_assert_eq!(rfc3339_ms(ms), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }

    #[test]
    fn leap_years_agree_with_chrono(year in -300_000i64..300_000, month in 1u32..=12, day in 1u32..=31) {
        let ours = days_from_civil(year, month, day);
        if let Ok(y) = i32::try_from(year) {
            if let Some(date) = NaiveDate::from_ymd_opt(y, month, day) {
                prop_assert_eq!(ours, Some(i64::from(date.to_epoch_days())));
            } else if (-262_000..262_000).contains(&year) {
                prop_assert_eq!(ours, None);
            }
        }
        if let Some(d) = ours {
            prop_assert_eq!(civil_from_days(d), (year, month, day));
        }
        // February 29th exists exactly in the leap years.
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        prop_assert_eq!(days_from_civil(year, 2, 29).is_some(), leap);
    }

    #[test]
    fn days_round_trip(days in (i64::MIN / MS_PER_DAY)..=(i64::MAX / MS_PER_DAY)) {
        let (y, m, d) = civil_from_days(days);
        prop_assert_eq!(days_from_civil(y, m, d), Some(days));
    }

    /// Random instants written with a random offset, separator, zone letter case and fraction
    /// length (up to nanoseconds, sometimes a leap second): we read what chrono reads.
    #[test]
    fn parsing_agrees_with_chrono(
        ms in TEXT_MIN_MS..=TEXT_MAX_MS,
        offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i32),
        sub_ms_nanos in 0u32..1_000_000,
        digits in 0usize..=9,
        sep in prop::sample::select(vec!['T', 't', ' ']),
        zulu in prop::sample::select(vec!["Z", "z", "+00:00", "-00:00", ""]),
        leap in prop::bool::weighted(0.05),
    ) {
        let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
        let local = DateTime::<Utc>::from_timestamp_millis(ms).unwrap().with_timezone(&tz);
        let nanos = local.timestamp_subsec_nanos() + sub_ms_nanos;
        let frac = format!("{nanos:09}");
        let second = if leap { 60 } else { local.second() };
        let mut text = format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{second:02}",
            local.year(), local.month(), local.day(), local.hour(), local.minute()
        );
        if digits > 0 {
            text.push('.');
            text.push_str(&frac[..digits]);
        }
        if offset_min == 0 && !zulu.is_empty() {
            text.push_str(zulu);
        } else {
            let a = offset_min.abs();
            text.push_str(&format!("{}{:02}:{:02}", if offset_min < 0 { '-' } else { '+' }, a / 60, a % 60));
        }
        let theirs = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_millis();
        let ours = parse_rfc3339(&text).unwrap();
        prop_assert_eq!(ours.ms, theirs, "{}", text);
        prop_assert_eq!(ours.leap_second, leap);
        if !leap && digits >= 3 {
            prop_assert_eq!(ours.ms, ms, "{}", text);
        }
    }

    /// Whatever the bytes, we accept exactly what chrono accepts (given our four-digit,
    /// ASCII-only grammar) and agree on the instant.
    #[test]
    fn accepts_what_chrono_accepts(
        text in "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,4})?([Zz]|[+-][0-2][0-9]:[0-6][0-9])",
    ) {
        let theirs = DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis());
        let ours = parse_rfc3339_ms(&text);
        prop_assert_eq!(ours.ok(), theirs.ok(), "{}", text);
    }
}

proptest! {
    /// A reader gives every timestamp of a sequence exactly what the stateless parser gives,
    /// errors included, whatever came before (dates repeat, change, and turn up in broken
    /// timestamps).
    #[test]
    fn a_reader_reads_like_the_parser(
        texts in prop::collection::vec(
            prop_oneof![
                "20(24|25)-0[12]-(28|29|30)[T ]1[0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,4})?(Z|[+-]0[0-9]:[0-5][0-9])",
                "20(24|25)-0[12]-(28|29|30)[T x]2[0-9]:[0-9]{2}:[0-9]{2}[Zz+]",
                "20(24|25)-[01][0-9]-[0-3][0-9].{0,14}",
                ".{0,24}",
            ],
            1..40,
        ),
    ) {
        let mut reader = Rfc3339Reader::default();
        for t in &texts {
            prop_assert_eq!(reader.parse(t), parse_rfc3339(t), "{}", t);
        }
    }
}
