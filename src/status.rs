//! `--status`: every policy token's expiry, due date, rotation state and destinations, from
//! ECI and the state folder. Ids, times and errors only, never values.

use crate::destination::Destination;
use crate::eci::{EciClient, Token};
use crate::plan::{self, Decision};
use crate::policy::{Policy, TokenPolicy};
use crate::rotation::journal::{DestState, DestStatus, LastFailure, Phase, Rotation, TokenRecord};
use crate::rotation::report::{relative, when};
use crate::rotation::{FAILURES, HELD, MARKER, ROTATIONS, TOKENS};
use crate::schedule::Schedule;
use crate::state::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub generated_at: DateTime<Utc>,
    pub timezone: String,
    pub next_runs: Vec<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Set when ECI could not be asked: token facts then come from saved state only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eci_error: Option<String>,
    /// Set when the policy's Vault cannot be used now (unreachable, sealed, credential
    /// refused): the next rotation that writes to it would fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_error: Option<String>,
    pub tokens: Vec<TokenStatus>,
    /// How to call this program on this policy in the commands shown.
    #[serde(skip)]
    pub command: String,
    /// State files that could not be read (each message names the file and what to do).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_errors: Vec<String>,
    /// Open rotations of tokens the policy no longer lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unlisted_rotations: Vec<String>,
}

