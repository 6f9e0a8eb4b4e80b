//! Middleware in front of the ECI and GitHub APIs: latency, faults, hangs and the request log.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::faults::{FaultSpec, LogEntry, Phase, fault_response};
use crate::state::{AppState, lock};

pub(crate) async fn traffic(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let (delay, fault) = {
        let mut t = lock(&st.traffic);
        (t.delay_for(&method, &path), t.take_fault(&method, &path))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let log = |status: u16| {
        lock(&st.traffic).log.push(LogEntry {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
        });
    };
    let resp = match fault {
        None => next.run(req).await,
        Some((id, spec)) => {
            if spec.phase == Phase::After {
                let real = next.run(req).await;
                tracing::info!(%method, %path, status = real.status().as_u16(), "fault: reply discarded");
            }
            if spec.hang {
                log(0);
                hang(&st, &id).await;
                return released(&spec, &path);
            }
            fault_response(&spec, &path)
        }
    };
    log(resp.status().as_u16());
    resp
}

/// Holds a request until its fault is removed or the server stops.
async fn hang(st: &AppState, id: &str) {
    let mut changed = st.faults_changed.subscribe();
    let mut stopping = st.stopping.subscribe();
    loop {
        if *stopping.borrow_and_update() || !lock(&st.traffic).fault_exists(id) {
            return;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            r = stopping.changed() => if r.is_err() { return },
        }
    }
}

/// What a released hang answers, if the client is still there: a 503 shaped like the API.
fn released(spec: &FaultSpec, path: &str) -> Response {
    let spec = FaultSpec {
        status: Some(StatusCode::SERVICE_UNAVAILABLE.as_u16()),
        body: None,
        hang: false,
        ..spec.clone()
    };
    fault_response(&spec, path)
}
