//! UTC calendar fields of a Unix time, for the dates the toolkit writes
//! (`--show-process` stamps, mbox `From ` lines) without a date crate.

/// A moment in UTC, broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    /// 1–12
    pub month: u32,
    /// 1–31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday … 6 = Saturday
    pub weekday: u32,
}

impl UtcTime {
    pub fn from_unix(secs: u64) -> UtcTime {
        let days = (secs / 86400) as i64;
        let rem = (secs % 86400) as u32;
        // Howard Hinnant's civil_from_days
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday
            weekday: ((days + 4).rem_euclid(7)) as u32,
        }
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// days_from_civil): the inverse of [`UtcTime::from_unix`]'s date part.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = UtcTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 4));
        let t = UtcTime::from_unix(951_782_400); // leap day
        assert_eq!((t.year, t.month, t.day), (2000, 2, 29));
        let t = UtcTime::from_unix(1_795_827_723);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
            (2026, 11, 28, 1, 2, 3, 6)
        );
        assert_eq!(days_from_civil(2026, 11, 28), 1_795_827_723 / 86400);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 951_782_400 / 86400);
    }
}
