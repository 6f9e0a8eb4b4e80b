//! When the daemon runs: a crontab line (5 fields, or 6 with seconds first) in an IANA zone → the next run instants.
//!
//! Fields mean what they mean in crontab(5): minute, hour, day of month, month (1-12 or
//! `jan`-`dec`), day of week (0-7 or `sun`-`sat`, 0 and 7 both Sunday), with `*`, `a-b`, `a,b`
//! and `/step`; when both day fields are restricted a day matching either runs, unless one of
//! them starts with `*` (then both must match, as Vixie cron does). A sixth field in front
//! gives seconds. `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` are accepted.
//!
//! Times are wall-clock times in the zone. Daylight-saving changes:
//! - a wall-clock time that occurs twice (the clock goes back) runs once, at its first
//!   occurrence; the repeated hour adds no run, also for every-N-minutes schedules;
//! - a wall-clock time that does not exist that day (the clock goes forward) runs at the
//!   first instant after the gap (02:30 in Europe/Berlin → 03:00 CEST); several skipped times
//!   make one run there.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed `[schedule]`: pattern and zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    pattern: String,
}

/// Matches returned by croner are skipped at most this many times (matches in a repeated
/// hour that already ran); a per-second schedule has 3600 in one repeated hour.
const MAX_SKIPPED: usize = 20_000;

impl Schedule {
    /// Parse a cron line and a zone name; messages are ready to show after `schedule.cron: `.
    pub fn new(cron: &str, timezone: &str) -> Result<Self, String> {
        let zone = parse_zone(timezone)?;
        let parsed = parse_cron(cron)?;
        let schedule = Self {
            cron: parsed,
            zone,
            pattern: cron.trim().to_owned(),
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!(
                "`{}` never runs (no matching date)",
                schedule.pattern
            ));
        }
        Ok(schedule)
    }

    /// From a loaded policy's `[schedule]` section (already validated by the loader).
    pub fn from_section(section: &crate::policy::ScheduleSection) -> Result<Self, String> {
        Self::new(&section.cron, &section.timezone)
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first run strictly after `after`, or `None` if the pattern never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = after.with_timezone(&self.zone).naive_local();
        for _ in 0..MAX_SKIPPED {
            wall = self.cron.find_next_occurrence(&wall, false).ok()?;
            let at = self.instant_of(wall)?;
            if at > after {
                return Some(at);
            }
        }
        None
    }

    /// The next `n` runs after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut from = after;
        while out.len() < n {
            let Some(next) = self.next_after(from) else {
                break;
            };
            out.push(next);
            from = next;
        }
        out
    }

    /// `2026-03-29 03:00:00 CEST (+02:00) = 2026-03-29 01:00:00 UTC`
    pub fn describe(&self, at: DateTime<Utc>) -> String {
        if self.zone == chrono_tz::UTC {
            return at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        }
        format!(
            "{} = {}",
            at.with_timezone(&self.zone)
                .format("%Y-%m-%d %H:%M:%S %Z (%:z)"),
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }

    /// `2026-03-29 03:00:00 CEST`, for short status lines.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// The instant a wall-clock match runs at: itself; the earlier of two when the clock
    /// goes back; the end of the gap when the clock jumps over it.
    fn instant_of(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t.to_utc()),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.to_utc()),
            LocalResult::None => self.end_of_gap(wall),
        }
    }

    /// The first instant whose wall-clock time is past `wall`, a time the clock skips.
    /// Binary search over a window wider than any UTC offset (local = UTC + offset, with
    /// offsets within ±26 h), to the second.
    fn end_of_gap(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let past = |secs: i64| {
            DateTime::from_timestamp(secs, 0)
                .map(|u| u.with_timezone(&self.zone).naive_local() > wall)
        };
        let base = wall.and_utc().timestamp();
        let (mut lo, mut hi) = (base - 26 * 3600, base + 26 * 3600);
        if past(lo)? || !past(hi)? {
            return None;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if past(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// An IANA zone name (`Europe/Berlin`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone \"{name}\"; use an IANA name such as \"Europe/Berlin\", \"Asia/Seoul\" or \"UTC\"")
    })
}

