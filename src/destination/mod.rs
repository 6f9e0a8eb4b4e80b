//! Where a token's value goes: one type per kind (Vault KV v2, GitHub secrets), one shared shape.

pub mod github;
pub mod vault;

use crate::policy::{GithubDestination, GithubTarget, SecretApp, TokenPolicy, VaultDestination};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One place a token's value is written to.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Vault(VaultDestination),
    Github(GithubDestination),
}

impl Destination {
    /// All destinations of a token, in policy order.
    pub fn of(token: &TokenPolicy) -> Vec<Destination> {
        token
            .vault
            .iter()
            .cloned()
            .map(Destination::Vault)
            .chain(token.github.iter().cloned().map(Destination::Github))
            .collect()
    }

    /// A stable identity, used as the key of this destination in the rotation journal and in
    /// messages, e.g. `vault:secret/ci/deploy#ECI_TOKEN` or `github:env:acme/web/production:ECI_TOKEN`.
    pub fn key(&self, default_mount: &str) -> String {
        match self {
            Destination::Vault(v) => format!(
                "vault:{}/{}#{}",
                v.mount.as_deref().unwrap_or(default_mount),
                v.path,
                v.key
            ),
            Destination::Github(g) => {
                let app = match g.app {
                    SecretApp::Actions => "",
                    SecretApp::Dependabot => "dependabot-",
                };
                let scope = match &g.target {
                    GithubTarget::Repo { owner, repo } => format!("{app}repo:{owner}/{repo}"),
                    GithubTarget::Environment {
                        owner,
                        repo,
                        environment,
                    } => format!("{app}env:{owner}/{repo}/{environment}"),
                    GithubTarget::Org { org, .. } => format!("{app}org:{org}"),
                };
                format!("github:{scope}:{}", g.secret)
            }
        }
    }
}

/// What a write records so the value's arrival can be verified later (no secret in it).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Vault: the KV version written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// GitHub: the server's clock just before the write (the secret's `updated_at` must
    /// reach at least this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// GitHub: the secret's `updated_at` when the write was verified; a later one means
    /// someone wrote the secret since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_updated_at: Option<DateTime<Utc>>,
}

/// Facts about the token recorded beside its value (never the value).
#[derive(Debug, Clone)]
pub struct WriteMeta {
    pub token_name: String,
    pub token_id: String,
    pub expires: Option<DateTime<Utc>>,
}

/// A failed write or check. The message never holds a secret value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DestError {
    pub message: String,
    /// Worth another try within this run.
    pub retryable: bool,
    /// The server asked us to wait this long first.
    pub wait: Option<Duration>,
}

impl DestError {
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: crate::secret::scrub(&message.into()),
            retryable: false,
            wait: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: crate::secret::scrub(&message.into()),
            retryable: true,
            wait: None,
        }
    }

    pub fn with_wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }
}

/// Percent-encode one URL path segment (names of environments and secrets).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
