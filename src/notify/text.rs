//! The human wording of an event: one headline and short labelled lines, shared by Slack and email.

use super::schema::{Event, EventKind, OldTokenFate};
use crate::rotation::report::{relative, when};
use chrono::{DateTime, Utc};

/// Longest value shown on one line (errors can be long); the JSON webhook carries them whole.
const MAX_VALUE: usize = 400;
/// Most entries shown in one list (destinations).
const MAX_ITEMS: usize = 10;

/// One labelled line; several values make a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: &'static str,
    pub values: Vec<String>,
}

fn line(label: &'static str, value: impl Into<String>) -> Line {
    Line {
        label,
        values: vec![short(&value.into())],
    }
}

fn list(label: &'static str, values: Vec<String>) -> Option<Line> {
    if values.is_empty() {
        return None;
    }
    let more = values.len().saturating_sub(MAX_ITEMS);
    let mut values: Vec<String> = values.iter().take(MAX_ITEMS).map(|v| short(v)).collect();
    if more > 0 {
        values.push(format!("... and {more} more"));
    }
    Some(Line { label, values })
}

/// `s` cut to [`MAX_VALUE`] characters.
pub fn short(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX_VALUE).collect();
    format!("{cut}...")
}

fn at(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", when(t), relative(t, now))
}

/// One line: `ci-deploy expires in 6d 23h`.
pub fn headline(e: &Event) -> String {
    let now = e.occurred_at;
    let name = &e.token.name;
    match e.event {
        EventKind::Expiring => {
            let rel = e
                .token
                .expires
                .map(|t| relative(t, now))
                .unwrap_or_default();
            if e.token.managed {
                format!("{name} expires {rel}")
            } else {
                format!("{name} expires {rel}: rotate it by hand")
            }
        }
        EventKind::Expired => {
            let rel = e
                .token
                .expires
                .map(|t| relative(t, now))
                .unwrap_or_default();
            format!("{name} has expired ({rel})")
        }
        EventKind::Rotated => match e.token.expires {
            Some(t) => format!("{name} rotated; new token expires {}", when(t)),
            None => format!("{name} rotated"),
        },
        EventKind::RotationFailed => {
            let old = e
                .rotation
                .as_ref()
                .and_then(|r| r.old_token.as_ref())
                .and_then(|o| o.expires);
            match old {
                Some(t) if t > now => format!(
                    "{name} rotation FAILED; old token expires {}",
                    relative(t, now)
                ),
                Some(t) => format!(
                    "{name} rotation FAILED; old token expired {}",
                    relative(t, now)
                ),
                None => format!("{name} rotation FAILED"),
            }
        }
        EventKind::Recovered => format!("{name} recovered; rotation works again"),
    }
}

