//! Vault KV v2 destination: merge the new value into a secret with check-and-set.

use super::{DestError, Receipt, WriteMeta};
use crate::policy::{VaultAuth, VaultDestination, VaultSection};
use crate::retry::Backoff;
use crate::secret::SecretValue;
use rand::Rng;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use tokio::sync::{Mutex, RwLock};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

mod renew;
pub use renew::TokenRenewal;

/// How many times a check-and-set conflict is re-read and retried before giving up.
const CAS_ATTEMPTS: u32 = 10;

/// A logged-in Vault client, shared by every Vault destination of a run.
pub struct Vault {
    client: RwLock<VaultClient>,
    auth: VaultAuth,
    default_mount: String,
    backoff: Backoff,
    /// `mount/path`s already proved to be KV version 2 and reachable with this token.
    preflighted: Mutex<HashSet<String>>,
    /// Requests go to this namespace (where `sys/health` is not served).
    namespaced: bool,
}

impl Vault {
    /// Build the client and log in with the policy's auth method. A token from the policy
    /// (`method = "token"`) is renewed here when less than half its lifetime is left.
    pub async fn connect(section: &VaultSection) -> Result<Self, DestError> {
        let vault = Self::build(section)?;
        vault.login().await?;
        if matches!(vault.auth, VaultAuth::Token { .. }) {
            // A login with a given token sends nothing: prove the server answers and is
            // unsealed before any replacement is made for a Vault destination.
            vault.check_reachable().await?;
            vault.renew_at_connect().await;
        }
        Ok(vault)
    }

