//! Failing servers: rate limits, rotated keys, a sealed Vault, an expiring Vault token, and a
//! destination down for many runs. Each on real OpenBao + the sandbox, through the binary.

mod common;

use common::World;
use serde_json::{Value, json};

const ONE_REPO: &str = r#"
[[token]]
name = "ci-deploy"

  [[token.vault]]
  path = "ci/deploy"
  key = "ECI_ACCESS_TOKEN"

  [[token.github]]
  repo = "acme/web"
  secret = "ECI_ACCESS_TOKEN"
"#;

fn value_of(token: &Value) -> String {
    token["token"].as_str().expect("token value").to_string()
}

/// The one live token named `ci-deploy`, asserting it replaced `old` and is everywhere.
async fn assert_rotated_everywhere(world: &World, old: &Value) -> Value {
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 1, "exactly one live ci-deploy");
    let live = named[0].clone();
    assert_ne!(live["id"], old["id"], "replaced");
    let value = value_of(&live);
    let vault = world.vault_read("ci/deploy").await.expect("vault secret");
    assert!(
        vault["data"]["ECI_ACCESS_TOKEN"] == value.as_str(),
        "Vault holds the new value"
    );
    let gh = world
        .github_secret("repo:acme/web", "ECI_ACCESS_TOKEN")
        .await
        .expect("github secret");
    assert!(gh["value"] == value.as_str(), "GitHub holds the new value");
    live
}

async fn requests(world: &World, method: &str, path_contains: &str) -> Vec<Value> {
    world
        .admin_get("/requests")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["method"] == method
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains(path_contains))
        })
        .collect()
}

#[tokio::test]
async fn eci_429_with_retry_after_is_honoured() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(ONE_REPO);
    world
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/user_access_token", "status": 429, "retry_after": "1", "count": 2}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("retrying ECI request") && run.stderr.contains("wait=1s"),
        "{}",
        run.stderr
    );
    let statuses: Vec<Value> = requests(&world, "GET", "/user/user_access_token")
        .await
        .into_iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(
        &statuses[..3],
        &[json!(429), json!(429), json!(200)],
        "two 429s then success"
    );
    assert_rotated_everywhere(&world, &old).await;
    world.assert_no_leak().await;
}

#[tokio::test]
async fn github_secondary_rate_limit_waits_and_succeeds() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(ONE_REPO);
    // A secondary limit: 403 with GitHub's message and Retry-After; then a primary-limit 429
    // with x-ratelimit-reset.
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/ECI_ACCESS_TOKEN", "status": 403, "retry_after": "1", "count": 1}),
        )
        .await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/ECI_ACCESS_TOKEN", "status": 429, "count": 1,
                   "headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let puts: Vec<Value> = requests(&world, "PUT", "/actions/secrets/ECI_ACCESS_TOKEN")
        .await
        .into_iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(puts, vec![json!(403), json!(429), json!(201)]);
    assert_rotated_everywhere(&world, &old).await;
    world.assert_no_leak().await;
}

#[tokio::test]
async fn github_key_rotated_between_fetch_and_put_is_refetched_once() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(ONE_REPO);
    // Hold the first PUT after the key was fetched, rotate the scope's key, release the PUT.
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/ECI_ACCESS_TOKEN", "hang": true, "count": 1}),
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
            "the run never reached the PUT"
        );
        if requests(&world, "PUT", "/actions/secrets/ECI_ACCESS_TOKEN")
            .await
            .iter()
            .any(|e| e["status"] == 0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    world
        .admin_post("/github/rotate-key", json!({"scope": "repo:acme/web"}))
        .await;
    world.admin_delete("/faults").await;
    let out = child.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let key_fetches = requests(&world, "GET", "/repos/acme/web/actions/secrets/public-key").await;
    assert_eq!(
        key_fetches.len(),
        2,
        "fetched once, re-fetched once after the rejection"
    );
    let puts: Vec<Value> = requests(&world, "PUT", "/actions/secrets/ECI_ACCESS_TOKEN")
        .await
        .into_iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(puts.last(), Some(&json!(201)), "{puts:?}");
    assert!(
        puts.contains(&json!(422)),
        "the stale key_id was rejected first: {puts:?}"
    );
    assert_rotated_everywhere(&world, &old).await;
}

#[tokio::test]
async fn vault_sealed_during_a_run_keeps_old_token_and_next_run_finishes() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(ONE_REPO);
    // Stop the run after the replacement is created and Vault was logged into; seal Vault there.
    world
        .admin_post("/faults", json!({"method": "GET", "path_contains": "/user/organization", "hang": true, "count": 1}))
        .await;
    let child = world
        .command(&policy, &["--rotate-now"])
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached GET /user/organization"
        );
        if requests(&world, "GET", "/user/organization")
            .await
            .iter()
            .any(|e| e["status"] == 0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    world.bao.seal().await;
    world.admin_delete("/faults").await;
    let out = child.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("vault:secret/ci/deploy#ECI_ACCESS_TOKEN") && stdout.contains("sealed"),
        "{stdout}"
    );
    let named = world.eci_named("ci-deploy").await;
    assert_eq!(named.len(), 2, "old + one replacement");
    assert!(
        named.iter().any(|t| t["id"] == old["id"]),
        "old token alive"
    );
    let replacement = named
        .iter()
        .find(|t| t["id"] != old["id"])
        .cloned()
        .expect("replacement");

    world.bao.unseal().await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = assert_rotated_everywhere(&world, &old).await;
    assert_eq!(
        live["id"], replacement["id"],
        "finished with the same replacement"
    );
    world.assert_no_leak().await;
}

