//! Rotation: the persisted state machine that replaces one token everywhere, then deletes the old.
//!
//! Planned → Creating → Created(new id) → destinations pushed and verified → [Grace] → Deleting
//! → done. The journal is saved before each step acts; a rerun resumes from it and never makes a
//! second replacement while one exists.

pub mod journal;
pub mod minted;
pub mod report;

use crate::audit::{self, Action, Entry};
use crate::destination::github::Github;
use crate::destination::vault::Vault;
use crate::destination::{DestError, Destination, WriteMeta};
use crate::eci::{EciClient, EciError, Token};
use crate::plan::{self, Decision, Reason};
use crate::policy::TokenPolicy;
use crate::secret::SecretValue;
use crate::state::Store;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use journal::{CreateAttempt, DestState, DestStatus, Phase, Rotation, TokenRecord};
use report::{DestReport, Outcome, TokenReport};
use std::sync::Arc;

/// How the warning about other replacements met while a rotation is open starts.
const LEFT_WHILE_OPEN: &str =
    "other replacement(s) made by this program left alone while a rotation is open";

/// Marks tokens this product created, in their ECI description.
pub const MARKER: &str = "[eci-secret-sync]";

/// A replacement created up to this long before the recorded attempt time still counts as
/// the attempt's (clock skew between this host and ECI).
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

pub const ROTATIONS: &str = "rotations";
pub const TOKENS: &str = "tokens";
/// Per token: ids of replacements no rotation references that some destination may still
/// hold; never deleted as orphans until a rotation of that token completes.
pub const HELD: &str = "held";
/// Per token: its last failed run ([`journal::LastFailure`]), removed by a run that goes well.
pub const FAILURES: &str = "failures";
pub use minted::MINTED;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub force: bool,
    pub dry_run: bool,
}

/// Everything a rotation talks to.
pub struct Engine {
    pub eci: EciClient,
    pub vault: Option<Arc<Vault>>,
    pub github: Option<Arc<Github>>,
    /// `None` only in a dry run on a host that has no state folder yet.
    pub store: Option<Store>,
    pub default_mount: String,
    pub concurrency: usize,
    /// The daemon's own credential, when `[eci] token` is read from a Vault destination that a
    /// policy token writes: that token's name and the destination the credential is read from.
    pub own_credential: Option<OwnCredential>,
    /// Why Vault could not be connected, when a token writes to it.
    pub vault_error: Option<String>,
    /// How to call this program on this policy, for the commands messages suggest
    /// (`eci-secret-sync --config /srv/policy.toml`).
    pub command: String,
}

/// Where the credential this process calls ECI with comes from, when it is itself rotated.
#[derive(Debug, Clone)]
pub struct OwnCredential {
    pub token_name: String,
    pub source: crate::policy::VaultDestination,
}

type Step<T> = Result<T, String>;

impl Engine {
    /// Plan and (unless dry-run) carry out every given token, `concurrency` at a time,
    /// reports in policy order.
    /// The daemon's own token goes last, alone: switching credentials never races another
    /// rotation's calls.
    pub async fn run(&self, tokens: &[TokenPolicy], opts: &Options) -> Vec<TokenReport> {
        let own = self.own_credential.as_ref().map(|o| o.token_name.as_str());
        // The futures are made before they enter the stream: a closure inside the stream would
        // make this future not `Send` (a known higher-ranked lifetime limitation of rustc).
        let others: Vec<_> = tokens
            .iter()
            .filter(|t| Some(t.name.as_str()) != own)
            .map(|t| self.run_token(t, opts))
            .collect();
        let mut reports: Vec<TokenReport> = futures::stream::iter(others)
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        if let Some(t) = tokens.iter().find(|t| Some(t.name.as_str()) == own) {
            reports.push(self.run_token(t, opts).await);
        }
        let order = |r: &TokenReport| tokens.iter().position(|t| t.name == r.name);
        reports.sort_by_key(order);
        reports
    }

    /// Refuse to rotate `current` when it is (or, its value hidden, may be) the credential
    /// this program calls ECI with, read from a place it does not update: deleting it would
    /// lock this program out.
    async fn not_the_calling_credential(&self, name: &str, current: &Token) -> Step<()> {
        let calling = self.eci.token();
        let refused = || {
            format!(
                "{name} is the credential this program calls ECI with, read from a place it does not \
                 update: rotating it would lock this program out. Give the token a [[token.vault]] \
                 destination and read [eci] token from it ({{ vault = \"path#key\" }})"
            )
        };
        match &current.value {
            Some(v) if v.same_as(&calling) => return Err(refused()),
            Some(_) => return Ok(()),
            None => {}
        }
        // ECI does not show this token's value: it is not the calling credential only if that
        // credential is found among the tokens whose values ECI does show.
        let all = self.eci.list(None).await.map_err(|e| {
            format!(
                "ECI does not show {name}'s value, and the tokens could not be listed to tell it apart \
                 from the credential this program calls ECI with: {e}"
            )
        })?;
        match all
            .iter()
            .find(|t| t.value.as_ref().is_some_and(|v| v.same_as(&calling)))
        {
            Some(t) if t.id == current.id => Err(refused()),
            Some(_) => Ok(()),
            None => Err(format!(
                "ECI does not show the value of {name} ({}), and the credential this program calls ECI \
                 with is not among the tokens whose value it shows: {name} may be that credential, and \
                 rotating it would lock this program out, so it is not rotated. If it is, give it a \
                 [[token.vault]] destination and read [eci] token from it ({{ vault = \"path#key\" }}); \
                 if it is not, call ECI with a token whose value ECI shows",
                current.id
            )),
        }
    }

    /// Why the policy's Vault cannot be used now (unreachable, sealed, its credential refused
    /// or unreadable), when some token writes to it.
    pub async fn vault_unusable(&self) -> Option<String> {
        if let Some(e) = &self.vault_error {
            return Some(e.clone());
        }
        self.vault.as_ref()?.unusable().await
    }

    fn is_own(&self, name: &str) -> bool {
        self.own_credential
            .as_ref()
            .is_some_and(|o| o.token_name == name)
    }

    pub async fn run_token(&self, policy: &TokenPolicy, opts: &Options) -> TokenReport {
        let mut report = TokenReport::new(&policy.name);
        if let Err(message) = self.drive(policy, opts, &mut report).await {
            // Reported once where the run's results are shown (the summary, or the daemon's
            // per-token line): not here too.
            tracing::debug!(token = %policy.name, error = %message, "rotation did not complete");
            report.outcome = Outcome::Failed { error: message };
        }
        if !opts.dry_run {
            self.remember_outcome(&report);
        }
        report
    }

    /// The saved state shows `policy`'s token not due and no rotation of it open: a run that
    /// could not ask ECI has then not failed to rotate anything.
    fn known_not_due(&self, policy: &TokenPolicy) -> bool {
        let open: Option<Rotation> = self.load(ROTATIONS, &policy.name).ok().flatten();
        let record: Option<TokenRecord> = self.load(TOKENS, &policy.name).ok().flatten();
        open.is_none()
            && record
                .and_then(|r| r.expires)
                .is_some_and(|e| e - plan::chrono_dur(policy.rotate_before) > Utc::now())
    }

    /// Keep a failed run's error for `--status` until a run of the token goes well.
    fn remember_outcome(&self, report: &TokenReport) {
        let Some(store) = &self.store else {
            return;
        };
        let saved = match &report.outcome {
            // ECI was down for a token that is not due: nothing failed to rotate.
            Outcome::Failed { .. } if report.known_not_due => Ok(()),
            Outcome::Failed { error } => store.save(
                FAILURES,
                &report.name,
                &journal::LastFailure {
                    at: Utc::now(),
                    error: error.clone(),
                    forced: report.forced,
                },
            ),
            Outcome::Unknown => Ok(()),
            _ => store.remove(FAILURES, &report.name),
        };
        if let Err(e) = saved {
            tracing::warn!(token = %report.name, error = %e, "cannot record the run's result");
        }
    }

    async fn drive(
        &self,
        policy: &TokenPolicy,
        opts: &Options,
        report: &mut TokenReport,
    ) -> Step<()> {
        let result = self.drive_open(policy, opts, report).await;
        if result.is_ok() && !opts.dry_run && matches!(report.outcome, Outcome::Rotated { .. }) {
            // The rotation is done: what was left alone while it was open is dealt with now.
            report.warnings.retain(|w| !w.starts_with(LEFT_WHILE_OPEN));
            self.clean_after_rotation(policy, report).await;
        }
        result
    }

    /// Orphans once a rotation completed: every destination holds the new token now.
    async fn clean_after_rotation(&self, policy: &TokenPolicy, report: &mut TokenReport) {
        let named = match self.eci.list_named(&policy.name).await {
            Ok(named) => named,
            Err(e) => {
                report
                    .warnings
                    .push(format!("listing tokens in ECI after the rotation: {e}"));
                return;
            }
        };
        let record: Option<TokenRecord> = self.load(TOKENS, &policy.name).ok().flatten();
        let Some(record) = record else {
            return;
        };
        let held: Vec<String> = self
            .load(HELD, &policy.name)
            .ok()
            .flatten()
            .unwrap_or_default();
        let orphans: Vec<&Token> = named
            .iter()
            .filter(|t| t.id != record.current_id && t.description.contains(MARKER))
            .collect();
        // Each is judged again now: what the planning said about it no longer holds.
        report.warnings.retain(|w| {
            !orphans.iter().any(|o| {
                w.starts_with(&format!("orphan replacement {} ", o.id))
                    || w.starts_with(&format!("token {} carries this program's marker", o.id))
            })
        });
        if !orphans.is_empty() {
            self.clean_orphans(policy, &orphans, true, &held, false, report)
                .await;
        }
    }

