//! Daemon mode end to end: the real binary, started with no mode flag and a seconds-level
//! schedule, against OpenBao + the sandbox; driven only by time and signals.

mod common;

use common::World;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EVERY_2S: &str = "[schedule]\ncron = \"*/2 * * * * *\"\ntimezone = \"Europe/Berlin\"\n";
const HOURLY: &str = "[schedule]\ncron = \"0 * * * *\"\ntimezone = \"Europe/Berlin\"\n";

const DEPLOY: &str = r#"
[[token]]
name = "ci-deploy"
rotate_before = "14d"
lifetime = "90d"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"
"#;

const READONLY: &str = r#"
[[token]]
name = "ci-readonly"
rotate_before = "14d"
lifetime = "90d"

  [[token.vault]]
  path = "ci/readonly"
  key = "ECI_ACCESS_TOKEN"
"#;

use common::daemon::Daemon;

async fn set_expiry(world: &World, id: &str, days: i64) {
    let expires = (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let r = world
        .http
        .patch(format!("{}/eci/tokens/{id}", world.sandbox.admin()))
        .json(&json!({ "expires": expires }))
        .send()
        .await
        .expect("admin patch");
    assert!(r.status().is_success(), "PATCH token {id}: {}", r.status());
}

fn id_of(token: &Value) -> String {
    token["id"].as_str().expect("token id").to_string()
}

/// Wait until ECI's only live token named `name` is no longer `old_id`; returns it.
async fn wait_replaced(
    world: &World,
    daemon: &Daemon,
    name: &str,
    old_id: &str,
    secs: u64,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let live = world.eci_named(name).await;
        if live.len() == 1 && id_of(&live[0]) != old_id {
            return live[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not rotated within {secs} s (live ids: {:?}):\n{}",
            live.iter().map(id_of).collect::<Vec<_>>(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn vault_value(world: &World, path: &str) -> Option<String> {
    let data = world.vault_read(path).await?;
    data["data"]["ECI_ACCESS_TOKEN"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test]
async fn tick_rotates_a_token_that_becomes_due_and_a_broken_reload_changes_nothing() {
    let world = World::new().await;
    let seeded = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy_with(EVERY_2S, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("ready", 20).await;
    let startup = daemon.log();
    assert_eq!(
        startup.matches("next scheduled run: ").count(),
        3,
        "{startup}"
    );
    assert!(
        startup.contains(" UTC") && startup.contains("CE"),
        "Berlin and UTC times: {startup}"
    );
    // A new state folder: one pass at once, which finds nothing due.
    daemon.wait_for("rotation pass done", 20).await;
    assert_eq!(
        id_of(&world.eci_named("ci-deploy").await[0]),
        id_of(&seeded)
    );

    // The token becomes due; a tick rotates it, with no command.
    set_expiry(&world, &id_of(&seeded), 5).await;
    let second = wait_replaced(&world, &daemon, "ci-deploy", &id_of(&seeded), 20).await;
    daemon.wait_for("pass: rotated token=ci-deploy", 10).await;
    assert!(
        vault_value(&world, "ci/deploy").await.as_deref() == second["token"].as_str(),
        "Vault holds the live token (values not printed)"
    );
    let deleted = world.admin_get("/eci/deleted").await;
    assert!(
        deleted.as_array().expect("ids").contains(&seeded["id"]),
        "old token deleted"
    );
    let memory: Value = serde_json::from_slice(
        &std::fs::read(world.state_dir().join("daemon.json")).expect("daemon.json"),
    )
    .expect("json");
    assert!(memory["last_completed"]["finished"].is_string(), "{memory}");

    // SIGHUP with a broken policy: reported with file:line:column, the daemon keeps going.
    let good = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(&policy, good.replace("Europe/Berlin", "Europe/Berln")).expect("write");
    daemon.signal("HUP");
    daemon
        .wait_for(
            "policy reload failed; still running on the previous policy",
            10,
        )
        .await;
    let log = daemon.log();
    let line = good
        .lines()
        .position(|l| l.starts_with("timezone"))
        .expect("timezone line")
        + 1;
    let located =
        format!("policy.toml:{line}:12: schedule.timezone: unknown time zone \"Europe/Berln\"");
    assert!(log.contains(&located), "{located} in:\n{log}");
    assert!(log.contains("did you mean `Europe/Berlin`?"), "{log}");

    // ... and still rotates on the old policy.
    set_expiry(&world, &id_of(&second), 5).await;
    let third = wait_replaced(&world, &daemon, "ci-deploy", &id_of(&second), 20).await;
    assert!(
        vault_value(&world, "ci/deploy").await.as_deref() == third["token"].as_str(),
        "Vault holds the live token (values not printed)"
    );

    assert_eq!(daemon.terminate(&world).await, 0);
    world.assert_no_leak().await;
}

/// What the daemon told "systemd": every datagram on a notify socket, in order.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path).expect("bind notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("notify lock").push(text);
            }
        });
        NotifySocket { path, messages }
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().expect("notify lock").clone()
    }

    fn position(&self, from: usize, needle: &str) -> Option<usize> {
        let all = self.all();
        all.iter()
            .skip(from)
            .position(|m| m.contains(needle))
            .map(|i| i + from)
    }
}

#[tokio::test]
async fn sighup_with_a_changed_valid_policy_applies_it_at_the_next_tick() {
    let world = World::new().await;
    let deploy = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let readonly = world
        .seed_token("ci-readonly", Some(chrono::Duration::days(5)))
        .await;
    let policy = world.policy_with(EVERY_2S, DEPLOY);
    // Run it as systemd would: a notify socket and a 1 s watchdog.
    let notify = NotifySocket::bind(world.dir.path());
    let mut command = world.command(&policy, &[]);
    command
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID");
    let mut daemon = Daemon::spawn(command);
    daemon.wait_for("rotation pass done", 20).await;
    // Due, but not in the policy: left alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        id_of(&world.eci_named("ci-readonly").await[0]),
        id_of(&readonly)
    );

    let schedule = "[schedule]\ncron = \"*/3 * * * * *\"\ntimezone = \"UTC\"\n";
    world.policy_with(schedule, &format!("{DEPLOY}{READONLY}"));
    daemon.signal("HUP");
    daemon
        .wait_for("policy reloaded: token added: ci-readonly", 10)
        .await;
    let log = daemon.log();
    assert!(
        log.contains("policy reloaded: schedule: \"*/2 * * * * *\" (Europe/Berlin) -> \"*/3 * * * * *\" (UTC)"),
        "{log}"
    );
    let rotated = wait_replaced(&world, &daemon, "ci-readonly", &id_of(&readonly), 20).await;
    assert!(
        vault_value(&world, "ci/readonly").await.as_deref() == rotated["token"].as_str(),
        "Vault holds the live token (values not printed)"
    );
    assert_eq!(
        id_of(&world.eci_named("ci-deploy").await[0]),
        id_of(&deploy),
        "not due: untouched"
    );
    daemon.wait_for("rotation pass done rotated=1", 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(daemon.terminate(&world).await, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = notify.all();
    let ready = notify
        .position(0, "READY=1")
        .unwrap_or_else(|| panic!("READY=1 in {sent:?}"));
    assert!(sent[ready].contains("STATUS=next run "), "{sent:?}");
    let first = "; last: 0 rotated, 1 not due, 0 failed";
    assert!(sent.iter().any(|m| m.contains(first)), "{sent:?}");
    let reloading = notify
        .position(ready + 1, "RELOADING=1")
        .unwrap_or_else(|| panic!("RELOADING=1 in {sent:?}"));
    assert!(sent[reloading].contains("MONOTONIC_USEC="), "{sent:?}");
    let reloaded = notify.position(reloading + 1, "READY=1");
    assert!(reloaded.is_some(), "READY=1 after the reload: {sent:?}");
    let second = "; last: 1 rotated, 1 not due, 0 failed";
    assert!(sent.iter().any(|m| m.contains(second)), "{sent:?}");
    let pings = sent.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 2, "watchdog pings: {sent:?}");
    let last = sent.last().is_some_and(|m| m.contains("STOPPING=1"));
    assert!(last, "{sent:?}");
    world.assert_no_leak().await;
}

#[tokio::test]
async fn one_shot_run_and_second_daemon_while_the_daemon_holds_the_lock() {
    let world = World::new().await;
    let seeded = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    // Every ECI token call takes 2 s, so the daemon's pass holds the lock for a while.
    world
        .admin_post(
            "/latency",
            json!({"path_contains": "/user/user_access_token", "ms": 2000}),
        )
        .await;
    let policy = world.policy_with(HOURLY, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("rotation pass started", 20).await;

    let second = world.run(&policy, &[]).await;
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second
            .stderr
            .contains("already running on the state folder"),
        "{}",
        second.stderr
    );

    let impatient = world
        .run(&policy, &["--rotate-now", "--lock-wait", "0s"])
        .await;
    assert_eq!(impatient.code, 1, "{}", impatient.all());
    assert!(
        impatient.stderr.contains("holds the lock"),
        "{}",
        impatient.stderr
    );

    // A patient one waits for the daemon's pass, then finds nothing left to do.
    let patient = world
        .run(&policy, &["--rotate-now", "--lock-wait", "90s"])
        .await;
    assert_eq!(patient.code, 0, "{}", patient.all());
    assert!(
        patient.stdout.contains("0 rotated, 1 not due, 0 failed"),
        "{}",
        patient.stdout
    );
    assert_eq!(
        daemon.count("pass: rotated token=ci-deploy"),
        1,
        "{}",
        daemon.log()
    );

    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "one live ci-deploy");
    assert_ne!(id_of(&live[0]), id_of(&seeded));
    let requests = world.admin_get("/requests").await;
    let creates = requests
        .as_array()
        .expect("log")
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/user/user_access_token"))
        })
        .count();
    assert_eq!(creates, 1, "exactly one replacement created: {requests}");

    assert_eq!(daemon.terminate(&world).await, 0);
    world.assert_no_leak().await;
}

