//! Wiring: policy → clients → engine, for each mode; returns the process exit code.

use crate::cli::{Cli, Mode};
use crate::destination::github::Github;
use crate::destination::vault::Vault;
use crate::eci::EciClient;
use crate::exit;
use crate::policy::{self, Policy, SecretRef, TokenPolicy, VaultDestination};
use crate::rotation::{Engine, Options, OwnCredential, report};
use crate::secret::SecretValue;
use crate::state::{self, Store};
use std::sync::Arc;

/// Run the mode the command line selects.
pub async fn run(cli: &Cli) -> u8 {
    if let Some(misuse) = cli.misuse() {
        crate::say_err!("error: {misuse}");
        return exit::USAGE;
    }
    // The daemon's signal handlers come first: a SIGHUP or SIGTERM while the policy and its
    // credentials load is then handled (a reload, a stop), never the default that kills.
    let signals = match cli.mode() {
        Mode::Daemon => match crate::daemon::signals::Signals::install() {
            Ok(s) => Some(s),
            Err(e) => {
                crate::say_err!("error: cannot install signal handlers: {e}");
                return exit::FAILED;
            }
        },
        _ => None,
    };
    let policy = match policy::load(&cli.config) {
        Ok(p) => p,
        Err(errors) => {
            crate::say_err!("{errors}");
            // A file that is not there (or not a file) is not "invalid": it was never read.
            let what = if cli.config.is_file() {
                "is invalid"
            } else {
                "cannot be read"
            };
            crate::say_err!(
                "policy {} {what}; nothing was changed",
                cli.config.display()
            );
            return exit::CONFIG;
        }
    };
    for warning in crate::hardening::permission_warnings(&policy) {
        tracing::warn!("{warning}");
    }

    match cli.mode() {
        Mode::Check => {
            let vault_eci = if matches!(policy.eci.token, SecretRef::Vault { .. }) {
                " (the Vault reference of [eci] token is checked by --check --online)"
            } else {
                ""
            };
            crate::say!(
                "policy {} is valid: {} token(s), every credential reference resolves{vault_eci}",
                cli.config.display(),
                policy.tokens.len()
            );
            let watched: Vec<&str> = policy
                .tokens
                .iter()
                .filter(|t| t.vault.is_empty() && t.github.is_empty())
                .map(|t| t.name.as_str())
                .collect();
            if !watched.is_empty() {
                crate::say!(
                    "watched only (no destinations, so never rotated; their expiry is reported and notified): {}",
                    watched.join(", ")
                );
            }
            crate::say_raw!("{}", crate::daemon::next_runs_text(&policy));
            if !cli.online {
                return exit::OK;
            }
            let report = crate::check::run(&policy, &mut |c| crate::say!("{c}")).await;
            crate::say!("{}", report.summary());
            if report.failed() > 0 {
                exit::FAILED
            } else {
                exit::OK
            }
        }
        Mode::RotateNow => rotate_now(cli, &policy).await,
        Mode::Status => status(cli, &policy).await,
        Mode::Abandon => abandon(cli, &policy).await,
        Mode::Daemon => match signals {
            Some(signals) => crate::daemon::run(cli, policy, signals).await,
            None => exit::FAILED,
        },
    }
}

/// `--rotate-now`: one pass over the policy's tokens (or the named ones), summary on stdout.
pub async fn rotate_now(cli: &Cli, policy: &Policy) -> u8 {
    let tokens = match select(policy, &cli.tokens) {
        Ok(t) => t,
        Err(msg) => {
            crate::say_err!("error: {msg}");
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
                crate::say_err!("error: {e}");
                return exit::FAILED;
            }
        };
        let lock = match store.lock(cli.lock_wait) {
            Ok(l) => l,
            Err(e) => {
                crate::say_err!("error: {e}");
                return exit::FAILED;
            }
        };
        (Some(store), Some(lock))
    };
    // A dry run connects the destinations too: it checks, without writing, that each can take
    // the value.
    let engine = match build_engine(policy, store, true).await {
        Ok(e) => e,
        Err(msg) => {
            crate::say_err!("error: {msg}");
            return exit::FAILED;
        }
    };
    let reports = engine.run(&tokens, &opts).await;
    let store = if cli.dry_run {
        None
    } else {
        engine.store.as_ref()
    };
    let notified = crate::notify::after_run(policy, store, &engine.eci, &reports).await;
    crate::say_raw!("{}", report::render(&reports, chrono::Utc::now()));
    if let Some(store) = engine.store.as_ref() {
        for u in crate::rotation::unlisted_open_rotations(store, policy) {
            crate::say_raw!("warning: {u}\n");
        }
    }
    if notified.skipped.is_none() {
        crate::say_raw!("{notified}");
    }
    if reports.iter().any(|r| r.failed()) {
        return exit::FAILED;
    }
    // Nothing failed, perhaps because nothing due needed Vault: a Vault that cannot be used
    // now (sealed, unreachable, credential refused) is still said, and fails the run, as a
    // daemon pass does, so it is seen before a token comes due.
    if tokens.iter().any(|t| !t.vault.is_empty())
        && let Some(problem) = engine.vault_unusable().await
    {
        crate::say_raw!(
            "warning: {problem}; nothing this run did needed it, but a rotation that writes to Vault would fail now\n"
        );
        exit::FAILED
    } else {
        exit::OK
    }
}

