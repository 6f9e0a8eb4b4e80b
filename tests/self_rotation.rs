//! The program's own ECI credential, read from Vault, rotated like any other token: it keeps
//! working with the new one, and a kill right after the create still leaves it able to log in.

mod common;

use common::World;
use serde_json::{Value, json};

const SELF_POLICY: &str = r#"
[[token]]
name = "ops-bot"
description = "eci-secret-sync's own credential"
rotate_before = "30d"

  [[token.vault]]
  path = "eci-secret-sync/credential"
  key = "token"

[[token]]
name = "ci-deploy"
rotate_before = "30d"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#;

/// The world's policy, with `[eci] token` read from Vault instead of the environment.
async fn self_world() -> (World, std::path::PathBuf, Value) {
    let world = World::new().await;
    let bot = world
        .eci_named("ops-bot")
        .await
        .pop()
        .expect("ops-bot seeded");
    world
        .admin_patch(
            &format!("/eci/tokens/{}", bot["id"].as_str().expect("id")),
            json!({"expires": (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339()}),
        )
        .await;
    world
        .vault_write(
            "eci-secret-sync/credential",
            json!({"token": world.eci_credential}),
        )
        .await;
    let policy = world.policy(SELF_POLICY);
    let text = std::fs::read_to_string(&policy).expect("policy").replace(
        r#"token = { env = "TEST_ECI_TOKEN" }"#,
        r#"token = { vault = "eci-secret-sync/credential#token" }"#,
    );
    std::fs::write(&policy, text).expect("policy");
    (world, policy, bot)
}

#[tokio::test]
async fn rotates_its_own_credential_and_keeps_working() {
    let (world, policy, bot) = self_world().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("ops-bot: rotated"), "{}", run.stdout);
    assert!(run.stdout.contains("ci-deploy: rotated"), "{}", run.stdout);
    let bots = world.eci_named("ops-bot").await;
    assert_eq!(bots.len(), 1);
    assert_ne!(bots[0]["id"], bot["id"], "own credential replaced");
    let stored = world
        .vault_read("eci-secret-sync/credential")
        .await
        .expect("credential");
    assert!(
        stored["data"]["token"] == bots[0]["token"],
        "Vault holds the new credential"
    );
    let deleted = world.admin_get("/eci/deleted").await;
    assert!(
        deleted.as_array().expect("ids").contains(&bot["id"]),
        "old credential deleted"
    );

    // A later run logs in with the new credential from Vault, and rotates with it.
    world
        .seed_token("ci-later", Some(chrono::Duration::days(2)))
        .await;
    let later = world
        .run(
            &policy,
            &["--rotate-now", "--token", "ci-deploy", "--force"],
        )
        .await;
    assert_eq!(later.code, 0, "{}", later.all());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn killed_right_after_creating_its_new_credential_still_authenticates() {
    let (world, policy, bot) = self_world().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    // Kill after the create took effect (reply lost), then after the Vault write.
    world
        .admin_post(
            "/faults",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "hang": true, "count": 1, "phase": "after"}),
        )
        .await;
    world
        .run_until_hang(&policy, &["--rotate-now"], "/user/user_access_token")
        .await;
    world.admin_delete("/faults").await;
    assert_eq!(
        world.eci_named("ops-bot").await.len(),
        2,
        "old + replacement"
    );

    world
        .admin_post("/faults", json!({"method": "DELETE", "path_contains": "/user/user_access_token/", "hang": true, "count": 1}))
        .await;
    world
        .run_until_hang(&policy, &["--rotate-now"], "/user/user_access_token/")
        .await;
    world.admin_delete("/faults").await;

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let bots = world.eci_named("ops-bot").await;
    assert_eq!(bots.len(), 1, "one credential left");
    assert_ne!(bots[0]["id"], bot["id"]);
    let stored = world
        .vault_read("eci-secret-sync/credential")
        .await
        .expect("credential");
    assert!(
        stored["data"]["token"] == bots[0]["token"],
        "Vault holds the live credential"
    );
    // And it authenticates.
    let again = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn refuses_to_rotate_its_credential_when_it_cannot_follow_it() {
    let world = World::new().await;
    let bot = world.eci_named("ops-bot").await.pop().expect("ops-bot");
    world
        .admin_patch(
            &format!("/eci/tokens/{}", bot["id"].as_str().expect("id")),
            json!({"expires": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339()}),
        )
        .await;
    // [eci] token comes from the environment, yet the policy rotates that very token.
    let policy = world.policy(
        r#"
[[token]]
name = "ops-bot"
  [[token.vault]]
  path = "somewhere/else"
  key = "token"
"#,
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("would lock this program out"),
        "{}",
        run.stdout
    );
    assert_eq!(world.eci_named("ops-bot").await.len(), 1, "nothing created");
    world.assert_no_leak().await;
}
