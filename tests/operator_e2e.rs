//! What an operator sees and can do: `--status` (text and JSON), `--abandon`, orphan clean-up,
//! and the grace period before the old token goes.

mod common;

use common::World;
use serde_json::{Value, json};

const POLICY: &str = r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"

[[token]]
name = "ci-readonly"
"#;

const GITHUB_ONLY: &str = r#"
[[token]]
name = "ci-deploy"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#;

async fn github_down(world: &World) {
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 500}),
        )
        .await;
}

#[tokio::test]
async fn status_shows_a_failed_rotation_and_its_destinations() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    github_down(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);

    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(
        st.code,
        1,
        "a failed token makes --status exit 1: {}",
        st.all()
    );
    assert!(st.stdout.contains("ci-deploy: failed"), "{}", st.stdout);
    assert!(
        st.stdout.contains("  last error   ") && st.stdout.contains("returned 500"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.contains(&format!(
            "resume: eci-secret-sync --config {} --rotate-now --token ci-deploy",
            policy.display()
        )),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains("open rotation since"), "{}", st.stdout);
    assert!(
        st.stdout.contains(&format!(
            "abandon: eci-secret-sync --config {} --abandon ci-deploy --force",
            policy.display()
        )),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .contains("synced       vault:secret/ci/deploy#ECI_ACCESS_TOKEN"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .contains("failed       github:repo:acme/web:ECI_ACCESS_TOKEN"),
        "{}",
        st.stdout
    );
    // No destinations: only watched.
    assert!(st.stdout.contains("ci-readonly: watched"), "{}", st.stdout);
    assert!(st.stdout.contains("next runs:"), "{}", st.stdout);

    let json_run = world.run(&policy, &["--status", "--json"]).await;
    assert_eq!(json_run.code, 1, "{}", json_run.all());
    let v: Value = serde_json::from_str(&json_run.stdout).expect("status JSON");
    let deploy = &v["tokens"][0];
    assert_eq!(deploy["name"], "ci-deploy");
    assert_eq!(deploy["state"], "failed");
    assert_eq!(deploy["open_rotation"]["old_id"], old["id"]);
    assert_eq!(deploy["destinations"][1]["status"], "failed");
    assert!(
        deploy["destinations"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    assert_eq!(v["tokens"][1]["state"], "watched");
    assert!(v["tokens"][1]["rotates_at"].is_null(), "never rotated");
    world.assert_no_leak().await;
}

#[tokio::test]
async fn abandon_deletes_an_unused_replacement() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    github_down(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2);

    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("replacement") && run.stdout.contains("deleted"),
        "{}",
        run.stdout
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1, "only the old token is left");
    assert_eq!(named[0]["id"], old["id"]);
    let st = world.run(&policy, &["--status"]).await;
    assert!(st.stdout.contains("ci-deploy: due"), "{}", st.stdout);

    let again = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("has no open rotation"),
        "{}",
        again.stderr
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn abandon_refuses_when_a_destination_holds_the_replacement_unless_forced() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    github_down(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);

    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("may be) by vault:secret/ci/deploy#ECI_ACCESS_TOKEN"),
        "{}",
        run.stderr
    );
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        2,
        "nothing deleted"
    );

    let forced = world
        .run(&policy, &["--abandon", "ci-deploy", "--force"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.all());
    assert!(forced.stdout.contains("kept alive"), "{}", forced.stdout);
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        2,
        "both tokens stay alive"
    );
    // --status says so: the kept replacement is not hidden behind "ok".
    let kept = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| {
            t["description"]
                .as_str()
                .is_some_and(|d| d.contains("[eci-secret-sync]"))
        })
        .expect("the kept replacement");
    let st = world.run(&policy, &["--status"]).await;
    let kept_line = format!("also alive   {}", kept["id"].as_str().expect("id"));
    assert!(
        st.stdout
            .lines()
            .any(|l| l.contains(&kept_line) && l.contains("kept alive")),
        "{}",
        st.stdout
    );
    let json_run = world.run(&policy, &["--status", "--json"]).await;
    let v: Value = serde_json::from_str(&json_run.stdout).expect("status JSON");
    assert_eq!(v["tokens"][0]["other_tokens"][0]["id"], kept["id"]);
    assert_eq!(v["tokens"][0]["other_tokens"][0]["kind"], "kept");
    world.assert_no_leak().await;
}

