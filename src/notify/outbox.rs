//! The bounded, persistent queue of messages per channel: what is not yet delivered survives restarts.

use super::schema::Event;
use crate::state::{StateError, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "outbox.json";
const VERSION: u32 = 1;
/// At most this many messages wait per channel; beyond it the oldest is dropped with a warning.
pub const MAX_PER_CHANNEL: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    pub version: u32,
    #[serde(default)]
    pub entries: Vec<Entry>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            version: VERSION,
            entries: Vec::new(),
        }
    }
}

/// One message for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The channel's stable key (see `channel::Channel::key`).
    pub channel: String,
    pub event: Event,
    pub queued_at: DateTime<Utc>,
    #[serde(default)]
    pub attempts: u32,
    /// Runs in which the receiver refused this message's content (HTTP 400/413/422); an
    /// outage's failed attempts do not count.
    #[serde(default)]
    pub refusals: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Outbox {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The saved queue; an unreadable file is set aside and the queue starts empty.
    pub fn load(dir: &Path) -> Result<Outbox, StateError> {
        Ok(super::read_or_set_aside(&Self::path(dir))?.unwrap_or_default())
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Corrupt {
            path: Self::path(dir),
            message: e.to_string(),
        })?;
        write_atomic(&Self::path(dir), &bytes)
    }

    /// Queue `event` for `channel`; returns how many old messages of that channel were dropped
    /// to stay within [`MAX_PER_CHANNEL`].
    pub fn push(&mut self, channel: &str, event: Event, now: DateTime<Utc>) -> usize {
        self.entries.push(Entry {
            channel: channel.to_string(),
            event,
            queued_at: now,
            attempts: 0,
            refusals: 0,
            last_error: None,
        });
        let mut excess = self.waiting(channel).saturating_sub(MAX_PER_CHANNEL);
        let dropped = excess;
        self.entries.retain(|e| {
            if excess > 0 && e.channel == channel {
                excess -= 1;
                tracing::warn!(
                    channel = %channel,
                    event = e.event.event.as_str(),
                    token = %e.event.token.name,
                    queued_at = %e.queued_at,
                    "notification queue full: dropping the oldest undelivered message"
                );
                false
            } else {
                true
            }
        });
        dropped
    }

    /// How many messages wait for `channel`.
    pub fn waiting(&self, channel: &str) -> usize {
        self.entries.iter().filter(|e| e.channel == channel).count()
    }

    /// Remove and return, in queue order, the messages of `channel`.
    pub fn take(&mut self, channel: &str) -> Vec<Entry> {
        let (mine, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.channel == channel);
        self.entries = rest;
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::schema::{EventKind, SCHEMA, TokenInfo};

    fn event(n: usize) -> Event {
        Event {
            schema: SCHEMA.into(),
            id: format!("e{n}"),
            event: EventKind::Expiring,
            occurred_at: Utc::now(),
            summary: String::new(),
            token: TokenInfo {
                name: format!("t{n}"),
                id: None,
                expires: None,
                expires_in_seconds: None,
                owner: None,
                roles: vec![],
                managed: true,
                rotates_from: None,
            },
            threshold: None,
            rotation: None,
        }
    }

    #[test]
    fn bounded_per_channel_oldest_dropped_first() {
        let mut o = Outbox::default();
        let now = Utc::now();
        o.push("other", event(0), now);
        let mut dropped = 0;
        for n in 1..=MAX_PER_CHANNEL + 5 {
            dropped += o.push("a", event(n), now);
        }
        assert_eq!(dropped, 5);
        assert_eq!(o.waiting("a"), MAX_PER_CHANNEL);
        assert_eq!(
            o.waiting("other"),
            1,
            "another channel's messages are never evicted"
        );
        let a = o.take("a");
        assert_eq!(a[0].event.id, "e6", "the five oldest went");
        assert_eq!(
            a.last().unwrap().event.id,
            format!("e{}", MAX_PER_CHANNEL + 5)
        );
        assert_eq!(o.entries.len(), 1);
    }

    #[test]
    fn survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = Outbox::default();
        o.push("a", event(1), Utc::now());
        o.save(tmp.path()).unwrap();
        assert_eq!(Outbox::load(tmp.path()).unwrap(), o);
    }
}
