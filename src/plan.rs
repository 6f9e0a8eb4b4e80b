//! Pure planning: from the policy, ECI's tokens, saved state and the time, decide what to do.

use crate::eci::Token;
use crate::policy::TokenPolicy;
use crate::rotation::journal::{Rotation, TokenRecord};
use chrono::{DateTime, Utc};

/// Why a rotation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Due,
    Forced,
}

/// What to do for one token of the policy.
#[derive(Debug, Clone)]
pub enum Decision {
    /// A rotation is open in the journal: finish it.
    Resume,
    /// No token of that name exists in ECI.
    Missing,
    /// The token never expires: nothing to do (worth a warning).
    NeverExpires { current: Token },
    NotDue {
        current: Token,
        rotate_at: DateTime<Utc>,
    },
    Rotate {
        current: Token,
        reason: Reason,
        new_expires: DateTime<Utc>,
    },
    /// The policy's lifetime would give a replacement that is due at once.
    LifetimeTooShort {
        current: Token,
        new_expires: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub decision: Decision,
    /// Ids of other tokens with the same name that this plan leaves alone.
    pub others: Vec<String>,
}

/// Decide for one token. `named` are ECI's tokens with exactly `policy.name`.
pub fn decide(
    policy: &TokenPolicy,
    named: &[Token],
    open: Option<&Rotation>,
    record: Option<&TokenRecord>,
    now: DateTime<Utc>,
    force: bool,
) -> Plan {
    if let Some(rot) = open {
        let others = named
            .iter()
            .filter(|t| t.id != rot.old_id && Some(&t.id) != rot.new_id.as_ref())
            .map(|t| t.id.clone())
            .collect();
        return Plan {
            decision: Decision::Resume,
            others,
        };
    }
    let Some(current) = current_token(policy, named, record) else {
        return Plan {
            decision: Decision::Missing,
            others: Vec::new(),
        };
    };
    let others = named
        .iter()
        .filter(|t| t.id != current.id)
        .map(|t| t.id.clone())
        .collect();
    let current = current.clone();
    let decision = match current.expires {
        None if !force => Decision::NeverExpires { current },
        expires => {
            let rotate_at = expires.map(|e| e - chrono_dur(policy.rotate_before));
            let due = rotate_at.is_some_and(|r| now >= r);
            let new_expires = policy.lifetime.expires_at(now);
            match (due, force, rotate_at) {
                (false, false, Some(rotate_at)) => Decision::NotDue { current, rotate_at },
                _ if new_expires - now <= chrono_dur(policy.rotate_before) => {
                    Decision::LifetimeTooShort {
                        current,
                        new_expires,
                    }
                }
                _ => Decision::Rotate {
                    current,
                    reason: if due { Reason::Due } else { Reason::Forced },
                    new_expires,
                },
            }
        }
    };
    Plan { decision, others }
}

/// The token this product manages under a name: the one it last installed if still there,
/// else the one that expires first (the conservative choice: rotated soonest). Without that
/// record, a token carrying this program's marker under another description is another
/// installation's (or another policy's): it is not taken while any other token of the name is
/// there, since the current token is deleted once its rotation completes.
fn current_token<'a>(
    policy: &TokenPolicy,
    named: &'a [Token],
    record: Option<&TokenRecord>,
) -> Option<&'a Token> {
    if let Some(r) = record
        && let Some(t) = named.iter().find(|t| t.id == r.current_id)
    {
        return Some(t);
    }
    let ours = crate::rotation::description_of(policy);
    let elsewhere = |t: &Token| {
        t.description.contains(crate::rotation::MARKER) && t.description.trim() != ours.trim()
    };
    let soonest = |t: &&Token| t.expires.unwrap_or(DateTime::<Utc>::MAX_UTC);
    named
        .iter()
        .filter(|t| !elsewhere(t))
        .min_by_key(soonest)
        .or_else(|| named.iter().min_by_key(soonest))
}

pub fn chrono_dur(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Lifetime, TokenPolicy};
    use chrono::TimeZone;
    use std::time::Duration;

    fn policy() -> TokenPolicy {
        TokenPolicy {
            name: "ci-deploy".into(),
            description: "deploy".into(),
            rotate_before: Duration::from_secs(14 * 86400),
            lifetime: Lifetime::Days(90),
            grace: Duration::ZERO,
            thresholds: None,
            vault: vec![],
            github: vec![],
            line: 1,
        }
    }

    fn token(id: &str, expires_in_days: Option<i64>, now: DateTime<Utc>) -> Token {
        Token {
            id: id.into(),
            name: "ci-deploy".into(),
            description: String::new(),
            value: None,
            created: Some(now),
            expires: expires_in_days.map(|d| now + chrono::Duration::days(d)),
            roles: vec![],
            owner: None,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
    }

    #[test]
    fn due_when_expiry_within_rotate_before() {
        let t = [token("a", Some(14), now())];
        let plan = decide(&policy(), &t, None, None, now(), false);
        assert!(matches!(
            plan.decision,
            Decision::Rotate {
                reason: Reason::Due,
                ..
            }
        ));
        let t = [token("a", Some(15), now())];
        let plan = decide(&policy(), &t, None, None, now(), false);
        match plan.decision {
            Decision::NotDue { rotate_at, .. } => {
                assert_eq!(rotate_at, now() + chrono::Duration::days(1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn force_rotates_a_token_that_is_not_due() {
        let t = [token("a", Some(60), now())];
        let plan = decide(&policy(), &t, None, None, now(), true);
        assert!(matches!(
            plan.decision,
            Decision::Rotate {
                reason: Reason::Forced,
                ..
            }
        ));
    }

    #[test]
    fn never_expiring_and_missing_tokens() {
        let t = [token("a", None, now())];
        assert!(matches!(
            decide(&policy(), &t, None, None, now(), false).decision,
            Decision::NeverExpires { .. }
        ));
        assert!(matches!(
            decide(&policy(), &[], None, None, now(), false).decision,
            Decision::Missing
        ));
    }

    #[test]
    fn lifetime_shorter_than_rotate_before_is_refused() {
        let mut p = policy();
        p.lifetime = Lifetime::Days(10);
        let t = [token("a", Some(1), now())];
        assert!(matches!(
            decide(&p, &t, None, None, now(), false).decision,
            Decision::LifetimeTooShort { .. }
        ));
    }

    #[test]
    fn picks_the_recorded_token_then_the_earliest_expiry() {
        let t = [
            token("late", Some(80), now()),
            token("early", Some(3), now()),
        ];
        let plan = decide(&policy(), &t, None, None, now(), false);
        match &plan.decision {
            Decision::Rotate { current, .. } => assert_eq!(current.id, "early"),
            other => panic!("{other:?}"),
        }
        assert_eq!(plan.others, vec!["late".to_string()]);
        let record = TokenRecord {
            token_name: "ci-deploy".into(),
            current_id: "late".into(),
            expires: None,
            last_rotated: now(),
            previous_id: "x".into(),
            destinations: Default::default(),
            failed_attempts: Vec::new(),
        };
        let plan = decide(&policy(), &t, None, Some(&record), now(), false);
        assert!(matches!(&plan.decision, Decision::NotDue { current, .. } if current.id == "late"));
    }
}
