//! The schedule against fixed instants: crontab meaning of the fields, 5- and 6-field forms,
//! and both daylight-saving changes in Europe/Berlin and America/New_York (2026), each run
//! asserted as an exact UTC instant.
//!
//! 2026 changes: Berlin 29 Mar 02:00 CET → 03:00 CEST (01:00 UTC) and 25 Oct 03:00 CEST →
//! 02:00 CET (01:00 UTC); New York 8 Mar 02:00 EST → 03:00 EDT (07:00 UTC) and 1 Nov
//! 02:00 EDT → 01:00 EST (06:00 UTC).

use chrono::{DateTime, Utc};
use eci_secret_sync::schedule::Schedule;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
}

/// The next `n` runs after `from`, as RFC 3339 UTC strings.
fn runs(cron: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::new(cron, zone).unwrap_or_else(|e| panic!("{cron} {zone}: {e}"));
    schedule
        .upcoming(utc(from), n)
        .iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn berlin_spring_forward_missing_time_runs_at_end_of_gap() {
    // 02:30 does not exist on 29 March: it runs at 03:00 CEST = 01:00 UTC.
    let expected = [
        "2026-03-28T01:30:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
    ];
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 3),
        expected
    );
    assert_eq!(
        runs("0 30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 3),
        expected
    );
}

#[test]
fn berlin_fall_back_repeated_time_runs_once() {
    // 02:30 happens twice on 25 October (CEST at 00:30 UTC, CET at 01:30 UTC): once, the first.
    let expected = [
        "2026-10-24T00:30:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-26T01:30:00Z",
    ];
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3),
        expected
    );
    // Seconds form, starting inside the repeated hour's second pass (02:10 CET): the 02:30
    // that already ran in CEST does not run again.
    assert_eq!(
        runs("15 30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 2),
        ["2026-10-26T01:30:15Z", "2026-10-27T01:30:15Z"]
    );
}

