//! The fake GitHub world: repositories, environments, organizations and their secret scopes.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use crypto_box::SecretKey;
use rand::{Rng, RngCore};

use crate::github_app::Apps;
use crate::timefmt::now_seconds;

/// A scope's Curve25519 key pair and GitHub-style numeric `key_id`.
pub(crate) struct KeyPair {
    pub secret: SecretKey,
    pub key_id: String,
}

impl KeyPair {
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key_id = rand::rng()
            .random_range(100_000_000_000_000_000u64..1_000_000_000_000_000_000u64)
            .to_string();
        KeyPair {
            secret: SecretKey::from_bytes(bytes),
            key_id,
        }
    }

    pub(crate) fn public_b64(&self) -> String {
        STANDARD.encode(self.secret.public_key().as_bytes())
    }

    pub(crate) fn private_b64(&self) -> String {
        STANDARD.encode(self.secret.to_bytes())
    }
}

/// Who may use an organization secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visibility {
    All,
    Private,
    Selected,
}

impl Visibility {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Visibility::All),
            "private" => Some(Visibility::Private),
            "selected" => Some(Visibility::Selected),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Visibility::All => "all",
            Visibility::Private => "private",
            Visibility::Selected => "selected",
        }
    }
}

/// One stored secret: what the client sent and what it decrypts to.
#[derive(Clone)]
pub(crate) struct StoredSecret {
    pub encrypted_value: String,
    pub key_id: String,
    pub value: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Organization secrets only.
    pub visibility: Option<Visibility>,
    pub selected_repository_ids: Vec<u64>,
}

/// A place secrets live in, with its own key pair.
pub(crate) struct Scope {
    pub key: KeyPair,
    pub secrets: BTreeMap<String, StoredSecret>,
}

impl Scope {
    fn new() -> Self {
        Scope {
            key: KeyPair::generate(),
            secrets: BTreeMap::new(),
        }
    }
}

pub(crate) struct Environment {
    pub id: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub scope: Scope,
}

pub(crate) struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub actions: Scope,
    pub dependabot: Scope,
    /// Keyed by lower-cased name.
    pub envs: BTreeMap<String, Environment>,
}

impl Repo {
    pub(crate) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

pub(crate) struct Org {
    pub id: u64,
    pub login: String,
    pub created_at: DateTime<Utc>,
    pub actions: Scope,
    pub dependabot: Scope,
}

/// Which scope, by lower-cased keys into the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKey {
    Repo(String),
    RepoDependabot(String),
    Env(String, String),
    Org(String),
    OrgDependabot(String),
}

impl ScopeKey {
    /// Parses `repo:o/r`, `repo-dependabot:o/r`, `env:o/r:name`, `org:o`, `org-dependabot:o`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once(':')?;
        let lc = rest.to_lowercase();
        let is_repo = |r: &str| {
            r.split_once('/')
                .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty())
        };
        match kind {
            "repo" if is_repo(&lc) => Some(ScopeKey::Repo(lc)),
            "repo-dependabot" if is_repo(&lc) => Some(ScopeKey::RepoDependabot(lc)),
            "env" => {
                let (repo, env) = lc.split_once(':')?;
                (is_repo(repo) && !env.is_empty())
                    .then(|| ScopeKey::Env(repo.to_owned(), env.to_owned()))
            }
            "org" if !lc.is_empty() => Some(ScopeKey::Org(lc)),
            "org-dependabot" if !lc.is_empty() => Some(ScopeKey::OrgDependabot(lc)),
            _ => None,
        }
    }

    pub(crate) fn is_org(&self) -> bool {
        matches!(self, ScopeKey::Org(_) | ScopeKey::OrgDependabot(_))
    }
}

impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeKey::Repo(r) => write!(f, "repo:{r}"),
            ScopeKey::RepoDependabot(r) => write!(f, "repo-dependabot:{r}"),
            ScopeKey::Env(r, e) => write!(f, "env:{r}:{e}"),
            ScopeKey::Org(o) => write!(f, "org:{o}"),
            ScopeKey::OrgDependabot(o) => write!(f, "org-dependabot:{o}"),
        }
    }
}

pub(crate) struct GithubWorld {
    pub tokens: Vec<String>,
    /// Keyed by lower-cased `owner/name`.
    pub repos: BTreeMap<String, Repo>,
    /// Keyed by lower-cased login.
    pub orgs: BTreeMap<String, Org>,
    /// Ids of repository owners that are users, not organizations.
    users: BTreeMap<String, u64>,
    next_id: u64,
    /// GitHub Apps and the installation tokens issued for them.
    pub apps: Apps,
}

