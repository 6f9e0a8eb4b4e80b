//! GitHub-shaped JSON: errors, repositories, environments and secret metadata.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::github_world::{Environment, Org, Repo, StoredSecret, Visibility};
use crate::timefmt::github_time;

pub(crate) const DOCS: &str = "https://docs.github.com/rest";

/// A GitHub error reply: `{"message", "documentation_url"[, "errors"]}`.
#[derive(Debug)]
pub(crate) struct GhError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Option<Vec<Value>>,
}

impl GhError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GhError {
            status,
            message: message.into(),
            errors: None,
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub(crate) fn bad_credentials() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Bad credentials")
    }

    /// 422 with a reason, like GitHub's validation failures.
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        GhError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("Invalid request.\n\n{reason}"),
            errors: Some(vec![Value::String(reason)]),
        }
    }
}

/// GitHub's body for a status, used for injected faults without a body.
pub(crate) fn fault_body(status: StatusCode, rate_limited: bool) -> Value {
    let (message, docs) = match status.as_u16() {
        401 => ("Bad credentials".to_owned(), DOCS.to_owned()),
        403 | 429 if rate_limited || status.as_u16() == 429 => (
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.".to_owned(),
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api".to_owned(),
        ),
        403 => (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.".to_owned(),
            "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits".to_owned(),
        ),
        404 => ("Not Found".to_owned(), DOCS.to_owned()),
        500..=599 => ("Server Error".to_owned(), DOCS.to_owned()),
        _ => (
            status.canonical_reason().unwrap_or("Error").to_owned(),
            DOCS.to_owned(),
        ),
    };
    json!({"message": message, "documentation_url": docs, "status": status.as_str()})
}

impl IntoResponse for GhError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "message": self.message,
            "documentation_url": DOCS,
            "status": self.status.as_str(),
        });
        if let (Some(errors), Some(obj)) = (self.errors, body.as_object_mut()) {
            obj.insert("errors".to_owned(), Value::Array(errors));
        }
        (self.status, Json(body)).into_response()
    }
}

/// A user or organization object (octocrab's `Author`).
pub(crate) fn account_json(api: &str, login: &str, id: u64, is_org: bool) -> Value {
    let user = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("{}{id:X}", if is_org { "O_kgDO" } else { "U_kgDO" }),
        "avatar_url": format!("{api}/avatars/{id}"),
        "gravatar_id": "",
        "url": user,
        "html_url": format!("{api}/html/{login}"),
        "followers_url": format!("{user}/followers"),
        "following_url": format!("{user}/following"),
        "gists_url": format!("{user}/gists"),
        "starred_url": format!("{user}/starred"),
        "subscriptions_url": format!("{user}/subscriptions"),
        "organizations_url": format!("{user}/orgs"),
        "repos_url": format!("{user}/repos"),
        "events_url": format!("{user}/events"),
        "received_events_url": format!("{user}/received_events"),
        "type": if is_org { "Organization" } else { "User" },
        "site_admin": false,
        "name": null,
        "patch_url": null,
    })
}

/// A repository (octocrab's `Repository`); `owner` comes from [`account_json`].
pub(crate) fn repo_json(api: &str, repo: &Repo, owner: Value) -> Value {
    let full = repo.full_name();
    let url = format!("{api}/repos/{full}");
    json!({
        "id": repo.id,
        "node_id": format!("R_kgDO{:X}", repo.id),
        "name": repo.name,
        "full_name": full,
        "owner": owner,
        "private": true,
        "html_url": format!("{api}/html/{full}"),
        "description": null,
        "fork": false,
        "url": url,
        "default_branch": "main",
        "visibility": "private",
        "archived": false,
        "disabled": false,
        "created_at": github_time(repo.created_at),
        "updated_at": github_time(repo.created_at),
        "pushed_at": github_time(repo.created_at),
    })
}

/// An environment (octocrab's `Environment`).
pub(crate) fn env_json(api: &str, repo: &Repo, env: &Environment) -> Value {
    let full = repo.full_name();
    json!({
        "id": env.id,
        "node_id": format!("EN_kwDO{:X}", env.id),
        "name": env.name,
        "url": format!("{api}/repos/{full}/environments/{}", env.name),
        "html_url": format!("{api}/html/{full}/deployments/activity_log?environments_filter={}", env.name),
        "created_at": github_time(env.created_at),
        "updated_at": github_time(env.created_at),
        "protection_rules": [],
        "deployment_branch_policy": null,
    })
}

/// An organization (octocrab's `Organization`).
pub(crate) fn org_json(api: &str, org: &Org) -> Value {
    let url = format!("{api}/orgs/{}", org.login);
    json!({
        "login": org.login,
        "id": org.id,
        "node_id": format!("O_kgDO{:X}", org.id),
        "url": url,
        "repos_url": format!("{url}/repos"),
        "events_url": format!("{url}/events"),
        "hooks_url": format!("{url}/hooks"),
        "issues_url": format!("{url}/issues"),
        "members_url": format!("{url}/members"),
        "public_members_url": format!("{url}/public_members"),
        "avatar_url": format!("{api}/avatars/{}", org.id),
        "description": null,
        "html_url": format!("{api}/html/{}", org.login),
        "created_at": github_time(org.created_at),
        "type": "Organization",
    })
}

/// Secret metadata as listed and fetched; organization secrets add visibility.
/// `repos_url` is the secret's `.../repositories` URL (organization scopes only).
pub(crate) fn secret_json(name: &str, s: &StoredSecret, repos_url: Option<String>) -> Value {
    let mut v = json!({
        "name": name,
        "created_at": github_time(s.created_at),
        "updated_at": github_time(s.updated_at),
    });
    if let (Some(vis), Some(obj)) = (s.visibility, v.as_object_mut()) {
        obj.insert("visibility".to_owned(), json!(vis.as_str()));
        if let (Visibility::Selected, Some(u)) = (vis, repos_url) {
            obj.insert("selected_repositories_url".to_owned(), json!(u));
        }
    }
    v
}