#[test]
fn berlin_interval_schedules_across_both_changes() {
    // Spring: 01:30 CET, then 02:00 and 02:30 (missing) make one run at 03:00 CEST, then 03:30.
    assert_eq!(
        runs("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", 4),
        [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:00:00Z"
        ]
    );
    // Autumn: 02:00 and 02:30 CEST run; their CET repeats do not; next is 03:00 CET.
    assert_eq!(
        runs("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:45:00Z", 4),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
    // Six fields: every 20 s, across the spring gap.
    assert_eq!(
        runs("*/20 * * * * *", "Europe/Berlin", "2026-03-29T00:59:30Z", 3),
        [
            "2026-03-29T00:59:40Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:00:20Z"
        ]
    );
}

#[test]
fn new_york_spring_forward_missing_time_runs_at_end_of_gap() {
    // 02:30 does not exist on 8 March: it runs at 03:00 EDT = 07:00 UTC.
    let expected = [
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
    ];
    assert_eq!(
        runs("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3),
        expected
    );
    assert_eq!(
        runs(
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            3
        ),
        expected
    );
    // 02:00 through 02:59 every 15 min: all four missing times make one run at 03:00 EDT.
    assert_eq!(
        runs(
            "*/15 2 * * *",
            "America/New_York",
            "2026-03-08T06:00:00Z",
            2
        ),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]
    );
}

#[test]
fn new_york_fall_back_repeated_time_runs_once() {
    // 01:30 happens twice on 1 November (EDT at 05:30 UTC, EST at 06:30 UTC): once, the first.
    let expected = [
        "2026-10-31T05:30:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-02T06:30:00Z",
    ];
    assert_eq!(
        runs("30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", 3),
        expected
    );
    assert_eq!(
        runs(
            "45 30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            3
        ),
        [
            "2026-10-31T05:30:45Z",
            "2026-11-01T05:30:45Z",
            "2026-11-02T06:30:45Z"
        ]
    );
    // Hourly: 00:00 EDT, 01:00 EDT, (01:00 EST again: no), 02:00 EST.
    assert_eq!(
        runs("0 * * * *", "America/New_York", "2026-11-01T03:30:00Z", 3),
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
}

#[test]
fn crontab_meaning_of_the_fields() {
    // Day of week: 0 and 7 are Sunday, names work; 1 is Monday. 2026-06-07 is a Sunday.
    let sunday = ["2026-06-07T09:00:00Z", "2026-06-14T09:00:00Z"];
    assert_eq!(runs("0 9 * * 0", "UTC", "2026-06-01T00:00:00Z", 2), sunday);
    assert_eq!(runs("0 9 * * 7", "UTC", "2026-06-01T00:00:00Z", 2), sunday);
    assert_eq!(
        runs("0 9 * * sun", "UTC", "2026-06-01T00:00:00Z", 2),
        sunday
    );
    assert_eq!(
        runs("0 9 * * 1", "UTC", "2026-06-02T00:00:00Z", 1),
        ["2026-06-08T09:00:00Z"]
    );
    // Both day fields restricted: either matches (the 15th, or any Monday).
    assert_eq!(
        runs("0 9 15 * 1", "UTC", "2026-06-09T00:00:00Z", 3),
        [
            "2026-06-15T09:00:00Z",
            "2026-06-22T09:00:00Z",
            "2026-06-29T09:00:00Z"
        ]
    );
    assert_eq!(
        runs("0 9 13 * 1", "UTC", "2026-06-09T00:00:00Z", 2),
        ["2026-06-13T09:00:00Z", "2026-06-15T09:00:00Z"]
    );
    // A day-of-month field starting with `*` makes both required (Vixie cron): odd days that
    // are Mondays. June 2026 Mondays: 1, 8, 15, 22, 29.
    assert_eq!(
        runs("0 9 */2 * 1", "UTC", "2026-06-02T00:00:00Z", 3),
        [
            "2026-06-15T09:00:00Z",
            "2026-06-29T09:00:00Z",
            "2026-07-13T09:00:00Z"
        ]
    );
    // Months by name, ranges, lists and steps; minute first in 5 fields, seconds first in 6.
    assert_eq!(
        runs("5,35 8-9 1 jan,jul *", "UTC", "2026-06-15T00:00:00Z", 3),
        [
            "2026-07-01T08:05:00Z",
            "2026-07-01T08:35:00Z",
            "2026-07-01T09:05:00Z"
        ]
    );
    assert_eq!(
        runs("5 35 8 * * *", "UTC", "2026-06-15T00:00:00Z", 1),
        ["2026-06-15T08:35:05Z"]
    );
    assert_eq!(
        runs("@daily", "Asia/Seoul", "2026-06-15T00:00:00Z", 1),
        ["2026-06-15T15:00:00Z"]
    );
}

#[test]
fn bad_lines_and_zones_say_what_is_wrong() {
    for (cron, zone, wanted) in [
        ("* * *", "UTC", "expected 5 fields"),
        ("* * * * * * *", "UTC", "found 7"),
        ("61 * * * *", "UTC", "invalid cron line \"61 * * * *\""),
        ("* * * * mon-xyz", "UTC", "invalid cron line"),
        ("0 0 31 2 *", "UTC", "never runs"),
        // Steps that match only once: croner would take them silently.
        (
            "*/61 * * * *",
            "UTC",
            "minute step /61 is not smaller than the field (0-59)",
        ),
        (
            "0 */24 * * *",
            "UTC",
            "hour step /24 is not smaller than the field (0-23)",
        ),
        ("*/90 * * * * *", "UTC", "second step /90"),
        (
            "0 * * * *",
            "Mars/Olympus",
            "unknown time zone \"Mars/Olympus\"",
        ),
    ] {
        let e = Schedule::new(cron, zone).expect_err(cron);
        assert!(e.contains(wanted), "{cron} {zone}: {e}");
    }
}

/// The policy loader rejects a bad `[schedule]` with positions, like any other policy error
/// (so `--check`, the daemon's start and a SIGHUP reload all report it the same way).
#[test]
fn policy_reports_schedule_problems_at_their_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("eci"), "u_not-a-real-token").expect("credential");
    let path = dir.path().join("policy.toml");
    let policy =
        |schedule: &str| format!("[eci]\ntoken = {{ file = \"eci\" }}\n\n[schedule]\n{schedule}\n");
    let errors = |schedule: &str| -> Vec<String> {
        match eci_secret_sync::policy::parse(&policy(schedule), &path) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    };
    let file = path.display();
    assert_eq!(
        errors("cron = \"0 9 * * mon-fri\"\ntimezone = \"Asia/Seoul\""),
        Vec::<String>::new()
    );
    assert_eq!(
        errors("cron = \"0 25 * * *\"\ntimezone = \"Asia/Seol\""),
        [
            format!(
                "{file}:5:8: schedule.cron: invalid cron line \"0 25 * * *\": \
                 hour field \"25\" (0-23): Number out of bounds"
            ),
            format!(
                "{file}:6:12: schedule.timezone: unknown time zone \"Asia/Seol\"; use an IANA \
                 name such as \"Europe/Berlin\", \"Asia/Seoul\" or \"UTC\"; did you mean \
                 `Asia/Seoul`?"
            ),
        ]
    );
    assert_eq!(
        errors("cron = \"0 0 30 2 *\""),
        [format!(
            "{file}:5:8: schedule.cron: `0 0 30 2 *` never runs (no matching date)"
        )]
    );
}
