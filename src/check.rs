//! `--check --online`: proves the policy's credentials reach their servers and may do what a rotation needs.

use crate::destination::github::Github;
use crate::destination::vault::{Need, Vault};
use crate::eci::{CreateProbe, EciClient, Token};
use crate::policy::{
    GithubDestination, GithubTarget, Policy, SecretApp, SecretRef, VaultAuth, format_duration,
};
use crate::rotation::report::when;
use crate::secret::SecretValue;
use chrono::Utc;
use std::fmt;

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed; an optional detail (an organization name, an expiry).
    Ok(Option<String>),
    /// Works, but needs attention; does not fail the check.
    Warn(String),
    /// Unreachable, refused or missing: a rotation would fail here.
    Failed(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub outcome: Outcome,
}

impl Check {
    fn ok(what: impl Into<String>) -> Self {
        Self::new(what, Outcome::Ok(None))
    }

    fn new(what: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            what: what.into(),
            outcome,
        }
    }

    fn from_result(what: impl Into<String>, result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Self::ok(what),
            Err(why) => Self::new(what, Outcome::Failed(why)),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(None) => write!(f, "ok      {}", self.what),
            Outcome::Ok(Some(detail)) => write!(f, "ok      {}: {detail}", self.what),
            Outcome::Warn(why) => write!(f, "WARN    {}: {why}", self.what),
            Outcome::Failed(why) => write!(f, "FAILED  {}: {why}", self.what),
        }
    }
}

/// Every check made, in the order they were printed.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn count(&self, pick: fn(&Outcome) -> bool) -> usize {
        self.checks.iter().filter(|c| pick(&c.outcome)).count()
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    /// `online check: 7 ok, 1 warning, 2 failed`
    pub fn summary(&self) -> String {
        let ok = self.count(|o| matches!(o, Outcome::Ok(_)));
        let warn = self.count(|o| matches!(o, Outcome::Warn(_)));
        let plural = if warn == 1 { "" } else { "s" };
        format!(
            "online check: {ok} ok, {warn} warning{plural}, {} failed",
            self.failed()
        )
    }
}

/// Collects checks and hands each to `emit` as soon as it is made.
struct Recorder<'e> {
    report: Report,
    emit: &'e mut (dyn FnMut(&Check) + Send),
}

impl Recorder<'_> {
    fn push(&mut self, check: Check) {
        (self.emit)(&check);
        self.report.checks.push(check);
    }
}

/// Run every online check of `policy`, calling `emit` with each line as it completes.
///
/// In order: ECI (who-am-I, create permission via [`EciClient::probe_create_permission`], the
/// credential's own expiry), Vault (login, then `sys/capabilities-self` for the credential's
/// source and every destination secret), GitHub (each scope's public key). A check whose
/// prerequisite failed (no ECI login, no Vault login) is not attempted. Nothing is written.
pub async fn run(policy: &Policy, emit: &mut (dyn FnMut(&Check) + Send)) -> Report {
    let mut rec = Recorder {
        report: Report::default(),
        emit,
    };
    let vault = match &policy.vault {
        Some(section) => Some(Vault::connect(section).await.map_err(|e| e.message)),
        None => None,
    };
    let vault_ok = vault.as_ref().and_then(|v| v.as_ref().ok());
    eci_checks(&mut rec, policy, vault.as_ref()).await;
    if let (Some(section), Some(connected)) = (&policy.vault, &vault) {
        let what = format!(
            "Vault login at {} ({} auth)",
            section.address,
            auth_method(&section.auth)
        );
        let login = match connected {
            Ok(v) => v.check_login().await.map_err(|e| e.message),
            Err(e) => Err(e.clone()),
        };
        let logged_in = login.is_ok();
        rec.push(Check::from_result(what, login));
        if let (true, Some(v)) = (logged_in, vault_ok) {
            vault_checks(&mut rec, policy, v).await;
        }
    }
    github_checks(&mut rec, policy).await;
    rec.report
}

