//! What a run did for each token, and its short human rendering. Ids and times, never values.

use super::journal::{DestState, DestStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Not decided yet (only seen if a run was cut short).
    Unknown,
    NotDue {
        expires: Option<DateTime<Utc>>,
        rotate_at: DateTime<Utc>,
    },
    NeverExpires,
    /// A token with no destinations: only watched (its expiry reported and notified), never
    /// rotated, since nothing would receive the new value.
    Watched {
        expires: Option<DateTime<Utc>>,
    },
    WouldRotate {
        new_expires: DateTime<Utc>,
    },
    WouldResume {
        phase: String,
    },
    Rotated {
        old_deleted: bool,
    },
    GracePending {
        until: DateTime<Utc>,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct DestReport {
    pub destination: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DestReport {
    pub fn planned(key: String) -> Self {
        Self {
            destination: key,
            status: "would write".into(),
            error: None,
        }
    }

    pub fn from_state(key: &str, state: &DestState) -> Self {
        let status = match state.status {
            DestStatus::Pending => "pending",
            DestStatus::Pushed => "written, not verified",
            DestStatus::Verified => "synced",
            DestStatus::Failed => "FAILED",
        };
        Self {
            destination: key.to_string(),
            status: status.into(),
            error: state.last_error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenReport {
    pub name: String,
    pub outcome: Outcome,
    pub old_id: Option<String>,
    pub old_expires: Option<DateTime<Utc>>,
    pub new_id: Option<String>,
    pub new_expires: Option<DateTime<Utc>>,
    pub forced: bool,
    pub resumed: bool,
    pub steps: Vec<String>,
    pub destinations: Vec<DestReport>,
    pub warnings: Vec<String>,
    /// The run failed before it could ask ECI, and the saved state shows the token not due and
    /// no rotation open: a failed run, but no failed rotation (no alert, no failure counted).
    pub known_not_due: bool,
    /// The old token was deleted (a run that failed after that, recording it, did not keep it).
    pub old_deleted: bool,
}

impl TokenReport {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            outcome: Outcome::Unknown,
            old_id: None,
            old_expires: None,
            new_id: None,
            new_expires: None,
            forced: false,
            resumed: false,
            steps: Vec::new(),
            destinations: Vec::new(),
            warnings: Vec::new(),
            known_not_due: false,
            old_deleted: false,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. } | Outcome::Unknown)
    }
}

/// `2026-12-10 09:00 UTC`
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-12-10 09:00:06 UTC`: for a deadline a run compares to the second (a grace end).
pub fn when_exact(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `in 6d 14h`, `3h ago`
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (secs, future) = if d >= chrono::Duration::zero() {
        (d.num_seconds(), true)
    } else {
        (-d.num_seconds(), false)
    };
    let (days, hours, mins) = (secs / 86400, (secs % 86400) / 3600, (secs % 3600) / 60);
    let span = if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m")
    } else {
        // Seconds away: "in 0m" reads as "now".
        "<1m".to_string()
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn expiry(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => format!("{} ({})", when(t), relative(t, now)),
        None => "never".into(),
    }
}

/// The human summary printed by `--rotate-now`.
pub fn render(reports: &[TokenReport], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for r in reports {
        let headline = match &r.outcome {
            Outcome::Unknown => "unknown".to_string(),
            Outcome::NotDue { expires, rotate_at } => format!(
                "not due: expires {}, rotates from {}",
                expiry(*expires, now),
                when(*rotate_at)
            ),
            Outcome::NeverExpires => {
                "never expires: nothing to rotate (consider giving it an expiry)".into()
            }
            Outcome::Watched { expires } => format!(
                "watched only (no destinations, so never rotated): expires {}",
                expiry(*expires, now)
            ),
            Outcome::WouldRotate { new_expires } => format!(
                "{}: would create a replacement expiring {}{}, write it to {} destination(s), then delete the old token",
                if r.forced { "forced" } else { "due" },
                when(*new_expires),
                match r.old_expires {
                    Some(old) if old > *new_expires => format!(
                        " (sooner than the current token, which expires {}: set `lifetime` to keep more)",
                        when(old)
                    ),
                    _ => String::new(),
                },
                r.destinations.len()
            ),
            Outcome::WouldResume { phase } => {
                format!("would resume the open rotation (at {phase})")
            }
            Outcome::Rotated { .. } => "rotated".into(),
            // A run that found the rotation already waiting out its grace rotated nothing.
            Outcome::GracePending { until } if r.resumed => format!(
                "in grace: the replacement is in place; old token deleted at the first run after {}",
                when_exact(*until)
            ),
            Outcome::GracePending { until } => format!(
                "rotated; old token kept for the grace period, deleted at the first run after {}",
                when_exact(*until)
            ),
            Outcome::Failed { .. } => "FAILED".into(),
        };
        let _ = writeln!(out, "{}: {headline}", r.name);
        if let Some(old) = &r.old_id {
            let fate = match r.outcome {
                Outcome::Rotated { old_deleted: true } => " deleted",
                Outcome::GracePending { .. } => " kept (grace)",
                Outcome::Failed { .. } if r.old_deleted => " deleted",
                Outcome::Failed { .. } if r.new_id.is_some() => " kept",
                _ => "",
            };
            // "old" only where there is a new one (made, or about to be).
            let label = if r.new_id.is_some()
                || matches!(
                    r.outcome,
                    Outcome::Rotated { .. }
                        | Outcome::GracePending { .. }
                        | Outcome::WouldRotate { .. }
                        | Outcome::WouldResume { .. }
                ) {
                "old token   "
            } else {
                "token       "
            };
            if r.old_expires.is_some() || !fate.is_empty() {
                let _ = writeln!(
                    out,
                    "  {label} {old} expires {}{fate}",
                    expiry(r.old_expires, now)
                );
            }
        }
        if let Some(new) = &r.new_id {
            let _ = writeln!(
                out,
                "  new token    {new} expires {}",
                expiry(r.new_expires, now)
            );
        }
        for d in &r.destinations {
            let err = d
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<12} {}{err}", d.status, d.destination);
        }
        for s in &r.steps {
            tracing::debug!(token = %r.name, step = %s);
        }
        for w in &r.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        if let Outcome::Failed { error } = &r.outcome {
            let _ = writeln!(out, "  error: {error}");
        }
    }
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let waiting = reports
        .iter()
        .filter(|r| r.resumed && matches!(r.outcome, Outcome::GracePending { .. }))
        .count();
    let watched = count(|o| matches!(o, Outcome::Watched { .. }));
    let _ = writeln!(
        out,
        "{} rotated, {} not due, {} failed{}{}{}",
        count(|o| matches!(o, Outcome::Rotated { .. } | Outcome::GracePending { .. })) - waiting,
        count(|o| matches!(o, Outcome::NotDue { .. } | Outcome::NeverExpires)),
        count(|o| matches!(o, Outcome::Failed { .. } | Outcome::Unknown)),
        if watched > 0 {
            format!(", {watched} watched")
        } else {
            String::new()
        },
        {
            let planned =
                count(|o| matches!(o, Outcome::WouldRotate { .. } | Outcome::WouldResume { .. }));
            if planned > 0 {
                format!(", {planned} would rotate (dry run: nothing was changed)")
            } else {
                String::new()
            }
        },
        if waiting > 0 {
            format!(", {waiting} in grace")
        } else {
            String::new()
        }
    );
    out
}
