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
    /// The token names and (token, destination) pairs that have series, so that those removed
    /// from the policy can be taken out.
    known: std::sync::Mutex<Known>,
}

#[derive(Default)]
struct Known {
    tokens: std::collections::BTreeSet<String>,
    destinations: std::collections::BTreeSet<(String, String)>,
    /// What the policy in force lists (set at start and on each reload): a pass that began
    /// under an older policy does not bring back what a reload took out.
    listed: Option<Listed>,
}

/// The token names, and (token, destination) pairs, of a policy.
type Listed = (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<(String, String)>,
);

impl Known {
    fn lists(&self, name: &str, destination: Option<&str>) -> bool {
        let Some((tokens, destinations)) = &self.listed else {
            return true;
        };
        match destination {
            None => tokens.contains(name),
            Some(d) => destinations.contains(&(name.to_string(), d.to_string())),
        }
    }
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
            known: std::sync::Mutex::new(Known::default()),
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

    /// Set every token series from the saved state, for the tokens of `policy` only: at start
    /// (a restart must not leave alerts blind, or firing on missing series until the first
    /// pass) and after a reload (a token or destination removed from the policy loses its
    /// series). `last_pass` is the daemon's last recorded pass.
    pub fn seed(
        &self,
        policy: &crate::policy::Policy,
        store: &crate::state::Store,
        last_pass: Option<&crate::daemon::memory::PassRecord>,
    ) {
        use crate::rotation::journal::{Rotation, TokenRecord};
        self.forget_removed(policy);
        let default_mount = policy.vault.as_ref().map_or("secret", |v| v.mount.as_str());
        for t in &policy.tokens {
            let record: Option<TokenRecord> =
                store.load(crate::rotation::TOKENS, &t.name).ok().flatten();
            let open: Option<Rotation> = store
                .load(crate::rotation::ROTATIONS, &t.name)
                .ok()
                .flatten();
            let expires = match &open {
                Some(rot) => rot.old_expires,
                None => record.as_ref().and_then(|r| r.expires),
            };
            if let Some(e) = expires {
                self.set_expiry(&t.name, e, t.rotate_before);
            }
            let states = open
                .as_ref()
                .map(|r| r.destinations.clone())
                .or_else(|| record.map(|r| r.destinations))
                .unwrap_or_default();
            for dest in crate::destination::Destination::of(t) {
                let key = dest.key(default_mount);
                if let Some(state) = states.get(&key) {
                    let current = match state.status {
                        crate::rotation::journal::DestStatus::Verified => "synced",
                        crate::rotation::journal::DestStatus::Failed => "failed",
                        _ => "pending",
                    };
                    self.set_destination(&t.name, &key, current);
                }
            }
        }
        if let Some(pass) = last_pass {
            self.last_run.set(pass.finished.timestamp() as f64);
            self.last_run_success.set(i64::from(pass.succeeded()));
        }
    }

    /// Take out the series of tokens and destinations `policy` no longer has.
    pub fn forget_removed(&self, policy: &crate::policy::Policy) {
        let default_mount = policy.vault.as_ref().map_or("secret", |v| v.mount.as_str());
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        known.listed = Some((
            policy.tokens.iter().map(|t| t.name.clone()).collect(),
            policy
                .tokens
                .iter()
                .flat_map(|t| {
                    crate::destination::Destination::of(t)
                        .into_iter()
                        .map(|d| (t.name.clone(), d.key(default_mount)))
                })
                .collect(),
        ));
        known.tokens.retain(|name| {
            let keep = policy.tokens.iter().any(|t| &t.name == name);
            if !keep {
                let labels = TokenLabels { name: name.clone() };
                self.expiration.remove(&labels);
                self.renewal.remove(&labels);
                for result in ["success", "failure"] {
                    self.rotations.remove(&ResultLabels {
                        name: name.clone(),
                        result: result.into(),
                    });
                }
            }
            keep
        });
        known.destinations.retain(|(name, destination)| {
            let keep = policy.tokens.iter().any(|t| {
                &t.name == name
                    && crate::destination::Destination::of(t)
                        .iter()
                        .any(|d| &d.key(default_mount) == destination)
            });
            if !keep {
                for status in ["synced", "failed", "pending"] {
                    self.destination_status.remove(&DestinationLabels {
                        name: name.clone(),
                        destination: destination.clone(),
                        status: status.into(),
                    });
                }
            }
            keep
        });
    }

    /// The policy in force lists this token (or its destination); true before any is known.
    fn lists(&self, name: &str, destination: Option<&str>) -> bool {
        self.known
            .lock()
            .map(|k| k.lists(name, destination))
            .unwrap_or(true)
    }

    fn note(&self, name: &str, destination: Option<&str>) {
        if let Ok(mut known) = self.known.lock() {
            known.tokens.insert(name.to_string());
            if let Some(d) = destination {
                known.destinations.insert((name.to_string(), d.to_string()));
            }
        }
    }

    /// A pass that could not go through the tokens (Vault down, the credential unreadable, the
    /// lock held): it counts as a failed run.
    pub fn observe_incomplete(&self) {
        self.last_run.set(chrono::Utc::now().timestamp() as f64);
        self.last_run_success.set(0);
    }

    fn set_expiry(
        &self,
        name: &str,
        expires: chrono::DateTime<chrono::Utc>,
        rotate_before: std::time::Duration,
    ) {
        self.note(name, None);
        let labels = TokenLabels {
            name: name.to_string(),
        };
        self.expiration
            .get_or_create(&labels)
            .set(expires.timestamp() as f64);
        let due = expires - crate::plan::chrono_dur(rotate_before);
        self.renewal
            .get_or_create(&labels)
            .set(due.timestamp() as f64);
    }

    fn set_destination(&self, name: &str, destination: &str, current: &str) {
        if !self.lists(name, Some(destination)) {
            return;
        }
        self.note(name, Some(destination));
        for s in ["synced", "failed", "pending"] {
            self.destination_status
                .get_or_create(&DestinationLabels {
                    name: name.to_string(),
                    destination: destination.to_string(),
                    status: s.into(),
                })
                .set(i64::from(s == current));
        }
    }

    /// Fold one run's reports into the series.
    pub fn observe_run(
        &self,
        reports: &[TokenReport],
        rotate_before: impl Fn(&str) -> Option<std::time::Duration>,
    ) {
        for r in reports.iter().filter(|r| self.lists(&r.name, None)) {
            let expires = match &r.outcome {
                Outcome::Rotated { .. } | Outcome::GracePending { .. } => r.new_expires,
                Outcome::NotDue { expires, .. } | Outcome::Watched { expires } => *expires,
                _ => r.old_expires,
            };
            if let (Some(e), Some(before)) = (expires, rotate_before(&r.name)) {
                self.set_expiry(&r.name, e, before);
                if matches!(r.outcome, Outcome::Watched { .. }) {
                    // Never rotated: no renewal time, so no "rotation overdue" alert.
                    self.renewal.remove(&TokenLabels {
                        name: r.name.clone(),
                    });
                }
            }
            let result = match &r.outcome {
                Outcome::Rotated { .. } => Some("success"),
                Outcome::Failed { .. } if r.known_not_due => None,
                Outcome::Failed { .. } => Some("failure"),
                _ => None,
            };
            if let Some(result) = result {
                self.note(&r.name, None);
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
                self.set_destination(&r.name, &d.destination, current);
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
