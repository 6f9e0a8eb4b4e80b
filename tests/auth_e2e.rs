//! Authentication end to end, through the real binary on OpenBao + the sandbox: GitHub App
//! (JWT → installation token, refreshed as it expires), a Vault token kept alive while the
//! daemon runs, and a Vault namespace (with AppRole inside it).
//!
//! AppRole's re-login when its token expires mid-run is in `faults_e2e.rs`. No assertion here
//! prints a token, JWT or key, even when it fails.

mod common;

use common::World;
use common::daemon::Daemon;
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO_ENV_ORG: &str = r#"
[[token]]
name = "ci-deploy"

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
  visibility = "private"
"#;

const VAULT_ONLY: &str = r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"
"#;

const TWO_IN_VAULT: &str = r#"
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
"#;

const GITHUB_TOKEN_SECTION: &str = r#"token = { env = "TEST_GITHUB_TOKEN" }"#;

/// A KV policy for tokens the tests make (in whichever namespace it is written to).
const ROTATOR_POLICY: &str =
    r#"path "secret/*" { capabilities = ["create", "read", "update", "list"] }"#;

/// Write a credential file only its owner can read (as the program's hardening check wants).
fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create credential file");
    f.write_all(text.as_bytes()).expect("write credential file");
}

/// A policy with the given `[vault]` and `[github]` bodies (everything but their headers).
fn policy(world: &World, vault: &str, github: &str, extra: &str, tokens: &str) -> PathBuf {
    let text = format!(
        r#"
[eci]
endpoint = "{eci}"
token = {{ env = "TEST_ECI_TOKEN" }}
timeout = "5s"

[vault]
address = "{vault_addr}"
{vault}

[github]
api_url = "{github_api}"
{github}

[state]
dir = "{state}"
{extra}
{tokens}
"#,
        eci = world.sandbox.eci_base(),
        vault_addr = world.bao.addr,
        github_api = world.sandbox.github_api(),
        state = world.state_dir().display(),
    );
    let path = world.dir.path().join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

const ROOT_TOKEN_AUTH: &str =
    r#"auth = { method = "token", token = { env = "TEST_VAULT_TOKEN" } }"#;

/// An RSA key pair in PEM, made by `openssl`: (private PKCS#1 as GitHub hands it out, public).
fn rsa_pair() -> (String, String) {
    let private = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl genrsa runs");
    assert!(private.status.success(), "openssl genrsa failed");
    let mut child = Command::new("openssl")
        .args(["rsa", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl rsa runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&private.stdout)
        .expect("write key");
    let public = child.wait_with_output().expect("openssl rsa output");
    assert!(public.status.success(), "openssl rsa -pubout failed");
    (
        String::from_utf8(private.stdout).expect("pem"),
        String::from_utf8(public.stdout).expect("pem"),
    )
}

/// A GitHub App registered with the sandbox, its private key in `app.pem` next to the policy.
struct GithubApp {
    id: u64,
    installation_id: u64,
}

impl GithubApp {
    async fn register(world: &World, token_ttl_secs: u64) -> GithubApp {
        let (private_pem, public_pem) = rsa_pair();
        let reply = world
            .admin_post(
                "/github/apps",
                json!({"public_key_pem": public_pem, "installation_token_ttl_secs": token_ttl_secs}),
            )
            .await;
        write_private(&world.dir.path().join("app.pem"), &private_pem);
        GithubApp {
            id: reply["app_id"].as_u64().expect("app_id"),
            installation_id: reply["installation_id"].as_u64().expect("installation_id"),
        }
    }

    /// The `[github]` body naming this app.
    fn section(&self, extra: &str) -> String {
        format!(
            "app = {{ app_id = {}, installation_id = {}, private_key = {{ file = \"app.pem\" }} }}\n{extra}",
            self.id, self.installation_id
        )
    }

    fn exchange_path(&self) -> String {
        format!(
            "/github/app/installations/{}/access_tokens",
            self.installation_id
        )
    }

    /// Every installation token the sandbox issued for this app: (value, expires_at).
    async fn issued(&self, world: &World) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
        let apps = world.admin_get("/github/apps").await;
        let app = apps
            .as_array()
            .expect("apps")
            .iter()
            .find(|a| a["app_id"] == self.id)
            .expect("our app")
            .clone();
        app["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| {
                let at =
                    chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().expect("at"))
                        .expect("RFC 3339")
                        .to_utc();
                (t["token"].as_str().expect("token").to_string(), at)
            })
            .collect()
    }
}

