//! Notifications: expiry thresholds and rotation events, remembered so each is sent once, queued
//! per channel on disk, and delivered to Slack, signed webhooks and email within a time budget.
//!
//! [`after_run`] is called after every rotation run (one-shot or daemon tick). It never fails
//! the run: delivery problems are logged, and what was not delivered waits for the next run.

pub mod channel;
pub mod deliver;
pub mod email;
pub mod events;
pub mod memory;
pub mod outbox;
pub mod schema;
pub mod slack;
pub mod text;
pub mod webhook;

pub use channel::{Channel, SendError};
pub use deliver::{Delivered, DeliveryOptions, deliver};
pub use schema::{Event, EventKind, SCHEMA};

use crate::eci::EciClient;
use crate::policy::Policy;
use crate::rotation::journal::{Rotation, TokenRecord};
use crate::rotation::report::{DestReport, Outcome, TokenReport};
use crate::rotation::{ROTATIONS, TOKENS};
use crate::state::{StateError, Store};
use memory::Memory;
use outbox::Outbox;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sub-folder of the state folder holding `memory.json` and `outbox.json`.
pub const DIR: &str = "notify";
/// Longest wait for ECI's token list (thresholds need it; rotation events do not).
const LIST_TIMEOUT: Duration = Duration::from_secs(20);

/// What notifying after one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifySummary {
    /// Why nothing was done (a dry run, no channels).
    pub skipped: Option<String>,
    /// One line per new event.
    pub events: Vec<String>,
    /// Messages added to the queue (one per event and channel that wants it).
    pub queued: usize,
    pub delivered: usize,
    /// Still queued after this run.
    pub waiting: usize,
    /// Dropped: queue full, channel removed, or refused by the receiver.
    pub dropped: usize,
    /// Problems, one line each (channel label and error); never a secret.
    pub errors: Vec<String>,
}

impl fmt::Display for NotifySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.skipped {
            return writeln!(f, "notifications: none ({why})");
        }
        write!(
            f,
            "notifications: {} new, {} sent",
            self.events.len(),
            self.delivered
        )?;
        if self.waiting > 0 {
            write!(f, ", {} waiting for the next run", self.waiting)?;
        }
        if self.dropped > 0 {
            write!(f, ", {} dropped", self.dropped)?;
        }
        writeln!(f)?;
        for e in &self.errors {
            writeln!(f, "  notify: {e}")?;
        }
        Ok(())
    }
}

/// After a run: work out what to tell people, remember it, queue it, and try to deliver the
/// queue within [`DeliveryOptions::default`]'s budget (10 s). `store` is `None` for dry runs:
/// then nothing is sent or remembered.
pub async fn after_run(
    policy: &Policy,
    store: Option<&Store>,
    eci: &EciClient,
    reports: &[TokenReport],
) -> NotifySummary {
    after_run_with(policy, store, eci, reports, &DeliveryOptions::default()).await
}

/// [`after_run`] with explicit delivery options.
pub async fn after_run_with(
    policy: &Policy,
    store: Option<&Store>,
    eci: &EciClient,
    reports: &[TokenReport],
    opts: &DeliveryOptions,
) -> NotifySummary {
    let mut summary = NotifySummary::default();
    let dry_run = reports.iter().any(|r| {
        matches!(
            r.outcome,
            Outcome::WouldRotate { .. } | Outcome::WouldResume { .. }
        )
    });
    let store = match store {
        Some(s) if !dry_run => s,
        _ => {
            summary.skipped = Some("dry run".into());
            return summary;
        }
    };
    if policy.notify.channels.is_empty() {
        summary.skipped = Some("no [[notify.channel]] in the policy".into());
        return summary;
    }
    let dir = match open_dir(store) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "notifications: cannot open the state folder");
            summary.errors.push(e.to_string());
            return summary;
        }
    };
    let listing = match tokio::time::timeout(LIST_TIMEOUT, eci.list(None)).await {
        Ok(Ok(tokens)) => Some(tokens),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "notifications: cannot list ECI tokens; expiry reminders wait for the next run");
            summary.errors.push(format!("listing ECI tokens: {e}"));
            None
        }
        Err(_) => {
            summary
                .errors
                .push(format!("listing ECI tokens took over {LIST_TIMEOUT:?}"));
            None
        }
    };
    let mut memory = load_or_note(Memory::load(&dir), &mut summary).unwrap_or_default();
    let mut outbox = load_or_note(Outbox::load(&dir), &mut summary).unwrap_or_default();
    let channels: Vec<Channel> = policy.notify.channels.iter().map(Channel::new).collect();

    let reports = with_unannounced(store, &memory, &with_replacements(store, reports));
    let now = chrono::Utc::now();
    let inputs = events::Inputs {
        now,
        notify: &policy.notify,
        policy_tokens: &policy.tokens,
        listing: listing.as_deref(),
        reports: &reports,
    };
    let new_events = events::compute(&inputs, &mut memory);
    for event in &new_events {
        tracing::info!(event = event.event.as_str(), token = %event.token.name, summary = %event.summary, "notification");
        summary.events.push(event.summary.clone());
        for c in channels.iter().filter(|c| c.wants(event)) {
            summary.dropped += outbox.push(&c.key, event.clone(), now);
            summary.queued += 1;
        }
    }
    // The queue first: a crash between the two writes repeats a message rather than losing it.
    note(outbox.save(&dir), &mut summary);
    note(memory.save(&dir), &mut summary);

    let delivered = deliver(&mut outbox, &channels, opts).await;
    summary.delivered = delivered.delivered;
    summary.dropped += delivered.dropped;
    summary.waiting = outbox.entries.len();
    for (label, error) in delivered.failures {
        let waiting = channels
            .iter()
            .find(|c| c.label == label)
            .map_or(0, |c| outbox.waiting(&c.key));
        summary
            .errors
            .push(format!("{label}: {error} ({waiting} waiting)"));
    }
    note(outbox.save(&dir), &mut summary);
    summary
}

