//! Injected faults, latency rules and the request log, and the replies faults produce.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::eci_error::code_for;
use crate::github_json::fault_body;

/// When a fault strikes relative to the real handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    /// Replace the request: the real handler never runs.
    #[default]
    Before,
    /// Run the real handler (its effect happens), then replace its reply: a lost reply.
    After,
}

/// `POST /admin/faults` body.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub method: Option<String>,
    pub path_contains: String,
    pub status: Option<u16>,
    pub count: Option<u64>,
    /// `Retry-After` value; a string or a number of seconds.
    pub retry_after: Option<Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; a JSON string is sent as raw text (e.g. a proxy's HTML page).
    pub body: Option<Value>,
    #[serde(default)]
    pub hang: bool,
    #[serde(default)]
    pub phase: Phase,
}

/// `POST /admin/latency` body.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LatencySpec {
    pub method: Option<String>,
    pub path_contains: String,
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Fault {
    pub id: String,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Uses left; `None` = until cleared.
    pub remaining: Option<u64>,
    pub hits: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Latency {
    pub id: String,
    #[serde(flatten)]
    pub spec: LatencySpec,
}

/// One ECI or GitHub request as the client saw it; status 0 = no reply (hang).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LogEntry {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

#[derive(Default)]
pub(crate) struct Traffic {
    pub faults: Vec<Fault>,
    pub latency: Vec<Latency>,
    pub log: Vec<LogEntry>,
    next_id: u64,
}

fn matches(method: Option<&str>, path_contains: &str, req_method: &str, path: &str) -> bool {
    method.is_none_or(|m| m.eq_ignore_ascii_case(req_method)) && path.contains(path_contains)
}

impl Traffic {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    pub(crate) fn add_fault(&mut self, spec: FaultSpec) -> String {
        let id = self.new_id("fault");
        self.faults.push(Fault {
            id: id.clone(),
            remaining: spec.count,
            spec,
            hits: 0,
        });
        id
    }

    pub(crate) fn add_latency(&mut self, spec: LatencySpec) -> String {
        let id = self.new_id("latency");
        self.latency.push(Latency {
            id: id.clone(),
            spec,
        });
        id
    }

    /// The first matching fault with uses left; uses one.
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<(String, FaultSpec)> {
        let f = self.faults.iter_mut().find(|f| {
            f.remaining != Some(0)
                && matches(
                    f.spec.method.as_deref(),
                    &f.spec.path_contains,
                    method,
                    path,
                )
        })?;
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        f.hits += 1;
        Some((f.id.clone(), f.spec.clone()))
    }

    pub(crate) fn fault_exists(&self, id: &str) -> bool {
        self.faults.iter().any(|f| f.id == id)
    }

    /// Total added delay for a request.
    pub(crate) fn delay_for(&self, method: &str, path: &str) -> Duration {
        let ms = self
            .latency
            .iter()
            .filter(|l| {
                matches(
                    l.spec.method.as_deref(),
                    &l.spec.path_contains,
                    method,
                    path,
                )
            })
            .map(|l| l.spec.ms)
            .fold(0u64, u64::saturating_add);
        Duration::from_millis(ms)
    }
}

/// Checks a fault before storing it.
pub(crate) fn validate(spec: &FaultSpec) -> Result<(), String> {
    if let Some(s) = spec.status {
        StatusCode::from_u16(s).map_err(|_| format!("invalid status {s}"))?;
    }
    if let Some(m) = &spec.method {
        axum::http::Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m}"))?;
    }
    for (name, value) in &spec.headers {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name}"))?;
        HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
    }
    if let Some(v) = &spec.retry_after {
        retry_after_value(v).ok_or("retry_after must be a string or a number")?;
    }
    Ok(())
}

fn retry_after_value(v: &Value) -> Option<HeaderValue> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    HeaderValue::from_str(&text).ok()
}

/// The reply a fault produces for a request to `path` (the full path, with its prefix).
pub(crate) fn fault_response(spec: &FaultSpec, path: &str) -> Response {
    let status = spec
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let rate_limited = spec
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-ratelimit-remaining") && v.trim() == "0");
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut resp = match &spec.body {
        _ if no_body => status.into_response(),
        Some(Value::String(text)) => {
            let ctype = if text.trim_start().starts_with('<') {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            (
                status,
                [(header::CONTENT_TYPE, ctype)],
                Body::from(text.clone()),
            )
                .into_response()
        }
        Some(v) if !v.is_null() => (status, Json(v.clone())).into_response(),
        _ if path.starts_with("/github") => {
            (status, Json(fault_body(status, rate_limited))).into_response()
        }
        _ => {
            let body = json!({
                "code": code_for(status),
                "message": format!("injected fault: {}", status.canonical_reason().unwrap_or("error")),
                "detail": null,
            });
            (status, Json(body)).into_response()
        }
    };
    let headers = resp.headers_mut();
    if let Some(v) = spec.retry_after.as_ref().and_then(retry_after_value) {
        headers.insert(header::RETRY_AFTER, v);
    }
    for (name, value) in &spec.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    resp
}
