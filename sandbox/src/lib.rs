//! Local stand-ins for the ECI token API and GitHub's secrets API, with an admin API for tests.
//!
//! One axum server serves `/eci/api` (fake ECI), `/github` (fake GitHub REST, with GitHub App
//! installation tokens) and `/admin`.

mod admin;
mod admin_eci;
mod admin_github;
mod admin_github_app;
mod eci;
mod eci_error;
mod eci_store;
mod faults;
mod github;
mod github_app;
mod github_json;
mod github_world;
mod ilike;
mod secret_put;
mod state;
mod timefmt;
mod traffic;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::github_json::GhError;
use crate::state::{AppState, Shared};

pub use crate::eci::paths as eci_paths;

/// How to start a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// GitHub credentials the fake GitHub accepts (`Bearer X` or `token X`).
    pub github_tokens: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            github_tokens: vec!["ghp_sandbox".to_owned()],
        }
    }
}

/// A running sandbox server.
pub struct Sandbox {
    addr: SocketAddr,
    url: String,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// The whole application: both APIs behind the traffic middleware, plus the admin API.
fn app(state: AppState) -> Router {
    let apis = Router::new()
        .nest("/eci/api", eci::router(state.clone()))
        .nest(
            "/github",
            github::router(state.clone()).merge(github_app::router()),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            traffic::traffic,
        ));
    Router::new()
        .merge(apis)
        .nest("/admin", admin::router())
        .fallback(|| async { GhError::not_found() })
        .with_state(state)
}

impl Sandbox {
    /// Binds `config.listen` and serves until [`Sandbox::stop`] (or drop).
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let host = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let url = format!("http://{}", SocketAddr::new(host, addr.port()));
        let state: AppState = Arc::new(Shared::new(url.clone(), config.github_tokens));
        let (tx, rx) = oneshot::channel::<()>();
        let router = app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // A dropped sender (Sandbox dropped) also stops the server.
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%url, "sandbox listening");
        Ok(Sandbox {
            addr,
            url,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// ECI base URL (`url + "/eci/api"`); contract paths follow it.
    pub fn eci_base(&self) -> String {
        format!("{}/eci/api", self.url)
    }

    /// GitHub REST base (`url + "/github"`), like `https://api.github.com`.
    pub fn github_api(&self) -> String {
        format!("{}/github", self.url)
    }

    /// Admin API base (`url + "/admin"`).
    pub fn admin(&self) -> String {
        format!("{}/admin", self.url)
    }

    fn signal_stop(&mut self) {
        self.state.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops accepting, releases hanging requests and waits (at most 5 s) for the server.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
