//! Fake GitHub App authentication: apps registered with an RSA public key, JWT-authenticated
//! `/app` routes, and installation access tokens the secrets API accepts until they expire.
//!
//! The JWT is checked as GitHub does: RS256 signed with the app's key, `iss` the app id (number
//! or string), `iat` and `exp` present, `exp` in the future and at most 10 minutes after `iat`.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::github_json::{GhError, account_json};
use crate::state::{AppState, lock};
use crate::timefmt::{github_time, now_seconds};

/// The longest JWT GitHub accepts: `exp - iat` at most ten minutes.
const MAX_JWT_LIFETIME_SECS: i64 = 600;
/// How far in the future `iat` may be (clock drift).
const IAT_SKEW_SECS: i64 = 60;
/// GitHub's installation token lifetime.
pub(crate) const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// A registered GitHub App with its one installation.
pub(crate) struct App {
    pub id: u64,
    pub slug: String,
    pub installation_id: u64,
    /// Login of the account the app is installed on.
    pub account: String,
    pub token_ttl: Duration,
    pub created_at: DateTime<Utc>,
    key: DecodingKey,
}

/// An installation access token handed out by `POST .../access_tokens`.
pub(crate) struct IssuedToken {
    pub app_id: u64,
    pub installation_id: u64,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

/// Every app and every installation token issued, part of the GitHub world (reset with it).
pub(crate) struct Apps {
    pub apps: BTreeMap<u64, App>,
    /// Keyed by token value.
    pub tokens: BTreeMap<String, IssuedToken>,
    next_app: u64,
    next_installation: u64,
}

impl Default for Apps {
    fn default() -> Self {
        Apps {
            apps: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_app: 100_000,
            next_installation: 50_000_000,
        }
    }
}

impl Apps {
    /// Registers an app; `Err` when the PEM is not an RSA public key.
    pub(crate) fn register(
        &mut self,
        public_key_pem: &str,
        account: &str,
        token_ttl: Duration,
    ) -> Result<&App, String> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .map_err(|e| format!("public_key_pem is not an RSA public key in PEM: {e}"))?;
        self.next_app += 1;
        self.next_installation += 1;
        let id = self.next_app;
        let app = App {
            id,
            slug: format!("sandbox-app-{id}"),
            installation_id: self.next_installation,
            account: account.to_owned(),
            token_ttl,
            created_at: now_seconds(),
            key,
        };
        Ok(self.apps.entry(id).or_insert(app))
    }

    /// An installation token that has not expired and was not revoked.
    pub(crate) fn accepts(&self, credential: &str) -> bool {
        self.tokens
            .get(credential)
            .is_some_and(|t| !t.revoked && Utc::now() < t.expires_at)
    }

    /// Revokes every token of `app_id`; how many were live.
    pub(crate) fn revoke(&mut self, app_id: u64) -> usize {
        let now = Utc::now();
        self.tokens
            .values_mut()
            .filter(|t| t.app_id == app_id && !t.revoked && now < t.expires_at)
            .map(|t| t.revoked = true)
            .count()
    }

    fn issue(&mut self, app_id: u64) -> Option<(String, DateTime<Utc>)> {
        let app = self.apps.get(&app_id)?;
        let installation_id = app.installation_id;
        let expires_at = now_seconds() + app.token_ttl;
        // Forget tokens that expired long ago, so a long-running sandbox stays small.
        let horizon = Utc::now() - Duration::hours(1);
        self.tokens.retain(|_, t| t.expires_at > horizon);
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(36)
            .map(char::from)
            .collect();
        let token = format!("ghs_{suffix}");
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                app_id,
                installation_id,
                expires_at,
                revoked: false,
            },
        );
        Some((token, expires_at))
    }
}

/// Routes under `/github` authenticated by the app's JWT (not by a token).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(get_app))
        .route(
            "/app/installations/{installation_id}",
            get(get_installation),
        )
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(access_tokens),
        )
}

fn jwt_error(message: &str) -> GhError {
    GhError::new(StatusCode::UNAUTHORIZED, message)
}

fn undecodable() -> GhError {
    jwt_error("A JSON web token could not be decoded")
}

/// The bearer JWT of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, GhError> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| jwt_error("'Authorization' header is required"))?;
    let (scheme, value) = raw.trim().split_once(' ').ok_or_else(undecodable)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(undecodable());
    }
    Ok(value.trim())
}

/// A JWT claim that must be an integer; GitHub also takes a string of digits for `iss`.
fn integer_claim(claims: &Value, name: &str) -> Option<i64> {
    match claims.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if name == "iss" => s.trim().parse().ok(),
        _ => None,
    }
}