fn auth_method(auth: &VaultAuth) -> &'static str {
    match auth {
        VaultAuth::Token { .. } => "token",
        VaultAuth::AppRole { .. } => "approle",
        VaultAuth::Kubernetes { .. } => "kubernetes",
    }
}

/// Who-am-I, create permission, and the credential's own expiry.
async fn eci_checks(
    rec: &mut Recorder<'_>,
    policy: &Policy,
    vault: Option<&Result<Vault, String>>,
) {
    let base = policy.eci.endpoint.as_str();
    let whoami = format!("ECI who-am-I at {base}");
    let credential = match eci_credential(policy, vault).await {
        Ok(c) => c,
        Err(why) => {
            rec.push(Check::new(whoami, Outcome::Failed(why)));
            return;
        }
    };
    let eci = match EciClient::new(base, credential.clone(), policy.eci.timeout) {
        Ok(c) => c,
        Err(e) => {
            rec.push(Check::new(whoami, Outcome::Failed(e.to_string())));
            return;
        }
    };
    match eci.whoami().await {
        Ok(org) => {
            let detail = format!("organization {} ({})", org.name, org.id);
            rec.push(Check::new(whoami, Outcome::Ok(Some(detail))));
        }
        Err(e) => {
            rec.push(Check::new(whoami, Outcome::Failed(e.to_string())));
            return;
        }
    }
    let what = "ECI permission to create tokens (User.UserAccessToken.CREATE)";
    let outcome = match eci.probe_create_permission().await {
        Ok(CreateProbe::Allowed) => Outcome::Ok(None),
        Ok(CreateProbe::Denied(why)) => Outcome::Failed(why),
        Ok(CreateProbe::Created { id, deleted: Ok(_) }) => Outcome::Warn(format!(
            "ECI accepted a create that should have been refused (empty name, past expiry) and made token {id}; it was deleted again"
        )),
        Ok(CreateProbe::Created {
            id,
            deleted: Err(e),
        }) => Outcome::Failed(format!(
            "ECI accepted a create that should have been refused (empty name, past expiry) and made token {id}, which could not be deleted ({e}): delete it in the portal"
        )),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    rec.push(Check::new(what, outcome));
    let what = "ECI credential expiry";
    let tokens = match eci.list(None).await {
        Ok(tokens) => tokens,
        Err(e) => {
            rec.push(Check::new(
                what,
                Outcome::Failed(format!("cannot list tokens: {e}")),
            ));
            return;
        }
    };
    rec.push(Check::new(
        what,
        credential_expiry(policy, &credential, &tokens),
    ));
    if !policy.tokens.is_empty() {
        rec.push(Check::new(
            "ECI tokens of the policy",
            policy_tokens_present(policy, &tokens),
        ));
    }
}

/// Every `[[token]]` names a token that exists: a rotation cannot create the first one.
fn policy_tokens_present(policy: &Policy, tokens: &[Token]) -> Outcome {
    let missing: Vec<&str> = policy
        .tokens
        .iter()
        .filter(|p| !tokens.iter().any(|t| t.name == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if missing.is_empty() {
        return Outcome::Ok(Some(format!(
            "{} token(s), each found in ECI",
            policy.tokens.len()
        )));
    }
    Outcome::Failed(format!(
        "no token named {} in ECI: create each once in the portal, then this program keeps it fresh",
        missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The credential's own token, found by its value, and whether anything keeps it alive.
fn credential_expiry(policy: &Policy, credential: &SecretValue, tokens: &[Token]) -> Outcome {
    let Some(own) = tokens
        .iter()
        .find(|t| t.value.as_ref().is_some_and(|v| v.same_as(credential)))
    else {
        return Outcome::Warn(
            "no listed token has the credential's value (ECI did not return token values), so its expiry is unknown"
                .into(),
        );
    };
    let token = format!("token `{}` ({})", own.name, own.id);
    let Some(expires) = own.expires else {
        return Outcome::Ok(Some(format!("{token} never expires")));
    };
    let at = format!("{token} expires {}", when(expires));
    let left = expires - Utc::now();
    let within = |d: std::time::Duration| {
        chrono::Duration::from_std(d).is_ok_and(|d| left <= d) || left <= chrono::Duration::zero()
    };
    let Some(managed) = policy.tokens.iter().find(|t| t.name == own.name) else {
        let soon = if within(policy.defaults.rotate_before) {
            format!(
                ", and that is within {}",
                format_duration(policy.defaults.rotate_before)
            )
        } else {
            String::new()
        };
        return Outcome::Warn(format!(
            "{at}{soon}; it is not managed by this policy (no [[token]] named `{}`), so nothing rotates it",
            own.name
        ));
    };
    let followed = match &policy.eci.token {
        SecretRef::Vault { path, key } => managed.vault.iter().any(|d| {
            &d.path == path
                && &d.key == key
                && d.mount.as_deref().unwrap_or(default_mount(policy)) == default_mount(policy)
        }),
        _ => false,
    };
    if !followed {
        return Outcome::Warn(format!(
            "{at}; the policy rotates it, but [eci] token is read from {}, which a rotation does not update, so its rotation will be refused; give the token a [[token.vault]] destination and read [eci] token from it ({{ vault = \"path#key\" }})",
            policy.eci.token.describe()
        ));
    }
    if within(managed.rotate_before) {
        return Outcome::Warn(format!(
            "{at}, within its rotate_before ({}): the next run rotates it",
            format_duration(managed.rotate_before)
        ));
    }
    Outcome::Ok(Some(format!("{at}; rotated by this policy")))
}

fn default_mount(policy: &Policy) -> &str {
    policy.vault.as_ref().map_or("secret", |v| v.mount.as_str())
}

/// The token this program calls ECI with, resolved as every mode resolves it.
async fn eci_credential(
    policy: &Policy,
    vault: Option<&Result<Vault, String>>,
) -> Result<SecretValue, String> {
    if let (SecretRef::Vault { .. }, Some(Err(e))) = (&policy.eci.token, vault) {
        return Err(format!(
            "ECI credential ({}): Vault login failed: {e}",
            policy.eci.token.describe()
        ));
    }
    let vault = vault.and_then(|v| v.as_ref().ok());
    crate::app::eci_credential(policy, vault).await
}

/// `sys/capabilities-self` for the credential's source and every destination secret.
async fn vault_checks(rec: &mut Recorder<'_>, policy: &Policy, vault: &Vault) {
    // (what, needs): one line per secret however many keys of it are written.
    // The destination is kept to prove, once the capabilities are there, that its mount is KV v2.
    let mut checks: Vec<(String, Vec<Need>, Option<&crate::policy::VaultDestination>)> = Vec::new();
    if let SecretRef::Vault { path, .. } = &policy.eci.token {
        let mount = vault.default_mount();
        let what = format!("Vault read {mount}/{path} (the ECI credential)");
        let data = Need::new(format!("{mount}/data/{path}"), false);
        checks.push((what, vec![data], None));
    }
    for d in policy.tokens.iter().flat_map(|t| &t.vault) {
        let mount = d.mount.as_deref().unwrap_or(vault.default_mount());
        let what = format!("Vault write {mount}/{}", d.path);
        if checks.iter().any(|(w, _, _)| *w == what) {
            continue;
        }
        let data = Need::new(format!("{mount}/data/{}", d.path), true);
        let metadata = Need::new(format!("{mount}/metadata/{}", d.path), true);
        checks.push((what, vec![data, metadata], Some(d)));
    }
    if checks.is_empty() {
        return;
    }
    let paths: Vec<String> = checks
        .iter()
        .flat_map(|(_, needs, _)| needs.iter().map(|n| n.path.clone()))
        .collect();
    let caps = match vault.capabilities_self(&paths).await {
        Ok(caps) => caps,
        Err(e) => {
            for (what, _, _) in checks {
                rec.push(Check::new(what, Outcome::Failed(e.message.clone())));
            }
            return;
        }
    };
    for (what, needs, dest) in checks {
        let problems: Vec<String> = needs
            .iter()
            .filter_map(|n| n.missing(caps.get(&n.path).map_or(&[][..], Vec::as_slice)))
            .collect();
        let result = if !problems.is_empty() {
            Err(format!("the Vault token {}", problems.join("; ")))
        } else if let Some(d) = dest {
            vault.preflight(d).await.map_err(|e| e.message)
        } else {
            Ok(())
        };
        rec.push(Check::from_result(what, result));
    }
}

/// Each GitHub scope's public key (and selected repositories), once per scope.
async fn github_checks(rec: &mut Recorder<'_>, policy: &Policy) {
    let dests: Vec<&GithubDestination> = policy.tokens.iter().flat_map(|t| &t.github).collect();
    let Some(section) = &policy.github else {
        return;
    };
    if dests.is_empty() {
        return;
    }
    let github = match Github::connect(section) {
        Ok(g) => g,
        Err(e) => {
            let what = format!("GitHub client for {}", section.api_url);
            rec.push(Check::new(what, Outcome::Failed(e.message)));
            return;
        }
    };
    let mut seen = Vec::new();
    for dest in dests {
        let what = scope_label(dest);
        if seen.contains(&what) {
            continue;
        }
        seen.push(what.clone());
        let result = github.check_scope(dest).await.map_err(|e| e.message);
        rec.push(Check::from_result(what, result));
    }
}

/// `GitHub Actions secrets of repository acme/web`, `... of organization acme (selected: web, api)`.
fn scope_label(dest: &GithubDestination) -> String {
    let store = match dest.app {
        SecretApp::Actions => "Actions",
        SecretApp::Dependabot => "Dependabot",
    };
    let scope = match &dest.target {
        GithubTarget::Repo { owner, repo } => format!("repository {owner}/{repo}"),
        GithubTarget::Environment {
            owner,
            repo,
            environment,
        } => format!("environment {environment} of {owner}/{repo}"),
        GithubTarget::Org {
            org, repositories, ..
        } if !repositories.is_empty() => {
            format!("organization {org} (selected: {})", repositories.join(", "))
        }
        GithubTarget::Org { org, .. } => format!("organization {org}"),
    };
    format!("GitHub {store} secrets of {scope}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_summary() {
        let report = Report {
            checks: vec![
                Check::ok("Vault login at http://v (token auth)"),
                Check::new(
                    "ECI who-am-I at http://e",
                    Outcome::Ok(Some("organization a (1)".into())),
                ),
                Check::new("ECI credential expiry", Outcome::Warn("soon".into())),
                Check::new("Vault write secret/x", Outcome::Failed("denied".into())),
            ],
        };
        let lines: Vec<String> = report.checks.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "ok      Vault login at http://v (token auth)",
                "ok      ECI who-am-I at http://e: organization a (1)",
                "WARN    ECI credential expiry: soon",
                "FAILED  Vault write secret/x: denied",
            ]
        );
        assert_eq!(report.summary(), "online check: 2 ok, 1 warning, 1 failed");
        assert_eq!(report.failed(), 1);
    }

    #[test]
    fn vault_needs() {
        let need = Need::new("secret/data/a".into(), true);
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(need.missing(&caps(&["read", "update"])), None);
        assert_eq!(need.missing(&caps(&["root"])), None);
        assert_eq!(
            need.missing(&caps(&["read"])).as_deref(),
            Some("lacks create or update on secret/data/a (has read)")
        );
        assert_eq!(
            need.missing(&caps(&["deny"])).as_deref(),
            Some("lacks read and create or update on secret/data/a (has deny)")
        );
    }
}