/// The details, in reading order.
pub fn lines(e: &Event) -> Vec<Line> {
    let now = e.occurred_at;
    let t = &e.token;
    let mut out = Vec::new();
    let id =
        t.id.as_deref()
            .map(|id| format!(" ({id})"))
            .unwrap_or_default();
    out.push(line("Token", format!("{}{id}", t.name)));
    if matches!(e.event, EventKind::Expiring | EventKind::Expired) {
        if let Some(x) = t.expires {
            out.push(line("Expires", at(x, now)));
        }
        if let Some(th) = &e.threshold {
            out.push(line("Threshold", th.label.clone()));
        }
        out.push(line("Action", action(e)));
    }
    if let Some(owner) = &t.owner {
        out.push(line("Owner", owner.clone()));
    }
    if !t.roles.is_empty() {
        out.push(line("Roles", t.roles.join(", ")));
    }
    let Some(r) = &e.rotation else { return out };
    match e.event {
        EventKind::Rotated | EventKind::Recovered => {
            if let Some(new) = &r.new_token {
                let exp = new
                    .expires
                    .map(|x| format!(", expires {}", when(x)))
                    .unwrap_or_default();
                out.push(line("New token", format!("{}{exp}", new.id)));
            }
            if let Some(old) = &r.old_token {
                out.push(line(
                    "Old token",
                    format!(
                        "{}: {}",
                        old.id,
                        fate(r.old_token_fate, r.old_token_deleted_after)
                    ),
                ));
            }
            out.extend(list(
                "Updated",
                r.updated().map(|d| d.destination.clone()).collect(),
            ));
            if e.event == EventKind::Recovered {
                if let Some(since) = r.failing_since {
                    out.push(line("Failing since", at(since, now)));
                }
                if let Some(err) = &r.error {
                    out.push(line("Last error", err.clone()));
                }
            }
        }
        EventKind::RotationFailed => {
            let failing: Vec<String> = r
                .failing()
                .map(|d| match &d.error {
                    Some(err) => format!("{}: {err}", d.destination),
                    None => d.destination.clone(),
                })
                .collect();
            // The engine's error repeats the failing destinations; show it only when none is.
            if failing.is_empty()
                && let Some(err) = &r.error
            {
                out.push(line("Error", err.clone()));
            }
            out.extend(list("Failing", failing));
            if let Some(old) = &r.old_token {
                let left = match old.expires {
                    Some(x) if x > now => format!(
                        "{} (old token expires {})",
                        relative(x, now).trim_start_matches("in "),
                        when(x)
                    ),
                    Some(x) => format!("none: the old token expired {}", when(x)),
                    None => "the old token never expires".to_string(),
                };
                out.push(line("Time left", left));
            }
            if let Some(th) = &e.threshold {
                out.push(line("Threshold", th.label.clone()));
            }
            if let Some(new) = &r.new_token {
                out.push(line(
                    "Replacement",
                    format!("{} (created; not yet everywhere)", new.id),
                ));
            }
            if let (Some(since), Some(n)) = (r.failing_since, r.notice)
                && n > 1
            {
                out.push(line(
                    "Failing since",
                    format!("{} (notice {n})", at(since, now)),
                ));
            }
            out.push(line(
                "Action",
                "the old token stays valid; fix what failed, the next run retries",
            ));
        }
        _ => {}
    }
    out
}

fn action(e: &Event) -> String {
    match (e.event, e.token.managed, e.token.rotates_from) {
        (EventKind::Expired, true, _) => {
            "eci-secret-sync could not replace it in time; see earlier alerts".into()
        }
        (EventKind::Expired, false, _) => {
            "create a new token by hand and update whatever used this one".into()
        }
        (_, true, Some(from)) if from > e.occurred_at => {
            format!("none: eci-secret-sync rotates it from {}", when(from))
        }
        (_, true, _) => "none: eci-secret-sync is rotating it".into(),
        (_, false, _) => {
            "rotate it by hand: this token is not in the eci-secret-sync policy".into()
        }
    }
}

fn fate(f: Option<OldTokenFate>, after: Option<DateTime<Utc>>) -> String {
    match f {
        Some(OldTokenFate::Deleted) => "deleted".into(),
        Some(OldTokenFate::AlreadyGone) => "already gone".into(),
        Some(OldTokenFate::KeptForGrace) => match after {
            Some(t) => format!("kept for the grace period, deleted after {}", when(t)),
            None => "kept for the grace period".into(),
        },
        Some(OldTokenFate::KeptAlive) => "still valid".into(),
        None => "unchanged".into(),
    }
}

/// The whole message as plain text (email body).
pub fn plain(e: &Event) -> String {
    let mut out = format!("{}\n\n", headline(e));
    let width = lines(e).iter().map(|l| l.label.len()).max().unwrap_or(0) + 2;
    for l in lines(e) {
        for (i, v) in l.values.iter().enumerate() {
            let label = if i == 0 {
                format!("{}:", l.label)
            } else {
                String::new()
            };
            let bullet = if l.values.len() > 1 { "- " } else { "" };
            out.push_str(&format!("{label:<width$}{bullet}{v}\n"));
        }
    }
    out.push_str(&format!(
        "\n-- \neci-secret-sync: {} event {} at {}\n",
        e.event.as_str(),
        e.id,
        when(e.occurred_at)
    ));
    out
}
