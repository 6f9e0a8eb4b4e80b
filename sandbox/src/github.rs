//! Fake GitHub REST API (Actions, Dependabot, environment and organization secrets) at `/github`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::github_json::{GhError, account_json, env_json, org_json, repo_json, secret_json};
use crate::github_world::{GithubWorld, ScopeKey, Visibility};
use crate::secret_put::{put_secret, secret_name};
use crate::state::{AppState, lock};

type P = Result<Path<HashMap<String, String>>, PathRejection>;
type Q = Result<Query<HashMap<String, String>>, QueryRejection>;
type GhResult = Result<Response, GhError>;

/// Which secrets API a route belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RepoActions,
    RepoDependabot,
    RepoEnv,
    RepoIdEnv,
    OrgActions,
    OrgDependabot,
}

/// The base path of every secrets API, relative to the GitHub API root.
const SCOPES: [(&str, Kind); 6] = [
    ("/repos/{owner}/{repo}/actions/secrets", Kind::RepoActions),
    (
        "/repos/{owner}/{repo}/dependabot/secrets",
        Kind::RepoDependabot,
    ),
    (
        "/repos/{owner}/{repo}/environments/{env}/secrets",
        Kind::RepoEnv,
    ),
    (
        "/repositories/{repo_id}/environments/{env}/secrets",
        Kind::RepoIdEnv,
    ),
    ("/orgs/{org}/actions/secrets", Kind::OrgActions),
    ("/orgs/{org}/dependabot/secrets", Kind::OrgDependabot),
];

pub(crate) fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/environments/{env}", get(get_env))
        .route("/orgs/{org}", get(get_org));
    for (base, kind) in SCOPES {
        r = r
            .route(base, list_route(kind))
            .route(&format!("{base}/public-key"), key_route(kind))
            .route(&format!("{base}/{{name}}"), secret_route(kind));
        if matches!(kind, Kind::OrgActions | Kind::OrgDependabot) {
            r = r
                .route(
                    &format!("{base}/{{name}}/repositories"),
                    selected_route(kind),
                )
                .route(
                    &format!("{base}/{{name}}/repositories/{{repository_id}}"),
                    selected_one_route(kind),
                );
        }
    }
    r.fallback(|| async { GhError::not_found() })
        .method_not_allowed_fallback(|| async { GhError::not_found() })
        .layer(middleware::from_fn_with_state(state, authenticate))
}

/// The credential of `Authorization: Bearer X` or `Authorization: token X`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = raw.trim().split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    ok.then_some(value.trim())
}

async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let ok = credential(req.headers()).is_some_and(|c| lock(&st.github).accepts(c));
    if ok {
        next.run(req).await
    } else {
        GhError::bad_credentials().into_response()
    }
}

fn params(p: P) -> Result<HashMap<String, String>, GhError> {
    p.map(|Path(m)| m).map_err(|_| GhError::not_found())
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Result<&'a str, GhError> {
    p.get(name)
        .map(String::as_str)
        .ok_or_else(GhError::not_found)
}

/// Resolves a route's scope; 404 when the repository, environment or organization is unknown.
fn scope_key(
    world: &GithubWorld,
    kind: Kind,
    p: &HashMap<String, String>,
) -> Result<ScopeKey, GhError> {
    let repo = || -> Result<String, GhError> {
        Ok(format!("{}/{}", param(p, "owner")?, param(p, "repo")?).to_lowercase())
    };
    let key = match kind {
        Kind::RepoActions => ScopeKey::Repo(repo()?),
        Kind::RepoDependabot => ScopeKey::RepoDependabot(repo()?),
        Kind::RepoEnv => ScopeKey::Env(repo()?, param(p, "env")?.to_lowercase()),
        Kind::RepoIdEnv => {
            let id: u64 = param(p, "repo_id")?
                .parse()
                .map_err(|_| GhError::not_found())?;
            let r = world.repo_by_id(id).ok_or_else(GhError::not_found)?;
            ScopeKey::Env(
                r.full_name().to_lowercase(),
                param(p, "env")?.to_lowercase(),
            )
        }
        Kind::OrgActions => ScopeKey::Org(param(p, "org")?.to_lowercase()),
        Kind::OrgDependabot => ScopeKey::OrgDependabot(param(p, "org")?.to_lowercase()),
    };
    world.scope(&key).ok_or_else(GhError::not_found)?;
    Ok(key)
}

/// `.../secrets/{NAME}/repositories` of an organization secret.
fn repos_url(st: &AppState, world: &GithubWorld, key: &ScopeKey, name: &str) -> Option<String> {
    let (org, area) = match key {
        ScopeKey::Org(o) => (o, "actions"),
        ScopeKey::OrgDependabot(o) => (o, "dependabot"),
        _ => return None,
    };
    let login = world
        .orgs
        .get(org)
        .map_or(org.as_str(), |o| o.login.as_str());
    Some(format!(
        "{}/github/orgs/{login}/{area}/secrets/{name}/repositories",
        st.base_url
    ))
}