/// The app a JWT was signed by, after checking it as GitHub does.
fn verify<'a>(apps: &'a Apps, jwt: &str) -> Result<&'a App, GhError> {
    // `iss` picks the key, so read it before the signature can be checked.
    let payload = jwt.split('.').nth(1).ok_or_else(undecodable)?;
    let unverified: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let iss = integer_claim(&unverified, "iss")
        .ok_or_else(|| jwt_error("'Issuer' claim ('iss') must be an Integer"))?;
    let app = u64::try_from(iss)
        .ok()
        .and_then(|id| apps.apps.get(&id))
        .ok_or_else(|| jwt_error("Integration not found"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = 0;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &app.key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => jwt_error(
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            ),
            ErrorKind::MissingRequiredClaim(_) => {
                jwt_error("'Expiration time' claim ('exp') is required")
            }
            _ => undecodable(),
        })?
        .claims;
    let iat = integer_claim(&claims, "iat").ok_or_else(|| {
        jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        )
    })?;
    let exp = integer_claim(&claims, "exp").ok_or_else(undecodable)?;
    if iat > Utc::now().timestamp() + IAT_SKEW_SECS {
        return Err(jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        ));
    }
    if exp - iat > MAX_JWT_LIFETIME_SECS {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(app)
}

/// The app behind a request's JWT and the installation id in its path (404 when not the app's).
fn authorize<'a>(
    apps: &'a Apps,
    headers: &HeaderMap,
    path: Option<Result<Path<String>, PathRejection>>,
) -> Result<&'a App, GhError> {
    let app = verify(apps, bearer(headers)?)?;
    if let Some(p) = path {
        let Path(raw) = p.map_err(|_| GhError::not_found())?;
        if raw.parse::<u64>().ok() != Some(app.installation_id) {
            return Err(GhError::not_found());
        }
    }
    Ok(app)
}

fn permissions() -> Value {
    json!({
        "metadata": "read",
        "secrets": "write",
        "environments": "write",
        "organization_secrets": "write",
        "dependabot_secrets": "write",
    })
}

async fn access_tokens(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, GhError> {
    if !body.iter().all(u8::is_ascii_whitespace) && serde_json::from_slice::<Value>(&body).is_err()
    {
        return Err(GhError::new(
            StatusCode::BAD_REQUEST,
            "Problems parsing JSON",
        ));
    }
    let mut world = lock(&st.github);
    let (app_id, installation_id) = {
        let app = authorize(&world.apps, &headers, Some(path))?;
        (app.id, app.installation_id)
    };
    let (token, expires_at) = world.apps.issue(app_id).ok_or_else(GhError::not_found)?;
    tracing::info!(
        app_id,
        installation_id,
        expires_at = %github_time(expires_at),
        "github: installation token issued"
    );
    let reply = json!({
        "token": token,
        "expires_at": github_time(expires_at),
        "permissions": permissions(),
        "repository_selection": "all",
    });
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

async fn get_installation(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, GhError> {
    let mut world = lock(&st.github);
    let (app_id, installation_id, account, created_at) = {
        let app = authorize(&world.apps, &headers, Some(path))?;
        (
            app.id,
            app.installation_id,
            app.account.clone(),
            app.created_at,
        )
    };
    let (account_id, is_org) = world.owner_id(&account);
    let api = format!("{}/github", st.base_url);
    let body = json!({
        "id": installation_id,
        "account": account_json(&api, &account, account_id, is_org),
        "access_tokens_url": format!("{api}/app/installations/{installation_id}/access_tokens"),
        "repositories_url": format!("{api}/installation/repositories"),
        "html_url": format!("{api}/html/settings/installations/{installation_id}"),
        "app_id": app_id,
        "target_id": account_id,
        "target_type": if is_org { "Organization" } else { "User" },
        "permissions": permissions(),
        "events": [],
        "single_file_name": null,
        "repository_selection": "all",
        "created_at": github_time(created_at),
        "updated_at": github_time(created_at),
    });
    Ok(Json(body).into_response())
}

async fn get_app(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, GhError> {
    let mut world = lock(&st.github);
    let (app_id, slug, account, created_at) = {
        let app = authorize(&world.apps, &headers, None)?;
        (
            app.id,
            app.slug.clone(),
            app.account.clone(),
            app.created_at,
        )
    };
    let (account_id, is_org) = world.owner_id(&account);
    let api = format!("{}/github", st.base_url);
    let body = json!({
        "id": app_id,
        "slug": slug,
        "node_id": format!("A_kwDO{app_id:X}"),
        "owner": account_json(&api, &account, account_id, is_org),
        "name": slug,
        "description": "eci-sandbox GitHub App",
        "external_url": format!("{api}/html/apps/{slug}"),
        "html_url": format!("{api}/html/apps/{slug}"),
        "created_at": github_time(created_at),
        "updated_at": github_time(created_at),
        "permissions": permissions(),
        "events": [],
        "installations_count": 1,
    });
    Ok(Json(body).into_response())
}