/// Killed while a GitHub write is in flight: whether it landed is unknown to the journal.
/// `--abandon` asks GitHub (the secret's `updated_at`) instead of guessing: a write that landed
/// keeps the replacement alive, one that never reached the store lets it be deleted.
#[tokio::test]
async fn abandon_after_a_kill_mid_write_asks_the_destination_whether_it_landed() {
    for (phase, landed) in [("after", true), ("before", false)] {
        let world = World::new().await;
        let old = world
            .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
            .await;
        let policy = world.policy(GITHUB_ONLY);
        world
            .admin_post(
                "/faults",
                json!({"method": "PUT", "path_contains": "/actions/secrets/", "hang": true, "phase": phase}),
            )
            .await;
        world
            .run_until_hang(&policy, &["--rotate-now"], "/actions/secrets/ECI")
            .await;
        world.admin_delete("/faults").await;
        assert_eq!(world.eci_named("ci-deploy").await.len(), 2);
        assert_eq!(
            world
                .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
                .await
                .is_some(),
            landed,
            "phase {phase}"
        );

        let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
        if landed {
            assert_eq!(run.code, 1, "{}", run.all());
            assert!(
                run.stderr
                    .contains("may be) by github:repo:acme/web:ECI_ACCESS_TOKEN"),
                "{}",
                run.stderr
            );
            assert_eq!(
                world.eci_named("ci-deploy").await.len(),
                2,
                "nothing deleted"
            );
            // Finishing the rotation is what the message advises, and it works.
            let done = world.run(&policy, &["--rotate-now"]).await;
            assert_eq!(done.code, 0, "{}", done.all());
            let named = world.eci_named("ci-deploy").await;
            assert_eq!(named.len(), 1);
            assert_ne!(named[0]["id"], old["id"]);
        } else {
            assert_eq!(run.code, 0, "{}", run.all());
            let named = world.eci_named("ci-deploy").await;
            assert_eq!(named.len(), 1, "only the old token is left");
            assert_eq!(named[0]["id"], old["id"]);
        }
        world.assert_no_leak().await;
    }
}

/// The GitHub secret was written by the previous rotation seconds before this one's write
/// was refused: its `updated_at`, read on GitHub's own clock, shows the refused write did not
/// land, so `--abandon` deletes the unused replacement.
#[tokio::test]
async fn abandon_reads_github_updated_at_on_githubs_clock() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let current = world.eci_named("ci-deploy").await.pop().expect("current");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    github_down(&world).await;
    assert_eq!(
        world.run(&policy, &["--rotate-now", "--force"]).await.code,
        1
    );
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2);
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["id"], current["id"]);
    world.assert_no_leak().await;
}

/// A Vault write that stored the value but failed afterwards (here: the token lost the right
/// to write the secret's metadata between the run's checks and its write) leaves no receipt
/// in the journal. `--abandon` reads Vault and finds the value there, so it keeps the
/// replacement instead of breaking whoever reads that secret.
#[tokio::test]
async fn abandon_keeps_a_replacement_vault_stored_despite_a_failed_write() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let full = r#"
path "secret/data/ci/deploy" { capabilities = ["create", "read", "update"] }
path "secret/metadata/ci/deploy" { capabilities = ["create", "read", "update"] }
"#;
    let token_file = world.limited_vault_token(full).await;
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
"#,
    );
    // Stop the run once the replacement exists (it proves the new token at ECI before writing),
    // take the metadata right away, then let it go on.
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/organization", "hang": true, "count": 1}),
        )
        .await;
    let child = world
        .command(&policy, &["--rotate-now"])
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the hang"
        );
        let log = world.admin_get("/requests").await;
        let stuck = log.as_array().into_iter().flatten().any(|e| {
            e["status"] == 0
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/user/organization"))
        });
        if stuck {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    world
        .bao
        .api(
            reqwest::Method::PUT,
            "sys/policies/acl/eci-limited",
            Some(json!({ "policy": full.replace(
                r#"path "secret/metadata/ci/deploy" { capabilities = ["create", "read", "update"] }"#,
                r#"path "secret/metadata/ci/deploy" { capabilities = ["read"] }"#,
            ) })),
        )
        .await;
    world.admin_delete("/faults").await;
    let out = child.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    world.note_printed(&stdout);
    world.note_printed(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("writing Vault metadata"), "{stdout}");
    let stored = world.vault_read("ci/deploy").await.expect("secret written");
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 2);
    assert!(
        named
            .iter()
            .any(|t| t["token"] == stored["data"]["ECI_ACCESS_TOKEN"]),
        "Vault holds the replacement"
    );

    let abandon = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(abandon.code, 1, "{}", abandon.all());
    assert!(
        abandon
            .stderr
            .contains("may be) by vault:secret/ci/deploy#ECI_ACCESS_TOKEN"),
        "{}",
        abandon.stderr
    );
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        2,
        "nothing deleted"
    );
    world.assert_no_leak().await;
}

