//! Golden tests: the exact text of `--check` for broken policies (the real binary on the files in
//! `tests/fixtures/check/`), and the layout of `--status` (text and JSON) for a fixed status.
//!
//! Snapshots live in `tests/snapshots/`. After an intended change of wording, review and
//! accept with `cargo insta review`, or rerun with `INSTA_UPDATE=always` and read the diff.
//! Under CI (`CI=true`) a mismatch fails and nothing is written.

use chrono::{DateTime, TimeZone, Utc};
use eci_secret_sync::rotation::journal::{LastFailure, Phase};
use eci_secret_sync::schedule::Schedule;
use eci_secret_sync::status::{
    DestinationStatus, LastRun, OpenRotation, OtherToken, Status, TokenStatus, render,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Regex-escape a literal path for an insta filter.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Run `eci-secret-sync --check` on a copy of `tests/fixtures/check/<name>.toml` in a fresh
/// folder, with a fixed environment; return exit code, stdout and stderr as one text, the
/// folder shown as `[DIR]`.
fn check(name: &str) -> (String, Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(format!("{name}.toml"));
    let policy = dir.path().join(format!("{name}.toml"));
    std::fs::copy(&fixture, &policy).expect("copy fixture");
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = Command::new(env!("CARGO_BIN_EXE_eci-secret-sync"))
        .arg("--config")
        .arg(&policy)
        .arg("--check")
        .env("GOLDEN_ECI_TOKEN", "golden-eci-credential")
        .env("GOLDEN_VAULT_TOKEN", "golden-vault-credential")
        .env("GOLDEN_GITHUB_TOKEN", "golden-github-credential")
        .env_remove("GOLDEN_UNSET_VARIABLE")
        .env_remove("ECI_SECRET_SYNC_CONFIG")
        .env_remove("ECI_SECRET_SYNC_LOG")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run the binary");
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let dir_text = dir.path().display().to_string();
    // Keep the folder alive until the binary is done, then show it as a placeholder.
    drop(dir);
    (text, vec![(escape(&dir_text), "[DIR]".to_owned())])
}

/// Assert `text` matches `tests/snapshots/<name>.snap`, after replacing each filter's regex.
fn golden(name: &str, text: &str, filters: &[(String, String)]) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in filters {
        settings.add_filter(pattern, replacement.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

macro_rules! golden_check {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (text, filters) = check(stringify!($name));
            golden(concat!("check_", stringify!($name)), &text, &filters);
        }
    )*};
}

golden_check!(
    bad_toml,
    unknown_key,
    wrong_type,
    bad_duration,
    bad_cron,
    missing_env,
    literal_secret,
    duplicate_token_names,
    duplicate_destinations,
);

/// A valid policy: the summary and the next runs (their times vary, the layout does not).
#[test]
fn valid() {
    let (text, mut filters) = check("valid");
    filters.push((
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}".to_owned(),
        "[TIME]".to_owned(),
    ));
    golden("check_valid", &text, &filters);
}

fn at(day: u32, hour: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, min, 0)
        .single()
        .expect("a valid time")
}

fn dest(destination: &str, status: &'static str, at: Option<DateTime<Utc>>) -> DestinationStatus {
    DestinationStatus {
        destination: destination.to_owned(),
        status,
        at,
        error: None,
    }
}

