//! Prometheus metrics (names modelled on cert-manager's) and the opt-in listener that serves
//! them with `/healthz` and `/readyz`.

use crate::rotation::report::{Outcome, TokenReport};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub name: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub name: String,
    pub destination: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub service: String,
    pub status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every series this program exports.
pub struct Metrics {
    registry: Registry,
    /// Seconds since epoch when each token expires (cert-manager: certificate_expiration_timestamp_seconds).
    pub expiration: Family<TokenLabels, FloatGauge>,
    /// Seconds since epoch when each token is due for rotation (cert-manager: certificate_renewal_timestamp_seconds).
    pub renewal: Family<TokenLabels, FloatGauge>,
    /// Rotations finished, by result (`success`, `failure`).
    pub rotations: Family<ResultLabels, Counter>,
    /// 1 for each destination's current status (`synced`, `failed`, `pending`), 0 for the others.
    pub destination_status: Family<DestinationLabels, Gauge>,
    /// Calls to ECI, Vault and GitHub by HTTP status (`error` when no reply came).
    pub api_calls: Family<ApiLabels, Counter>,
    /// Seconds since epoch when the last run finished, and whether every token came out fine.
    pub last_run: FloatGauge,
    pub last_run_success: Gauge,
    ready: AtomicBool,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("eci_secret_sync");
        let m = Metrics {
            registry: Registry::default(),
            expiration: Family::default(),
            renewal: Family::default(),
            rotations: Family::default(),
            destination_status: Family::default(),
            api_calls: Family::default(),
            last_run: FloatGauge::default(),
            last_run_success: Gauge::default(),
            ready: AtomicBool::new(false),
        };
        registry.register(
            "token_expiration_timestamp_seconds",
            "The time the token expires, in seconds since the Unix epoch",
            m.expiration.clone(),
        );
        registry.register(
            "token_renewal_timestamp_seconds",
            "The time from which the token is due for rotation, in seconds since the Unix epoch",
            m.renewal.clone(),
        );
        registry.register(
            "rotations",
            "Rotations finished, by result",
            m.rotations.clone(),
        );
        registry.register(
            "destination_sync_status",
            "1 for the destination's current sync status (synced, failed, pending)",
            m.destination_status.clone(),
        );
        registry.register(
            "api_requests",
            "Requests to ECI, Vault and GitHub, by HTTP status",
            m.api_calls.clone(),
        );
        registry.register(
            "last_run_timestamp_seconds",
            "When the last rotation run finished, in seconds since the Unix epoch",
            m.last_run.clone(),
        );
        registry.register(
            "last_run_success",
            "1 if every token of the last run came out fine, else 0",
            m.last_run_success.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Fold one run's reports into the series.
    pub fn observe_run(
        &self,
        reports: &[TokenReport],
        rotate_before: impl Fn(&str) -> Option<std::time::Duration>,
    ) {
        for r in reports {
            let name = TokenLabels {
                name: r.name.clone(),
            };
            let expires = match &r.outcome {
                Outcome::Rotated { .. } | Outcome::GracePending { .. } => r.new_expires,
                Outcome::NotDue { expires, .. } => *expires,
                _ => r.old_expires,
            };
            if let Some(e) = expires {
                self.expiration
                    .get_or_create(&name)
                    .set(e.timestamp() as f64);
                if let Some(before) = rotate_before(&r.name) {
                    let due = e - crate::plan::chrono_dur(before);
                    self.renewal
                        .get_or_create(&name)
                        .set(due.timestamp() as f64);
                }
            }
            let result = match &r.outcome {
                Outcome::Rotated { .. } => Some("success"),
                Outcome::Failed { .. } => Some("failure"),
                _ => None,
            };
            if let Some(result) = result {
                self.rotations
                    .get_or_create(&ResultLabels {
                        name: r.name.clone(),
                        result: result.into(),
                    })
                    .inc();
            }
            for d in &r.destinations {
                let current = match d.status.as_str() {
                    "synced" => "synced",
                    "FAILED" => "failed",
                    _ => "pending",
                };
                for s in ["synced", "failed", "pending"] {
                    self.destination_status
                        .get_or_create(&DestinationLabels {
                            name: r.name.clone(),
                            destination: d.destination.clone(),
                            status: s.into(),
                        })
                        .set(i64::from(s == current));
                }
            }
        }
        self.last_run.set(chrono::Utc::now().timestamp() as f64);
        self.last_run_success
            .set(i64::from(!reports.iter().any(|r| r.failed())));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Count one call to `service` (`eci`, `vault`, `github`) that ended with `status` (0: no reply).
pub fn api_call(service: &str, status: u16) {
    let status = if status == 0 {
        "error".to_string()
    } else {
        status.to_string()
    };
    global()
        .api_calls
        .get_or_create(&ApiLabels {
            service: service.into(),
            status,
        })
        .inc();
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listen` until the process ends.
pub async fn serve(listen: &str) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics listener started");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    }))
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        global().encode(),
    )
}

async fn readyz() -> impl IntoResponse {
    if global().is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
