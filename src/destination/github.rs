//! GitHub Actions and Dependabot secrets: seal with the scope's public key, PUT, check `updated_at`.

use super::{DestError, Receipt, segment};
use crate::policy::{
    GithubAuth, GithubDestination, GithubSection, GithubTarget, SecretApp, Visibility,
};
use crate::retry::{Backoff, ratelimit_reset_from, retry_after_from};
use crate::secret::SecretValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use http::StatusCode;
use octocrab::Octocrab;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A scope's sealing key as GitHub serves it.
#[derive(Debug, Clone, Deserialize)]
struct PublicKey {
    key_id: String,
    key: String,
}

#[derive(Debug, Deserialize)]
struct SecretMeta {
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Repository {
    id: u64,
}

#[derive(Debug, Deserialize, Default)]
struct GithubMessage {
    #[serde(default)]
    message: String,
}

/// A GitHub client shared by every GitHub destination of a run: one public-key fetch per
/// scope, writes spaced out to stay under GitHub's secondary rate limits.
pub struct Github {
    crab: Octocrab,
    keys: Mutex<HashMap<String, PublicKey>>,
    /// One fetch of a scope's key at a time: tokens checked at once share it.
    key_fetches: Mutex<HashMap<String, std::sync::Arc<Mutex<()>>>>,
    repo_ids: Mutex<HashMap<String, u64>>,
    write_gate: Mutex<Option<Instant>>,
    write_interval: Duration,
    backoff: Backoff,
    /// Set when authenticating as a GitHub App installation.
    app: Option<AppInstallation>,
    /// GitHub's clock minus this host's, from the last reply's `Date`.
    clock_offset: std::sync::Mutex<Option<chrono::Duration>>,
}

/// The GitHub App installation a client acts as: its ids (for messages) and a gate so one
/// installation-token exchange runs at a time.
struct AppInstallation {
    app_id: u64,
    installation_id: u64,
    exchange: Mutex<()>,
}

/// One raw reply: status, headers and body text.
struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Github {
    pub fn connect(section: &GithubSection) -> Result<Self, DestError> {
        let builder = Octocrab::builder()
            .base_uri(section.api_url.as_str())
            .map_err(|e| DestError::fatal(format!("GitHub api_url {}: {e}", section.api_url)))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(section.timeout.min(Duration::from_secs(10))))
            .set_read_timeout(Some(section.timeout))
            .set_write_timeout(Some(section.timeout));
        let mut app_installation = None;
        let crab = match &section.auth {
            GithubAuth::Token(r) => {
                let token = r.resolve_line().map_err(|e| {
                    DestError::fatal(format!("GitHub credential ({}): {e}", r.describe()))
                })?;
                builder
                    .personal_token(token.expose().to_string())
                    .build()
                    .map_err(|e| DestError::fatal(format!("GitHub client: {e}")))?
            }
            GithubAuth::App {
                app_id,
                installation_id,
                private_key,
            } => {
                let pem = private_key.resolve().map_err(|e| {
                    DestError::fatal(format!("GitHub App key ({}): {e}", private_key.describe()))
                })?;
                let key =
                    octocrab::EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|e| {
                        DestError::fatal(format!(
                            "GitHub App key ({}): {e}",
                            private_key.describe()
                        ))
                    })?;
                let app = builder
                    .app((*app_id).into(), key)
                    .build()
                    .map_err(|e| DestError::fatal(format!("GitHub client: {e}")))?;
                // The installation client exchanges a JWT (signed with the key, 9 minutes) for an
                // installation token on first use and caches it; see `installation_token`.
                let installation = app.installation((*installation_id).into()).map_err(|e| {
                    DestError::fatal(format!("GitHub App installation {installation_id}: {e}"))
                })?;
                app_installation = Some(AppInstallation {
                    app_id: *app_id,
                    installation_id: *installation_id,
                    exchange: Mutex::new(()),
                });
                installation
            }
        };
        Ok(Self {
            crab,
            keys: Mutex::new(HashMap::new()),
            key_fetches: Mutex::new(HashMap::new()),
            repo_ids: Mutex::new(HashMap::new()),
            clock_offset: std::sync::Mutex::new(None),
            write_gate: Mutex::new(None),
            write_interval: section.write_interval,
            backoff: Backoff::default(),
            app: app_installation,
        })
    }

    /// As a GitHub App: have a valid installation token before a request, so a refused JWT
    /// (wrong key, wrong ids) is one clear error instead of a failed request retried. A personal
    /// token needs nothing.
    ///
    /// octocrab keeps the token (GitHub's last an hour) and exchanges a new JWT for a new one
    /// whenever less than 30 s of it is left, and once more when GitHub answers 401 (revoked,
    /// or clocks apart); this only makes that exchange happen here, one at a time. Neither the
    /// JWT nor the token is ever logged: the token stays inside octocrab.
    async fn installation_token(&self) -> Result<(), DestError> {
        let Some(app) = &self.app else {
            return Ok(());
        };
        let _one_at_a_time = app.exchange.lock().await;
        let mut attempt = 0;
        loop {
            let error = match self.crab.installation_token().await {
                Ok(_) => return Ok(()),
                Err(e) => app.exchange_error(&e),
            };
            if !error.retryable || attempt + 1 >= self.backoff.attempts {
                return Err(error);
            }
            let delay = self.backoff.delay(attempt, error.wait);
            tracing::info!(
                app_id = app.app_id,
                installation_id = app.installation_id,
                ?delay,
                "GitHub App installation token exchange failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Whether the client can authenticate now (a GitHub App exchanges its installation
    /// token): checked before a replacement is made for a token with GitHub destinations.
    pub async fn ready(&self) -> Result<(), DestError> {
        self.installation_token().await
    }

    /// Prove, without writing, that `dest` can be written: the credential is accepted and can
    /// see the scope (its public key is fetched, and kept for the write), and an organization
    /// secret's `selected` repositories resolve. Checked before a replacement is made.
    pub async fn preflight(&self, dest: &GithubDestination) -> Result<(), DestError> {
        let base = scope_path(dest);
        match self.public_key(&base, false).await {
            Err(e) if e.message.contains("returned 404") => {
                let missing = self.missing_scope(&dest.target).await?;
                return Err(DestError::fatal(format!(
                    "{missing} does not exist or the token cannot see it ({})",
                    e.message
                )));
            }
            other => {
                other?;
            }
        }
        if let GithubTarget::Org {
            org,
            visibility: Visibility::Selected,
            repositories,
        } = &dest.target
        {
            for r in repositories {
                self.repo_id(org, r).await?;
            }
        }
        Ok(())
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Seal `value` with the scope's key and PUT it; a rejected `key_id` re-fetches the key once.
    pub async fn push(
        &self,
        dest: &GithubDestination,
        value: &SecretValue,
    ) -> Result<Receipt, DestError> {
        let base = scope_path(dest);
        let url = format!("{base}/{}", segment(&dest.secret));
        let mut refetched = false;
        loop {
            let key = self.public_key(&base, refetched).await?;
            let sealed = seal(&key, value)?;
            let mut body = serde_json::json!({ "encrypted_value": sealed, "key_id": key.key_id });
            if let GithubTarget::Org {
                org,
                visibility,
                repositories,
            } = &dest.target
            {
                body["visibility"] = visibility.as_str().into();
                if *visibility == Visibility::Selected {
                    let mut ids = Vec::new();
                    for r in repositories {
                        ids.push(self.repo_id(org, r).await?);
                    }
                    body["selected_repository_ids"] = ids.into();
                }
            }
            self.pace_write().await;
            let started = Instant::now();
            let reply = self.request(http::Method::PUT, &url, Some(&body)).await?;
            match reply.status {
                StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                    // In the server's own clock, the write happened no earlier than its reply's
                    // `Date` less the time the exchange took: `updated_at` must reach that.
                    let took = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                    let not_before = server_date(&reply.headers)
                        .map(|d| d - took - chrono::Duration::seconds(1));
                    return Ok(Receipt {
                        not_before,
                        ..Receipt::default()
                    });
                }
                StatusCode::UNPROCESSABLE_ENTITY if !refetched => {
                    tracing::info!(scope = %base, "GitHub rejected the sealed value; fetching the scope's key again");
                    refetched = true;
                }
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                    if rate_limit_wait(&reply).is_none() =>
                {
                    let e = reply_error("PUT", &url, &reply);
                    return Err(DestError::fatal(format!(
                        "{}; the credential can read this scope but not write its secrets: it needs {}",
                        e.message,
                        write_permission(dest)
                    )));
                }
                _ => return Err(reply_error("PUT", &url, &reply)),
            }
        }
    }

    /// The secret exists and its `updated_at` is no earlier than the write's `not_before`;
    /// returns that `updated_at`.
    pub async fn verify(
        &self,
        dest: &GithubDestination,
        receipt: &Receipt,
    ) -> Result<DateTime<Utc>, DestError> {
        let url = format!("{}/{}", scope_path(dest), segment(&dest.secret));
        let Some(updated_at) = self.updated_at(dest).await? else {
            return Err(DestError::fatal(format!(
                "GitHub secret {url} does not exist after the write"
            )));
        };
        match receipt.not_before {
            Some(t) if updated_at < t => Err(DestError::fatal(format!(
                "GitHub secret {url} was not updated (updated_at {} is before our write at {})",
                updated_at.to_rfc3339(),
                t.to_rfc3339()
            ))),
            _ => Ok(updated_at),
        }
    }

    /// The secret's `updated_at`, or `None` when GitHub shows no such secret.
    pub async fn updated_at(
        &self,
        dest: &GithubDestination,
    ) -> Result<Option<DateTime<Utc>>, DestError> {
        let url = format!("{}/{}", scope_path(dest), segment(&dest.secret));
        let reply = self.request(http::Method::GET, &url, None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if reply.status != StatusCode::OK {
            return Err(reply_error("GET", &url, &reply));
        }
        let meta: SecretMeta = serde_json::from_str(&reply.body)
            .map_err(|e| DestError::fatal(format!("GitHub GET {url}: unreadable reply: {e}")))?;
        Ok(Some(meta.updated_at))
    }

    /// GitHub's time now, as far as the last reply's `Date` tells (to the second).
    pub fn server_now(&self) -> Option<DateTime<Utc>> {
        let offset = (*self.clock_offset.lock().ok()?)?;
        Some(Utc::now() + offset)
    }

    /// Whether `dest` may hold something written since a write began: the secret's
    /// `updated_at` when it is that late, `None` when GitHub shows the secret absent or last
    /// updated before then. `since_github` is the write's start on GitHub's own clock (taken
    /// then from its replies' `Date`), compared with a 2 s margin for both times' precision;
    /// without it, `since` (this host's clock) less `skew`. GitHub never returns a secret's
    /// value, so this is all it can tell.
    pub async fn maybe_written_since(
        &self,
        dest: &GithubDestination,
        since: DateTime<Utc>,
        since_github: Option<DateTime<Utc>>,
        skew: chrono::Duration,
    ) -> Result<Option<DateTime<Utc>>, DestError> {
        let Some(updated_at) = self.updated_at(dest).await? else {
            return Ok(None);
        };
        let earliest = match since_github {
            Some(t) => t - chrono::Duration::seconds(2),
            None => since - skew,
        };
        Ok((updated_at >= earliest).then_some(updated_at))
    }

    /// Prove this client can write `dest`'s scope without writing: fetch the scope's public key
    /// and, for an organization secret with `selected` repositories, resolve each repository.
    /// A 404 says which repository, environment or organization does not exist or is not
    /// visible to the credential.
    pub async fn check_scope(&self, dest: &GithubDestination) -> Result<(), DestError> {
        let base = scope_path(dest);
        let url = base_key_path(&base);
        let reply = self.request(http::Method::GET, &url, None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            let missing = self.missing_scope(&dest.target).await?;
            return Err(DestError::fatal(format!(
                "{missing} does not exist or the token cannot see it (GET {url} returned 404)"
            )));
        }
        if reply.status != StatusCode::OK {
            return Err(reply_error("GET", &url, &reply));
        }
        let key: PublicKey = serde_json::from_str(&reply.body).map_err(|e| {
            DestError::fatal(format!("GitHub GET {url}: unreadable public key: {e}"))
        })?;
        // Sealing an empty value proves the key is a usable Curve25519 key.
        seal(&key, &SecretValue::new(""))?;
        self.keys.lock().await.insert(base, key);
        if let GithubTarget::Org {
            org,
            visibility: Visibility::Selected,
            repositories,
        } = &dest.target
        {
            let mut missing = Vec::new();
            for r in repositories {
                let path = format!("/repos/{}/{}", segment(org), segment(r));
                if !self.exists(&path).await? {
                    missing.push(format!("{org}/{r}"));
                }
            }
            if !missing.is_empty() {
                return Err(DestError::fatal(format!(
                    "selected repository {} does not exist or the token cannot see it",
                    missing.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Which part of a scope whose public key was not found is missing.
    async fn missing_scope(&self, target: &GithubTarget) -> Result<String, DestError> {
        Ok(match target {
            GithubTarget::Repo { owner, repo } => format!("repository {owner}/{repo}"),
            GithubTarget::Environment {
                owner,
                repo,
                environment,
            } => {
                let path = format!("/repos/{}/{}", segment(owner), segment(repo));
                if self.exists(&path).await? {
                    format!("environment `{environment}` of {owner}/{repo}")
                } else {
                    format!("repository {owner}/{repo}")
                }
            }
            GithubTarget::Org { org, .. } => format!("organization {org}"),
        })
    }

    /// `GET path` answered 200 (true) or 404 (false); anything else is an error.
    async fn exists(&self, path: &str) -> Result<bool, DestError> {
        let reply = self.request(http::Method::GET, path, None).await?;
        match reply.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(reply_error("GET", path, &reply)),
        }
    }

    async fn public_key(&self, base: &str, refresh: bool) -> Result<PublicKey, DestError> {
        let gate = self
            .key_fetches
            .lock()
            .await
            .entry(base.to_string())
            .or_default()
            .clone();
        let _one = gate.lock().await;
        if !refresh && let Some(k) = self.keys.lock().await.get(base) {
            return Ok(k.clone());
        }
        let url = base_key_path(base);
        let reply = self.request(http::Method::GET, &url, None).await?;
        if reply.status != StatusCode::OK {
            return Err(reply_error("GET", &url, &reply));
        }
        let key: PublicKey = serde_json::from_str(&reply.body).map_err(|e| {
            DestError::fatal(format!("GitHub GET {url}: unreadable public key: {e}"))
        })?;
        self.keys.lock().await.insert(base.to_string(), key.clone());
        Ok(key)
    }

    async fn repo_id(&self, owner: &str, repo: &str) -> Result<u64, DestError> {
        let full = format!("{owner}/{repo}");
        if let Some(id) = self.repo_ids.lock().await.get(&full) {
            return Ok(*id);
        }
        let url = format!("/repos/{}/{}", segment(owner), segment(repo));
        let reply = self.request(http::Method::GET, &url, None).await?;
        if reply.status != StatusCode::OK {
            return Err(reply_error("GET", &url, &reply));
        }
        let r: Repository = serde_json::from_str(&reply.body)
            .map_err(|e| DestError::fatal(format!("GitHub GET {url}: unreadable reply: {e}")))?;
        self.repo_ids.lock().await.insert(full, r.id);
        Ok(r.id)
    }

    /// Serialise writes and space them `write_interval` apart (GitHub's advice for mutations).
    async fn pace_write(&self) {
        let mut last = self.write_gate.lock().await;
        if let Some(t) = *last {
            let since = t.elapsed();
            if since < self.write_interval {
                tokio::time::sleep(self.write_interval - since).await;
            }
        }
        *last = Some(Instant::now());
    }

    /// One request with retries for rate limits, 5xx and transport errors. Returns the final
    /// reply whatever its status, or an error when no reply could be had.
    async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, DestError> {
        self.installation_token().await?;
        let mut attempt = 0;
        loop {
            let result = self.send(method.clone(), path, body).await;
            let (retry, wait) = match &result {
                Ok(r) => match rate_limit_wait(r) {
                    Some(w) => (true, Some(w)),
                    None => (r.status.is_server_error(), None),
                },
                Err(_) => (true, None),
            };
            if !retry || attempt + 1 >= self.backoff.attempts {
                return result.map_err(DestError::transient).and_then(|r| {
                    if rate_limit_wait(&r).is_some() || r.status.is_server_error() {
                        Err(reply_error(method.as_str(), path, &r))
                    } else {
                        Ok(r)
                    }
                });
            }
            let delay = self.backoff.delay(attempt, wait);
            tracing::info!(%method, path, ?delay, "GitHub asked to slow down or failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, String> {
        let resp = match method {
            http::Method::PUT => self.crab._put(path, body).await,
            http::Method::DELETE => self.crab._delete(path, body).await,
            _ => self.crab._get(path).await,
        }
        .map_err(|e| {
            crate::metrics::api_call("github", 0);
            format!("GitHub {method} {path}: {}", crate::eci::error_chain(&e))
        })?;
        let status = resp.status();
        crate::metrics::api_call("github", status.as_u16());
        let headers = resp.headers().clone();
        if let Some(date) = server_date(&headers)
            && let Ok(mut offset) = self.clock_offset.lock()
        {
            *offset = Some(date - Utc::now());
        }
        let body = self
            .crab
            .body_to_string(resp)
            .await
            .map_err(|e| format!("GitHub {method} {path}: reading reply: {e}"))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

impl AppInstallation {
    /// A failed JWT → installation token exchange: final when GitHub refused the app's
    /// credentials, worth retrying when GitHub or the network failed.
    fn exchange_error(&self, e: &octocrab::Error) -> DestError {
        let (app_id, installation_id) = (self.app_id, self.installation_id);
        let what = format!(
            "GitHub App {app_id} installation {installation_id}: no installation token (POST /app/installations/{installation_id}/access_tokens)"
        );
        let octocrab::Error::GitHub { source, .. } = e else {
            return DestError::transient(format!("{what}: {}", crate::eci::error_chain(e)));
        };
        let status = source.status_code;
        let message = format!(
            "{what} returned {}: {}",
            status.as_u16(),
            crate::secret::scrub(source.message.trim())
        );
        let limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && source.message.to_ascii_lowercase().contains("rate limit"));
        if limited || status.is_server_error() {
            let wait = source.rate_limit_reset.and_then(|reset| {
                let now = u64::try_from(Utc::now().timestamp()).ok()?;
                Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
            });
            return DestError::transient(message).with_wait(wait);
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED => {
                "; check that private_key is this app's key and app_id is right"
            }
            StatusCode::NOT_FOUND => "; check installation_id: is the app installed there?",
            _ => "",
        };
        DestError::fatal(format!("{message}{hint}"))
    }
}

/// `/repos/o/r/actions/secrets`, `/repos/o/r/environments/e/secrets`, `/orgs/o/actions/secrets`, ...
fn scope_path(dest: &GithubDestination) -> String {
    let app = match dest.app {
        SecretApp::Actions => "actions",
        SecretApp::Dependabot => "dependabot",
    };
    match &dest.target {
        GithubTarget::Repo { owner, repo } => {
            format!("/repos/{}/{}/{app}/secrets", segment(owner), segment(repo))
        }
        GithubTarget::Environment {
            owner,
            repo,
            environment,
        } => format!(
            "/repos/{}/{}/environments/{}/secrets",
            segment(owner),
            segment(repo),
            segment(environment)
        ),
        GithubTarget::Org { org, .. } => format!("/orgs/{}/{app}/secrets", segment(org)),
    }
}

fn base_key_path(base: &str) -> String {
    format!("{base}/public-key")
}

/// Seal `value` for the holder of `key` (libsodium sealed box), as standard base64.
fn seal(key: &PublicKey, value: &SecretValue) -> Result<String, DestError> {
    let raw = B64.decode(key.key.trim()).map_err(|e| {
        DestError::fatal(format!(
            "GitHub public key {} is not base64: {e}",
            key.key_id
        ))
    })?;
    let pk = crypto_box::PublicKey::from_slice(&raw).map_err(|_| {
        DestError::fatal(format!(
            "GitHub public key {} is {} bytes, not a 32-byte Curve25519 key",
            key.key_id,
            raw.len()
        ))
    })?;
    let sealed = pk
        .seal(&mut crypto_box::aead::OsRng, value.expose().as_bytes())
        .map_err(|_| DestError::fatal("sealing the value failed"))?;
    Ok(B64.encode(sealed))
}

/// How long GitHub asked us to wait, for a primary or secondary rate-limit reply.
fn rate_limit_wait(r: &Reply) -> Option<Duration> {
    let limited = r.status == StatusCode::TOO_MANY_REQUESTS
        || (r.status == StatusCode::FORBIDDEN
            && (r.headers.contains_key(http::header::RETRY_AFTER)
                || r.headers
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v == "0")
                || r.body.to_ascii_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    // Secondary limits without a hint: GitHub asks for at least a minute; the backoff caps it.
    Some(
        retry_after_from(&r.headers)
            .or_else(|| ratelimit_reset_from(&r.headers))
            .unwrap_or(Duration::from_secs(60)),
    )
}

fn server_date(headers: &http::HeaderMap) -> Option<DateTime<Utc>> {
    let v = headers.get(http::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn reply_error(method: &str, path: &str, r: &Reply) -> DestError {
    let msg: GithubMessage = serde_json::from_str(&r.body).unwrap_or_default();
    let text = if msg.message.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::secret::scrub(&msg.message))
    };
    let message = format!(
        "GitHub {method} {path} returned {}{text}",
        r.status.as_u16()
    );
    if let Some(wait) = rate_limit_wait(r) {
        return DestError::transient(message).with_wait(Some(wait));
    }
    if r.status.is_server_error() {
        DestError::transient(message)
    } else if r.status == StatusCode::UNAUTHORIZED {
        DestError::fatal(format!(
            "{message}; GitHub does not accept the [github] credential (wrong, expired or revoked)"
        ))
    } else {
        DestError::fatal(message)
    }
}

/// The GitHub permission a write of `dest` needs, for messages.
fn write_permission(dest: &GithubDestination) -> &'static str {
    match (&dest.app, &dest.target) {
        (SecretApp::Dependabot, GithubTarget::Org { .. }) => {
            "the organization permission \"Dependabot secrets\" (write), or admin:org for a classic token"
        }
        (SecretApp::Dependabot, _) => {
            "the repository permission \"Dependabot secrets\" (write), or repo for a classic token"
        }
        (_, GithubTarget::Org { .. }) => {
            "the organization permission \"Secrets\" (write), or admin:org for a classic token"
        }
        (_, GithubTarget::Environment { .. }) => {
            "the repository permission \"Environments\" (write), or repo for a classic token"
        }
        (_, GithubTarget::Repo { .. }) => {
            "the repository permission \"Secrets\" (write), or repo for a classic token"
        }
    }
}