/// A status with one token in every state `--status` shows.
fn fixed_status() -> Status {
    let now = at(3, 1, 0);
    let token = |name: &str, state: &'static str| TokenStatus {
        name: name.to_owned(),
        state,
        id: None,
        expires: None,
        rotates_at: None,
        last_rotated: None,
        open_rotation: None,
        destinations: Vec::new(),
        other_tokens: Vec::new(),
        last_error: None,
    };
    let ok = TokenStatus {
        id: Some("0b7f6a4e-5d1c-4c38-9a57-2f0d8f4b9c11".into()),
        expires: Some(now + chrono::Duration::days(60)),
        rotates_at: Some(now + chrono::Duration::days(46)),
        last_rotated: Some(now - chrono::Duration::days(30)),
        destinations: vec![
            dest(
                "vault:secret/ci/readonly#ECI_ACCESS_TOKEN",
                "synced",
                Some(now - chrono::Duration::days(30)),
            ),
            dest("github:repo:acme/web:ECI_READONLY", "unknown", None),
        ],
        other_tokens: vec![
            OtherToken {
                id: "60f49249-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
                expires: Some(now + chrono::Duration::days(85)),
                kind: "kept",
            },
            OtherToken {
                id: "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f".into(),
                expires: None,
                kind: "foreign",
            },
        ],
        ..token("ci-readonly", "ok")
    };
    let due = TokenStatus {
        id: Some("5c1d3e0a-8f7b-4a2e-b6d9-0e4f1a2b3c4d".into()),
        expires: Some(now + chrono::Duration::days(3)),
        rotates_at: Some(now - chrono::Duration::days(11)),
        destinations: vec![dest("github:org:acme:ECI_TOKEN", "unknown", None)],
        ..token("ci-nightly", "due")
    };
    let failed = TokenStatus {
        id: Some("e9dde0d7-cde7-462f-808c-cca20c21f9bb".into()),
        expires: Some(now + chrono::Duration::hours(30)),
        open_rotation: Some(OpenRotation {
            phase: Phase::Created,
            started: now - chrono::Duration::minutes(45),
            old_id: "e9dde0d7-cde7-462f-808c-cca20c21f9bb".into(),
            new_id: Some("f4daf000-dbf2-4d2a-a696-c57a84ecc82f".into()),
            new_expires: Some(now + chrono::Duration::days(90)),
            grace_until: None,
            unconfirmed_writes: true,
        }),
        destinations: vec![
            dest(
                "vault:secret/ci/deploy#ECI_ACCESS_TOKEN",
                "synced",
                Some(now - chrono::Duration::minutes(44)),
            ),
            DestinationStatus {
                error: Some(
                    "GitHub PUT /repos/acme/web/actions/secrets/ECI_ACCESS_TOKEN returned 500"
                        .into(),
                ),
                ..dest(
                    "github:repo:acme/web:ECI_ACCESS_TOKEN",
                    "failed",
                    Some(now - chrono::Duration::minutes(40)),
                )
            },
            dest("github:env:acme/web/production:ECI_TOKEN", "pending", None),
        ],
        last_error: Some(LastFailure {
            at: now - chrono::Duration::minutes(40),
            error: "1 of 3 destination(s) failed; the old token stays alive".into(),
            forced: false,
        }),
        ..token("ci-deploy", "failed")
    };
    let grace = TokenStatus {
        id: Some("9a57f6a4-5d1c-4c38-0b7f-2f0d8f4b9c11".into()),
        expires: Some(now + chrono::Duration::days(2)),
        open_rotation: Some(OpenRotation {
            phase: Phase::Grace,
            started: now - chrono::Duration::minutes(10),
            old_id: "9a57f6a4-5d1c-4c38-0b7f-2f0d8f4b9c11".into(),
            new_id: Some("1e2d3c4b-5a69-4788-9900-aabbccddeeff".into()),
            new_expires: Some(now + chrono::Duration::days(90)),
            grace_until: Some(now + chrono::Duration::minutes(20)),
            unconfirmed_writes: false,
        }),
        destinations: vec![dest(
            "github:dependabot-repo:acme/web:ECI_TOKEN",
            "synced",
            Some(now - chrono::Duration::minutes(9)),
        )],
        ..token("dependabot", "grace")
    };
    let never = TokenStatus {
        id: Some("77777777-5d1c-4c38-9a57-2f0d8f4b9c11".into()),
        ..token("legacy", "never_expires")
    };
    Status {
        generated_at: now,
        timezone: "Asia/Seoul".into(),
        next_runs: vec![at(3, 1, 30), at(3, 2, 0), at(3, 2, 30)],
        last_run: Some(LastRun {
            finished: now - chrono::Duration::minutes(30),
            summary: "1 rotated, 2 not due, 1 failed".into(),
            succeeded: false,
            rotated: 1,
            not_due: 2,
            failed: 1,
            problem: None,
        }),
        eci_error: None,
        vault_error: None,
        state_errors: Vec::new(),
        tokens: vec![ok, due, failed, grace, never, token("ci-gone", "missing")],
        command: "eci-secret-sync --config /srv/eci/policy.toml".into(),
        unlisted_rotations: Vec::new(),
    }
}

#[test]
fn status_text() {
    let schedule = Schedule::new("*/30 * * * *", "Asia/Seoul").expect("schedule");
    golden(
        "status_text",
        &render(&fixed_status(), Some(&schedule)),
        &[],
    );
}

#[test]
fn status_text_from_saved_state_only() {
    let mut status = fixed_status();
    status.eci_error =
        Some("ECI unreachable: error sending request for url (https://portal.example/api/user/user_access_token)".into());
    status.tokens.truncate(1);
    // Other tokens of the name are known from ECI only.
    status.tokens[0].other_tokens.clear();
    status.last_run = None;
    golden("status_text_saved_state_only", &render(&status, None), &[]);
}

#[test]
fn status_json() {
    let json = serde_json::to_string_pretty(&fixed_status()).expect("status JSON");
    golden("status_json", &json, &[]);
}

/// A policy file that is not there is not called invalid: it names the file and how to name
/// another one.
#[test]
fn check_missing_policy_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_eci-secret-sync"))
        .arg("--config")
        .arg(&policy)
        .arg("--check")
        .env_remove("ECI_SECRET_SYNC_CONFIG")
        .env_remove("ECI_SECRET_SYNC_LOG")
        .output()
        .expect("run the binary");
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let dir_text = dir.path().display().to_string();
    golden(
        "check_missing_policy_file",
        &text,
        &[(escape(&dir_text), "[DIR]".to_owned())],
    );
}
