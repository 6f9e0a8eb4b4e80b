//! Table tests for the event decisions: thresholds once each, failures with backoff, recoveries.

use super::*;
use crate::policy::Lifetime;
use crate::rotation::report::DestReport;
use crate::secret::SecretValue;
use chrono::Duration as Cd;

const SECRET: &str = "u_Zb0eS2Orcu9Pv8EBfdf9D9aQiANHnqCsNt_Hy3TBIA";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn days(d: u64) -> Duration {
    Duration::from_secs(d * 86_400)
}

fn section(thresholds: &[u64], watch: Watch) -> NotifySection {
    NotifySection {
        thresholds: thresholds.iter().map(|d| days(*d)).collect(),
        watch,
        channels: vec![],
    }
}

fn managed(name: &str) -> TokenPolicy {
    TokenPolicy {
        name: name.into(),
        description: String::new(),
        rotate_before: Duration::from_secs(3600),
        lifetime: Lifetime::Days(90),
        grace: Duration::ZERO,
        thresholds: None,
        // A destination: a token with none is only watched, not managed.
        vault: vec![crate::policy::VaultDestination {
            mount: None,
            path: format!("ci/{name}"),
            key: "TOKEN".into(),
        }],
        github: vec![],
        line: 1,
    }
}

fn token(id: &str, name: &str, expires_in: Option<Cd>) -> Token {
    Token {
        id: id.into(),
        name: name.into(),
        description: format!("holds {SECRET}"),
        value: Some(SecretValue::new(SECRET)),
        created: Some(t0() - Cd::days(300)),
        expires: expires_in.map(|d| t0() + d),
        roles: vec!["Developer".into()],
        owner: Some("ops-bot".into()),
    }
}

/// A compact view of an event: kind, token name, threshold label.
type View = (EventKind, String, Option<String>);

fn view(e: &Event) -> View {
    (
        e.event,
        e.token.name.clone(),
        e.threshold.as_ref().map(|t| t.label.clone()),
    )
}

fn views(events: &[Event]) -> Vec<View> {
    events.iter().map(view).collect()
}

fn exp(kind: EventKind, name: &str, th: Option<&str>) -> View {
    (kind, name.into(), th.map(Into::into))
}

struct World {
    notify: NotifySection,
    policy: Vec<TokenPolicy>,
    memory: Memory,
}

impl World {
    fn new(notify: NotifySection, policy: Vec<TokenPolicy>) -> Self {
        Self {
            notify,
            policy,
            memory: Memory::default(),
        }
    }

    fn step(&mut self, at: Cd, listing: Option<&[Token]>, reports: &[TokenReport]) -> Vec<Event> {
        let inputs = Inputs {
            now: t0() + at,
            notify: &self.notify,
            policy_tokens: &self.policy,
            listing,
            reports,
        };
        let events = compute(&inputs, &mut self.memory);
        let json = serde_json::to_string(&events).unwrap();
        assert!(!json.contains(SECRET), "an event carries a token value");
        events
    }
}

#[test]
fn each_threshold_once_nearest_only_on_first_sight() {
    let mut w = World::new(
        section(&[30, 7, 1], Watch::All),
        vec![managed("a"), managed("b")],
    );
    // Expiries relative to t0; the listing is the same at each step.
    let listing = vec![
        token("1", "a", Some(Cd::days(20))),
        token("2", "b", Some(Cd::days(5))),
        token("3", "c", Some(Cd::hours(12))),
        token("4", "far", Some(Cd::days(60))),
        token("5", "never", None),
    ];
    use EventKind::*;
    let table: Vec<(Cd, Vec<View>)> = vec![
        (
            Cd::zero(),
            vec![
                exp(Expiring, "a", Some("30d")),
                exp(Expiring, "b", Some("7d")),
                exp(Expiring, "c", Some("1d")),
            ],
        ),
        (Cd::minutes(30), vec![]),
        (Cd::hours(2), vec![]),
        // a crosses 7d at day 13; c expired at 12h; b crosses 1d at day 4.
        (
            Cd::days(4),
            vec![exp(Expiring, "b", Some("1d")), exp(Expired, "c", None)],
        ),
        (
            Cd::days(13),
            vec![exp(Expiring, "a", Some("7d")), exp(Expired, "b", None)],
        ),
        (Cd::days(13) + Cd::hours(1), vec![]),
        (Cd::days(19), vec![exp(Expiring, "a", Some("1d"))]),
        (Cd::days(21), vec![exp(Expired, "a", None)]),
        (Cd::days(22), vec![]),
    ];
    for (at, expected) in table {
        let got = w.step(at, Some(&listing), &[]);
        assert_eq!(views(&got), expected, "at t0 + {at}");
    }
}