/// `--status`: read-only; asks ECI when the credential is at hand, else shows saved state.
pub async fn status(cli: &Cli, policy: &Policy) -> u8 {
    let dir = state::resolve_dir(policy.state.dir.as_deref());
    let store = dir.is_dir().then(|| Store::open_existing(&dir));
    let (engine, eci_error) = match build_engine(policy, None, false).await {
        Ok(e) => (Some(e), None),
        Err(e) => (None, Some(e)),
    };
    // Someone is waiting at a terminal: one retry, not the rotations' patience.
    let eci = engine.as_ref().map(|e| {
        e.eci.clone().with_backoff(crate::retry::Backoff {
            attempts: 2,
            base: std::time::Duration::from_millis(500),
            max_wait: std::time::Duration::from_secs(5),
        })
    });
    let mut st = crate::status::gather(policy, store.as_ref(), eci.as_ref(), eci_error).await;
    // Vault too, when some token writes to it: a sealed Vault or a refused credential is
    // seen before a token comes due.
    if let (Some(section), true) = (
        &policy.vault,
        policy.tokens.iter().any(|t| !t.vault.is_empty()),
    ) {
        st.vault_error = match Vault::connect(section).await {
            Ok(v) => v.unusable().await,
            Err(e) => Some(format!("Vault at {}: {e}", section.address)),
        };
    }
    if cli.json {
        match serde_json::to_string_pretty(&st) {
            Ok(j) => crate::say!("{j}"),
            Err(e) => {
                crate::say_err!("error: {e}");
                return exit::FAILED;
            }
        }
    } else {
        let schedule = crate::schedule::Schedule::from_section(&policy.schedule).ok();
        crate::say_raw!("{}", crate::status::render(&st, schedule.as_ref()));
    }
    if st.troubled() {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// `--abandon NAME`: close an open rotation (under the one-writer lock).
pub async fn abandon(cli: &Cli, policy: &Policy) -> u8 {
    let Some(name) = cli.abandon.as_deref() else {
        return exit::USAGE;
    };
    let Some(token) = policy.tokens.iter().find(|t| t.name == name) else {
        let known: Vec<&str> = policy.tokens.iter().map(|t| t.name.as_str()).collect();
        crate::say_err!(
            "error: --abandon {name}: no such token in {} (known: {})",
            policy.source.display(),
            known.join(", ")
        );
        return exit::USAGE;
    };
    let dir = state::resolve_dir(policy.state.dir.as_deref());
    let store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            crate::say_err!("error: {e}");
            return exit::FAILED;
        }
    };
    let _lock = match store.lock(cli.lock_wait) {
        Ok(l) => l,
        Err(e) => {
            crate::say_err!("error: {e}");
            return exit::FAILED;
        }
    };
    // With the destinations: a write whose outcome the journal does not know is checked there.
    let engine = match build_engine(policy, Some(store), true).await {
        Ok(e) => e,
        Err(msg) => {
            crate::say_err!("error: {msg}");
            return exit::FAILED;
        }
    };
    match engine.abandon(token, cli.force).await {
        Ok(msg) => {
            crate::say!("{msg}");
            exit::OK
        }
        Err(msg) => {
            crate::say_err!("error: {msg}");
            exit::FAILED
        }
    }
}

