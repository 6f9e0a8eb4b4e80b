//! Cases found by trying to break the product: a replacement a destination holds is never
//! deleted, a destination added during grace gets the value before the old token goes,
//! credentials in server errors are masked wherever they end up, nothing is minted when Vault
//! is down, and odd server states (soft-deleted secrets, endless listings, odd names) are met.

mod common;

use common::World;
use serde_json::{Value, json};

const GITHUB_TWO: &str = r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"

  [[token.github]]
  org = "acme"
  secret = "ECI_TOKEN"
  visibility = "private"
"#;

fn value_of(t: &Value) -> String {
    t["token"].as_str().expect("value").to_string()
}

async fn ids(world: &World, name: &str) -> Vec<Value> {
    world
        .eci_named(name)
        .await
        .into_iter()
        .map(|t| t["id"].clone())
        .collect()
}

async fn org_put_fails(world: &World) {
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/orgs/acme/actions/secrets", "status": 422}),
        )
        .await;
}

#[tokio::test]
async fn a_replacement_kept_by_abandon_force_is_not_deleted_while_destinations_hold_it() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let first = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    let forced = world
        .run(&policy, &["--abandon", "ci-deploy", "--force"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.all());
    world.admin_delete("/faults").await;

    // The next rotation makes a new replacement, leaving the held one alone until it is done;
    // once every destination holds the new value, the held one is deleted.
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let first_id = first["id"].as_str().expect("id");
    // Reported once, as what finally happened to it (not also as left alone).
    assert!(
        run.stdout
            .contains(&format!("deleted orphan replacement {first_id}")),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains(&format!(
            "orphan replacement {first_id} (made by this program, used by no rotation) left alone"
        )),
        "{}",
        run.stdout
    );
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1);
    let newest = &live[0];
    assert!(newest["id"] != old["id"] && newest["id"] != first["id"]);
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s = world.github_secret(scope, name).await.expect("secret");
        assert!(
            s["value"] == value_of(newest).as_str(),
            "{scope} holds the newest"
        );
    }
    world.assert_no_leak().await;
}

#[tokio::test]
async fn an_unreadable_replacement_that_destinations_hold_is_kept_and_replaced() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let first = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    world.admin_delete("/faults").await;
    // ECI now refuses to show the replacement's value again, on every read.
    let id = first["id"].as_str().expect("id");
    world
        .admin_patch(&format!("/eci/tokens/{id}"), json!({"value_hidden": true}))
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("keeping it alive and starting over"),
        "{}",
        run.stdout
    );
    // Kept while Vault and GitHub held it; deleted once they all hold the newest.
    assert!(
        run.stdout.contains(&format!(
            "deleted orphan replacement {}",
            first["id"].as_str().expect("id")
        )),
        "{}",
        run.stdout
    );
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "{}", run.stdout);
    let newest = live[0].clone();
    assert!(newest["id"] != first["id"] && newest["id"] != old["id"]);
    let vault = world.vault_read("ci/deploy").await.expect("vault");
    assert!(vault["data"]["ECI_ACCESS_TOKEN"] == value_of(&newest).as_str());
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s = world.github_secret(scope, name).await.expect("secret");
        assert!(
            s["value"] == value_of(&newest).as_str(),
            "{scope} holds the newest"
        );
    }
    world.admin_delete("/faults").await;
    let again = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(
        ids(&world, "ci-deploy").await,
        vec![newest["id"].clone()],
        "a run after changes nothing"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn a_destination_added_during_grace_gets_the_new_value_before_the_old_token_goes() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .admin_post(
            "/github/secrets/seed",
            json!({"scope": "repo:acme/web", "name": "ECI_ACCESS_TOKEN", "value": value_of(&old)}),
        )
        .await;
    let vault_only = "[[token]]\nname = \"ci-deploy\"\ngrace = \"2s\"\n  [[token.vault]]\n  path = \"ci/deploy\"\n  key = \"ECI_ACCESS_TOKEN\"\n";
    let policy = world.policy(vault_only);
    let first = world.run(&policy, &["--rotate-now"]).await;
    assert!(first.stdout.contains("kept (grace)"), "{}", first.stdout);
    world.policy(&format!(
        "{vault_only}  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"ECI_ACCESS_TOKEN\"\n"
    ));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1);
    assert_ne!(live[0]["id"], old["id"]);
    let gh = world
        .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
        .await
        .expect("secret");
    assert!(
        gh["value"] == value_of(&live[0]).as_str(),
        "the added destination holds the live token"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn credentials_inside_server_errors_are_masked_everywhere() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    let secret = value_of(&old);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/orgs/acme/actions/secrets", "status": 422,
                   "body": {"message": format!("Bad credentials for token%3D{secret} and ghp_abcdefghijklmnopqrstuvwxyz0123456789")}}),
        )
        .await;
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/user_access_token", "status": 400, "count": 1,
                   "body": {"code": format!("C{secret}"), "message": format!("header Authorization: Bearer%20{secret}")}}),
        )
        .await;
    let first = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(first.code, 1);
    let second = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(second.code, 1);
    assert!(second.stdout.contains("token%3Du_***"), "{}", second.stdout);
    let status = world.run(&policy, &["--status", "--json"]).await;
    assert!(!status.stdout.contains("ghp_abcdefghijklmnop"));
    world.note_printed(&status.stdout);
    world.assert_no_leak().await;
}

