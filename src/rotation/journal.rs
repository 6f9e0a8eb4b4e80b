//! The rotation journal: one record per open rotation, saved before each step acts. No values.

use crate::destination::Receipt;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const JOURNAL_VERSION: u32 = 1;

/// Where a rotation stands. Each phase is saved before the step it names is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Decided; no create request is out.
    Planned,
    /// A create request is (or may have been) sent; its reply was not yet recorded.
    Creating,
    /// The replacement exists (`new_id`); destinations are being written and checked.
    Created,
    /// Every destination holds the new value; the old token lives until `grace_until`.
    Grace,
    /// The old token's deletion is under way.
    Deleting,
}

impl Phase {
    /// The name `--status` and the JSON use: `planned`, `creating`, `created`, `grace`, `deleting`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::Creating => "creating",
            Phase::Created => "created",
            Phase::Grace => "grace",
            Phase::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestStatus {
    Pending,
    Pushed,
    Verified,
    Failed,
}

/// One destination's progress within a rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestState {
    pub status: DestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failures: u32,
    /// When the first write of the current replacement was started (saved before it is sent):
    /// whether it landed is unknown until it is verified, so until then the destination may
    /// hold the replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<DateTime<Utc>>,
    /// The same instant on the destination's own clock, when it tells (GitHub's `Date`): what
    /// its `updated_at` is compared with, whatever this host's clock did since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_remote: Option<DateTime<Utc>>,
    /// No longer in the policy: kept so that what it may hold is still known (it never blocks
    /// the rotation, and counts as holding whatever was written to it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl DestState {
    pub fn pending() -> Self {
        Self {
            status: DestStatus::Pending,
            receipt: None,
            last_error: None,
            at: None,
            failures: 0,
            attempted_at: None,
            attempted_remote: None,
            removed: false,
        }
    }

    /// This destination may hold the current replacement: a write of it was sent (whatever
    /// the reply said, or if none came), so deleting the replacement could break it.
    pub fn may_hold(&self) -> bool {
        self.attempted_at.is_some() || self.known_written()
    }

    /// A write of the current replacement is known to have landed (a server accepted it).
    pub fn known_written(&self) -> bool {
        matches!(self.status, DestStatus::Pushed | DestStatus::Verified) || self.receipt.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAttempt {
    pub at: DateTime<Utc>,
    pub idempotency_key: String,
    /// Ids of the tokens of that name that existed before the create was sent: any other one
    /// carrying this program's marker is the create's, whatever the clocks say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_ids: Option<Vec<String>>,
    /// The description and expiry the create asked for: a token made by it carries exactly
    /// these (another's token of the same name, even with the marker, does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

/// The saved state of one token's rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub version: u32,
    pub token_name: String,
    pub old_id: String,
    pub old_expires: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_attempt: Option<CreateAttempt>,
    /// Earlier create attempts of this rotation that failed (an error reply, or no reply and no
    /// token found yet): a create can happen although its reply says it failed, or land after
    /// it was looked for, so their tokens are looked for before the next create, and deleted
    /// by `--abandon`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<CreateAttempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_expires: Option<DateTime<Utc>>,
    /// Fingerprint (not the value) of the replacement, to recognise it when read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_fingerprint: Option<String>,
    pub destinations: BTreeMap<String, DestState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<DateTime<Utc>>,
    pub updated: DateTime<Utc>,
}

impl Rotation {
    pub fn new(
        token_name: &str,
        old_id: &str,
        old_expires: Option<DateTime<Utc>>,
        destinations: impl IntoIterator<Item = String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            version: JOURNAL_VERSION,
            token_name: token_name.to_string(),
            old_id: old_id.to_string(),
            old_expires,
            started: now,
            phase: Phase::Planned,
            create_attempt: None,
            earlier_attempts: Vec::new(),
            new_id: None,
            new_expires: None,
            new_fingerprint: None,
            destinations: destinations
                .into_iter()
                .map(|k| (k, DestState::pending()))
                .collect(),
            grace_until: None,
            updated: now,
        }
    }

    /// Forget the replacement (it is gone or unusable): back to Planned, every destination pending.
    pub fn start_over(&mut self) {
        self.phase = Phase::Planned;
        self.create_attempt = None;
        // Their token was the replacement given up (kept or deleted): not to be found again.
        self.earlier_attempts.clear();
        self.new_id = None;
        self.new_expires = None;
        self.new_fingerprint = None;
        self.grace_until = None;
        // The replacement given up is kept alive (see the rotation's `HELD`): what a removed
        // destination may hold of it no longer needs tracking here.
        self.destinations.retain(|_, d| !d.removed);
        for d in self.destinations.values_mut() {
            *d = DestState::pending();
        }
    }

    /// Every destination still in the policy holds the replacement.
    pub fn all_verified(&self) -> bool {
        self.destinations
            .values()
            .filter(|d| !d.removed)
            .all(|d| d.status == DestStatus::Verified)
    }

    /// Whether any destination may hold the replacement's value.
    pub fn any_destination_written(&self) -> bool {
        self.destinations.values().any(DestState::may_hold)
    }
}

/// What remains of a finished rotation, for status and for choosing the current token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token_name: String,
    pub current_id: String,
    pub expires: Option<DateTime<Utc>>,
    pub last_rotated: DateTime<Utc>,
    pub previous_id: String,
    /// Each destination's last result (all verified when the rotation finished).
    #[serde(default)]
    pub destinations: BTreeMap<String, DestState>,
    /// The finished rotation's failed create attempts: a token one of them makes after the
    /// rotation finished (a create ECI completed late) is still known as this program's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<CreateAttempt>,
}

/// A token's last run that failed, kept until a run of it goes well (for `--status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFailure {
    pub at: DateTime<Utc>,
    pub error: String,
    /// The failed run was a forced one (`--force`): retrying needs it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}
