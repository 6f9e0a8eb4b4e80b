//! The fake ECI API against the shared contract.

mod common;

use chrono::{DateTime, Utc};
use common::{in_days, start};
use reqwest::Method;
use serde_json::{Value, json};

const TOKENS: &str = "/user/user_access_token";

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("time string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn organization_needs_a_live_token() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    let r = env
        .eci(Method::GET, "/user/organization", &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let org: Value = r.json().await.expect("json");
    assert_eq!(org["name"], "sandbox-org");
    assert_eq!(org["ident"], "sandbox");
    assert_eq!(org["allowed_ips"], json!([]));

    for bad in ["u_nope", ""] {
        let r = env
            .eci(Method::GET, "/user/organization", bad)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "UNAUTHENTICATED");
        assert_eq!(body["detail"], Value::Null);
        assert!(!body.to_string().contains("u_nope"));
    }
    let r = env
        .http
        .get(format!("{}/user/organization", env.sb.eci_base()))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    // Expired tokens are rejected.
    let old = env
        .eci_token(json!({"name": "old", "expires": "2020-01-01T00:00:00Z"}))
        .await;
    let r = env
        .eci(
            Method::GET,
            "/user/organization",
            old["token"].as_str().expect("value"),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn create_inherits_roles_and_honours_idempotency_key() {
    let env = start().await;
    let boot = env
        .eci_token(json!({"name": "boot", "expires": in_days(30), "roles": ["Admin", "Developer"]}))
        .await;
    let token = boot["token"].as_str().expect("value");
    let expires = "2099-01-01T09:00:00+09:00";
    let body = json!({"name": "ci-deploy", "description": "deploy", "expires": expires});
    let send = || {
        env.eci(Method::POST, TOKENS, token)
            .header("Idempotency-Key", "k-1")
            .json(&body)
            .send()
    };
    let r = send().await.expect("send");
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.expect("json");
    let value = created["token"].as_str().expect("value");
    assert!(value.starts_with("u_") && value.len() == 45, "{value}");
    assert_eq!(created["roles"], json!(["Admin", "Developer"]));
    assert_eq!(created["owner"]["name"], "ops-bot");
    assert_eq!(created["modified"], Value::Null);
    assert_eq!(instant(&created["expires"]), instant(&json!(expires)));
    assert!(created.get("can_create").is_none());
    assert!(
        created
            .as_object()
            .expect("object")
            .contains_key("last_used")
    );

    let again: Value = send().await.expect("send").json().await.expect("json");
    assert_eq!(again["id"], created["id"]);
    let all = env.admin_get("/eci/tokens").await;
    assert_eq!(all.as_array().expect("array").len(), 2);

    // The new token works and can itself create.
    let r = env
        .eci(Method::GET, "/user/organization", value)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn create_validates_and_checks_permission() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    let cases = [
        json!({"name": "", "description": "", "expires": in_days(1)}),
        json!({"name": "x", "description": ""}),
        json!({"name": "x", "description": "", "expires": null}),
        json!({"name": "x", "description": "", "expires": "tomorrow"}),
        json!({"name": "x", "description": "", "expires": "2020-01-01T00:00:00Z"}),
        json!("not an object"),
    ];
    for body in cases {
        let r = env
            .eci(Method::POST, TOKENS, &token)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], "INVALID_ARGUMENT", "{body}");
        assert!(e["message"].is_string());
    }

    let weak = env
        .eci_token(json!({"name": "weak", "expires": in_days(1), "can_create": false}))
        .await;
    let r = env
        .eci(Method::POST, TOKENS, weak["token"].as_str().expect("value"))
        .json(&json!({"name": "x", "description": "", "expires": in_days(1)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["code"], "PERMISSION_DENIED");
    assert!(
        e["message"]
            .as_str()
            .expect("message")
            .contains("User.UserAccessToken.CREATE")
    );
}

#[tokio::test]
async fn list_pages_oldest_first_and_filters_with_ilike() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    for i in 0..7 {
        let name = if i % 2 == 0 {
            format!("ci-deploy-{i}")
        } else {
            format!("other_{i}")
        };
        let r = env
            .eci(Method::POST, TOKENS, &token)
            .json(&json!({"name": name, "description": "", "expires": in_days(10)}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let page: Vec<Value> = env
            .eci(
                Method::GET,
                &format!("{TOKENS}?skip={skip}&count=3"),
                &token,
            )
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let n = page.len();
        seen.extend(page);
        if n < 3 {
            break;
        }
        skip += n;
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0]["name"], "bootstrap");
    let times: Vec<DateTime<Utc>> = seen.iter().map(|t| instant(&t["created"])).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(
        seen.iter()
            .all(|t| t["token"].as_str().is_some_and(|v| v.starts_with("u_")))
    );

    // Several renderings of time appear.
    let rendered: Vec<&str> = seen.iter().filter_map(|t| t["created"].as_str()).collect();
    assert!(rendered.iter().any(|s| s.ends_with('Z')));
    assert!(rendered.iter().any(|s| s.ends_with("+09:00")));
    assert!(rendered.iter().any(|s| s.contains('.')));
    assert!(rendered.iter().any(|s| !s.contains('.')));

    let names = |q: &str| {
        let env = &env;
        let token = token.clone();
        let q = q.to_owned();
        async move {
            let page: Vec<Value> = env
                .eci(
                    Method::GET,
                    &format!("{TOKENS}?filter_name_ilike={}", encode(&q)),
                    &token,
                )
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            page.iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("CI-DEPLOY-2").await, ["ci-deploy-2"]);
    assert_eq!(names("ci_deploy_2").await, ["ci-deploy-2"]);
    assert_eq!(names("ci-deploy").await, Vec::<String>::new());
    assert_eq!(names("%deploy%").await.len(), 4);
    assert_eq!(names("other\\_1").await, ["other_1"]);

    for bad in ["count=0", "count=101", "count=x", "skip=-1"] {
        let r = env
            .eci(Method::GET, &format!("{TOKENS}?{bad}"), &token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn get_and_delete_are_immediate() {
    let env = start().await;
    let token = env.eci_admin_token().await;
    let victim = env
        .eci_token(json!({"name": "victim", "expires": in_days(3)}))
        .await;
    let id = victim["id"].as_str().expect("id");
    let value = victim["token"].as_str().expect("value");

    let one: Value = env
        .eci(Method::GET, &format!("{TOKENS}/{id}"), &token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(one["name"], "victim");
    assert_eq!(instant(&one["expires"]), instant(&victim["expires"]));

    let r = env
        .eci(Method::DELETE, &format!("{TOKENS}/{id}"), &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body, json!({"id": id, "status": "deleted"}));

    let r = env
        .eci(Method::GET, "/user/organization", value)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    for m in [Method::GET, Method::DELETE] {
        let r = env
            .eci(m, &format!("{TOKENS}/{id}"), &token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], "NOT_FOUND");
    }
    let r = env
        .eci(Method::GET, &format!("{TOKENS}/not-a-uuid"), &token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(env.admin_get("/eci/deleted").await, json!([id]));
}

#[tokio::test]
async fn admin_can_move_an_expiry() {
    let env = start().await;
    let t = env
        .eci_token(json!({"name": "soon", "expires": in_days(1)}))
        .await;
    let id = t["id"].as_str().expect("id");
    let r = env
        .http
        .patch(format!("{}/eci/tokens/{id}", env.sb.admin()))
        .json(&json!({"expires": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = env
        .eci(
            Method::GET,
            "/user/organization",
            t["token"].as_str().expect("value"),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
}
