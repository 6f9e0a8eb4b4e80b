//! Durations (`"90s"`, `"12h"`, `"1d12h"`) and token lifetimes (`"90d"`, `"6mo"`, a date).

use chrono::{DateTime, Months, NaiveDate, SecondsFormat, TimeDelta, Utc};
use std::time::Duration;

const UNITS_HINT: &str =
    "use a number followed by ms, s, m, h, d or w, e.g. \"30m\", \"12h\", \"14d\"";

/// Parses `"250ms"`, `"90s"`, `"30m"`, `"12h"`, `"14d"`, `"2w"` and combinations such as `"1d12h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {UNITS_HINT}"));
    }
    if text.starts_with('-') {
        return Err(format!("negative duration {text:?} is not allowed"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?}; {UNITS_HINT}"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.chars().take_while(char::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" if tail.is_empty() => {
                return Err(format!("duration {text:?} is missing a unit; {UNITS_HINT}"));
            }
            "" => return Err(format!("invalid duration {text:?}; {UNITS_HINT}")),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration {text:?}; {UNITS_HINT}"
                ));
            }
        };
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis_per_unit))
            .and_then(|n| total.checked_add(n));
        total = part.ok_or_else(|| format!("duration {text:?} is too large"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way policies write it (`"1d12h"`, `"0s"`), for messages.
pub fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// How long a newly created token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Days(u32),
    /// Calendar months (the day of month is clamped, e.g. Jan 31 + 1 month = Feb 28/29).
    Months(u32),
    /// A fixed expiry instant.
    Until(DateTime<Utc>),
}

impl std::fmt::Display for Lifetime {
    /// The policy form: `90d`, `6mo`, or an RFC 3339 instant.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lifetime::Days(days) => write!(f, "{days}d"),
            Lifetime::Months(months) => write!(f, "{months}mo"),
            Lifetime::Until(at) => write!(f, "{}", at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        }
    }
}

const MAX_DAYS: u32 = 730;
const MAX_MONTHS: u32 = 24;

impl Lifetime {
    /// The expiry of a token created at `now`.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Lifetime::Days(days) => now
                .checked_add_signed(TimeDelta::days(i64::from(days)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Lifetime::Months(months) => now
                .checked_add_months(Months::new(months))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Lifetime::Until(at) => at,
        }
    }

    /// The shortest this lifetime can be (months count as 28 days); `None` for a fixed date.
    pub fn min_length(&self) -> Option<Duration> {
        let days = match *self {
            Lifetime::Days(days) => days,
            Lifetime::Months(months) => months * 28,
            Lifetime::Until(_) => return None,
        };
        Some(Duration::from_secs(u64::from(days) * 86_400))
    }

