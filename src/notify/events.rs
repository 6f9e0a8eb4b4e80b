//! Pure: from a run's reports, ECI's token list, what was already said and the time, the new events.

use super::memory::{Failure, Memory, RotationMemory, TokenMemory};
use super::schema::{
    DestinationInfo, Event, EventKind, OldTokenFate, RotationInfo, SCHEMA, Threshold, TokenInfo,
    TokenRef,
};
use crate::eci::Token;
use crate::plan::chrono_dur;
use crate::policy::{NotifySection, TokenPolicy, Watch, format_duration};
use crate::rotation::report::{Outcome, TokenReport};
use crate::secret::scrub;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// Everything the decision depends on.
pub struct Inputs<'a> {
    pub now: DateTime<Utc>,
    pub notify: &'a NotifySection,
    pub policy_tokens: &'a [TokenPolicy],
    /// Every token ECI lists, or `None` when listing failed (then only the reports count).
    pub listing: Option<&'a [Token]>,
    pub reports: &'a [TokenReport],
}

/// The events to send now; `memory` is updated to remember them.
pub fn compute(inputs: &Inputs<'_>, memory: &mut Memory) -> Vec<Event> {
    let by_id = inputs
        .listing
        .unwrap_or_default()
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    let mut cx = Cx {
        inp: inputs,
        by_id,
        out: Vec::new(),
        failed_now: HashMap::new(),
    };
    for r in inputs.reports {
        cx.report(r, memory);
    }
    for t in inputs.listing.unwrap_or_default() {
        cx.watch(t, memory);
    }
    let names: Vec<&str> = inputs
        .policy_tokens
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    memory.prune(inputs.now, inputs.listing.is_some(), &names);
    cx.out
}

struct Cx<'a> {
    inp: &'a Inputs<'a>,
    by_id: HashMap<&'a str, &'a Token>,
    out: Vec<Event>,
    /// Token name → index in `out` of the `rotation_failed` sent this run.
    failed_now: HashMap<String, usize>,
}

