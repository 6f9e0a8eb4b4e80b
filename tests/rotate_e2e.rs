//! End to end on real parts: OpenBao dev server + the sandbox's ECI and GitHub, driven through
//! the real binary's `--rotate-now`.

mod common;

use base64::Engine;
use common::World;
use serde_json::{Value, json};

const DEPLOY: &str = r#"
[[token]]
name = "ci-deploy"
description = "deploy jobs"
rotate_before = "14d"
lifetime = "90d"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

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

[[token]]
name = "ci-readonly"
rotate_before = "14d"

  [[token.vault]]
  path = "ci/readonly"
  key = "ECI_ACCESS_TOKEN"
"#;

/// Open a GitHub ciphertext with the scope's own private key, as GitHub would.
async fn decrypt_with_scope_key(world: &World, scope: &str, secret: &Value) -> String {
    let key = world
        .admin_get(&format!("/github/private-key?scope={scope}"))
        .await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sk_bytes = b64
        .decode(key["private_key"].as_str().expect("private key"))
        .expect("b64 key");
    let sk = crypto_box::SecretKey::from_slice(&sk_bytes).expect("32-byte key");
    let sealed = b64
        .decode(secret["encrypted_value"].as_str().expect("ciphertext"))
        .expect("b64 ciphertext");
    let plain = sk
        .unseal(&sealed)
        .expect("sealed box opens with the scope's key");
    String::from_utf8(plain).expect("utf8")
}

fn value_of(token: &Value) -> String {
    token["token"].as_str().expect("token value").to_string()
}

#[tokio::test]
async fn due_token_is_replaced_everywhere_and_old_one_deleted() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    let readonly = world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    world
        .vault_write(
            "ci/deploy",
            json!({"ECI_ACCESS_TOKEN": value_of(&old), "OTHER": "keep-me"}),
        )
        .await;
    world
        .admin_post(
            "/github/secrets/seed",
            json!({"scope": "repo:acme/web", "name": "UNRELATED", "value": "stay"}),
        )
        .await;
    let policy = world.policy(DEPLOY);

    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("ci-deploy: rotated"), "{}", run.stdout);
    assert!(
        run.stdout.contains("ci-readonly: not due"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 rotated, 1 not due, 0 failed"),
        "{}",
        run.stdout
    );

    // ECI: exactly one ci-deploy, a new one; the old one is gone.
    let deploy = world.eci_named("ci-deploy").await;
    assert_eq!(deploy.len(), 1, "one live ci-deploy token");
    let new = &deploy[0];
    assert_ne!(new["id"], old["id"]);
    let new_value = value_of(new);
    assert!(new_value != value_of(&old), "a new value");
    assert!(
        run.stdout.contains(new["id"].as_str().expect("id")),
        "summary names the new id"
    );
    let deleted = world.admin_get("/eci/deleted").await;
    assert!(
        deleted.as_array().expect("ids").contains(&old["id"]),
        "old token deleted"
    );

    // Vault: new value, other keys kept, who-wrote-it in custom metadata.
    let data = world.vault_read("ci/deploy").await.expect("secret exists");
    assert!(
        data["data"]["ECI_ACCESS_TOKEN"] == new_value.as_str(),
        "Vault holds the new value"
    );
    assert_eq!(data["data"]["OTHER"], "keep-me");
    let custom = &data["metadata"]["custom_metadata"];
    assert_eq!(custom["eci-token-id"], new["id"]);
    assert_eq!(custom["managed-by"], "eci-secret-sync");

    // GitHub: each scope decrypts, with its own key, to the new value.
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("env:acme/web:production", "ECI_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let secret = world
            .github_secret(scope, name)
            .await
            .unwrap_or_else(|| panic!("{scope} {name} exists"));
        let plain = decrypt_with_scope_key(&world, scope, &secret).await;
        assert!(plain == new_value, "{scope} {name} holds the new value");
        if scope == "org:acme" {
            assert_eq!(secret["visibility"], "private");
        }
    }
    let unrelated = world
        .github_secret("repo:acme/web", "UNRELATED")
        .await
        .expect("seeded");
    assert_eq!(unrelated["value"], "stay");

    // The not-due token is untouched.
    let ro = world.eci_named("ci-readonly").await;
    assert_eq!(ro.len(), 1);
    assert_eq!(ro[0]["id"], readonly["id"]);
    assert!(
        world.vault_read("ci/readonly").await.is_none(),
        "not-due token's destination not written"
    );

    // The audit log: one line per step, ids and fingerprints, private to the service.
    let audit_path = world.state_dir().join("audit.jsonl");
    let audit = std::fs::read_to_string(&audit_path).expect("audit log");
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "created").count(), 1);
    assert_eq!(actions.iter().filter(|a| **a == "pushed").count(), 4);
    assert_eq!(actions.iter().filter(|a| **a == "verified").count(), 4);
    assert_eq!(actions.last(), Some(&"deleted"));
    assert!(entries.iter().all(|e| e["token_name"] == "ci-deploy"));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "deleted" && e["token_id"] == old["id"])
    );
    assert!(entries.iter().any(|e| e["action"] == "created"
        && e["token_id"] == new["id"]
        && e["fingerprint"].is_string()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit_path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second run changes nothing.
    let before = world.github_secrets().await;
    let vault_before = world.vault_read("ci/deploy").await;
    let again = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stdout.contains("0 rotated, 2 not due, 0 failed"),
        "{}",
        again.stdout
    );
    let deploy2 = world.eci_named("ci-deploy").await;
    assert_eq!(deploy2.len(), 1);
    assert_eq!(deploy2[0]["id"], new["id"]);
    assert_eq!(world.github_secrets().await, before);
    assert_eq!(world.vault_read("ci/deploy").await, vault_before);

    world.assert_no_leak().await;
}