    /// The client, not yet logged in (the namespace, if any, goes on every request).
    fn build(section: &VaultSection) -> Result<Self, DestError> {
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(section.address.as_str())
            .timeout(Some(section.timeout))
            .token("");
        if let Some(ns) = &section.namespace {
            settings.namespace(Some(ns.clone()));
        }
        let settings = settings
            .build()
            .map_err(|e| DestError::fatal(format!("Vault settings: {e}")))?;
        let client = VaultClient::new(settings)
            .map_err(|e| DestError::fatal(format!("Vault client: {}", describe(&e))))?;
        Ok(Self {
            client: RwLock::new(client),
            auth: section.auth.clone(),
            default_mount: section.mount.clone(),
            backoff: Backoff::default(),
            preflighted: Mutex::new(HashSet::new()),
            namespaced: section.namespace.is_some(),
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn default_mount(&self) -> &str {
        &self.default_mount
    }

    /// (Re-)authenticate and put the resulting token on the client.
    pub async fn login(&self) -> Result<(), DestError> {
        let token = match &self.auth {
            VaultAuth::Token { token } => resolve(token)?,
            VaultAuth::AppRole {
                role_id,
                secret_id,
                mount,
            } => {
                let role_id = resolve(role_id)?;
                let secret_id = resolve(secret_id)?;
                let client = self.client.read().await;
                let info = vaultrs::auth::approle::login(
                    &*client,
                    mount,
                    role_id.expose(),
                    secret_id.expose(),
                )
                .await
                .map_err(|e| classify("AppRole login", &e))?;
                SecretValue::new(info.client_token)
            }
            VaultAuth::Kubernetes { role, jwt, mount } => {
                let jwt = resolve(jwt)?;
                let client = self.client.read().await;
                let info = vaultrs::auth::kubernetes::login(&*client, mount, role, jwt.expose())
                    .await
                    .map_err(|e| classify("Kubernetes login", &e))?;
                SecretValue::new(info.client_token)
            }
        };
        self.client.write().await.set_token(token.expose());
        Ok(())
    }

    fn mount<'a>(&'a self, dest: &'a VaultDestination) -> &'a str {
        dest.mount.as_deref().unwrap_or(&self.default_mount)
    }

    /// Prove, without writing, that `dest` can be written as a KV version 2 secret: Vault's
    /// `sys/internal/ui/mounts/<mount>/<path>` (what Vault's own CLI asks) names the engine
    /// behind the path when the token may use it, and `sys/capabilities-self` says whether the
    /// token may read and write the secret and its metadata. Refused outright: a token Vault
    /// does not accept, a path the token may not use or that no mount serves, a mount that is
    /// not KV version 2 (a KV v1 engine would store the value at a `data/` path nobody reads),
    /// and missing capabilities. Once per destination per run.
    pub async fn preflight(&self, dest: &VaultDestination) -> Result<(), DestError> {
        let mount = self.mount(dest);
        let id = format!("{mount}/{}", dest.path);
        if self.preflighted.lock().await.contains(&id) {
            return Ok(());
        }
        let reply = self.with_retries(|| self.mount_info(&id)).await;
        let info = match reply {
            Ok(info) => info,
            Err(e) if e.message.contains("preflight capability check") => {
                return Err(DestError::fatal(format!(
                    "Vault: the token may not use {id}, or no secrets engine is mounted at `{mount}` ({})",
                    e.message
                )));
            }
            Err(e) if e.message.contains("permission denied") => {
                return Err(DestError::fatal(format!(
                    "Vault refused the token (it is wrong, expired or revoked): {}",
                    e.message
                )));
            }
            // An older server without this endpoint: the write itself will tell.
            Err(e) if e.message.contains("HTTP 404") || e.message.contains("HTTP 405") => {
                tracing::debug!(error = %e, "Vault cannot say which engine serves {id}");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.check_kv2(mount, &info)?;
        // The engine is right; may this token write there (data, and the custom metadata)?
        let paths = [
            format!("{mount}/data/{}", dest.path),
            format!("{mount}/metadata/{}", dest.path),
        ];
        let caps = self.with_retries(|| self.capabilities_self(&paths)).await?;
        let problems: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                Need::new(p.clone(), true).missing(caps.get(p).map_or(&[][..], Vec::as_slice))
            })
            .collect();
        if !problems.is_empty() {
            return Err(DestError::fatal(format!(
                "the Vault token {}",
                problems.join("; ")
            )));
        }
        self.preflighted.lock().await.insert(id);
        Ok(())
    }

    /// `info` (from `sys/internal/ui/mounts`) describes a KV version 2 engine.
    fn check_kv2(&self, mount: &str, info: &Value) -> Result<(), DestError> {
        // The engine serving a path inside a mount would pass the checks below, and then every
        // write would go to `<that path>/data/...`, which is not where KV v2 keeps secrets.
        if let Some(served) = info["path"].as_str() {
            let wanted = format!("{}/", mount.trim_matches('/'));
            if served != wanted {
                return Err(DestError::fatal(format!(
                    "Vault has no secrets engine mounted at `{mount}`: that path is inside the mount `{}`; set `mount = \"{}\"` and put the rest in `path`",
                    served.trim_end_matches('/'),
                    served.trim_end_matches('/')
                )));
            }
        }
        let kind = info["type"].as_str().unwrap_or("?");
        let version = info["options"]["version"].as_str().unwrap_or("1");
        if kind != "kv" || version != "2" {
            let engine = if kind == "kv" {
                format!("a KV version {version} engine")
            } else {
                format!("a `{kind}` engine")
            };
            return Err(DestError::fatal(format!(
                "Vault mount `{mount}` is {engine}; destinations need KV version 2 (set `mount` to a KV v2 mount)"
            )));
        }
        Ok(())
    }

    /// The `data` of `sys/internal/ui/mounts/<id>`: the engine serving that path.
    async fn mount_info(&self, id: &str) -> Result<Value, DestError> {
        let client = self.client.read().await;
        let request = RawRequest {
            path: format!("sys/internal/ui/mounts/{id}"),
            method: rustify::enums::RequestMethod::GET,
            body: None,
        };
        vaultrs::api::exec_with_result(&*client, request)
            .await
            .map(Value::Object)
            .map_err(|e| classify(&format!("Vault sys/internal/ui/mounts/{id}"), &e))
    }

    /// Merge `value` under `dest.key` into the secret at `dest.path`, keeping its other keys,
    /// with check-and-set; then record who wrote it in the secret's custom metadata.
    pub async fn push(
        &self,
        dest: &VaultDestination,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Receipt, DestError> {
        self.preflight(dest).await?;
        let mount = self.mount(dest);
        let mut conflicts = 0;
        let version = loop {
            let (mut data, version) = self.with_retries(|| self.read(mount, &dest.path)).await?;
            data.insert(dest.key.clone(), Value::String(value.expose().to_string()));
            let written = self
                .with_retries(|| self.write(mount, &dest.path, &data, version))
                .await;
            match written {
                Ok(v) => break v,
                Err(e) if e.message.contains("check-and-set") && conflicts + 1 < CAS_ATTEMPTS => {
                    conflicts += 1;
                    tracing::info!(path = %dest.path, "Vault secret changed under us; re-reading");
                    // Writers of one secret (tokens sharing it) collide again if they retry in
                    // step: a short random pause spreads them.
                    let pause = rand::rng().random_range(20..=100 * u64::from(conflicts));
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.with_retries(|| self.annotate(mount, &dest.path, meta))
            .await?;
        Ok(Receipt {
            version: Some(version),
            ..Receipt::default()
        })
    }

    /// Read the secret back and compare the key's value with `value`.
    pub async fn verify(
        &self,
        dest: &VaultDestination,
        value: &SecretValue,
        receipt: &Receipt,
    ) -> Result<(), DestError> {
        let mount = self.mount(dest);
        let (data, version) = self.with_retries(|| self.read(mount, &dest.path)).await?;
        if let (Some(want), Some(have)) = (receipt.version, version)
            && have < want
        {
            return Err(DestError::transient(format!(
                "Vault still serves version {have} of {mount}/{}, expected {want} or later",
                dest.path
            )));
        }
        match data.get(&dest.key) {
            Some(Value::String(s)) if SecretValue::new(s.clone()).same_as(value) => Ok(()),
            Some(_) => Err(DestError::fatal(format!(
                "Vault {mount}/{} key {} does not hold the new value (another writer changed it)",
                dest.path, dest.key
            ))),
            None => Err(DestError::fatal(format!(
                "Vault {mount}/{} has no key {}",
                dest.path, dest.key
            ))),
        }
    }

    /// The secret's current KV version, and whether the key holds `value` (`None` when the
    /// value is not at hand to compare).
    pub async fn current(
        &self,
        dest: &VaultDestination,
        value: Option<&SecretValue>,
    ) -> Result<(Option<u64>, Option<bool>), DestError> {
        let mount = self.mount(dest);
        let (data, version) = self.with_retries(|| self.read(mount, &dest.path)).await?;
        let holds = value.map(|want| match data.get(&dest.key) {
            Some(Value::String(s)) => SecretValue::new(s.clone()).same_as(want),
            _ => false,
        });
        Ok((version, holds))
    }

    /// Read the value currently stored at a destination (used to find out what is live).
    pub async fn read_value(
        &self,
        dest: &VaultDestination,
    ) -> Result<Option<SecretValue>, DestError> {
        let mount = self.mount(dest);
        let (data, _) = self.with_retries(|| self.read(mount, &dest.path)).await?;
        Ok(match data.get(&dest.key) {
            Some(Value::String(s)) => Some(SecretValue::new(s.clone())),
            _ => None,
        })
    }

    /// The secret's data and current version; an absent secret is empty at version `None`.
    async fn read(
        &self,
        mount: &str,
        path: &str,
    ) -> Result<(Map<String, Value>, Option<u64>), DestError> {
        if let Some((data, version)) = self.read_data(mount, path, None).await? {
            return Ok((data, Some(version)));
        }
        // Absent, or its latest version deleted or destroyed: then check-and-set must name the
        // current version, which only the metadata still knows.
        let current = {
            let client = self.client.read().await;
            match vaultrs::kv2::read_metadata(&*client, mount, path).await {
                Ok(m) => m.current_version,
                Err(e) if status_of(&e) == Some(404) => 0,
                Err(e) => {
                    return Err(classify(
                        &format!("reading Vault {mount}/{path} metadata"),
                        &e,
                    ));
                }
            }
        };
        if current == 0 {
            return Ok((Map::new(), None));
        }
        // That version may have been written by someone else between the two reads: its data,
        // if it has any, is what a write at that version replaces, so it is read (never
        // assumed empty; a write of our key alone would drop theirs).
        Ok(match self.read_data(mount, path, Some(current)).await? {
            Some((data, version)) => (data, Some(version)),
            None => (Map::new(), Some(current)),
        })
    }

    /// The data of `version` (default: the latest) and its number; `None` when Vault answers
    /// 404 (absent, deleted or destroyed).
    async fn read_data(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<(Map<String, Value>, u64)>, DestError> {
        let request = ReadSecretRequest::builder()
            .mount(mount)
            .path(path)
            .version(version)
            .build()
            .map_err(|e| DestError::fatal(format!("Vault request: {e}")))?;
        let client = self.client.read().await;
        match vaultrs::api::exec_with_result(&*client, request).await {
            Ok(resp) => {
                let data = match resp.data {
                    Value::Object(m) => m,
                    Value::Null => Map::new(),
                    _ => {
                        return Err(DestError::fatal(format!(
                            "Vault {mount}/{path} does not hold a key/value map"
                        )));
                    }
                };
                Ok(Some((data, resp.metadata.version)))
            }
            Err(e) if status_of(&e) == Some(404) => {
                crate::metrics::api_call("vault", 404);
                Ok(None)
            }
            Err(e) => Err(classify(&format!("reading Vault {mount}/{path}"), &e)),
        }
    }

    async fn write(
        &self,
        mount: &str,
        path: &str,
        data: &Map<String, Value>,
        version: Option<u64>,
    ) -> Result<u64, DestError> {
        let cas = u32::try_from(version.unwrap_or(0)).map_err(|_| {
            DestError::fatal(format!(
                "Vault {mount}/{path}: version too large for check-and-set"
            ))
        })?;
        let client = self.client.read().await;
        vaultrs::kv2::set_with_options(&*client, mount, path, data, SetSecretRequestOptions { cas })
            .await
            .map(|m| m.version)
            .map_err(|e| classify(&format!("writing Vault {mount}/{path}"), &e))
    }

    /// Merge our facts into the secret's custom metadata, keeping anyone else's.
    async fn annotate(&self, mount: &str, path: &str, meta: &WriteMeta) -> Result<(), DestError> {
        let api_path = format!("{mount}/metadata/{path}");
        let mut conflicts = 0;
        loop {
            let client = self.client.read().await;
            let read = RawRequest {
                path: api_path.clone(),
                method: rustify::enums::RequestMethod::GET,
                body: None,
            };
            // OpenBao numbers metadata versions (`current_metadata_version`) and, on a mount
            // with `metadata_cas_required`, refuses a metadata write that does not name the one
            // it replaces: it is always named when the server has it, so another writer's
            // metadata change in between is never overwritten either.
            let (mut custom, metadata_version): (Map<String, Value>, Option<u64>) =
                match vaultrs::api::exec_with_result(&*client, read).await {
                    Ok(data) => (
                        data.get("custom_metadata")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                        data.get("current_metadata_version").and_then(Value::as_u64),
                    ),
                    Err(e) if status_of(&e) == Some(404) => (Map::new(), None),
                    Err(e) => {
                        return Err(classify(
                            &format!("reading Vault metadata {mount}/{path}"),
                            &e,
                        ));
                    }
                };
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let expires = meta
                .expires
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "never".into());
            for (k, v) in [
                ("managed-by", "eci-secret-sync".to_string()),
                ("eci-token-name", meta.token_name.clone()),
                ("eci-token-id", meta.token_id.clone()),
                ("eci-token-expires", expires),
                ("written-at", now),
            ] {
                custom.insert(k.into(), Value::String(v));
            }
            let mut body = serde_json::json!({ "custom_metadata": custom });
            if let Some(v) = metadata_version {
                body["metadata_cas"] = Value::from(v);
            }
            let write = RawRequest {
                path: api_path.clone(),
                method: rustify::enums::RequestMethod::POST,
                body: Some(body),
            };
            match vaultrs::api::exec_with_empty(&*client, write).await {
                Ok(()) => {
                    crate::metrics::api_call("vault", 204);
                    return Ok(());
                }
                Err(e) => {
                    let e = classify(&format!("writing Vault metadata {mount}/{path}"), &e);
                    if !(e.message.contains("check-and-set") && conflicts + 1 < CAS_ATTEMPTS) {
                        return Err(e);
                    }
                }
            }
            drop(client);
            conflicts += 1;
            tracing::info!(path = %path, "Vault metadata changed under us; re-reading");
            let pause = rand::rng().random_range(20..=100 * u64::from(conflicts));
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    /// Retry transient failures with backoff; re-authenticate once when the token was refused.
    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, DestError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DestError>>,
    {
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            match call().await {
                Err(e)
                    if e.message.contains("permission denied")
                        && !relogged
                        && self.can_relogin() =>
                {
                    relogged = true;
                    tracing::info!("Vault refused the token; logging in again");
                    self.login().await?;
                }
                Err(e) if e.retryable && attempt + 1 < self.backoff.attempts => {
                    let wait = self.backoff.delay(attempt, e.wait);
                    tracing::debug!(error = %e, ?wait, "retrying Vault request");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => {
                    if other.is_ok() {
                        crate::metrics::api_call("vault", 200);
                    }
                    return other;
                }
            }
        }
    }

    /// `sys/health`: the server answers and is unsealed (a standby counts: it forwards writes).
    pub async fn check_reachable(&self) -> Result<(), DestError> {
        if self.namespaced {
            // `sys/health` is served in the root namespace only: inside one, the token's own
            // lookup proves the server answers, is unsealed (else 503) and takes the token.
            return match self.check_login().await {
                Err(e) if e.message.contains("HTTP 503") => Err(DestError::transient(
                    "Vault is sealed (unseal it, then run again)",
                )),
                other => other,
            };
        }
        let mut attempt = 0;
        loop {
            let answer = {
                let client = self.client.read().await;
                let request = RawRequest {
                    path: "sys/health".into(),
                    method: rustify::enums::RequestMethod::GET,
                    body: None,
                };
                vaultrs::api::exec_with_empty(&*client, request).await
            };
            let e = match answer {
                Ok(()) => {
                    crate::metrics::api_call("vault", 200);
                    return Ok(());
                }
                Err(e) if matches!(status_of(&e), Some(429 | 472 | 473)) => {
                    crate::metrics::api_call("vault", status_of(&e).unwrap_or(0));
                    return Ok(());
                }
                Err(e) if status_of(&e) == Some(503) => {
                    crate::metrics::api_call("vault", 503);
                    return Err(DestError::transient(
                        "Vault is sealed (unseal it, then run again)",
                    ));
                }
                Err(e) => classify("Vault sys/health", &e),
            };
            // A passing 502 from a proxy is retried like every other Vault call.
            if !(e.retryable && attempt + 1 < self.backoff.attempts) {
                return Err(e);
            }
            let wait = self.backoff.delay(attempt, e.wait);
            tracing::debug!(error = %e, ?wait, "retrying Vault sys/health");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Why this Vault cannot be used now (unreachable, sealed, its credential refused).
    pub async fn unusable(&self) -> Option<String> {
        let checked = match self.check_reachable().await {
            Ok(()) => self.check_login().await,
            Err(e) => Err(e),
        };
        checked.err().map(|e| format!("Vault: {}", e.message))
    }

    /// Prove the logged-in token is alive (`auth/token/lookup-self`). A token from the policy
    /// (`method = "token"`) is only put on the client by [`Vault::connect`]; this asks the server.
    pub async fn check_login(&self) -> Result<(), DestError> {
        let client = self.client.read().await;
        let request = RawRequest {
            path: "auth/token/lookup-self".into(),
            method: rustify::enums::RequestMethod::GET,
            body: None,
        };
        vaultrs::api::exec_with_result(&*client, request)
            .await
            .map(|_| crate::metrics::api_call("vault", 200))
            .map_err(|e| {
                let e = classify("Vault token lookup-self", &e);
                if e.message.contains("permission denied") {
                    DestError::fatal(format!(
                        "Vault refused the token (it is wrong, expired or revoked): {}",
                        e.message
                    ))
                } else {
                    e
                }
            })
    }

    /// What the logged-in token may do on each of `paths` (full API paths such as
    /// `secret/data/ci/deploy`), from `sys/capabilities-self`: path → capabilities (`read`,
    /// `create`, `update`, `delete`, `list`, `sudo`, `root`, `deny`, ...).
    pub async fn capabilities_self(
        &self,
        paths: &[String],
    ) -> Result<HashMap<String, Vec<String>>, DestError> {
        let client = self.client.read().await;
        let request = RawRequest {
            path: "sys/capabilities-self".into(),
            method: rustify::enums::RequestMethod::POST,
            body: Some(serde_json::json!({ "paths": paths })),
        };
        let reply = vaultrs::api::exec_with_result(&*client, request)
            .await
            .map_err(|e| classify("Vault sys/capabilities-self", &e))?;
        let mut out = HashMap::new();
        for path in paths {
            let caps = reply
                .get(path)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .ok_or_else(|| {
                    DestError::fatal(format!("Vault sys/capabilities-self: no answer for {path}"))
                })?;
            out.insert(path.clone(), caps);
        }
        Ok(out)
    }

    fn can_relogin(&self) -> bool {
        !matches!(self.auth, VaultAuth::Token { .. })
    }
}

/// A Vault API call vaultrs has no helper for; the reply's `data` as JSON.
struct RawRequest {
    path: String,
    method: rustify::enums::RequestMethod,
    body: Option<Value>,
}

impl rustify::Endpoint for RawRequest {
    type Response = Map<String, Value>;
    const REQUEST_BODY_TYPE: rustify::enums::RequestType = rustify::enums::RequestType::JSON;
    const RESPONSE_BODY_TYPE: rustify::enums::ResponseType = rustify::enums::ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> rustify::enums::RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        self.body
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| rustify::errors::ClientError::DataParseError { source: e.into() })
    }
}

fn resolve(r: &crate::policy::SecretRef) -> Result<SecretValue, DestError> {
    r.resolve_line()
        .map_err(|e| DestError::fatal(format!("Vault credential ({}): {e}", r.describe())))
}

/// The HTTP status of a Vault error, if the server answered.
fn status_of(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

/// Turn a vaultrs error into a message without any response body content.
fn classify(what: &str, e: &ClientError) -> DestError {
    crate::metrics::api_call("vault", status_of(e).unwrap_or(0));
    let msg = format!("{what}: {}", describe(e));
    match status_of(e) {
        Some(429) | Some(500..=599) => DestError::transient(msg),
        Some(_) => DestError::fatal(msg),
        None => match e {
            ClientError::RestClientError { .. } => DestError::transient(msg),
            _ => DestError::fatal(msg),
        },
    }
}

fn describe(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } => {
            let errs: Vec<String> = errors.iter().map(|s| one_line(s)).collect();
            if errs.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {}", errs.join("; "))
            }
        }
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code, .. } => {
                format!("HTTP {code}")
            }
            rustify::errors::ClientError::RequestError { source, url, .. } => {
                // The chain names the URL again (with its query): say it once.
                let chain = crate::eci::error_chain(source.as_ref());
                let base = url.split('?').next().unwrap_or(url);
                let chain = chain
                    .replace(&format!(" for url ({url})"), "")
                    .replace(&format!(" for url ({base})"), "")
                    .replace(url.as_str(), "it")
                    .replace(base, "it");
                format!("cannot reach {base}: {chain}")
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// Capabilities a destination (or the credential's source) needs on one API path: always
/// `read` (a push reads before it writes, and merges custom metadata), and for a destination
/// `create` or `update`.
pub(crate) struct Need {
    pub(crate) path: String,
    write: bool,
}

impl Need {
    pub(crate) fn new(path: String, write: bool) -> Self {
        Self { path, write }
    }

    /// What is missing from `caps`, e.g. `read and create or update`.
    pub(crate) fn missing(&self, caps: &[String]) -> Option<String> {
        let has = |c: &str| caps.iter().any(|x| x == c || x == "root");
        let mut lacks = Vec::new();
        if !has("read") {
            lacks.push("read");
        }
        if self.write && !has("create") && !has("update") {
            lacks.push("create or update");
        }
        if lacks.is_empty() {
            return None;
        }
        let held = if caps.is_empty() {
            "nothing".to_owned()
        } else {
            caps.join(", ")
        };
        Some(format!(
            "lacks {} on {} (has {held})",
            lacks.join(" and "),
            self.path
        ))
    }
}

/// Vault's error text on one line: OpenBao wraps its errors as `1 error occurred:\n\t* why\n\n`;
/// the count line and the bullets go, the rest is joined with `; `.
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("* ").trim())
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !(l.ends_with("error occurred:") || l.ends_with("errors occurred:"))
                || !l.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    crate::secret::scrub(&parts.join("; "))
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn vault_error_lists_become_one_line() {
        assert_eq!(
            one_line("1 error occurred:\n\t* permission denied\n\n"),
            "permission denied"
        );
        assert_eq!(one_line("2 errors occurred:\n\t* a\n\t* b\n"), "a; b");
        assert_eq!(one_line("  Vault is sealed  "), "Vault is sealed");
    }
}
