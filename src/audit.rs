//! The audit log: append-only JSON lines in the state folder (mode 0600), one per step a
//! rotation takes. Ids, names, destinations and short fingerprints, never a value.

use crate::state::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub const FILE: &str = "audit.jsonl";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    /// An existing replacement made earlier (its create's reply was lost or its journal
    /// forgotten) taken as this rotation's.
    Adopted,
    Pushed,
    Verified,
    Deleted,
    Failed,
    Abandoned,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    pub ts: DateTime<Utc>,
    pub action: Action,
    pub token_name: &'a str,
    /// The token the action is about (the replacement for created/pushed/verified, the old one
    /// for deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<&'a str>,
    /// First 12 hex digits of the value's SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl<'a> Entry<'a> {
    pub fn new(action: Action, token_name: &'a str) -> Self {
        Self {
            ts: Utc::now(),
            action,
            token_name,
            token_id: None,
            old_id: None,
            destination: None,
            fingerprint: None,
            expires: None,
            error: None,
        }
    }
}

/// Append one line (O_APPEND, 0600, flushed to disk). A failure to audit is logged, not fatal:
/// the journal, not the audit log, is what keeps rotations safe.
pub fn record(store: &Store, entry: &Entry<'_>) {
    let path = store.dir().join(FILE);
    let line = match serde_json::to_string(entry) {
        Ok(l) => crate::secret::scrub(&l),
        Err(e) => {
            tracing::warn!(error = %e, "audit record could not be encoded");
            return;
        }
    };
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| {
            // A log made earlier by hand or by another tool: only its owner may read it.
            use std::os::unix::fs::PermissionsExt;
            if f.metadata()?.permissions().mode() & 0o077 != 0 {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(format!("{line}\n").as_bytes())?;
            f.sync_data()
        });
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot append to the audit log");
    }
}
