//! Keeping a Vault token from the policy (`method = "token"`) alive: renewed when less than
//! half its lifetime is left, at each connect and, in the daemon, by a background task.
//!
//! AppRole and Kubernetes tokens are not renewed: each run logs in afresh, and a token that
//! expires mid-run is replaced by logging in again (see `Vault::with_retries`).

use super::{Vault, classify};
use crate::destination::DestError;
use crate::policy::{Policy, SecretRef, VaultAuth, VaultSection, format_duration};
use std::time::Duration;

/// Shortest and longest wait between two looks at the token. The longest also bounds how
/// long a replaced token file goes unnoticed by the background task.
const MIN_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Wait after Vault refused the token (expired, revoked, or not allowed to look itself up).
const REFUSED_WAIT: Duration = Duration::from_secs(60);

/// What `auth/token/lookup-self` says about the token in use (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenLife {
    /// No TTL: a root token, or one made without expiry.
    NeverExpires,
    /// Lives `ttl` more and cannot be renewed.
    NotRenewable { ttl: Duration },
    /// `ttl` left of a lifetime of `full` (its creation TTL, or period).
    Renewable { ttl: Duration, full: Duration },
}

/// What one look at the token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptAlive {
    pub life: TokenLife,
    pub renewed: bool,
    /// Renewed, but its maximum TTL kept it short of a full lifetime.
    pub capped: bool,
}

impl TokenLife {
    /// When to look again: when half the lifetime is left, or half of what is left once it
    /// can no longer be renewed to a full lifetime.
    fn next_look(self) -> Duration {
        let wait = match self {
            TokenLife::NeverExpires => MAX_WAIT,
            TokenLife::NotRenewable { ttl } => ttl / 2,
            TokenLife::Renewable { ttl, full } if ttl > full / 2 => ttl - full / 2,
            TokenLife::Renewable { ttl, .. } => ttl / 2,
        };
        wait.clamp(MIN_WAIT, MAX_WAIT)
    }
}

impl Vault {
    async fn token_life(&self) -> Result<TokenLife, DestError> {
        let client = self.client.read().await;
        let info = vaultrs::token::lookup_self(&*client)
            .await
            .map_err(|e| classify("Vault token lookup-self", &e))?;
        // `info.id` is the token: only these numbers leave this function.
        let ttl = Duration::from_secs(info.ttl);
        Ok(match (info.ttl, info.renewable.unwrap_or(false)) {
            (0, _) => TokenLife::NeverExpires,
            (_, false) => TokenLife::NotRenewable { ttl },
            (_, true) => TokenLife::Renewable {
                ttl,
                full: Duration::from_secs(info.creation_ttl.max(info.ttl)),
            },
        })
    }

    /// Renew the token in use if less than half its lifetime is left.
    pub(crate) async fn keep_token_alive(&self) -> Result<KeptAlive, DestError> {
        let life = self.token_life().await?;
        let TokenLife::Renewable { ttl, full } = life else {
            return Ok(KeptAlive {
                life,
                renewed: false,
                capped: false,
            });
        };
        if ttl > full / 2 {
            return Ok(KeptAlive {
                life,
                renewed: false,
                capped: false,
            });
        }
        let auth = {
            let client = self.client.read().await;
            vaultrs::token::renew_self(&*client, None)
                .await
                .map_err(|e| classify("Vault token renew-self", &e))?
        };
        let ttl = Duration::from_secs(auth.lease_duration);
        let capped = ttl + Duration::from_secs(1) < full;
        tracing::info!(
            expires_in = %format_duration(ttl),
            "Vault token renewed"
        );
        Ok(KeptAlive {
            life: TokenLife::Renewable { ttl, full },
            renewed: true,
            capped,
        })
    }

    /// At connect, with `method = "token"`: renew if due. Best effort: a token that may not
    /// look itself up is used as it is, and an expired one fails at its first real request.
    pub(super) async fn renew_at_connect(&self) {
        match self.keep_token_alive().await {
            Ok(k) if k.capped => warn_capped(k.life),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot look the Vault token up; not renewing it")
            }
        }
    }
}

fn warn_capped(life: TokenLife) {
    if let TokenLife::Renewable { ttl, .. } = life {
        tracing::warn!(
            expires_in = %format_duration(ttl),
            "the Vault token has reached its maximum TTL and cannot be renewed further; give the program a new token before it expires"
        );
    }
}

