//! Kill the real binary with SIGKILL at every step boundary of a rotation (held there by the
//! sandbox's hang knob), several times each; after each kill a rerun must converge: exactly one
//! live token of that name, every destination holding its value, the old token deleted, no
//! orphan. Prints the matrix.

mod common;

use common::World;
use futures::StreamExt;
use serde_json::{Value, json};

const REPETITIONS: usize = 3;

const POLICY: &str = r#"
[[token]]
name = "ci-deploy"
description = "deploy jobs"

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
"#;

/// A step boundary: the request the binary is held on when it is killed.
struct Point {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// "before": the request has no effect; "after": it took effect but the reply never came.
    phase: &'static str,
}

const POINTS: &[Point] = &[
    Point {
        name: "before create",
        method: "POST",
        path: "/user/user_access_token",
        phase: "before",
    },
    Point {
        name: "after create (reply lost)",
        method: "POST",
        path: "/user/user_access_token",
        phase: "after",
    },
    Point {
        name: "after create, proving the new token",
        method: "GET",
        path: "/user/organization",
        phase: "before",
    },
    Point {
        name: "after Vault write",
        method: "GET",
        path: "/repos/acme/web/actions/secrets/public-key",
        phase: "before",
    },
    Point {
        name: "after repository secret write",
        method: "PUT",
        path: "/repos/acme/web/actions/secrets/ECI_ACCESS_TOKEN",
        phase: "after",
    },
    Point {
        name: "after environment secret write",
        method: "PUT",
        path: "/environments/production/secrets/ECI_TOKEN",
        phase: "after",
    },
    Point {
        name: "after organization secret write",
        method: "PUT",
        path: "/orgs/acme/actions/secrets/ECI_TOKEN",
        phase: "after",
    },
    Point {
        name: "after verify (last check)",
        method: "GET",
        path: "/orgs/acme/actions/secrets/ECI_TOKEN",
        phase: "after",
    },
    Point {
        name: "before delete",
        method: "DELETE",
        path: "/user/user_access_token/",
        phase: "before",
    },
    Point {
        name: "after delete (reply lost)",
        method: "DELETE",
        path: "/user/user_access_token/",
        phase: "after",
    },
];

/// One kill and rerun. Returns a description of what did not converge, if anything.
async fn kill_and_converge(point: &Point) -> Result<(), String> {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(POLICY);

    world
        .admin_post(
            "/faults",
            json!({"method": point.method, "path_contains": point.path, "hang": true, "count": 1, "phase": point.phase}),
        )
        .await;
    world
        .run_until_hang(&policy, &["--rotate-now"], point.path)
        .await;
    world.admin_delete("/faults").await;

    let rerun = world.run(&policy, &["--rotate-now"]).await;
    if rerun.code != 0 {
        return Err(format!("rerun exited {}: {}", rerun.code, rerun.all()));
    }
    let named = world.eci_named("ci-deploy").await;
    if named.len() != 1 {
        return Err(format!("{} live ci-deploy tokens", named.len()));
    }
    let live = &named[0];
    if live["id"] == old["id"] {
        return Err("the old token is still the live one".into());
    }
    let value = live["token"].as_str().unwrap_or_default().to_string();
    let vault = world.vault_read("ci/deploy").await;
    if vault
        .as_ref()
        .map(|d| d["data"]["ECI_ACCESS_TOKEN"] != value.as_str())
        .unwrap_or(true)
    {
        return Err("Vault does not hold the live token".into());
    }
    for (scope, name) in [
        ("repo:acme/web", "ECI_ACCESS_TOKEN"),
        ("env:acme/web:production", "ECI_TOKEN"),
        ("org:acme", "ECI_TOKEN"),
    ] {
        let s: Option<Value> = world.github_secret(scope, name).await;
        if s.map(|s| s["value"] != value.as_str()).unwrap_or(true) {
            return Err(format!(
                "GitHub {scope} {name} does not hold the live token"
            ));
        }
    }
    let deleted = world.admin_get("/eci/deleted").await;
    if !deleted.as_array().is_some_and(|d| d.contains(&old["id"])) {
        return Err("the old token was not deleted".into());
    }
    let orphans: Vec<Value> = world
        .eci_tokens()
        .await
        .into_iter()
        .filter(|t| {
            t["id"] != live["id"]
                && t["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("[eci-secret-sync]"))
        })
        .collect();
    if !orphans.is_empty() {
        return Err(format!("{} orphan replacement(s) left", orphans.len()));
    }
    // Never token after token: exactly one replacement was ever created (seeded: the
    // program's own credential and the old token).
    let ever = world.eci_tokens().await.len() + deleted.as_array().map_or(0, Vec::len);
    if ever != 3 {
        return Err(format!("{} replacements were created, not 1", ever - 2));
    }
    world.assert_no_leak().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_every_step_boundary_converges() {
    let cases: Vec<(usize, usize)> = (0..POINTS.len())
        .flat_map(|p| (0..REPETITIONS).map(move |r| (p, r)))
        .collect();
    let results: Vec<(usize, Result<(), String>)> = futures::stream::iter(cases)
        .map(|(p, _)| async move { (p, kill_and_converge(&POINTS[p]).await) })
        .buffer_unordered(6)
        .collect()
        .await;

    println!(
        "\nSIGKILL matrix: {} points x {REPETITIONS} repetitions",
        POINTS.len()
    );
    println!(
        "{:<40} {:>6} {:>10} {:>6}",
        "kill point", "runs", "converged", "lost"
    );
    let mut failures = Vec::new();
    for (i, point) in POINTS.iter().enumerate() {
        let mine: Vec<&Result<(), String>> = results
            .iter()
            .filter(|(p, _)| *p == i)
            .map(|(_, r)| r)
            .collect();
        let ok = mine.iter().filter(|r| r.is_ok()).count();
        println!(
            "{:<40} {:>6} {:>10} {:>6}",
            point.name,
            mine.len(),
            ok,
            mine.len() - ok
        );
        for r in mine {
            if let Err(e) = r {
                failures.push(format!("{}: {e}", point.name));
            }
        }
    }
    println!("total: {} runs, {} lost\n", results.len(), failures.len());
    assert!(
        failures.is_empty(),
        "did not converge:\n{}",
        failures.join("\n")
    );
}
