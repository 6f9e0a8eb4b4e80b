//! Notifications end to end: the real binary's `--rotate-now` against the sandbox and OpenBao,
//! with real receivers: an HTTP server in this test (Slack and webhook) and aiosmtpd (email).

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::World;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const HOOK_SECRET: &str = "hook-shared-secret-for-tests";
const SMTP_USER: &str = "notifier";
const SMTP_PASSWORD: &str = "smtp-test-password";

// ---------------------------------------------------------------- receivers

#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Captured {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    accepted: Mutex<Vec<Captured>>,
    refused: AtomicUsize,
    down: AtomicBool,
}

/// An HTTP server that captures every POST; while `down`, it answers 500 instead.
#[derive(Clone, Default)]
struct Receiver(Arc<Inner>);

impl Receiver {
    async fn start() -> (Receiver, String) {
        let rx = Receiver::default();
        let app = Router::new().fallback(capture).with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, format!("http://{addr}"))
    }

    fn at(&self, path: &str) -> Vec<Captured> {
        let all = self.0.accepted.lock().expect("lock");
        all.iter().filter(|c| c.path == path).cloned().collect()
    }

    fn all_bodies(&self) -> String {
        let all = self.0.accepted.lock().expect("lock");
        all.iter()
            .map(|c| format!("{:?}\n{}\n", c.headers, c.body))
            .collect()
    }

    fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::SeqCst);
    }

    fn refused(&self) -> usize {
        self.0.refused.load(Ordering::SeqCst)
    }
}

async fn capture(
    State(rx): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if rx.0.down.load(Ordering::SeqCst) {
        rx.0.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, "down for maintenance");
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rx.0.accepted.lock().expect("lock").push(Captured {
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    (StatusCode::OK, "ok")
}

/// aiosmtpd in a subprocess (tests/support/smtp_sink.py), requiring AUTH; killed on drop.
struct Smtp {
    port: u16,
    dir: PathBuf,
    _child: Child,
}

impl Smtp {
    async fn start(dir: &Path) -> Smtp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut child = Command::new("python3")
                .arg(script)
                .arg(port.to_string())
                .arg(dir)
                .args([SMTP_USER, SMTP_PASSWORD])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("python3 runs (scripts/test installs aiosmtpd)");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout).lines();
            let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
            if let Ok(Ok(Some(line))) = ready
                && line.trim() == "READY"
            {
                return Smtp {
                    port,
                    dir: dir.to_path_buf(),
                    _child: child,
                };
            }
            let _ = child.start_kill();
        }
        panic!("aiosmtpd did not start: is it installed? (python3 -m pip install aiosmtpd)");
    }

    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("smtp dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
            })
            .collect()
    }
}

