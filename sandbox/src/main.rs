//! `eci-sandbox`: runs the sandbox server until SIGTERM or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use eci_sandbox::{Sandbox, SandboxConfig};

/// Local fake ECI + GitHub secrets API + admin API on one port.
#[derive(Parser, Debug)]
#[command(name = "eci-sandbox", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A GitHub credential to accept (repeatable; default `ghp_sandbox`).
    #[arg(long = "github-token")]
    github_tokens: Vec<String>,
    /// Write the base URL to this file (atomically) once listening.
    #[arg(long)]
    url_file: Option<PathBuf>,
}

/// Writes `contents` to `path` via a temporary file and a rename.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = SandboxConfig {
        listen: args.listen,
        ..SandboxConfig::default()
    };
    if !args.github_tokens.is_empty() {
        config.github_tokens = args.github_tokens;
    }
    let sandbox = Sandbox::start(config).await?;
    let url = sandbox.url();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "eci-sandbox listening on {url}").context("cannot write to stdout")?;
        out.flush().context("cannot flush stdout")?;
    }
    if let Some(path) = &args.url_file {
        write_atomically(path, &url)?;
    }
    let waited = wait_for_signal().await;
    sandbox.stop().await;
    waited
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eci-sandbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