#[test]
fn watch_policy_ignores_other_tokens_and_all_marks_them_for_hand_rotation() {
    let listing = vec![
        token("1", "a", Some(Cd::days(5))),
        token("2", "manual", Some(Cd::days(5))),
    ];
    let mut w = World::new(section(&[7], Watch::Policy), vec![managed("a")]);
    assert_eq!(
        views(&w.step(Cd::zero(), Some(&listing), &[])),
        vec![exp(EventKind::Expiring, "a", Some("7d"))]
    );

    let mut w = World::new(section(&[7], Watch::All), vec![managed("a")]);
    let got = w.step(Cd::zero(), Some(&listing), &[]);
    assert_eq!(got.len(), 2);
    let manual = &got[1];
    assert!(!manual.token.managed);
    assert_eq!(manual.token.owner.as_deref(), Some("ops-bot"));
    assert_eq!(manual.token.roles, vec!["Developer".to_string()]);
    assert!(
        manual.summary.contains("rotate it by hand"),
        "{}",
        manual.summary
    );
    assert!(got[0].token.managed && got[0].token.rotates_from.is_some());
}

#[test]
fn per_token_thresholds_override_and_a_rotated_token_starts_afresh() {
    use EventKind::*;
    let mut custom = managed("a");
    custom.thresholds = Some(vec![days(3)]);
    let mut w = World::new(section(&[30, 7], Watch::Policy), vec![custom, managed("b")]);
    // b is replaced by a 30-day token: it has not "crossed" 30d, and is not warned at once.
    let mut r = rotated(
        "b",
        "b-old",
        "b-new",
        Outcome::Rotated { old_deleted: true },
    );
    r.new_expires = Some(t0() + Cd::days(30));
    let listing = vec![
        token("1", "a", Some(Cd::days(5))),
        token("b-new", "b", Some(Cd::days(30))),
    ];
    assert_eq!(
        views(&w.step(Cd::zero(), Some(&listing), &[r])),
        vec![exp(Rotated, "b", None)]
    );
    assert_eq!(views(&w.step(Cd::hours(1), Some(&listing), &[])), vec![]);
    let got = w.step(Cd::days(2) + Cd::hours(1), Some(&listing), &[]);
    assert_eq!(views(&got), vec![exp(Expiring, "a", Some("3d"))]);
    let got = w.step(Cd::days(23) + Cd::hours(1), Some(&listing), &[]);
    assert_eq!(
        views(&got),
        vec![exp(Expired, "a", None), exp(Expiring, "b", Some("7d"))]
    );
}

fn failed(name: &str, old_id: &str, old_expires: DateTime<Utc>) -> TokenReport {
    let mut r = TokenReport::new(name);
    r.old_id = Some(old_id.into());
    r.old_expires = Some(old_expires);
    r.new_id = Some("new-1".into());
    r.outcome = Outcome::Failed {
        error: format!("1 of 2 destination(s) failed; server said {SECRET}"),
    };
    r.destinations = vec![
        DestReport {
            destination: "vault:secret/ci#K".into(),
            status: "synced".into(),
            error: None,
        },
        DestReport {
            destination: "github:repo:acme/web:K".into(),
            status: "FAILED".into(),
            error: Some("HTTP 500".into()),
        },
    ];
    r
}