#[tokio::test]
async fn nothing_is_minted_when_vault_cannot_be_reached() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("gh-only", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(&format!(
        "{GITHUB_TWO}\n[[token]]\nname = \"gh-only\"\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"GH_ONLY\"\n"
    ));
    world.bao.seal().await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("Vault is sealed (unseal it, then run again); no replacement was made"),
        "{}",
        run.stdout
    );
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        1,
        "nothing minted for the Vault token"
    );
    assert!(
        run.stdout.contains("gh-only: rotated"),
        "a token without Vault destinations still rotates: {}",
        run.stdout
    );
    world.bao.unseal().await;
    let again = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn a_soft_deleted_vault_secret_is_written_again() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .vault_write(
            "ci/deploy",
            json!({"ECI_ACCESS_TOKEN": "old", "OTHER": "x"}),
        )
        .await;
    world
        .bao
        .api(reqwest::Method::DELETE, "secret/data/ci/deploy", None)
        .await;
    let policy = world.policy("[[token]]\nname = \"ci-deploy\"\n  [[token.vault]]\n  path = \"ci/deploy\"\n  key = \"ECI_ACCESS_TOKEN\"\n");
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = world.eci_named("ci-deploy").await.pop().expect("live");
    let data = world.vault_read("ci/deploy").await.expect("written again");
    assert!(data["data"]["ECI_ACCESS_TOKEN"] == value_of(&live).as_str());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn a_token_list_that_never_ends_is_refused() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let page: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "name": format!("other-{i}"), "token": null,
                        "created": "2026-01-01T00:00:00Z", "expires": "2027-01-01T00:00:00Z"}))
        .collect();
    world
        .admin_post("/faults", json!({"method": "GET", "path_contains": "/user/user_access_token", "status": 200, "body": page, "count": 50}))
        .await;
    let policy = world.policy("[[token]]\nname = \"ci-deploy\"\n");
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("repeats itself"), "{}", run.stdout);
}

#[tokio::test]
async fn names_with_like_wildcards_and_backslashes_are_matched_exactly() {
    let world = World::new().await;
    let plain = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    let wild = world
        .seed_token("ci_deploy", Some(chrono::Duration::days(3)))
        .await;
    let slash = world
        .seed_token("ci\\deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(
        "[[token]]\nname = \"ci_deploy\"\n  [[token.vault]]\n  path = \"ci/a\"\n  key = \"K\"\n\n\
         [[token]]\nname = 'ci\\deploy'\n  [[token.vault]]\n  path = \"ci/b\"\n  key = \"K\"\n",
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        ids(&world, "ci-deploy").await,
        vec![plain["id"].clone()],
        "a LIKE match is not the same name"
    );
    assert_ne!(ids(&world, "ci_deploy").await, vec![wild["id"].clone()]);
    assert_ne!(ids(&world, "ci\\deploy").await, vec![slash["id"].clone()]);
    assert_eq!(ids(&world, "ci\\deploy").await.len(), 1);
    world.assert_no_leak().await;
}

/// An environment variable given to the binary.
type Env<'a> = (&'a str, &'a str);

