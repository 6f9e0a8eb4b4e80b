//! What a policy reload changed, as short lines for the log (names and settings, never secrets).

use crate::policy::{Policy, TokenPolicy, format_duration};

/// One line per change; empty when the new policy means the same as the old.
pub fn between(old: &Policy, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (&old.schedule, &new.schedule);
    if a.cron != b.cron || a.timezone != b.timezone {
        out.push(format!(
            "schedule: \"{}\" ({}) -> \"{}\" ({})",
            a.cron, a.timezone, b.cron, b.timezone
        ));
    }
    if a.jitter != b.jitter {
        out.push(format!(
            "schedule jitter: {} -> {}",
            format_duration(a.jitter),
            format_duration(b.jitter)
        ));
    }
    for t in &new.tokens {
        match old.tokens.iter().find(|o| o.name == t.name) {
            None => out.push(format!("token added: {}", t.name)),
            Some(o) if !same_token(o, t) => out.push(format!("token changed: {}", t.name)),
            Some(_) => {}
        }
    }
    for o in &old.tokens {
        if !new.tokens.iter().any(|t| t.name == o.name) {
            out.push(format!(
                "token removed: {} (no longer rotated; its ECI token and destinations are left as they are)",
                o.name
            ));
        }
    }
    let sections = [
        ("[eci]", old.eci != new.eci),
        ("[vault]", old.vault != new.vault),
        ("[github]", old.github != new.github),
        ("[defaults]", old.defaults != new.defaults),
        ("[notify]", old.notify != new.notify),
        ("[metrics]", old.metrics != new.metrics),
        ("[state]", old.state != new.state),
    ];
    out.extend(
        sections
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| format!("{name} changed")),
    );
    out
}

/// Equal apart from where the token sits in the file.
fn same_token(a: &TokenPolicy, b: &TokenPolicy) -> bool {
    TokenPolicy {
        line: 0,
        ..a.clone()
    } == TokenPolicy {
        line: 0,
        ..b.clone()
    }
}