#[tokio::test]
async fn failing_github_keeps_old_token_and_next_run_reuses_the_replacement() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(DEPLOY);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/repos/acme/web/actions/secrets/", "status": 500}),
        )
        .await;

    let mut replacement: Option<Value> = None;
    for attempt in 0..2 {
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 1, "attempt {attempt}: {}", run.all());
        assert!(run.stdout.contains("ci-deploy: FAILED"), "{}", run.stdout);
        assert!(
            run.stdout.contains("github:repo:acme/web:ECI_ACCESS_TOKEN")
                && run.stdout.contains("500"),
            "names the failing destination and why: {}",
            run.stdout
        );
        let named = world.eci_named("ci-deploy").await;
        assert_eq!(named.len(), 2, "old + one replacement, never more");
        assert!(
            named.iter().any(|t| t["id"] == old["id"]),
            "old token still alive"
        );
        let new = named
            .into_iter()
            .find(|t| t["id"] != old["id"])
            .expect("replacement");
        if let Some(r) = &replacement {
            assert_eq!(r["id"], new["id"], "the same replacement is reused");
        }
        replacement = Some(new);
    }
    let replacement = replacement.expect("replacement");
    // The healthy destinations already hold the replacement.
    let data = world.vault_read("ci/deploy").await.expect("vault written");
    assert!(data["data"]["ECI_ACCESS_TOKEN"] == value_of(&replacement).as_str());

    world.admin_delete("/faults").await;
    // A dry run says where the open rotation stands: which destinations are left.
    let dry = world.run(&policy, &["--rotate-now", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("would resume the open rotation")),
        "{}",
        dry.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("synced") && l.contains("vault:secret/ci/deploy")),
        "{}",
        dry.stdout
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("FAILED")
            && l.contains("github:repo:acme/web:ECI_ACCESS_TOKEN")),
        "{}",
        dry.stdout
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_eq!(
        named[0]["id"], replacement["id"],
        "finished with the replacement it already made"
    );
    let secret = world
        .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
        .await
        .expect("written");
    assert!(secret["value"] == value_of(&replacement).as_str());
    world.assert_no_leak().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(5)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(DEPLOY);
    let run = world.run(&policy, &["--rotate-now", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("ci-deploy: due: would create a replacement"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("dry run: nothing was changed"),
        "{}",
        run.stdout
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["id"], old["id"]);
    assert!(world.github_secrets().await.is_empty());
    assert!(!world.state_dir().exists(), "a dry run writes no state");
    world.assert_no_leak().await;
}

#[tokio::test]
async fn force_and_token_filter_rotate_only_the_named_token() {
    let world = World::new().await;
    let deploy = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(80)))
        .await;
    let ro = world
        .seed_token("ci-readonly", Some(chrono::Duration::days(80)))
        .await;
    let policy = world.policy(DEPLOY);
    let run = world
        .run(
            &policy,
            &[
                "--rotate-now",
                "--token",
                "ci-readonly",
                "--force",
                "--token",
                "ci-readonly",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stdout.contains("ci-deploy"), "{}", run.stdout);
    // Named twice, rotated and reported once.
    assert_eq!(
        run.stdout.matches("ci-readonly: rotated").count(),
        1,
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 rotated"), "{}", run.stdout);
    assert_eq!(world.eci_named("ci-deploy").await[0]["id"], deploy["id"]);
    let now_ro = world.eci_named("ci-readonly").await;
    assert_eq!(now_ro.len(), 1);
    assert_ne!(now_ro[0]["id"], ro["id"]);

    // Forcing a token that lives longer than `lifetime` gives a replacement that expires
    // sooner: said before (dry run) and when it happens.
    let short = world.policy(&DEPLOY.replacen("lifetime = \"90d\"", "lifetime = \"30d\"", 1));
    for args in [
        &[
            "--rotate-now",
            "--token",
            "ci-deploy",
            "--force",
            "--dry-run",
        ][..],
        &["--rotate-now", "--token", "ci-deploy", "--force"][..],
    ] {
        let run = world.run(&short, args).await;
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(
            run.stdout.contains("sooner than the"),
            "{args:?}: {}",
            run.stdout
        );
    }

    let bad = world
        .run(&policy, &["--rotate-now", "--token", "nope"])
        .await;
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains("--token nope: no such token"),
        "{}",
        bad.stderr
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn dependabot_and_selected_org_secrets() {
    let world = World::new().await;
    world
        .admin_post("/github/repos", json!({"full_name": "acme/api"}))
        .await;
    let web = world
        .admin_post("/github/repos", json!({"full_name": "acme/web"}))
        .await;
    let api = world.admin_get("/github/repos").await;
    let api_id = api
        .as_array()
        .and_then(|r| r.iter().find(|r| r["full_name"] == "acme/api"))
        .map(|r| r["id"].clone())
        .expect("acme/api id");
    world
        .seed_token("registry", Some(chrono::Duration::days(1)))
        .await;
    let policy = world.policy(
        r#"
[[token]]
name = "registry"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_REGISTRY_TOKEN"
  app = "dependabot"

  [[token.github]]
  org = "acme"
  secret = "ECI_REGISTRY_TOKEN"
  app = "dependabot"
  visibility = "all"

  [[token.github]]
  org = "acme"
  secret = "ECI_TOKEN"
  visibility = "selected"
  repositories = ["web", "api"]
"#,
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let new = world.eci_named("registry").await.pop().expect("registry");
    let value = value_of(&new);
    for (scope, name) in [
        ("repo-dependabot:acme/web", "ECI_REGISTRY_TOKEN"),
        ("org-dependabot:acme", "ECI_REGISTRY_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let secret = world
            .github_secret(scope, name)
            .await
            .unwrap_or_else(|| panic!("{scope} {name} written"));
        let plain = decrypt_with_scope_key(&world, scope, &secret).await;
        assert!(plain == value, "{scope} {name} holds the new value");
    }
    let selected = world
        .github_secret("org:acme", "ECI_TOKEN")
        .await
        .expect("org secret");
    assert_eq!(selected["visibility"], "selected");
    let ids = selected["selected_repository_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(ids.contains(&web["id"]) && ids.contains(&api_id), "{ids:?}");
    assert!(
        world
            .github_secret("repo:acme/web", "ECI_REGISTRY_TOKEN")
            .await
            .is_none(),
        "Dependabot secrets are not Actions secrets"
    );
    world.assert_no_leak().await;
}

/// Tokens rotated at once into the same repository share one fetch of its public key (GitHub
/// counts every request against the credential's rate limit).
#[tokio::test]
async fn tokens_rotated_together_fetch_a_scopes_key_once() {
    let world = World::new().await;
    let mut tokens = String::from("[defaults]\nconcurrency = 4\n");
    for i in 0..4 {
        world
            .seed_token(&format!("ci-{i}"), Some(chrono::Duration::days(3)))
            .await;
        tokens.push_str(&format!(
            "[[token]]\nname = \"ci-{i}\"\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"ECI_{i}\"\n"
        ));
    }
    let policy = world.policy(&tokens);
    world.admin_delete("/requests").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("4 rotated"), "{}", run.stdout);
    let log = world.admin_get("/requests").await;
    let key_fetches = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/repos/acme/web/actions/secrets/public-key"))
        })
        .count();
    assert_eq!(key_fetches, 1);
    world.assert_no_leak().await;
}

/// Tokens that share Vault secrets which do not exist yet, rotated at once: every writer's key
/// survives every other writer's (check-and-set from what was really read, never an assumed
/// empty secret), and each holds its token's new value.
#[tokio::test]
async fn tokens_sharing_a_new_vault_secret_keep_each_others_keys() {
    let world = World::new().await;
    let n = 12;
    let mut tokens = format!("[defaults]\nconcurrency = {n}\n");
    for i in 0..n {
        world
            .seed_token(&format!("ci-{i}"), Some(chrono::Duration::days(3)))
            .await;
        let secret = if i % 2 == 0 {
            "team/shared-a"
        } else {
            "team/shared-b"
        };
        tokens.push_str(&format!(
            "[[token]]\nname = \"ci-{i}\"\n  [[token.vault]]\n  path = \"{secret}\"\n  key = \"K{i}\"\n"
        ));
    }
    let policy = world.policy(&tokens);
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("{n} rotated")),
        "{}",
        run.stdout
    );
    let a = world.vault_read("team/shared-a").await.expect("shared-a");
    let b = world.vault_read("team/shared-b").await.expect("shared-b");
    for i in 0..n {
        let live = world.eci_named(&format!("ci-{i}")).await;
        assert_eq!(live.len(), 1, "ci-{i}: one token left");
        let held = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            held["data"][format!("K{i}")],
            live[0]["token"],
            "K{i} holds ci-{i}'s new value (keys present: {:?})",
            held["data"]
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>())
        );
    }
    world.assert_no_leak().await;
}