/// Every IANA zone name known, for "did you mean" hints.
pub fn zone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

const NICKNAMES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// A crontab line: 5 fields, or 6 with seconds first, or an `@` nickname.
pub fn parse_cron(line: &str) -> Result<Cron, String> {
    let line = line.trim();
    let expanded = if line.starts_with('@') {
        NICKNAMES
            .iter()
            .find(|(nick, _)| nick.eq_ignore_ascii_case(line))
            .map(|(_, pattern)| *pattern)
            .ok_or_else(|| {
                format!(
                    "unknown nickname \"{line}\"; use @hourly, @daily, @weekly, @monthly or @yearly"
                )
            })?
    } else {
        line
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let (dom, dow) = match fields.len() {
        5 => (fields[2], fields[4]),
        6 => (fields[3], fields[5]),
        n => {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {n}"
            ));
        }
    };
    if fields.iter().any(|f| f.contains('@')) {
        return Err("a nickname such as @daily must be the whole line".into());
    }
    // A step wider than its field (`*/61` minutes) matches only the field's first value: almost
    // certainly not what was meant, and croner takes it silently.
    let names = &FIELDS[FIELDS.len() - fields.len()..];
    for (field, (name, range)) in fields.iter().zip(names) {
        let span = match *name {
            "second" | "minute" => 60,
            "hour" => 24,
            "day-of-month" => 31,
            "month" => 12,
            _ => 7,
        };
        for part in field.split(',') {
            if let Some((_, step)) = part.split_once('/')
                && let Ok(step) = step.parse::<u32>()
                && step >= span
            {
                return Err(format!(
                    "invalid cron line \"{line}\": {name} step /{step} is not smaller than the field ({range}), so it would match only its first value; use a step below {span}, or that value itself"
                ));
            }
        }
    }
    // crontab(5): with both day fields restricted a day matching either runs, but a field
    // starting with `*` (such as `*/2`) makes both required, as Vixie cron does.
    let both = dom != "*" && dow != "*" && (dom.starts_with('*') || dow.starts_with('*'));
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(both)
        .build();
    parser.parse(expanded).map_err(|e| {
        let why = which_field(&parser, &fields).unwrap_or_else(|| cron_message(&e));
        format!("invalid cron line \"{line}\": {why}")
    })
}

const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat"),
];

/// Name the field that makes the line invalid: parse each one alone, the others `*`.
fn which_field(parser: &CronParser, fields: &[&str]) -> Option<String> {
    let names = &FIELDS[FIELDS.len() - fields.len()..];
    fields
        .iter()
        .zip(names)
        .enumerate()
        .find_map(|(i, (field, (name, range)))| {
            let probe: Vec<&str> = (0..fields.len())
                .map(|j| if j == i { *field } else { "*" })
                .collect();
            parser.parse(&probe.join(" ")).err().map(|e| {
                let message = cron_message(&e);
                format!(
                    "{name} field \"{field}\" ({range}): {}",
                    message.trim_end_matches('.')
                )
            })
        })
}

fn cron_message(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn field_count_and_bad_values_are_clear() {
        let e = parse_cron("* * *").unwrap_err();
        assert!(e.starts_with("expected 5 fields"), "{e}");
        let e = parse_cron("61 * * * *").unwrap_err();
        assert!(e.contains("61 * * * *"), "{e}");
        assert!(parse_cron("* * * * * * *").is_err());
        assert!(parse_cron("@reboot").is_err());
        assert!(parse_cron("@daily").is_ok());
        let e = parse_zone("Europe/Berln").unwrap_err();
        assert!(e.contains("unknown time zone \"Europe/Berln\""), "{e}");
    }

    #[test]
    fn never_matching_pattern_is_rejected() {
        let e = Schedule::new("0 0 30 2 *", "UTC").unwrap_err();
        assert!(e.contains("never runs"), "{e}");
    }

    #[test]
    fn gap_end_is_the_transition_instant() {
        let s = Schedule::new("30 2 * * *", "Europe/Berlin").unwrap();
        let wall =
            NaiveDateTime::parse_from_str("2026-03-29 02:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(s.instant_of(wall), Some(at("2026-03-29T01:00:00Z")));
    }
}