    /// Parses `"30d"`, `"90d"`, `"6mo"`, `"12mo"`, `"<n>d"`, `"<n>w"`, `"<n>mo"`, an RFC 3339
    /// date-time (`"2027-06-30T00:00:00Z"`) or a date (`"2027-06-30"`, midnight UTC).
    pub fn parse(s: &str) -> Result<Lifetime, String> {
        let text = s.trim();
        if text.starts_with(|c: char| c.is_ascii_digit()) && text.contains('-') {
            return parse_date(text);
        }
        let digits = text.chars().take_while(char::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let n: Option<u32> = number.parse().ok();
        let (Some(n), "d" | "w" | "mo") = (n, unit) else {
            return Err(format!(
                "invalid lifetime {text:?}; use \"30d\", \"90d\", \"6mo\", \"12mo\", \
                 any \"<n>d\", \"<n>w\" or \"<n>mo\", or a date such as \"2027-06-30\""
            ));
        };
        match unit {
            "mo" if (1..=MAX_MONTHS).contains(&n) => Ok(Lifetime::Months(n)),
            "mo" => Err(format!(
                "lifetime {text:?} is out of range; use 1mo to {MAX_MONTHS}mo"
            )),
            _ => {
                let days = if unit == "w" {
                    n.checked_mul(7)
                } else {
                    Some(n)
                };
                match days {
                    Some(days) if (1..=MAX_DAYS).contains(&days) => Ok(Lifetime::Days(days)),
                    _ => Err(format!(
                        "lifetime {text:?} is out of range; use 1d to {MAX_DAYS}d"
                    )),
                }
            }
        }
    }
}

fn parse_date(text: &str) -> Result<Lifetime, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Lifetime::Until(at.with_timezone(&Utc)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Lifetime::Until(
            date.and_time(chrono::NaiveTime::MIN).and_utc(),
        ));
    }
    if text.contains('T') || text.contains(' ') {
        Err(format!(
            "invalid lifetime date-time {text:?}; use RFC 3339 with an offset, \
             e.g. \"2027-06-30T00:00:00Z\""
        ))
    } else {
        Err(format!(
            "invalid lifetime date {text:?}; use YYYY-MM-DD, e.g. \"2027-06-30\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secs(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(n))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), secs(90));
        assert_eq!(parse_duration("30m"), secs(1_800));
        assert_eq!(parse_duration("12h"), secs(43_200));
        assert_eq!(parse_duration("14d"), secs(14 * 86_400));
        assert_eq!(parse_duration("2w"), secs(14 * 86_400));
        assert_eq!(parse_duration("0s"), secs(0));
        assert_eq!(parse_duration("1d12h"), secs(86_400 + 43_200));
        assert_eq!(parse_duration("1h30m15s"), secs(5_415));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(format_duration(Duration::from_millis(1_250)), "1s250ms");
    }

    #[test]
    fn bad_durations() {
        let err = |s| parse_duration(s).expect_err(s);
        assert_eq!(err("-1d"), "negative duration \"-1d\" is not allowed");
        assert_eq!(
            err("14"),
            "duration \"14\" is missing a unit; use a number followed by ms, s, m, h, d or w, \
             e.g. \"30m\", \"12h\", \"14d\""
        );
        assert!(err("5x").starts_with("unknown unit `x` in duration \"5x\""));
        assert!(err("").starts_with("empty duration"));
        assert!(err("d").starts_with("invalid duration \"d\""));
        assert!(err("1.5h").starts_with("invalid duration \"1.5h\""));
        assert_eq!(
            err("99999999999999999999w"),
            "duration \"99999999999999999999w\" is too large"
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(
            format_duration(Duration::from_secs(86_400 + 43_200)),
            "1d12h"
        );
        assert_eq!(format_duration(Duration::from_secs(21 * 86_400)), "21d");
    }

    #[test]
    fn lifetimes() {
        assert_eq!(Lifetime::parse("30d"), Ok(Lifetime::Days(30)));
        assert_eq!(Lifetime::parse("90d"), Ok(Lifetime::Days(90)));
        assert_eq!(Lifetime::parse("2w"), Ok(Lifetime::Days(14)));
        assert_eq!(Lifetime::parse("6mo"), Ok(Lifetime::Months(6)));
        assert_eq!(Lifetime::parse("12mo"), Ok(Lifetime::Months(12)));
        assert_eq!(Lifetime::Months(6).to_string(), "6mo");
        assert_eq!(Lifetime::Days(30).to_string(), "30d");
        let midnight = Utc.with_ymd_and_hms(2027, 6, 30, 0, 0, 0).single();
        assert_eq!(Lifetime::parse("2027-06-30").ok().and_then(until), midnight);
        assert_eq!(
            Lifetime::parse("2027-06-30T09:00:00+09:00")
                .ok()
                .and_then(until),
            midnight
        );
        let shown = Lifetime::parse("2027-06-30").map(|l| l.to_string());
        assert_eq!(shown, Ok("2027-06-30T00:00:00Z".to_owned()));
    }

    fn until(l: Lifetime) -> Option<DateTime<Utc>> {
        match l {
            Lifetime::Until(at) => Some(at),
            _ => None,
        }
    }

    #[test]
    fn bad_lifetimes() {
        for bad in [
            "0d",
            "731d",
            "105w",
            "0mo",
            "25mo",
            "1y",
            "",
            "d",
            "2027-02-30",
            "2027-06-30T00:00:00",
        ] {
            assert!(Lifetime::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            Lifetime::parse("25mo"),
            Err("lifetime \"25mo\" is out of range; use 1mo to 24mo".to_owned())
        );
    }

    #[test]
    fn expiry_of_each_kind() {
        let now = Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).single();
        let Some(now) = now else { panic!("valid date") };
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).single();
        assert_eq!(Some(Lifetime::Days(30).expires_at(now)), at(2026, 3, 2));
        // calendar months clamp the day of month
        assert_eq!(Some(Lifetime::Months(1).expires_at(now)), at(2026, 2, 28));
        assert_eq!(Some(Lifetime::Months(13).expires_at(now)), at(2027, 2, 28));
        let leap = Utc.with_ymd_and_hms(2028, 1, 31, 10, 0, 0).single();
        let Some(leap) = leap else {
            panic!("valid date")
        };
        assert_eq!(Some(Lifetime::Months(1).expires_at(leap)), at(2028, 2, 29));
        let fixed = Lifetime::Until(now);
        assert_eq!(fixed.expires_at(leap), now);
    }
}