impl Cx<'_> {
    fn now(&self) -> DateTime<Utc> {
        self.inp.now
    }

    fn policy_of(&self, name: &str) -> Option<&TokenPolicy> {
        self.inp.policy_tokens.iter().find(|t| t.name == name)
    }

    /// Whether eci-secret-sync rotates this token: its name is in the policy and, when this
    /// run reported on that name, it is the token the run handled (names are not unique: a
    /// same-named token made by hand is left alone by rotation, so it is not "managed").
    fn is_managed(&self, name: &str, id: Option<&str>) -> bool {
        let mut handled = self
            .inp
            .reports
            .iter()
            .filter(|r| r.name == name)
            .flat_map(|r| [r.old_id.as_deref(), r.new_id.as_deref()])
            .flatten()
            .peekable();
        match (id, handled.peek()) {
            (Some(id), Some(_)) => handled.any(|h| h == id),
            _ => true,
        }
    }

    /// The token's own thresholds, else `[notify] thresholds`.
    fn thresholds_of(&self, name: &str) -> &[Duration] {
        self.policy_of(name)
            .and_then(|p| p.thresholds.as_deref())
            .unwrap_or(&self.inp.notify.thresholds)
    }

    fn token_info(
        &self,
        name: &str,
        id: Option<&str>,
        expires: Option<DateTime<Utc>>,
    ) -> TokenInfo {
        let listed = id.and_then(|id| self.by_id.get(id));
        // A token with no destinations is only watched: it is rotated by hand.
        let policy = self
            .policy_of(name)
            .filter(|p| !(p.vault.is_empty() && p.github.is_empty()))
            .filter(|_| self.is_managed(name, id));
        TokenInfo {
            name: scrub(name),
            id: id.map(scrub),
            expires,
            expires_in_seconds: expires.map(|x| (x - self.now()).num_seconds()),
            owner: listed.and_then(|t| t.owner.as_deref()).map(scrub),
            roles: listed
                .map(|t| t.roles.iter().map(|r| scrub(r)).collect())
                .unwrap_or_default(),
            managed: policy.is_some(),
            rotates_from: policy
                .zip(expires)
                .map(|(p, x)| x - chrono_dur(p.rotate_before)),
        }
    }

    fn emit(
        &mut self,
        kind: EventKind,
        token: TokenInfo,
        threshold: Option<Threshold>,
        rotation: Option<RotationInfo>,
    ) -> usize {
        let mut e = Event {
            schema: SCHEMA.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            event: kind,
            occurred_at: self.now(),
            summary: String::new(),
            token,
            threshold,
            rotation,
        };
        e.summary = scrub(&super::text::headline(&e));
        self.out.push(e);
        self.out.len() - 1
    }

    fn report(&mut self, r: &TokenReport, mem: &mut Memory) {
        match &r.outcome {
            Outcome::WouldRotate { .. } | Outcome::WouldResume { .. } => {}
            // ECI could not be asked about a token the saved state shows fine: nothing to
            // alert about (the pass's own metrics and log say ECI was down).
            Outcome::Failed { .. } if r.known_not_due => {}
            Outcome::Failed { error } => self.failed(r, error, mem),
            Outcome::Unknown => self.failed(r, "the run ended before this token was handled", mem),
            Outcome::Rotated { old_deleted } => {
                let fate = if *old_deleted {
                    OldTokenFate::Deleted
                } else {
                    OldTokenFate::AlreadyGone
                };
                self.rotated(r, fate, None, mem);
                self.recovered(r, Some(fate), None, mem);
            }
            Outcome::GracePending { until } => {
                self.rotated(r, OldTokenFate::KeptForGrace, Some(*until), mem);
                self.recovered(r, Some(OldTokenFate::KeptForGrace), Some(*until), mem);
            }
            Outcome::NotDue { .. } | Outcome::NeverExpires | Outcome::Watched { .. } => {
                self.recovered(r, None, None, mem)
            }
        }
    }

    /// Expiry of the token a report is about (the current one, before any rotation).
    fn old_expiry(&self, r: &TokenReport) -> Option<DateTime<Utc>> {
        if let Outcome::NotDue { expires, .. } = r.outcome {
            return expires;
        }
        r.old_expires.or_else(|| {
            r.old_id
                .as_deref()
                .and_then(|id| self.by_id.get(id))
                .and_then(|t| t.expires)
        })
    }

    fn failed(&mut self, r: &TokenReport, error: &str, mem: &mut Memory) {
        let now = self.now();
        let old_token = r.old_id.as_ref().map(|id| TokenRef {
            id: id.clone(),
            expires: self.old_expiry(r),
        });
        let new_token = r.new_id.as_ref().map(|id| TokenRef {
            id: id.clone(),
            expires: r.new_expires,
        });
        let destinations = destinations(r);
        let error = scrub(error);
        let send = match mem.failures.get_mut(&r.name) {
            None => {
                let f = Failure {
                    since: now,
                    last_sent: now,
                    sends: 1,
                    error,
                    destinations,
                    old_token,
                    new_token,
                };
                mem.failures.insert(r.name.clone(), f);
                true
            }
            Some(f) => {
                f.error = error;
                f.destinations = destinations;
                f.old_token = old_token;
                f.new_token = new_token;
                let due = now >= f.next_reminder();
                if due {
                    f.sends += 1;
                    f.last_sent = now;
                }
                due
            }
        };
        if send && let Some(f) = mem.failures.get(&r.name) {
            let i = self.failure_event(&r.name, f, None);
            self.failed_now.insert(r.name.clone(), i);
        }
    }

    fn failure_event(&mut self, name: &str, f: &Failure, threshold: Option<Threshold>) -> usize {
        let old = f.old_token.as_ref();
        let token = self.token_info(
            name,
            old.map(|o| o.id.as_str()),
            old.and_then(|o| o.expires),
        );
        let rotation = RotationInfo {
            old_token: f.old_token.clone(),
            new_token: f.new_token.clone(),
            old_token_fate: old.map(|_| OldTokenFate::KeptAlive),
            old_token_deleted_after: None,
            destinations: f.destinations.clone(),
            error: Some(f.error.clone()),
            failing_since: Some(f.since),
            notice: Some(f.sends),
            time_left_seconds: old
                .and_then(|o| o.expires)
                .map(|x| (x - self.now()).num_seconds()),
        };
        self.emit(EventKind::RotationFailed, token, threshold, Some(rotation))
    }

    fn rotated(
        &mut self,
        r: &TokenReport,
        fate: OldTokenFate,
        until: Option<DateTime<Utc>>,
        mem: &mut Memory,
    ) {
        let key = r
            .new_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", r.name, r.old_id.as_deref().unwrap_or_default()));
        if mem.rotations.contains_key(&key) {
            return;
        }
        mem.rotations.insert(
            key,
            RotationMemory {
                name: r.name.clone(),
                old_id: r.old_id.clone(),
                at: self.now(),
            },
        );
        // The replacement starts afresh: thresholds beyond its whole lifetime were never
        // crossed by it, and the `rotated` message already tells its expiry.
        if let (Some(id), Some(expires)) = (&r.new_id, r.new_expires) {
            let thresholds_sent = self
                .thresholds_of(&r.name)
                .iter()
                .filter(|th| expires - chrono_dur(**th) <= self.now())
                .map(|th| th.as_secs())
                .collect();
            let fresh = TokenMemory {
                name: r.name.clone(),
                thresholds_sent,
                expired_sent: false,
                last_seen: self.now(),
            };
            mem.tokens.insert(id.clone(), fresh);
        }
        let token = self.token_info(&r.name, r.new_id.as_deref(), r.new_expires);
        let rotation = self.rotation_info(r, Some(fate), until);
        self.emit(EventKind::Rotated, token, None, Some(rotation));
    }

    fn rotation_info(
        &self,
        r: &TokenReport,
        fate: Option<OldTokenFate>,
        until: Option<DateTime<Utc>>,
    ) -> RotationInfo {
        RotationInfo {
            old_token: r.old_id.as_ref().map(|id| TokenRef {
                id: id.clone(),
                expires: self.old_expiry(r),
            }),
            new_token: r.new_id.as_ref().map(|id| TokenRef {
                id: id.clone(),
                expires: r.new_expires,
            }),
            old_token_fate: fate,
            old_token_deleted_after: until,
            destinations: destinations(r),
            error: None,
            failing_since: None,
            notice: None,
            time_left_seconds: None,
        }
    }

    fn recovered(
        &mut self,
        r: &TokenReport,
        fate: Option<OldTokenFate>,
        until: Option<DateTime<Utc>>,
        mem: &mut Memory,
    ) {
        let Some(f) = mem.failures.remove(&r.name) else {
            return;
        };
        let token = match &r.new_id {
            Some(new) => self.token_info(&r.name, Some(new), r.new_expires),
            None => self.token_info(&r.name, r.old_id.as_deref(), self.old_expiry(r)),
        };
        let mut rotation = self.rotation_info(r, fate, until);
        if rotation.destinations.is_empty() {
            rotation.destinations = f.destinations.clone();
        }
        rotation.error = Some(f.error);
        rotation.failing_since = Some(f.since);
        self.emit(EventKind::Recovered, token, None, Some(rotation));
    }

    /// Thresholds and expiry for one listed token.
    fn watch(&mut self, t: &Token, mem: &mut Memory) {
        let now = self.now();
        let policy = self.policy_of(&t.name);
        if self.inp.notify.watch == Watch::Policy && policy.is_none() {
            return;
        }
        // The old token of an announced rotation is on its way out (grace): no reminders.
        if mem
            .rotations
            .values()
            .any(|r| r.old_id.as_deref() == Some(t.id.as_str()))
        {
            return;
        }
        let thresholds = self.thresholds_of(&t.name);
        // A replacement this program made (its `rotated` message told its expiry) that is first
        // seen here, as when notifications are turned on after its rotation, never crossed the
        // thresholds beyond its whole lifetime (a 30-day token is born inside a 30d threshold):
        // those are not announced. A token made by hand is announced as it is found.
        let ours = t.description.contains(crate::rotation::MARKER);
        let born_inside: Vec<u64> = match (t.created, t.expires) {
            (Some(created), Some(expires)) if ours => thresholds
                .iter()
                .filter(|th| expires - chrono_dur(**th) <= created)
                .map(|th| th.as_secs())
                .collect(),
            _ => Vec::new(),
        };
        let entry = mem
            .tokens
            .entry(t.id.clone())
            .or_insert_with(|| TokenMemory {
                name: t.name.clone(),
                thresholds_sent: born_inside,
                expired_sent: false,
                last_seen: now,
            });
        entry.last_seen = now;
        entry.name.clone_from(&t.name);
        let Some(expires) = t.expires else { return };
        if expires <= now {
            if !entry.expired_sent {
                entry.expired_sent = true;
                let token = self.token_info(&t.name, Some(&t.id), Some(expires));
                self.emit(EventKind::Expired, token, None, None);
            }
            return;
        }
        let Some((nearest, crossed)) = crossed(thresholds, expires, now) else {
            return;
        };
        if entry.thresholds_sent.contains(&nearest.as_secs()) {
            return;
        }
        for th in crossed {
            if !entry.thresholds_sent.contains(&th.as_secs()) {
                entry.thresholds_sent.push(th.as_secs());
            }
        }
        let threshold = Threshold {
            label: format_duration(nearest),
            seconds: nearest.as_secs(),
        };
        // This very token's rotation is failing: the threshold escalates the failure alert.
        if let Some(f) = mem.failures.get_mut(&t.name)
            && f.old_token.as_ref().is_some_and(|o| o.id == t.id)
        {
            if let Some(&i) = self.failed_now.get(&t.name) {
                self.out[i].threshold = Some(threshold);
                return;
            }
            f.sends += 1;
            f.last_sent = now;
            let f = f.clone();
            let i = self.failure_event(&t.name, &f, Some(threshold));
            self.failed_now.insert(t.name.clone(), i);
            return;
        }
        let token = self.token_info(&t.name, Some(&t.id), Some(expires));
        self.emit(EventKind::Expiring, token, Some(threshold), None);
    }
}

/// The nearest crossed threshold and every crossed one: those no further from `expires`
/// than `now` is.
fn crossed(
    thresholds: &[Duration],
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(Duration, Vec<Duration>)> {
    let crossed: Vec<Duration> = thresholds
        .iter()
        .copied()
        .filter(|th| expires - chrono_dur(*th) <= now)
        .collect();
    crossed.iter().min().map(|n| (*n, crossed.clone()))
}

fn destinations(r: &TokenReport) -> Vec<DestinationInfo> {
    r.destinations
        .iter()
        .map(|d| DestinationInfo {
            destination: scrub(&d.destination),
            status: match d.status.as_str() {
                "synced" => "updated",
                "FAILED" => "failed",
                "written, not verified" => "written_unverified",
                "would write" => "planned",
                _ => "pending",
            }
            .to_string(),
            error: d.error.as_deref().map(scrub),
        })
        .collect()
}

#[cfg(test)]
mod tests;
