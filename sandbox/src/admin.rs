//! Admin API (`/admin`, no auth): reset, faults, latency and the request log; mounts the rest.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::eci_store::EciStore;
use crate::faults::{FaultSpec, LatencySpec, Traffic, validate};
use crate::github_world::GithubWorld;
use crate::state::{AppState, lock};
use crate::{admin_eci, admin_github, admin_github_app};

/// An admin error: `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct AdminError(pub StatusCode, pub String);

impl AdminError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        AdminError(StatusCode::BAD_REQUEST, msg.into())
    }

    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        AdminError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<JsonRejection> for AdminError {
    fn from(r: JsonRejection) -> Self {
        AdminError(r.status(), r.body_text())
    }
}

impl From<PathRejection> for AdminError {
    fn from(r: PathRejection) -> Self {
        AdminError::bad(r.body_text())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

pub(crate) type AdminResult = Result<Response, AdminError>;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/reset", post(reset))
        .route(
            "/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route(
            "/latency",
            post(add_latency).get(list_latency).delete(clear_latency),
        )
        .route("/latency/{id}", delete(remove_latency))
        .route("/requests", get(requests).delete(clear_requests))
        .merge(admin_eci::router())
        .merge(admin_github::router())
        .merge(admin_github_app::router())
        .fallback(|| async { AdminError::not_found("no such admin endpoint") })
}

async fn reset(State(st): State<AppState>) -> Json<Value> {
    *lock(&st.eci) = EciStore::new();
    *lock(&st.github) = GithubWorld::new(st.config_github_tokens.clone());
    *lock(&st.traffic) = Traffic::default();
    st.notify_faults_changed();
    Json(json!({"status": "reset"}))
}

async fn add_fault(
    State(st): State<AppState>,
    body: Result<Json<FaultSpec>, JsonRejection>,
) -> AdminResult {
    let Json(spec) = body?;
    validate(&spec).map_err(AdminError::bad)?;
    let id = lock(&st.traffic).add_fault(spec);
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn list_faults(State(st): State<AppState>) -> Json<Value> {
    Json(json!(lock(&st.traffic).faults))
}

async fn clear_faults(State(st): State<AppState>) -> StatusCode {
    lock(&st.traffic).faults.clear();
    st.notify_faults_changed();
    StatusCode::NO_CONTENT
}

async fn remove_fault(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> AdminResult {
    let Path(id) = id?;
    let removed = {
        let mut t = lock(&st.traffic);
        let before = t.faults.len();
        t.faults.retain(|f| f.id != id);
        before != t.faults.len()
    };
    st.notify_faults_changed();
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AdminError::not_found(format!("no fault {id}")))
    }
}

async fn add_latency(
    State(st): State<AppState>,
    body: Result<Json<LatencySpec>, JsonRejection>,
) -> AdminResult {
    let Json(spec) = body?;
    let id = lock(&st.traffic).add_latency(spec);
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn list_latency(State(st): State<AppState>) -> Json<Value> {
    Json(json!(lock(&st.traffic).latency))
}

async fn clear_latency(State(st): State<AppState>) -> StatusCode {
    lock(&st.traffic).latency.clear();
    StatusCode::NO_CONTENT
}

async fn remove_latency(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> AdminResult {
    let Path(id) = id?;
    let mut t = lock(&st.traffic);
    let before = t.latency.len();
    t.latency.retain(|l| l.id != id);
    if before == t.latency.len() {
        return Err(AdminError::not_found(format!("no latency rule {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn requests(State(st): State<AppState>) -> Json<Value> {
    Json(json!(lock(&st.traffic).log))
}

async fn clear_requests(State(st): State<AppState>) -> StatusCode {
    lock(&st.traffic).log.clear();
    StatusCode::NO_CONTENT
}
