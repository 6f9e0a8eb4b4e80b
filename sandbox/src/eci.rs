//! Fake ECI user access-token API, mounted at `/eci/api`, following the shared contract.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::eci_error::EciError;
use crate::eci_store::NewToken;
use crate::ilike::ilike;
use crate::state::{AppState, lock};
use crate::timefmt::parse_rfc3339;

/// Every ECI path this sandbox serves, relative to the ECI base URL.
pub mod paths {
    /// `GET`: who am I / is this token alive.
    pub const ORGANIZATION: &str = "/user/organization";
    /// `GET` list, `POST` create.
    pub const TOKENS: &str = "/user/user_access_token";
    /// `GET` one, `DELETE` one.
    pub const TOKEN: &str = "/user/user_access_token/{id}";
}

/// Largest `count` a list accepts.
const MAX_COUNT: i64 = 100;

/// The authenticated caller's token id, put in request extensions by [`authenticate`].
#[derive(Clone, Copy)]
struct Caller(Uuid);

pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(paths::ORGANIZATION, get(organization))
        .route(paths::TOKENS, get(list).post(create))
        .route(paths::TOKEN, get(get_one).delete(delete_one))
        .fallback(|| async { EciError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            EciError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this endpoint",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state, server_date))
}

/// Every reply's `Date` is this server's own clock (see the admin `/eci/clock` knob), as a
/// real server's would be.
async fn server_date(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let now = lock(&st.eci).now();
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = header::HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

/// The value of `Authorization: Bearer <value>`, if present.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = raw.trim().split_once(' ')?;
    let value = value.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !value.is_empty()).then_some(value)
}

async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = bearer(req.headers()).and_then(|value| {
        let eci = lock(&st.eci);
        eci.authenticate(value, eci.now()).map(|t| t.id)
    });
    match caller {
        Some(id) => {
            req.extensions_mut().insert(Caller(id));
            next.run(req).await
        }
        None => EciError::unauthenticated().into_response(),
    }
}

async fn organization(State(st): State<AppState>) -> Json<Value> {
    Json(lock(&st.eci).org_json())
}

fn int_param(q: &HashMap<String, String>, name: &str, default: i64) -> Result<i64, EciError> {
    match q.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| EciError::invalid(format!("{name} must be an integer"))),
    }
}

async fn list(
    State(st): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, EciError> {
    let Query(q) = query.map_err(|_| EciError::invalid("malformed query string"))?;
    let skip = int_param(&q, "skip", 0)?;
    let count = int_param(&q, "count", MAX_COUNT)?;
    if skip < 0 {
        return Err(EciError::invalid("skip must not be negative"));
    }
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(EciError::invalid(format!(
            "count must be between 1 and {MAX_COUNT}"
        )));
    }
    let (skip, count) = (
        usize::try_from(skip).unwrap_or(usize::MAX),
        usize::try_from(count).unwrap_or(0),
    );
    let filter = q.get("filter_name_ilike");
    let store = lock(&st.eci);
    let items: Vec<Value> = store
        .list()
        .into_iter()
        .filter(|t| filter.is_none_or(|p| ilike(&t.name, p)))
        .skip(skip)
        .take(count)
        .map(|t| store.token_json(t))
        .collect();
    Ok(Json(Value::Array(items)))
}

fn token_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, EciError> {
    path.ok()
        .and_then(|Path(raw)| Uuid::parse_str(&raw).ok())
        .ok_or_else(|| EciError::not_found("no such access token"))
}

async fn get_one(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, EciError> {
    let id = token_id(path)?;
    let store = lock(&st.eci);
    let token = store
        .get(id)
        .ok_or_else(|| EciError::not_found("no such access token"))?;
    Ok(Json(store.token_json(token)))
}

async fn delete_one(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, EciError> {
    let id = token_id(path)?;
    if lock(&st.eci).delete(id) {
        tracing::info!(%id, "eci: access token deleted");
        Ok(Json(json!({"id": id, "status": "deleted"})))
    } else {
        Err(EciError::not_found("no such access token"))
    }
}

/// The validated fields of a create request.
struct CreateBody {
    name: String,
    description: String,
    expires: chrono::DateTime<Utc>,
}

fn parse_create(body: &[u8], now: DateTime<Utc>) -> Result<CreateBody, EciError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| EciError::invalid("request body must be a JSON object"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| EciError::invalid("request body must be a JSON object"))?;
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(EciError::invalid("name must be a non-empty string")),
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(EciError::invalid("description must be a string")),
    };
    let expires = match obj.get("expires") {
        None | Some(Value::Null) => return Err(EciError::invalid("expires is required")),
        Some(Value::String(s)) => {
            parse_rfc3339(s).ok_or_else(|| EciError::invalid("expires must be an RFC 3339 time"))?
        }
        Some(_) => return Err(EciError::invalid("expires must be an RFC 3339 time")),
    };
    if expires <= now {
        return Err(EciError::invalid("expires must be in the future"));
    }
    Ok(CreateBody {
        name,
        description,
        expires,
    })
}

async fn create(
    State(st): State<AppState>,
    Extension(Caller(caller_id)): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, EciError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|k| !k.is_empty());
    let mut store = lock(&st.eci);
    if let Some(done) = key.as_deref().and_then(|k| store.replay(k)) {
        return Ok(Json(store.token_json_with_value(done)));
    }
    let caller = store
        .get(caller_id)
        .cloned()
        .ok_or_else(EciError::unauthenticated)?;
    if !caller.can_create {
        return Err(EciError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "the caller lacks the permission User.UserAccessToken.CREATE",
        ));
    }
    let req = parse_create(&body, store.now())?;
    let token = store.create(NewToken {
        name: req.name,
        description: req.description,
        expires: Some(req.expires),
        roles: caller.roles,
        can_create: caller.can_create,
        value: None,
        created: None,
    });
    if let Some(k) = key {
        store.remember(k, token.id);
    }
    tracing::info!(id = %token.id, name = %token.name, "eci: access token issued");
    Ok(Json(store.token_json_with_value(&token)))
}
