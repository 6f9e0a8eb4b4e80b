//! In-memory ECI account: one organization, its access tokens, deletions and idempotency keys.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::timefmt::{STYLES, ceil_for_style, eci_time, utc};

/// One user access token.
#[derive(Clone, Debug)]
pub(crate) struct EciToken {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub value: String,
    pub created: DateTime<Utc>,
    pub modified: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub roles: Vec<String>,
    /// Holds `User.UserAccessToken.CREATE` (internal, never serialized by the ECI API).
    pub can_create: bool,
    /// Reads no longer return the value (the contract's "value not retrievable"); the create
    /// reply always had it. Set through the admin API.
    pub value_hidden: bool,
    /// Which time rendering this token's replies use.
    style: u8,
    /// Insertion order, the tie-breaker of "oldest first".
    seq: u64,
}

/// What a new token is made of.
pub(crate) struct NewToken {
    pub name: String,
    pub description: String,
    pub expires: Option<DateTime<Utc>>,
    pub roles: Vec<String>,
    pub can_create: bool,
    pub value: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

pub(crate) struct EciStore {
    org_id: Uuid,
    org_created: DateTime<Utc>,
    owner_id: Uuid,
    tokens: Vec<EciToken>,
    deleted: Vec<EciToken>,
    idempotency: HashMap<String, Uuid>,
    counter: u64,
    /// Latest `created` handed out, keeping creation times strictly increasing.
    last_created: Option<DateTime<Utc>>,
    /// How far this server's clock is from the host's (a real ECI keeps its own time).
    clock_offset: Duration,
}

/// A fresh token value: `u_` + 43 chars of URL-safe base64 (32 random bytes).
pub(crate) fn new_token_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("u_{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl EciStore {
    /// Set this server's clock `offset` from the host's, as if it had always been so: the
    /// times it has handed out move with it.
    pub(crate) fn set_clock_offset(&mut self, offset: Duration) {
        let delta = offset - self.clock_offset;
        self.clock_offset = offset;
        self.org_created += delta;
        for t in self.tokens.iter_mut().chain(self.deleted.iter_mut()) {
            t.created += delta;
        }
        self.last_created = self.last_created.map(|l| l + delta);
    }

    /// This server's time: the host's, moved by [`clock_offset`](Self::clock_offset).
    pub(crate) fn clock_offset(&self) -> Duration {
        self.clock_offset
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    pub(crate) fn new() -> Self {
        let now = Utc::now();
        EciStore {
            org_id: Uuid::new_v4(),
            org_created: ceil_for_style(now, 0),
            owner_id: Uuid::new_v4(),
            tokens: Vec::new(),
            deleted: Vec::new(),
            idempotency: HashMap::new(),
            counter: 0,
            last_created: None,
            clock_offset: Duration::zero(),
        }
    }

    /// The organization object of `GET /user/organization`.
    pub(crate) fn org_json(&self) -> Value {
        json!({
            "id": self.org_id,
            "created": eci_time(self.org_created, 3),
            "modified": null,
            "name": "sandbox-org",
            "ident": "sandbox",
            "allowed_ips": [],
        })
    }

    /// The live (not deleted, not expired) token whose value is `value`.
    pub(crate) fn authenticate(&self, value: &str, now: DateTime<Utc>) -> Option<&EciToken> {
        self.tokens
            .iter()
            .find(|t| t.value == value && t.expires.is_none_or(|e| e > now))
    }

    pub(crate) fn value_in_use(&self, value: &str) -> bool {
        self.tokens
            .iter()
            .chain(self.deleted.iter())
            .any(|t| t.value == value)
    }

    /// A creation time for a new token: never earlier than now, strictly after the previous
    /// one, and exact in `style`; a whole-second style that would run more than a second ahead
    /// of the clock gives way to a fractional one (same offset), so times never drift.
    fn next_created(&mut self, style: u8) -> (DateTime<Utc>, u8) {
        let now = self.now();
        let floor = self
            .last_created
            .map_or(now, |last| now.max(last + Duration::microseconds(1)));
        let mut style = style;
        let mut created = ceil_for_style(floor, style);
        if created - now > Duration::seconds(1) {
            style = if style % 2 == 1 { 1 } else { 2 };
            created = ceil_for_style(floor, style);
        }
        self.last_created = Some(created);
        (created, style)
    }

    pub(crate) fn create(&mut self, new: NewToken) -> EciToken {
        let style = u8::try_from(self.counter % u64::from(STYLES)).unwrap_or(0);
        self.counter += 1;
        let (created, style) = match new.created {
            Some(backdated) => (ceil_for_style(backdated, style), style),
            None => self.next_created(style),
        };
        let token = EciToken {
            id: Uuid::new_v4(),
            name: new.name,
            description: new.description,
            value: new.value.unwrap_or_else(new_token_value),
            created,
            modified: None,
            expires: new.expires,
            roles: new.roles,
            can_create: new.can_create,
            value_hidden: false,
            style,
            seq: self.counter,
        };
        self.tokens.push(token.clone());
        token
    }

    /// Not-deleted tokens (expired ones included), oldest first.
    pub(crate) fn list(&self) -> Vec<&EciToken> {
        let mut all: Vec<&EciToken> = self.tokens.iter().collect();
        all.sort_by_key(|t| (t.created, t.seq));
        all
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<&EciToken> {
        self.tokens.iter().find(|t| t.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: Uuid) -> Option<&mut EciToken> {
        self.tokens.iter_mut().find(|t| t.id == id)
    }

    /// Deletes a token at once; false when there is no such (live) token.
    pub(crate) fn delete(&mut self, id: Uuid) -> bool {
        match self.tokens.iter().position(|t| t.id == id) {
            Some(i) => {
                let gone = self.tokens.remove(i);
                self.deleted.push(gone);
                true
            }
            None => false,
        }
    }

    /// Every token value this store ever handed out, deleted tokens included (for leak checks).
    pub(crate) fn minted_values(&self) -> Vec<&str> {
        self.tokens
            .iter()
            .chain(self.deleted.iter())
            .map(|t| t.value.as_str())
            .collect()
    }

    pub(crate) fn deleted_ids(&self) -> Vec<Uuid> {
        self.deleted.iter().map(|t| t.id).collect()
    }

    /// The token created earlier under this `Idempotency-Key`, deleted or not.
    pub(crate) fn replay(&self, key: &str) -> Option<&EciToken> {
        let id = self.idempotency.get(key)?;
        self.tokens
            .iter()
            .chain(self.deleted.iter())
            .find(|t| t.id == *id)
    }

    pub(crate) fn remember(&mut self, key: String, id: Uuid) {
        self.idempotency.insert(key, id);
    }

    /// The Token object as ECI returns it (with its value and an unknown extra field).
    pub(crate) fn token_json(&self, t: &EciToken) -> Value {
        let mut v = self.token_json_with_value(t);
        if t.value_hidden
            && let Some(o) = v.as_object_mut()
        {
            o.remove("token");
        }
        v
    }

    /// The Token object with its value whatever `value_hidden` says (the create reply).
    pub(crate) fn token_json_with_value(&self, t: &EciToken) -> Value {
        json!({
            "id": t.id,
            "name": t.name,
            "description": t.description,
            "token": t.value,
            "created": eci_time(t.created, t.style),
            "modified": t.modified.map(|m| eci_time(m, t.style)),
            "expires": t.expires.map(|e| eci_time(e, t.style)),
            "roles": t.roles,
            "owner": {"id": self.owner_id, "name": "ops-bot"},
            "last_used": null,
        })
    }

    /// The admin view: plain UTC times plus the internal fields.
    pub(crate) fn admin_json(&self, t: &EciToken) -> Value {
        json!({
            "id": t.id,
            "name": t.name,
            "description": t.description,
            "token": t.value,
            "value": t.value,
            "created": utc(t.created),
            "modified": t.modified.map(utc),
            "expires": t.expires.map(utc),
            "roles": t.roles,
            "owner": {"id": self.owner_id, "name": "ops-bot"},
            "can_create": t.can_create,
            "value_hidden": t.value_hidden,
        })
    }
}
