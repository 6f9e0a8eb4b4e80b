//! eci-secret-sync: keeps ECI API access tokens from expiring by rotating them into Vault and
//! GitHub Actions secrets before they do.

pub mod app;
pub mod cli;
pub mod destination;
pub mod eci;
pub mod exit;
pub mod plan;
pub mod policy;
pub mod retry;
pub mod rotation;
pub mod secret;
pub mod state;
