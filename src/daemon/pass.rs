//! One scheduled rotation pass: take the state lock, connect, rotate what is due, notify, log it (ids and times, never values).

use super::memory::PassRecord;
use crate::app::build_engine;
use crate::policy::Policy;
use crate::rotation::journal::TokenRecord;
use crate::rotation::report::DestReport;
use crate::rotation::report::{Outcome, TokenReport, when};
use crate::rotation::{Options, TOKENS};
use crate::state::{LockGuard, StateError, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a pass waits for a one-shot run (`--rotate-now`) to let go of the state lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(15 * 60);
const LOCK_POLL: Duration = Duration::from_millis(250);

/// What a pass did; `completed` when it went through every token.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    pub record: PassRecord,
    pub completed: bool,
}

impl PassOutcome {
    /// A pass that did not go through the tokens.
    pub fn incomplete(scheduled: DateTime<Utc>, started: DateTime<Utc>, error: String) -> Self {
        Self {
            record: PassRecord {
                scheduled,
                started,
                finished: Utc::now(),
                rotated: 0,
                not_due: 0,
                watched: 0,
                failed: 0,
                error: Some(error),
                unusable: None,
            },
            completed: false,
        }
    }
}

/// Plan and rotate every token of `policy` that is due: the `--rotate-now` code path.
pub async fn run(policy: Arc<Policy>, store: Store, scheduled: DateTime<Utc>) -> PassOutcome {
    let started = Utc::now();
    let _lock = match lock(&store).await {
        Ok(guard) => guard,
        Err(e) => {
            tracing::warn!(error = %e, "rotation pass skipped");
            return PassOutcome::incomplete(scheduled, started, e.to_string());
        }
    };
    tracing::debug!(tokens = policy.tokens.len(), "rotation pass started");
    let engine = match build_engine(&policy, Some(store.clone()), true).await {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!(error = %e, "rotation pass could not start; the next scheduled run tries again");
            return PassOutcome::incomplete(scheduled, started, e);
        }
    };
    let reports = engine.run(&policy.tokens, &Options::default()).await;
    reports.iter().for_each(log_report);
    // With nothing due, nothing above asked Vault: is it usable for when a token comes due?
    let unusable = engine.vault_unusable().await;
    if let Some(why) = &unusable {
        tracing::warn!("{why}; tokens written to Vault cannot be rotated until this is fixed");
    }
    for u in crate::rotation::unlisted_open_rotations(&store, &policy) {
        tracing::warn!("{u}");
    }
    crate::metrics::global().observe_run(
        &with_saved_destinations(&reports, &store, &policy),
        |name| {
            policy
                .tokens
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.rotate_before)
        },
    );
    let notified = crate::notify::after_run(&policy, Some(&store), &engine.eci, &reports).await;
    if notified.skipped.is_none() {
        for e in &notified.errors {
            tracing::warn!("notify: {e}");
        }
        // Quiet when there was nothing to say.
        if notified.events.is_empty()
            && notified.delivered == 0
            && notified.waiting == 0
            && notified.dropped == 0
        {
            tracing::debug!("notifications: nothing new");
        } else {
            tracing::info!(
                new = notified.events.len(),
                sent = notified.delivered,
                waiting = notified.waiting,
                dropped = notified.dropped,
                "notifications"
            );
        }
    }
    let count = |f: fn(&Outcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let record = PassRecord {
        scheduled,
        started,
        finished: Utc::now(),
        // A token found waiting out its grace was not rotated by this pass.
        rotated: reports
            .iter()
            .filter(|r| match r.outcome {
                Outcome::Rotated { .. } => true,
                Outcome::GracePending { .. } => !r.resumed,
                _ => false,
            })
            .count(),
        not_due: count(|o| matches!(o, Outcome::NotDue { .. } | Outcome::NeverExpires)),
        watched: count(|o| matches!(o, Outcome::Watched { .. })),
        failed: count(|o| matches!(o, Outcome::Failed { .. } | Outcome::Unknown)),
        error: None,
        unusable,
    };
    if record.unusable.is_some() {
        crate::metrics::global().observe_incomplete();
    }
    if let Some(problem) = &record.unusable {
        // `failed=0` alone would read as all well: the pass failed for this.
        tracing::warn!(
            rotated = record.rotated,
            not_due = record.not_due,
            failed = record.failed,
            problem = %problem,
            "rotation pass done; counted as failed"
        );
    } else if !record.succeeded() {
        tracing::warn!(
            rotated = record.rotated,
            not_due = record.not_due,
            failed = record.failed,
            "rotation pass done"
        );
    } else {
        tracing::info!(
            rotated = record.rotated,
            not_due = record.not_due,
            failed = record.failed,
            "rotation pass done"
        );
    }
    PassOutcome {
        record,
        completed: true,
    }
}