async fn request_log(world: &World) -> Vec<Value> {
    world
        .admin_get("/requests")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Log entries for `method` on exactly `path`.
async fn logged(world: &World, method: &str, path: &str) -> Vec<Value> {
    request_log(world)
        .await
        .into_iter()
        .filter(|e| e["method"] == method && e["path"] == path)
        .collect()
}

/// Secrets API calls GitHub refused with 401.
async fn refused_secret_calls(world: &World) -> usize {
    request_log(world)
        .await
        .iter()
        .filter(|e| {
            e["path"].as_str().is_some_and(|p| p.contains("/secrets")) && e["status"] == 401
        })
        .count()
}

/// Fail if an installation token, a JWT or a private key shows in `text` (never printing it).
async fn assert_no_app_secret_in(world: &World, app: &GithubApp, what: &str, text: &str) {
    for (token, _) in app.issued(world).await {
        assert!(
            !text.contains(&token),
            "an installation token leaked into {what}"
        );
    }
    assert!(
        !text.contains("ghs_"),
        "an installation token leaked into {what}"
    );
    assert!(
        !text.contains("eyJ"),
        "something JWT-shaped leaked into {what}"
    );
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key leaked into {what}"
    );
}

fn value_of(token: &Value) -> &str {
    token["token"].as_str().expect("token value")
}

/// The one live `ci-deploy`, asserted to have replaced `old`.
async fn replacement(world: &World, old: &Value) -> Value {
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "exactly one live ci-deploy");
    assert_ne!(live[0]["id"], old["id"], "ci-deploy was replaced");
    live[0].clone()
}

/// The GitHub secret `scope`/`name` decrypts to `value`.
async fn assert_github_holds(world: &World, scope: &str, name: &str, value: &str) {
    let s = world
        .github_secret(scope, name)
        .await
        .unwrap_or_else(|| panic!("no GitHub secret {scope} {name}"));
    assert!(
        s["value"] == value,
        "GitHub {scope} {name} holds the new value"
    );
}

#[tokio::test]
async fn github_app_rotation_end_to_end() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let app = GithubApp::register(&world, 3600).await;
    let policy = policy(
        &world,
        ROOT_TOKEN_AUTH,
        &app.section("write_interval = \"50ms\""),
        "",
        REPO_ENV_ORG,
    );

    // `--check --online` proves the app can reach every scope, with an installation token.
    let check = world.run(&policy, &["--check", "--online"]).await;
    assert_eq!(check.code, 0, "{}", check.all());
    world.admin_delete("/requests").await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let new = replacement(&world, &old).await;
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("env:acme/web:production", "ECI_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        assert_github_holds(&world, scope, name, value_of(&new)).await;
    }

    // One JWT → installation token exchange served the whole run, and GitHub never said 401.
    let exchanges = logged(&world, "POST", &app.exchange_path()).await;
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0]["status"], 201);
    assert_eq!(refused_secret_calls(&world).await, 0);
    let puts = request_log(&world)
        .await
        .iter()
        .filter(|e| e["method"] == "PUT" && e["status"].as_u64().is_some_and(|s| s < 300))
        .count();
    assert_eq!(puts, 3, "three secrets written");

    for out in [&check, &run] {
        assert_no_app_secret_in(&world, &app, "the binary's output", &out.all()).await;
    }
    world.assert_no_leak().await;
}