fn rotated(name: &str, old_id: &str, new_id: &str, outcome: Outcome) -> TokenReport {
    let mut r = TokenReport::new(name);
    r.old_id = Some(old_id.into());
    r.new_id = Some(new_id.into());
    r.new_expires = Some(t0() + Cd::days(90));
    r.outcome = outcome;
    r.destinations = vec![DestReport {
        destination: "vault:secret/ci#K".into(),
        status: "synced".into(),
        error: None,
    }];
    r
}

fn not_due(name: &str, id: &str) -> TokenReport {
    let mut r = TokenReport::new(name);
    r.old_id = Some(id.into());
    r.outcome = Outcome::NotDue {
        expires: Some(t0() + Cd::days(90)),
        rotate_at: t0() + Cd::days(76),
    };
    r
}

#[test]
fn failure_alerts_at_once_then_with_backoff_then_recovers() {
    use EventKind::*;
    let mut w = World::new(section(&[30, 7, 1], Watch::Policy), vec![managed("ci")]);
    let old_exp = t0() + Cd::days(10);
    let listing = vec![token("old", "ci", Some(Cd::days(10)))];
    let fail = [failed("ci", "old", old_exp)];
    // (time, reports, expected)
    let table: Vec<(Cd, &[TokenReport], Vec<View>)> = vec![
        // First failure, 10 days left: also past 30d, merged into the one alert.
        (
            Cd::zero(),
            &fail,
            vec![exp(RotationFailed, "ci", Some("30d"))],
        ),
        (Cd::minutes(10), &fail, vec![]),
        (Cd::hours(1), &fail, vec![exp(RotationFailed, "ci", None)]),
        (Cd::hours(2), &fail, vec![]),
        (Cd::hours(3), &fail, vec![exp(RotationFailed, "ci", None)]),
        (Cd::hours(6), &fail, vec![]),
        // 7d threshold at day 3: an escalation, not a separate "expiring".
        (
            Cd::days(3) + Cd::minutes(1),
            &[],
            vec![exp(RotationFailed, "ci", Some("7d"))],
        ),
    ];
    for (at, reports, expected) in table {
        let got = w.step(at, Some(&listing), reports);
        assert_eq!(views(&got), expected, "at t0 + {at}");
    }
    let first = w.step(Cd::days(4), Some(&listing), &fail);
    let r = first[0].rotation.as_ref().unwrap();
    assert_eq!(r.notice, Some(5));
    assert_eq!(r.failing_since, Some(t0()));
    assert!(
        r.error.as_deref().unwrap().contains("u_***"),
        "errors are scrubbed"
    );
    assert_eq!(
        r.failing()
            .map(|d| d.destination.as_str())
            .collect::<Vec<_>>(),
        vec!["github:repo:acme/web:K"]
    );
    assert_eq!(r.time_left_seconds, Some(6 * 86_400));

    // It rotates: rotated + recovered, and the failure is closed.
    let done = [rotated(
        "ci",
        "old",
        "new-1",
        Outcome::Rotated { old_deleted: true },
    )];
    let listing2 = vec![token("new-1", "ci", Some(Cd::days(90)))];
    let got = w.step(Cd::days(4) + Cd::hours(1), Some(&listing2), &done);
    assert_eq!(
        views(&got),
        vec![exp(Rotated, "ci", None), exp(Recovered, "ci", None)]
    );
    assert_eq!(got[1].rotation.as_ref().unwrap().failing_since, Some(t0()));
    assert!(w.memory.failures.is_empty());
    // A new failure later starts again at notice 1.
    let got = w.step(
        Cd::days(5),
        Some(&listing2),
        &[failed("ci", "new-1", t0() + Cd::days(90))],
    );
    assert_eq!(got[0].rotation.as_ref().unwrap().notice, Some(1));
    let got = w.step(
        Cd::days(5) + Cd::minutes(5),
        Some(&listing2),
        &[not_due("ci", "new-1")],
    );
    assert_eq!(views(&got), vec![exp(Recovered, "ci", None)]);
}

