//! Daemon mode: wake at each scheduled time and rotate what is due; SIGHUP reloads, SIGTERM/SIGINT stop; systemd readiness.
//!
//! Lifecycle: start (signals, state folder, instance lock, missed-run check) → `READY=1` →
//! loop over the next run, signals, the pass in flight and watchdog pings → stop. The pass
//! in flight is polled by that same loop, so signals are heard while it works; an error (even
//! a panic) in a pass is logged and the next scheduled run still comes.

mod changes;
pub mod instance;
pub mod memory;
mod pass;
pub mod signals;
mod systemd;

use crate::cli::Cli;
use crate::destination::vault::TokenRenewal;
use crate::exit;
use crate::policy::{self, Policy};
use crate::schedule::Schedule;
use crate::state::{self, Store};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use memory::{FirstRun, Memory};
use pass::PassOutcome;
use rand::Rng;
use signals::{Event, Signals};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long a stop waits for the pass in flight; systemd's default stop timeout is 90 s,
/// the promise is 30 s.
const STOP_GRACE: Duration = Duration::from_secs(25);
/// Longest single sleep, so a wall-clock change (NTP, suspend) is noticed.
const MAX_NAP: Duration = Duration::from_secs(30);

/// Run until SIGTERM/SIGINT; returns the exit code.
pub async fn run(cli: &Cli, policy: Policy, mut signals: Signals) -> u8 {
    let schedule = match Schedule::from_section(&policy.schedule) {
        Ok(s) => s,
        Err(e) => {
            crate::say_err!("{}: schedule: {e}", cli.config.display());
            return exit::CONFIG;
        }
    };
    let dir = state::resolve_dir(policy.state.dir.as_deref());
    let store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            crate::say_err!("error: {e}");
            return exit::FAILED;
        }
    };
    let _instance = match instance::acquire(store.dir()) {
        Ok(lock) => lock,
        Err(e) => {
            crate::say_err!("error: {e}");
            return exit::FAILED;
        }
    };
    if let Some(listen) = &policy.metrics.listen
        && let Err(e) = crate::metrics::serve(listen).await
    {
        crate::say_err!("error: [metrics] listen = {listen:?}: {e}");
        return exit::FAILED;
    }
    let memory = match memory::load(&store) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the daemon's memory; it is rewritten after the next pass");
            Some(Memory::default())
        }
    };
    // The series from saved state at once: a restart leaves no alert blind until the first pass.
    crate::metrics::global().seed(
        &policy,
        &store,
        memory.as_ref().and_then(|m| m.last_pass.as_ref()),
    );
    let now = Utc::now();
    let first = memory::first_run(&schedule, memory.as_ref(), now);
    let vault_renewal = TokenRenewal::start(&policy);
    let mut daemon = Daemon {
        config: cli.config.clone(),
        policy: Arc::new(policy),
        schedule,
        store,
        memory: memory.unwrap_or_default(),
        next: Next {
            scheduled: now,
            run_at: now,
        },
        running: None,
        reload_failed: false,
        vault_renewal,
    };
    daemon.started(first, now);
    daemon.run(&mut signals).await
}

/// The next pass: the scheduled time it serves, and when it starts (with jitter).
#[derive(Debug, Clone, Copy)]
struct Next {
    scheduled: DateTime<Utc>,
    run_at: DateTime<Utc>,
}

/// A pass in flight; dropping it cancels it at its next await (as safe as a crash: the
/// rotation journal is saved before each step acts).
struct Running {
    scheduled: DateTime<Utc>,
    started: DateTime<Utc>,
    pass: Pin<Box<dyn Future<Output = PassOutcome>>>,
}

struct Daemon {
    config: PathBuf,
    policy: Arc<Policy>,
    schedule: Schedule,
    store: Store,
    memory: Memory,
    next: Next,
    running: Option<Running>,
    reload_failed: bool,
    /// Keeps a `method = "token"` Vault token alive between (and during) passes.
    vault_renewal: Option<TokenRenewal>,
}

impl Daemon {
    fn started(&mut self, first: FirstRun, now: DateTime<Utc>) {
        tracing::info!(
            policy = %self.config.display(),
            tokens = self.policy.tokens.len(),
            state = %self.store.dir().display(),
            "eci-secret-sync daemon started"
        );
        self.log_schedule(now);
        match first {
            FirstRun::Now(why) => {
                tracing::info!("running a pass at once: {why}");
                self.next = Next {
                    scheduled: now,
                    run_at: now,
                };
            }
            FirstRun::Scheduled => self.plan(now),
        }
        systemd::ready(&self.status());
        crate::metrics::global().set_ready(true);
        tracing::info!(next = %self.schedule.local(self.next.run_at), "ready");
    }

