//! What was already announced (thresholds, expiries, rotations, open failures), kept in the state folder.

use super::schema::{DestinationInfo, TokenRef};
use crate::state::{StateError, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE: &str = "memory.json";
const VERSION: u32 = 1;

/// A token id unseen for this long is forgotten.
const FORGET_TOKENS: chrono::Duration = chrono::Duration::days(30);
/// A rotation announcement is remembered this long (its old token is gone by then).
const FORGET_ROTATIONS: chrono::Duration = chrono::Duration::days(120);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub version: u32,
    /// By token id.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenMemory>,
    /// Open rotation failures, by token name.
    #[serde(default)]
    pub failures: BTreeMap<String, Failure>,
    /// Announced rotations, by new token id.
    #[serde(default)]
    pub rotations: BTreeMap<String, RotationMemory>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            version: VERSION,
            tokens: BTreeMap::new(),
            failures: BTreeMap::new(),
            rotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMemory {
    pub name: String,
    /// Thresholds (seconds) already announced, or passed over because a nearer one was.
    #[serde(default)]
    pub thresholds_sent: Vec<u64>,
    #[serde(default)]
    pub expired_sent: bool,
    pub last_seen: DateTime<Utc>,
}

/// A rotation that keeps failing: what was last said about it, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub since: DateTime<Utc>,
    pub last_sent: DateTime<Utc>,
    /// How many `rotation_failed` notices went out for this failure.
    pub sends: u32,
    pub error: String,
    #[serde(default)]
    pub destinations: Vec<DestinationInfo>,
    #[serde(default)]
    pub old_token: Option<TokenRef>,
    #[serde(default)]
    pub new_token: Option<TokenRef>,
}

impl Failure {
    /// When the next reminder is due: 1h after the first notice, then 2h, 4h, ... at most 24h.
    pub fn next_reminder(&self) -> DateTime<Utc> {
        let exp = self.sends.saturating_sub(1).min(5);
        let hours = (1i64 << exp).min(24);
        self.last_sent + chrono::Duration::hours(hours)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotationMemory {
    pub name: String,
    pub old_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl Memory {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The saved memory; an unreadable file is set aside (renamed) and a fresh memory starts,
    /// so a damaged file costs at most one repeated message per token, never silence.
    pub fn load(dir: &Path) -> Result<Memory, StateError> {
        let path = Self::path(dir);
        match super::read_or_set_aside(&path)? {
            Some(m) => Ok(m),
            None => Ok(Memory::default()),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Corrupt {
            path: Self::path(dir),
            message: e.to_string(),
        })?;
        write_atomic(&Self::path(dir), &bytes)
    }

    /// Drop what no longer matters: tokens not seen for a month (only when `listed`, i.e.
    /// this run saw the full token list), old rotation announcements, and failures of tokens
    /// that left the policy.
    pub fn prune(&mut self, now: DateTime<Utc>, listed: bool, policy_names: &[&str]) {
        if listed {
            self.tokens.retain(|_, t| now - t.last_seen < FORGET_TOKENS);
        }
        self.rotations.retain(|_, r| now - r.at < FORGET_ROTATIONS);
        self.failures
            .retain(|name, _| policy_names.contains(&name.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saves_privately_and_loads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = Memory::default();
        m.tokens.insert(
            "id-1".into(),
            TokenMemory {
                name: "ci".into(),
                thresholds_sent: vec![86_400],
                expired_sent: false,
                last_seen: Utc::now(),
            },
        );
        m.save(tmp.path()).unwrap();
        let mode = std::fs::metadata(Memory::path(tmp.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Memory::load(tmp.path()).unwrap(), m);
    }

    #[test]
    fn damaged_file_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(Memory::path(tmp.path()), b"{not json").unwrap();
        assert_eq!(Memory::load(tmp.path()).unwrap(), Memory::default());
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("memory.json.unreadable-")),
            "{names:?}"
        );
    }

    #[test]
    fn reminders_back_off_to_a_day() {
        let t0 = Utc::now();
        let mut f = Failure {
            since: t0,
            last_sent: t0,
            sends: 1,
            error: String::new(),
            destinations: vec![],
            old_token: None,
            new_token: None,
        };
        let mut gaps = vec![];
        for sends in 1..=8 {
            f.sends = sends;
            gaps.push((f.next_reminder() - t0).num_hours());
        }
        assert_eq!(gaps, vec![1, 2, 4, 8, 16, 24, 24, 24]);
    }
}