/// The policy's tokens named on the command line (all when none are named).
fn select(policy: &Policy, names: &[String]) -> Result<Vec<TokenPolicy>, String> {
    if names.is_empty() {
        return Ok(policy.tokens.clone());
    }
    let mut out: Vec<TokenPolicy> = Vec::new();
    for n in names {
        match policy.tokens.iter().find(|t| &t.name == n) {
            // Named twice is still one token, rotated once.
            Some(t) if out.iter().any(|o| o.name == t.name) => {}
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

/// Connect what the policy names. With `destinations` false (`--status`), Vault is contacted
/// only if the ECI credential lives there, and GitHub not at all.
pub async fn build_engine(
    policy: &Policy,
    store: Option<Store>,
    destinations: bool,
) -> Result<Engine, String> {
    let needs_vault = destinations && policy.tokens.iter().any(|t| !t.vault.is_empty())
        || matches!(policy.eci.token, SecretRef::Vault { .. });
    // A Vault that cannot be reached stops only the tokens that write to it (before any
    // replacement is made), unless the ECI credential itself is read from it.
    let (vault, vault_error) = match (&policy.vault, needs_vault) {
        (Some(section), true) => match Vault::connect(section).await {
            Ok(v) => (Some(Arc::new(v)), None),
            Err(e) => {
                let message = format!("Vault at {}: {e}", section.address);
                if matches!(policy.eci.token, SecretRef::Vault { .. }) {
                    return Err(message);
                }
                (None, Some(message))
            }
        },
        _ => (None, None),
    };
    let github = match (
        &policy.github,
        destinations && policy.tokens.iter().any(|t| !t.github.is_empty()),
    ) {
        (Some(section), true) => Some(Arc::new(
            Github::connect(section).map_err(|e| e.to_string())?,
        )),
        _ => None,
    };
    let eci_token = eci_credential(policy, vault.as_deref()).await?;
    let eci = EciClient::new(&policy.eci.endpoint, eci_token, policy.eci.timeout)
        .map_err(|e| e.to_string())?;
    Ok(Engine {
        eci,
        vault,
        github,
        store,
        default_mount: policy
            .vault
            .as_ref()
            .map(|v| v.mount.clone())
            .unwrap_or_else(|| "secret".into()),
        concurrency: policy.defaults.concurrency,
        own_credential: own_credential(policy),
        vault_error,
        command: command_for(policy),
    })
}

/// The policy token whose Vault destination `[eci] token` is read from, if any: this program's
/// own credential, rotated like any other token and switched to in flight.
fn own_credential(policy: &Policy) -> Option<OwnCredential> {
    let SecretRef::Vault { path, key } = &policy.eci.token else {
        return None;
    };
    let default_mount = policy
        .vault
        .as_ref()
        .map(|v| v.mount.as_str())
        .unwrap_or("secret");
    policy.tokens.iter().find_map(|t| {
        t.vault
            .iter()
            .find(|d| {
                &d.path == path
                    && &d.key == key
                    && d.mount.as_deref().unwrap_or(default_mount) == default_mount
            })
            .map(|d| OwnCredential {
                token_name: t.name.clone(),
                source: d.clone(),
            })
    })
}

/// The token this product calls ECI with.
pub async fn eci_credential(policy: &Policy, vault: Option<&Vault>) -> Result<SecretValue, String> {
    match &policy.eci.token {
        SecretRef::Vault { path, key } => {
            let vault = vault
                .ok_or("[eci] token is read from Vault, but the policy has no [vault] section")?;
            let dest = VaultDestination {
                mount: None,
                path: path.clone(),
                key: key.clone(),
            };
            let value = vault
                .read_value(&dest)
                .await
                .map_err(|e| format!("ECI credential ({}): {e}", policy.eci.token.describe()))?
                .ok_or_else(|| {
                    format!(
                        "ECI credential ({}): no key `{key}` in the Vault secret `{path}` under the mount `{}`, or no such secret",
                        policy.eci.token.describe(),
                        policy.vault.as_ref().map(|v| v.mount.as_str()).unwrap_or("secret")
                    )
                })?;
            // A value stored by hand (`bao kv put ... token=@file`) may end in a newline.
            let trimmed = value.expose().trim_end();
            if trimmed.is_empty() {
                return Err(format!(
                    "ECI credential ({}): the key `{key}` is empty",
                    policy.eci.token.describe()
                ));
            }
            let value = if trimmed.len() == value.expose().len() {
                value
            } else {
                SecretValue::new(trimmed)
            };
            // Sent as a header: one line.
            crate::policy::secret_ref::one_line(&value)
                .map_err(|e| format!("ECI credential ({}): {e}", policy.eci.token.describe()))?;
            Ok(value)
        }
        other => other
            .resolve_line()
            .map_err(|e| format!("ECI credential ({}): {e}", other.describe())),
    }
}

/// How to call this program on `policy` in a suggested command: `--config` is named unless the
/// policy is the default one.
pub fn command_for(policy: &Policy) -> String {
    let default = std::path::Path::new(crate::cli::DEFAULT_CONFIG);
    if policy.source == default {
        "eci-secret-sync".to_owned()
    } else {
        let path = std::path::absolute(&policy.source).unwrap_or_else(|_| policy.source.clone());
        format!("eci-secret-sync --config {}", path.display())
    }
}
