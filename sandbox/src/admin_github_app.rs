//! Admin endpoints for fake GitHub Apps: register an app (its public key), inspect the
//! installation tokens issued, change their lifetime, revoke them.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{patch, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{AdminError, AdminResult};
use crate::github_app::{App, Apps, DEFAULT_TOKEN_TTL_SECS};
use crate::state::{AppState, lock};
use crate::timefmt::github_time;

/// Longest installation token lifetime the admin API takes (a day).
const MAX_TTL_SECS: u64 = 86_400;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/github/apps", post(register).get(list))
        .route("/github/apps/{app_id}", patch(update))
        .route("/github/apps/{app_id}/revoke-tokens", post(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    public_key_pem: String,
    installation_token_ttl_secs: Option<u64>,
    /// Login the app is installed on (default `acme`).
    account: Option<String>,
}

fn ttl(secs: Option<u64>) -> Result<Duration, AdminError> {
    let secs = secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&secs) {
        return Err(AdminError::bad(format!(
            "installation_token_ttl_secs must be between 1 and {MAX_TTL_SECS}"
        )));
    }
    Ok(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
}

fn app_view(app: &App) -> Value {
    json!({
        "app_id": app.id,
        "installation_id": app.installation_id,
        "slug": app.slug,
        "account": app.account,
        "installation_token_ttl_secs": app.token_ttl.num_seconds(),
    })
}

async fn register(
    State(st): State<AppState>,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    let token_ttl = ttl(b.installation_token_ttl_secs)?;
    let account = b.account.unwrap_or_else(|| "acme".to_owned());
    if account.is_empty() || account.contains('/') {
        return Err(AdminError::bad("account must be a plain login"));
    }
    let mut world = lock(&st.github);
    let app = world
        .apps
        .register(&b.public_key_pem, &account, token_ttl)
        .map_err(AdminError::bad)?;
    let reply = app_view(app);
    tracing::info!(
        app_id = app.id,
        installation_id = app.installation_id,
        "github: app registered"
    );
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// Every app, with the installation tokens issued for it (values included: this is the admin API).
async fn list(State(st): State<AppState>) -> Json<Value> {
    let world = lock(&st.github);
    let apps: &Apps = &world.apps;
    let out: Vec<Value> = apps
        .apps
        .values()
        .map(|app| {
            let tokens: Vec<Value> = apps
                .tokens
                .iter()
                .filter(|(_, t)| t.app_id == app.id)
                .map(|(value, t)| {
                    json!({
                        "token": value,
                        "installation_id": t.installation_id,
                        "expires_at": github_time(t.expires_at),
                        "revoked": t.revoked,
                    })
                })
                .collect();
            let mut v = app_view(app);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("tokens".to_owned(), Value::Array(tokens));
            }
            v
        })
        .collect();
    Json(Value::Array(out))
}

fn app_id(p: Result<Path<String>, PathRejection>) -> Result<u64, AdminError> {
    let Path(raw) = p?;
    raw.parse()
        .map_err(|_| AdminError::bad(format!("bad app id {raw:?}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    installation_token_ttl_secs: u64,
}

/// Changes the lifetime of tokens issued from now on.
async fn update(
    State(st): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> AdminResult {
    let id = app_id(p)?;
    let Json(b) = body?;
    let token_ttl = ttl(Some(b.installation_token_ttl_secs))?;
    let mut world = lock(&st.github);
    let app = world
        .apps
        .apps
        .get_mut(&id)
        .ok_or_else(|| AdminError::not_found(format!("no app {id}")))?;
    app.token_ttl = token_ttl;
    Ok(Json(app_view(app)).into_response())
}

/// Revokes every live installation token of the app (GitHub: the app's key was rotated, say).
async fn revoke(State(st): State<AppState>, p: Result<Path<String>, PathRejection>) -> AdminResult {
    let id = app_id(p)?;
    let mut world = lock(&st.github);
    if !world.apps.apps.contains_key(&id) {
        return Err(AdminError::not_found(format!("no app {id}")));
    }
    let revoked = world.apps.revoke(id);
    Ok(Json(json!({"app_id": id, "revoked": revoked})).into_response())
}