    async fn drive_open(
        &self,
        policy: &TokenPolicy,
        opts: &Options,
        report: &mut TokenReport,
    ) -> Step<()> {
        let named = match self.eci.list_named(&policy.name).await {
            Ok(named) => named,
            Err(e) => {
                // ECI cannot be asked: as far as the saved state knows, is the token fine?
                report.known_not_due = self.known_not_due(policy);
                return Err(format!("listing tokens in ECI: {e}"));
            }
        };
        let open: Option<Rotation> = self.load(ROTATIONS, &policy.name)?;
        if let Some(rot) = &open
            && rot.version > journal::JOURNAL_VERSION
        {
            return Err(format!(
                "the open rotation of {} was saved by a newer eci-secret-sync (journal version {}, this one \
                 reads {}): refusing to act on it; run the newer version",
                policy.name,
                rot.version,
                journal::JOURNAL_VERSION
            ));
        }
        let record: Option<TokenRecord> = self.load(TOKENS, &policy.name)?;
        let now = Utc::now();
        let plan = plan::decide(
            policy,
            &named,
            open.as_ref(),
            record.as_ref(),
            now,
            opts.force,
        );
        let keep = plan.others.clone();
        let orphans: Vec<&Token> = named
            .iter()
            .filter(|t| keep.contains(&t.id) && t.description.contains(MARKER))
            .collect();
        let foreign: Vec<&str> = named
            .iter()
            .filter(|t| keep.contains(&t.id) && !t.description.contains(MARKER))
            .map(|t| t.id.as_str())
            .collect();
        if !foreign.is_empty() {
            report.warnings.push(format!(
                "other token(s) named {} not made by this program, left alone: {}",
                policy.name,
                foreign.join(", ")
            ));
        }
        if !orphans.is_empty() {
            if let Some(rot) = &open {
                // Tokens the rotation's own create attempts made: taken as its replacement when
                // it has none yet; else strays, recorded so that they are deleted as orphans
                // once the rotation is done (no destination was ever given one).
                let held: Vec<String> = self.load(HELD, &policy.name)?.unwrap_or_default();
                let made = attempt_tokens(rot, &named, &held);
                if rot.new_id.is_some() && !made.is_empty() && !opts.dry_run {
                    self.minted(&policy.name, |l| {
                        for t in &made {
                            minted::created(l, &t.id);
                        }
                    })?;
                }
                let ids: Vec<&str> = orphans
                    .iter()
                    .filter(|o| rot.new_id.is_some() || !made.iter().any(|m| m.id == o.id))
                    .map(|t| t.id.as_str())
                    .collect();
                if !ids.is_empty() {
                    report.warnings.push(format!(
                        "{LEFT_WHILE_OPEN} (dealt with once it is done): {}",
                        ids.join(", ")
                    ));
                }
            } else {
                let held: Vec<String> = self.load(HELD, &policy.name)?.unwrap_or_default();
                // A create of the finished rotation that ECI completed after the rotation was
                // done: this program's, never given to a destination.
                if let Some(r) = &record
                    && !opts.dry_run
                {
                    let late = late_token_ids(r, &named, &held);
                    if !late.is_empty() {
                        self.minted(&policy.name, |l| {
                            for id in &late {
                                if !l.iter().any(|m| &m.id == id) {
                                    minted::created(l, id);
                                }
                            }
                        })?;
                    }
                }
                let minted = self.minted_ids(&policy.name)?;
                // A rotation about to start takes an unused replacement rather than minting
                // another (see `adoptable`): that one is not an orphan.
                let spared = match &plan.decision {
                    Decision::Rotate { current, .. } => {
                        let probe = Rotation::new(&policy.name, &current.id, None, [], now);
                        let trusted = Trusted {
                            no_record: record.is_none(),
                            minted: &minted,
                        };
                        adoptable(policy, &probe, &named, &held, &trusted, now).map(|t| t.id)
                    }
                    _ => None,
                };
                let orphans: Vec<&Token> = orphans
                    .into_iter()
                    .filter(|t| Some(&t.id) != spared.as_ref())
                    .collect();
                self.clean_orphans(
                    policy,
                    &orphans,
                    record.is_some(),
                    &held,
                    opts.dry_run,
                    report,
                )
                .await;
            }
        }
        // No destination would receive a replacement: the token is only watched.
        if Destination::of(policy).is_empty() {
            match &plan.decision {
                // Its destinations were removed while a rotation was open: that rotation is
                // not carried on (it would delete a token its former destinations hold).
                Decision::Resume => {
                    return Err(format!(
                        "{name} has an open rotation but the policy gives it no destinations now, so nothing \
                         is done: put its destinations back to finish the rotation, or close it with \
                         {cmd} --abandon {name}",
                        name = policy.name,
                        cmd = self.command
                    ));
                }
                Decision::NotDue { current, .. }
                | Decision::Rotate { current, .. }
                | Decision::LifetimeTooShort { current, .. } => {
                    report.old_id = Some(current.id.clone());
                    report.old_expires = current.expires;
                    report.outcome = Outcome::Watched {
                        expires: current.expires,
                    };
                    return Ok(());
                }
                _ => {}
            }
        }
        match plan.decision {
            Decision::Missing => Err(format!(
                "no token named {} in ECI: create it once in the portal, then this product keeps it fresh",
                policy.name
            )),
            Decision::NeverExpires { current } => {
                report.old_id = Some(current.id);
                report.outcome = Outcome::NeverExpires;
                Ok(())
            }
            Decision::NotDue { current, rotate_at } => {
                report.old_id = Some(current.id);
                report.outcome = Outcome::NotDue {
                    expires: current.expires,
                    rotate_at,
                };
                Ok(())
            }
            Decision::LifetimeTooShort {
                current,
                new_expires,
            } => {
                report.old_id = Some(current.id);
                Err(format!(
                    "lifetime gives a replacement expiring {}, which is already within rotate_before; \
                     refusing to rotate on every run (raise lifetime or lower rotate_before)",
                    report::when(new_expires)
                ))
            }
            Decision::Rotate {
                current,
                reason,
                new_expires,
            } => {
                report.old_id = Some(current.id.clone());
                report.old_expires = current.expires;
                report.forced = reason == Reason::Forced;
                if !self.is_own(&policy.name) {
                    self.not_the_calling_credential(&policy.name, &current)
                        .await?;
                }
                // Asked in a dry run too (nothing is written): it shows what a real run would do.
                self.destinations_ready(policy).await?;
                // Said once the rotation goes ahead (not for one refused above).
                if report.forced
                    && !opts.dry_run
                    && current.expires.is_some_and(|old| old > new_expires)
                {
                    report.warnings.push(format!(
                        "forced: the replacement expires {}, sooner than the token it replaces ({}); `lifetime` sets how long replacements live",
                        report::when(new_expires),
                        current.expires.map(report::when).unwrap_or_default()
                    ));
                }
                if opts.dry_run {
                    // A real run would take an unused replacement an earlier run made.
                    let probe = Rotation::new(
                        &policy.name,
                        &current.id,
                        current.expires,
                        self.dest_keys(policy),
                        Utc::now(),
                    );
                    let held: Vec<String> = self.load(HELD, &policy.name)?.unwrap_or_default();
                    if let Some(found) = self.unused_replacement(policy, &probe, &named, &held)? {
                        report.warnings.push(format!(
                            "would take the unused replacement {} an earlier run made (expires {}) instead of creating one",
                            found.id,
                            found.expires.map(report::when).unwrap_or_else(|| "never".into())
                        ));
                    }
                    report.outcome = Outcome::WouldRotate { new_expires };
                    report.destinations = self
                        .dest_keys(policy)
                        .into_iter()
                        .map(DestReport::planned)
                        .collect();
                    return Ok(());
                }
                let rot = Rotation::new(
                    &policy.name,
                    &current.id,
                    current.expires,
                    self.dest_keys(policy),
                    Utc::now(),
                );
                self.save(&rot)?;
                self.advance(policy, rot, report).await
            }
            Decision::Resume => {
                let Some(rot) = open else {
                    return Err("internal: resume without a journal".into());
                };
                report.old_id = Some(rot.old_id.clone());
                report.old_expires = rot.old_expires;
                report.resumed = true;
                if opts.dry_run {
                    report.outcome = Outcome::WouldResume {
                        phase: format!("{:?}", rot.phase).to_lowercase(),
                    };
                    // Where each destination stands: what the resumed run would still write.
                    report.new_id = rot.new_id.clone();
                    report.new_expires = rot.new_expires;
                    report.destinations = self
                        .dest_keys(policy)
                        .iter()
                        .map(|k| match rot.destinations.get(k) {
                            Some(d) => DestReport::from_state(k, d),
                            None => DestReport::planned(k.clone()),
                        })
                        .collect();
                    return Ok(());
                }
                self.advance(policy, rot, report).await
            }
        }
    }

