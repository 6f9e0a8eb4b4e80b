//! Helpers shared by the sandbox's integration tests.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::PublicKey;
use crypto_box::aead::OsRng;
use eci_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

pub const GH: &str = "ghp_sandbox";

pub struct Env {
    pub sb: Sandbox,
    pub http: reqwest::Client,
}

pub async fn start() -> Env {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    Env { sb, http }
}

impl Env {
    /// POST JSON to an admin path; returns (status, body).
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.sb.admin()))
            .json(&body)
            .send()
            .await
            .expect("admin post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sb.admin()))
            .send()
            .await
            .expect("admin get")
            .json()
            .await
            .expect("admin json")
    }

    pub async fn admin_delete(&self, path: &str) -> u16 {
        self.http
            .delete(format!("{}{path}", self.sb.admin()))
            .send()
            .await
            .expect("admin delete")
            .status()
            .as_u16()
    }

    /// Seeds an ECI token via the admin API and returns its JSON.
    pub async fn eci_token(&self, body: Value) -> Value {
        let (status, t) = self.admin_post("/eci/tokens", body).await;
        assert_eq!(status, 201, "{t}");
        t
    }

    /// A token that may create tokens, valid for a year.
    pub async fn eci_admin_token(&self) -> String {
        let t = self
            .eci_token(json!({"name": "bootstrap", "expires": in_days(365)}))
            .await;
        t["token"].as_str().expect("value").to_owned()
    }

    pub fn eci(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sb.eci_base()))
            .bearer_auth(token)
    }

    pub fn gh(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sb.github_api()))
            .header("authorization", format!("Bearer {GH}"))
            .header("accept", "application/vnd.github+json")
    }

    /// `GET .../public-key` under a GitHub path; returns (key_id, key).
    pub async fn public_key(&self, base: &str) -> (String, String) {
        let k: Value = self
            .gh(reqwest::Method::GET, &format!("{base}/public-key"))
            .send()
            .await
            .expect("public key")
            .json()
            .await
            .expect("json");
        (
            k["key_id"].as_str().expect("key_id").to_owned(),
            k["key"].as_str().expect("key").to_owned(),
        )
    }

    /// PUTs a sealed secret like a client would; returns the status.
    pub async fn put_secret(&self, base: &str, name: &str, value: &[u8], extra: Value) -> u16 {
        let (key_id, key) = self.public_key(base).await;
        let mut body = json!({"encrypted_value": seal(&key, value), "key_id": key_id});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.gh(reqwest::Method::PUT, &format!("{base}/{name}"))
            .json(&body)
            .send()
            .await
            .expect("put")
            .status()
            .as_u16()
    }
}

/// Seals `value` for a base64 public key, as GitHub clients do.
pub fn seal(public_key_b64: &str, value: &[u8]) -> String {
    let raw = STANDARD.decode(public_key_b64).expect("base64 key");
    let bytes: [u8; 32] = raw.try_into().expect("32-byte key");
    let sealed = PublicKey::from(bytes)
        .seal(&mut OsRng, value)
        .expect("seal");
    STANDARD.encode(sealed)
}

pub fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}