fn list_route(kind: Kind) -> MethodRouter<AppState> {
    get(
        move |State(st): State<AppState>, p: P, q: Q, OriginalUri(uri): OriginalUri| async move {
            list(&st, kind, p, q, uri.path()).unwrap_or_else(IntoResponse::into_response)
        },
    )
}

fn key_route(kind: Kind) -> MethodRouter<AppState> {
    get(move |State(st): State<AppState>, p: P| async move {
        public_key(&st, kind, p).unwrap_or_else(IntoResponse::into_response)
    })
}

fn secret_route(kind: Kind) -> MethodRouter<AppState> {
    get(move |State(st): State<AppState>, p: P| async move {
        get_secret(&st, kind, p).unwrap_or_else(IntoResponse::into_response)
    })
    .put(
        move |State(st): State<AppState>, p: P, body: Bytes| async move {
            put_one(&st, kind, p, &body).unwrap_or_else(IntoResponse::into_response)
        },
    )
    .delete(move |State(st): State<AppState>, p: P| async move {
        delete_one(&st, kind, p).unwrap_or_else(IntoResponse::into_response)
    })
}

fn selected_route(kind: Kind) -> MethodRouter<AppState> {
    get(move |State(st): State<AppState>, p: P| async move {
        list_selected(&st, kind, p).unwrap_or_else(IntoResponse::into_response)
    })
    .put(
        move |State(st): State<AppState>, p: P, body: Bytes| async move {
            set_selected(&st, kind, p, &body).unwrap_or_else(IntoResponse::into_response)
        },
    )
}

fn selected_one_route(kind: Kind) -> MethodRouter<AppState> {
    put(move |State(st): State<AppState>, p: P| async move {
        change_selected(&st, kind, p, true).unwrap_or_else(IntoResponse::into_response)
    })
    .delete(move |State(st): State<AppState>, p: P| async move {
        change_selected(&st, kind, p, false).unwrap_or_else(IntoResponse::into_response)
    })
}

fn public_key(st: &AppState, kind: Kind, p: P) -> GhResult {
    let p = params(p)?;
    let world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope(&key).ok_or_else(GhError::not_found)?;
    let body = json!({"key_id": scope.key.key_id, "key": scope.key.public_b64()});
    Ok(Json(body).into_response())
}

