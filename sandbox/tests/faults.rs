//! Faults, latency, the request log and reset.

mod common;

use std::time::{Duration, Instant};

use common::{in_days, start};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn count_limited_fault_with_retry_after_then_success() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    let (s, f) = env
        .admin_post(
            "/faults",
            json!({"method": "GET", "path_contains": "/user/organization", "status": 429, "count": 2, "retry_after": "1"}),
        )
        .await;
    assert_eq!(s, 201);
    assert!(f["id"].is_string());
    for _ in 0..2 {
        let r = env
            .eci(Method::GET, "/user/organization", &token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], "TOO_MANY_REQUESTS");
        assert_eq!(e["detail"], Value::Null);
    }
    let r = env
        .eci(Method::GET, "/user/organization", &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // A method filter leaves other methods alone.
    let statuses: Vec<u64> = env
        .admin_get("/requests")
        .await
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(env.admin_delete("/requests").await, 204);
    assert_eq!(env.admin_get("/requests").await, json!([]));
}

#[tokio::test]
async fn github_fault_bodies_are_github_shaped_and_custom_bodies_win() {
    let env = start().await;
    env.admin_post("/github/repos", json!({"full_name": "acme/web"}))
        .await;
    let (_, f) = env
        .admin_post("/faults", json!({"path_contains": "/actions/secrets/", "status": 403, "headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"}}))
        .await;
    let r = env
        .gh(Method::GET, "/repos/acme/web/actions/secrets/public-key")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let e: Value = r.json().await.expect("json");
    assert!(
        e["message"]
            .as_str()
            .expect("message")
            .contains("rate limit")
    );
    let id = f["id"].as_str().expect("id");
    assert_eq!(env.admin_delete(&format!("/faults/{id}")).await, 204);

    env.admin_post(
        "/faults",
        json!({"path_contains": "/github/", "status": 403}),
    )
    .await;
    let r = env
        .gh(Method::GET, "/repos/acme/web")
        .send()
        .await
        .expect("send");
    let e: Value = r.json().await.expect("json");
    assert!(
        e["message"]
            .as_str()
            .expect("message")
            .contains("secondary rate limit")
    );
    assert_eq!(env.admin_delete("/faults").await, 204);

    env.admin_post("/faults", json!({"path_contains": "/eci/api", "status": 502, "body": "<html>bad gateway</html>", "count": 1}))
        .await;
    let r = env
        .eci(Method::GET, "/user/organization", "u_x")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().await.expect("text"), "<html>bad gateway</html>");
}

