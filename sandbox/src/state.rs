//! Shared state of one running sandbox: ECI store, GitHub world, faults and request log.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::eci_store::EciStore;
use crate::faults::Traffic;
use crate::github_world::GithubWorld;

/// Everything the handlers share; cloned cheaply as [`AppState`].
pub(crate) struct Shared {
    /// `http://127.0.0.1:PORT`, used to build URLs inside replies.
    pub base_url: String,
    /// GitHub credentials from the config (restored by `/admin/reset`).
    pub config_github_tokens: Vec<String>,
    pub eci: Mutex<EciStore>,
    pub github: Mutex<GithubWorld>,
    pub traffic: Mutex<Traffic>,
    /// Bumped whenever faults are removed, so hanging requests re-check theirs.
    pub faults_changed: watch::Sender<u64>,
    /// Set to `true` when the server stops, releasing every hanging request.
    pub stopping: watch::Sender<bool>,
}

pub(crate) type AppState = Arc<Shared>;

impl Shared {
    pub(crate) fn new(base_url: String, github_tokens: Vec<String>) -> Self {
        Shared {
            base_url,
            github: Mutex::new(GithubWorld::new(github_tokens.clone())),
            config_github_tokens: github_tokens,
            eci: Mutex::new(EciStore::new()),
            traffic: Mutex::new(Traffic::default()),
            faults_changed: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
        }
    }

    /// Wakes requests held by `hang` faults so they re-check whether their fault still exists.
    pub(crate) fn notify_faults_changed(&self) {
        self.faults_changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
