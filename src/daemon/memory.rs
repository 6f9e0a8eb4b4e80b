//! The daemon's memory in the state folder (`daemon.json`): its last passes, and whether a run was missed while it was down.

use crate::schedule::Schedule;
use crate::state::{StateError, Store, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const FILE: &str = "daemon.json";

/// One rotation pass: the scheduled time it served, when it ran, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    pub scheduled: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub rotated: usize,
    pub not_due: usize,
    /// Tokens with no destinations: watched, never rotated.
    #[serde(default)]
    pub watched: usize,
    pub failed: usize,
    /// Why the pass did not go through the tokens (Vault down, lock held, cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A destination service the pass found unusable although nothing due needed it (Vault
    /// down, its credential refused): the pass counts as failed, so it is seen before a token
    /// comes due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
}

impl PassRecord {
    /// Everything went well: every token fine, and every destination service usable.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.failed == 0 && self.unusable.is_none()
    }

    /// `2 rotated, 0 failed` or `did not run: <why>`.
    pub fn summary(&self) -> String {
        match &self.error {
            Some(e) => format!("did not complete: {e}"),
            None => format!(
                "{} rotated, {} not due, {} failed{}{}",
                self.rotated,
                self.not_due,
                self.failed,
                if self.watched > 0 {
                    format!(", {} watched", self.watched)
                } else {
                    String::new()
                },
                self.unusable
                    .as_deref()
                    .map(|u| format!("; {u}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// What `daemon.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The last pass that went through every token (some of them may have failed).
    pub last_completed: Option<PassRecord>,
    /// The last pass, completed or not.
    pub last_pass: Option<PassRecord>,
}

fn path(store: &Store) -> PathBuf {
    store.dir().join(FILE)
}

/// `None` when the state folder has no `daemon.json` yet (a new installation).
pub fn load(store: &Store) -> Result<Option<Memory>, StateError> {
    let path = path(store);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Written with the state folder's crash-safe write, mode 0600.
pub fn save(store: &Store, memory: &Memory) -> Result<(), StateError> {
    let path = path(store);
    let bytes = serde_json::to_vec_pretty(memory).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, &bytes)
}

/// When the first pass after a start happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstRun {
    /// At once, for this reason.
    Now(String),
    /// At the next scheduled time.
    Scheduled,
}

/// The missed-run rule. A pass runs at once when:
/// - the state folder has no record of a pass (a new installation: a token that is already
///   due should not wait for the schedule, and the operator sees the daemon work at once);
/// - no pass has ever completed (the last one was cut short or could not start);
/// - a scheduled time fell between the last completed pass and now (the daemon was down).
///
/// Otherwise the daemon waits for the next scheduled time.
pub fn first_run(schedule: &Schedule, memory: Option<&Memory>, now: DateTime<Utc>) -> FirstRun {
    let Some(memory) = memory else {
        return FirstRun::Now("no earlier pass is recorded in the state folder".into());
    };
    let Some(last) = &memory.last_completed else {
        return FirstRun::Now("no earlier pass completed".into());
    };
    match schedule.next_after(last.scheduled) {
        Some(missed) if missed <= now => FirstRun::Now(format!(
            "the run due at {} was missed while the daemon was down (last completed pass: {})",
            schedule.local(missed),
            schedule.local(last.scheduled)
        )),
        _ => FirstRun::Scheduled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn completed(scheduled: &str) -> Memory {
        let t = at(scheduled);
        let record = PassRecord {
            scheduled: t,
            started: t,
            finished: t,
            rotated: 0,
            not_due: 1,
            watched: 0,
            failed: 0,
            error: None,
            unusable: None,
        };
        Memory {
            last_completed: Some(record.clone()),
            last_pass: Some(record),
        }
    }

    #[test]
    fn missed_run_rule() {
        let hourly = Schedule::new("0 * * * *", "Europe/Berlin").unwrap();
        let now = at("2026-06-01T10:20:00Z");
        assert!(matches!(first_run(&hourly, None, now), FirstRun::Now(_)));
        assert!(matches!(
            first_run(&hourly, Some(&Memory::default()), now),
            FirstRun::Now(_)
        ));
        // Last pass served 10:00 UTC; the next slot (11:00) is still ahead: wait.
        let recent = completed("2026-06-01T10:00:00Z");
        assert_eq!(first_run(&hourly, Some(&recent), now), FirstRun::Scheduled);
        // Last pass served 09:00; 10:00 passed while down: run now.
        let old = completed("2026-06-01T09:00:00Z");
        match first_run(&hourly, Some(&old), now) {
            FirstRun::Now(why) => assert!(why.contains("2026-06-01 12:00:00 CEST"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn roundtrip_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(load(&store).unwrap(), None);
        let memory = completed("2026-06-01T10:00:00Z");
        save(&store, &memory).unwrap();
        assert_eq!(load(&store).unwrap(), Some(memory));
        let mode = std::fs::metadata(tmp.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
