//! Fake GitHub App auth: app registration, the JWT checks, installation tokens (accepted until
//! they expire or are revoked), and octocrab's App client against it.
//!
//! Keys are made with `openssl genrsa`. Failure messages never print a key, JWT or token.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, start};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// An RSA key pair in PEM: (private PKCS#1 as GitHub hands it out, public SPKI).
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

struct TestApp {
    id: u64,
    installation_id: u64,
    private_pem: String,
}

async fn register(env: &Env, ttl_secs: Option<u64>) -> TestApp {
    let (private_pem, public_pem) = rsa_pair();
    let mut body = json!({"public_key_pem": public_pem});
    if let Some(t) = ttl_secs {
        body["installation_token_ttl_secs"] = t.into();
    }
    let (status, reply) = env.admin_post("/github/apps", body).await;
    assert_eq!(status, 201, "{reply}");
    TestApp {
        id: reply["app_id"].as_u64().expect("app_id"),
        installation_id: reply["installation_id"].as_u64().expect("installation_id"),
        private_pem,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JWT over `claims`, RS256 with `pem`.
fn jwt(pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("private key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("sign")
}

/// What octocrab sends: issued a minute ago, expiring in nine minutes, `iss` a number.
fn good_claims(app: &TestApp) -> Value {
    json!({"iss": app.id, "iat": now() - 60, "exp": now() + 540})
}

/// `POST /app/installations/{id}/access_tokens` with `Authorization: Bearer <auth>`.
async fn exchange(env: &Env, installation_id: u64, auth: &str) -> (u16, Value) {
    let r = env
        .http
        .post(format!(
            "{}/app/installations/{installation_id}/access_tokens",
            env.sb.github_api()
        ))
        .header("authorization", format!("Bearer {auth}"))
        .header("accept", "application/vnd.github+json")
        .json(&json!({}))
        .send()
        .await
        .expect("exchange");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Status of `GET /repos/acme/web/actions/secrets/public-key` with `Authorization: token <t>`.
async fn key_status(env: &Env, token: &str) -> u16 {
    env.http
        .get(format!(
            "{}/repos/acme/web/actions/secrets/public-key",
            env.sb.github_api()
        ))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .expect("public key")
        .status()
        .as_u16()
}

async fn repo(env: &Env) {
    let (s, _) = env
        .admin_post("/github/repos", json!({"full_name": "acme/web"}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = env.admin_post("/github/orgs", json!({"org": "acme"})).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_signed_jwt_buys_an_installation_token_the_secrets_api_accepts() {
    let env = start().await;
    repo(&env).await;
    let app = register(&env, None).await;
    let token_jwt = jwt(&app.private_pem, &good_claims(&app));

    // The JWT itself is not a credential for the secrets API.
    assert_eq!(key_status(&env, &token_jwt).await, 401);

    let (status, reply) = exchange(&env, app.installation_id, &token_jwt).await;
    assert_eq!(status, 201, "exchange refused: {}", reply["message"]);
    let token = reply["token"].as_str().expect("token").to_owned();
    assert!(
        token.starts_with("ghs_") && token.len() == 40,
        "GitHub's token shape"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(reply["expires_at"].as_str().expect("expires_at"))
            .expect("RFC 3339 expires_at");
    let left = expires.timestamp() - now();
    assert!(
        (3590..=3600).contains(&left),
        "an hour by default, got {left}s"
    );
    assert_eq!(reply["repository_selection"], "all");
    assert_eq!(reply["permissions"]["secrets"], "write");

    assert_eq!(key_status(&env, &token).await, 200);

    // The admin API lists it; the request log shows the exchange like any other call.
    let apps = env.admin_get("/github/apps").await;
    assert_eq!(apps[0]["app_id"], app.id);
    assert_eq!(apps[0]["tokens"].as_array().map(Vec::len), Some(1));
    assert!(apps[0]["tokens"][0]["token"] == token.as_str());
    let log = env.admin_get("/requests").await;
    let exchanges: Vec<&Value> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| {
            e["method"] == "POST"
                && e["path"]
                    == format!(
                        "/github/app/installations/{}/access_tokens",
                        app.installation_id
                    )
        })
        .collect();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0]["status"], 201);
}

#[tokio::test]
async fn jwts_are_checked_as_github_checks_them() {
    let env = start().await;
    repo(&env).await;
    let app = register(&env, None).await;
    let other = register(&env, None).await;
    let inst = app.installation_id;
    let pem = &app.private_pem;
    let message = |v: &Value| v["message"].as_str().unwrap_or_default().to_owned();

    // `iss` as a string of digits is fine too.
    let claims = json!({"iss": app.id.to_string(), "iat": now() - 30, "exp": now() + 300});
    assert_eq!(exchange(&env, inst, &jwt(pem, &claims)).await.0, 201);

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "signed with another app's key",
            jwt(&other.private_pem, &good_claims(&app)),
            401,
            "could not be decoded",
        ),
        (
            "expired",
            jwt(
                pem,
                &json!({"iss": app.id, "iat": now() - 600, "exp": now() - 10}),
            ),
            401,
            "'exp'",
        ),
        (
            "lives longer than ten minutes",
            jwt(
                pem,
                &json!({"iss": app.id, "iat": now() - 60, "exp": now() + 600}),
            ),
            401,
            "too far in the future",
        ),
        (
            "no iat",
            jwt(pem, &json!({"iss": app.id, "exp": now() + 300})),
            401,
            "'iat'",
        ),
        (
            "iat in the future",
            jwt(
                pem,
                &json!({"iss": app.id, "iat": now() + 300, "exp": now() + 500}),
            ),
            401,
            "'iat'",
        ),
        (
            "no exp",
            jwt(pem, &json!({"iss": app.id, "iat": now() - 60})),
            401,
            "'exp'",
        ),
        (
            "unknown app",
            jwt(
                pem,
                &json!({"iss": 1, "iat": now() - 60, "exp": now() + 300}),
            ),
            401,
            "Integration not found",
        ),
        (
            "iss not a number",
            jwt(
                pem,
                &json!({"iss": "acme", "iat": now() - 60, "exp": now() + 300}),
            ),
            401,
            "'iss'",
        ),
        (
            "HS256 instead of RS256",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good_claims(&app),
                &EncodingKey::from_secret(b"secret"),
            )
            .expect("sign"),
            401,
            "could not be decoded",
        ),
        (
            "not a JWT (a personal token)",
            common::GH.to_owned(),
            401,
            "could not be decoded",
        ),
        (
            "another app's installation",
            jwt(pem, &good_claims(&app)),
            404,
            "Not Found",
        ),
    ];
    for (what, token, want, says) in cases {
        let installation = if what == "another app's installation" {
            other.installation_id
        } else {
            inst
        };
        let (status, reply) = exchange(&env, installation, &token).await;
        assert_eq!(status, want, "{what}: {}", message(&reply));
        assert!(
            message(&reply).contains(says),
            "{what}: {}",
            message(&reply)
        );
    }

    // No Authorization header at all.
    let r = env
        .http
        .post(format!(
            "{}/app/installations/{inst}/access_tokens",
            env.sb.github_api()
        ))
        .send()
        .await
        .expect("exchange");
    assert_eq!(r.status().as_u16(), 401);

    // An installation token is not a JWT: it cannot buy another.
    let (_, reply) = exchange(&env, inst, &jwt(pem, &good_claims(&app))).await;
    let token = reply["token"].as_str().expect("token").to_owned();
    assert_eq!(exchange(&env, inst, &token).await.0, 401);
}

#[tokio::test]
async fn installation_tokens_stop_working_when_they_expire_or_are_revoked() {
    let env = start().await;
    repo(&env).await;
    let app = register(&env, Some(2)).await;
    let auth = jwt(&app.private_pem, &good_claims(&app));
    let (_, reply) = exchange(&env, app.installation_id, &auth).await;
    let short = reply["token"].as_str().expect("token").to_owned();
    assert_eq!(key_status(&env, &short).await, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(key_status(&env, &short).await, 401, "expired token refused");

    let (s, v) = env
        .http
        .patch(format!("{}/github/apps/{}", env.sb.admin(), app.id))
        .json(&json!({"installation_token_ttl_secs": 3600}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("patch");
    assert_eq!(s, 200, "{:?}", v.text().await);
    let (_, reply) = exchange(&env, app.installation_id, &auth).await;
    let long = reply["token"].as_str().expect("token").to_owned();
    assert_eq!(key_status(&env, &long).await, 200);
    let (s, v) = env
        .admin_post(&format!("/github/apps/{}/revoke-tokens", app.id), json!({}))
        .await;
    assert_eq!((s, v["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(key_status(&env, &long).await, 401, "revoked token refused");

    // A reset forgets apps and their tokens.
    let (s, _) = env.admin_post("/reset", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(env.admin_get("/github/apps").await, json!([]));
    assert_eq!(exchange(&env, app.installation_id, &auth).await.0, 401);
}

#[tokio::test]
async fn bad_registrations_are_refused() {
    let env = start().await;
    let (_, public_pem) = rsa_pair();
    for (body, says) in [
        (json!({"public_key_pem": "not a key"}), "public_key_pem"),
        (
            json!({"public_key_pem": public_pem, "installation_token_ttl_secs": 0}),
            "installation_token_ttl_secs",
        ),
        (
            json!({"public_key_pem": public_pem, "installation_token_ttl_secs": 86_401}),
            "installation_token_ttl_secs",
        ),
        (
            json!({"public_key_pem": public_pem, "colour": "red"}),
            "colour",
        ),
    ] {
        let (s, v) = env.admin_post("/github/apps", body).await;
        assert_eq!(s, if says == "colour" { 422 } else { 400 }, "{v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(says),
            "{v}"
        );
    }
    let (s, _) = env
        .admin_post("/github/apps/999/revoke-tokens", json!({}))
        .await;
    assert_eq!(s, 404);
}

/// octocrab's App client: `GET /app`, `GET /app/installations/{id}`, and an installation client
/// that exchanges tokens by itself, again when they are about to expire or were revoked.
#[tokio::test]
async fn octocrab_app_client_works_and_gets_new_tokens_when_needed() {
    let env = start().await;
    repo(&env).await;
    let app = register(&env, None).await;
    let key = octocrab::EncodingKey::from_rsa_pem(app.private_pem.as_bytes()).expect("key");
    let crab = octocrab::Octocrab::builder()
        .base_uri(env.sb.github_api())
        .expect("base uri")
        .app(app.id.into(), key)
        .build()
        .expect("octocrab");

    let me = crab.current().app().await.expect("GET /app");
    assert_eq!(me.id.0, app.id);
    let inst = crab
        .apps()
        .installation(app.installation_id)
        .await
        .expect("GET /app/installations/{id}");
    assert_eq!(inst.id.0, app.installation_id);
    assert_eq!(inst.account.login, "acme");

    let installation = crab
        .installation(app.installation_id.into())
        .expect("installation client");
    get_key(&installation)
        .await
        .expect("first call exchanges a token");
    get_key(&installation).await.expect("second call reuses it");
    assert_eq!(exchanges(&env).await, 1, "cached");

    // Revoked behind its back: the 401 makes octocrab exchange again and retry once.
    let (s, _) = env
        .admin_post(&format!("/github/apps/{}/revoke-tokens", app.id), json!({}))
        .await;
    assert_eq!(s, 200);
    get_key(&installation)
        .await
        .expect("works again after a revocation");
    assert_eq!(exchanges(&env).await, 2);
    assert_eq!(refused(&env).await, 1);

    // Tokens that expire within octocrab's 30 s margin are replaced before use, so every call
    // works though each token lives two seconds.
    let r = env
        .http
        .patch(format!("{}/github/apps/{}", env.sb.admin(), app.id))
        .json(&json!({"installation_token_ttl_secs": 2}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status().as_u16(), 200);
    let short_lived = crab
        .installation(app.installation_id.into())
        .expect("installation client");
    for _ in 0..3 {
        get_key(&short_lived).await.expect("works across expiries");
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(
        refused(&env).await,
        1,
        "only the revoked token was ever refused"
    );
    assert_eq!(
        exchanges(&env).await,
        5,
        "a fresh token for each short-lived call"
    );
}

async fn get_key(crab: &octocrab::Octocrab) -> octocrab::Result<()> {
    crab.repos("acme", "web")
        .secrets()
        .get_public_key()
        .await
        .map(|_| ())
}

/// Entries of the request log matching `f`.
async fn count_log(env: &Env, f: impl Fn(&Value) -> bool) -> usize {
    let log = env.admin_get("/requests").await;
    log.as_array().expect("log").iter().filter(|e| f(e)).count()
}

async fn exchanges(env: &Env) -> usize {
    count_log(env, |e| {
        e["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/access_tokens"))
    })
    .await
}

/// Secrets API calls refused with 401.
async fn refused(env: &Env) -> usize {
    count_log(env, |e| {
        e["path"].as_str().is_some_and(|p| p.contains("/secrets")) && e["status"] == 401
    })
    .await
}