/// The one-writer lock; a one-shot run holding it is waited for (bounded).
async fn lock(store: &Store) -> Result<LockGuard, StateError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        match store.lock(Duration::ZERO) {
            Ok(guard) => return Ok(guard),
            Err(StateError::Locked { .. }) if start.elapsed() < LOCK_PATIENCE => {
                if !said {
                    tracing::info!(
                        state = %store.dir().display(),
                        "another eci-secret-sync run holds the state lock; waiting for it to finish"
                    );
                    said = true;
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
            Err(StateError::Locked { path, holder, .. }) => {
                return Err(StateError::Locked {
                    path,
                    waited: start.elapsed(),
                    holder,
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// One log line per token: info for a rotation, warn for a failure, debug for nothing to do.
fn log_report(r: &TokenReport) {
    let old = r.old_id.as_deref().unwrap_or("-");
    let new = r.new_id.as_deref().unwrap_or("-");
    let new_expires = r.new_expires.map(when).unwrap_or_else(|| "-".into());
    match &r.outcome {
        Outcome::Rotated { old_deleted } => tracing::info!(
            token = %r.name, old_id = %old, new_id = %new, new_expires = %new_expires,
            old_deleted, resumed = r.resumed, "rotated"
        ),
        Outcome::GracePending { until } => tracing::info!(
            token = %r.name, old_id = %old, new_id = %new, new_expires = %new_expires,
            old_deleted_after = %when(*until), "rotated; old token kept for the grace period"
        ),
        Outcome::Failed { error } if r.old_deleted => tracing::warn!(
            token = %r.name, old_id = %old, new_id = %new, error = %error,
            "rotation done, old token deleted, but not recorded"
        ),
        Outcome::Failed { error } => tracing::warn!(
            token = %r.name, old_id = %old, new_id = %new, error = %error,
            "rotation failed; the old token was kept"
        ),
        Outcome::Unknown => tracing::warn!(token = %r.name, "rotation outcome unknown"),
        Outcome::NotDue { expires, rotate_at } => tracing::debug!(
            token = %r.name, id = %old,
            expires = %expires.map(when).unwrap_or_else(|| "never".into()),
            rotate_at = %when(*rotate_at), "not due"
        ),
        Outcome::NeverExpires => {
            tracing::debug!(token = %r.name, id = %old, "never expires; nothing to rotate")
        }
        Outcome::Watched { expires } => tracing::debug!(
            token = %r.name, id = %old,
            expires = %expires.map(when).unwrap_or_else(|| "never".into()),
            "watched only (no destinations)"
        ),
        Outcome::WouldRotate { .. } | Outcome::WouldResume { .. } => {}
    }
    for d in r.destinations.iter().filter(|d| d.error.is_some()) {
        tracing::warn!(
            token = %r.name, destination = %d.destination, status = %d.status,
            error = %d.error.as_deref().unwrap_or_default(), "destination not updated"
        );
    }
    for w in &r.warnings {
        tracing::warn!(token = %r.name, "{w}");
    }
}

/// The reports, with each token that did nothing this pass (not due) showing its destinations'
/// last saved results: the metrics then carry every destination from the first pass after a
/// restart, not only those a rotation touched since.
/// Only destinations the policy still lists: one removed since the record was saved has no
/// series any more.
fn with_saved_destinations(
    reports: &[TokenReport],
    store: &Store,
    policy: &Policy,
) -> Vec<TokenReport> {
    let default_mount = policy.vault.as_ref().map_or("secret", |v| v.mount.as_str());
    reports
        .iter()
        .cloned()
        .map(|mut r| {
            if r.destinations.is_empty()
                && let Ok(Some(record)) = store.load::<TokenRecord>(TOKENS, &r.name)
            {
                let listed: Vec<String> = policy
                    .tokens
                    .iter()
                    .filter(|t| t.name == r.name)
                    .flat_map(crate::destination::Destination::of)
                    .map(|d| d.key(default_mount))
                    .collect();
                r.destinations = record
                    .destinations
                    .iter()
                    .filter(|(k, d)| !d.removed && listed.contains(k))
                    .map(|(k, d)| DestReport::from_state(k, d))
                    .collect();
            }
            r
        })
        .collect()
}