#[tokio::test]
async fn github_app_with_the_wrong_key_fails_clearly_and_keeps_the_old_token() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let app = GithubApp::register(&world, 3600).await;
    // The key on disk is not the one GitHub knows.
    let (other_private, _) = rsa_pair();
    write_private(&world.dir.path().join("app.pem"), &other_private);
    let policy = policy(
        &world,
        ROOT_TOKEN_AUTH,
        &app.section("write_interval = \"50ms\""),
        "",
        REPO_ENV_ORG,
    );
    let check = world.run(&policy, &["--check", "--online"]).await;
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check.all().contains("no installation token"),
        "{}",
        check.all()
    );
    world.admin_delete("/requests").await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let says = format!(
        "GitHub App {} installation {}: no installation token (POST {}) returned 401: A JSON web token could not be decoded; check that private_key is this app's key",
        app.id,
        app.installation_id,
        app.exchange_path().trim_start_matches("/github")
    );
    assert!(run.stdout.contains(&says), "{}", run.all());
    // A refused JWT is final: one exchange, before any replacement is made; no retries, no
    // secret touched.
    let exchanges = logged(&world, "POST", &app.exchange_path()).await;
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        1,
        "no replacement made for destinations that cannot be reached"
    );
    assert!(exchanges.iter().all(|e| e["status"] == 401));
    assert!(
        request_log(&world)
            .await
            .iter()
            .all(|e| !e["path"].as_str().unwrap_or_default().contains("/secrets")),
        "no secrets API call without a token"
    );
    let live = world.eci_named("ci-deploy").await;
    assert!(
        live.iter().any(|t| t["id"] == old["id"]),
        "the old token is kept"
    );
    for out in [&check, &run] {
        assert_no_app_secret_in(&world, &app, "the binary's output", &out.all()).await;
    }
    world.assert_no_leak().await;
}

