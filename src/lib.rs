//! eci-secret-sync: keeps ECI API access tokens from expiring by rotating them into Vault and
//! GitHub Actions secrets before they do.

pub mod app;
pub mod audit;
pub mod check;
pub mod cli;
pub mod daemon;
pub mod destination;
pub mod eci;
pub mod exit;
pub mod hardening;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod plan;
pub mod policy;
pub mod retry;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod status;
