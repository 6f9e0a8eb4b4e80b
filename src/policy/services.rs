//! The service sections: `[eci]`, `[vault]` (with its auth methods) and `[github]`.

use std::path::PathBuf;
use std::time::Duration;

use super::model::*;
use super::reader::{Ctx, Table};
use super::secret_ref::{self, SecretRef, VaultRefs, read_required};
use super::url::check_http_url;

const INSECURE: &str = "allow_insecure_http";

pub(crate) fn eci(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Option<EciSection> {
    let Some(t) = root.table(cx, "eci") else {
        if !root.has("eci") {
            cx.error(&root.span, "eci", "missing required section [eci]");
        }
        return None;
    };
    t.check_keys(cx, &["endpoint", "token", INSECURE, "timeout"]);
    let allow_insecure_http = t.bool(cx, INSECURE).unwrap_or(false);
    let endpoint = url(
        cx,
        &t,
        "endpoint",
        Some(DEFAULT_ECI_ENDPOINT),
        allow_insecure_http,
    );
    let timeout = timeout(cx, &t);
    let token = read_required(cx, &t, "token", VaultRefs::Allowed);
    Some(EciSection {
        endpoint: endpoint?,
        token: token?,
        allow_insecure_http,
        timeout,
    })
}

pub(crate) fn vault(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Option<VaultSection> {
    let t = root.table(cx, "vault")?;
    let keys = ["address", "auth", "mount", "namespace", "timeout", INSECURE];
    t.check_keys(cx, &keys);
    let allow_insecure_http = t.bool(cx, INSECURE).unwrap_or(false);
    let address = url(cx, &t, "address", None, allow_insecure_http);
    let auth = vault_auth(cx, &t);
    let mount = t
        .path_segment(cx, "mount")
        .unwrap_or_else(|| "secret".to_owned());
    // Sent as the X-Vault-Namespace header: one line of visible characters.
    let namespace = t
        .text(cx, "namespace")
        .filter(|n| {
            let bad = n.get_ref().chars().any(char::is_control);
            if bad {
                cx.error(
                    &n.span(),
                    t.key("namespace"),
                    "must not contain control characters (a line break, a tab, NUL)",
                );
            }
            !bad
        })
        .map(|s| s.into_inner());
    let timeout = timeout(cx, &t);
    Some(VaultSection {
        address: address?,
        auth: auth?,
        mount,
        namespace,
        timeout,
        allow_insecure_http,
    })
}

fn vault_auth(cx: &mut Ctx<'_>, vault: &Table<'_, '_>) -> Option<VaultAuth> {
    let Some(t) = vault.table(cx, "auth") else {
        if !vault.has("auth") {
            vault.missing(
                cx,
                "auth",
                "e.g. { method = \"token\", token = { env = \"VAULT_TOKEN\" } }",
            );
        }
        return None;
    };
    let methods = ["token", "approle", "kubernetes"];
    if !t.has("method") {
        t.missing(cx, "method", "\"token\", \"approle\" or \"kubernetes\"");
        return None;
    }
    let method = *t.choice(cx, "method", &methods)?.get_ref();
    match method {
        "token" => {
            t.check_keys(cx, &["method", "token"]);
            let token = read_required(cx, &t, "token", VaultRefs::NotAllowed)?;
            Some(VaultAuth::Token { token })
        }
        "approle" => {
            t.check_keys(cx, &["method", "role_id", "secret_id", "mount"]);
            let role_id = read_required(cx, &t, "role_id", VaultRefs::NotAllowed);
            let secret_id = read_required(cx, &t, "secret_id", VaultRefs::NotAllowed);
            let mount = t
                .path_segment(cx, "mount")
                .unwrap_or_else(|| "approle".to_owned());
            Some(VaultAuth::AppRole {
                role_id: role_id?,
                secret_id: secret_id?,
                mount,
            })
        }
        _ => {
            t.check_keys(cx, &["method", "role", "jwt", "mount"]);
            let role = t.required_text(cx, "role");
            let jwt = if t.has("jwt") {
                secret_ref::read(cx, &t, "jwt", VaultRefs::NotAllowed)
            } else {
                let jwt = SecretRef::File(PathBuf::from(DEFAULT_KUBERNETES_JWT));
                let at = toml::Spanned::new(t.span.clone(), jwt.clone());
                cx.secret_refs.push((at, t.key("jwt")));
                Some(jwt)
            };
            let mount = t
                .path_segment(cx, "mount")
                .unwrap_or_else(|| "kubernetes".to_owned());
            Some(VaultAuth::Kubernetes {
                role: role?.into_inner(),
                jwt: jwt?,
                mount,
            })
        }
    }
}

pub(crate) fn github(cx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Option<GithubSection> {
    let t = root.table(cx, "github")?;
    t.check_keys(
        cx,
        &[
            "token",
            "app",
            "api_url",
            "timeout",
            "write_interval",
            INSECURE,
        ],
    );
    let allow_insecure_http = t.bool(cx, INSECURE).unwrap_or(false);
    let api_url = url(
        cx,
        &t,
        "api_url",
        Some(DEFAULT_GITHUB_API_URL),
        allow_insecure_http,
    );
    let timeout = timeout(cx, &t);
    let write_interval = t
        .duration(cx, "write_interval")
        .map_or(DEFAULT_GITHUB_WRITE_INTERVAL, |d| d.into_inner());
    let auth = match (t.has("token"), t.has("app")) {
        (true, true) => {
            let message = "give either `token` or `app`, not both";
            cx.error(&t.key_span("app"), t.key("app"), message);
            // Still check both, so their own problems show up in this round too.
            secret_ref::read(cx, &t, "token", VaultRefs::NotAllowed);
            github_app(cx, &t);
            None
        }
        (false, false) => {
            t.missing(cx, "token", "or `app`");
            None
        }
        (true, false) => {
            secret_ref::read(cx, &t, "token", VaultRefs::NotAllowed).map(GithubAuth::Token)
        }
        (false, true) => github_app(cx, &t),
    };
    Some(GithubSection {
        auth: auth?,
        api_url: api_url?,
        timeout,
        allow_insecure_http,
        write_interval,
    })
}

fn github_app(cx: &mut Ctx<'_>, github: &Table<'_, '_>) -> Option<GithubAuth> {
    let t = github.table(cx, "app")?;
    t.check_keys(cx, &["app_id", "installation_id", "private_key"]);
    let mut id = |name: &str| {
        if !t.has(name) {
            t.missing(cx, name, "");
        }
        t.integer(cx, name, 1..=i64::MAX)
            .and_then(|n| u64::try_from(n).ok())
    };
    let app_id = id("app_id");
    let installation_id = id("installation_id");
    let private_key = read_required(cx, &t, "private_key", VaultRefs::NotAllowed);
    Some(GithubAuth::App {
        app_id: app_id?,
        installation_id: installation_id?,
        private_key: private_key?,
    })
}

/// A URL key with an optional default.
fn url(
    cx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    name: &str,
    default: Option<&str>,
    allow_insecure: bool,
) -> Option<String> {
    if !t.has(name) {
        if default.is_none() {
            t.missing(cx, name, "");
        }
        return default.map(str::to_owned);
    }
    let value = t.text(cx, name)?;
    let section = t.path.split(['.', '[']).next().unwrap_or_default();
    match check_http_url(value.get_ref().trim(), allow_insecure, section) {
        Ok(url) => Some(url),
        Err(message) => {
            cx.error(&value.span(), t.key(name), message);
            None
        }
    }
}

/// `timeout`, default 30s, must be positive.
fn timeout(cx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Duration {
    match t.duration(cx, "timeout") {
        Some(d) if d.get_ref().is_zero() => {
            cx.error(&d.span(), t.key("timeout"), "must be longer than 0s");
            DEFAULT_TIMEOUT
        }
        Some(d) => d.into_inner(),
        None => DEFAULT_TIMEOUT,
    }
}