/// Other tokens of the name that this state folder did not record creating are reported and
/// never deleted or taken over, even when their description carries this program's marker (a
/// copy made by hand, say). Replacements it did create are cleaned up (see robustness_e2e).
#[tokio::test]
async fn tokens_it_did_not_record_creating_are_reported_and_never_touched() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let current = world.eci_named("ci-deploy").await.pop().expect("rotated");
    let marked = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "hand-made copy [eci-secret-sync]",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(200)).to_rfc3339()}),
        )
        .await;
    let foreign = world
        .admin_post(
            "/eci/tokens",
            json!({"name": "ci-deploy", "description": "made by hand",
                   "expires": (chrono::Utc::now() + chrono::Duration::days(80)).to_rfc3339()}),
        )
        .await;
    world.eci_tokens().await;

    for args in [&["--rotate-now"][..], &["--rotate-now", "--force"][..]] {
        let run = world.run(&policy, args).await;
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(
            run.stdout.contains(&format!(
                "token {} carries this program's marker in its description, but this state folder has no record of creating it: left alone",
                marked["id"].as_str().expect("id")
            )),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("not made by this program, left alone"),
            "{}",
            run.stdout
        );
        let ids: Vec<Value> = world
            .eci_named("ci-deploy")
            .await
            .into_iter()
            .map(|t| t["id"].clone())
            .collect();
        assert!(ids.contains(&marked["id"]), "{args:?}: never deleted");
        assert!(ids.contains(&foreign["id"]), "{args:?}: never deleted");
        assert_eq!(ids.len(), 3, "{args:?}");
    }
    // The forced rotation made its own replacement; the marked copy was not taken over.
    let now = world.eci_named("ci-deploy").await;
    assert!(!now.iter().any(|t| t["id"] == current["id"]), "rotated");
    let st = world.run(&policy, &["--status", "--json"]).await;
    let v: Value = serde_json::from_str(&st.stdout).expect("status JSON");
    let kinds: Vec<(Value, Value)> = v["tokens"][0]["other_tokens"]
        .as_array()
        .expect("other tokens")
        .iter()
        .map(|o| (o["id"].clone(), o["kind"].clone()))
        .collect();
    assert!(
        kinds.contains(&(marked["id"].clone(), json!("unrecorded"))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(foreign["id"].clone(), json!("foreign"))),
        "{kinds:?}"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn grace_keeps_the_old_token_until_it_has_passed() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(&GITHUB_ONLY.replace(
        "name = \"ci-deploy\"",
        "name = \"ci-deploy\"\ngrace = \"5s\"",
    ));
    let first = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(
        first
            .stdout
            .contains("old token kept for the grace period, deleted at the first run after"),
        "{}",
        first.stdout
    );
    assert_eq!(
        world.eci_named("ci-deploy").await.len(),
        2,
        "old kept during grace"
    );
    let st = world.run(&policy, &["--status"]).await;
    assert!(st.stdout.contains("ci-deploy: grace"), "{}", st.stdout);
    // A run during the grace rotates nothing, and says so.
    let waiting = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(waiting.code, 0, "{}", waiting.all());
    assert!(
        waiting
            .stdout
            .contains("ci-deploy: in grace: the replacement is in place")
            && waiting
                .stdout
                .contains("0 rotated, 0 not due, 0 failed, 1 in grace"),
        "{}",
        waiting.stdout
    );
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2);

    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    let later = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(later.code, 0, "{}", later.all());
    assert!(
        later.stdout.contains("ci-deploy: rotated"),
        "{}",
        later.stdout
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1);
    assert_ne!(named[0]["id"], old["id"]);
    world.assert_no_leak().await;
}

