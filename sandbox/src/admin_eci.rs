//! Admin endpoints for the fake ECI: seed, inspect, edit and revoke access tokens.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::admin::{AdminError, AdminResult};
use crate::eci_store::NewToken;
use crate::state::{AppState, lock};
use crate::timefmt::parse_rfc3339;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/eci/tokens", get(list).post(create))
        .route("/eci/tokens/{id}", get(get_one).patch(patch).delete(revoke))
        .route("/eci/deleted", get(deleted))
        .route("/eci/minted", get(minted))
        .route("/eci/organization", get(organization))
        .route("/eci/clock", get(clock).put(set_clock))
}

/// `{"offset_seconds": N}`: how far the fake ECI's clock is from the host's (negative:
/// behind). Creation times and expiry checks follow it, as a real server's own clock would.
async fn clock(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"offset_seconds": lock(&st.eci).clock_offset().num_seconds()}))
}

async fn set_clock(
    State(st): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body.map_err(|e| AdminError::bad(e.body_text()))?;
    let secs = b
        .get("offset_seconds")
        .and_then(Value::as_i64)
        .filter(|s| s.abs() <= 366 * 86_400)
        .ok_or_else(|| AdminError::bad("offset_seconds must be an integer (at most a year)"))?;
    lock(&st.eci).set_clock_offset(chrono::Duration::seconds(secs));
    Ok(Json(json!({"offset_seconds": secs})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminNewToken {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    expires: Option<String>,
    roles: Option<Vec<String>>,
    can_create: Option<bool>,
    value: Option<String>,
    /// Backdate the token (RFC 3339); default now.
    created: Option<String>,
}

fn time(field: &str, raw: &str) -> Result<DateTime<Utc>, AdminError> {
    parse_rfc3339(raw).ok_or_else(|| AdminError::bad(format!("{field} must be an RFC 3339 time")))
}

fn token_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, AdminError> {
    let Path(raw) = path?;
    Uuid::parse_str(&raw).map_err(|_| AdminError::not_found(format!("no token {raw}")))
}

async fn create(
    State(st): State<AppState>,
    body: Result<Json<AdminNewToken>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    let expires = b
        .expires
        .as_deref()
        .map(|e| time("expires", e))
        .transpose()?;
    let created = b
        .created
        .as_deref()
        .map(|c| time("created", c))
        .transpose()?;
    let mut store = lock(&st.eci);
    if let Some(v) = &b.value
        && (v.is_empty() || store.value_in_use(v))
    {
        return Err(AdminError(
            StatusCode::CONFLICT,
            "value is empty or already used by another token".to_owned(),
        ));
    }
    let token = store.create(NewToken {
        name: b.name,
        description: b.description,
        expires,
        roles: b.roles.unwrap_or_else(|| vec!["Developer".to_owned()]),
        can_create: b.can_create.unwrap_or(true),
        value: b.value,
        created,
    });
    Ok((StatusCode::CREATED, Json(store.admin_json(&token))).into_response())
}

async fn list(State(st): State<AppState>) -> Json<Value> {
    let store = lock(&st.eci);
    Json(Value::Array(
        store
            .list()
            .into_iter()
            .map(|t| store.admin_json(t))
            .collect(),
    ))
}

async fn get_one(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> AdminResult {
    let id = token_id(path)?;
    let store = lock(&st.eci);
    let t = store
        .get(id)
        .ok_or_else(|| AdminError::not_found(format!("no live token {id}")))?;
    Ok(Json(store.admin_json(t)).into_response())
}

/// `{"expires": time|null, "can_create"?, "roles"?, "name"?, "description"?}`: absent keys stay.
async fn patch(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> AdminResult {
    let id = token_id(path)?;
    let Json(b) = body?;
    let expires = match b.get("expires") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(time("expires", s)?)),
        Some(_) => return Err(AdminError::bad("expires must be a string or null")),
    };
    let str_field = |k: &str| -> Result<Option<String>, AdminError> {
        match b.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AdminError::bad(format!("{k} must be a string"))),
        }
    };
    let (name, description) = (str_field("name")?, str_field("description")?);
    let can_create = match b.get("can_create") {
        None => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => return Err(AdminError::bad("can_create must be a boolean")),
    };
    let value_hidden = match b.get("value_hidden") {
        None => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => return Err(AdminError::bad("value_hidden must be a boolean")),
    };
    let roles = match b.get("roles") {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<String>>(v.clone())
                .map_err(|_| AdminError::bad("roles must be a list of strings"))?,
        ),
    };
    let mut store = lock(&st.eci);
    let t = store
        .get_mut(id)
        .ok_or_else(|| AdminError::not_found(format!("no live token {id}")))?;
    if let Some(e) = expires {
        t.expires = e;
    }
    if let Some(n) = name {
        t.name = n;
    }
    if let Some(d) = description {
        t.description = d;
    }
    if let Some(c) = can_create {
        t.can_create = c;
    }
    if let Some(r) = roles {
        t.roles = r;
    }
    if let Some(h) = value_hidden {
        t.value_hidden = h;
    }
    t.modified = Some(Utc::now());
    let t = t.clone();
    Ok(Json(store.admin_json(&t)).into_response())
}

/// Deletes a token as if someone revoked it in the portal.
async fn revoke(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> AdminResult {
    let id = token_id(path)?;
    if lock(&st.eci).delete(id) {
        Ok(Json(json!({"id": id, "status": "deleted"})).into_response())
    } else {
        Err(AdminError::not_found(format!("no live token {id}")))
    }
}

async fn deleted(State(st): State<AppState>) -> Json<Value> {
    Json(json!(lock(&st.eci).deleted_ids()))
}

/// Every value ever minted, live or deleted: what a leak check must never find.
async fn minted(State(st): State<AppState>) -> Json<Value> {
    Json(json!(lock(&st.eci).minted_values()))
}

async fn organization(State(st): State<AppState>) -> Json<Value> {
    Json(lock(&st.eci).org_json())
}
