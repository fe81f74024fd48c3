//! Times in the logs and the report's days. The programs stamp each line
//! in RFC 3339, UTC (`2026-12-02T01:48:30.243615Z`); the report counts by
//! the site's calendar day, at a fixed offset from UTC (`--utc-offset`,
//! by default this machine's offset now: exact for zones without summer
//! time, such as Japan's). Civil dates from and to day numbers are
//! bsfilter's (`bsfilter::time`, Howard Hinnant's algorithms), not a
//! date crate's: two small functions in the hot loop.

pub use bsfilter::time::days_from_civil;

/// The end of the first RFC 3339 timestamp in `line` and its Unix time.
pub fn find_timestamp(line: &[u8]) -> Option<(usize, i64)> {
    // the line's start (the programs' own log), else behind a prefix
    if let Some(found) = timestamp_at(line, 0) {
        return Some(found);
    }
    memchr::memchr_iter(b'T', line)
        .filter(|&t| t >= 10)
        .find_map(|t| timestamp_at(line, t - 10))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` at `at`, ending the line or
/// before a space.
fn timestamp_at(line: &[u8], at: usize) -> Option<(usize, i64)> {
    let b = line.get(at..at + 19)?;
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter()
            .try_fold(0i64, |n, &d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut end = at + 19;
    if line.get(end) == Some(&b'.') {
        end += 1;
        while line.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    let offset = match line.get(end) {
        Some(b'Z') => {
            end += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let o = line.get(end + 1..end + 6)?;
            if o[2] != b':' || !o[..2].iter().chain(&o[3..]).all(u8::is_ascii_digit) {
                return None;
            }
            end += 6;
            let minutes =
                i64::from((o[0] - b'0') * 10 + o[1] - b'0') * 60 + i64::from((o[3] - b'0') * 10 + o[4] - b'0');
            if sign == b'+' { minutes * 60 } else { -minutes * 60 }
        }
        _ => return None,
    };
    if line.get(end).is_some_and(|&c| c != b' ') {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((end, seconds))
}

/// The date of a day number on or after 1970-01-01: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let t = bsfilter::time::UtcTime::from_unix(days.max(0) as u64 * 86_400);
    (t.year, i64::from(t.month), i64::from(t.day))
}

/// `YYYY-MM-DD` of a day number.
pub fn date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A day number from `YYYY-MM-DD`, checked (no 2026-02-30).
pub fn parse_date(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date: write it as YYYY-MM-DD, e.g. 2026-12-01");
    let mut parts = text.split('-');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, d) = (next()?, next()?, next()?);
    if text.len() != 10 || !(1..=12).contains(&m) || d < 1 {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    if days < 0 {
        return Err(format!("{text:?} is before 1970, older than any log"));
    }
    if civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days)
}

/// Monday 0 … Sunday 6 (1970-01-01 was a Thursday).
pub fn weekday(days: i64) -> usize {
    (days + 3).rem_euclid(7) as usize
}

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A `±HH:MM` offset from UTC, in seconds.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an offset from UTC: write it as +09:00 or -05:00");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 || rest.len() != 5 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// This machine's offset from UTC now (its TZ, or /etc/localtime).
pub fn local_offset() -> i64 {
    // SAFETY: localtime_r writes only the struct it is given.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            find_timestamp(b"2026-12-02T01:48:30.243615Z  INFO x"),
            Some((27, 1_796_176_110))
        );
        assert_eq!(
            find_timestamp(b"2026-12-02T10:48:30+09:00 INFO"),
            Some((25, 1_796_176_110))
        );
        assert_eq!(
            find_timestamp(b"Dec 02 10:48:30 mx mtad[1]: 2026-12-02T01:48:30Z x"),
            Some((48, 1_796_176_110))
        );
        for bad in [
            &b"2026-13-02T01:48:30Z"[..],
            b"2026-12-02T01:48:30",
            b"2026-12-02T01:48:30Zx",
            b"2026-12-02 01:48:30Z",
        ] {
            assert_eq!(find_timestamp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(weekday(parse_date("2026-12-02").unwrap()), 2); // a Wednesday
        assert_eq!(date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        for bad in ["2026-02-30", "2026-1-01", "yesterday", "2026-12-02T00:00"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_offset("+09:00"), Ok(32_400));
        assert_eq!(parse_offset("-05:30"), Ok(-19_800));
        assert!(parse_offset("9").is_err());
    }

    proptest! {
        #[test]
        fn days_round_trip(days in 0i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn no_line_breaks_it(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = find_timestamp(&line);
        }
    }
}
