//! The fake GitHub secrets API: validation, scopes, admin inspection.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Env, GH, seal, start};
use crypto_box::SecretKey;
use reqwest::Method;
use serde_json::{Value, json};

async fn world(env: &Env) -> u64 {
    let (s, repo) = env
        .admin_post("/github/repos", json!({"full_name": "acme/web"}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = env
        .admin_post(
            "/github/environments",
            json!({"repo": "acme/web", "environment": "production"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = env.admin_post("/github/orgs", json!({"org": "acme"})).await;
    assert_eq!(s, 201);
    repo["id"].as_u64().expect("repo id")
}

async fn secrets_of(env: &Env, scope: &str) -> Vec<Value> {
    let all = env
        .admin_get(&format!("/github/secrets?scope={scope}"))
        .await;
    all.as_array().expect("array").clone()
}

const REPO: &str = "/repos/acme/web/actions/secrets";

#[tokio::test]
async fn put_creates_then_updates_and_admin_sees_the_value() {
    let env = start().await;
    world(&env).await;
    assert_eq!(
        env.put_secret(REPO, "eci_token", b"u_first", json!({}))
            .await,
        201
    );
    assert_eq!(
        env.put_secret(REPO, "ECI_TOKEN", b"u_second", json!({}))
            .await,
        204
    );

    let s = secrets_of(&env, "repo:acme/web").await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["name"], "ECI_TOKEN");
    assert_eq!(s[0]["value"], "u_second");
    assert_eq!(s[0]["scope"], "repo:acme/web");

    // The stored ciphertext opens with the scope's own private key.
    let k = env
        .admin_get("/github/private-key?scope=repo:acme/web")
        .await;
    let sk: [u8; 32] = STANDARD
        .decode(k["private_key"].as_str().expect("key"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let ct = STANDARD
        .decode(s[0]["encrypted_value"].as_str().expect("ct"))
        .expect("base64");
    assert_eq!(SecretKey::from(sk).unseal(&ct).expect("opens"), b"u_second");

    let one: Value = env
        .gh(Method::GET, &format!("{REPO}/eci_token"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(one["name"], "ECI_TOKEN");
    let updated = one["updated_at"].as_str().expect("updated_at");
    assert!(updated.ends_with('Z') && updated.len() == 20, "{updated}");

    let r = env
        .gh(Method::DELETE, &format!("{REPO}/ECI_TOKEN"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let r = env
        .gh(Method::DELETE, &format!("{REPO}/ECI_TOKEN"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn put_rejects_bad_requests_with_422() {
    let env = start().await;
    world(&env).await;
    let (key_id, key) = env.public_key(REPO).await;
    let put = |name: &str, body: Value| {
        env.gh(Method::PUT, &format!("{REPO}/{name}"))
            .json(&body)
            .send()
    };
    let good = seal(&key, b"v");
    let other_key = STANDARD.encode(SecretKey::from([7u8; 32]).public_key().as_bytes());
    let cases = [
        ("OK_NAME", json!({"encrypted_value": good, "key_id": "123"})),
        (
            "OK_NAME",
            json!({"encrypted_value": "!!not base64!!", "key_id": key_id}),
        ),
        (
            "OK_NAME",
            json!({"encrypted_value": STANDARD.encode(b"garbage garbage garbage garbage garbage garbage garbage"), "key_id": key_id}),
        ),
        (
            "OK_NAME",
            json!({"encrypted_value": seal(&other_key, b"v"), "key_id": key_id}),
        ),
        ("OK_NAME", json!({"key_id": key_id})),
        ("1BAD", json!({"encrypted_value": good, "key_id": key_id})),
        (
            "GITHUB_X",
            json!({"encrypted_value": good, "key_id": key_id}),
        ),
        (
            "BAD-NAME",
            json!({"encrypted_value": good, "key_id": key_id}),
        ),
        (
            "BIG",
            json!({"encrypted_value": seal(&key, &vec![b'a'; 48 * 1024 + 1]), "key_id": key_id}),
        ),
    ];
    for (name, body) in cases {
        let r = put(name, body).await.expect("send");
        assert_eq!(r.status(), 422, "{name}");
        let e: Value = r.json().await.expect("json");
        assert!(e["message"].is_string());
        assert!(e["errors"].is_array());
    }
    // Exactly 48 KB is fine.
    let r = put(
        "BIG",
        json!({"encrypted_value": seal(&key, &vec![b'a'; 48 * 1024]), "key_id": key_id}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 201);
    assert!(secrets_of(&env, "repo:acme/web").await.len() == 1);
}

#[tokio::test]
async fn auth_and_unknown_things() {
    let env = start().await;
    world(&env).await;
    for auth in ["Bearer nope", "token nope", ""] {
        let r = env
            .http
            .get(format!("{}{REPO}/public-key", env.sb.github_api()))
            .header("authorization", auth)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["message"], "Bad credentials");
    }
    let r = env
        .http
        .get(format!("{}{REPO}/public-key", env.sb.github_api()))
        .header("authorization", format!("token {GH}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    for path in [
        "/repos/acme/nope/actions/secrets/public-key",
        "/repos/acme/web/environments/staging/secrets/public-key",
        "/orgs/nope/actions/secrets",
        "/repositories/1/environments/production/secrets",
        "/repos/acme/web/actions/secrets/MISSING",
        "/repos/acme/nope",
    ] {
        let r = env.gh(Method::GET, path).send().await.expect("send");
        assert_eq!(r.status(), 404, "{path}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["message"], "Not Found");
    }

    // Another credential can be added.
    env.admin_post("/github/tokens", json!({"token": "ghs_app"}))
        .await;
    let r = env
        .http
        .get(format!("{}{REPO}", env.sb.github_api()))
        .bearer_auth("ghs_app")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_scope_has_its_own_key_and_both_environment_paths_work() {
    let env = start().await;
    let repo_id = world(&env).await;
    let bases = [
        REPO.to_owned(),
        "/repos/acme/web/dependabot/secrets".to_owned(),
        "/repos/acme/web/environments/production/secrets".to_owned(),
        "/orgs/acme/actions/secrets".to_owned(),
        "/orgs/acme/dependabot/secrets".to_owned(),
    ];
    let mut ids = Vec::new();
    for b in &bases {
        ids.push(env.public_key(b).await.0);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|i| i.chars().all(|c| c.is_ascii_digit())));

    let legacy = format!("/repositories/{repo_id}/environments/production/secrets");
    assert_eq!(
        env.public_key(&legacy).await,
        env.public_key(&bases[2]).await
    );
    assert_eq!(
        env.put_secret(&legacy, "ECI_TOKEN", b"env-1", json!({}))
            .await,
        201
    );
    assert_eq!(
        env.put_secret(&bases[2], "ECI_TOKEN", b"env-2", json!({}))
            .await,
        204
    );
    assert_eq!(
        env.put_secret(&bases[1], "ECI_TOKEN", b"dep", json!({}))
            .await,
        201
    );
    let env_secrets = secrets_of(&env, "env:acme/web:production").await;
    assert_eq!(env_secrets[0]["value"], "env-2");
    assert_eq!(
        secrets_of(&env, "repo-dependabot:acme/web").await[0]["value"],
        "dep"
    );
    assert!(secrets_of(&env, "repo:acme/web").await.is_empty());
}

#[tokio::test]
async fn org_secrets_need_visibility() {
    let env = start().await;
    let repo_id = world(&env).await;
    let org = "/orgs/acme/actions/secrets";
    assert_eq!(env.put_secret(org, "ECI_TOKEN", b"v", json!({})).await, 422);
    assert_eq!(
        env.put_secret(org, "ECI_TOKEN", b"v", json!({"visibility": "public"}))
            .await,
        422
    );
    assert_eq!(
        env.put_secret(
            org,
            "ECI_TOKEN",
            b"v",
            json!({"visibility": "selected", "selected_repository_ids": [repo_id]})
        )
        .await,
        201
    );
    let one: Value = env
        .gh(Method::GET, &format!("{org}/ECI_TOKEN"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(one["visibility"], "selected");
    let url = one["selected_repositories_url"].as_str().expect("url");
    assert!(url.ends_with("/github/orgs/acme/actions/secrets/ECI_TOKEN/repositories"));
    let repos: Value = env
        .http
        .get(url)
        .bearer_auth(GH)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(repos["total_count"], 1);
    assert_eq!(repos["repositories"][0]["full_name"], "acme/web");

    assert_eq!(
        env.put_secret(org, "ECI_TOKEN", b"w", json!({"visibility": "all"}))
            .await,
        204
    );
    let s = secrets_of(&env, "org:acme").await;
    assert_eq!(s[0]["visibility"], "all");
    assert_eq!(s[0]["value"], "w");
}

#[tokio::test]
async fn list_paginates_with_link_headers_and_seed_keeps_others() {
    let env = start().await;
    world(&env).await;
    for i in 0..5 {
        let (s, _) = env
            .admin_post(
                "/github/secrets/seed",
                json!({"scope": "repo:acme/web", "name": format!("S{i}"), "value": format!("v{i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let r = env
        .gh(Method::GET, &format!("{REPO}?per_page=2&page=2"))
        .send()
        .await
        .expect("send");
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(link.contains("page=3>; rel=\"next\""), "{link}");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total_count"], 5);
    let names: Vec<&str> = page["secrets"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["S2", "S3"]);

    // Seeded secrets decrypt like client-sent ones, and a PUT leaves the others alone.
    assert_eq!(env.put_secret(REPO, "S1", b"new", json!({})).await, 204);
    let all = secrets_of(&env, "repo:acme/web").await;
    let value = |n: &str| {
        all.iter()
            .find(|s| s["name"] == n)
            .map(|s| s["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(value("S0"), "v0");
    assert_eq!(value("S1"), "new");
    assert_eq!(value("S4"), "v4");
}

#[tokio::test]
async fn rotated_key_rejects_the_old_key_id() {
    let env = start().await;
    world(&env).await;
    let (old_id, old_key) = env.public_key(REPO).await;
    let (s, rotated) = env
        .admin_post("/github/rotate-key", json!({"scope": "repo:acme/web"}))
        .await;
    assert_eq!(s, 200);
    assert_ne!(rotated["key_id"], old_id.as_str());
    let r = env
        .gh(Method::PUT, &format!("{REPO}/ECI_TOKEN"))
        .json(&json!({"encrypted_value": seal(&old_key, b"v"), "key_id": old_id}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    assert_eq!(
        env.put_secret(REPO, "ECI_TOKEN", b"v", json!({})).await,
        201
    );
}

#[tokio::test]
async fn octocrab_models_deserialize() {
    use octocrab::models::orgs::secrets::{CreateOrganizationSecret, Visibility};
    use octocrab::models::repos::secrets::{
        CreateRepositorySecret, CreateRepositorySecretResponse,
    };
    let env = start().await;
    let repo_id = world(&env).await;
    let crab = octocrab::Octocrab::builder()
        .base_uri(env.sb.github_api())
        .expect("base uri")
        .personal_token(GH.to_owned())
        .build()
        .expect("octocrab");

    let repo = crab.repos("acme", "web").get().await.expect("repository");
    assert_eq!(repo.id.0, repo_id);
    assert_eq!(repo.full_name.as_deref(), Some("acme/web"));

    let repo_handler = crab.repos("acme", "web");
    let secrets = repo_handler.secrets();
    let pk = secrets.get_public_key().await.expect("public key");
    let enc = seal(&pk.key, b"hello");
    let body = CreateRepositorySecret {
        encrypted_value: &enc,
        key_id: &pk.key_id,
    };
    let r = secrets
        .create_or_update_secret("ECI_TOKEN", &body)
        .await
        .expect("put");
    assert_eq!(r, CreateRepositorySecretResponse::Created);
    let r = secrets
        .create_or_update_secret("ECI_TOKEN", &body)
        .await
        .expect("put");
    assert_eq!(r, CreateRepositorySecretResponse::Updated);
    let listed = secrets.get_secrets().await.expect("list");
    assert_eq!(listed.total_count, 1);
    secrets.get_secret("ECI_TOKEN").await.expect("get");

    let envs = crab
        .actions()
        .environment_secrets(repo_id.into(), "production");
    let pk = envs.get_public_key().await.expect("env key");
    let enc = seal(&pk.key, b"env");
    let body = octocrab::models::actions::CreateEnvironmentSecret {
        encrypted_value: &enc,
        key_id: &pk.key_id,
    };
    envs.create_or_update("ECI_TOKEN", &body)
        .await
        .expect("env put");
    assert_eq!(envs.list().await.expect("env list").total_count, 1);
    envs.get("ECI_TOKEN").await.expect("env get");
    crab.repos("acme", "web")
        .environments()
        .get("production")
        .await
        .expect("environment");

    let dep = crab.repos("acme", "web").dependabot().secrets();
    let pk = dep.get_public_key().await.expect("dependabot key");
    let enc = seal(&pk.key, b"dep");
    let body = CreateRepositorySecret {
        encrypted_value: &enc,
        key_id: &pk.key_id,
    };
    dep.create_or_update("ECI_TOKEN", &body)
        .await
        .expect("dependabot put");
    assert_eq!(
        dep.list()
            .send()
            .await
            .expect("dependabot list")
            .items
            .len(),
        1
    );

    let org = crab.orgs("acme");
    let org_secrets = org.secrets();
    let pk = org_secrets.get_public_key().await.expect("org key");
    let enc = seal(&pk.key, b"org");
    let ids = [u32::try_from(repo_id).expect("small id")];
    let body = CreateOrganizationSecret {
        encrypted_value: &enc,
        key_id: &pk.key_id,
        visibility: Visibility::Selected,
        selected_repository_ids: Some(&ids),
    };
    org_secrets
        .create_or_update_secret("ECI_TOKEN", &body)
        .await
        .expect("org put");
    let got = org_secrets.get_secret("ECI_TOKEN").await.expect("org get");
    assert_eq!(got.visibility, Visibility::Selected);
    assert!(got.selected_repositories_url.is_some());
    assert_eq!(
        org_secrets
            .get_secrets()
            .await
            .expect("org list")
            .total_count,
        1
    );
    let selected = org_secrets
        .list_selected_repositories("ECI_TOKEN")
        .await
        .expect("selected");
    assert_eq!(selected.total_count, 1);
    org.get().await.expect("organization");

    let dep = org.dependabot().secrets();
    let pk = dep.get_public_key().await.expect("org dependabot key");
    let enc = seal(&pk.key, b"odep");
    let body = CreateOrganizationSecret {
        encrypted_value: &enc,
        key_id: &pk.key_id,
        visibility: Visibility::All,
        selected_repository_ids: None,
    };
    dep.create_or_update("ECI_TOKEN", &body)
        .await
        .expect("org dependabot put");
    dep.get("ECI_TOKEN").await.expect("org dependabot get");
    assert_eq!(
        dep.list()
            .send()
            .await
            .expect("org dependabot list")
            .items
            .len(),
        1
    );

    // GitHub errors map to octocrab's GitHub error.
    let err = crab.repos("acme", "nope").get().await.expect_err("404");
    assert!(matches!(err, octocrab::Error::GitHub { .. }), "{err:?}");
    let bad = env
        .admin_get("/github/secrets")
        .await
        .as_array()
        .expect("array")
        .len();
    assert_eq!(bad, 5);
}