#[tokio::test]
async fn sigterm_during_a_pass_exits_zero_and_the_next_run_finishes_the_rotation() {
    let world = World::new().await;
    let seeded = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    world
        .admin_post(
            "/latency",
            json!({"path_contains": "/user/user_access_token", "ms": 3000}),
        )
        .await;
    let policy = world.policy_with(HOURLY, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("rotation pass started", 20).await;
    let begun = std::time::Instant::now();
    assert_eq!(daemon.terminate(&world).await, 0);
    assert!(begun.elapsed() < Duration::from_secs(30));

    // Whatever the stop left (done, or parked in the journal), a one-shot run completes it
    // without a second replacement.
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "one live ci-deploy");
    assert_ne!(id_of(&live[0]), id_of(&seeded));
    assert!(
        vault_value(&world, "ci/deploy").await.as_deref() == live[0]["token"].as_str(),
        "Vault holds the live token (values not printed)"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn check_prints_the_next_runs_and_a_bad_schedule_is_a_config_error() {
    let world = World::new().await;
    let policy = world.policy_with(
        "[schedule]\ncron = \"30 2 * * *\"\ntimezone = \"America/New_York\"\n",
        DEPLOY,
    );
    let ok = world.run(&policy, &["--check"]).await;
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert!(
        ok.stdout
            .contains("schedule \"30 2 * * *\" in America/New_York; next runs:"),
        "{}",
        ok.stdout
    );
    let runs: Vec<&str> = ok
        .stdout
        .lines()
        .filter(|l| l.contains(" = ") && l.ends_with(" UTC"))
        .collect();
    assert_eq!(runs.len(), 3, "{}", ok.stdout);
    assert!(
        runs.iter()
            .all(|l| l.contains(" 02:30:00 E") || l.contains(" 03:00:00 EDT")),
        "{runs:?}"
    );

    let text = std::fs::read_to_string(&policy).expect("policy");
    let line = text
        .lines()
        .position(|l| l.starts_with("cron"))
        .expect("cron line")
        + 1;
    std::fs::write(&policy, text.replace("30 2 * * *", "30 25 * * *")).expect("write");
    for args in [&["--check"][..], &[][..]] {
        let bad = world.run(&policy, args).await;
        assert_eq!(bad.code, 78, "{args:?}: {}", bad.all());
        let want =
            format!("policy.toml:{line}:8: schedule.cron: invalid cron line \"30 25 * * *\"");
        assert!(bad.stderr.contains(&want), "{want} in {}", bad.stderr);
    }
}

#[tokio::test]
async fn a_second_sigterm_cuts_the_pass_short_and_the_journal_resumes_it() {
    let world = World::new().await;
    let seeded = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    world
        .admin_post(
            "/latency",
            json!({"path_contains": "/user/user_access_token", "ms": 3000}),
        )
        .await;
    let policy = world.policy_with(HOURLY, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("rotation pass started", 20).await;
    daemon.signal("TERM");
    daemon.wait_for("waiting up to 25 s", 5).await;
    daemon.signal("TERM");
    let log = daemon.log.clone();
    assert_eq!(daemon.exited(&world, 5).await, 0);
    let log = log.lock().expect("log lock").clone();
    assert!(
        log.contains("rotation pass cut short (a second stop signal came)"),
        "{log}"
    );
    let memory: Value = serde_json::from_slice(
        &std::fs::read(world.state_dir().join("daemon.json")).expect("daemon.json"),
    )
    .expect("json");
    assert_eq!(
        memory["last_pass"]["error"], "cut short by a stop",
        "{memory}"
    );
    assert!(memory["last_completed"].is_null(), "{memory}");

    // The next start runs at once (the pass did not complete) and finishes the rotation.
    let mut daemon = Daemon::start(&world, &policy);
    daemon
        .wait_for("running a pass at once: no earlier pass completed", 10)
        .await;
    daemon.wait_for("rotation pass done", 60).await;
    assert_eq!(daemon.terminate(&world).await, 0);
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "one live ci-deploy");
    assert_ne!(id_of(&live[0]), id_of(&seeded));
    assert!(
        vault_value(&world, "ci/deploy").await.as_deref() == live[0]["token"].as_str(),
        "Vault holds the live token (values not printed)"
    );
    // No second replacement was made and cleaned up: the only deleted token is the old one.
    let deleted = world.admin_get("/eci/deleted").await;
    assert_eq!(deleted, json!([seeded["id"]]), "deleted tokens");
    world.assert_no_leak().await;
}

#[tokio::test]
async fn metrics_after_a_rotation() {
    let world = World::new().await;
    let seeded = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let extra = format!("{EVERY_2S}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let policy = world.policy_with(&extra, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("ready", 20).await;
    let new = wait_replaced(&world, &daemon, "ci-deploy", &id_of(&seeded), 20).await;
    daemon.wait_for("rotation pass done", 20).await;

    let base = format!("http://127.0.0.1:{port}");
    let health = world
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = world
        .http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let resp = world
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/openmetrics-text")),
        "OpenMetrics content type"
    );
    let text = resp.text().await.expect("metrics text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    let expires = chrono::DateTime::parse_from_rfc3339(new["expires"].as_str().expect("expires"))
        .expect("time")
        .timestamp() as f64;
    assert_eq!(
        value("eci_secret_sync_token_expiration_timestamp_seconds{name=\"ci-deploy\"}"),
        expires
    );
    assert_eq!(
        value("eci_secret_sync_token_renewal_timestamp_seconds{name=\"ci-deploy\"}"),
        expires - 14.0 * 86400.0
    );
    assert_eq!(
        value("eci_secret_sync_rotations_total{name=\"ci-deploy\",result=\"success\"}"),
        1.0
    );
    assert_eq!(
        value(
            "eci_secret_sync_destination_sync_status{name=\"ci-deploy\",destination=\"vault:secret/ci/deploy#ECI_ACCESS_TOKEN\",status=\"synced\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            "eci_secret_sync_destination_sync_status{name=\"ci-deploy\",destination=\"vault:secret/ci/deploy#ECI_ACCESS_TOKEN\",status=\"failed\"}"
        ),
        0.0
    );
    assert!(value("eci_secret_sync_api_requests_total{service=\"eci\",status=\"200\"}") >= 4.0);
    assert!(value("eci_secret_sync_api_requests_total{service=\"vault\",status=\"200\"}") >= 1.0);
    assert!(value("eci_secret_sync_last_run_timestamp_seconds") > 0.0);
    assert_eq!(value("eci_secret_sync_last_run_success"), 1.0);
    assert!(text.trim_end().ends_with("# EOF"));
    assert_eq!(daemon.terminate(&world).await, 0);
    world.note_printed(&text);

    // After a restart, before any pass (the next is a year away), the series come from the
    // saved state: neither "not running" nor the sync-status alert goes blind or fires.
    let yearly =
        format!("[schedule]\ncron = \"0 0 1 1 *\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let policy = world.policy_with(&yearly, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("ready", 20).await;
    let scrape = || async {
        world
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    };
    let text = scrape().await;
    assert_eq!(daemon.count("rotation pass started"), 0, "{}", daemon.log());
    let synced = "eci_secret_sync_destination_sync_status{name=\"ci-deploy\",destination=\"vault:secret/ci/deploy#ECI_ACCESS_TOKEN\",status=\"synced\"} 1";
    assert!(
        text.lines().any(|l| l == synced),
        "no `{synced}` in:\n{text}"
    );
    let last_run = text
        .lines()
        .find(|l| l.starts_with("eci_secret_sync_last_run_timestamp_seconds "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        last_run > 0.0,
        "last run seeded from the saved state:\n{text}"
    );
    assert!(
        text.contains("eci_secret_sync_last_run_success 1"),
        "{text}"
    );
    assert!(
        text.contains("eci_secret_sync_token_expiration_timestamp_seconds{name=\"ci-deploy\"}"),
        "{text}"
    );
    world.note_printed(&text);

    // A token removed from the policy by a reload takes its series with it.
    world.policy_with(&yearly, "");
    daemon.signal("HUP");
    daemon.wait_for("policy reloaded", 20).await;
    let text = scrape().await;
    assert!(!text.contains("name=\"ci-deploy\""), "{text}");
    assert_eq!(daemon.terminate(&world).await, 0);
    world.note_printed(&text);
    world.assert_no_leak().await;
}

/// A destination removed from a token by a reload loses its series, and the passes after it
/// (which read the token's saved record, where the destination still is) do not bring it back:
/// an alert on a destination nobody syncs any more would fire for good.
#[tokio::test]
async fn a_destination_removed_by_a_reload_stays_out_of_the_metrics() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let extra = format!("{EVERY_2S}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let both = format!(
        "{DEPLOY}\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"ECI_ACCESS_TOKEN\"\n"
    );
    let policy = world.policy_with(&extra, &both);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("ready", 20).await;
    daemon.wait_for("rotation pass done", 30).await;
    let scrape = || async {
        world
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    };
    let github_series = |text: &str| {
        text.lines()
            .any(|l| l.contains("destination_sync_status") && l.contains("github:"))
    };
    let before = scrape().await;
    assert!(github_series(&before), "{before}");
    world.policy_with(&extra, DEPLOY);
    daemon.signal("HUP");
    daemon.wait_for("policy reloaded", 20).await;
    let n = daemon.count("rotation pass done");
    daemon.wait_for_n("rotation pass done", n + 2, 30).await;
    let after = scrape().await;
    assert!(!github_series(&after), "{after}");
    assert!(
        after.lines().any(|l| l
            == "eci_secret_sync_destination_sync_status{name=\"ci-deploy\",destination=\"vault:secret/ci/deploy#ECI_ACCESS_TOKEN\",status=\"synced\"} 1"),
        "{after}"
    );
    assert_eq!(daemon.terminate(&world).await, 0);
    world.note_printed(&before);
    world.note_printed(&after);
    world.assert_no_leak().await;
}

/// Vault refusing the daemon's credential while nothing is due: no rotation needed Vault, yet
/// the pass counts as failed (metrics, log), so it is seen before a token comes due; once the
/// credential works again, so do the passes.
#[tokio::test]
async fn a_pass_with_nothing_due_fails_while_vault_refuses_its_credential() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let token_file = world.state_dir().with_file_name("vault-token");
    std::fs::write(&token_file, common::VAULT_ROOT).expect("token file");
    let auth = format!(
        r#"{{ method = "token", token = {{ file = "{}" }} }}"#,
        token_file.display()
    );
    let extra = format!("{EVERY_2S}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let policy = world.policy_full(&auth, &extra, DEPLOY);
    let mut daemon = Daemon::start(&world, &policy);
    daemon.wait_for("ready", 20).await;
    daemon.wait_for("rotation pass done", 30).await;
    let success = || async {
        let text = world
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with("eci_secret_sync_last_run_success "))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(success().await, "eci_secret_sync_last_run_success 1");
    std::fs::write(&token_file, "hvs.refusedrefusedrefusedrefused").expect("token file");
    let n = daemon.count("rotation pass done");
    daemon.wait_for_n("rotation pass done", n + 2, 30).await;
    assert_eq!(success().await, "eci_secret_sync_last_run_success 0");
    assert!(
        daemon
            .log()
            .contains("tokens written to Vault cannot be rotated until this is fixed"),
        "{}",
        daemon.log()
    );
    std::fs::write(&token_file, common::VAULT_ROOT).expect("token file");
    let n = daemon.count("rotation pass done");
    daemon.wait_for_n("rotation pass done", n + 2, 30).await;
    assert_eq!(success().await, "eci_secret_sync_last_run_success 1");
    assert_eq!(daemon.terminate(&world).await, 0);
    world.assert_no_leak().await;
}