    async fn run(mut self, signals: &mut Signals) -> u8 {
        let mut watchdog = systemd::watchdog_period().map(tokio::time::interval);
        loop {
            let idle = self.running.is_none();
            tokio::select! {
                event = signals.recv() => match event {
                    Event::Stop(name) => return self.stop(name, signals).await,
                    Event::Reload => self.reload(),
                },
                outcome = join_any(&mut self.running) => self.finished(outcome),
                () = wait_until(self.next.run_at), if idle => self.start_pass(),
                () = beat(&mut watchdog) => systemd::watchdog(),
            }
        }
    }

    /// Log the schedule and its next three runs, in the policy's zone and in UTC.
    fn log_schedule(&self, now: DateTime<Utc>) {
        tracing::info!(
            cron = %self.schedule.pattern(),
            timezone = %self.schedule.zone().name(),
            jitter = %policy::format_duration(self.policy.schedule.jitter),
            "schedule"
        );
        for at in self.schedule.upcoming(now, 3) {
            tracing::info!("next scheduled run: {}", self.schedule.describe(at));
        }
    }

    /// Set the next pass to the first scheduled time after `after`, plus jitter.
    fn plan(&mut self, after: DateTime<Utc>) {
        // `Schedule::new` refuses a pattern without a next run; this fallback is for the year 5000.
        let scheduled = self
            .schedule
            .next_after(after)
            .unwrap_or_else(|| after + chrono::Duration::days(1));
        let run_at = scheduled + jitter(self.policy.schedule.jitter);
        self.next = Next { scheduled, run_at };
    }

    fn start_pass(&mut self) {
        let (policy, store, scheduled) =
            (self.policy.clone(), self.store.clone(), self.next.scheduled);
        let started = Utc::now();
        self.running = Some(Running {
            scheduled,
            started,
            pass: Box::pin(pass::run(policy, store, scheduled)),
        });
        systemd::status(&self.status());
    }

    fn finished(&mut self, outcome: PassOutcome) {
        self.running = None;
        self.remember(outcome);
        let after = Utc::now().max(self.next.scheduled);
        self.plan(after);
        tracing::info!(next = %self.schedule.local(self.next.run_at), "next pass");
        systemd::status(&self.status());
    }

    fn remember(&mut self, outcome: PassOutcome) {
        if outcome.completed {
            self.memory.last_completed = Some(outcome.record.clone());
        } else {
            crate::metrics::global().observe_incomplete();
        }
        self.memory.last_pass = Some(outcome.record);
        if let Err(e) = memory::save(&self.store, &self.memory) {
            tracing::warn!(error = %e, "cannot record the pass in the state folder");
        }
    }