#[tokio::test]
async fn expired_vault_token_logs_in_again_mid_run() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    // AppRole whose tokens live 2 seconds.
    let bao = &world.bao;
    bao.api(
        reqwest::Method::POST,
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await;
    bao.api(
        reqwest::Method::PUT,
        "sys/policies/acl/rotator",
        Some(json!({"policy": "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"list\"] }"})),
    )
    .await;
    bao.api(
        reqwest::Method::POST,
        "auth/approle/role/rotator",
        Some(json!({"token_policies": ["rotator"], "token_ttl": "2s", "token_max_ttl": "2s"})),
    )
    .await;
    let role_id = bao
        .api(
            reqwest::Method::GET,
            "auth/approle/role/rotator/role-id",
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_string();
    let secret_id = bao
        .api(
            reqwest::Method::POST,
            "auth/approle/role/rotator/secret-id",
            None,
        )
        .await["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_string();
    std::fs::write(world.dir.path().join("role-id"), role_id).expect("write");
    std::fs::write(world.dir.path().join("secret-id"), secret_id).expect("write");
    let policy = world.policy_full(
        r#"{ method = "approle", role_id = { file = "role-id" }, secret_id = { file = "secret-id" } }"#,
        "",
        ONE_REPO,
    );
    // The create takes 3 s: the Vault token from the login at start has expired by the write.
    world
        .admin_post(
            "/latency",
            json!({"method": "POST", "path_contains": "/user/user_access_token", "ms": 3000}),
        )
        .await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("logging in again"), "{}", run.stderr);
    assert_rotated_everywhere(&world, &old).await;
    world.assert_no_leak().await;
}

#[tokio::test]
async fn destination_down_for_many_runs_then_one_run_completes() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(2)))
        .await;
    let policy = world.policy(ONE_REPO);
    world
        .admin_post(
            "/faults",
            json!({"method": "PUT", "path_contains": "/actions/secrets/", "status": 502}),
        )
        .await;
    let mut replacement_id: Option<Value> = None;
    for run_no in 0..5 {
        let run = world.run(&policy, &["--rotate-now"]).await;
        assert_eq!(run.code, 1, "run {run_no}: {}", run.all());
        let named = world.eci_named("ci-deploy").await;
        assert_eq!(
            named.len(),
            2,
            "run {run_no}: old + at most one pending replacement"
        );
        assert!(named.iter().any(|t| t["id"] == old["id"]), "old alive");
        let new_id = named
            .iter()
            .find(|t| t["id"] != old["id"])
            .map(|t| t["id"].clone());
        if let Some(prev) = &replacement_id {
            assert_eq!(
                Some(prev),
                new_id.as_ref(),
                "the same replacement every run"
            );
        }
        replacement_id = new_id;
    }
    world.admin_delete("/faults").await;
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = assert_rotated_everywhere(&world, &old).await;
    assert_eq!(Some(&live["id"]), replacement_id.as_ref());
    world.assert_no_leak().await;
}

/// A proxy in front of OpenBao that answers the first `fail` requests whose path contains
/// `path` with 502 (a load balancer's passing hiccup), and forwards everything else.
async fn vault_proxy(upstream: String, path: &'static str, fail: usize) -> String {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response, StatusCode};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let left = Arc::new(AtomicUsize::new(fail));
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (left, http, upstream) = (left.clone(), http.clone(), upstream.clone());
        async move {
            let uri = req.uri().clone();
            if uri.path().contains(path)
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Body::from("<html>502 Bad Gateway</html>"))
                    .expect("response");
            }
            let method =
                reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
            let mut out = http.request(method, format!("{upstream}{uri}"));
            for (k, v) in req.headers() {
                if k != "host" {
                    out = out.header(k.as_str(), v.as_bytes());
                }
            }
            let body = to_bytes(req.into_body(), 16 << 20).await.expect("body");
            let answer = out.body(body).send().await.expect("upstream");
            let status = answer.status().as_u16();
            let bytes = answer.bytes().await.expect("upstream body");
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// One passing 502 on Vault's health check (a proxy's hiccup) is retried like every other
/// Vault call: the rotation goes through (it failed the whole rotation).
#[tokio::test]
async fn a_passing_vault_health_error_is_retried() {
    let world = World::new().await;
    let old = world
        .seed_token("ci-deploy", Some(chrono::Duration::days(3)))
        .await;
    let proxy = vault_proxy(world.bao.addr.clone(), "/v1/sys/health", 1).await;
    let policy = world.policy(ONE_REPO);
    let text = std::fs::read_to_string(&policy).expect("policy").replace(
        &format!("address = \"{}\"", world.bao.addr),
        &format!("address = \"{proxy}\""),
    );
    std::fs::write(&policy, text).expect("policy");
    let run = world.run(&policy, &["--rotate-now"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_rotated_everywhere(&world, &old).await;
    world.assert_no_leak().await;
}
