//! Time helpers: ECI's varying RFC 3339 renderings and GitHub's second-precision UTC.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Timelike, Utc};

/// Number of rendering styles ECI tokens cycle through.
pub(crate) const STYLES: u8 = 4;

/// Sub-second unit (in nanoseconds) a style renders exactly.
fn unit_nanos(style: u8) -> i64 {
    match style % STYLES {
        1 => 1_000_000, // milliseconds
        2 => 1_000,     // microseconds
        _ => 1_000_000_000,
    }
}

/// Rounds `t` up to the precision of `style`, so the rendered value is the exact instant
/// and never earlier than the real creation time.
pub(crate) fn ceil_for_style(t: DateTime<Utc>, style: u8) -> DateTime<Utc> {
    let unit = unit_nanos(style);
    let rem = i64::from(t.timestamp_subsec_nanos()) % unit;
    if rem == 0 {
        t
    } else {
        t + Duration::nanoseconds(unit - rem)
    }
}

/// Renders `t` in one of four styles, always the same instant:
/// 0 `…:01Z`, 1 `…:00.123+09:00`, 2 `…:00.123456Z`, 3 `…:01+09:00`.
/// Styles without fraction still print one when the instant has a sub-second part.
pub(crate) fn eci_time(t: DateTime<Utc>, style: u8) -> String {
    let style = style % STYLES;
    let nanos = t.timestamp_subsec_nanos();
    let fmt = if style == 1 || style == 2 {
        if nanos.is_multiple_of(1_000_000) && style == 1 {
            SecondsFormat::Millis
        } else if nanos.is_multiple_of(1_000) {
            SecondsFormat::Micros
        } else {
            SecondsFormat::Nanos
        }
    } else if nanos == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::AutoSi
    };
    if style % 2 == 1 {
        match FixedOffset::east_opt(9 * 3600) {
            Some(kst) => t.with_timezone(&kst).to_rfc3339_opts(fmt, false),
            None => t.to_rfc3339_opts(fmt, true),
        }
    } else {
        t.to_rfc3339_opts(fmt, true)
    }
}

/// Plain UTC rendering for admin replies.
pub(crate) fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Now, truncated to whole seconds (GitHub's precision).
pub(crate) fn now_seconds() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(0).unwrap_or(now)
}

/// GitHub's rendering: `2026-12-03T10:00:00Z`.
pub(crate) fn github_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time with any offset.
pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_render_the_same_instant() {
        let t = parse_rfc3339("2026-12-03T10:00:00.123456789Z").expect("valid time");
        for style in 0..STYLES {
            let c = ceil_for_style(t, style);
            assert!(c >= t);
            let s = eci_time(c, style);
            assert_eq!(parse_rfc3339(&s), Some(c), "style {style}: {s}");
        }
        assert_eq!(eci_time(ceil_for_style(t, 0), 0), "2026-12-03T10:00:01Z");
        assert_eq!(
            eci_time(ceil_for_style(t, 1), 1),
            "2026-12-03T19:00:00.124+09:00"
        );
        assert_eq!(
            eci_time(ceil_for_style(t, 2), 2),
            "2026-12-03T10:00:00.123457Z"
        );
        assert_eq!(
            eci_time(ceil_for_style(t, 3), 3),
            "2026-12-03T19:00:01+09:00"
        );
    }
}