/// Run with some of the test credentials replaced.
async fn run_with_env(
    world: &World,
    policy: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> common::Run {
    let mut cmd = world.command(policy, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("binary finished within 120 s")
        .expect("binary ran");
    let run = common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    world.note_printed(&run.all());
    run
}

/// A destination that cannot take the value stops the rotation before a replacement is made,
/// and says why: a KV version 1 mount (it would keep the value at a `data/` path nobody
/// reads), a mount that does not exist, a folder inside a mount given as the mount, a Vault
/// token Vault refuses, a GitHub token GitHub refuses. `--check --online` reports the same mounts.
#[tokio::test]
async fn nothing_is_minted_when_a_destination_cannot_take_the_value() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .bao
        .api(
            reqwest::Method::POST,
            "sys/mounts/kv1",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
    let read_only = world
        .limited_vault_token(
            r#"
path "secret/data/ci/deploy" { capabilities = ["read"] }
path "secret/metadata/ci/deploy" { capabilities = ["read"] }
"#,
        )
        .await;
    let read_only = std::fs::read_to_string(read_only).expect("token file");
    let vault_dest = |mount: &str| {
        format!(
            "[[token]]\nname = \"ci-deploy\"\n  [[token.vault]]\n  mount = \"{mount}\"\n  path = \"ci/deploy\"\n  key = \"ECI_ACCESS_TOKEN\"\n"
        )
    };
    let github_dest = "[[token]]\nname = \"ci-deploy\"\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"ECI_ACCESS_TOKEN\"\n";
    let read_only_env = [("TEST_VAULT_TOKEN", read_only.as_str())];
    let cases: [(String, &[Env], &str); 6] = [
        (
            vault_dest("secret"),
            &read_only_env,
            "the Vault token lacks create or update on secret/data/ci/deploy (has read)",
        ),
        (
            vault_dest("kv1"),
            &[],
            "Vault mount `kv1` is a KV version 1 engine; destinations need KV version 2",
        ),
        (
            vault_dest("nomount"),
            &[],
            "no secrets engine is mounted at `nomount`",
        ),
        // A folder inside a KV v2 mount is served by that engine, but is not its mount.
        (
            vault_dest("secret/sub"),
            &[],
            "Vault has no secrets engine mounted at `secret/sub`: that path is inside the mount `secret`",
        ),
        (
            vault_dest("secret"),
            &[("TEST_VAULT_TOKEN", "s.refusedrefusedrefused")],
            "Vault refused the token (it is wrong, expired or revoked)",
        ),
        (
            github_dest.to_string(),
            &[("TEST_GITHUB_TOKEN", "ghp_revokedrevokedrevokedrevoked00")],
            "returned 401",
        ),
    ];
    for (tokens, env, why) in &cases {
        let policy = world.policy(tokens);
        let run = run_with_env(&world, &policy, &["--rotate-now"], env).await;
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stdout.contains(why) && run.stdout.contains("no replacement was made"),
            "{why}: {}",
            run.stdout
        );
        assert_eq!(
            world.eci_named("ci-deploy").await.len(),
            1,
            "nothing minted: {why}"
        );
        // A dry run asks the destinations too, and says the same.
        let dry = run_with_env(&world, &policy, &["--rotate-now", "--dry-run"], env).await;
        assert_eq!(dry.code, 1, "{}", dry.all());
        assert!(dry.stdout.contains(why), "dry run, {why}: {}", dry.stdout);
        // --status tells it too, though no rotation was opened.
        let st = run_with_env(&world, &policy, &["--status"], env).await;
        assert_eq!(st.code, 1, "{}", st.all());
        assert!(
            st.stdout.contains("ci-deploy: failed")
                && st
                    .stdout
                    .lines()
                    .any(|l| l.starts_with("  last error") && l.contains(why)),
            "{why}: {}",
            st.stdout
        );
        // No rotation is open: the command that retries, not resume/abandon.
        assert!(
            st.stdout.contains("    retry: ")
                && st.stdout.contains("--rotate-now --token ci-deploy")
                && !st.stdout.contains("abandon:"),
            "{why}: {}",
            st.stdout
        );
    }
    for path in ["kv1/data/ci/deploy", "kv1/ci/deploy"] {
        let r = world
            .http
            .get(format!("{}/v1/{path}", world.bao.addr))
            .header("X-Vault-Token", common::VAULT_ROOT)
            .send()
            .await
            .expect("vault read");
        assert_eq!(r.status(), 404, "nothing written at {path}");
    }
    for (mount, why) in [
        (
            "kv1",
            "FAILED  Vault write kv1/ci/deploy: Vault mount `kv1` is a KV version 1 engine",
        ),
        (
            "nomount",
            "FAILED  Vault write nomount/ci/deploy: Vault: the token may not use nomount/ci/deploy, or no secrets engine is mounted at `nomount`",
        ),
    ] {
        let policy = world.policy(&vault_dest(mount));
        let run = world.run(&policy, &["--check", "--online"]).await;
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(run.stdout.contains(why), "{why}: {}", run.stdout);
    }
    world.assert_no_leak().await;
}

/// A create that happens although ECI answers it with an error (a gateway's 429 after the
/// backend made the token), run after run: the next run takes that replacement instead of
/// minting another, so ECI never holds more than two tokens of the name; once ECI answers
/// again, one run completes with the very replacement made first.
#[tokio::test]
async fn a_create_refused_after_it_happened_never_mints_another() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 429, "retry_after": 1, "phase": "after"}),
        )
        .await;
    // The refusal of the create's reply is not retried; a following PUT failure keeps the
    // rotation open so each run has to deal with the earlier replacement.
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 500}),
        )
        .await;
    let mut first_replacement: Option<Value> = None;
    for run_no in 0..4 {
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 1, "{}", run.all());
        let named = world.eci_named("ci-deploy").await;
        assert!(
            named.len() <= 2,
            "run {run_no}: {} tokens named ci-deploy",
            named.len()
        );
        if first_replacement.is_none() {
            first_replacement = named
                .iter()
                .find(|t| {
                    t["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("[eci-secret-sync]"))
                })
                .map(|t| t["id"].clone());
        }
    }
    world.admin_delete("/faults").await;
    let done = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(done.code, 0, "{}", done.all());
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_eq!(Some(named[0]["id"].clone()), first_replacement);
    world.assert_no_leak().await;
}

/// The state folder is lost while a rotation is open: the replacement this program made is
/// still in ECI, marked as its own. The next run takes it instead of minting a third token.
#[tokio::test]
async fn a_lost_state_folder_does_not_mint_a_third_token() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 500}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let replacement = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| {
            t["description"]
                .as_str()
                .is_some_and(|d| d.contains("[eci-secret-sync]"))
        })
        .expect("a replacement");
    world.admin_delete("/faults").await;
    std::fs::remove_dir_all(world.state_dir()).expect("remove the state folder");

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stdout.contains("orphan"), "{}", run.stdout);
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["id"], replacement["id"]);
    let audit = std::fs::read_to_string(world.state_dir().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"action\":\"adopted\""), "{audit}");
    world.assert_no_leak().await;
}

