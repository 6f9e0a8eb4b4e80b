//! Command-line flags and the mode they select.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// The policy read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/eci-secret-sync/policy.toml";

const AFTER_HELP: &str = "\
Modes:
  (none)          run as a daemon: rotate what is due at each scheduled time
  --rotate-now    rotate every due token once, print a summary, exit
  --check         validate the policy and resolve the credentials it names, exit
    --online      with --check: also prove access (ECI who-am-I and create permission,
                  Vault login and write capability on each path, GitHub access to each
                  scope's public key); changes nothing
  --status        show every token's expiry, rotation state and destinations, exit
  --abandon NAME  close NAME's open rotation (its replacement is deleted if unused), exit

Exit codes:
  0   all good
  1   some rotation failed (the old token was kept; nothing unsafe was done), or a
      server was unreachable or refused (Vault sealed, say, even with nothing due);
      --status: a token is failed, expired, missing or unknown, a destination is
      stale, ECI could not be asked, Vault cannot be used, or a state file cannot be
      read; --abandon: the rotation could not be closed (none open, or a destination
      may hold it)
  2   bad command line
  78  the policy is invalid or cannot be read (file:line:column and key are printed)";

/// Rotates ECI access tokens before they expire and pushes the new values to Vault (KV v2) and
/// GitHub Actions secrets; the old token is deleted only once every destination holds the new one.
#[derive(Debug, Parser)]
#[command(name = "eci-secret-sync", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Policy file (TOML).
    #[arg(
        long,
        short = 'c',
        value_name = "PATH",
        env = "ECI_SECRET_SYNC_CONFIG",
        default_value = DEFAULT_CONFIG
    )]
    pub config: PathBuf,

    /// Rotate every due token once, print what was done, and exit.
    #[arg(long, conflicts_with = "check")]
    pub rotate_now: bool,

    /// With --rotate-now: only this token (repeat for several).
    #[arg(long = "token", value_name = "NAME", requires = "rotate_now")]
    pub tokens: Vec<String>,

    /// With --rotate-now: rotate even if not due. With --abandon: close the rotation even
    /// though destinations hold its replacement (both tokens stay alive).
    #[arg(long)]
    pub force: bool,

    /// With --rotate-now: print the plan, change nothing.
    #[arg(long, requires = "rotate_now")]
    pub dry_run: bool,

    /// Validate the policy and the credentials it names, then exit.
    #[arg(long)]
    pub check: bool,

    /// With --check: also prove access (ECI who-am-I and create permission, Vault login and
    /// write capability on each destination, GitHub access to each scope). Changes nothing.
    #[arg(long, requires = "check")]
    pub online: bool,

    /// Show every token: expiry, when it rotates, state, each destination's last result, last
    /// rotation, next runs.
    #[arg(long, conflicts_with_all = ["rotate_now", "check"])]
    pub status: bool,

    /// With --status: print JSON.
    #[arg(long, requires = "status")]
    pub json: bool,

    /// Close NAME's open rotation: its replacement is deleted if no destination holds it.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["rotate_now", "check", "status"])]
    pub abandon: Option<String>,

    /// How long to wait for another instance holding the state lock.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_wait)]
    pub lock_wait: std::time::Duration,

    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    crate::policy::parse_duration(s)
}

/// What the flags ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    RotateNow,
    Check,
    Status,
    Abandon,
}

impl Cli {
    /// A flag given with a mode it does not apply to (clap's `requires` does not catch every
    /// combination): refused with exit 2 rather than silently ignored.
    pub fn misuse(&self) -> Option<String> {
        let mode = self.mode();
        let only = |given: bool, flag: &str, modes: &[Mode], with: &str| {
            (given && !modes.contains(&mode)).then(|| format!("{flag} goes with {with} only"))
        };
        only(
            self.dry_run,
            "--dry-run",
            &[Mode::RotateNow],
            "--rotate-now",
        )
        .or_else(|| {
            only(
                !self.tokens.is_empty(),
                "--token",
                &[Mode::RotateNow],
                "--rotate-now",
            )
        })
        .or_else(|| {
            only(
                self.force,
                "--force",
                &[Mode::RotateNow, Mode::Abandon],
                "--rotate-now or --abandon",
            )
        })
        .or_else(|| only(self.json, "--json", &[Mode::Status], "--status"))
        .or_else(|| only(self.online, "--online", &[Mode::Check], "--check"))
    }

    pub fn mode(&self) -> Mode {
        if self.rotate_now {
            Mode::RotateNow
        } else if self.status {
            Mode::Status
        } else if self.abandon.is_some() {
            Mode::Abandon
        } else if self.check {
            Mode::Check
        } else {
            Mode::Daemon
        }
    }
}
