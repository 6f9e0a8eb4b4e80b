//! The notification event: the versioned document webhooks receive and every channel renders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `schema` value of every event this version sends (see docs/notifications.md).
pub const SCHEMA: &str = "eci-secret-sync.notification/v1";

/// What happened. The names are the `[[notify.channel]] events` filter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Expiring,
    Rotated,
    RotationFailed,
    Recovered,
    Expired,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Expiring => "expiring",
            EventKind::Rotated => "rotated",
            EventKind::RotationFailed => "rotation_failed",
            EventKind::Recovered => "recovered",
            EventKind::Expired => "expired",
        }
    }
}

/// One notification. Names, ids, times, owners, roles, destinations and errors; never a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema: String,
    /// Unique per event; a receiver that sees it twice (at-least-once delivery) drops the copy.
    pub id: String,
    pub event: EventKind,
    pub occurred_at: DateTime<Utc>,
    /// One line for people, e.g. `ci-deploy expires in 6d 23h`.
    pub summary: String,
    pub token: TokenInfo,
    /// The expiry threshold that was crossed (`expiring`, and `rotation_failed` at a threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// `rotated`, `rotation_failed` and `recovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationInfo>,
}

/// The token the event is about (for `rotated`: the new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub id: Option<String>,
    pub expires: Option<DateTime<Utc>>,
    /// `expires - occurred_at`, negative once expired.
    pub expires_in_seconds: Option<i64>,
    pub owner: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// In the policy: eci-secret-sync rotates it. `false`: someone must rotate it by hand.
    pub managed: bool,
    /// Managed tokens: when automatic rotation starts (`expires - rotate_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotates_from: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// As the policy writes it: `7d`, `12h`.
    pub label: String,
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRef {
    pub id: String,
    pub expires: Option<DateTime<Utc>>,
}

/// One destination of a rotation and how it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationInfo {
    /// e.g. `vault:secret/ci/deploy#ECI_ACCESS_TOKEN`, `github:repo:acme/web:ECI_TOKEN`.
    pub destination: String,
    /// `updated`, `failed`, `pending`, `written_unverified`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of the old token after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OldTokenFate {
    Deleted,
    AlreadyGone,
    /// Kept until `old_token_deleted_after` (the grace period), then deleted.
    KeptForGrace,
    /// The rotation failed: the old token stays valid.
    KeptAlive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotationInfo {
    pub old_token: Option<TokenRef>,
    pub new_token: Option<TokenRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_token_fate: Option<OldTokenFate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_token_deleted_after: Option<DateTime<Utc>>,
    #[serde(default)]
    pub destinations: Vec<DestinationInfo>,
    /// `rotation_failed`: why. `recovered`: the last error before it recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// `rotation_failed`: 1 for the first alert of this failure, then 2, 3, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<u32>,
    /// `rotation_failed`: time left before the old token expires (negative: expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_left_seconds: Option<i64>,
}

impl RotationInfo {
    pub fn failing(&self) -> impl Iterator<Item = &DestinationInfo> {
        self.destinations.iter().filter(|d| d.status == "failed")
    }

    pub fn updated(&self) -> impl Iterator<Item = &DestinationInfo> {
        self.destinations.iter().filter(|d| d.status == "updated")
    }
}