impl GithubWorld {
    pub(crate) fn new(tokens: Vec<String>) -> Self {
        GithubWorld {
            tokens,
            repos: BTreeMap::new(),
            orgs: BTreeMap::new(),
            users: BTreeMap::new(),
            next_id: 700_000_001,
            apps: Apps::default(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn accepts(&self, credential: &str) -> bool {
        self.tokens.iter().any(|t| t == credential) || self.apps.accepts(credential)
    }

    /// Creates `owner/name` (or returns the existing one); `(id, created)`.
    pub(crate) fn add_repo(&mut self, full_name: &str) -> Option<(u64, bool)> {
        let (owner, name) = full_name.split_once('/')?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        let key = full_name.to_lowercase();
        if let Some(r) = self.repos.get(&key) {
            return Some((r.id, false));
        }
        let id = self.next_id();
        let repo = Repo {
            id,
            owner: owner.to_owned(),
            name: name.to_owned(),
            created_at: now_seconds(),
            actions: Scope::new(),
            dependabot: Scope::new(),
            envs: BTreeMap::new(),
        };
        self.repos.insert(key, repo);
        Some((id, true))
    }

    /// Creates an environment; `None` when the repository is unknown.
    pub(crate) fn add_env(&mut self, repo: &str, env: &str) -> Option<(u64, bool)> {
        let id = self.next_id();
        let r = self.repos.get_mut(&repo.to_lowercase())?;
        let key = env.to_lowercase();
        if let Some(e) = r.envs.get(&key) {
            return Some((e.id, false));
        }
        r.envs.insert(
            key,
            Environment {
                id,
                name: env.to_owned(),
                created_at: now_seconds(),
                scope: Scope::new(),
            },
        );
        Some((id, true))
    }

    pub(crate) fn add_org(&mut self, login: &str) -> (u64, bool) {
        let key = login.to_lowercase();
        if let Some(o) = self.orgs.get(&key) {
            return (o.id, false);
        }
        let id = self.next_id();
        self.orgs.insert(
            key,
            Org {
                id,
                login: login.to_owned(),
                created_at: now_seconds(),
                actions: Scope::new(),
                dependabot: Scope::new(),
            },
        );
        (id, true)
    }

    /// The id of a repository owner: its organization's, or a stable user id.
    pub(crate) fn owner_id(&mut self, owner: &str) -> (u64, bool) {
        let key = owner.to_lowercase();
        if let Some(o) = self.orgs.get(&key) {
            return (o.id, true);
        }
        if let Some(id) = self.users.get(&key) {
            return (*id, false);
        }
        let id = self.next_id();
        self.users.insert(key, id);
        (id, false)
    }

    pub(crate) fn repo_by_id(&self, id: u64) -> Option<&Repo> {
        self.repos.values().find(|r| r.id == id)
    }

    pub(crate) fn scope(&self, key: &ScopeKey) -> Option<&Scope> {
        match key {
            ScopeKey::Repo(r) => self.repos.get(r).map(|r| &r.actions),
            ScopeKey::RepoDependabot(r) => self.repos.get(r).map(|r| &r.dependabot),
            ScopeKey::Env(r, e) => self
                .repos
                .get(r)
                .and_then(|r| r.envs.get(e))
                .map(|e| &e.scope),
            ScopeKey::Org(o) => self.orgs.get(o).map(|o| &o.actions),
            ScopeKey::OrgDependabot(o) => self.orgs.get(o).map(|o| &o.dependabot),
        }
    }

    pub(crate) fn scope_mut(&mut self, key: &ScopeKey) -> Option<&mut Scope> {
        match key {
            ScopeKey::Repo(r) => self.repos.get_mut(r).map(|r| &mut r.actions),
            ScopeKey::RepoDependabot(r) => self.repos.get_mut(r).map(|r| &mut r.dependabot),
            ScopeKey::Env(r, e) => self
                .repos
                .get_mut(r)
                .and_then(|r| r.envs.get_mut(e))
                .map(|e| &mut e.scope),
            ScopeKey::Org(o) => self.orgs.get_mut(o).map(|o| &mut o.actions),
            ScopeKey::OrgDependabot(o) => self.orgs.get_mut(o).map(|o| &mut o.dependabot),
        }
    }

    /// Every scope with its key, in a stable order.
    pub(crate) fn all_scopes(&self) -> Vec<(ScopeKey, &Scope)> {
        let mut out = Vec::new();
        for (k, r) in &self.repos {
            out.push((ScopeKey::Repo(k.clone()), &r.actions));
            out.push((ScopeKey::RepoDependabot(k.clone()), &r.dependabot));
            for (e, env) in &r.envs {
                out.push((ScopeKey::Env(k.clone(), e.clone()), &env.scope));
            }
        }
        for (k, o) in &self.orgs {
            out.push((ScopeKey::Org(k.clone()), &o.actions));
            out.push((ScopeKey::OrgDependabot(k.clone()), &o.dependabot));
        }
        out
    }
}
