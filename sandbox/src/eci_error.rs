//! ECI's error reply: `{"code", "message", "detail": null}`, never carrying a token value.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub(crate) struct EciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl EciError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        EciError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the access token is missing, invalid, expired or deleted",
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            message,
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

/// The `code` ECI uses for a status (for injected faults without a body).
pub(crate) fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        429 => "TOO_MANY_REQUESTS",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
}

impl IntoResponse for EciError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "message": self.message, "detail": null});
        (self.status, Json(body)).into_response()
    }
}
