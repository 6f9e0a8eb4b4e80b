//! The validated policy: plain data that the rest of the daemon reads, with defaults applied.

use std::path::PathBuf;
use std::time::Duration;

use super::duration::Lifetime;
use super::secret_ref::SecretRef;

/// A loaded, validated policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The file it was read from.
    pub source: PathBuf,
    pub eci: EciSection,
    /// Present whenever any token has a Vault destination.
    pub vault: Option<VaultSection>,
    /// Present whenever any token has a GitHub destination.
    pub github: Option<GithubSection>,
    pub schedule: ScheduleSection,
    pub defaults: Defaults,
    pub state: StateSection,
    pub notify: NotifySection,
    pub metrics: MetricsSection,
    pub tokens: Vec<TokenPolicy>,
}

pub const DEFAULT_ECI_ENDPOINT: &str = "https://portal.elice.cloud/api";
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_GITHUB_WRITE_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_KUBERNETES_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const DEFAULT_DESCRIPTION: &str = "managed by eci-secret-sync";

/// `[eci]`: the API whose tokens are rotated, and the token used to call it.
#[derive(Debug, Clone, PartialEq)]
pub struct EciSection {
    /// http(s) base URL without a trailing `/`.
    pub endpoint: String,
    pub token: SecretRef,
    pub allow_insecure_http: bool,
    pub timeout: Duration,
}

/// `[vault]`: the Vault server holding KV v2 destinations.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultSection {
    /// http(s) URL without a trailing `/`.
    pub address: String,
    pub auth: VaultAuth,
    /// KV v2 mount used when a destination names none.
    pub mount: String,
    pub namespace: Option<String>,
    pub timeout: Duration,
    pub allow_insecure_http: bool,
}

/// How the daemon logs in to Vault (`auth = { method = ... }`).
#[derive(Debug, Clone, PartialEq)]
pub enum VaultAuth {
    Token {
        token: SecretRef,
    },
    AppRole {
        role_id: SecretRef,
        secret_id: SecretRef,
        mount: String,
    },
    Kubernetes {
        role: String,
        jwt: SecretRef,
        mount: String,
    },
}

/// `[github]`: the GitHub (or GitHub Enterprise) API holding Actions / Dependabot secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct GithubSection {
    pub auth: GithubAuth,
    /// http(s) URL without a trailing `/`.
    pub api_url: String,
    pub timeout: Duration,
    pub allow_insecure_http: bool,
    /// Least time between two secret writes (GitHub asks for spaced-out mutations).
    pub write_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GithubAuth {
    Token(SecretRef),
    App {
        app_id: u64,
        installation_id: u64,
        private_key: SecretRef,
    },
}

/// `[schedule]`: when the daemon wakes up to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSection {
    /// 5 fields, or 6 with seconds first; parsed by the scheduler.
    pub cron: String,
    /// IANA name; checked by the scheduler.
    pub timezone: String,
    pub jitter: Duration,
}

/// `[defaults]`: per-token settings used when a token does not set its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub rotate_before: Duration,
    pub lifetime: Lifetime,
    pub grace: Duration,
    /// Rotations in flight at once, 1..=64.
    pub concurrency: usize,
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateSection {
    /// Overridden by `$STATE_DIRECTORY`; default `/var/lib/eci-secret-sync`.
    pub dir: Option<PathBuf>,
}

/// `[notify]`: expiry warnings and rotation events.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySection {
    /// Sorted longest first, no duplicates.
    pub thresholds: Vec<Duration>,
    pub watch: Watch,
    pub channels: Vec<ChannelPolicy>,
}

/// Which ECI tokens expiry warnings cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Only tokens named in the policy.
    Policy,
    /// Every token the ECI token can list.
    All,
}

/// One `[[notify.channel]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPolicy {
    pub kind: ChannelKind,
    pub url: Option<SecretRef>,
    /// Webhook HMAC key.
    pub secret: Option<SecretRef>,
    /// Event filter; empty means all. See [`EVENTS`].
    pub events: Vec<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// `"starttls"`, `"tls"` or `"none"`.
    pub smtp_tls: Option<String>,
    pub username: Option<SecretRef>,
    pub password: Option<SecretRef>,
    pub from: Option<String>,
    pub to: Vec<String>,
}

/// Event names a channel may filter on.
pub const EVENTS: [&str; 5] = [
    "expiring",
    "rotated",
    "rotation_failed",
    "recovered",
    "expired",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Slack,
    Webhook,
    Email,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSection {
    /// `host:port` for the Prometheus listener; none means no listener.
    pub listen: Option<String>,
}

/// One `[[token]]`, with `[defaults]` already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPolicy {
    /// The token's name in ECI.
    pub name: String,
    pub description: String,
    pub rotate_before: Duration,
    pub lifetime: Lifetime,
    pub grace: Duration,
    /// Overrides `[notify] thresholds` for this token (sorted longest first).
    pub thresholds: Option<Vec<Duration>>,
    pub vault: Vec<VaultDestination>,
    pub github: Vec<GithubDestination>,
    /// Line of the `[[token]]` header, for messages.
    pub line: usize,
}

/// A key of a Vault KV v2 secret (other keys of that secret are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultDestination {
    /// `None`: the `[vault] mount`.
    pub mount: Option<String>,
    pub path: String,
    pub key: String,
}

/// A GitHub Actions or Dependabot secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubDestination {
    pub target: GithubTarget,
    pub secret: String,
    pub app: SecretApp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubTarget {
    Repo {
        owner: String,
        repo: String,
    },
    Environment {
        owner: String,
        repo: String,
        environment: String,
    },
    Org {
        org: String,
        visibility: Visibility,
        /// Repository names in `org`; non-empty exactly when `visibility` is `Selected`.
        repositories: Vec<String>,
    },
}

/// Which repositories of an organization can use an org secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    All,
    Private,
    Selected,
}

impl Visibility {
    /// The name GitHub's API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Visibility::All => "all",
            Visibility::Private => "private",
            Visibility::Selected => "selected",
        }
    }
}

/// Which GitHub secret store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretApp {
    #[default]
    Actions,
    Dependabot,
}

impl SecretApp {
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretApp::Actions => "actions",
            SecretApp::Dependabot => "dependabot",
        }
    }
}
