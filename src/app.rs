//! Wiring: policy → clients → engine, for each mode; returns the process exit code.

use crate::cli::{Cli, Mode};
use crate::destination::github::Github;
use crate::destination::vault::Vault;
use crate::eci::EciClient;
use crate::exit;
use crate::policy::{self, Policy, SecretRef, TokenPolicy, VaultDestination};
use crate::rotation::{Engine, Options, report};
use crate::secret::SecretValue;
use crate::state::{self, Store};
use std::sync::Arc;

/// Run the mode the command line selects.
pub async fn run(cli: &Cli) -> u8 {
    let policy = match policy::load(&cli.config) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("policy {} is invalid; nothing was changed", cli.config.display());
            return exit::CONFIG;
        }
    };
    match cli.mode() {
        Mode::Check => {
            println!(
                "policy {} is valid: {} token(s), every credential reference resolves",
                cli.config.display(),
                policy.tokens.len()
            );
            exit::OK
        }
        Mode::RotateNow => rotate_now(cli, &policy).await,
        Mode::Daemon => {
            eprintln!("daemon mode is not available in this build; use --rotate-now");
            exit::USAGE
        }
    }
}

/// `--rotate-now`: one pass over the policy's tokens (or the named ones), summary on stdout.
pub async fn rotate_now(cli: &Cli, policy: &Policy) -> u8 {
    let tokens = match select(policy, &cli.tokens) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return exit::USAGE;
        }
    };
    let opts = Options {
        force: cli.force,
        dry_run: cli.dry_run,
    };
    let dir = state::resolve_dir(policy.state.dir.as_deref());
    let (store, _lock) = if cli.dry_run {
        (dir.is_dir().then(|| Store::open_existing(&dir)), None)
    } else {
        let store = match Store::open(&dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        };
        let lock = match store.lock(cli.lock_wait) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        };
        (Some(store), Some(lock))
    };
    let engine = match build_engine(policy, store, !cli.dry_run).await {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("error: {msg}");
            return exit::FAILED;
        }
    };
    let reports = engine.run(&tokens, &opts).await;
    print!("{}", report::render(&reports, chrono::Utc::now()));
    if reports.iter().any(|r| r.failed()) {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// The policy's tokens named on the command line (all when none are named).
fn select(policy: &Policy, names: &[String]) -> Result<Vec<TokenPolicy>, String> {
    if names.is_empty() {
        return Ok(policy.tokens.clone());
    }
    let mut out = Vec::new();
    for n in names {
        match policy.tokens.iter().find(|t| &t.name == n) {
            Some(t) => out.push(t.clone()),
            None => {
                let known: Vec<&str> = policy.tokens.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "--token {n}: no such token in {} (known: {})",
                    policy.source.display(),
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// Connect what the policy names. With `destinations` false (dry run), Vault is contacted only
/// if the ECI credential lives there, and GitHub not at all.
pub async fn build_engine(policy: &Policy, store: Option<Store>, destinations: bool) -> Result<Engine, String> {
    let needs_vault = destinations && policy.tokens.iter().any(|t| !t.vault.is_empty())
        || matches!(policy.eci.token, SecretRef::Vault { .. });
    let vault = match (&policy.vault, needs_vault) {
        (Some(section), true) => Some(Arc::new(
            Vault::connect(section)
                .await
                .map_err(|e| format!("Vault at {}: {e}", section.address))?,
        )),
        _ => None,
    };
    let github = match (&policy.github, destinations && policy.tokens.iter().any(|t| !t.github.is_empty())) {
        (Some(section), true) => Some(Arc::new(Github::connect(section).map_err(|e| e.to_string())?)),
        _ => None,
    };
    let eci_token = eci_credential(policy, vault.as_deref()).await?;
    let eci = EciClient::new(&policy.eci.endpoint, eci_token, policy.eci.timeout).map_err(|e| e.to_string())?;
    Ok(Engine {
        eci,
        vault,
        github,
        store,
        default_mount: policy.vault.as_ref().map(|v| v.mount.clone()).unwrap_or_else(|| "secret".into()),
        concurrency: policy.defaults.concurrency,
    })
}

/// The token this product calls ECI with.
async fn eci_credential(policy: &Policy, vault: Option<&Vault>) -> Result<SecretValue, String> {
    match &policy.eci.token {
        SecretRef::Vault { path, key } => {
            let vault = vault.ok_or("[eci] token is read from Vault, but the policy has no [vault] section")?;
            let dest = VaultDestination {
                mount: None,
                path: path.clone(),
                key: key.clone(),
            };
            vault
                .read_value(&dest)
                .await
                .map_err(|e| format!("reading the ECI credential from Vault: {e}"))?
                .ok_or_else(|| format!("the ECI credential is not in Vault at {path}#{key}"))
        }
        other => other
            .resolve()
            .map_err(|e| format!("ECI credential ({}): {e}", other.describe())),
    }
}
