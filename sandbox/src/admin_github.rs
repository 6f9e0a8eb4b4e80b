//! Admin endpoints for the fake GitHub: world setup, credentials, seeding, keys and inspection.

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::aead::OsRng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{AdminError, AdminResult};
use crate::github_world::{KeyPair, ScopeKey, StoredSecret, Visibility};
use crate::secret_put::secret_name;
use crate::state::{AppState, lock};
use crate::timefmt::{github_time, now_seconds};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/github/repos", post(add_repo).get(list_repos))
        .route("/github/environments", post(add_env))
        .route("/github/orgs", post(add_org))
        .route("/github/tokens", post(add_token))
        .route("/github/secrets/seed", post(seed))
        .route("/github/secrets", get(secrets))
        .route("/github/private-key", get(private_key))
        .route("/github/rotate-key", post(rotate_key))
}

fn created_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

fn scope_of(raw: &str) -> Result<ScopeKey, AdminError> {
    ScopeKey::parse(raw).ok_or_else(|| {
        AdminError::bad(format!(
            "bad scope {raw:?}: use repo:o/r, repo-dependabot:o/r, env:o/r:env, org:o or org-dependabot:o"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoBody {
    full_name: String,
}

async fn add_repo(
    State(st): State<AppState>,
    body: Result<Json<RepoBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    let (id, created) = lock(&st.github)
        .add_repo(&b.full_name)
        .ok_or_else(|| AdminError::bad("full_name must look like owner/name"))?;
    let reply = json!({"id": id, "full_name": b.full_name});
    Ok((created_status(created), Json(reply)).into_response())
}

async fn list_repos(State(st): State<AppState>) -> Json<Value> {
    let world = lock(&st.github);
    let repos: Vec<Value> = world
        .repos
        .values()
        .map(|r| {
            let envs: Vec<&str> = r.envs.values().map(|e| e.name.as_str()).collect();
            json!({"id": r.id, "full_name": r.full_name(), "environments": envs})
        })
        .collect();
    Json(Value::Array(repos))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvBody {
    repo: String,
    environment: String,
}

async fn add_env(
    State(st): State<AppState>,
    body: Result<Json<EnvBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    if b.environment.is_empty() {
        return Err(AdminError::bad("environment must not be empty"));
    }
    let mut world = lock(&st.github);
    let (id, created) = world
        .add_env(&b.repo, &b.environment)
        .ok_or_else(|| AdminError::not_found(format!("no repository {}", b.repo)))?;
    let repo_id = world.repos.get(&b.repo.to_lowercase()).map(|r| r.id);
    let reply = json!({"id": id, "repo": b.repo, "repo_id": repo_id, "environment": b.environment});
    Ok((created_status(created), Json(reply)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgBody {
    org: String,
}

async fn add_org(
    State(st): State<AppState>,
    body: Result<Json<OrgBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    if b.org.is_empty() || b.org.contains('/') {
        return Err(AdminError::bad("org must be a plain login"));
    }
    let (id, created) = lock(&st.github).add_org(&b.org);
    Ok((
        created_status(created),
        Json(json!({"id": id, "org": b.org})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

async fn add_token(
    State(st): State<AppState>,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    if b.token.trim().is_empty() || b.token.contains(char::is_whitespace) {
        return Err(AdminError::bad("token must be a non-empty word"));
    }
    let mut world = lock(&st.github);
    if !world.accepts(&b.token) {
        world.tokens.push(b.token);
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"accepted": world.tokens.len()})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedBody {
    scope: String,
    name: String,
    value: String,
    visibility: Option<String>,
    #[serde(default)]
    selected_repository_ids: Vec<u64>,
}

/// Stores a secret as a client would have: sealed with the scope's current public key.
async fn seed(
    State(st): State<AppState>,
    body: Result<Json<SeedBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    let key = scope_of(&b.scope)?;
    let name = secret_name(&b.name).map_err(|e| AdminError::bad(e.message))?;
    let visibility = if key.is_org() {
        let raw = b.visibility.as_deref().unwrap_or("all");
        Some(
            Visibility::parse(raw)
                .ok_or_else(|| AdminError::bad("visibility must be all, private or selected"))?,
        )
    } else {
        None
    };
    let mut world = lock(&st.github);
    let scope = world
        .scope_mut(&key)
        .ok_or_else(|| AdminError::not_found(format!("no scope {key}")))?;
    let sealed = scope
        .key
        .secret
        .public_key()
        .seal(&mut OsRng, b.value.as_bytes())
        .map_err(|_| {
            AdminError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sealing failed".to_owned(),
            )
        })?;
    let now = now_seconds();
    let created_at = scope.secrets.get(&name).map_or(now, |s| s.created_at);
    let secret = StoredSecret {
        encrypted_value: STANDARD.encode(sealed),
        key_id: scope.key.key_id.clone(),
        value: b.value.into_bytes(),
        created_at,
        updated_at: now,
        visibility,
        selected_repository_ids: if visibility == Some(Visibility::Selected) {
            b.selected_repository_ids
        } else {
            Vec::new()
        },
    };
    let reply = secret_view(&key, &name, &secret);
    scope.secrets.insert(name, secret);
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

fn secret_view(key: &ScopeKey, name: &str, s: &StoredSecret) -> Value {
    let mut v = json!({
        "scope": key.to_string(),
        "name": name,
        "value": String::from_utf8_lossy(&s.value),
        "encrypted_value": s.encrypted_value,
        "key_id": s.key_id,
        "created_at": github_time(s.created_at),
        "updated_at": github_time(s.updated_at),
    });
    if let (Some(vis), Some(obj)) = (s.visibility, v.as_object_mut()) {
        obj.insert("visibility".to_owned(), json!(vis.as_str()));
        obj.insert(
            "selected_repository_ids".to_owned(),
            json!(s.selected_repository_ids),
        );
    }
    v
}

fn scope_query(q: Result<Query<HashMap<String, String>>, QueryRejection>) -> Option<String> {
    q.ok().and_then(|Query(mut q)| q.remove("scope"))
}

/// Every stored secret with its decrypted value; `?scope=` narrows to one scope.
async fn secrets(
    State(st): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AdminResult {
    let only = scope_query(q).map(|s| scope_of(&s)).transpose()?;
    let world = lock(&st.github);
    let out: Vec<Value> = world
        .all_scopes()
        .into_iter()
        .filter(|(k, _)| only.as_ref().is_none_or(|o| o == k))
        .flat_map(|(k, scope)| {
            scope
                .secrets
                .iter()
                .map(|(name, s)| secret_view(&k, name, s))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}

async fn private_key(
    State(st): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AdminResult {
    let raw = scope_query(q).ok_or_else(|| AdminError::bad("?scope= is required"))?;
    let key = scope_of(&raw)?;
    let world = lock(&st.github);
    let scope = world
        .scope(&key)
        .ok_or_else(|| AdminError::not_found(format!("no scope {key}")))?;
    let reply = json!({
        "scope": key.to_string(),
        "key_id": scope.key.key_id,
        "private_key": scope.key.private_b64(),
        "public_key": scope.key.public_b64(),
    });
    Ok(Json(reply).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    scope: String,
}

async fn rotate_key(
    State(st): State<AppState>,
    body: Result<Json<RotateBody>, JsonRejection>,
) -> AdminResult {
    let Json(b) = body?;
    let key = scope_of(&b.scope)?;
    let mut world = lock(&st.github);
    let scope = world
        .scope_mut(&key)
        .ok_or_else(|| AdminError::not_found(format!("no scope {key}")))?;
    scope.key = KeyPair::generate();
    let reply = json!({
        "scope": key.to_string(),
        "key_id": scope.key.key_id,
        "public_key": scope.key.public_b64(),
    });
    Ok(Json(reply).into_response())
}
