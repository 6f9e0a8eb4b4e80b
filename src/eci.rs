//! The ECI token API client: the only place the contract's paths live.

use crate::retry::{Backoff, retry_after_from};
use crate::secret::{SecretValue, scrub};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Every path of the ECI token API contract, relative to the base URL.
mod paths {
    pub const ORGANIZATION: &str = "/user/organization";
    pub const TOKENS: &str = "/user/user_access_token";
    pub fn token(id: &str) -> String {
        format!("{TOKENS}/{id}")
    }
}

/// Page size: the contract's maximum.
const PAGE: usize = 100;
/// More tokens than any account holds: a listing that goes on is a broken server.
const MAX_TOKENS: usize = 100_000;

/// An ECI access token as listed or created. `value` is `None` when the server did not return it.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub description: String,
    pub value: Option<SecretValue>,
    pub created: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub roles: Vec<String>,
    pub owner: Option<String>,
}

#[derive(Deserialize)]
struct WireToken {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    created: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    expires: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    owner: Option<WireOwner>,
}

#[derive(Deserialize)]
struct WireOwner {
    #[serde(default)]
    name: Option<String>,
}

impl From<WireToken> for Token {
    fn from(w: WireToken) -> Self {
        Token {
            id: w.id,
            name: w.name,
            description: w.description.unwrap_or_default(),
            value: w.token.filter(|t| !t.is_empty()).map(SecretValue::new),
            created: w.created.map(|t| t.with_timezone(&Utc)),
            expires: w.expires.map(|t| t.with_timezone(&Utc)),
            roles: w.roles,
            owner: w.owner.and_then(|o| o.name),
        }
    }
}

/// Who the calling token belongs to (`GET /user/organization`).
#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The answer to [`EciClient::probe_create_permission`].
#[derive(Debug)]
pub enum CreateProbe {
    /// The permission check passed (the impossible body was refused with 400/422).
    Allowed,
    /// 403: the calling token lacks the permission; the scrubbed error text.
    Denied(String),
    /// The server accepted the impossible create and made token `id`; `deleted` is the
    /// result of deleting it again at once.
    Created {
        id: String,
        deleted: Result<bool, EciError>,
    },
}

/// What went wrong talking to ECI. Messages are scrubbed of anything token-shaped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EciError {
    #[error(
        "ECI rejected the credential (401 {code}): {message}; the [eci] token is wrong, expired or revoked"
    )]
    Unauthenticated { code: String, message: String },
    #[error("ECI denied permission (403 {code}): {message}")]
    PermissionDenied { code: String, message: String },
    #[error("ECI: not found (404)")]
    NotFound,
    #[error("ECI rejected the request ({status} {code}): {message}")]
    Invalid {
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "ECI rate-limited the request (429{}); nothing was changed by it",
        wait_hint(retry_after)
    )]
    RateLimited { retry_after: Option<Duration> },
    #[error("ECI server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("ECI unreachable: {0}")]
    Transport(String),
    #[error("ECI did not answer within {0:?}")]
    Timeout(Duration),
    #[error("ECI reply could not be read: {0}")]
    Decode(String),
}

impl EciError {
    /// Whether the request may have taken effect although no success reply arrived
    /// (a lost reply): only then must a create be looked for before it is sent again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            EciError::Transport(_)
                | EciError::Timeout(_)
                | EciError::Decode(_)
                | EciError::Server { .. }
        )
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            EciError::RateLimited { .. }
                | EciError::Transport(_)
                | EciError::Timeout(_)
                | EciError::Server {
                    status: 502..=504,
                    ..
                }
        )
    }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// `, it asked to wait 120s` for a `Retry-After`.
fn wait_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", it asked to wait {}s", d.as_secs()))
        .unwrap_or_default()
}

/// A client bound to one base URL and one calling token.
#[derive(Clone)]
pub struct EciClient {
    http: reqwest::Client,
    base: String,
    /// Shared by clones, so a switch to a rotated credential reaches every user of the client.
    token: Arc<RwLock<SecretValue>>,
    timeout: Duration,
    backoff: Backoff,
}