/// An open rotation's journal is damaged: the run changes nothing and says what to do; once
/// it is moved aside, the next run finds the replacement this program made and finishes with
/// it, minting nothing beside it.
#[tokio::test]
async fn a_damaged_journal_says_what_to_do_and_moving_it_aside_finishes_the_rotation() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    // A completed rotation first, so the state folder has a record of the token; then its
    // token nears expiry and the next rotation cannot reach GitHub.
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let current = world.eci_named("ci-deploy").await.pop().expect("current");
    let soon = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    world
        .admin_patch(
            &format!("/eci/tokens/{}", current["id"].as_str().expect("id")),
            json!({ "expires": soon }),
        )
        .await;
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 500}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let replacement = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .max_by_key(|t| t["created"].as_str().map(str::to_owned))
        .expect("the replacement");
    world.admin_delete("/faults").await;
    let journal = std::fs::read_dir(world.state_dir().join("rotations"))
        .expect("rotations folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("the open rotation's journal");
    std::fs::write(&journal, "{ not json").expect("damage the journal");

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("is unreadable")
            && run.stdout.contains("nothing was changed")
            && run.stdout.contains("move it aside and run again"),
        "{}",
        run.stdout
    );
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2);

    std::fs::rename(&journal, world.state_dir().join("ci-deploy.json.broken")).expect("move aside");
    // A dry run says what the real run then does: take that replacement, not make another.
    let dry = world.run(&policy, &["--rotate-now", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout.contains(&format!(
            "would take the unused replacement {} an earlier run made",
            replacement["id"].as_str().expect("id")
        )),
        "{}",
        dry.stdout
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1, "{}", run.stdout);
    assert_eq!(named[0]["id"], replacement["id"]);
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s = world.github_secret(scope, name).await.expect("secret");
        assert!(s["value"] == value_of(&named[0]).as_str(), "{scope}");
    }
    world.assert_no_leak().await;
}

/// An audit log that exists with looser permissions (made by hand, restored from a backup) is
/// made private to the service before anything is appended to it.
#[tokio::test]
async fn an_existing_audit_log_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    std::fs::create_dir_all(world.state_dir()).expect("state folder");
    let audit = world.state_dir().join("audit.jsonl");
    std::fs::write(&audit, "").expect("audit log");
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let mode = std::fs::metadata(&audit)
        .expect("audit")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "audit log mode {mode:o}");
    assert!(std::fs::read_to_string(&audit).is_ok_and(|a| a.contains("\"created\"")));
    world.assert_no_leak().await;
}

/// ECI stops returning replacement values, run after run, while a destination keeps failing:
/// one replacement is given up (kept alive, since a destination holds it) and one more made;
/// after that the runs fail and say why instead of minting a token each time.
#[tokio::test]
async fn unreadable_replacements_never_mint_a_token_per_run() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    for run_no in 0..4 {
        // Whatever replacement exists now can no longer be read back.
        for t in world.eci_named("ci-deploy").await {
            if t["description"]
                .as_str()
                .is_some_and(|d| d.contains("[eci-secret-sync]"))
            {
                let id = t["id"].as_str().expect("id");
                world
                    .admin_patch(&format!("/eci/tokens/{id}"), json!({"value_hidden": true}))
                    .await;
            }
        }
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 1, "{}", run.all());
        let live = world.eci_named("ci-deploy").await.len();
        assert!(live <= 3, "run {run_no}: {live} live tokens");
        if run_no >= 2 {
            assert!(run.stdout.contains("not minting another"), "{}", run.stdout);
        }
    }
    world.assert_no_leak().await;
}

/// The first live token of `name` carrying this program's marker, other than `except`.
async fn marked(world: &World, name: &str, except: &Value) -> Option<Value> {
    world.eci_named(name).await.into_iter().find(|t| {
        t["id"] != *except
            && t["description"]
                .as_str()
                .is_some_and(|d| d.contains("[eci-secret-sync]"))
    })
}

/// A create ECI refused although it made the token: `--abandon` deletes that token too
/// (no destination was ever given it) instead of leaving it behind for good.
#[tokio::test]
async fn abandon_deletes_what_a_refused_create_made() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 400, "count": 1, "phase": "after"}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let stray = marked(&world, "ci-deploy", &old["id"])
        .await
        .expect("the refused create made one");
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains(&format!("deleted {}", stray["id"].as_str().expect("id"))),
        "{}",
        run.stdout
    );
    assert_eq!(ids(&world, "ci-deploy").await, vec![old["id"].clone()]);
    world.assert_no_leak().await;
}

/// A create whose reply was lost and whose token only appears after the run looked for it
/// (ECI finished it late): the next run takes that token rather than minting another.
#[tokio::test]
async fn a_create_that_lands_after_it_was_looked_for_is_taken_next_run() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 504, "count": 1}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("ECI shows no replacement"),
        "{}",
        run.stdout
    );
    // The gateway's backend made it after all, late.
    let late = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
        )
        .await;
    // --status tells what the next run will do with it.
    let st = world.run(&policy, &["--status"]).await;
    let late_id = late["id"].as_str().expect("id");
    assert!(
        st.stdout
            .lines()
            .any(|l| l.contains(late_id) && l.contains("made by a create of the open rotation")),
        "{}",
        st.stdout
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(ids(&world, "ci-deploy").await, vec![late["id"].clone()]);
    assert_ne!(late["id"], old["id"]);
    world.assert_no_leak().await;
}