/// A GitHub write that landed although its reply was an error: `--status` does not promise
/// that a plain `--abandon` works, and `--abandon` refuses (GitHub shows the secret updated
/// since the write began), keeping the replacement the repository may hold.
#[tokio::test]
async fn status_warns_that_abandon_refuses_after_a_write_that_may_have_landed() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 422, "phase": "after"}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let st = world.run(&policy, &["--status"]).await;
    assert!(
        st.stdout.lines().any(|l| l.contains("--abandon ci-deploy")
            && l.contains("refused if a failed write landed after all")),
        "{}",
        st.stdout
    );
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(world.eci_named("ci-deploy").await.len(), 2);
    world.assert_no_leak().await;
}

/// The host's clock stepped between the GitHub write and `--abandon` (here: the journal's
/// local time of the write moved 10 s later, as if the clock had been 10 s fast then). The
/// write landed; `--abandon` compares GitHub's `updated_at` with the write's start on GitHub's
/// own clock, recorded at the time, so it still sees that the repository may hold the
/// replacement and refuses to delete it.
#[tokio::test]
async fn abandon_is_not_fooled_by_a_clock_step_after_a_github_write() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 422, "phase": "after"}),
        )
        .await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    world.admin_delete("/faults").await;
    let replacement = world
        .eci_named("ci-deploy")
        .await
        .into_iter()
        .find(|t| t["id"] != old["id"])
        .expect("replacement");
    let journal = std::fs::read_dir(world.state_dir().join("rotations"))
        .expect("rotations")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("journal");
    let mut j: Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).expect("read")).expect("json");
    for d in j["destinations"]
        .as_object_mut()
        .expect("destinations")
        .values_mut()
    {
        let at = chrono::DateTime::parse_from_rfc3339(d["attempted_at"].as_str().expect("at"))
            .expect("time");
        d["attempted_at"] = json!((at + chrono::Duration::seconds(10)).to_rfc3339());
    }
    std::fs::write(&journal, serde_json::to_vec_pretty(&j).expect("json")).expect("write");
    let run = world.run(&policy, &["--abandon", "ci-deploy"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("by GitHub's clock"), "{}", run.all());
    let live = world.eci_named("ci-deploy").await;
    assert!(live.iter().any(|t| t["id"] == replacement["id"]));
    world.assert_no_leak().await;
}

/// A `[[token]]` removed from the policy while its rotation is open (old token and replacement
/// both alive, destinations split between them) is not forgotten: `--status` warns and exits
/// 1, `--rotate-now` warns; putting the token back finishes the rotation.
#[tokio::test]
async fn an_open_rotation_of_a_token_removed_from_the_policy_is_reported() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-other", Some(chrono::Duration::days(60)))
        .await;
    let both = format!(
        "{GITHUB_ONLY}\n[[token]]\nname = \"ci-other\"\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"OTHER_TOKEN\"\n"
    );
    let policy = world.policy(&both);
    github_down(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    world.admin_delete("/faults").await;
    let other_only = "[[token]]\nname = \"ci-other\"\n  [[token.github]]\n  repo = \"acme/web\"\n  secret = \"OTHER_TOKEN\"\n";
    world.policy(other_only);
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 1, "{}", st.all());
    let old_id = old["id"].as_str().expect("id");
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("warning: ci-deploy has an open rotation")
                && l.contains(old_id)
                && l.contains("policy no longer lists it")),
        "{}",
        st.stdout
    );
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert!(
        run.stdout
            .contains("warning: ci-deploy has an open rotation"),
        "{}",
        run.stdout
    );
    // An unreadable file beside it hides neither that rotation nor itself.
    let junk = world.state_dir().join("rotations").join("zz.json");
    std::fs::write(&junk, "junk").expect("junk journal");
    for args in [&["--status"][..], &["--rotate-now"][..]] {
        let run = world.run(&policy, args).await;
        assert!(
            run.stdout
                .contains("warning: ci-deploy has an open rotation")
                && run.stdout.contains(&format!(
                    "warning: state file {} is unreadable",
                    junk.display()
                )),
            "{args:?}: {}",
            run.stdout
        );
    }
    std::fs::remove_file(&junk).expect("remove junk");
    world.policy(&both);
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !run.stdout.contains("has an open rotation"),
        "{}",
        run.stdout
    );
    let live = world.eci_named("ci-deploy").await;
    assert_eq!(live.len(), 1);
    assert_ne!(live[0]["id"], old["id"]);
    world.assert_no_leak().await;
}

