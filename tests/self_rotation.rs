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

/// ECI may not show a token's value: the calling credential is then told apart by finding it
/// among the tokens whose values ECI shows. Hidden and not found, the token may be the calling
/// credential and is not rotated; hidden but the credential found elsewhere, it is rotated.
#[tokio::test]
async fn a_token_whose_value_eci_hides_is_rotated_only_when_it_is_not_the_credential() {
    let world = World::new().await;
    let bot = world.eci_named("ops-bot").await.pop().expect("ops-bot");
    let bot_id = bot["id"].as_str().expect("id").to_string();
    let due = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    world
        .admin_patch(
            &format!("/eci/tokens/{bot_id}"),
            json!({"expires": due, "value_hidden": true}),
        )
        .await;
    let other = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let other_id = other["id"].as_str().expect("id").to_string();
    world
        .admin_patch(
            &format!("/eci/tokens/{other_id}"),
            json!({"value_hidden": true}),
        )
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "ops-bot"
  [[token.github]]
  repo = "acme/web"
  secret = "OPS_BOT"

[[token]]
name = "ci-deploy"
  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#,
    );
    // The credential's own value is hidden: neither token can be told apart from it.
    for args in [&["--rotate-now", "--dry-run"][..], &["--rotate-now"][..]] {
        let run = world.run(&policy, args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stdout.contains(&format!(
                "ECI does not show the value of ops-bot ({bot_id}), and the credential this program calls ECI with is not among the tokens whose value it shows"
            )),
            "{args:?}: {}",
            run.stdout
        );
    }
    assert_eq!(world.eci_named("ops-bot").await.len(), 1, "nothing created");
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        1,
        "nothing created"
    );
    let check = world.run(&policy, &["--status"]).await;
    assert!(check.stdout.contains("ops-bot: failed"), "{}", check.stdout);

    // ECI shows the credential's value again: ci-deploy (still hidden) is known not to be it.
    world
        .admin_patch(
            &format!("/eci/tokens/{bot_id}"),
            json!({"value_hidden": false}),
        )
        .await;
    let run = world
        .run(&policy, &["--rotate-now", "--token", "ci-deploy"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("ci-deploy: rotated"), "{}", run.stdout);
    let run = world
        .run(&policy, &["--rotate-now", "--token", "ops-bot"])
        .await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("would lock this program out"),
        "{}",
        run.stdout
    );
    let probe = world.run(&policy, &["--check", "--online"]).await;
    assert_eq!(probe.code, 0, "the credential still works: {}", probe.all());
    world.assert_no_leak().await;
}

/// `[eci] token` read from Vault names the policy's own token, but the value there is another
/// token's, one ECI does not show: that token may be the calling credential, so it is not
/// rotated (it was, and deleting it locked the program out).
#[tokio::test]
async fn a_hidden_token_is_not_taken_for_another_because_eci_token_is_read_from_vault() {
    let (world, policy, bot) = self_world().await;
    world
        .admin_patch(
            &format!("/eci/tokens/{}", bot["id"].as_str().expect("id")),
            json!({"expires": (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339()}),
        )
        .await;
    let deploy = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let deploy_id = deploy["id"].as_str().expect("id").to_string();
    // The credential in Vault is ci-deploy's, not ops-bot's.
    world
        .vault_write(
            "eci-secret-sync/credential",
            json!({"token": deploy["token"]}),
        )
        .await;
    world
        .admin_patch(
            &format!("/eci/tokens/{deploy_id}"),
            json!({"value_hidden": true}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains(&format!(
            "ECI does not show the value of ci-deploy ({deploy_id})"
        )),
        "{}",
        run.stdout
    );
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1, "nothing created");
    assert_eq!(
        live[0]["id"],
        json!(deploy_id),
        "the calling credential lives"
    );
    let probe = world.run(&policy, &["--check", "--online"]).await;
    assert_eq!(probe.code, 0, "still able to call ECI: {}", probe.all());
    world.assert_no_leak().await;
}
