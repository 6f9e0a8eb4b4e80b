//! Entry point: parse flags, set up logging, run, exit with the documented code.

use clap::Parser;
use eci_secret_sync::cli::{Cli, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    eci_secret_sync::hardening::private_umask();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eci_secret_sync::say_err!("error: cannot start the async runtime: {e}");
            return ExitCode::from(eci_secret_sync::exit::FAILED);
        }
    };
    let code = runtime.block_on(eci_secret_sync::app::run(&cli));
    eci_secret_sync::output::flush();
    ExitCode::from(code)
}

/// Logs go to stderr; `ECI_SECRET_SYNC_LOG` (tracing's filter syntax) overrides the level.
/// vaultrs and rustify log expected failures (check-and-set conflicts) at ERROR: silenced,
/// this product logs its own line.
fn init_logging(cli: &Cli) {
    let default = match cli.mode() {
        eci_secret_sync::cli::Mode::Daemon => "info",
        _ => "warn",
    };
    let asked = std::env::var("ECI_SECRET_SYNC_LOG").ok();
    let quiet = "rustify=off,vaultrs=off,octocrab=off,hyper=warn";
    let mut refused = None;
    let filter = match asked.as_deref() {
        Some(f) => EnvFilter::try_new(format!("{f},{quiet}")).unwrap_or_else(|e| {
            refused = Some(e.to_string());
            EnvFilter::new(format!("{default},{quiet}"))
        }),
        None => EnvFilter::new(format!("{default},{quiet}")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| eci_secret_sync::output::ScrubbedStderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    if let Some(why) = refused {
        tracing::warn!(
            "ECI_SECRET_SYNC_LOG is not a valid filter ({why}); logging at the default level ({default})"
        );
    }
}