impl Status {
    /// Some token needs attention: failed, missing from ECI, ECI could not be asked, Vault
    /// cannot be used, or a rotation is open for a token the policy no longer lists.
    pub fn troubled(&self) -> bool {
        self.eci_error.is_some()
            || self.vault_error.is_some()
            || !self.state_errors.is_empty()
            || !self.unlisted_rotations.is_empty()
            || self
                .tokens
                .iter()
                .any(|t| matches!(t.state, "failed" | "missing" | "unknown" | "expired"))
            || self
                .tokens
                .iter()
                .any(|t| t.destinations.iter().any(|d| d.status == "stale"))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub finished: DateTime<Utc>,
    pub summary: String,
    /// Every token fine and every destination service usable.
    pub succeeded: bool,
    pub rotated: usize,
    pub not_due: usize,
    pub failed: usize,
    /// Why the pass did not complete, or the destination service it found unusable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenStatus {
    pub name: String,
    /// ok, due, expired, rotating, grace, failed, missing, never_expires, watched, unknown
    pub state: &'static str,
    pub id: Option<String>,
    pub expires: Option<DateTime<Utc>>,
    pub rotates_at: Option<DateTime<Utc>>,
    pub last_rotated: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_rotation: Option<OpenRotation>,
    pub destinations: Vec<DestinationStatus>,
    /// Other live tokens of this name in ECI (a kept or orphan replacement, or someone else's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_tokens: Vec<OtherToken>,
    /// The last run of this token that failed, until one goes well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OtherToken {
    pub id: String,
    pub expires: Option<DateTime<Utc>>,
    /// kept (`--abandon --force`, or unreadable while destinations hold it: deleted after the
    /// next complete rotation), orphan (made by this program, used by nothing: deleted at the
    /// next run), attempt (made by a lost or refused create of the open rotation: taken by the
    /// next run, deleted by `--abandon`), stray (made by such a create after another replacement
    /// was taken: deleted once the rotation is done), unrecorded (carries this program's marker, but the state folder has no record
    /// of creating it: never touched), foreign (not made by this program: never touched)
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenRotation {
    pub phase: Phase,
    pub started: DateTime<Utc>,
    pub old_id: String,
    pub new_id: Option<String>,
    pub new_expires: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    /// A write of the replacement was sent to a destination that is not known to hold it (the
    /// reply was an error, or never came): `--abandon` asks that destination, and refuses if
    /// it may hold the replacement.
    pub unconfirmed_writes: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    pub destination: String,
    /// pending, sent (no reply confirmed the write), written, synced, failed, unknown, stale
    /// (holds a token ECI no longer lists)
    pub status: &'static str,
    pub at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Gather the status. `eci` may be `None` (credential unavailable): then saved state only.
pub async fn gather(
    policy: &Policy,
    store: Option<&Store>,
    eci: Option<&EciClient>,
    eci_error: Option<String>,
) -> Status {
    let now = Utc::now();
    let schedule = Schedule::from_section(&policy.schedule).ok();
    let mut status = Status {
        generated_at: now,
        timezone: policy.schedule.timezone.clone(),
        next_runs: schedule
            .as_ref()
            .map(|s| s.upcoming(now, 3))
            .unwrap_or_default(),
        last_run: store.and_then(last_run),
        eci_error,
        vault_error: None,
        state_errors: Vec::new(),
        tokens: Vec::new(),
        command: crate::app::command_for(policy),
        unlisted_rotations: store
            .map(|s| crate::rotation::unlisted_open_rotations(s, policy))
            .unwrap_or_default(),
    };
    let mut tokens: Option<Vec<Token>> = None;
    if let Some(eci) = eci {
        match eci.list(None).await {
            Ok(all) => tokens = Some(all),
            Err(e) => status.eci_error = Some(e.to_string()),
        }
    }
    let default_mount = policy
        .vault
        .as_ref()
        .map(|v| v.mount.as_str())
        .unwrap_or("secret");
    for t in &policy.tokens {
        let mut unreadable = Vec::new();
        let mut note = |e: crate::state::StateError| unreadable.push(e.to_string());
        let open: Option<Rotation> =
            store.and_then(|s| s.load(ROTATIONS, &t.name).map_err(&mut note).ok().flatten());
        let record: Option<TokenRecord> =
            store.and_then(|s| s.load(TOKENS, &t.name).map_err(&mut note).ok().flatten());
        let held: Vec<String> = store
            .and_then(|s| s.load(HELD, &t.name).map_err(&mut note).ok().flatten())
            .unwrap_or_default();
        let minted: Vec<String> = store
            .and_then(|s| {
                crate::rotation::minted::load(s, &t.name)
                    .map_err(&mut note)
                    .ok()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.id)
            .collect();
        let named: Option<Vec<Token>> = tokens
            .as_ref()
            .map(|all| all.iter().filter(|x| x.name == t.name).cloned().collect());
        let failure: Option<LastFailure> =
            store.and_then(|s| s.load(FAILURES, &t.name).map_err(&mut note).ok().flatten());
        // Tokens failed creates made: the open rotation's replacement-to-be (when it has none
        // yet), else strays that a run deletes.
        let (attempts, strays): (Vec<String>, Vec<String>) = match (&open, &record, &named) {
            (Some(rot), _, Some(named)) if rot.new_id.is_none() => (
                crate::rotation::attempt_token_ids(rot, named, &held),
                Vec::new(),
            ),
            (Some(rot), _, Some(named)) => (
                Vec::new(),
                crate::rotation::attempt_token_ids(rot, named, &held),
            ),
            (None, Some(r), Some(named)) => {
                (Vec::new(), crate::rotation::late_token_ids(r, named, &held))
            }
            _ => (Vec::new(), Vec::new()),
        };
        let mut st = token_status(t, named.as_deref(), open, record, now, default_mount);
        // A destination added to the policy after the last rotation was never given a token
        // by this program: said, with how to fill it now rather than at the next rotation.
        if st.open_rotation.is_none() && st.last_rotated.is_some() {
            let cmd = format!("{} --rotate-now --force --token {}", status.command, t.name);
            for d in &mut st.destinations {
                if d.status == "unknown" && d.error.is_none() {
                    d.error = Some(format!(
                        "added after the last rotation: not given a token by this program yet; the next \
                         rotation writes it, or now: {cmd}"
                    ));
                }
            }
        }
        // A kept replacement (closed with --abandon --force, or unreadable while destinations
        // held it) may be what some destinations hold now, not the token recorded for them.
        let kept_alive: Vec<&String> = held
            .iter()
            .filter(|h| {
                named
                    .as_deref()
                    .is_none_or(|n| n.iter().any(|x| &x.id == *h))
            })
            .collect();
        if st.open_rotation.is_none()
            && let [kept, ..] = kept_alive.as_slice()
        {
            for d in &mut st.destinations {
                if matches!(d.status, "synced" | "written") {
                    d.status = "unknown";
                    d.error = Some(format!(
                        "holds {} or the kept replacement {kept}; the next rotation writes it again",
                        st.id.as_deref().unwrap_or("the recorded token")
                    ));
                }
            }
        }
        if let Some(f) = failure {
            // A failed run outranks what the saved state alone would say (a rotation refused
            // before it opened, or one whose replacement does not authenticate).
            if matches!(st.state, "ok" | "due" | "rotating") {
                st.state = "failed";
            }
            st.last_error = Some(f);
        }
        if !unreadable.is_empty() {
            // What the saved state would have said is not known: not `ok` or `due`.
            st.state = "unknown";
            status.state_errors.append(&mut unreadable);
        }
        st.other_tokens = other_tokens(
            &st,
            named.as_deref().unwrap_or_default(),
            &held,
            &minted,
            &attempts,
            &strays,
        );
        status.tokens.push(st);
    }
    status
}

/// The live tokens of this name that are neither the current one nor an open rotation's
/// replacement.
fn other_tokens(
    st: &TokenStatus,
    named: &[Token],
    held: &[String],
    minted: &[String],
    attempts: &[String],
    strays: &[String],
) -> Vec<OtherToken> {
    let replacement = st.open_rotation.as_ref().and_then(|o| o.new_id.as_deref());
    named
        .iter()
        .filter(|t| Some(t.id.as_str()) != st.id.as_deref() && Some(t.id.as_str()) != replacement)
        .map(|t| OtherToken {
            id: t.id.clone(),
            expires: t.expires,
            kind: if held.contains(&t.id) {
                "kept"
            } else if attempts.contains(&t.id) {
                "attempt"
            } else if strays.contains(&t.id) {
                "stray"
            } else if minted.contains(&t.id) {
                "orphan"
            } else if t.description.contains(MARKER) {
                "unrecorded"
            } else {
                "foreign"
            },
        })
        .collect()
}

fn last_run(store: &Store) -> Option<LastRun> {
    let memory = crate::daemon::memory::load(store).ok().flatten()?;
    let pass = memory.last_pass?;
    Some(LastRun {
        finished: pass.finished,
        summary: pass.summary(),
        succeeded: pass.succeeded(),
        rotated: pass.rotated,
        not_due: pass.not_due,
        failed: pass.failed,
        problem: pass.error.clone().or_else(|| pass.unusable.clone()),
    })
}

fn token_status(
    policy: &TokenPolicy,
    named: Option<&[Token]>,
    open: Option<Rotation>,
    record: Option<TokenRecord>,
    now: DateTime<Utc>,
    default_mount: &str,
) -> TokenStatus {
    let keys: Vec<String> = Destination::of(policy)
        .iter()
        .map(|d| d.key(default_mount))
        .collect();
    let states = open
        .as_ref()
        .map(|r| r.destinations.clone())
        .or_else(|| record.as_ref().map(|r| r.destinations.clone()))
        .unwrap_or_default();
    let destinations = keys.iter().map(|k| dest_status(k, states.get(k))).collect();
    let mut out = TokenStatus {
        name: policy.name.clone(),
        state: "unknown",
        id: record.as_ref().map(|r| r.current_id.clone()),
        expires: record.as_ref().and_then(|r| r.expires),
        rotates_at: None,
        last_rotated: record.as_ref().map(|r| r.last_rotated),
        open_rotation: None,
        destinations,
        other_tokens: Vec::new(),
        last_error: None,
    };
    if let Some(rot) = &open {
        out.state = if rot.phase == Phase::Grace {
            "grace"
        } else if rot
            .destinations
            .values()
            .any(|d| !d.removed && d.status == DestStatus::Failed)
        {
            "failed"
        } else {
            "rotating"
        };
        out.id = Some(rot.old_id.clone());
        out.expires = rot.old_expires;
        out.open_rotation = Some(OpenRotation {
            phase: rot.phase,
            started: rot.started,
            old_id: rot.old_id.clone(),
            new_id: rot.new_id.clone(),
            new_expires: rot.new_expires,
            grace_until: rot.grace_until,
            unconfirmed_writes: rot
                .destinations
                .values()
                .any(|d| d.may_hold() && !d.known_written()),
        });
        return out;
    }
    let Some(named) = named else {
        return out;
    };
    let p = plan::decide(policy, named, None, record.as_ref(), now, false);
    match p.decision {
        Decision::Missing => out.state = "missing",
        Decision::NeverExpires { current } => {
            out.state = "never_expires";
            out.id = Some(current.id);
            out.expires = None;
        }
        Decision::NotDue { current, rotate_at } => {
            out.state = "ok";
            out.id = Some(current.id);
            out.expires = current.expires;
            out.rotates_at = Some(rotate_at);
        }
        Decision::Rotate { current, .. } | Decision::LifetimeTooShort { current, .. } => {
            out.state = "due";
            out.id = Some(current.id);
            out.expires = current.expires;
            out.rotates_at = current
                .expires
                .map(|e| e - plan::chrono_dur(policy.rotate_before));
        }
        Decision::Resume => {}
    }
    // No destination would receive a replacement: never rotated, only watched.
    if policy.vault.is_empty() && policy.github.is_empty() && matches!(out.state, "ok" | "due") {
        out.state = "watched";
        out.rotates_at = None;
    }
    // The token this program last gave the destinations is gone from ECI, and another of the
    // name (made by hand, say) is the current one: the destinations hold a dead token.
    if let Some(rec) = &record
        && !rec.current_id.is_empty()
        && out.id.as_deref().is_some_and(|id| id != rec.current_id)
        && !named.iter().any(|t| t.id == rec.current_id)
    {
        for d in &mut out.destinations {
            if matches!(d.status, "synced" | "written" | "sent") {
                d.status = "stale";
                d.error = Some(format!(
                    "was given token {}, which ECI no longer lists (unless it was updated by hand since)",
                    rec.current_id
                ));
            }
        }
    }
    // Already past its expiry: whatever uses it is failing now.
    if matches!(out.state, "due" | "watched") && out.expires.is_some_and(|e| e <= now) {
        out.state = "expired";
    }
    out
}

fn dest_status(key: &str, state: Option<&DestState>) -> DestinationStatus {
    let (status, at, error) = match state {
        None => ("unknown", None, None),
        Some(d) => (
            match d.status {
                // A write went out and no reply confirmed it (a kill, a hang): it may have landed.
                DestStatus::Pending if d.attempted_at.is_some() => "sent",
                DestStatus::Pending => "pending",
                DestStatus::Pushed => "written",
                DestStatus::Verified => "synced",
                DestStatus::Failed => "failed",
            },
            d.at,
            d.last_error.clone(),
        ),
    };
    DestinationStatus {
        destination: key.to_string(),
        status,
        at,
        error,
    }
}

/// The human rendering, times in the policy's zone with UTC alongside.
pub fn render(status: &Status, schedule: Option<&Schedule>) -> String {
    let now = status.generated_at;
    let local = |t: DateTime<Utc>| match schedule {
        Some(s) => format!("{} ({})", s.local(t), relative(t, now)),
        None => format!("{} ({})", when(t), relative(t, now)),
    };
    let mut out = String::new();
    if let Some(e) = &status.eci_error {
        let _ = writeln!(
            out,
            "warning: ECI could not be asked ({e}); showing saved state only"
        );
    }
    if let Some(e) = &status.vault_error {
        let _ = writeln!(
            out,
            "warning: {e}; a rotation that writes to Vault would fail now"
        );
    }
    for e in &status.state_errors {
        let _ = writeln!(out, "warning: {e}");
    }
    for u in &status.unlisted_rotations {
        let _ = writeln!(out, "warning: {u}");
    }
    for t in &status.tokens {
        let _ = writeln!(out, "{}: {}", t.name, t.state.replace('_', " "));
        if let Some(id) = &t.id {
            // While a replacement exists, the recorded token is the one it replaces.
            let replaced = t
                .open_rotation
                .as_ref()
                .is_some_and(|r| r.new_id.is_some() && r.old_id == *id);
            if replaced {
                let _ = writeln!(
                    out,
                    "  old token    {id} (being replaced; see the open rotation)"
                );
            } else {
                let _ = writeln!(out, "  token        {id}");
            }
        }
        match t.expires {
            Some(e) => {
                let _ = writeln!(out, "  expires      {}", local(e));
            }
            None if t.state == "never_expires" => {
                let _ = writeln!(out, "  expires      never");
            }
            None => {}
        }
        if let Some(r) = t.rotates_at {
            let _ = writeln!(out, "  rotates      {}", local(r));
        }
        if let Some(r) = t.last_rotated {
            let _ = writeln!(out, "  last rotated {}", local(r));
        }
        if let Some(o) = &t.open_rotation {
            let _ = writeln!(
                out,
                "  open rotation since {}, phase {}{}{}",
                local(o.started),
                o.phase.as_str(),
                o.new_id
                    .as_ref()
                    .map(|n| format!(", replacement {n}"))
                    .unwrap_or_default(),
                o.grace_until
                    .map(|g| format!(", old token deleted after {}", local(g)))
                    .unwrap_or_default(),
            );
            let held = t
                .destinations
                .iter()
                .any(|d| matches!(d.status, "synced" | "written"));
            // A write that failed may still have landed: plain --abandon asks, and refuses then.
            let abandon = if held {
                " --force   (destinations hold the replacement: both tokens stay alive)"
            } else if o.unconfirmed_writes {
                "   (refused if a failed write landed after all; then --force keeps both tokens alive)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    resume: {} --rotate-now --token {}",
                status.command, t.name
            );
            // In grace every destination holds the replacement: only the old token's deletion
            // is left, nothing to abandon.
            if !matches!(o.phase, Phase::Grace | Phase::Deleting) {
                let _ = writeln!(
                    out,
                    "    abandon: {} --abandon {}{abandon}",
                    status.command, t.name
                );
            }
        }
        for d in &t.destinations {
            let at = d.at.map(|a| format!(" ({})", local(a))).unwrap_or_default();
            let err = d
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<12} {}{at}{err}", d.status, d.destination);
        }
        if t.destinations.iter().any(|d| d.status == "stale") {
            let _ = writeln!(
                out,
                "    fix: {} --rotate-now --force --token {}   (gives every destination a new token, then deletes {})",
                status.command,
                t.name,
                t.id.as_deref().unwrap_or("?")
            );
        }
        if let Some(f) = &t.last_error {
            let _ = writeln!(out, "  last error   {}: {}", local(f.at), f.error);
            if t.open_rotation.is_none() {
                // Nothing to resume or abandon: the next run (or this) tries again.
                let _ = writeln!(
                    out,
                    "    retry: {} --rotate-now --token {}{}   (no rotation is open; fix the cause first)",
                    status.command,
                    t.name,
                    if f.forced { " --force" } else { "" }
                );
            }
        }
        for o in &t.other_tokens {
            let expires = o
                .expires
                .map(|e| format!(" expires {}", local(e)))
                .unwrap_or_default();
            let why = match o.kind {
                "kept" => {
                    "kept alive: destinations may hold it; deleted after the next complete rotation"
                }
                "orphan" => {
                    "made by this program, used by no rotation: the next run deletes it once no destination holds it"
                }
                "attempt" => {
                    "made by a create of the open rotation whose reply was lost or refused: the next run takes it as the replacement, --abandon deletes it"
                }
                "stray" => {
                    "made by a create whose reply was lost or refused, never given to a destination: deleted by the run that completes the rotation (the next run, if it is done), or by --abandon"
                }
                "unrecorded" => {
                    "carries this program's marker, but this state folder has no record of creating it: left alone"
                }
                _ => "not made by this program: left alone",
            };
            let _ = writeln!(out, "  also alive   {}{expires} ({why})", o.id);
        }
    }
    let runs: Vec<String> = status.next_runs.iter().map(|t| local(*t)).collect();
    if !runs.is_empty() {
        let _ = writeln!(out, "next runs: {}", runs.join("; "));
    }
    if let Some(l) = &status.last_run {
        let _ = writeln!(
            out,
            "last daemon pass: {} at {}",
            l.summary,
            local(l.finished)
        );
    }
    out
}