/// A sealed Vault is seen by `--status` before a token comes due: warned about, exit 1, and
/// named in the JSON; once unsealed, all is well again.
#[tokio::test]
async fn status_says_when_vault_cannot_be_used() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(60)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    let ok = world.run(&policy, &["--status"]).await;
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert!(!ok.stdout.contains("Vault"), "{}", ok.stdout);

    world.bao.seal().await;
    let st = world.run(&policy, &["--status"]).await;
    world.bao.unseal().await;
    assert_eq!(
        st.code,
        1,
        "a sealed Vault makes --status exit 1: {}",
        st.all()
    );
    assert!(
        st.stdout
            .contains("Vault is sealed (unseal it, then run again); a rotation that writes to Vault would fail now"),
        "{}",
        st.stdout
    );
    world.bao.seal().await;
    let json_run = world.run(&policy, &["--status", "--json"]).await;
    // A one-shot run with nothing due says so too, and fails, as a daemon pass does.
    let one_shot = world.run(&policy, &["--rotate-now"]).await;
    world.bao.unseal().await;
    assert_eq!(one_shot.code, 1, "{}", one_shot.all());
    assert!(
        one_shot.stdout.contains("Vault is sealed")
            && one_shot
                .stdout
                .contains("a rotation that writes to Vault would fail now"),
        "{}",
        one_shot.stdout
    );
    assert_eq!(json_run.code, 1, "{}", json_run.all());
    let v: Value = serde_json::from_str(&json_run.stdout).expect("status JSON");
    assert!(
        v["vault_error"]
            .as_str()
            .is_some_and(|e| e.contains("Vault is sealed")),
        "{v}"
    );

    let again = world.run(&policy, &["--status"]).await;
    assert_eq!(again.code, 0, "unsealed: {}", again.all());
}

/// A journal that cannot be read is not hidden behind the last rotation's state: `--status`
/// names the file and what to do, shows the token as `unknown` and exits 1.
#[tokio::test]
async fn status_names_an_unreadable_journal() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    github_down(&world).await;
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 1);
    let journal = std::fs::read_dir(world.state_dir().join("rotations"))
        .expect("rotations")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("an open rotation's journal");
    std::fs::write(&journal, "{\"version\":1,").expect("garble");
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 1, "{}", st.all());
    assert!(
        st.stdout.contains(&format!(
            "warning: state file {} is unreadable",
            journal.display()
        )) && st.stdout.contains("move it aside and run again"),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains("ci-deploy: unknown"), "{}", st.stdout);
    let json_run = world.run(&policy, &["--status", "--json"]).await;
    assert_eq!(json_run.code, 1, "{}", json_run.all());
    let v: Value = serde_json::from_str(&json_run.stdout).expect("status JSON");
    assert_eq!(v["tokens"][0]["state"], "unknown");
    assert!(
        v["state_errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("is unreadable")),
        "{v}"
    );
    world.assert_no_leak().await;
}

/// A token already past its expiry is not just "due": everything using it is failing, so
/// `--status` says `expired` and exits 1.
#[tokio::test]
async fn status_says_when_a_token_has_already_expired() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(-2)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 1, "{}", st.all());
    assert!(st.stdout.contains("ci-deploy: expired"), "{}", st.stdout);
    let json_run = world.run(&policy, &["--status", "--json"]).await;
    let v: Value = serde_json::from_str(&json_run.stdout).expect("status JSON");
    assert_eq!(v["tokens"][0]["state"], "expired");
    // Rotating it puts things right.
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 0, "{}", st.all());
    assert!(st.stdout.contains("ci-deploy: ok"), "{}", st.stdout);
    world.assert_no_leak().await;
}