#[tokio::test]
async fn github_app_installation_tokens_are_refreshed_as_they_expire() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    // Installation tokens that live 3 s; writes 1.5 s apart make one run outlive several.
    let app = GithubApp::register(&world, 3).await;
    let policy = policy(
        &world,
        ROOT_TOKEN_AUTH,
        &app.section("write_interval = \"1500ms\""),
        "",
        REPO_ENV_ORG,
    );

    let started = std::time::Instant::now();
    let first = world.run(&policy, &["--rotate-now"]).await;
    let took = started.elapsed();
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(
        took > Duration::from_secs(3),
        "the run outlived a token ({took:?})"
    );
    let new = replacement(&world, &old).await;
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("env:acme/web:production", "ECI_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        assert_github_holds(&world, scope, name, value_of(&new)).await;
    }
    let issued = app.issued(&world).await;
    assert!(
        issued.len() >= 2,
        "new tokens mid-run, got {}",
        issued.len()
    );

    // The binary never sent an expired token: GitHub refused none of its calls.
    assert_eq!(refused_secret_calls(&world).await, 0);

    // Wait until every token of the first run has expired, and check GitHub refuses them now.
    let last = issued.iter().map(|(_, at)| *at).max().expect("tokens");
    let left = (last - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1100)).await;
    for (token, _) in &issued {
        let status = world
            .http
            .get(format!(
                "{}/repos/acme/web/actions/secrets/public-key",
                world.sandbox.github_api()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("GitHub call")
            .status();
        assert_eq!(status, 401, "an expired installation token is refused");
    }

    // A second run (as the daemon's next pass would) gets its own token and works.
    let second = world.run(&policy, &["--rotate-now", "--force"]).await;
    assert_eq!(second.code, 0, "{}", second.all());
    let newer = replacement(&world, &new).await;
    assert_github_holds(
        &world,
        "repo:acme/web",
        "ECI_ACCESS_TOKEN",
        value_of(&newer),
    )
    .await;
    assert!(app.issued(&world).await.len() > issued.len());

    // Only this test's own calls with the expired tokens were refused, none of the binary's.
    assert_eq!(refused_secret_calls(&world).await, issued.len());
    let exchanges = logged(&world, "POST", &app.exchange_path()).await;
    assert!(exchanges.iter().all(|e| e["status"] == 201));
    for run in [&first, &second] {
        assert_no_app_secret_in(&world, &app, "the binary's output", &run.all()).await;
    }
    world.assert_no_leak().await;
}

async fn vault_value(world: &World, path: &str) -> Option<String> {
    let data = world.vault_read(path).await?;
    data["data"]["ECI_ACCESS_TOKEN"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test]
async fn vault_token_is_renewed_while_the_daemon_runs() {
    let world = World::new().await;
    let deploy = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let readonly = world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let bao = &world.bao;
    bao.api(
        reqwest::Method::PUT,
        "sys/policies/acl/rotator",
        Some(json!({ "policy": ROTATOR_POLICY })),
    )
    .await;
    // Lives 4 s unless renewed; renewable for an hour.
    let created = bao
        .api(
            reqwest::Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["rotator"], "ttl": "4s", "explicit_max_ttl": "1h", "renewable": true})),
        )
        .await;
    let token = created["auth"]["client_token"]
        .as_str()
        .expect("client token")
        .to_string();
    let accessor = created["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_string();
    let born = std::time::Instant::now();
    write_private(&world.dir.path().join("vault-token"), &token);
    // Passes 8 s apart: longer than the token lives, so only the background renewal keeps it.
    let policy = policy(
        &world,
        r#"auth = { method = "token", token = { file = "vault-token" } }"#,
        GITHUB_TOKEN_SECTION,
        "[schedule]\ncron = \"*/8 * * * * *\"\ntimezone = \"UTC\"\n",
        TWO_IN_VAULT,
    );
    let mut daemon = Daemon::start(&world, &policy);
    // The first pass runs at once and rotates the due token.
    daemon.wait_for_n("rotation pass done", 1, 30).await;
    let first = replacement_named(&world, "ci-deploy", &deploy).await;
    assert_eq!(
        vault_value(&world, "ci/deploy").await.as_deref(),
        Some(value_of(&first))
    );

    // Outlive the token's 4 s TTL more than twice over, then make the other token due.
    let wait = Duration::from_secs(10).saturating_sub(born.elapsed());
    tokio::time::sleep(wait).await;
    set_expiry(&world, &readonly, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let second = loop {
        let live = world.eci_named("ci-readonly").await;
        if live.len() == 1 && live[0]["id"] != readonly["id"] {
            break live[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ci-readonly was not rotated:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.wait_for_n("rotation pass done", 2, 20).await;
    let lived = born.elapsed();
    assert!(lived > Duration::from_secs(8), "{lived:?}");
    // Written to Vault with the same token, more than twice its TTL after it was made.
    assert_eq!(
        vault_value(&world, "ci/readonly").await.as_deref(),
        Some(value_of(&second))
    );
    let looked = bao
        .api(
            reqwest::Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .await;
    assert!(
        looked["data"]["ttl"].as_u64().is_some_and(|t| t > 0),
        "the token is still alive: ttl {}",
        looked["data"]["ttl"]
    );
    assert!(
        looked["data"]["last_renewal_time"].as_u64().is_some(),
        "Vault recorded a renewal"
    );

    let (code, log) = daemon.stop(&world).await;
    assert_eq!(code, 0, "{log}");
    let renewals = log.matches("Vault token renewed").count();
    assert!(renewals >= 3, "renewed {renewals} times:\n{log}");
    assert!(!log.contains("cannot renew"), "{log}");
    assert!(!log.contains(&token), "the Vault token leaked into the log");
    world.assert_no_leak().await;
}

async fn replacement_named(world: &World, name: &str, old: &Value) -> Value {
    let live = world.eci_named(name).await;
    assert_eq!(live.len(), 1, "exactly one live {name}");
    assert_ne!(live[0]["id"], old["id"], "{name} was replaced");
    live[0].clone()
}

async fn set_expiry(world: &World, token: &Value, days: i64) {
    let id = token["id"].as_str().expect("token id");
    let expires = (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    world
        .admin_patch(&format!("/eci/tokens/{id}"), json!({ "expires": expires }))
        .await;
}

#[tokio::test]
async fn rotation_into_a_vault_namespace_with_approle_inside_it() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let bao = &world.bao;
    let post = reqwest::Method::POST;
    bao.api(post.clone(), "sys/namespaces/team-a", Some(json!({})))
        .await;
    // Everything below lives in the namespace: the KV mount, AppRole, the policy, the role.
    bao.api(
        post.clone(),
        "team-a/sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    bao.api(
        post.clone(),
        "team-a/sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await;
    bao.api(
        reqwest::Method::PUT,
        "team-a/sys/policies/acl/rotator",
        Some(json!({ "policy": ROTATOR_POLICY })),
    )
    .await;
    bao.api(
        post.clone(),
        "team-a/auth/approle/role/rotator",
        Some(json!({"token_policies": ["rotator"], "token_ttl": "1m"})),
    )
    .await;
    let role_id = bao
        .api(
            reqwest::Method::GET,
            "team-a/auth/approle/role/rotator/role-id",
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_string();
    let secret_id = bao
        .api(post, "team-a/auth/approle/role/rotator/secret-id", None)
        .await["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_string();
    write_private(&world.dir.path().join("role-id"), &role_id);
    write_private(&world.dir.path().join("secret-id"), &secret_id);
    let policy = policy(
        &world,
        r#"namespace = "team-a"
auth = { method = "approle", role_id = { file = "role-id" }, secret_id = { file = "secret-id" } }"#,
        GITHUB_TOKEN_SECTION,
        "",
        VAULT_ONLY,
    );

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let new = replacement(&world, &old).await;
    let in_ns = bao
        .api(reqwest::Method::GET, "team-a/secret/data/ci/deploy", None)
        .await;
    assert!(
        in_ns["data"]["data"]["ECI_ACCESS_TOKEN"] == value_of(&new),
        "the namespace's secret holds the new value"
    );
    let meta = bao
        .api(
            reqwest::Method::GET,
            "team-a/secret/metadata/ci/deploy",
            None,
        )
        .await;
    assert_eq!(
        meta["data"]["custom_metadata"]["managed-by"],
        "eci-secret-sync"
    );
    assert!(
        world.vault_read("ci/deploy").await.is_none(),
        "nothing was written outside the namespace"
    );
    assert!(!run.all().contains(&secret_id), "the secret id leaked");

    // A plain token of the namespace works too (`sys/health` is not served inside one).
    let ns_token = bao
        .api(
            reqwest::Method::POST,
            "team-a/auth/token/create",
            Some(json!({"policies": ["rotator"], "ttl": "1h"})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .expect("namespace token")
        .to_string();
    write_private(&world.dir.path().join("ns-token"), &ns_token);
    let token_policy = crate::policy(
        &world,
        r#"namespace = "team-a"
auth = { method = "token", token = { file = "ns-token" } }"#,
        GITHUB_TOKEN_SECTION,
        "",
        VAULT_ONLY,
    );
    let run = world.run(&token_policy, &["--rotate-now", "--force"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let newest = replacement(&world, &new).await;
    let in_ns = bao
        .api(reqwest::Method::GET, "team-a/secret/data/ci/deploy", None)
        .await;
    assert!(in_ns["data"]["data"]["ECI_ACCESS_TOKEN"] == value_of(&newest));
    let check = world.run(&token_policy, &["--check", "--online"]).await;
    assert!(
        check.stdout.contains("ok      Vault login")
            && check
                .stdout
                .contains("ok      Vault write secret/ci/deploy"),
        "{}",
        check.stdout
    );
    assert!(!run.all().contains(&ns_token), "the namespace token leaked");
    world.assert_no_leak().await;
}