#[tokio::test]
async fn phase_after_applies_the_effect_but_loses_the_reply() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    env.admin_post(
        "/faults",
        json!({"method": "POST", "path_contains": "/user_access_token", "status": 504, "count": 1, "phase": "after"}),
    )
    .await;
    let r = env
        .eci(Method::POST, "/user/user_access_token", &token)
        .json(&json!({"name": "lost", "description": "", "expires": in_days(5)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 504);
    let names: Vec<String> = env
        .admin_get("/eci/tokens")
        .await
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"lost".to_owned()), "{names:?}");

    // phase before: no effect.
    env.admin_post(
        "/faults",
        json!({"method": "POST", "path_contains": "/user_access_token", "status": 503, "count": 1}),
    )
    .await;
    let r = env
        .eci(Method::POST, "/user/user_access_token", &token)
        .json(&json!({"name": "never", "description": "", "expires": in_days(5)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    assert_eq!(
        env.admin_get("/eci/tokens")
            .await
            .as_array()
            .expect("array")
            .len(),
        2
    );
}

#[tokio::test]
async fn hang_holds_until_the_client_gives_up_and_clearing_releases() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    env.admin_post(
        "/faults",
        json!({"path_contains": "/user/organization", "hang": true}),
    )
    .await;
    let r = env
        .eci(Method::GET, "/user/organization", &token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let err = r.expect_err("times out");
    assert!(err.is_timeout(), "{err}");

    // A second hanging request is released (with a 503) once the faults are cleared.
    let http = env.http.clone();
    let url = format!("{}/user/organization", env.sb.eci_base());
    let waiter = tokio::spawn(async move { http.get(url).bearer_auth(token).send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished());
    assert_eq!(env.admin_delete("/faults").await, 204);
    let r = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("released")
        .expect("joined")
        .expect("reply");
    assert_eq!(r.status(), 503);
    let log = env.admin_get("/requests").await;
    assert_eq!(log[0]["status"], 0);
}

#[tokio::test]
async fn stop_releases_hanging_requests() {
    let env = start().await;
    env.admin_post("/faults", json!({"path_contains": "/github", "hang": true}))
        .await;
    let req = env.gh(Method::GET, "/repos/a/b").send();
    let pending = tokio::spawn(req);
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(10), env.sb.stop())
        .await
        .expect("stopping is not held up by a hanging request");
    let _ = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("finished");
}

#[tokio::test]
async fn latency_delays_matching_requests_only() {
    // A long latency, so that "not delayed" holds however loaded the machine is.
    const LATENCY: Duration = Duration::from_secs(3);
    let env = start().await;
    let token = env.eci_admin_token().await;
    let (s, _) = env
        .admin_post(
            "/latency",
            json!({"method": "GET", "path_contains": "/user/organization", "ms": 3000}),
        )
        .await;
    assert_eq!(s, 201);
    let t = Instant::now();
    let r = env
        .eci(Method::GET, "/user/organization", &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= LATENCY, "the matching request waited");
    let other = env
        .eci(Method::GET, "/user/user_access_token", &token)
        .send();
    tokio::time::timeout(LATENCY, other)
        .await
        .expect("another path is not delayed")
        .expect("send");
    assert_eq!(env.admin_delete("/latency").await, 204);
    let cleared = env.eci(Method::GET, "/user/organization", &token).send();
    tokio::time::timeout(LATENCY, cleared)
        .await
        .expect("not delayed once cleared")
        .expect("send");
}

#[tokio::test]
async fn reset_clears_everything_and_bad_admin_input_is_rejected() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    env.admin_post("/github/repos", json!({"full_name": "acme/web"}))
        .await;
    env.admin_post("/faults", json!({"path_contains": "/nothing"}))
        .await;
    let (s, _) = env.admin_post("/reset", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(env.admin_get("/eci/tokens").await, json!([]));
    assert_eq!(env.admin_get("/faults").await, json!([]));
    assert_eq!(env.admin_get("/github/repos").await, json!([]));
    let r = env
        .eci(Method::GET, "/user/organization", &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    let (s, e) = env
        .admin_post("/faults", json!({"pathcontains": "x"}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e["error"].is_string());
    let (s, _) = env
        .admin_post("/faults", json!({"path_contains": "x", "status": 1000}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = env
        .admin_post(
            "/github/secrets/seed",
            json!({"scope": "bogus", "name": "A", "value": "v"}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = env
        .admin_post(
            "/github/secrets/seed",
            json!({"scope": "repo:x/y", "name": "A", "value": "v"}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn hang_after_creates_the_token_but_never_replies() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    env.admin_post(
        "/faults",
        json!({"method": "POST", "path_contains": "/user_access_token", "hang": true, "phase": "after", "count": 1}),
    )
    .await;
    let err = env
        .eci(Method::POST, "/user/user_access_token", &token)
        .header("Idempotency-Key", "lost-1")
        .json(&json!({"name": "ghost", "description": "", "expires": in_days(5)}))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("no reply");
    assert!(err.is_timeout(), "{err}");
    let tokens = env.admin_get("/eci/tokens").await;
    let ghost: Vec<&Value> = tokens
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["name"] == "ghost")
        .collect();
    assert_eq!(ghost.len(), 1);

    // The fault's single use is spent: a retry with the same key gets the same token.
    let again: Value = env
        .eci(Method::POST, "/user/user_access_token", &token)
        .header("Idempotency-Key", "lost-1")
        .json(&json!({"name": "ghost", "description": "", "expires": in_days(5)}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["id"], ghost[0]["id"]);
}