/// The token this program gave the destinations was deleted and another of the name made by
/// hand: `--status` does not call the destinations synced (they hold a dead token), exits 1
/// and says how to put it right; doing so makes all well.
#[tokio::test]
async fn status_says_destinations_hold_a_token_deleted_behind_its_back() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    let ours = world
        .eci_named("ci-deploy")
        .await
        .pop()
        .expect("replacement");
    let ours_id = ours["id"].as_str().expect("id").to_string();
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(80)))
        .await;
    world.admin_delete(&format!("/eci/tokens/{ours_id}")).await;
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 1, "{}", st.all());
    assert!(
        st.stdout
            .contains("stale        vault:secret/ci/deploy#ECI_ACCESS_TOKEN (")
            && st.stdout.contains(&format!(
                "was given token {ours_id}, which ECI no longer lists"
            )),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.contains("--rotate-now --force --token ci-deploy"),
        "{}",
        st.stdout
    );
    let run = world
        .run(
            &policy,
            &["--rotate-now", "--force", "--token", "ci-deploy"],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let st = world.run(&policy, &["--status"]).await;
    assert_eq!(st.code, 0, "{}", st.all());
    assert!(!st.stdout.contains("stale"), "{}", st.stdout);
    world.assert_no_leak().await;
}

/// After `--abandon --force`, destinations the abandoned rotation wrote hold its (kept)
/// replacement, not the recorded token: `--status` does not call them synced with the
/// recorded one.
#[tokio::test]
async fn status_after_a_forced_abandon_does_not_claim_destinations_hold_the_recorded_token() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    world
        .seed_token("ci-readonly", Some(chrono::Duration::days(60)))
        .await;
    let policy = world.policy(POLICY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    github_down(&world).await;
    let forced = world
        .run(
            &policy,
            &["--rotate-now", "--force", "--token", "ci-deploy"],
        )
        .await;
    assert_eq!(forced.code, 1, "{}", forced.all());
    world.admin_delete("/faults").await;
    let closed = world
        .run(&policy, &["--abandon", "ci-deploy", "--force"])
        .await;
    assert_eq!(closed.code, 0, "{}", closed.all());
    let st = world.run(&policy, &["--status"]).await;
    assert!(
        !st.stdout
            .contains("synced       vault:secret/ci/deploy#ECI_ACCESS_TOKEN")
            && st.stdout.contains("or the kept replacement"),
        "{}",
        st.stdout
    );
    // The next rotation puts every destination on one token again.
    let run = world
        .run(
            &policy,
            &["--rotate-now", "--force", "--token", "ci-deploy"],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let st = world.run(&policy, &["--status"]).await;
    assert!(
        st.stdout
            .contains("synced       vault:secret/ci/deploy#ECI_ACCESS_TOKEN")
            && !st.stdout.contains("kept replacement"),
        "{}",
        st.stdout
    );
    world.assert_no_leak().await;
}

/// A destination added to the policy after the token's last rotation has not been given a
/// token: `--status` says so and how to fill it now.
#[tokio::test]
async fn status_says_a_destination_added_after_the_last_rotation_was_never_written() {
    let world = World::new().await;
    world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let policy = world.policy(GITHUB_ONLY);
    assert_eq!(world.run(&policy, &["--rotate-now"]).await.code, 0);
    world.policy(&format!(
        "{GITHUB_ONLY}\n  [[token.vault]]\n  path = \"ci/added\"\n  key = \"ECI_ACCESS_TOKEN\"\n"
    ));
    let st = world.run(&policy, &["--status"]).await;
    assert!(
        st.stdout.lines().any(|l| l
            .contains("unknown      vault:secret/ci/added#ECI_ACCESS_TOKEN")
            && l.contains("added after the last rotation")
            && l.contains("--rotate-now --force --token ci-deploy")),
        "{}",
        st.stdout
    );
    let run = world
        .run(
            &policy,
            &["--rotate-now", "--force", "--token", "ci-deploy"],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let st = world.run(&policy, &["--status"]).await;
    assert!(
        st.stdout
            .contains("synced       vault:secret/ci/added#ECI_ACCESS_TOKEN"),
        "{}",
        st.stdout
    );
    world.assert_no_leak().await;
}