// ---------------------------------------------------------------- checks

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verify a webhook delivery as a receiver would: HMAC-SHA256 over "{timestamp}.{body}" with
/// the shared secret, and a timestamp within the 5-minute replay window.
fn assert_signed(c: &Captured, secret: &str) {
    let ts = c
        .headers
        .get("x-eci-sync-timestamp")
        .expect("timestamp header");
    let sig = c
        .headers
        .get("x-eci-sync-signature")
        .expect("signature header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(c.body.as_bytes());
    let expected = format!("v1={}", hex(&mac.finalize().into_bytes()));
    assert_eq!(sig, &expected, "signature verifies with the shared secret");
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"not-the-secret").expect("key");
    wrong.update(format!("{ts}.{}", c.body).as_bytes());
    assert_ne!(sig, &format!("v1={}", hex(&wrong.finalize().into_bytes())));
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().expect("unix seconds");
    assert!((-5..300).contains(&age), "timestamp is fresh: {age}s");
    let v = c.json();
    assert_eq!(v["schema"], "eci-secret-sync.notification/v1");
    assert_eq!(
        c.headers.get("x-eci-sync-event").map(String::as_str),
        v["event"].as_str()
    );
    assert_eq!(
        c.headers.get("x-eci-sync-delivery").map(String::as_str),
        v["id"].as_str()
    );
    assert_eq!(
        c.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
}

/// What Slack's incoming webhooks accept: a non-empty fallback `text`, at most 50 blocks of
/// known types within their size limits, and nothing else at the top level.
fn assert_valid_slack(v: &Value) {
    let top: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert!(
        top.iter().all(|k| ["text", "blocks"].contains(&k.as_str())),
        "{top:?}"
    );
    assert!(
        !v["text"].as_str().expect("text").trim().is_empty(),
        "fallback text present"
    );
    let blocks = v["blocks"].as_array().expect("blocks");
    assert!((1..=50).contains(&blocks.len()));
    for b in blocks {
        match b["type"].as_str().expect("block type") {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                let t = b["text"]["text"].as_str().expect("header text");
                assert!(!t.is_empty() && t.chars().count() <= 150, "{t}");
            }
            "section" => {
                assert_eq!(b["text"]["type"], "mrkdwn");
                let t = b["text"]["text"].as_str().expect("section text");
                assert!(!t.is_empty() && t.chars().count() <= 3000);
                assert!(
                    !t.contains('<') && !t.contains('>'),
                    "mrkdwn control characters escaped: {t}"
                );
            }
            "context" => {
                let els = b["elements"].as_array().expect("elements");
                assert!((1..=10).contains(&els.len()));
                for e in els {
                    assert!(["mrkdwn", "plain_text"].contains(&e["type"].as_str().expect("type")));
                    assert!(!e["text"].as_str().expect("text").is_empty());
                }
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

/// Slack section lines, for the "readable on a phone" check.
fn slack_lines(v: &Value) -> Vec<String> {
    v["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == "section")
        .flat_map(|b| {
            b["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---------------------------------------------------------------- policy

struct Files {
    slack_url: PathBuf,
    hook_url: PathBuf,
    hook_secret: PathBuf,
    smtp_user: PathBuf,
    smtp_password: PathBuf,
}

fn write_files(world: &World, base: &str) -> Files {
    let d = world.dir.path();
    let f = Files {
        slack_url: d.join("slack-url"),
        hook_url: d.join("hook-url"),
        hook_secret: d.join("hook-secret"),
        smtp_user: d.join("smtp-user"),
        smtp_password: d.join("smtp-password"),
    };
    for (p, v) in [
        (&f.slack_url, format!("{base}/slack")),
        (&f.hook_url, format!("{base}/hook")),
        (&f.hook_secret, HOOK_SECRET.to_string()),
        (&f.smtp_user, SMTP_USER.to_string()),
        (&f.smtp_password, SMTP_PASSWORD.to_string()),
    ] {
        std::fs::write(p, v).expect("write credential file");
    }
    f
}

fn slack_channel(f: &Files, events: &str) -> String {
    format!(
        "\n  [[notify.channel]]\n  kind = \"slack\"\n  url = {{ file = \"{}\" }}\n{events}\n",
        f.slack_url.display()
    )
}

fn webhook_channel(f: &Files) -> String {
    format!(
        "\n  [[notify.channel]]\n  kind = \"webhook\"\n  url = {{ file = \"{}\" }}\n  secret = {{ file = \"{}\" }}\n",
        f.hook_url.display(),
        f.hook_secret.display()
    )
}

fn email_channel(f: &Files, port: u16) -> String {
    format!(
        r#"
  [[notify.channel]]
  kind = "email"
  smtp_host = "127.0.0.1"
  smtp_port = {port}
  smtp_tls = "none"
  username = {{ file = "{}" }}
  password = {{ file = "{}" }}
  from = "eci-secret-sync <sync@example.com>"
  to = ["ops@example.com", "security@example.com"]
"#,
        f.smtp_user.display(),
        f.smtp_password.display()
    )
}

const DEPLOY: &str = r#"
[[token]]
name = "ci-deploy"
rotate_before = "14d"
lifetime = "90d"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#;

fn events_of(captured: &[Captured]) -> Vec<(String, String)> {
    captured
        .iter()
        .map(|c| {
            let v = c.json();
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["token"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn assert_no_leaks(world: &World, rx: &Receiver, smtp: Option<&Smtp>) {
    world
        .assert_no_leak_in("the HTTP receivers", &rx.all_bodies())
        .await;
    if let Some(smtp) = smtp {
        let mails = serde_json::to_string(&smtp.messages()).expect("json");
        world.assert_no_leak_in("the emails", &mails).await;
    }
    world.assert_no_leak().await;
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn each_token_gets_one_expiring_message_per_threshold_across_runs_and_restarts() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let smtp = Smtp::start(&world.dir.path().join("mail")).await;
    let files = write_files(&world, &base);
    world
        .seed_token("svc-20d", Some(chrono::Duration::days(20)))
        .await;
    world
        .seed_token("svc-5d", Some(chrono::Duration::days(5)))
        .await;
    let manual = world
        .seed_token("manual-12h", Some(chrono::Duration::hours(12)))
        .await;
    let notify = format!(
        "\n[notify]\nthresholds = [\"30d\", \"7d\", \"1d\"]\nwatch = \"all\"\n{}{}{}",
        slack_channel(&files, ""),
        webhook_channel(&files),
        email_channel(&files, smtp.port)
    );
    let tokens = r#"
[[token]]
name = "svc-20d"
rotate_before = "1h"

  [[token.vault]]
  path = "svc/a"
  key = "TOKEN"

[[token]]
name = "svc-5d"
rotate_before = "1h"

  [[token.vault]]
  path = "svc/b"
  key = "TOKEN"
"#;
    let policy = world.policy_with(&notify, tokens);

    // Three consecutive runs, then a "restart" (every run is a new process; the memory lives
    // in the state folder), then one more run.
    for run_no in 1..=4 {
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 0, "run {run_no}: {}", run.all());
        if run_no == 1 {
            assert!(
                run.stdout.contains("notifications: 3 new, 9 sent"),
                "{}",
                run.stdout
            );
        } else {
            assert!(
                run.stdout.contains("notifications: 0 new, 0 sent"),
                "run {run_no}: {}",
                run.stdout
            );
        }
        assert_eq!(
            rx.at("/hook").len(),
            3,
            "run {run_no}: webhook messages {:?}",
            events_of(&rx.at("/hook"))
        );
        assert_eq!(rx.at("/slack").len(), 3, "run {run_no}: slack messages");
        assert_eq!(smtp.messages().len(), 3, "run {run_no}: emails");
    }

    // Webhook: one `expiring` per token, for the nearest threshold, signed.
    let mut by_token = BTreeMap::new();
    for c in rx.at("/hook") {
        assert_signed(&c, HOOK_SECRET);
        let v = c.json();
        assert_eq!(v["event"], "expiring");
        by_token.insert(v["token"]["name"].as_str().expect("name").to_string(), v);
    }
    let expected = [
        ("svc-20d", "30d", true),
        ("svc-5d", "7d", true),
        ("manual-12h", "1d", false),
    ];
    assert_eq!(by_token.len(), 3, "{:?}", by_token.keys());
    for (name, threshold, managed) in expected {
        let v = &by_token[name];
        assert_eq!(v["threshold"]["label"], threshold, "{name}");
        assert_eq!(v["token"]["managed"], managed, "{name}");
        assert_eq!(v["token"]["owner"], "ops-bot", "{name}");
        assert_eq!(v["token"]["roles"], json!(["Developer"]), "{name}");
        assert!(v["token"]["expires_in_seconds"].as_i64().expect("seconds") > 0);
    }
    assert_eq!(by_token["manual-12h"]["token"]["id"], manual["id"]);
    assert!(
        by_token["manual-12h"]["summary"]
            .as_str()
            .expect("summary")
            .contains("rotate it by hand")
    );

    // Slack: valid incoming-webhook payloads with short lines.
    for c in rx.at("/slack") {
        let v = c.json();
        assert_valid_slack(&v);
        for line in slack_lines(&v) {
            assert!(
                line.chars().count() <= 110,
                "short lines for a phone: {line:?}"
            );
        }
    }
    let manual_slack = rx
        .at("/slack")
        .into_iter()
        .map(|c| c.json())
        .find(|v| {
            v["text"]
                .as_str()
                .unwrap_or_default()
                .contains("manual-12h")
        })
        .expect("slack message for manual-12h");
    let section = slack_lines(&manual_slack).join("\n");
    assert!(
        section.contains("rotate it by hand") && section.contains("*Owner:* ops-bot"),
        "{section}"
    );
    assert!(section.contains("*Roles:* Developer"), "{section}");

    // Email: through aiosmtpd with AUTH, to every address, subject names token and time left.
    let mails = smtp.messages();
    let mut subjects: Vec<String> = mails
        .iter()
        .map(|m| m["subject"].as_str().expect("subject").to_string())
        .collect();
    subjects.sort();
    assert!(
        subjects[0].starts_with("[eci-secret-sync] manual-12h expires in 11h"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[eci-secret-sync] svc-20d expires in 19d"),
        "{subjects:?}"
    );
    assert!(
        subjects[2].starts_with("[eci-secret-sync] svc-5d expires in 4d"),
        "{subjects:?}"
    );
    let ids: std::collections::BTreeSet<&str> = mails
        .iter()
        .filter_map(|m| {
            m["raw"]
                .as_str()?
                .lines()
                .find(|l| l.starts_with("Message-ID:"))
        })
        .collect();
    assert_eq!(ids.len(), mails.len(), "one Message-ID per email: {ids:?}");
    for m in &mails {
        assert_eq!(
            m["rcpt_tos"],
            json!(["ops@example.com", "security@example.com"])
        );
        assert_eq!(m["mail_from"], "sync@example.com");
        assert_eq!(m["user"], SMTP_USER, "authenticated");
        let raw = m["raw"].as_str().expect("raw");
        assert!(
            raw.lines()
                .any(|l| l.starts_with("Message-ID: <eci-secret-sync.")
                    && l.trim_end().ends_with("@example.com>")),
            "a Message-ID naming the event: {raw}"
        );
        let body = m["body"].as_str().expect("body");
        assert!(
            body.contains("Token:") && body.contains("Expires:") && body.contains("Threshold:"),
            "{body}"
        );
    }

    // Memory in the state folder is private.
    let memory = world.state_dir().join("notify/memory.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&memory).expect("memory").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_no_leaks(&world, &rx, Some(&smtp)).await;
}

#[tokio::test]
async fn failing_rotation_alerts_at_once_then_recovers() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let files = write_files(&world, &base);
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    // Slack only hears about trouble; the webhook hears everything.
    let notify = format!(
        "\n[notify]\n{}{}",
        slack_channel(&files, "  events = [\"rotation_failed\", \"recovered\"]"),
        webhook_channel(&files)
    );
    let policy = world.policy_with(&notify, DEPLOY);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/repos/acme/web/actions/secrets/", "status": 500}),
        )
        .await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let hook = rx.at("/hook");
    assert_eq!(
        events_of(&hook),
        vec![("rotation_failed".into(), "ci-deploy".into())],
        "sent at once, alone"
    );
    assert_signed(&hook[0], HOOK_SECRET);
    let v = hook[0].json();
    let rot = &v["rotation"];
    assert!(
        rot["error"]
            .as_str()
            .expect("error")
            .contains("destination"),
        "{rot}"
    );
    let failing: Vec<&Value> = rot["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failing.len(), 1, "{rot}");
    assert_eq!(
        failing[0]["destination"],
        "github:repo:acme/web:ECI_ACCESS_TOKEN"
    );
    assert!(
        failing[0]["error"].as_str().expect("why").contains("500"),
        "{rot}"
    );
    let left = rot["time_left_seconds"].as_i64().expect("time left");
    assert!(
        (2 * 86_400 + 23 * 3600..=3 * 86_400).contains(&left),
        "about 3 days left: {left}"
    );
    assert_eq!(rot["old_token"]["id"], old["id"]);
    assert_eq!(rot["old_token_fate"], "kept_alive");
    let replacement = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("the replacement the failing rotation made");
    assert_eq!(
        rot["new_token"]["id"], replacement["id"],
        "names the replacement it made"
    );
    assert_eq!(rot["notice"], 1);
    assert_eq!(
        v["threshold"]["label"], "7d",
        "the crossed threshold rides on the alert"
    );
    let slack = rx.at("/slack");
    assert_eq!(slack.len(), 1);
    assert_valid_slack(&slack[0].json());
    let text = slack_lines(&slack[0].json()).join("\n");
    assert!(
        text.contains("*Failing:* github:repo:acme/web:ECI_ACCESS_TOKEN: "),
        "{text}"
    );
    assert!(text.contains("*Time left:*"), "{text}");

    // Still failing a moment later: no repeat before the backoff (1 h).
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(rx.at("/hook").len(), 1, "{:?}", events_of(&rx.at("/hook")));
    assert_eq!(rx.at("/slack").len(), 1);

    // Fixed: the rotation completes; rotated + recovered, and Slack only gets `recovered`.
    world.admin_delete("/faults").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let new = world
        .eci_named("ci-deploy")
        .await
        .pop()
        .expect("the replacement");
    let hook = rx.at("/hook");
    assert_eq!(
        events_of(&hook[1..]),
        vec![
            ("rotated".into(), "ci-deploy".into()),
            ("recovered".into(), "ci-deploy".into())
        ]
    );
    let rotated = hook[1].json();
    assert_signed(&hook[1], HOOK_SECRET);
    assert_eq!(rotated["token"]["id"], new["id"]);
    assert!(
        rotated["token"]["expires_in_seconds"]
            .as_i64()
            .expect("new expiry")
            > 89 * 86_400
    );
    assert_eq!(rotated["rotation"]["old_token"]["id"], old["id"]);
    assert_eq!(rotated["rotation"]["old_token_fate"], "deleted");
    let updated: Vec<&str> = rotated["rotation"]["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter(|d| d["status"] == "updated")
        .filter_map(|d| d["destination"].as_str())
        .collect();
    assert_eq!(updated.len(), 2, "{updated:?}");
    let recovered = hook[2].json();
    assert!(recovered["rotation"]["failing_since"].is_string());
    let slack = rx.at("/slack");
    assert_eq!(slack.len(), 2);
    assert!(
        slack[1].json()["text"]
            .as_str()
            .expect("text")
            .contains("recovered")
    );

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rx.at("/hook").len(), 3, "nothing new once it is healthy");
    assert_no_leaks(&world, &rx, None).await;
}

#[tokio::test]
async fn channel_down_for_a_while_gets_missed_messages_after_it_recovers() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let files = write_files(&world, &base);
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let notify = format!(
        "\n[notify]\n{}{}",
        slack_channel(&files, ""),
        webhook_channel(&files)
    );
    let tokens = r#"
[[token]]
name = "ci-deploy"
rotate_before = "14d"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"
"#;
    let policy = world.policy_with(&notify, tokens);

    rx.set_down(true);
    let started = Instant::now();
    let run = world.run(&policy, &["--rotate-now"]).await;
    let took = started.elapsed();
    assert_eq!(
        run.code,
        0,
        "a channel that is down never fails a rotation: {}",
        run.all()
    );
    assert!(run.stdout.contains("ci-deploy: rotated"), "{}", run.stdout);
    assert!(
        run.stdout.contains("2 waiting for the next run"),
        "{}",
        run.stdout
    );
    assert!(
        took < Duration::from_secs(25),
        "bounded delivery time, took {took:?}"
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_ne!(named[0]["id"], old["id"], "rotated during the outage");
    let new_value = named[0]["token"].as_str().expect("value").to_string();
    let vault = world.vault_read("ci/deploy").await.expect("vault written");
    assert!(
        vault["data"]["ECI_ACCESS_TOKEN"] == new_value.as_str(),
        "Vault holds the new value"
    );
    assert!(
        rx.refused() >= 2,
        "both channels were tried: {}",
        rx.refused()
    );
    assert!(rx.at("/hook").is_empty() && rx.at("/slack").is_empty());

    // Still down on the next run: nothing lost, nothing doubled.
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("2 waiting for the next run"),
        "{}",
        run.stdout
    );

    rx.set_down(false);
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("0 new, 2 sent"), "{}", run.stdout);
    let hook = rx.at("/hook");
    assert_eq!(
        events_of(&hook),
        vec![("rotated".into(), "ci-deploy".into())]
    );
    assert_signed(&hook[0], HOOK_SECRET);
    assert_eq!(hook[0].json()["token"]["id"], named[0]["id"]);
    assert_eq!(rx.at("/slack").len(), 1);
    assert_valid_slack(&rx.at("/slack")[0].json());

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rx.at("/hook").len(), 1, "delivered once");
    assert_no_leaks(&world, &rx, None).await;
}

#[tokio::test]
async fn dry_run_sends_nothing() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let files = write_files(&world, &base);
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let notify = format!("\n[notify]\n{}", webhook_channel(&files));
    let policy = world.policy_with(&notify, DEPLOY);
    let run = world.run(&policy, &["--rotate-now", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(rx.at("/hook").is_empty());
    assert!(
        !world.state_dir().join("notify").exists(),
        "a dry run remembers nothing"
    );
}

/// ECI is down during a run: a token the saved state shows fine (rotated, far from due) gets
/// no `rotation_failed` and no `recovered` afterwards; a token that is due does get one.
#[tokio::test]
async fn an_eci_outage_alerts_only_for_tokens_that_need_rotating() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let files = write_files(&world, &base);
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let notify = format!("\n[notify]\n{}", webhook_channel(&files));
    let policy = world.policy_with(&notify, DEPLOY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let before = rx.at("/hook").len();

    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/user_access_token", "status": 503}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "the run did fail: {}", run.all());
    world.admin_delete("/faults").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let after: Vec<(String, String)> = events_of(&rx.at("/hook")[before..]);
    assert!(
        !after
            .iter()
            .any(|(e, _)| e == "rotation_failed" || e == "recovered"),
        "{after:?}"
    );
    let st = world.run(&policy, &["--status"]).await;
    assert!(st.stdout.contains("ci-deploy: ok"), "{}", st.stdout);

    // A token that is due is another matter: its rotation could not happen.
    world
        .seed_token("ci-nightly", Some(chrono::Duration::days(2)))
        .await;
    let both = world.policy_with(
        &notify,
        &format!("{DEPLOY}\n[[token]]\nname = \"ci-nightly\"\n"),
    );
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/user_access_token", "status": 503}),
        )
        .await;
    let n = rx.at("/hook").len();
    assert_eq!(world.run(&both, &["--rotate-now"]).await.code, 1);
    let failed: Vec<(String, String)> = events_of(&rx.at("/hook")[n..]);
    assert_eq!(
        failed,
        vec![("rotation_failed".to_string(), "ci-nightly".to_string())],
        "only the token with no saved state showing it fine"
    );
    world.assert_no_leak().await;
}

/// A completed rotation whose run never got to notify (here: no channel was configured then;
/// in life, a pass cut short by a stop or a crash) is announced by the next run, once.
#[tokio::test]
async fn a_rotation_never_announced_is_announced_late_once() {
    let world = World::new().await;
    let (rx, base) = Receiver::start().await;
    let files = write_files(&world, &base);
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let quiet = world.policy(DEPLOY);
    assert_eq!(world.run(&quiet, &["--rotate-now"]).await.code, 0);
    let new = world.eci_named("ci-deploy").await.pop().expect("rotated");

    let notify = format!("\n[notify]\n{}", webhook_channel(&files));
    let policy = world.policy_with(&notify, DEPLOY);
    for _ in 0..2 {
        assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    }
    let rotated: Vec<Value> = rx
        .at("/hook")
        .iter()
        .map(Captured::json)
        .filter(|v| v["event"] == "rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0]["token"]["id"], new["id"]);
    world.assert_no_leak().await;
}