/// A token with no destinations is only watched: however near its expiry, and even forced, it
/// is never replaced (nothing would receive the new value, and deleting it would break whoever
/// uses it); `--check`, `--rotate-now` and `--status` say so.
#[tokio::test]
async fn a_token_with_no_destinations_is_only_watched() {
    let world = World::new().await;
    let seeded = world
        .seed_token("by-hand", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy("[[token]]\nname = \"by-hand\"\n");
    let check = world.run(&policy, &["--check"]).await;
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check.stdout.contains("watched only") && check.stdout.contains("by-hand"),
        "{}",
        check.stdout
    );
    for args in [&["--rotate-now"][..], &["--rotate-now", "--force"][..]] {
        let run = world.run(&policy, args).await;
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(
            run.stdout
                .contains("by-hand: watched only (no destinations, so never rotated)"),
            "{args:?}: {}",
            run.stdout
        );
        // Counted as watched, not as "not due"; its id is the token, not an "old" one.
        assert!(
            run.stdout
                .contains("0 rotated, 0 not due, 0 failed, 1 watched"),
            "{args:?}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(&format!(
                "  token        {} expires",
                seeded["id"].as_str().expect("id")
            )) && !run.stdout.contains("old token"),
            "{args:?}: {}",
            run.stdout
        );
    }
    let named = world.eci_named("by-hand").await;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["id"], seeded["id"]);
    let st = world.run(&policy, &["--status"]).await;
    assert!(st.stdout.contains("by-hand: watched"), "{}", st.stdout);
    world.assert_no_leak().await;
}