/// A forced rotation wrote its replacement to some destinations, then its journal was lost.
/// The replacement is not deleted as an orphan (a destination may hold it); a forced run takes
/// it and finishes the rotation with it.
#[tokio::test]
async fn a_pushed_replacement_whose_journal_is_lost_is_kept_and_taken() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let current = world.eci_named("ci-deploy").await.pop().expect("current");
    org_put_fails(&world).await;
    assert_eq!(
        world.run(&policy, &["--rotate-now", "--force"]).await.code,
        1
    );
    let pushed = marked(&world, "ci-deploy", &current["id"])
        .await
        .expect("replacement");
    world.admin_delete("/faults").await;
    std::fs::remove_dir_all(world.state_dir().join("rotations")).expect("lose the journal");
    std::fs::create_dir_all(world.state_dir().join("rotations")).expect("empty folder");

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("a destination may hold it"),
        "{}",
        run.stdout
    );
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2, "kept");

    let run = world.run(&policy, &["--rotate-now", "--force"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(ids(&world, "ci-deploy").await, vec![pushed["id"].clone()]);
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s = world.github_secret(scope, name).await.expect("secret");
        assert!(s["value"] == value_of(&pushed).as_str(), "{scope}");
    }
    world.assert_no_leak().await;
}

/// A destination removed from the policy while a rotation is open is still known to hold the
/// replacement: `--abandon` does not delete it from under it.
#[tokio::test]
async fn a_destination_removed_mid_rotation_still_protects_the_replacement() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    // Vault and the repository hold the replacement; the policy now lists the org secret only.
    let org_only = "[[token]]\nname = \"ci-deploy\"\n  [[token.github]]\n  org = \"acme\"\n  secret = \"ECI_TOKEN\"\n  visibility = \"private\"\n";
    let policy = world.policy(org_only);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("vault:secret/ci/deploy#ECI_ACCESS_TOKEN (no longer in the policy)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        2,
        "nothing deleted"
    );
    world.assert_no_leak().await;
}

/// A marked token of the same name made by someone else (another installation, a colleague's
/// script) while a rotation is open is not taken for what a create attempt of this rotation
/// made: neither a refused `--abandon` nor the run that completes the rotation deletes it, and
/// `--status` lists it as not this program's.
#[tokio::test]
async fn a_marked_token_made_by_someone_else_during_a_rotation_is_never_deleted() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let foreign = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "other host [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(80)).to_rfc3339()}),
        )
        .await;
    // Refused: Vault and the repository hold the replacement.
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(ids(&world, "ci-deploy").await.contains(&foreign["id"]));
    // Still failing, then completing.
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    world.admin_delete("/faults").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = ids(&world, "ci-deploy").await;
    assert_eq!(
        live.len(),
        2,
        "the replacement and the other host's: {live:?}"
    );
    assert!(live.contains(&foreign["id"]));
    let st = world.run(&policy, &["--status"]).await;
    let foreign_id = foreign["id"].as_str().expect("id");
    assert!(
        st.stdout
            .lines()
            .any(|l| l.contains(foreign_id) && l.contains("no record of creating it: left alone")),
        "{}",
        st.stdout
    );
    world.assert_no_leak().await;
}

/// A run killed while its create was out; the next run looks for that create's token, does not
/// find it (yet), and goes on to create; the token lands while that run checks its
/// destinations. It is taken instead of minting a third token beside it.
#[tokio::test]
async fn a_killed_create_whose_token_lands_during_the_next_run_is_taken() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    // One complete rotation first, so the state folder has a record of the current token.
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let current = world.eci_named("ci-deploy").await.pop().expect("current");
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "hang": true, "count": 1}),
        )
        .await;
    world
        .run_until_hang(
            &policy,
            &["--rotate-now", "--force"],
            "/user/user_access_token",
        )
        .await;
    world.admin_delete("/faults").await;
    // The next run's destination checks hang until the killed create's token has landed.
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "public-key", "hang": true, "count": 1}),
        )
        .await;
    let child = world
        .command(&policy, &["--rotate-now", "--force"])
        .spawn()
        .expect("spawn");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = world.admin_get("/requests").await;
        let hanging = log.as_array().into_iter().flatten().any(|e| {
            e["status"] == 0 && e["path"].as_str().is_some_and(|p| p.contains("public-key"))
        });
        if hanging {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never hung");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let late = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
        )
        .await;
    world.admin_delete("/faults").await;
    let out = child.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    world.note_printed(&stdout);
    world.note_printed(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(ids(&world, "ci-deploy").await, vec![late["id"].clone()]);
    assert_ne!(late["id"], current["id"]);
    let secret = world
        .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
        .await
        .expect("secret");
    assert_eq!(secret["value"], late["token"]);
    world.assert_no_leak().await;
}