    /// Carry a rotation forward from wherever its journal says it stands.
    async fn advance(
        &self,
        policy: &TokenPolicy,
        mut rot: Rotation,
        report: &mut TokenReport,
    ) -> Step<()> {
        let run_started = Utc::now();
        let mut value_at_hand: Option<SecretValue> = None;
        // Keep the journal's destinations in step with the policy: one may have been added; one
        // removed is kept, marked, for what it may hold (it no longer blocks the rotation).
        let keys = self.dest_keys(policy);
        for (k, d) in rot.destinations.iter_mut() {
            d.removed = !keys.contains(k);
        }
        for k in &keys {
            rot.destinations
                .entry(k.clone())
                .or_insert_with(DestState::pending);
        }

        // Every destination was given the replacement in an earlier run, and the old token may
        // go now (no grace left to wait out): the replacement must still exist (revoked by
        // someone meanwhile, deleting the old token would leave nothing that works).
        if matches!(rot.phase, Phase::Created | Phase::Grace | Phase::Deleting)
            && rot.all_verified()
            && rot.grace_until.is_none_or(|until| Utc::now() >= until)
            && let Some(new_id) = rot.new_id.clone()
        {
            match self.eci.get(&new_id).await {
                // Its value, when ECI shows it, is what the checks before the delete compare
                // destinations with (not fetched a second time).
                Ok(t) => {
                    value_at_hand = t.value.filter(|v| {
                        rot.new_fingerprint
                            .as_deref()
                            .is_none_or(|f| f == v.fingerprint())
                    });
                }
                Err(EciError::NotFound) => {
                    report.warnings.push(format!(
                        "replacement {new_id} no longer exists in ECI although the destinations hold it (it was \
                         deleted behind this program's back): the old token {} is kept, and a new replacement \
                         is made and given to every destination",
                        rot.old_id
                    ));
                    tracing::warn!(token = %rot.token_name, replacement = %new_id, "replacement gone from ECI; starting over");
                    rot.start_over();
                    self.save(&rot)?;
                }
                Err(e) => {
                    return Err(format!(
                        "checking that replacement {new_id} still exists before going on: {e}; the old token {} \
                         stays alive, the next run checks again",
                        rot.old_id
                    ));
                }
            }
        }
        if matches!(rot.phase, Phase::Created | Phase::Grace | Phase::Deleting)
            && !rot.all_verified()
        {
            // Includes a destination added to the policy while the old token waits out its
            // grace: it gets the new value before the old one may go.
            let value = match self.read_back(&mut rot, report).await? {
                Some(v) => v,
                None => self.create_replacement(policy, &mut rot, report).await?,
            };
            self.sync_destinations(policy, &mut rot, &value, report)
                .await?;
            value_at_hand = Some(value);
        } else if matches!(rot.phase, Phase::Planned | Phase::Creating) {
            let value = self.create_replacement(policy, &mut rot, report).await?;
            self.sync_destinations(policy, &mut rot, &value, report)
                .await?;
            value_at_hand = Some(value);
        } else {
            report.destinations = rot
                .destinations
                .iter()
                .filter(|(_, d)| !d.removed)
                .map(|(k, d)| DestReport::from_state(k, d))
                .collect();
        }
        report.new_id = rot.new_id.clone();
        report.new_expires = rot.new_expires;

        if rot.phase == Phase::Created {
            let grace = plan::chrono_dur(policy.grace);
            if grace > chrono::Duration::zero() {
                rot.grace_until = Some(Utc::now() + grace);
                rot.phase = Phase::Grace;
            } else {
                rot.phase = Phase::Deleting;
            }
            self.save(&rot)?;
        }
        if rot.phase == Phase::Grace {
            let until = rot.grace_until.unwrap_or_else(Utc::now);
            if Utc::now() < until {
                report.outcome = Outcome::GracePending { until };
                return Ok(());
            }
            rot.phase = Phase::Deleting;
            self.save(&rot)?;
        }
        // Verified in an earlier run (days ago, or before a grace): still so? A Vault rollback,
        // a restore or another writer may have put something else there since.
        self.recheck_before_delete(policy, &mut rot, run_started, value_at_hand, report)
            .await?;
        if self.is_own(&rot.token_name) {
            self.switch_own_credential(&rot).await?;
        }
        // Every destination is verified to hold the new value: the old token may go.
        let existed = self
            .eci
            .delete(&rot.old_id)
            .await
            .map_err(|e| format!("deleting the old token {}: {e} (every destination already holds the new one; the next run retries)", rot.old_id))?;
        tracing::info!(token = %rot.token_name, old = %rot.old_id, existed, "old token deleted");
        report.old_deleted = true;
        self.forget_minted(&rot.token_name, &rot.old_id);
        self.audit(Entry {
            token_id: Some(&rot.old_id),
            ..Entry::new(Action::Deleted, &rot.token_name)
        });
        self.finish(&rot).map_err(|e| {
            format!(
                "the rotation is done (every destination holds replacement {}, the old token {} was deleted), \
                 but recording that in the state folder failed: {e}; the next run records it",
                rot.new_id.as_deref().unwrap_or("?"),
                rot.old_id
            )
        })?;
        report.outcome = Outcome::Rotated { old_deleted: true };
        Ok(())
    }