/// A failed run's report does not name the replacement its open rotation already made; the
/// rotation journal does (ids and expiry only).
fn with_replacements(store: &Store, reports: &[TokenReport]) -> Vec<TokenReport> {
    reports
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.failed()
                && r.new_id.is_none()
                && let Ok(Some(rot)) = store.load::<Rotation>(ROTATIONS, &r.name)
            {
                r.new_id = rot.new_id;
                r.new_expires = rot.new_expires;
            }
            r
        })
        .collect()
}

/// How far back a completed rotation that was never announced (its pass was cut short, or the
/// process died before notifying) is still announced.
const UNANNOUNCED_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Each report of a token not rotated in this run, replaced by its last completed rotation
/// when that was never announced: the `rotated` message goes out late rather than never.
fn with_unannounced(store: &Store, memory: &Memory, reports: &[TokenReport]) -> Vec<TokenReport> {
    let now = chrono::Utc::now();
    reports
        .iter()
        .map(|r| {
            if !matches!(
                r.outcome,
                Outcome::NotDue { .. } | Outcome::NeverExpires | Outcome::Watched { .. }
            ) {
                return r.clone();
            }
            let Ok(Some(record)) = store.load::<TokenRecord>(TOKENS, &r.name) else {
                return r.clone();
            };
            if now - record.last_rotated > UNANNOUNCED_WINDOW
                || memory.rotations.contains_key(&record.current_id)
            {
                return r.clone();
            }
            let mut late = TokenReport::new(&r.name);
            late.outcome = Outcome::Rotated { old_deleted: true };
            late.old_id = Some(record.previous_id.clone());
            late.new_id = Some(record.current_id.clone());
            late.new_expires = record.expires;
            late.destinations = record
                .destinations
                .iter()
                .filter(|(_, d)| !d.removed)
                .map(|(k, d)| DestReport::from_state(k, d))
                .collect();
            late
        })
        .collect()
}

fn note(result: Result<(), StateError>, summary: &mut NotifySummary) {
    if let Err(e) = result {
        tracing::error!(error = %e, "notifications: cannot save state");
        summary.errors.push(e.to_string());
    }
}

fn load_or_note<T>(result: Result<T, StateError>, summary: &mut NotifySummary) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "notifications: cannot read state");
            summary.errors.push(e.to_string());
            None
        }
    }
}

/// `<state>/notify`, mode 0700.
fn open_dir(store: &Store) -> Result<PathBuf, StateError> {
    let dir = store.dir().join(DIR);
    let io = |source| StateError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(dir)
}

/// A JSON state file, or `None` when absent. An unreadable one is renamed aside (kept for a
/// human to look at) and counts as absent.
pub(crate) fn read_or_set_aside<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
            let aside = path.with_file_name(format!("{name}.unreadable-{stamp}"));
            tracing::warn!(path = %path.display(), aside = %aside.display(), error = %e,
                "notification state unreadable: set aside, starting afresh");
            std::fs::rename(path, &aside).map_err(|source| StateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(None)
        }
    }
}