    /// SIGHUP: a valid policy replaces the current one from the next pass on; an invalid one
    /// is reported and the current one stays.
    fn reload(&mut self) {
        systemd::reloading();
        tracing::info!(policy = %self.config.display(), "SIGHUP: reloading the policy");
        match policy::load(&self.config) {
            Ok(new) => self.apply(new),
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    problems = errors.len(),
                    "policy reload failed; still running on the previous policy"
                );
                self.reload_failed = true;
            }
        }
        systemd::ready(&self.status());
    }

    fn apply(&mut self, new: Policy) {
        let schedule = match Schedule::from_section(&new.schedule) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "{}: schedule.cron: {e}; still running on the previous policy",
                    self.config.display()
                );
                self.reload_failed = true;
                return;
            }
        };
        let changes = changes::between(&self.policy, &new);
        if changes.is_empty() {
            tracing::info!("policy reloaded: no changes");
        }
        for change in &changes {
            tracing::info!("policy reloaded: {change}");
        }
        if state::resolve_dir(new.state.dir.as_deref()) != self.store.dir() {
            tracing::warn!(
                state = %self.store.dir().display(),
                "a new state folder takes effect after a restart; this daemon keeps using the current one"
            );
        }
        if new.metrics.listen != self.policy.metrics.listen {
            tracing::warn!(
                listen = %self.policy.metrics.listen.as_deref().unwrap_or("off"),
                "a new [metrics] listen takes effect after a restart; this daemon keeps serving where it does"
            );
        }
        let retime = self.policy.schedule != new.schedule;
        self.policy = Arc::new(new);
        // Series of tokens and destinations no longer in the policy go.
        crate::metrics::global().forget_removed(&self.policy);
        self.vault_renewal = TokenRenewal::start(&self.policy);
        self.schedule = schedule;
        self.reload_failed = false;
        if retime {
            let now = Utc::now();
            self.log_schedule(now);
            if self.running.is_none() {
                self.plan(now);
            }
        }
        tracing::info!(next = %self.schedule.local(self.next.run_at), "the reloaded policy applies from the next pass");
    }

    /// SIGTERM/SIGINT: take no new work; give the pass in flight up to `STOP_GRACE` to end
    /// (a second signal or the deadline cuts it short: its journal resumes it next start).
    async fn stop(mut self, signal: &str, signals: &mut Signals) -> u8 {
        tracing::info!("{signal}: stopping");
        systemd::stopping();
        if let Some(mut running) = self.running.take() {
            tracing::info!(
                "waiting up to {} s for the rotation pass in flight",
                STOP_GRACE.as_secs()
            );
            let deadline = tokio::time::sleep(STOP_GRACE);
            tokio::pin!(deadline);
            let cut = loop {
                tokio::select! {
                    outcome = join(&mut running) => {
                        self.remember(outcome);
                        break None;
                    }
                    () = &mut deadline => break Some("it did not finish in time"),
                    event = signals.recv() => match event {
                        Event::Stop(_) => break Some("a second stop signal came"),
                        Event::Reload => tracing::info!("SIGHUP ignored while stopping"),
                    },
                }
            };
            if let Some(why) = cut {
                drop(running.pass);
                tracing::warn!(
                    "rotation pass cut short ({why}); the journal in the state folder resumes it at the next start"
                );
                self.remember(PassOutcome::incomplete(
                    running.scheduled,
                    running.started,
                    "cut short by a stop".into(),
                ));
            }
        }
        tracing::info!("stopped");
        exit::OK
    }

    fn last_summary(&self) -> String {
        match &self.memory.last_pass {
            Some(p) => p.summary(),
            None => "none yet".into(),
        }
    }

    /// The `STATUS=` line: `next run …; last: …`.
    fn status(&self) -> String {
        let mut s = match &self.running {
            Some(r) => format!(
                "rotation pass in progress (started {}); last: {}",
                self.schedule.local(r.started),
                self.last_summary()
            ),
            None => format!(
                "next run {}; last: {}",
                self.schedule.local(self.next.run_at),
                self.last_summary()
            ),
        };
        if self.reload_failed {
            s.push_str("; policy reload FAILED, running on the previous policy");
        }
        s
    }
}

/// The pass in flight, when it ends; never, when none runs.
async fn join_any(running: &mut Option<Running>) -> PassOutcome {
    let Some(r) = running else {
        return std::future::pending().await;
    };
    join(r).await
}

/// A pass's outcome; a panic in it becomes a failed pass, not a dead daemon.
async fn join(r: &mut Running) -> PassOutcome {
    match AssertUnwindSafe(&mut r.pass).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!("the rotation pass panicked; the next scheduled run still comes");
            PassOutcome::incomplete(r.scheduled, r.started, "the pass panicked".into())
        }
    }
}

/// Sleep until a wall-clock instant, waking at least every `MAX_NAP` to re-read the clock.
async fn wait_until(at: DateTime<Utc>) {
    while let Ok(left) = (at - Utc::now()).to_std() {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_NAP)).await;
    }
}

async fn beat(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A random delay in `[0, max)`.
fn jitter(max: Duration) -> chrono::Duration {
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return chrono::Duration::zero();
    }
    chrono::Duration::milliseconds(i64::try_from(rand::rng().random_range(0..millis)).unwrap_or(0))
}

/// `--check`: the schedule and its next three runs.
pub fn next_runs_text(policy: &Policy) -> String {
    let schedule = match Schedule::from_section(&policy.schedule) {
        Ok(s) => s,
        Err(e) => return format!("schedule: {e}\n"),
    };
    let mut out = format!(
        "schedule \"{}\" in {}{}; next runs:\n",
        schedule.pattern(),
        schedule.zone().name(),
        if policy.schedule.jitter.is_zero() {
            String::new()
        } else {
            format!(
                ", plus up to {} of jitter",
                policy::format_duration(policy.schedule.jitter)
            )
        }
    );
    for at in schedule.upcoming(Utc::now(), 3) {
        out.push_str(&format!("  {}\n", schedule.describe(at)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        assert_eq!(jitter(Duration::ZERO), chrono::Duration::zero());
        let max = Duration::from_millis(50);
        for _ in 0..200 {
            let j = jitter(max);
            assert!(
                j >= chrono::Duration::zero() && j < chrono::Duration::milliseconds(50),
                "{j}"
            );
        }
    }
}