/// Renews the policy's Vault token in the background at about half its TTL for as long as
/// this handle lives (the daemon holds one; a one-shot run renews at connect only).
pub struct TokenRenewal {
    task: tokio::task::JoinHandle<()>,
}

impl TokenRenewal {
    /// Started when the policy uses Vault and logs in with `method = "token"`; else `None`.
    pub fn start(policy: &Policy) -> Option<Self> {
        let section = policy.vault.clone()?;
        let uses_vault = policy.tokens.iter().any(|t| !t.vault.is_empty())
            || matches!(policy.eci.token, SecretRef::Vault { .. });
        if !uses_vault || !matches!(section.auth, VaultAuth::Token { .. }) {
            return None;
        }
        Some(Self {
            task: tokio::spawn(renew_forever(section)),
        })
    }
}

impl Drop for TokenRenewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Says each kind of trouble once, until things are fine again.
#[derive(Default)]
struct SaidOnce(Option<String>);

impl SaidOnce {
    fn say(&mut self, key: &str, say: impl FnOnce()) {
        if self.0.as_deref() != Some(key) {
            say();
            self.0 = Some(key.to_owned());
        }
    }
}

/// Look at the token when half its lifetime is left, renew it, repeat. The token reference is
/// read again each time, so a replaced token file is picked up.
async fn renew_forever(section: VaultSection) {
    let vault = match Vault::build(&section) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot renew the Vault token");
            return;
        }
    };
    let mut said = SaidOnce::default();
    let mut last_ttl: Option<Duration> = None;
    loop {
        let outcome = match vault.login().await {
            Ok(()) => vault.keep_token_alive().await,
            Err(e) => Err(e),
        };
        let wait = match outcome {
            Ok(k) => {
                match k.life {
                    TokenLife::NeverExpires => said.say("never", || {
                        tracing::debug!("the Vault token never expires; nothing to renew")
                    }),
                    TokenLife::NotRenewable { ttl } => said.say("not renewable", || {
                        tracing::warn!(
                            expires_in = %format_duration(ttl),
                            "the Vault token is not renewable; give the program a new token before it expires"
                        )
                    }),
                    TokenLife::Renewable { .. } if k.capped => {
                        said.say("capped", || warn_capped(k.life))
                    }
                    TokenLife::Renewable { .. } => said.0 = None,
                }
                if let TokenLife::Renewable { ttl, .. } | TokenLife::NotRenewable { ttl } = k.life {
                    last_ttl = Some(ttl);
                }
                k.life.next_look()
            }
            Err(e) if e.retryable => {
                // Vault down or sealed: try again well before the token could lapse.
                let wait = last_ttl
                    .map_or(Duration::from_secs(5), |t| t / 4)
                    .clamp(MIN_WAIT, Duration::from_secs(30));
                tracing::info!(error = %e, retry_in = %format_duration(wait), "cannot renew the Vault token now");
                wait
            }
            Err(e) => {
                said.say(&e.message, || {
                    tracing::warn!(
                        error = %e,
                        retry_every = %format_duration(REFUSED_WAIT),
                        "cannot renew the Vault token"
                    )
                });
                REFUSED_WAIT
            }
        };
        tokio::time::sleep(wait.clamp(MIN_WAIT, MAX_WAIT)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn looks_again_when_half_the_lifetime_is_left() {
        let fresh = TokenLife::Renewable {
            ttl: secs(3600),
            full: secs(3600),
        };
        assert_eq!(fresh.next_look(), secs(1800));
        let aged = TokenLife::Renewable {
            ttl: secs(2000),
            full: secs(3600),
        };
        assert_eq!(aged.next_look(), secs(200));
        // Capped by its maximum TTL: half of what is left, not less than the floor.
        let capped = TokenLife::Renewable {
            ttl: secs(10),
            full: secs(3600),
        };
        assert_eq!(capped.next_look(), secs(5));
        let dying = TokenLife::Renewable {
            ttl: Duration::ZERO,
            full: secs(4),
        };
        assert_eq!(dying.next_look(), MIN_WAIT);
        assert_eq!(
            TokenLife::NotRenewable { ttl: secs(600) }.next_look(),
            secs(300)
        );
        assert_eq!(TokenLife::NeverExpires.next_look(), MAX_WAIT);
        let long = TokenLife::Renewable {
            ttl: secs(32 * 86_400),
            full: secs(32 * 86_400),
        };
        assert_eq!(long.next_look(), MAX_WAIT);
    }
}