/// Destinations verified in an earlier run that no longer hold the replacement when the old
/// token is about to go (a Vault rollback, a restore, someone else's write of a GitHub secret)
/// are written again first: the old token is deleted only once every destination holds the
/// replacement again. Both when a failed rotation is resumed and at the end of a grace.
#[tokio::test]
async fn destinations_changed_since_they_were_verified_are_written_again_before_the_old_token_goes()
{
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    org_put_fails(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    world.admin_delete("/faults").await;
    let replacement = marked(&world, "ci-deploy", &old["id"])
        .await
        .expect("replacement");
    // GitHub's updated_at is to the second: the other writer comes a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    world
        .vault_write(
            "ci/deploy",
            json!({"ECI_ACCESS_TOKEN": value_of(&old), "DATABASE_URL": "postgres://db/app"}),
        )
        .await;
    world
        .admin_post(
            "/github/secrets/seed",
            json!({"scope": "repo:acme/web", "name": "ECI_ACCESS_TOKEN", "value": value_of(&old)}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    for key in [
        "vault:secret/ci/deploy#ECI_ACCESS_TOKEN",
        "github:repo:acme/web:ECI_ACCESS_TOKEN",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.contains(key)
                && l.contains("no longer held replacement")
                && l.contains("written again")),
            "{key}: {}",
            run.stdout
        );
    }
    assert_eq!(
        ids(&world, "ci-deploy").await,
        vec![replacement["id"].clone()]
    );
    let want = value_of(&replacement);
    let vault = world.vault_read("ci/deploy").await.expect("vault secret");
    assert_eq!(vault["data"]["ECI_ACCESS_TOKEN"], want.as_str());
    assert_eq!(vault["data"]["DATABASE_URL"], "postgres://db/app");
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s = world.github_secret(scope, name).await.expect("secret");
        assert_eq!(s["value"], want.as_str(), "{scope}");
    }

    // With a grace: the Vault value rolled back while the old token waits.
    let policy = world.policy(&GITHUB_TWO.replace(
        "name = \"ci-deploy\"\n",
        "name = \"ci-deploy\"\ngrace = \"2s\"\n",
    ));
    let run = world.run(&policy, &["--rotate-now", "--force"]).await;
    assert!(run.stdout.contains("kept (grace)"), "{}", run.all());
    let newest = marked(&world, "ci-deploy", &replacement["id"])
        .await
        .expect("newest");
    world
        .vault_write("ci/deploy", json!({"ECI_ACCESS_TOKEN": want.as_str()}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("no longer held replacement"),
        "{}",
        run.stdout
    );
    assert_eq!(ids(&world, "ci-deploy").await, vec![newest["id"].clone()]);
    let vault = world.vault_read("ci/deploy").await.expect("vault secret");
    assert_eq!(
        vault["data"]["ECI_ACCESS_TOKEN"],
        value_of(&newest).as_str()
    );
    world.assert_no_leak().await;
}

/// Someone else's tokens of the same name carrying the marker, made while a rotation has a
/// failed create (its reply an error): neither another description nor another lifetime is
/// taken for what that create made. They are not adopted, not listed as the rotation's, and
/// not deleted by the run that completes it or by `--abandon`.
#[tokio::test]
async fn marked_tokens_unlike_what_a_failed_create_asked_for_are_not_its() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 500, "count": 1}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let in_days = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).to_rfc3339();
    let other_team = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "other team [eci-secret-sync]", "expires": in_days(30)}),
        )
        .await;
    let long_lived = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]", "expires": in_days(400)}),
        )
        .await;
    // This policy's description and nearly its lifetime, but 15 hours off the expiry the create
    // asked for: not that create's either (this is the token's first rotation, with no record).
    let hours_off = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(90) + chrono::Duration::hours(15)).to_rfc3339()}),
        )
        .await;
    let st = world.run(&policy, &["--status"]).await;
    assert!(!st.stdout.contains("made by a create"), "{}", st.stdout);
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = ids(&world, "ci-deploy").await;
    assert_eq!(live.len(), 4, "{live:?}");
    assert!(
        live.contains(&other_team["id"])
            && live.contains(&long_lived["id"])
            && live.contains(&hours_off["id"])
    );
    let secret = world.vault_read("ci/deploy").await.expect("vault");
    assert_ne!(
        secret["data"]["ECI_ACCESS_TOKEN"],
        value_of(&hours_off).as_str()
    );
    assert!(!live.contains(&old["id"]));
    let secret = world.vault_read("ci/deploy").await.expect("vault");
    for t in [&other_team, &long_lived] {
        assert_ne!(secret["data"]["ECI_ACCESS_TOKEN"], value_of(t).as_str());
    }
    // Nor does a later abandon of a failed rotation touch them.
    org_put_fails(&world).await;
    assert_eq!(
        world.run(&policy, &["--rotate-now", "--force"]).await.code,
        1
    );
    let _ = world
        .run(&policy, &["--abandon", "ci-deploy", "--force"])
        .await;
    let live = ids(&world, "ci-deploy").await;
    assert!(live.contains(&other_team["id"]) && live.contains(&long_lived["id"]));
    world.assert_no_leak().await;
}

/// A first run (no saved record) finds the policy's token and, beside it, another
/// installation's token of the same name carrying the marker under another description that
/// expires sooner: the policy's token is the one rotated and deleted; the other is left alone.
#[tokio::test]
async fn a_first_run_does_not_take_another_installations_marked_token_for_its_own() {
    let world = World::new().await;
    let ours = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let theirs = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "x [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339()}),
        )
        .await;
    let policy = world.policy(GITHUB_TWO);
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = ids(&world, "ci-deploy").await;
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.contains(&theirs["id"]));
    assert!(!live.contains(&ours["id"]));
    world.assert_no_leak().await;
}

