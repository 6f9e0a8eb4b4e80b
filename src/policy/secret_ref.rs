//! Secret references (`{ env = ... }`, `{ file = ... }`, `{ vault = "path#key" }`): their TOML
//! form and their resolution to a [`SecretValue`]. A policy never holds a secret itself.

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeValue;

use super::reader::{Ctx, Table, a_type};
use crate::secret::SecretValue;

/// Where a secret comes from. Holds names and paths only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file (already resolved against `$CREDENTIALS_DIRECTORY` or the policy's folder);
    /// trailing whitespace is trimmed.
    File(PathBuf),
    /// A key of a Vault KV secret; only for `[eci] token`, read by the Vault client.
    Vault { path: String, key: String },
}

pub(crate) const LITERAL_SECRET: &str =
    "literal secret values are not allowed; use { env = \"...\" } or { file = \"...\" }";

impl SecretRef {
    /// Reads the secret. Errors name the variable or path, never the content.
    pub fn resolve(&self) -> Result<SecretValue, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if value.is_empty() => {
                    Err(format!("environment variable `{name}` is empty"))
                }
                Ok(value) => Ok(SecretValue::new(value)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable `{name}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable `{name}` is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => {
                let shown = path.display();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read file `{shown}`: {}", io_reason(&e)))?;
                let value = text.trim_end();
                if value.is_empty() {
                    return Err(format!("file `{shown}` is empty"));
                }
                Ok(SecretValue::new(value))
            }
            SecretRef::Vault { .. } => Err("resolved by the Vault client".to_owned()),
        }
    }

    /// `"env ECI_ACCESS_TOKEN"`, `"file /x"`, `"vault secret/x#k"`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("env {name}"),
            SecretRef::File(path) => format!("file {}", path.display()),
            SecretRef::Vault { path, key } => format!("vault {path}#{key}"),
        }
    }
}

/// An io error without the OS's "(os error 2)" noise, and never the file's content.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::InvalidData => "not valid UTF-8".to_owned(),
        _ => e.to_string(),
    }
}

/// Whether `{ vault = "path#key" }` is accepted at this place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum VaultRefs {
    Allowed,
    NotAllowed,
}

/// Reads the secret reference at `name` of `table` and remembers it for the resolve check.
pub(crate) fn read(
    cx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    name: &str,
    vault: VaultRefs,
) -> Option<SecretRef> {
    let node = table.get(name)?;
    let key = table.key(name);
    let map = match node.get_ref() {
        DeValue::Table(map) => map,
        DeValue::String(_) => {
            cx.error(&node.span(), key, LITERAL_SECRET);
            return None;
        }
        other => {
            let found = a_type(other);
            let message = format!(
                "expected a secret reference ({{ env = \"...\" }} or {{ file = \"...\" }}), found {found}"
            );
            cx.error(&node.span(), key, message);
            return None;
        }
    };
    let inner = Table {
        map,
        span: node.span(),
        path: key.clone(),
    };
    inner.check_keys(cx, &["env", "file", "vault"]);
    let kinds: Vec<&str> = ["env", "file", "vault"]
        .into_iter()
        .filter(|k| inner.has(k))
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            let message = "expected exactly one of `env` or `file`, found none";
            cx.error(&node.span(), key, message);
            return None;
        }
        _ => {
            let message = "give exactly one of `env` or `file`, not several";
            cx.error(&node.span(), key, message);
            return None;
        }
    };
    if kind == "vault" && vault == VaultRefs::NotAllowed {
        let message = "a `vault` reference is only allowed for `[eci] token`; use `env` or `file`";
        cx.error(&inner.key_span("vault"), inner.key("vault"), message);
        return None;
    }
    let value = inner.text(cx, kind)?;
    let secret = match kind {
        "env" => env_ref(cx, &inner, &value)?,
        "file" => SecretRef::File(resolve_path(Path::new(value.get_ref()), cx.file)),
        _ => vault_ref(cx, &inner, &value)?,
    };
    cx.secret_refs
        .push((Spanned::new(node.span(), secret.clone()), key));
    Some(secret)
}

/// A secret reference that must be present.
pub(crate) fn read_required(
    cx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    name: &str,
    vault: VaultRefs,
) -> Option<SecretRef> {
    if !t.has(name) {
        t.missing(cx, name, "{ env = \"...\" } or { file = \"...\" }");
        return None;
    }
    read(cx, t, name, vault)
}

fn env_ref(cx: &mut Ctx<'_>, inner: &Table<'_, '_>, name: &Spanned<String>) -> Option<SecretRef> {
    let text = name.get_ref();
    if text.contains(['=', '\0']) || text.trim() != text {
        let message = format!("invalid environment variable name {text:?}");
        cx.error(&name.span(), inner.key("env"), message);
        return None;
    }
    Some(SecretRef::Env(text.clone()))
}

fn vault_ref(cx: &mut Ctx<'_>, inner: &Table<'_, '_>, spec: &Spanned<String>) -> Option<SecretRef> {
    let parsed = spec
        .get_ref()
        .rsplit_once('#')
        .map(|(path, key)| (path.trim_matches('/'), key))
        .filter(|(path, key)| !path.is_empty() && !key.is_empty());
    let Some((path, key)) = parsed else {
        let message = format!(
            "expected \"<path>#<key>\", e.g. \"secret/eci#token\", found {:?}",
            spec.get_ref()
        );
        cx.error(&spec.span(), inner.key("vault"), message);
        return None;
    };
    Some(SecretRef::Vault {
        path: path.to_owned(),
        key: key.to_owned(),
    })
}

/// A relative path is looked up in `$CREDENTIALS_DIRECTORY` (systemd credentials) when that is
/// set and the file exists there, else next to the policy file.
pub(crate) fn resolve_path(raw: &Path, policy_file: &Path) -> PathBuf {
    if raw.is_absolute() {
        return raw.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let candidate = Path::new(&dir).join(raw);
        if candidate.exists() {
            return candidate;
        }
    }
    let folder = policy_file.parent().unwrap_or(Path::new(""));
    folder.join(raw)
}

/// Resolves every reference read from the policy once, reporting those that fail.
pub(crate) fn check_all(cx: &mut Ctx<'_>) {
    let refs = std::mem::take(&mut cx.secret_refs);
    for (secret, key) in &refs {
        if matches!(secret.get_ref(), SecretRef::Vault { .. }) {
            continue;
        }
        if let Err(message) = secret.get_ref().resolve() {
            cx.error(&secret.span(), key.clone(), message);
        }
    }
    cx.secret_refs = refs;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_without_values() {
        assert_eq!(
            SecretRef::Env("ECI_ACCESS_TOKEN".into()).describe(),
            "env ECI_ACCESS_TOKEN"
        );
        assert_eq!(SecretRef::File("/x".into()).describe(), "file /x");
        let vault = SecretRef::Vault {
            path: "secret/x".into(),
            key: "k".into(),
        };
        assert_eq!(vault.describe(), "vault secret/x#k");
        assert_eq!(
            vault.resolve().err().as_deref(),
            Some("resolved by the Vault client")
        );
    }

    #[test]
    fn file_refs_trim_and_name_the_path() {
        let dir = std::env::temp_dir().join(format!("policy-secret-ref-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("token");
        let written = std::fs::write(&path, "s3cret\n\n");
        assert!(written.is_ok());
        let value = SecretRef::File(path.clone()).resolve();
        assert_eq!(
            value.map(|v| v.expose().to_owned()),
            Ok("s3cret".to_owned())
        );
        let missing = SecretRef::File(dir.join("nope")).resolve();
        let expected = format!(
            "cannot read file `{}`: no such file",
            dir.join("nope").display()
        );
        assert_eq!(missing.err(), Some(expected));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_paths_sit_next_to_the_policy() {
        let resolved = resolve_path(Path::new("creds/eci"), Path::new("/etc/ess/policy.toml"));
        // CREDENTIALS_DIRECTORY is not set for unit tests (or has no such file).
        assert_eq!(resolved, PathBuf::from("/etc/ess/creds/eci"));
        let absolute = resolve_path(Path::new("/abs"), Path::new("/etc/ess/policy.toml"));
        assert_eq!(absolute, PathBuf::from("/abs"));
    }
}