    /// Before the old token goes: each destination verified before this run started is asked
    /// again whether it still holds the replacement (Vault: its value; GitHub: the secret is
    /// there and nobody updated it since it was verified). One that does not is written again
    /// and verified; if that fails, the old token is kept and the rotation stays open.
    async fn recheck_before_delete(
        &self,
        policy: &TokenPolicy,
        rot: &mut Rotation,
        run_started: DateTime<Utc>,
        mut value: Option<SecretValue>,
        report: &mut TokenReport,
    ) -> Step<()> {
        let earlier: Vec<Destination> = Destination::of(policy)
            .into_iter()
            .filter(|d| {
                rot.destinations
                    .get(&d.key(&self.default_mount))
                    .is_some_and(|s| {
                        !s.removed
                            && s.status == DestStatus::Verified
                            && s.at.is_none_or(|at| at < run_started)
                    })
            })
            .collect();
        if earlier.is_empty() {
            return Ok(());
        }
        let new_id = rot.new_id.clone().unwrap_or_default();
        if value.is_none() && earlier.iter().any(|d| matches!(d, Destination::Vault(_))) {
            value = self.replacement_value(rot).await;
            if value.is_none() {
                // ECI does not show it: a Vault destination that still holds it has it.
                value = self.replacement_value_from_vault(rot, &earlier).await;
            }
        }
        let mut changed = Vec::new();
        for dest in &earlier {
            let key = dest.key(&self.default_mount);
            let Some(state) = rot.destinations.get(&key) else {
                continue;
            };
            let receipt = state.receipt.clone().unwrap_or_default();
            let why = match dest {
                Destination::Vault(v) => {
                    let (version, holds) = self
                        .vault()
                        .map_err(|e| e.message)?
                        .current(v, value.as_ref())
                        .await
                        .map_err(|e| {
                            format!(
                                "checking {key} still holds replacement {new_id} before deleting the old token: {}; the old token {} stays alive, the next run checks again",
                                e.message, rot.old_id
                            )
                        })?;
                    match holds {
                        Some(true) => None,
                        Some(false) => Some("it holds another value now".to_string()),
                        None if version == receipt.version => None,
                        // Deleted or destroyed since: nothing there holds it.
                        None if version.is_none() => Some("the secret is gone".to_string()),
                        None => {
                            return Err(format!(
                                "{key} was written since it was verified (version {} now, {} then) and replacement {new_id}'s value cannot be read back from ECI to compare; the old token {} stays alive",
                                version.map_or("none".into(), |v| v.to_string()),
                                receipt.version.map_or("?".into(), |v| v.to_string()),
                                rot.old_id
                            ));
                        }
                    }
                }
                Destination::Github(g) => {
                    let now = self
                        .github()
                        .map_err(|e| e.message)?
                        .updated_at(g)
                        .await
                        .map_err(|e| {
                            format!(
                                "checking {key} still holds replacement {new_id} before deleting the old token: {}; the old token {} stays alive, the next run checks again",
                                e.message, rot.old_id
                            )
                        })?;
                    match (now, receipt.verified_updated_at) {
                        (None, _) => Some("the secret is gone".to_string()),
                        (Some(now), Some(then)) if now != then => Some(format!(
                            "GitHub shows it updated {} by someone else",
                            now.format("%Y-%m-%d %H:%M:%S UTC")
                        )),
                        _ => None,
                    }
                }
            };
            if let Some(why) = why {
                changed.push((key, why));
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        for (key, why) in &changed {
            tracing::warn!(token = %policy.name, destination = %key, reason = %why, "destination no longer holds the replacement; writing it again");
            report.warnings.push(format!(
                "{key} no longer held replacement {new_id} ({why}); written again before the old token is deleted"
            ));
            if let Some(state) = rot.destinations.get_mut(key) {
                let mut again = DestState::pending();
                again.last_error = Some(format!("no longer held the replacement: {why}"));
                *state = again;
            }
        }
        self.save(rot)?;
        let Some(value) = value.or(self.replacement_value(rot).await) else {
            let gone = changed
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let kept_already = !self
                .load::<Vec<String>>(HELD, &rot.token_name)?
                .unwrap_or_default()
                .is_empty();
            if !kept_already {
                // Other destinations may still hold it: kept alive, and a new replacement is
                // made for every destination by the next run (no way out otherwise).
                self.hold(&rot.token_name, &new_id)?;
                rot.start_over();
                self.save(rot)?;
                return Err(format!(
                    "{gone} no longer hold replacement {new_id} and its value cannot be read back from ECI to write it \
                     again: it is kept alive (other destinations may hold it) and the next run makes a new replacement \
                     for every destination; the old token {} stays alive",
                    rot.old_id
                ));
            }
            return Err(format!(
                "{gone} no longer hold replacement {new_id} and its value cannot be read back from ECI to write it again, \
                 and a replacement given up the same way is still kept alive: not minting another. The old token {} \
                 stays alive; make ECI return token values again, or close the rotation with --abandon {} --force",
                rot.old_id, rot.token_name
            ));
        };
        report.destinations.clear();
        self.sync_destinations(policy, rot, &value, report).await
    }

    /// The replacement's value as one of `dests`' Vault secrets holds it (its fingerprint the
    /// journal's): for when ECI does not show it.
    async fn replacement_value_from_vault(
        &self,
        rot: &Rotation,
        dests: &[Destination],
    ) -> Option<SecretValue> {
        let want = rot.new_fingerprint.as_deref()?;
        let vault = self.vault().ok()?;
        for dest in dests {
            if let Destination::Vault(v) = dest
                && let Ok(Some(stored)) = vault.read_value(v).await
                && stored.fingerprint() == want
            {
                return Some(stored);
            }
        }
        None
    }

    /// The replacement's value, from the credential in use when it is that one, else from ECI.
    async fn replacement_value(&self, rot: &Rotation) -> Option<SecretValue> {
        let new_id = rot.new_id.as_deref()?;
        if self.is_own(&rot.token_name) {
            let own = self.eci.token();
            if rot.new_fingerprint.as_deref() == Some(own.fingerprint().as_str()) {
                return Some(own);
            }
        }
        let token = match self.eci.get(new_id).await {
            Ok(t) if t.value.is_some() => t,
            _ => self
                .eci
                .list_named(&rot.token_name)
                .await
                .ok()?
                .into_iter()
                .find(|t| t.id == new_id)?,
        };
        let v = token.value?;
        rot.new_fingerprint
            .as_deref()
            .is_none_or(|f| f == v.fingerprint())
            .then_some(v)
    }

    /// Close `name`'s open rotation. Its replacement is deleted when no destination holds it;
    /// when some do, the operator must finish the rotation instead, or `force` to close the
    /// journal and keep both tokens alive. Returns what was done.
    pub async fn abandon(&self, policy: &TokenPolicy, force: bool) -> Step<String> {
        let name = policy.name.as_str();
        let Some(rot) = self.load::<Rotation>(ROTATIONS, name)? else {
            return Err(format!("{name} has no open rotation"));
        };
        let closed = self.abandon_open(policy, rot, force).await?;
        // The failed runs were about the rotation now closed.
        if let Some(store) = &self.store {
            store.remove(FAILURES, name).map_err(|e| e.to_string())?;
        }
        Ok(closed)
    }

    async fn abandon_open(&self, policy: &TokenPolicy, rot: Rotation, force: bool) -> Step<String> {
        let name = policy.name.as_str();
        if matches!(rot.phase, Phase::Grace | Phase::Deleting) {
            return Err(format!(
                "every destination of {name} already holds replacement {}; only the old token's deletion is left \
                 (after a last check that each still holds it): run {} --rotate-now --token {name}, once what \
                 made the last run fail is fixed ({} --status shows it)",
                rot.new_id.as_deref().unwrap_or("?"),
                self.command,
                self.command
            ));
        }
        let store = self.store.as_ref().ok_or("no state folder")?;
        // Tokens the rotation's create attempts made but it never took as its replacement
        // (a create whose reply was lost or refused): no destination was ever given one.
        let named = self
            .eci
            .list_named(name)
            .await
            .map_err(|e| format!("listing tokens in ECI: {e}"))?;
        let held: Vec<String> = self.load(HELD, name)?.unwrap_or_default();
        let strays: Vec<Token> = attempt_tokens(&rot, &named, &held)
            .into_iter()
            .cloned()
            .collect();
        let Some(new_id) = rot.new_id.clone() else {
            let deleted = self.delete_strays(&rot, &strays).await?;
            store.remove(ROTATIONS, name).map_err(|e| e.to_string())?;
            return Ok(format!(
                "{name}: open rotation closed; no replacement had been taken; old token {} kept{deleted}",
                rot.old_id
            ));
        };
        let held = self.destinations_holding(policy, &rot, &new_id).await;
        if !held.is_empty() {
            if !force {
                return Err(format!(
                    "replacement {new_id} is held (or, its write unconfirmed, may be) by {}; deleting it could break \
                     whatever reads it there. Fix what makes the \
                     rotation fail and finish it with {cmd} --rotate-now --token {name}, or close it anyway with \
                     {cmd} --abandon {name} --force (both tokens stay alive)",
                    held.join(", "),
                    cmd = self.command
                ));
            }
            let deleted = self.delete_strays(&rot, &strays).await?;
            self.hold(name, &new_id)?;
            store.remove(ROTATIONS, name).map_err(|e| e.to_string())?;
            self.audit(Entry {
                token_id: Some(&new_id),
                old_id: Some(&rot.old_id),
                error: Some("closed with --abandon --force; the replacement is kept alive because destinations may hold it"),
                ..Entry::new(Action::Abandoned, name)
            });
            return Ok(format!(
                "{name}: open rotation closed; replacement {new_id} kept alive because destinations hold it; old token {} kept{deleted}",
                rot.old_id
            ));
        }
        let deleted = self.delete_strays(&rot, &strays).await?;
        self.eci
            .delete(&new_id)
            .await
            .map_err(|e| format!("deleting replacement {new_id}: {e}; the rotation stays open"))?;
        self.forget_minted(name, &new_id);
        store.remove(ROTATIONS, name).map_err(|e| e.to_string())?;
        self.audit(Entry {
            token_id: Some(&new_id),
            old_id: Some(&rot.old_id),
            ..Entry::new(Action::Abandoned, name)
        });
        Ok(format!(
            "{name}: open rotation closed; replacement {new_id} deleted; old token {} kept{deleted}",
            rot.old_id
        ))
    }

    /// Delete what failed create attempts of `rot` made (never given to a destination); returns
    /// the note for the operator.
    async fn delete_strays(&self, rot: &Rotation, strays: &[Token]) -> Step<String> {
        let name = rot.token_name.as_str();
        let mut deleted = Vec::new();
        for t in strays {
            self.eci.delete(&t.id).await.map_err(|e| {
                format!(
                    "deleting {}, which a create attempt of this rotation made: {e}; the rotation stays open",
                    t.id
                )
            })?;
            self.forget_minted(name, &t.id);
            self.audit(Entry {
                token_id: Some(&t.id),
                old_id: Some(&rot.old_id),
                ..Entry::new(Action::Abandoned, name)
            });
            deleted.push(t.id.clone());
        }
        Ok(if deleted.is_empty() {
            String::new()
        } else {
            format!(
                "; deleted {} (made by a create attempt whose reply was lost or refused)",
                deleted.join(", ")
            )
        })
    }

    /// The destinations of `rot` that hold, or may hold, replacement `new_id`. One whose write
    /// was accepted holds it. One whose write was sent but never accepted (an error reply, or
    /// none before a crash) is asked: Vault by comparing its value with the replacement's (read
    /// back from ECI), GitHub by the secret's `updated_at` against the attempt's time. Whatever
    /// cannot be asked counts as holding it: nothing is deleted on a guess.
    async fn destinations_holding(
        &self,
        policy: &TokenPolicy,
        rot: &Rotation,
        new_id: &str,
    ) -> Vec<String> {
        let mut value: Option<Result<Option<SecretValue>, crate::eci::EciError>> = None;
        let mut held = Vec::new();
        for dest in Destination::of(policy) {
            let key = dest.key(&self.default_mount);
            let Some(state) = rot.destinations.get(&key) else {
                continue;
            };
            if state.known_written() {
                held.push(key);
                continue;
            }
            let Some(since) = state.attempted_at else {
                continue;
            };
            let unknown = |why: String| Some(format!("{key} (could not check: {why})"));
            let entry = match &dest {
                Destination::Vault(v) => {
                    if value.is_none() {
                        value = Some(self.eci.get(new_id).await.map(|t| t.value));
                    }
                    match (value.as_ref(), self.vault()) {
                        (Some(Ok(Some(want))), Ok(vault)) => match vault.read_value(v).await {
                            Ok(have) => have.is_some_and(|h| h.same_as(want)).then(|| key.clone()),
                            Err(e) => unknown(e.message),
                        },
                        (Some(Ok(None)), _) => {
                            unknown("ECI does not return the replacement's value".into())
                        }
                        (Some(Err(e)), _) => {
                            unknown(format!("reading the replacement from ECI: {e}"))
                        }
                        (_, Err(e)) => unknown(e.message),
                        (None, _) => unknown("internal: no replacement value".into()),
                    }
                }
                Destination::Github(g) => match self.github() {
                    Ok(github) => match github
                        .maybe_written_since(g, since, state.attempted_remote, CLOCK_SKEW)
                        .await
                    {
                        Ok(Some(updated)) => Some(format!(
                            "{key} (GitHub shows it updated {}, and the write began {}{}; \
                             GitHub cannot tell which value it holds)",
                            updated.format("%Y-%m-%d %H:%M:%S UTC"),
                            state
                                .attempted_remote
                                .unwrap_or(since)
                                .format("%Y-%m-%d %H:%M:%S UTC"),
                            if state.attempted_remote.is_some() {
                                " by GitHub's clock"
                            } else {
                                ""
                            }
                        )),
                        Ok(None) => None,
                        Err(e) => unknown(e.message),
                    },
                    Err(e) => unknown(e.message),
                },
            };
            held.extend(entry);
        }
        // A destination the policy no longer lists but the journal still does.
        let listed = self.dest_keys(policy);
        for (key, state) in &rot.destinations {
            if state.may_hold() && !listed.contains(key) {
                held.push(format!("{key} (no longer in the policy)"));
            }
        }
        held
    }

    /// Replacements this program made that no rotation references (left by a rotation that
    /// started over or was abandoned). Each is reported, and deleted when the saved state
    /// records that this program created it, the state is intact (so it is known that no
    /// rotation pushed it since) and no Vault destination holds its value. A token that only
    /// carries the marker in its description is never deleted: it may be someone else's.
    async fn clean_orphans(
        &self,
        policy: &TokenPolicy,
        orphans: &[&Token],
        state_intact: bool,
        held: &[String],
        dry_run: bool,
        report: &mut TokenReport,
    ) {
        let minted = match &self.store {
            Some(store) => minted::load(store, &policy.name).unwrap_or_default(),
            None => Vec::new(),
        };
        for orphan in orphans {
            let id = &orphan.id;
            let Some(record) = minted.iter().find(|m| &m.id == id) else {
                report.warnings.push(format!(
                    "token {id} carries this program's marker in its description, but this state folder has no \
                     record of creating it: left alone (delete it by hand if nothing uses it)"
                ));
                continue;
            };
            let why_not = if dry_run {
                Some("dry run")
            } else if record.pushed {
                Some(
                    "it was written to a destination and no rotation of this token has completed since, so a \
                     destination may hold it; it is deleted after the next complete rotation",
                )
            } else if !state_intact {
                Some(
                    "no saved state proves that no destination holds it; delete it by hand once you know \
                     (it is deleted automatically after the next complete rotation of this token)",
                )
            } else if held.contains(id) {
                Some(
                    "destinations may still hold it (kept by --abandon --force, or unreadable while in use); \
                     it is deleted after the next complete rotation of this token",
                )
            } else {
                None
            };
            if let Some(why) = why_not {
                report.warnings.push(format!(
                    "orphan replacement {id} (made by this program, used by no rotation) left alone: {why}"
                ));
                continue;
            }
            match self.held_in_vault(policy, orphan).await {
                Ok(false) => {}
                Ok(true) => {
                    report.warnings.push(format!(
                        "orphan replacement {id} is still held by a Vault destination; left alone"
                    ));
                    continue;
                }
                Err(e) => {
                    report
                        .warnings
                        .push(format!("orphan replacement {id} left alone: {e}"));
                    continue;
                }
            }
            match self.eci.delete(id).await {
                Ok(_) => {
                    tracing::info!(token = %policy.name, orphan = %id, "deleted orphan replacement");
                    self.forget_minted(&policy.name, id);
                    self.audit(Entry {
                        token_id: Some(id),
                        ..Entry::new(Action::Deleted, &policy.name)
                    });
                    report
                        .steps
                        .push(format!("deleted orphan replacement {id}"));
                    report.warnings.push(format!(
                        "deleted orphan replacement {id} (made by this program, used by no rotation)"
                    ));
                }
                Err(e) => report
                    .warnings
                    .push(format!("orphan replacement {id}: deleting it failed: {e}")),
            }
        }
    }

    /// Whether any Vault destination of `policy` holds `token`'s value: a last check before an
    /// orphan the state records as unused is deleted (someone may have copied it there). A value
    /// ECI no longer returns cannot be compared; the state's record is then what counts.
    async fn held_in_vault(&self, policy: &TokenPolicy, token: &Token) -> Result<bool, String> {
        if policy.vault.is_empty() {
            return Ok(false);
        }
        let Some(value) = &token.value else {
            return Ok(false);
        };
        let vault = self.vault().map_err(|e| e.message)?;
        for dest in &policy.vault {
            let held = vault.read_value(dest).await.map_err(|e| e.message)?;
            if held.is_some_and(|h| h.same_as(value)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every destination kind the token writes to can be reached and authenticated now:
    /// otherwise no replacement is made (it could not be delivered).
    async fn destinations_ready(&self, policy: &TokenPolicy) -> Step<()> {
        if !policy.vault.is_empty() && self.vault.is_none() {
            let why = self
                .vault_error
                .as_deref()
                .unwrap_or("no [vault] section in the policy");
            return Err(format!(
                "{why}; no replacement was made, the old token is unchanged"
            ));
        }
        // Every destination is asked, so one run names every problem.
        let mut problems = Vec::new();
        // The GitHub credential once (a GitHub App exchanges it for an installation token).
        let github = match self.github() {
            Ok(github) if !policy.github.is_empty() => match github.ready().await {
                Ok(()) => Ok(github),
                Err(e) => {
                    problems.push(format!("GitHub: {e}"));
                    Err(None)
                }
            },
            Ok(github) => Ok(github),
            Err(e) => Err(Some(e)),
        };
        for dest in Destination::of(policy) {
            let key = dest.key(&self.default_mount);
            let ready = match &dest {
                Destination::Vault(v) => match self.vault() {
                    Ok(vault) => vault.preflight(v).await,
                    Err(e) => Err(e),
                },
                Destination::Github(g) => match &github {
                    Ok(github) => github.preflight(g).await,
                    Err(Some(e)) => Err(e.clone()),
                    Err(None) => continue,
                },
            };
            if let Err(e) = ready {
                problems.push(format!("{key}: {e}"));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{}; no replacement was made, the old token is unchanged",
            problems.join("; ")
        ))
    }

    /// Self-rotation: re-read the credential from where this program reads it at start, check it
    /// is the replacement and that it authenticates, and call with it from now on. Only then
    /// may the old one be deleted.
    async fn switch_own_credential(&self, rot: &Rotation) -> Step<()> {
        let Some(own) = &self.own_credential else {
            return Ok(());
        };
        let vault = self.vault().map_err(|e| e.message)?;
        let value = vault
            .read_value(&own.source)
            .await
            .map_err(|e| format!("re-reading this program's own ECI credential: {e}"))?
            .ok_or("this program's own ECI credential is missing from Vault; old token kept")?;
        if rot.new_fingerprint.as_deref() != Some(value.fingerprint().as_str()) {
            return Err(
                "this program's own ECI credential in Vault is not the replacement; old token kept"
                    .into(),
            );
        }
        self.eci
            .with_token(value.clone())
            .whoami()
            .await
            .map_err(|e| {
                format!("the replacement credential does not authenticate: {e}; old token kept")
            })?;
        self.eci.switch_token(value);
        tracing::info!(token = %rot.token_name, "now calling ECI with the rotated credential");
        Ok(())
    }

    /// The replacement's value, read back from ECI. `None` when the replacement is gone or its
    /// value cannot be read: then it is deleted (if it exists) and the rotation starts over.
    async fn read_back(
        &self,
        rot: &mut Rotation,
        report: &mut TokenReport,
    ) -> Step<Option<SecretValue>> {
        let Some(new_id) = rot.new_id.clone() else {
            rot.start_over();
            self.save(rot)?;
            return Ok(None);
        };
        if self.is_own(&rot.token_name) {
            let own = self.eci.token();
            if rot.new_fingerprint.as_deref() == Some(own.fingerprint().as_str()) {
                report.steps.push(format!(
                    "resumed with replacement {new_id} (the credential in use)"
                ));
                return Ok(Some(own));
            }
        }
        let fetched = match self.eci.get(&new_id).await {
            // One read of a token may omit its value where the listing shows it: ask that too
            // before giving the replacement up.
            Ok(Token { value: None, .. }) => match self.eci.list_named(&rot.token_name).await {
                Ok(named) => named
                    .into_iter()
                    .find(|t| t.id == new_id)
                    .ok_or(crate::eci::EciError::NotFound),
                Err(e) => Err(e),
            },
            other => other,
        };
        match fetched {
            Ok(Token { value: Some(v), .. })
                if rot
                    .new_fingerprint
                    .as_deref()
                    .is_none_or(|f| f == v.fingerprint()) =>
            {
                report
                    .steps
                    .push(format!("resumed with replacement {new_id}"));
                Ok(Some(v))
            }
            Ok(_)
                if rot.any_destination_written()
                    && !self
                        .load::<Vec<String>>(HELD, &rot.token_name)?
                        .unwrap_or_default()
                        .is_empty() =>
            {
                // One replacement was already given up this way: another would only repeat it,
                // one new token per run.
                Err(format!(
                    "replacement {new_id}'s value cannot be read back from ECI, and a replacement given up the \
                     same way is still kept alive: not minting another. The old token {} stays valid; make ECI \
                     return token values again, or close the rotation with --abandon {} --force",
                    rot.old_id, rot.token_name
                ))
            }
            Ok(_) if rot.any_destination_written() => {
                // Some destination holds it: it must stay alive. Start over with a new one,
                // which every destination gets; this one is deleted as an orphan once a
                // rotation has completed.
                report.warnings.push(format!(
                    "replacement {new_id}'s value cannot be read back from ECI and a destination already holds it: \
                     keeping it alive and starting over with a new replacement"
                ));
                self.hold(&rot.token_name, &new_id)?;
                rot.start_over();
                self.save(rot)?;
                Ok(None)
            }
            Ok(_) => {
                report.warnings.push(format!(
                    "replacement {new_id}'s value cannot be read back from ECI; deleting it (no destination holds it) and starting over"
                ));
                self.eci
                    .delete(&new_id)
                    .await
                    .map_err(|e| format!("deleting unreadable replacement {new_id}: {e}"))?;
                self.forget_minted(&rot.token_name, &new_id);
                rot.start_over();
                self.save(rot)?;
                Ok(None)
            }
            Err(crate::eci::EciError::NotFound) => {
                report.warnings.push(format!(
                    "replacement {new_id} no longer exists in ECI; starting over"
                ));
                rot.start_over();
                self.save(rot)?;
                Ok(None)
            }
            Err(e) => Err(format!("reading replacement {new_id} back from ECI: {e}")),
        }
    }

    /// An unused replacement this program made that `rot` would take instead of creating one.
    fn unused_replacement(
        &self,
        policy: &TokenPolicy,
        rot: &Rotation,
        named: &[Token],
        held: &[String],
    ) -> Step<Option<Token>> {
        let record: Option<TokenRecord> = self.load(TOKENS, &policy.name)?;
        let minted = self.minted_ids(&policy.name)?;
        let trusted = Trusted {
            // A rotation whose own creates failed is this state folder's: what they made is
            // known from them, so the marker alone is not trusted.
            no_record: record.is_none()
                && rot.earlier_attempts.is_empty()
                && rot.create_attempt.is_none(),
            minted: &minted,
        };
        Ok(adoptable(policy, rot, named, held, &trusted, Utc::now()))
    }

    /// Make sure exactly one replacement exists: adopt the one an earlier, interrupted attempt
    /// made, else create one. Returns its value.
    async fn create_replacement(
        &self,
        policy: &TokenPolicy,
        rot: &mut Rotation,
        report: &mut TokenReport,
    ) -> Step<SecretValue> {
        if rot.phase == Phase::Creating
            && let Some(attempt) = rot.create_attempt.clone()
        {
            if let Some(found) = self.find_replacement(rot, &attempt).await? {
                return self.adopt(
                    rot,
                    found,
                    report,
                    "found the replacement an interrupted run created",
                    Action::Created,
                );
            }
            // Not there (yet): remembered, so that a token it makes late is still found.
            rot.phase = Phase::Planned;
            rot.create_attempt = None;
            rot.earlier_attempts.push(attempt);
            self.save(rot)?;
        }
        // Every destination can take the value before one is made (cheap when the run's
        // planning already proved it: the answers are kept for the run).
        self.destinations_ready(policy).await?;
        let named = self
            .eci
            .list_named(&policy.name)
            .await
            .map_err(|e| format!("listing tokens in ECI before creating: {e}"))?;
        let held: Vec<String> = self.load(HELD, &policy.name)?.unwrap_or_default();
        // A create ECI answered with an error may have happened: its token is this rotation's.
        if let Some(found) = attempt_tokens(rot, &named, &held)
            .into_iter()
            .filter(|t| t.value.is_some())
            .max_by_key(|t| t.created)
        {
            return self.adopt(
                rot,
                found.clone(),
                report,
                "a create ECI had refused did happen; took its replacement",
                Action::Created,
            );
        }
        if let Some(found) = self.unused_replacement(policy, rot, &named, &held)? {
            // An unused replacement this program made (its journal lost or set aside, or the
            // whole state folder gone) is taken rather than minting another beside it.
            return self.adopt(
                rot,
                found,
                report,
                "took the unused replacement an earlier run made",
                Action::Adopted,
            );
        }
        let new_expires = policy.lifetime.expires_at(Utc::now());
        if new_expires <= Utc::now() {
            return Err(format!(
                "lifetime gives an expiry in the past ({})",
                report::when(new_expires)
            ));
        }
        let description = description_of(policy);
        let attempt = CreateAttempt {
            at: Utc::now(),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            known_ids: Some(named.iter().map(|t| t.id.clone()).collect()),
            description: Some(description.clone()),
            expires: Some(new_expires),
        };
        rot.phase = Phase::Creating;
        rot.create_attempt = Some(attempt.clone());
        self.save(rot)?;
        match self
            .eci
            .create(
                &policy.name,
                &description,
                new_expires,
                &attempt.idempotency_key,
            )
            .await
        {
            Ok(token) => self.adopt(rot, token, report, "created replacement", Action::Created),
            Err(e) if e.outcome_unknown() => {
                // The create may have happened although its reply was lost: look before anything else.
                match self.find_replacement(rot, &attempt).await {
                    Ok(Some(found)) => self.adopt(
                        rot,
                        found,
                        report,
                        "create reply was lost; found the replacement",
                        Action::Created,
                    ),
                    Ok(None) => {
                        // It may still land: remembered, so the next attempt looks for it first.
                        rot.phase = Phase::Planned;
                        if let Some(lost) = rot.create_attempt.take() {
                            rot.earlier_attempts.push(lost);
                        }
                        self.save(rot)?;
                        Err(format!(
                            "creating the replacement: {e}; ECI shows no replacement, the next run tries again"
                        ))
                    }
                    Err(look) => Err(format!(
                        "creating the replacement: {e}; and looking for it failed ({look}); the next run looks again before creating"
                    )),
                }
            }
            Err(e) => {
                rot.phase = Phase::Planned;
                if let Some(refused) = rot.create_attempt.take() {
                    rot.earlier_attempts.push(refused);
                }
                self.save(rot)?;
                Err(format!(
                    "creating the replacement: {e}; ECI refused it (a token it made anyway is taken by the \
                     next run, not made again), the old token is unchanged. Fix the cause, then {cmd} --rotate-now --token {name} (or the daemon's next pass) \
                     tries again; {cmd} --abandon {name} closes the open rotation instead",
                    cmd = self.command,
                    name = policy.name
                ))
            }
        }
    }

    /// The token `attempt` made, if it did: one of this name carrying this product's marker,
    /// other than the old one, that did not exist before the attempt (or, for a journal that did
    /// not record which existed, created at or after it).
    async fn find_replacement(
        &self,
        rot: &Rotation,
        attempt: &CreateAttempt,
    ) -> Step<Option<Token>> {
        let named = self
            .eci
            .list_named(&rot.token_name)
            .await
            .map_err(|e| format!("looking for the replacement in ECI: {e}"))?;
        let mut ours: Vec<Token> = named
            .into_iter()
            .filter(|t| t.id != rot.old_id && t.description.contains(MARKER))
            .filter(|t| made_by(attempt, t))
            .collect();
        ours.sort_by_key(|t| t.created);
        Ok(ours.pop())
    }

    fn adopt(
        &self,
        rot: &mut Rotation,
        mut token: Token,
        report: &mut TokenReport,
        what: &str,
        action: Action,
    ) -> Step<SecretValue> {
        let value = match token.value.take() {
            Some(v) => v,
            None => {
                return Err(format!(
                    "replacement {id} came without a readable value (ECI does not show it), so no \
                     destination can be given it and none was; the old token is unchanged. \
                     {cmd} --abandon {name} deletes {id} and closes the rotation; the next run then starts over",
                    id = token.id,
                    cmd = self.command,
                    name = rot.token_name
                ));
            }
        };
        if action == Action::Created {
            self.minted(&rot.token_name, |l| minted::created(l, &token.id))?;
        }
        rot.phase = Phase::Created;
        rot.new_id = Some(token.id.clone());
        rot.new_expires = token.expires;
        rot.new_fingerprint = Some(value.fingerprint());
        self.save(rot)?;
        let fp = value.fingerprint();
        self.audit(Entry {
            token_id: Some(&token.id),
            old_id: Some(&rot.old_id),
            fingerprint: Some(&fp),
            expires: token.expires,
            ..Entry::new(action, &rot.token_name)
        });
        tracing::info!(token = %rot.token_name, new = %token.id, "{what}");
        report.steps.push(format!("{what} {}", token.id));
        Ok(value)
    }

    /// Prove the replacement authenticates, then write and check every destination not yet
    /// verified. One failing destination never stops the others.
    async fn sync_destinations(
        &self,
        policy: &TokenPolicy,
        rot: &mut Rotation,
        value: &SecretValue,
        report: &mut TokenReport,
    ) -> Step<()> {
        let new_id = rot.new_id.clone().unwrap_or_default();
        // Known from here on, also when a destination fails below.
        report.new_id = rot.new_id.clone();
        report.new_expires = rot.new_expires;
        self.eci
            .with_token(value.clone())
            .whoami()
            .await
            .map_err(|e| {
                let why = match &e {
                    // The message of a 401 blames the calling credential: here it is the new one.
                    EciError::Unauthenticated { code, message } => format!(
                        "ECI rejected it (401 {code}): {message}; this is the new token, not the [eci] token"
                    ),
                    other => other.to_string(),
                };
                format!("the replacement {new_id} does not authenticate at ECI: {why}; old token kept")
            })?;
        let meta = WriteMeta {
            token_name: policy.name.clone(),
            token_id: new_id.clone(),
            expires: rot.new_expires,
        };
        // Saved before any write: from here a destination may hold it.
        self.minted(&policy.name, |l| minted::pushed(l, &new_id))?;
        for dest in Destination::of(policy) {
            let key = dest.key(&self.default_mount);
            let state = rot
                .destinations
                .get(&key)
                .cloned()
                .unwrap_or_else(DestState::pending);
            if state.status == DestStatus::Verified {
                report
                    .destinations
                    .push(DestReport::from_state(&key, &state));
                continue;
            }
            let result = self.sync_one(&dest, value, &meta, rot, &key, &state).await;
            let entry = rot
                .destinations
                .entry(key.clone())
                .or_insert_with(DestState::pending);
            entry.at = Some(Utc::now());
            let fp = value.fingerprint();
            let audit = Entry {
                token_id: Some(&new_id),
                destination: Some(&key),
                fingerprint: Some(&fp),
                ..Entry::new(Action::Verified, &policy.name)
            };
            match result {
                Ok(()) => {
                    entry.status = DestStatus::Verified;
                    entry.last_error = None;
                    self.audit(audit);
                }
                Err(e) => {
                    self.audit(Entry {
                        action: Action::Failed,
                        error: Some(&e.message),
                        ..audit
                    });
                    tracing::warn!(token = %policy.name, destination = %key, error = %e, "destination failed");
                    entry.status = DestStatus::Failed;
                    entry.last_error = Some(e.message.clone());
                    entry.failures += 1;
                }
            }
            let snapshot = entry.clone();
            self.save(rot)?;
            report
                .destinations
                .push(DestReport::from_state(&key, &snapshot));
        }
        let failed: Vec<String> = rot
            .destinations
            .iter()
            .filter(|(_, d)| !d.removed && d.status != DestStatus::Verified)
            .map(|(k, d)| format!("{k}: {}", d.last_error.as_deref().unwrap_or("not written")))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            // Once the old token has expired, "stays alive" would not be true: say what is.
            let old = match rot.old_expires {
                Some(e) if e <= Utc::now() => format!(
                    "the old token {} has expired ({}): those destinations hold a dead token until this is fixed",
                    rot.old_id,
                    report::when(e)
                ),
                _ => format!("the old token {} stays alive", rot.old_id),
            };
            Err(format!(
                "{} of {} destination(s) failed ({}); {old}. Fix the cause, then {cmd} \
                 --rotate-now --token {name} (or the daemon's next pass) finishes with replacement {new_id}",
                failed.len(),
                rot.destinations.values().filter(|d| !d.removed).count(),
                failed
                    .iter()
                    .map(|f| f.split(": ").next().unwrap_or(f))
                    .collect::<Vec<_>>()
                    .join(", "),
                cmd = self.command,
                name = policy.name,
            ))
        }
    }

    /// Push to one destination (unless an earlier push can be verified) and verify.
    async fn sync_one(
        &self,
        dest: &Destination,
        value: &SecretValue,
        meta: &WriteMeta,
        rot: &mut Rotation,
        key: &str,
        state: &DestState,
    ) -> Result<(), DestError> {
        if state.status == DestStatus::Pushed
            && let Some(receipt) = &state.receipt
            && let Ok(seen) = self.verify(dest, value, receipt).await
        {
            Self::note_verified(rot, key, seen);
            return Ok(());
        }
        if let Some(entry) = rot.destinations.get_mut(key)
            && entry.attempted_at.is_none()
        {
            entry.attempted_at = Some(Utc::now());
            entry.attempted_remote = match dest {
                Destination::Github(_) => self.github.as_ref().and_then(|g| g.server_now()),
                Destination::Vault(_) => None,
            };
            self.save(rot).map_err(DestError::fatal)?;
        }
        let receipt = match dest {
            Destination::Vault(v) => self.vault()?.push(v, value, meta).await?,
            Destination::Github(g) => self.github()?.push(g, value).await?,
        };
        if let Some(entry) = rot.destinations.get_mut(key) {
            entry.status = DestStatus::Pushed;
            entry.receipt = Some(receipt.clone());
            entry.at = Some(Utc::now());
        }
        self.save(rot).map_err(DestError::fatal)?;
        let fp = value.fingerprint();
        self.audit(Entry {
            token_id: rot.new_id.as_deref(),
            destination: Some(key),
            fingerprint: Some(&fp),
            ..Entry::new(Action::Pushed, &rot.token_name)
        });
        let seen = self.verify(dest, value, &receipt).await?;
        Self::note_verified(rot, key, seen);
        Ok(())
    }

    /// Keep GitHub's `updated_at` as verified, to tell later whether someone wrote since.
    fn note_verified(rot: &mut Rotation, key: &str, seen: Option<DateTime<Utc>>) {
        if let Some(entry) = rot.destinations.get_mut(key)
            && let Some(receipt) = entry.receipt.as_mut()
        {
            receipt.verified_updated_at = seen;
        }
    }

    /// Verify a write; for GitHub, the secret's `updated_at` seen.
    async fn verify(
        &self,
        dest: &Destination,
        value: &SecretValue,
        receipt: &crate::destination::Receipt,
    ) -> Result<Option<DateTime<Utc>>, DestError> {
        match dest {
            Destination::Vault(v) => self.vault()?.verify(v, value, receipt).await.map(|()| None),
            Destination::Github(g) => self.github()?.verify(g, receipt).await.map(Some),
        }
    }

    fn vault(&self) -> Result<&Vault, DestError> {
        self.vault.as_deref().ok_or_else(|| {
            DestError::fatal(
                self.vault_error
                    .as_deref()
                    .unwrap_or("no [vault] section in the policy"),
            )
        })
    }

    fn github(&self) -> Result<&Github, DestError> {
        self.github
            .as_deref()
            .ok_or_else(|| DestError::fatal("no [github] section in the policy"))
    }

    fn dest_keys(&self, policy: &TokenPolicy) -> Vec<String> {
        Destination::of(policy)
            .iter()
            .map(|d| d.key(&self.default_mount))
            .collect()
    }

    /// Record the finished rotation and close its journal entry.
    fn finish(&self, rot: &Rotation) -> Step<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let record = TokenRecord {
            token_name: rot.token_name.clone(),
            current_id: rot.new_id.clone().unwrap_or_default(),
            expires: rot.new_expires,
            last_rotated: Utc::now(),
            previous_id: rot.old_id.clone(),
            destinations: rot.destinations.clone(),
            failed_attempts: rot.earlier_attempts.clone(),
        };
        store
            .save(TOKENS, &rot.token_name, &record)
            .map_err(|e| e.to_string())?;
        // Every destination holds the new token: none can need an older replacement.
        let current = record.current_id.clone();
        self.minted(&rot.token_name, |l| minted::superseded(l, &current))?;
        store
            .remove(HELD, &rot.token_name)
            .map_err(|e| e.to_string())?;
        store
            .remove(ROTATIONS, &rot.token_name)
            .map_err(|e| e.to_string())
    }

    /// Change `name`'s record of created replacements (see [`minted`]).
    fn minted(&self, name: &str, change: impl FnOnce(&mut Vec<minted::Minted>)) -> Step<()> {
        match &self.store {
            Some(store) => minted::update(store, name, change).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn minted_ids(&self, name: &str) -> Step<Vec<String>> {
        match &self.store {
            Some(store) => Ok(minted::load(store, name)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|m| m.id)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Forget a created token that is gone (a failure to save only costs a report later).
    fn forget_minted(&self, name: &str, id: &str) {
        if let Err(e) = self.minted(name, |l| minted::gone(l, id)) {
            tracing::warn!(error = %e, "cannot update the record of created tokens");
        }
    }

    /// Remember that `id` may still be held by a destination (see [`HELD`]).
    fn hold(&self, name: &str, id: &str) -> Step<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut held: Vec<String> = store
            .load(HELD, name)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if !held.iter().any(|h| h == id) {
            held.push(id.to_string());
        }
        store.save(HELD, name, &held).map_err(|e| e.to_string())
    }

    fn audit(&self, entry: Entry<'_>) {
        if let Some(store) = &self.store {
            audit::record(store, &entry);
        }
    }

    fn load<T: serde::de::DeserializeOwned>(&self, sub: &str, name: &str) -> Step<Option<T>> {
        match &self.store {
            Some(s) => s.load(sub, name).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn save(&self, rot: &Rotation) -> Step<()> {
        let mut rot = rot.clone();
        rot.updated = Utc::now();
        match &self.store {
            Some(s) => s
                .save(ROTATIONS, &rot.token_name, &rot)
                .map_err(|e| e.to_string()),
            None => Err("no state folder: cannot record a rotation".into()),
        }
    }
}

/// Open rotations of tokens the policy no longer lists (its `[[token]]` was removed while a
/// rotation was open): each has a live replacement beside a live old token, and destinations
/// that may hold either. One line per rotation for the operator.
pub fn unlisted_open_rotations(
    store: &crate::state::Store,
    policy: &crate::policy::Policy,
) -> Vec<String> {
    let listed: Vec<std::path::PathBuf> = policy
        .tokens
        .iter()
        .map(|t| store.file_for(ROTATIONS, &t.name))
        .collect();
    let each: Vec<crate::state::Loaded<Rotation>> = match store.load_each(ROTATIONS) {
        Ok(each) => each,
        Err(e) => return vec![e.to_string()],
    };
    let mut open = Vec::new();
    let mut out = Vec::new();
    for (path, loaded) in each {
        match loaded {
            Ok(r) => open.push(r),
            // A listed token's own journal is reported with that token.
            Err(_) if listed.contains(&path) => {}
            Err(e) => out.push(format!(
                "{e} (it may be the open rotation of a token the policy no longer lists)"
            )),
        }
    }
    let unlisted = open
        .into_iter()
        .filter(|r| !policy.tokens.iter().any(|t| t.name == r.token_name))
        .map(|r| {
            format!(
                "{} has an open rotation (phase {}, since {}; old token {}{}) but the policy no longer lists it: \
                 nothing is done about it. Put its [[token]] back to finish it (or then --abandon it)",
                r.token_name,
                r.phase.as_str(),
                report::when(r.started),
                r.old_id,
                r.new_id
                    .as_ref()
                    .map(|n| format!(", replacement {n} alive"))
                    .unwrap_or_default(),
            )
        });
    out.extend(unlisted);
    out
}

/// The ids of `named` that create attempts of the open rotation `rot` may have made (what the
/// next run takes as its replacement, or `--abandon` deletes).
pub fn attempt_token_ids(rot: &Rotation, named: &[Token], held: &[String]) -> Vec<String> {
    attempt_tokens(rot, named, held)
        .into_iter()
        .map(|t| t.id.clone())
        .collect()
}

/// The ids of `named` that failed creates of the finished rotation `record` made late (the
/// next run deletes them: no destination was given one).
pub fn late_token_ids(record: &TokenRecord, named: &[Token], held: &[String]) -> Vec<String> {
    let candidates: Vec<&Token> = named
        .iter()
        .filter(|t| t.id != record.current_id && !held.contains(&t.id))
        .filter(|t| t.description.contains(MARKER))
        .collect();
    unique_matches(record.failed_attempts.iter(), &candidates)
        .into_iter()
        .map(|t| t.id.clone())
        .collect()
}

/// How long after a failed create its token may still appear (a gateway that gave up while
/// ECI went on) and be taken for that create's: anything later is someone else's.
const LATE_CREATE: chrono::Duration = chrono::Duration::minutes(30);

/// The tokens of `named` that the rotation's failed create attempts made (a reply that was an
/// error or never came), other than the old token and its replacement: of this name, carrying
/// the marker, new since the attempt's listing, and created within [`LATE_CREATE`] of it. A
/// create whose reply gave the replacement is not one of them: a token that appears later is
/// not its.
fn attempt_tokens<'a>(rot: &Rotation, named: &'a [Token], held: &[String]) -> Vec<&'a Token> {
    let in_flight = (rot.phase == Phase::Creating)
        .then_some(rot.create_attempt.as_ref())
        .flatten();
    let candidates: Vec<&Token> = named
        .iter()
        .filter(|t| t.id != rot.old_id && Some(&t.id) != rot.new_id.as_ref())
        .filter(|t| !held.contains(&t.id))
        .filter(|t| t.description.contains(MARKER))
        .collect();
    unique_matches(
        in_flight.into_iter().chain(rot.earlier_attempts.iter()),
        &candidates,
    )
}

/// The candidates that are the only match of some attempt: one create makes one token, so
/// when two fit an attempt, one of them is someone else's, and neither is taken for its.
fn unique_matches<'a, 'b>(
    attempts: impl Iterator<Item = &'b CreateAttempt>,
    candidates: &[&'a Token],
) -> Vec<&'a Token> {
    let mut out: Vec<&'a Token> = Vec::new();
    for a in attempts {
        let fits: Vec<&&Token> = candidates.iter().filter(|t| late_made_by(a, t)).collect();
        if let [only] = fits.as_slice()
            && !out.iter().any(|t| t.id == only.id)
        {
            out.push(only);
        }
    }
    out
}

/// Whether `token` may be what the failed create `attempt` made: new since its listing, with
/// the description and expiry it asked for (for a journal that did not record its listing:
/// created within [`LATE_CREATE`] of it).
fn late_made_by(attempt: &CreateAttempt, token: &Token) -> bool {
    if !made_by(attempt, token) {
        return false;
    }
    // Missing from the attempt's own listing, it is newer than the attempt whatever the clocks
    // say, and the description and expiry it asked for (which `made_by` matched) tie it to
    // that attempt: no time window, which would judge ECI's `created` by this host's clock or
    // by a `Date` a gateway may have set.
    if attempt.known_ids.is_some() {
        return true;
    }
    let at = attempt.at;
    token
        .created
        .is_some_and(|c| c >= at - CLOCK_SKEW && c <= at + CLOCK_SKEW + LATE_CREATE)
}

fn made_by(attempt: &CreateAttempt, token: &Token) -> bool {
    let new = match &attempt.known_ids {
        Some(known) => !known.contains(&token.id),
        None => token.created.is_none_or(|c| c >= attempt.at - CLOCK_SKEW),
    };
    // What the create asked for (journals from before these were recorded: not checked).
    let described = attempt
        .description
        .as_ref()
        .is_none_or(|d| token.description.trim() == d.trim());
    let expiring = attempt.expires.is_none_or(|want| {
        token
            .expires
            .is_some_and(|e| (e - want).abs() <= REQUESTED_EXPIRY_SLACK)
    });
    new && described && expiring
}

/// How far a token's expiry may be from the one its create asked for (a server rounding it,
/// or computing it when the create is served late) and still be that create's.
const REQUESTED_EXPIRY_SLACK: chrono::Duration = chrono::Duration::minutes(35);

/// Which marked tokens may be taken as this program's own.
struct Trusted<'a> {
    /// No saved record of the token (a first run, or a lost state folder): the marker is all
    /// there is to go by.
    no_record: bool,
    /// Else only those the state folder recorded creating.
    minted: &'a [String],
}

impl Trusted<'_> {
    fn ours(&self, policy: &TokenPolicy, t: &Token) -> bool {
        if self.minted.contains(&t.id) {
            return t.description.contains(MARKER);
        }
        // Without a record, the marker alone is not enough: the token must look like what
        // this policy's rotation makes (its description, and a lifetime of the policy's).
        self.no_record && looks_made_by(policy, t)
    }
}

/// `t` carries exactly the description this policy's rotations give, and lives the policy's
/// lifetime (to within a day).
fn looks_made_by(policy: &TokenPolicy, t: &Token) -> bool {
    let lifetime_fits = match (t.created, t.expires) {
        (Some(created), Some(expires)) => {
            (expires - policy.lifetime.expires_at(created)).abs() <= chrono::Duration::days(1)
        }
        _ => false,
    };
    t.description.trim() == description_of(policy).trim() && lifetime_fits
}

/// An existing replacement a new one would be minted beside: of this name, this program's own
/// (see [`Trusted`]), not the old token, not one set aside (`held`: kept by `--abandon --force`
/// or kept alive because its value could not be read back), its value readable and not itself
/// due (so a fresh one could not do better). The newest such token.
fn adoptable(
    policy: &TokenPolicy,
    rot: &Rotation,
    named: &[Token],
    held: &[String],
    trusted: &Trusted<'_>,
    now: DateTime<Utc>,
) -> Option<Token> {
    let fresh_until = now + plan::chrono_dur(policy.rotate_before);
    named
        .iter()
        .filter(|t| t.id != rot.old_id && trusted.ours(policy, t))
        .filter(|t| !held.contains(&t.id))
        .filter(|t| t.value.is_some())
        .filter(|t| t.expires.is_some_and(|e| e > fresh_until))
        .max_by_key(|t| t.created)
        .cloned()
}

/// The policy's description, with this product's marker so the token is recognised as ours.
pub fn description_of(policy: &TokenPolicy) -> String {
    if policy.description.contains(MARKER) {
        policy.description.clone()
    } else if policy.description.is_empty() {
        MARKER.to_string()
    } else {
        format!("{} {MARKER}", policy.description)
    }
}

/// A run can be spawned on a multi-threaded runtime: its future is `Send`.
#[cfg(test)]
#[allow(dead_code)]
fn run_is_send(engine: &Engine, tokens: &[TokenPolicy]) {
    fn send<T: Send>(_: T) {}
    send(engine.run(tokens, &Options::default()));
}