/// A killed create that ECI completes only after the next run made another replacement and
/// finished the rotation: that token was never given to a destination, and the run after that
/// deletes it instead of leaving it alive for good.
#[tokio::test]
async fn a_killed_create_that_lands_after_the_rotation_finished_is_deleted_next_run() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "hang": true, "count": 1}),
        )
        .await;
    world
        .run_until_hang(&policy, &["--rotate-now"], "/user/user_access_token")
        .await;
    world.admin_delete("/faults").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let current = world.eci_named("ci-deploy").await.pop().expect("current");
    // The killed create lands now, as it asked: the policy's description, a 90-day life.
    let late = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
        )
        .await;
    let st = world.run(&policy, &["--status"]).await;
    let late_id = late["id"].as_str().expect("id");
    assert!(
        st.stdout
            .lines()
            .any(|l| l.contains(late_id) && l.contains("never given to a destination")),
        "{}",
        st.stdout
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains(&format!("deleted orphan replacement {late_id}")),
        "{}",
        run.stdout
    );
    assert_eq!(ids(&world, "ci-deploy").await, vec![current["id"].clone()]);
    world.assert_no_leak().await;
}

/// Two marked tokens that both fit what one failed create asked for: one create makes one
/// token, so one of them is someone else's. Neither is taken as the replacement nor deleted.
#[tokio::test]
async fn two_tokens_fitting_one_failed_create_are_both_left_alone() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 504, "count": 1}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let mut twins = Vec::new();
    for _ in 0..2 {
        twins.push(
            world
                .admin_post(
                    "/eci/tokens",
                    json!({"name": "ci-deploy", "description": "managed by eci-secret-sync [eci-secret-sync]",
                           "expires": (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339()}),
                )
                .await,
        );
    }
    for _ in 0..2 {
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let live = ids(&world, "ci-deploy").await;
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(!live.contains(&old["id"]));
    for t in &twins {
        assert!(live.contains(&t["id"]), "{live:?}");
    }
    world.assert_no_leak().await;
}

/// ECI's clock is not this host's: a token's `created` is on ECI's clock. A create ECI
/// refused although it made the token is still recognised, and taken by the next run, with
/// ECI's clock 10 minutes behind or 40 minutes ahead (each run used to leave one more
/// replacement behind).
#[tokio::test]
async fn a_refused_create_is_recognised_whatever_ecis_clock_says() {
    for offset_seconds in [-2400, -600, 2400] {
        let world = World::new().await;
        world
            .admin_put("/eci/clock", json!({ "offset_seconds": offset_seconds }))
            .await;
        let old = world
            .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
            .await;
        let policy = world.policy(GITHUB_TWO);
        world
            .admin_post(
                "/faults",
                json!({"method": "POST", "path_contains": "/user/user_access_token", "status": 409, "count": 1, "phase": "after"}),
            )
            .await;
        let first = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(first.code, 1, "{offset_seconds}: {}", first.all());
        let made = marked(&world, "ci-deploy", &old["id"])
            .await
            .expect("the refused create made one");
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 0, "{offset_seconds}: {}", run.all());
        assert_eq!(
            ids(&world, "ci-deploy").await,
            vec![made["id"].clone()],
            "{offset_seconds}: the refused create's token replaced the old one, no other made: {}",
            run.stdout
        );
        world.assert_no_leak().await;
    }
}

/// A grace period, ECI no longer showing the replacement's value, and someone else writing
/// another key of the same Vault secret meanwhile: before the old token goes, Vault is asked
/// for the value it holds and compared with the replacement's fingerprint, so the rotation
/// finishes (it used to fail on every run: "cannot be read back from ECI to compare").
#[tokio::test]
async fn another_key_written_beside_a_hidden_replacement_does_not_block_the_rotation() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "ci-deploy"
grace = "2s"
  [[token.vault]]
  path = "team/shared"
  key = "ECI_ACCESS_TOKEN"
"#,
    );
    let first = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("grace"), "{}", first.stdout);
    let new = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    let new_id = new["id"].as_str().expect("id").to_string();
    world
        .admin_patch(
            &format!("/eci/tokens/{new_id}"),
            json!({"value_hidden": true}),
        )
        .await;
    let mut data = world.vault_read("team/shared").await.expect("secret")["data"].clone();
    data["DATABASE_URL"] = json!("postgres://db.internal/app");
    world.vault_write("team/shared", data).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        ids(&world, "ci-deploy").await,
        vec![json!(new_id)],
        "{}",
        run.stdout
    );
    let held = world.vault_read("team/shared").await.expect("secret");
    assert_eq!(held["data"]["DATABASE_URL"], "postgres://db.internal/app");
    assert!(held["data"]["ECI_ACCESS_TOKEN"] == value_of(&new).as_str());
    world.assert_no_leak().await;
}