impl EciClient {
    pub fn new(base: &str, token: SecretValue, timeout: Duration) -> Result<Self, EciError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("eci-secret-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EciError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: Arc::new(RwLock::new(token)),
            timeout,
            backoff: Backoff::default(),
        })
    }

    /// The same client calling with another token (to prove a new token authenticates).
    pub fn with_token(&self, token: SecretValue) -> Self {
        Self {
            token: Arc::new(RwLock::new(token)),
            ..self.clone()
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The credential this client calls with.
    pub fn token(&self) -> SecretValue {
        match self.token.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Call with `token` from now on (this client and its clones): after a self-rotation.
    pub fn switch_token(&self, token: SecretValue) {
        match self.token.write() {
            Ok(mut t) => *t = token,
            Err(poisoned) => *poisoned.into_inner() = token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /user/organization`: is the calling token alive, and whose is it.
    pub async fn whoami(&self) -> Result<Organization, EciError> {
        let body = self.get_json(paths::ORGANIZATION, &[]).await?;
        serde_json::from_slice(&body).map_err(|e| EciError::Decode(scrub(&e.to_string())))
    }

    /// Every token whose name matches `name` exactly (the ILIKE filter narrows the listing,
    /// the exact comparison decides), oldest first.
    pub async fn list_named(&self, name: &str) -> Result<Vec<Token>, EciError> {
        // A backslash may be the server's LIKE escape character: list without the filter then.
        let filter = (!name.contains('\\')).then_some(name);
        let all = self.list(filter).await?;
        Ok(all.into_iter().filter(|t| t.name == name).collect())
    }

    /// All tokens visible to the caller, following pages of 100.
    pub async fn list(&self, filter_name_ilike: Option<&str>) -> Result<Vec<Token>, EciError> {
        let mut out = Vec::new();
        loop {
            let skip = out.len().to_string();
            let count = PAGE.to_string();
            let mut query = vec![("skip", skip.as_str()), ("count", count.as_str())];
            if let Some(f) = filter_name_ilike {
                query.push(("filter_name_ilike", f));
            }
            let body = self.get_json(paths::TOKENS, &query).await?;
            let page: Vec<WireToken> = serde_json::from_slice(&body)
                .map_err(|e| EciError::Decode(scrub(&e.to_string())))?;
            let n = page.len();
            // A server that ignores `skip` would page forever: stop at a page seen before, and
            // at a bound no real account reaches.
            if let Some(first) = page.first()
                && out.iter().any(|t: &Token| t.id == first.id)
            {
                return Err(EciError::Decode(format!(
                    "the token list repeats itself at skip={skip} (the server ignores paging)"
                )));
            }
            out.extend(page.into_iter().map(Token::from));
            if n < PAGE {
                return Ok(out);
            }
            if out.len() >= MAX_TOKENS {
                return Err(EciError::Decode(format!(
                    "the token list goes on past {MAX_TOKENS} tokens; giving up"
                )));
            }
        }
    }

    /// One token by id, with its value when the server returns it.
    pub async fn get(&self, id: &str) -> Result<Token, EciError> {
        let body = self.get_json(&paths::token(id), &[]).await?;
        let wire: WireToken =
            serde_json::from_slice(&body).map_err(|e| EciError::Decode(scrub(&e.to_string())))?;
        Ok(wire.into())
    }

    /// Create a token. Sent once, never retried: a lost reply may have created it.
    pub async fn create(
        &self,
        name: &str,
        description: &str,
        expires: DateTime<Utc>,
        idempotency_key: &str,
    ) -> Result<Token, EciError> {
        let body = serde_json::json!({
            "name": name,
            "description": description,
            "expires": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let req = self
            .http
            .post(self.url(paths::TOKENS))
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        let bytes = self.send_once(req).await?;
        let wire: WireToken =
            serde_json::from_slice(&bytes).map_err(|e| EciError::Decode(scrub(&e.to_string())))?;
        let token = Token::from(wire);
        if token.value.is_none() {
            return Err(EciError::Decode(format!(
                "create returned token {} without its value",
                token.id
            )));
        }
        Ok(token)
    }

    /// Whether the calling token may create tokens (`User.UserAccessToken.CREATE`), without
    /// creating one. ECI has no capabilities endpoint, so this sends a create that cannot
    /// succeed (an empty name and an `expires` in the past) and reads the answer: the server
    /// checks permission before it validates the body, so 403 `PERMISSION_DENIED` means the
    /// permission is missing and 400/422 means the permission check passed and only the bad
    /// body was refused. A 2xx means the server made a token anyway: it is deleted at once and
    /// reported. Any other error (401, 5xx, unreachable) is returned as is. Sent once.
    pub async fn probe_create_permission(&self) -> Result<CreateProbe, EciError> {
        let body = serde_json::json!({
            "name": "",
            "description": "eci-secret-sync --check --online permission probe; must not be created",
            "expires": "2000-01-01T00:00:00Z",
        });
        let req = self
            .http
            .post(self.url(paths::TOKENS))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body);
        let bytes = match self.send_once(req).await {
            Ok(bytes) => bytes,
            Err(EciError::PermissionDenied { code, message }) => {
                return Ok(CreateProbe::Denied(
                    EciError::PermissionDenied { code, message }.to_string(),
                ));
            }
            Err(EciError::Invalid {
                status: 400 | 422, ..
            }) => return Ok(CreateProbe::Allowed),
            Err(e) => return Err(e),
        };
        let id = serde_json::from_slice::<WireToken>(&bytes)
            .map(|w| w.id)
            .map_err(|e| {
                EciError::Decode(format!(
                    "the permission probe was accepted and may have created a token, but the reply could not be read ({}); look for a token with an empty name",
                    scrub(&e.to_string())
                ))
            })?;
        let deleted = self.delete(&id).await;
        Ok(CreateProbe::Created { id, deleted })
    }

    /// Delete a token. A token that is already gone counts as deleted (`Ok(false)`).
    pub async fn delete(&self, id: &str) -> Result<bool, EciError> {
        let url = self.url(&paths::token(id));
        match self
            .with_retries(|| self.send_once(self.http.delete(url.clone())))
            .await
        {
            Ok(_) => Ok(true),
            Err(EciError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>, EciError> {
        let url = self.url(path);
        self.with_retries(|| self.send_once(self.http.get(url.clone()).query(query)))
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET, PUT and DELETE are retried on 429/502/503/504 and transport errors, honouring
    /// `Retry-After`; the number of attempts is bounded by the backoff policy.
    async fn with_retries<F, Fut>(&self, mut call: F) -> Result<Vec<u8>, EciError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, EciError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.retryable() && attempt + 1 < self.backoff.attempts => {
                    let hint = match &e {
                        EciError::RateLimited { retry_after } => *retry_after,
                        _ => None,
                    };
                    let wait = self.backoff.delay(attempt, hint);
                    if wait >= Duration::from_secs(5) {
                        // A long wait at a terminal must not look like a hang.
                        tracing::warn!(
                            error = %e,
                            wait_seconds = wait.as_secs(),
                            attempt = attempt + 1,
                            of = self.backoff.attempts,
                            "ECI request failed; retrying after a wait"
                        );
                    } else {
                        tracing::debug!(error = %e, ?wait, "retrying ECI request");
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, EciError> {
        let req = req
            .bearer_auth(self.token().expose())
            .timeout(self.timeout)
            .header("Accept", "application/json");
        let resp = req.send().await.map_err(|e| {
            crate::metrics::api_call("eci", 0);
            self.transport(e)
        })?;
        let status = resp.status().as_u16();
        crate::metrics::api_call("eci", status);
        let retry_after = retry_after_from(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = scrub(&parsed.code);
        let message = if parsed.message.is_empty() {
            format!("HTTP {status} with a non-JSON body")
        } else {
            scrub(&parsed.message)
        };
        Err(match status {
            401 => EciError::Unauthenticated { code, message },
            403 => EciError::PermissionDenied { code, message },
            404 => EciError::NotFound,
            429 => EciError::RateLimited { retry_after },
            500..=599 => EciError::Server { status, message },
            _ => EciError::Invalid {
                status,
                code,
                message,
            },
        })
    }

    fn transport(&self, e: reqwest::Error) -> EciError {
        if e.is_timeout() {
            EciError::Timeout(self.timeout)
        } else {
            // reqwest's Display names the URL (base + path), never headers or bodies.
            EciError::Transport(scrub(&error_chain(&e)))
        }
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}