/// A token whose destinations are removed while its rotation is open: the rotation is not
/// carried on (the old token is what those destinations hold); the run says what to do, and
/// `--abandon` closes it.
#[tokio::test]
async fn an_open_rotation_of_a_token_left_without_destinations_is_not_carried_on() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(DEPLOY);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 500}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    world.admin_delete("/faults").await;
    let before = world.eci_named("ci-deploy").await.len();
    world.policy("[[token]]\nname = \"ci-deploy\"\n");
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("gives it no destinations now, so nothing is done"),
        "{}",
        run.stdout
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), before);
    assert!(named.iter().any(|t| t["id"] == old["id"]), "old token kept");
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 1, "{}", st.all());
    let ab = world
        .run(&policy, &["--abandon", "ci-deploy", "--force"])
        .await;
    assert_eq!(ab.code, 0, "{}", ab.all());
    world.assert_no_leak().await;
}

/// A KV mount that requires check-and-set on metadata writes too (OpenBao's
/// `metadata_cas_required`): the record of who wrote the secret names the metadata version it
/// replaces, so the rotation completes (every run used to fail after writing the value).
#[tokio::test]
async fn a_mount_requiring_metadata_check_and_set_is_written_and_annotated() {
    let world = World::new().await;
    let post = reqwest::Method::POST;
    world
        .bao
        .api(
            post.clone(),
            "sys/mounts/mcas",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    world
        .bao
        .api(
            post.clone(),
            "mcas/config",
            Some(json!({"cas_required": true, "metadata_cas_required": true})),
        )
        .await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(
        "[[token]]\nname = \"ci-deploy\"\n  [[token.vault]]\n  mount = \"mcas\"\n  path = \"ci/deploy\"\n  key = \"ECI_ACCESS_TOKEN\"\n",
    );
    for round in 0..2 {
        let run = world.run(&policy, &["--rotate-now", "--force"]).await;
        assert_eq!(run.code, 0, "round {round}: {}", run.all());
        let live = world.eci_named("ci-deploy").await;
        assert_eq!(live.len(), 1, "round {round}");
        assert_ne!(live[0]["id"], old["id"]);
        let data = world
            .bao
            .api(reqwest::Method::GET, "mcas/data/ci/deploy", None)
            .await;
        assert!(
            data["data"]["data"]["ECI_ACCESS_TOKEN"] == live[0]["token"],
            "round {round}"
        );
        let meta = world
            .bao
            .api(reqwest::Method::GET, "mcas/metadata/ci/deploy", None)
            .await;
        assert_eq!(
            meta["data"]["custom_metadata"]["eci-token-id"], live[0]["id"],
            "round {round}: {meta}"
        );
    }
    world.assert_no_leak().await;
}