/// The state folder fails (a full disk, here its `tokens` folder replaced by a file) right
/// after the old token was deleted: the run says the rotation is done and the old token
/// deleted, not that it was kept; the next run, with the folder back, records it.
#[tokio::test]
async fn a_state_write_failing_after_the_delete_does_not_claim_the_old_token_was_kept() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/latency",
            json!({"method": "DELETE", "path_contains": "/user/user_access_token", "ms": 2500}),
        )
        .await;
    let child = world
        .command(&policy, &["--rotate-now"])
        .spawn()
        .expect("run starts");
    let tokens = world.state_dir().join("tokens");
    let aside = world.state_dir().join("tokens.aside");
    // Wait for the journal to say the delete is under way (it is saved before the DELETE is
    // sent, which then takes 2.5 s), then take the folder away.
    let rotations = world.state_dir().join("rotations");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let deleting = std::fs::read_dir(&rotations)
            .into_iter()
            .flatten()
            .any(|e| {
                e.ok()
                    .and_then(|e| std::fs::read_to_string(e.path()).ok())
                    .is_some_and(|j| j.contains("\"phase\": \"deleting\""))
            });
        if deleting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delete never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::rename(&tokens, &aside).expect("set tokens/ aside");
    std::fs::write(&tokens, "not a folder").expect("file in its place");
    let out = child.wait_with_output().await.expect("run ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "old token    {} expires",
            old["id"].as_str().expect("id")
        )) && stdout.contains(" deleted\n"),
        "{stdout}"
    );
    assert!(!stdout.contains(" kept\n"), "{stdout}");
    assert!(
        stdout.contains("the rotation is done") && stdout.contains("the next run records it"),
        "{stdout}"
    );
    std::fs::remove_file(&tokens).expect("remove the file");
    std::fs::rename(&aside, &tokens).expect("folder back");
    world.admin_delete("/latency").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(world.eci_named("ci-deploy").await.len(), 1);
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 0, "{}", st.all());
    assert!(st.stdout.contains("ci-deploy: ok"), "{}", st.stdout);
    world.assert_no_leak_in("the first run", &stdout).await;
    world.assert_no_leak().await;
}

/// A replacement that ECI refuses at once (401 on who-am-I with the new token) is reported as
/// the new token's failure, not as a wrong `[eci] token` (which sent on-call to the wrong
/// credential).
#[tokio::test]
async fn a_replacement_refused_at_who_am_i_is_not_blamed_on_the_calling_credential() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_TWO);
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/organization", "status": 401, "body": {"code": "UNAUTHENTICATED", "message": "token revoked"}}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("does not authenticate at ECI")
            && run
                .stdout
                .contains("this is the new token, not the [eci] token")
            && !run.stdout.contains("the [eci] token is wrong"),
        "{}",
        run.stdout
    );
    assert!(
        ids(&world, "ci-deploy").await.contains(&old["id"]),
        "old token kept"
    );
    world.assert_no_leak().await;
}

/// The replacement is revoked by someone else while the old token waits out its grace: the old
/// token is not deleted (nothing working would be left); a new replacement is made and given
/// to every destination first (it used to delete the old token and report success).
#[tokio::test]
async fn a_replacement_revoked_during_grace_is_replaced_before_the_old_token_goes() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "ci-deploy"
grace = "2s"
  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"
  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#,
    );
    let first = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(first.code, 0, "{}", first.all());
    let revoked = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    let revoked_id = revoked["id"].as_str().expect("id").to_string();
    world
        .admin_delete(&format!("/eci/tokens/{revoked_id}"))
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert!(
        run.stdout.contains(&format!(
            "replacement {revoked_id} no longer exists in ECI although the destinations hold it"
        )),
        "{}",
        run.stdout
    );
    assert!(
        ids(&world, "ci-deploy").await.contains(&old["id"]),
        "the old token stays for the new grace: {}",
        run.stdout
    );
    let newest = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("a new replacement");
    assert_ne!(newest["id"], json!(revoked_id));
    let vault = world.vault_read("ci/deploy").await.expect("vault");
    assert!(vault["data"]["ECI_ACCESS_TOKEN"] == value_of(&newest).as_str());
    let gh = world
        .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
        .await
        .expect("secret");
    assert!(gh["value"] == value_of(&newest).as_str());

    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let done = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(done.code, 0, "{}", done.all());
    assert_eq!(ids(&world, "ci-deploy").await, vec![newest["id"].clone()]);
    world.assert_no_leak().await;
}

/// During grace the Vault secret is destroyed and ECI no longer shows the replacement's value:
/// nothing can give Vault that value again, so the replacement is kept alive and the next run
/// makes a new one for every destination (each run used to fail the same way, with no way out).
#[tokio::test]
async fn a_destroyed_secret_beside_a_hidden_replacement_leads_to_a_new_replacement() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "ci-deploy"
grace = "2s"
  [[token.vault]]
  path = "app/b"
  key = "ECI_ACCESS_TOKEN"
  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#,
    );
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let first = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    let first_id = first["id"].as_str().expect("id").to_string();
    world
        .admin_patch(
            &format!("/eci/tokens/{first_id}"),
            json!({"value_hidden": true}),
        )
        .await;
    world
        .bao
        .api(reqwest::Method::DELETE, "secret/metadata/app/b", None)
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let stuck = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(stuck.code, 1, "{}", stuck.all());
    assert!(
        stuck
            .stdout
            .contains("the next run makes a new replacement for every destination"),
        "{}",
        stuck.stdout
    );
    assert!(
        ids(&world, "ci-deploy").await.contains(&old["id"]),
        "old kept"
    );
    let again = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let done = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(done.code, 0, "{}", done.all());
    let live: Vec<Value> = world.eci_named("ci-deploy").await;
    let newest = live
        .iter()
        .find(|t| t["id"] != old["id"] && t["id"] != json!(first_id))
        .expect("a new replacement");
    assert!(
        !ids(&world, "ci-deploy").await.contains(&old["id"]),
        "old deleted"
    );
    let vault = world.vault_read("app/b").await.expect("vault");
    assert!(vault["data"]["ECI_ACCESS_TOKEN"] == value_of(newest).as_str());
    world.assert_no_leak().await;
}
