//! Reading a policy file: TOML syntax, then every section and token, then the cross checks
//! and a resolve of each secret reference; all problems come back together.

use std::path::Path;

use toml::de::DeTable;

use super::checks;
use super::error::{PolicyError, PolicyErrors};
use super::model::Policy;
use super::notify::notify;
use super::reader::{Ctx, Table};
use super::secret_ref;
use super::sections;
use super::services;
use super::tokens::tokens;

const TOP_LEVEL_KEYS: [&str; 9] = [
    "eci", "vault", "github", "schedule", "defaults", "state", "notify", "metrics", "token",
];

/// The largest policy file read (a policy of a thousand tokens is far smaller).
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Reads, parses and validates the policy at `path`, reporting every problem at once. Only a
/// regular file of at most 1 MiB is read: a FIFO, a device or a runaway file never blocks or
/// exhausts the program (nor a daemon's reload).
pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
    match secret_ref::read_small_file(path, "policy file", MAX_POLICY_BYTES, "1 MiB") {
        Ok(source) => parse(&source, path),
        Err(message) => {
            // The error names the file first; say it once.
            let mut message = message
                .replace(&format!(" `{}`", path.display()), "")
                .replace("cannot read file", "cannot read policy file");
            if !path.exists() {
                message.push_str(
                    " (name the policy with --config PATH or ECI_SECRET_SYNC_CONFIG; config.example.toml is a start)",
                );
            }
            Err(PolicyErrors(vec![PolicyError::whole_file(path, message)]))
        }
    }
}

/// Parses and validates policy text; `path` is used in messages and to resolve relative
/// `file` references.
pub fn parse(source: &str, path: &Path) -> Result<Policy, PolicyErrors> {
    let mut cx = Ctx::new(source, path);
    let (doc, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        for e in &syntax_errors {
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let at = e.span().unwrap_or(0..0);
            // toml says "duplicate key" only: name it.
            let message = match source.get(at.clone()) {
                Some(key) if message == "duplicate key" && !key.trim().is_empty() => {
                    format!("duplicate key `{}`", key.trim())
                }
                _ => message,
            };
            cx.error(&at, "", message);
        }
        return Err(PolicyErrors::sorted(cx.errors));
    }
    let root = Table::root(&doc);
    root.check_keys(&mut cx, &TOP_LEVEL_KEYS);
    let eci = services::eci(&mut cx, &root);
    let vault = services::vault(&mut cx, &root);
    let github = services::github(&mut cx, &root);
    let schedule = sections::schedule(&mut cx, &root);
    let defaults = sections::defaults(&mut cx, &root);
    let state = sections::state(&mut cx, &root);
    let notify = notify(&mut cx, &root);
    let metrics = sections::metrics(&mut cx, &root);
    let tokens = tokens(&mut cx, &root, &defaults);
    checks::unique_names(&mut cx, &tokens);
    checks::unique_destinations(&mut cx, &tokens, vault.as_ref());
    checks::sections_present(&mut cx, &root, &tokens);
    secret_ref::check_all(&mut cx);
    match eci {
        Some(eci) if cx.errors.is_empty() => Ok(Policy {
            source: path.to_path_buf(),
            eci,
            vault,
            github,
            schedule,
            defaults,
            state,
            notify,
            metrics,
            tokens: tokens.into_iter().map(|t| t.policy).collect(),
        }),
        _ => Err(PolicyErrors::sorted(cx.errors)),
    }
}
