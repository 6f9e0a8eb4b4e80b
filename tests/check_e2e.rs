//! `--check --online` on a real OpenBao dev server and the sandbox: every check line, exit codes.

mod common;

use common::{Run, World};
use serde_json::{Value, json};
use std::path::Path;

/// Lines of the online report (from the first check line on).
fn check_lines(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .skip_while(|l| {
            !l.starts_with("ok ") && !l.starts_with("FAILED ") && !l.starts_with("WARN ")
        })
        .map(str::to_owned)
        .collect()
}

/// Assert the report's lines are exactly `want` (both shown on failure: no token values are in
/// either, the report never prints one and the leak check below proves it).
fn assert_lines(run: &Run, want: &[String]) {
    let got = check_lines(run);
    assert!(
        got == want,
        "check lines differ\n--- got:\n{}\n--- want:\n{}\n--- stderr:\n{}",
        got.join("\n"),
        want.join("\n"),
        run.stderr
    );
}

async fn run_check(world: &World, policy: &Path, eci_token: Option<&str>) -> Run {
    let mut cmd = world.command(policy, &["--check", "--online"]);
    if let Some(t) = eci_token {
        cmd.env("TEST_ECI_TOKEN", t);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("binary finished within 120 s")
        .expect("binary ran");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    world.note_printed(&run.all());
    run
}

/// `2027-03-03 19:12 UTC`, as the report prints an expiry, from the sandbox's admin view.
fn when(token: &Value) -> String {
    let raw = token["expires"].as_str().expect("expires");
    chrono::DateTime::parse_from_rfc3339(raw)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

async fn whoami_line(world: &World) -> String {
    let org = world.admin_get("/eci/organization").await;
    format!(
        "ok      ECI who-am-I at {}: organization {} ({})",
        world.sandbox.eci_base(),
        org["name"].as_str().expect("org name"),
        org["id"].as_str().expect("org id")
    )
}

const CREATE_OK: &str = "ok      ECI permission to create tokens (User.UserAccessToken.CREATE)";

/// The seeded `ops-bot` credential's admin record.
async fn ops_bot(world: &World) -> Value {
    world
        .eci_named("ops-bot")
        .await
        .into_iter()
        .next()
        .expect("ops-bot seeded")
}

fn unmanaged_line(token: &Value) -> String {
    format!(
        "WARN    ECI credential expiry: token `{0}` ({1}) expires {2}; it is not managed by this policy (no [[token]] named `{0}`), so nothing rotates it",
        token["name"].as_str().expect("name"),
        token["id"].as_str().expect("id"),
        when(token)
    )
}

#[tokio::test]
async fn all_good_on_every_service() {
    let world = World::new().await;
    // The credential is read from Vault at a destination of the `ops-bot` token, so the policy
    // rotates it: no warning about it. Stored by hand with a trailing newline (as
    // `bao kv put ... token=@file` does), which is not part of the credential.
    world
        .vault_write(
            "eci/bot",
            json!({ "token": format!("{}\n", world.eci_credential) }),
        )
        .await;
    let policy = format!(
        r#"
[eci]
endpoint = "{eci}"
token = {{ vault = "eci/bot#token" }}
timeout = "5s"

[vault]
address = "{vault}"
auth = {{ method = "token", token = {{ env = "TEST_VAULT_TOKEN" }} }}

[github]
token = {{ env = "TEST_GITHUB_TOKEN" }}
api_url = "{github}"

[state]
dir = "{state}"

[[token]]
name = "ops-bot"

  [[token.vault]]
  path = "eci/bot"
  key = "token"

[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_TOKEN_COPY"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  environment = "production"
  secret = "ECI_TOKEN"

  [[token.github]]
  org = "acme"
  secret = "ECI_TOKEN"
  visibility = "selected"
  repositories = ["web"]
"#,
        eci = world.sandbox.eci_base(),
        vault = world.bao.addr,
        github = world.sandbox.github_api(),
        state = world.state_dir().display(),
    );
    let path = world.dir.path().join("policy.toml");
    std::fs::write(&path, policy).expect("write policy");
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let before = world.eci_tokens().await.len();

    let run = run_check(&world, &path, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.starts_with("policy "), "{}", run.stdout);
    let bot = ops_bot(&world).await;
    let want = vec![
        whoami_line(&world).await,
        CREATE_OK.to_owned(),
        format!(
            "ok      ECI credential expiry: token `ops-bot` ({}) expires {}; rotated by this policy",
            bot["id"].as_str().expect("id"),
            when(&bot)
        ),
        "ok      ECI tokens of the policy: 2 token(s), each found in ECI".to_owned(),
        format!("ok      Vault login at {} (token auth)", world.bao.addr),
        "ok      Vault read secret/eci/bot (the ECI credential)".to_owned(),
        "ok      Vault write secret/eci/bot".to_owned(),
        "ok      Vault write secret/ci/deploy".to_owned(),
        "ok      GitHub Actions secrets of repository acme/web".to_owned(),
        "ok      GitHub Actions secrets of environment production of acme/web".to_owned(),
        "ok      GitHub Actions secrets of organization acme (selected: web)".to_owned(),
        "online check: 11 ok, 0 warnings, 0 failed".to_owned(),
    ];
    assert_lines(&run, &want);
    // Nothing was created, written or deleted.
    assert_eq!(world.eci_tokens().await.len(), before);
    assert!(world.admin_get("/eci/deleted").await == json!([]));
    assert!(world.vault_read("ci/deploy").await.is_none());
    assert!(world.github_secrets().await.is_empty());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn vault_policy_without_write_on_one_path() {
    let world = World::new().await;
    let token_file = world
        .limited_vault_token(
            r#"
path "secret/data/ci/deploy" { capabilities = ["create", "read", "update"] }
path "secret/metadata/ci/deploy" { capabilities = ["create", "read", "update"] }
path "secret/data/ci/readonly" { capabilities = ["read"] }
path "secret/metadata/ci/readonly" { capabilities = ["read", "list"] }
"#,
        )
        .await;
    let auth = format!(
        r#"{{ method = "token", token = {{ file = "{}" }} }}"#,
        token_file.display()
    );
    let policy = world.policy_full(
        &auth,
        "",
        r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

[[token]]
name = "ci-readonly"

  [[token.vault]]
  path = "ci/readonly"
  key = "ECI_ACCESS_TOKEN"

  [[token.vault]]
  path = "ci/nothing"
  key = "ECI_ACCESS_TOKEN"
"#,
    );

    let run = run_check(&world, &policy, None).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let want = vec![
        whoami_line(&world).await,
        CREATE_OK.to_owned(),
        unmanaged_line(&ops_bot(&world).await),
        "FAILED  ECI tokens of the policy: no token named `ci-deploy`, `ci-readonly` in ECI: create each once in the portal, then this program keeps it fresh".to_owned(),
        format!("ok      Vault login at {} (token auth)", world.bao.addr),
        "ok      Vault write secret/ci/deploy".to_owned(),
        "FAILED  Vault write secret/ci/readonly: the Vault token lacks create or update on secret/data/ci/readonly (has read); lacks create or update on secret/metadata/ci/readonly (has list, read)".to_owned(),
        "FAILED  Vault write secret/ci/nothing: the Vault token lacks read and create or update on secret/data/ci/nothing (has deny); lacks read and create or update on secret/metadata/ci/nothing (has deny)".to_owned(),
        "online check: 4 ok, 1 warning, 3 failed".to_owned(),
    ];
    assert_lines(&run, &want);
    world.assert_no_leak().await;
}

#[tokio::test]
async fn github_repository_that_does_not_exist() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "ci-deploy"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/nope"
  secret = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  environment = "staging"
  secret = "ECI_TOKEN"

  [[token.github]]
  org = "acme"
  secret = "ECI_TOKEN"
  visibility = "selected"
  repositories = ["web", "gone"]

  [[token.github]]
  org = "umbrella"
  secret = "ECI_TOKEN"
  visibility = "all"
"#,
    );

    let run = run_check(&world, &policy, None).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let want = vec![
        whoami_line(&world).await,
        CREATE_OK.to_owned(),
        unmanaged_line(&ops_bot(&world).await),
        "ok      ECI tokens of the policy: 1 token(s), each found in ECI".to_owned(),
        format!("ok      Vault login at {} (token auth)", world.bao.addr),
        "ok      GitHub Actions secrets of repository acme/web".to_owned(),
        "FAILED  GitHub Actions secrets of repository acme/nope: repository acme/nope does not exist or the token cannot see it (GET /repos/acme/nope/actions/secrets/public-key returned 404)".to_owned(),
        "FAILED  GitHub Actions secrets of environment staging of acme/web: environment `staging` of acme/web does not exist or the token cannot see it (GET /repos/acme/web/environments/staging/secrets/public-key returned 404)".to_owned(),
        "FAILED  GitHub Actions secrets of organization acme (selected: web, gone): selected repository acme/gone does not exist or the token cannot see it".to_owned(),
        "FAILED  GitHub Actions secrets of organization umbrella: organization umbrella does not exist or the token cannot see it (GET /orgs/umbrella/actions/secrets/public-key returned 404)".to_owned(),
        "online check: 5 ok, 1 warning, 4 failed".to_owned(),
    ];
    assert_lines(&run, &want);
    assert!(world.github_secrets().await.is_empty());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn eci_token_without_create_permission() {
    let world = World::new().await;
    let limited = world
        .admin_post(
            "/eci/tokens",
            json!({
                "name": "limited-bot",
                "description": "seeded",
                "expires": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
                "can_create": false,
            }),
        )
        .await;
    let value = limited["token"].as_str().expect("token value").to_owned();
    let policy = world.policy(
        r#"
[[token]]
name = "limited-bot"
"#,
    );
    let before = world.eci_tokens().await.len();

    let run = run_check(&world, &policy, Some(&value)).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let want = vec![
        whoami_line(&world).await,
        "FAILED  ECI permission to create tokens (User.UserAccessToken.CREATE): ECI denied permission (403 PERMISSION_DENIED): the caller lacks the permission User.UserAccessToken.CREATE".to_owned(),
        format!(
            "WARN    ECI credential expiry: token `limited-bot` ({}) expires {}; the policy rotates it, but [eci] token is read from env TEST_ECI_TOKEN, which a rotation does not update, so its rotation will be refused; give the token a [[token.vault]] destination and read [eci] token from it ({{ vault = \"path#key\" }})",
            limited["id"].as_str().expect("id"),
            when(&limited)
        ),
        "ok      ECI tokens of the policy: 1 token(s), each found in ECI".to_owned(),
        format!("ok      Vault login at {} (token auth)", world.bao.addr),
        "online check: 3 ok, 1 warning, 1 failed".to_owned(),
    ];
    assert_lines(&run, &want);
    assert_eq!(
        world.eci_tokens().await.len(),
        before,
        "no token was created"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn unreachable_servers_and_a_rejected_credential() {
    let world = World::new().await;
    let policy = world.policy(
        r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"
"#,
    );
    world.bao.seal().await;
    let run = run_check(
        &world,
        &policy,
        Some("u_not-a-live-token-not-a-live-token-abcdefghi"),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.all());
    let lines = check_lines(&run);
    assert!(lines.len() == 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "FAILED  ECI who-am-I at {}: ECI rejected the credential (401",
            world.sandbox.eci_base()
        )),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with(&format!(
            "FAILED  Vault login at {} (token auth): Vault is sealed",
            world.bao.addr
        )),
        "{}",
        run.stdout
    );
    assert_eq!(lines[2], "online check: 0 ok, 0 warnings, 2 failed");
    // Offline --check of the same policy still passes: nothing is contacted.
    let offline = world.run(&policy, &["--check"]).await;
    assert_eq!(offline.code, 0, "{}", offline.all());
    assert!(
        !offline.stdout.contains("online check"),
        "{}",
        offline.stdout
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn online_needs_check() {
    let world = World::new().await;
    let policy = world.policy("");
    let run = world.run(&policy, &["--online"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("--check"), "{}", run.stderr);
}