/// A page number or size from the query; `None` when absent or not a positive integer.
fn positive(q: &HashMap<String, String>, name: &str) -> Option<usize> {
    q.get(name)
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// GitHub's `Link` header for a page of `total` items.
fn link_header(url: &str, page: usize, per_page: usize, total: usize) -> Option<HeaderValue> {
    let last = total.div_ceil(per_page).max(1);
    let at = |n: usize, rel: &str| format!("<{url}?per_page={per_page}&page={n}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page < last {
        links.push(at(page + 1, "next"));
        links.push(at(last, "last"));
    }
    if page > 1 {
        links.push(at(1, "first"));
        links.push(at((page - 1).min(last), "prev"));
    }
    if links.is_empty() {
        return None;
    }
    HeaderValue::from_str(&links.join(", ")).ok()
}

fn list(st: &AppState, kind: Kind, p: P, q: Q, path: &str) -> GhResult {
    let p = params(p)?;
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let per_page = positive(&q, "per_page").unwrap_or(30).min(100);
    let page = positive(&q, "page").unwrap_or(1);
    let world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope(&key).ok_or_else(GhError::not_found)?;
    let total = scope.secrets.len();
    let secrets: Vec<Value> = scope
        .secrets
        .iter()
        .skip(page.saturating_sub(1).saturating_mul(per_page))
        .take(per_page)
        .map(|(name, s)| secret_json(name, s, repos_url(st, &world, &key, name)))
        .collect();
    let body = Json(json!({"total_count": total, "secrets": secrets}));
    let url = format!("{}{path}", st.base_url);
    Ok(match link_header(&url, page, per_page, total) {
        Some(link) => ([(header::LINK, link)], body).into_response(),
        None => body.into_response(),
    })
}

fn get_secret(st: &AppState, kind: Kind, p: P) -> GhResult {
    let p = params(p)?;
    let name = param(&p, "name")?.to_ascii_uppercase();
    let world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope(&key).ok_or_else(GhError::not_found)?;
    let secret = scope.secrets.get(&name).ok_or_else(GhError::not_found)?;
    let body = secret_json(&name, secret, repos_url(st, &world, &key, &name));
    Ok(Json(body).into_response())
}

fn put_one(st: &AppState, kind: Kind, p: P, body: &[u8]) -> GhResult {
    let p = params(p)?;
    let mut world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let name = secret_name(param(&p, "name")?)?;
    let scope = world.scope_mut(&key).ok_or_else(GhError::not_found)?;
    let created = put_secret(scope, &name, body, key.is_org())?;
    tracing::info!(scope = %key, %name, created, "github: secret stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(status.into_response())
}

fn delete_one(st: &AppState, kind: Kind, p: P) -> GhResult {
    let p = params(p)?;
    let name = param(&p, "name")?.to_ascii_uppercase();
    let mut world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope_mut(&key).ok_or_else(GhError::not_found)?;
    scope.secrets.remove(&name).ok_or_else(GhError::not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn not_selected() -> GhError {
    GhError::new(
        StatusCode::CONFLICT,
        "The visibility of this secret is not set to 'selected'.",
    )
}

fn list_selected(st: &AppState, kind: Kind, p: P) -> GhResult {
    let p = params(p)?;
    let name = param(&p, "name")?.to_ascii_uppercase();
    let mut world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope(&key).ok_or_else(GhError::not_found)?;
    let secret = scope.secrets.get(&name).ok_or_else(GhError::not_found)?;
    if secret.visibility != Some(Visibility::Selected) {
        return Err(not_selected());
    }
    let ids = secret.selected_repository_ids.clone();
    let api = format!("{}/github", st.base_url);
    let mut repos = Vec::new();
    for id in ids {
        let Some((owner, full)) = world
            .repo_by_id(id)
            .map(|r| (r.owner.clone(), r.full_name().to_lowercase()))
        else {
            continue;
        };
        let (owner_id, is_org) = world.owner_id(&owner);
        if let Some(r) = world.repos.get(&full) {
            repos.push(repo_json(
                &api,
                r,
                account_json(&api, &owner, owner_id, is_org),
            ));
        }
    }
    Ok(Json(json!({"total_count": repos.len(), "repositories": repos})).into_response())
}

fn set_selected(st: &AppState, kind: Kind, p: P, body: &[u8]) -> GhResult {
    let p = params(p)?;
    let name = param(&p, "name")?.to_ascii_uppercase();
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| GhError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?;
    let ids: Vec<u64> = match parsed.get("selected_repository_ids") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| GhError::invalid("For 'items', the value is not an integer."))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(GhError::invalid(
                "\"selected_repository_ids\" wasn't supplied.",
            ));
        }
    };
    let mut world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope_mut(&key).ok_or_else(GhError::not_found)?;
    let secret = scope
        .secrets
        .get_mut(&name)
        .ok_or_else(GhError::not_found)?;
    if secret.visibility != Some(Visibility::Selected) {
        return Err(not_selected());
    }
    secret.selected_repository_ids = ids;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn change_selected(st: &AppState, kind: Kind, p: P, add: bool) -> GhResult {
    let p = params(p)?;
    let name = param(&p, "name")?.to_ascii_uppercase();
    let id: u64 = param(&p, "repository_id")?
        .parse()
        .map_err(|_| GhError::not_found())?;
    let mut world = lock(&st.github);
    let key = scope_key(&world, kind, &p)?;
    let scope = world.scope_mut(&key).ok_or_else(GhError::not_found)?;
    let secret = scope
        .secrets
        .get_mut(&name)
        .ok_or_else(GhError::not_found)?;
    if secret.visibility != Some(Visibility::Selected) {
        return Err(not_selected());
    }
    let ids = &mut secret.selected_repository_ids;
    ids.retain(|i| *i != id);
    if add {
        ids.push(id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_repo(State(st): State<AppState>, p: P) -> GhResult {
    let p = params(p)?;
    let full = format!("{}/{}", param(&p, "owner")?, param(&p, "repo")?).to_lowercase();
    let mut world = lock(&st.github);
    let owner = world
        .repos
        .get(&full)
        .map(|r| r.owner.clone())
        .ok_or_else(GhError::not_found)?;
    let (owner_id, is_org) = world.owner_id(&owner);
    let api = format!("{}/github", st.base_url);
    let repo = world.repos.get(&full).ok_or_else(GhError::not_found)?;
    let body = repo_json(&api, repo, account_json(&api, &owner, owner_id, is_org));
    Ok(Json(body).into_response())
}

async fn get_env(State(st): State<AppState>, p: P) -> GhResult {
    let p = params(p)?;
    let full = format!("{}/{}", param(&p, "owner")?, param(&p, "repo")?).to_lowercase();
    let world = lock(&st.github);
    let repo = world.repos.get(&full).ok_or_else(GhError::not_found)?;
    let env = repo
        .envs
        .get(&param(&p, "env")?.to_lowercase())
        .ok_or_else(GhError::not_found)?;
    let api = format!("{}/github", st.base_url);
    Ok(Json(env_json(&api, repo, env)).into_response())
}

async fn get_org(State(st): State<AppState>, p: P) -> GhResult {
    let p = params(p)?;
    let world = lock(&st.github);
    let org = world
        .orgs
        .get(&param(&p, "org")?.to_lowercase())
        .ok_or_else(GhError::not_found)?;
    let api = format!("{}/github", st.base_url);
    Ok(Json(org_json(&api, org)).into_response())
}