#[test]
fn rotation_announced_once_and_old_token_in_grace_gets_no_reminders() {
    use EventKind::*;
    let mut w = World::new(section(&[30, 7, 1], Watch::Policy), vec![managed("ci")]);
    let until = t0() + Cd::hours(2);
    let grace = [rotated("ci", "old", "new", Outcome::GracePending { until })];
    let listing = vec![
        token("old", "ci", Some(Cd::days(3))),
        token("new", "ci", Some(Cd::days(90))),
    ];
    let got = w.step(Cd::zero(), Some(&listing), &grace);
    assert_eq!(views(&got), vec![exp(Rotated, "ci", None)]);
    let r = got[0].rotation.as_ref().unwrap();
    assert_eq!(r.old_token_fate, Some(OldTokenFate::KeptForGrace));
    assert_eq!(r.old_token_deleted_after, Some(until));
    assert_eq!(got[0].token.id.as_deref(), Some("new"));
    assert_eq!(views(&w.step(Cd::hours(1), Some(&listing), &grace)), vec![]);
    let done = [rotated(
        "ci",
        "old",
        "new",
        Outcome::Rotated { old_deleted: true },
    )];
    assert_eq!(
        views(&w.step(Cd::hours(3), Some(&listing[1..]), &done)),
        vec![]
    );
}

#[test]
fn dry_runs_and_failed_listings() {
    let mut w = World::new(section(&[30], Watch::All), vec![managed("ci")]);
    let mut r = TokenReport::new("ci");
    r.outcome = Outcome::WouldRotate { new_expires: t0() };
    assert!(w.step(Cd::zero(), None, &[r]).is_empty());
    // Without a listing, failures are still reported.
    let got = w.step(Cd::zero(), None, &[failed("ci", "old", t0() + Cd::days(2))]);
    assert_eq!(
        views(&got),
        vec![exp(EventKind::RotationFailed, "ci", None)]
    );
}

#[test]
fn a_same_named_token_the_rotation_leaves_alone_is_not_called_managed() {
    let mut w = World::new(section(&[7], Watch::Policy), vec![managed("ci")]);
    let listing = vec![
        token("current", "ci", Some(Cd::days(60))),
        token("stray", "ci", Some(Cd::days(5))),
    ];
    let got = w.step(Cd::zero(), Some(&listing), &[not_due("ci", "current")]);
    assert_eq!(
        views(&got),
        vec![exp(EventKind::Expiring, "ci", Some("7d"))]
    );
    assert_eq!(got[0].token.id.as_deref(), Some("stray"));
    assert!(!got[0].token.managed && got[0].token.rotates_from.is_none());
    assert!(
        got[0].summary.contains("rotate it by hand"),
        "{}",
        got[0].summary
    );
}

/// A replacement this program made, first seen already inside a threshold it was born inside
/// (a 30-day token under a 30d threshold, as when notifications are turned on after its
/// rotation), is not announced for it; the next threshold it crosses is. A token made by hand
/// the same way is announced at once.
#[test]
fn thresholds_a_replacement_was_born_inside_are_not_announced() {
    let mut w = World::new(
        section(&[30, 14, 7, 1], Watch::All),
        vec![managed("a"), managed("b")],
    );
    let fresh = Token {
        created: Some(t0()),
        description: "managed by eci-secret-sync [eci-secret-sync]".into(),
        ..token("1", "a", Some(Cd::days(30)))
    };
    let by_hand = Token {
        created: Some(t0()),
        ..token("2", "b", Some(Cd::days(30)))
    };
    let listing = vec![fresh, by_hand];
    use EventKind::*;
    assert_eq!(
        views(&w.step(Cd::minutes(1), Some(&listing), &[])),
        vec![exp(Expiring, "b", Some("30d"))]
    );
    assert_eq!(
        views(&w.step(Cd::days(16) + Cd::hours(1), Some(&listing), &[])),
        vec![
            exp(Expiring, "a", Some("14d")),
            exp(Expiring, "b", Some("14d"))
        ]
    );
}
