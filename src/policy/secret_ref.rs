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
            // Trailing whitespace (a newline from `$(cat file)` or an editor) is never part of
            // a credential, as with files.
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if value.trim_end().is_empty() => {
                    Err(format!("environment variable `{name}` is empty"))
                }
                Ok(value) => Ok(SecretValue::new(value.trim_end())),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable `{name}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable `{name}` is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => {
                let text = read_credential_file(path)?;
                let value = text.trim_end();
                if value.is_empty() {
                    return Err(format!("file `{}` is empty", path.display()));
                }
                Ok(SecretValue::new(value))
            }
            SecretRef::Vault { .. } => Err("resolved by the Vault client".to_owned()),
        }
    }

    /// [`resolve`](Self::resolve) for a value sent in an HTTP header or as a password: it must
    /// be one line (a line break inside a token cannot be sent, and is a pasting mistake).
    pub fn resolve_line(&self) -> Result<SecretValue, String> {
        let value = self.resolve()?;
        one_line(&value)?;
        Ok(value)
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

/// Why `value` is not a one-line credential (never quoting it).
pub(crate) fn one_line(value: &SecretValue) -> Result<(), String> {
    let v = value.expose();
    if let Some(at) = v.chars().position(char::is_control) {
        let what = match v.chars().nth(at) {
            Some('\n' | '\r') => "a line break",
            Some('\t') => "a tab",
            _ => "a control character",
        };
        return Err(format!(
            "the value has {what} at character {} (only trailing whitespace is dropped); a credential is one line",
            at + 1
        ));
    }
    Ok(())
}

/// The largest credential file read.
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Reads a credential file: a regular file of at most [`MAX_FILE_BYTES`], valid UTF-8. Never
/// blocks on a FIFO nor reads on from a device; errors name the path, never the content.
fn read_credential_file(path: &Path) -> Result<String, String> {
    read_small_file(path, "credential file", MAX_FILE_BYTES, "64 KiB")
}

/// Reads `path` if it is a regular file of at most `max` bytes of UTF-8 (`what` and `limit`
/// name it and the limit in errors). Looks before opening (opening a FIFO waits for a writer,
/// opening a device may act), opens non-blocking and checks the open file again; never reads
/// past the limit. Errors name the path, never the content.
pub(crate) fn read_small_file(
    path: &Path,
    what: &str,
    max: u64,
    limit: &str,
) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let shown = path.display();
    let cannot = |e: &std::io::Error| format!("cannot read file `{shown}`: {}", io_reason(e));
    let before = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    regular_file(path, what, &before.file_type())?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| cannot(&e))?;
    let opened = file.metadata().map_err(|e| cannot(&e))?;
    regular_file(path, what, &opened.file_type())?;
    let too_large = || format!("{what} `{shown}` is larger than {limit}");
    if opened.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| format!("cannot read file `{shown}`: not valid UTF-8"))
}

fn regular_file(path: &Path, what: &str, kind: &std::fs::FileType) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;

    if kind.is_file() {
        return Ok(());
    }
    let kind = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{what} `{}` is not a regular file ({kind})",
        path.display()
    ))
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
        "file" => {
            let raw = Path::new(value.get_ref());
            if raw.is_relative() {
                cx.relative_files.push((node.span(), raw.to_path_buf()));
            }
            SecretRef::File(resolve_path(raw, cx.file))
        }
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
            "expected \"<path>#<key>\", e.g. \"ops/eci#token\" (a path under `[vault] mount`), found {:?}",
            spec.get_ref()
        );
        cx.error(&spec.span(), inner.key("vault"), message);
        return None;
    };
    if let Some(problem) = super::reader::vault_path_problem(path) {
        cx.error(
            &spec.span(),
            inner.key("vault"),
            format!("the path {problem}"),
        );
        return None;
    }
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
    if let Some(candidate) = credentials_candidate(raw)
        && candidate.exists()
    {
        return candidate;
    }
    folder_candidate(raw, policy_file)
}

/// `raw` in `$CREDENTIALS_DIRECTORY`, when that is set (and not empty).
fn credentials_candidate(raw: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    Some(Path::new(&dir).join(raw))
}

/// `raw` next to the policy file.
fn folder_candidate(raw: &Path, policy_file: &Path) -> PathBuf {
    let folder = policy_file.parent().unwrap_or(Path::new(""));
    folder.join(raw)
}

/// Where a relative file reference that exists nowhere was looked for: `credentials` is its
/// `$CREDENTIALS_DIRECTORY` candidate (`None`: not set), `folder` the one next to the policy.
fn not_found(raw: &Path, credentials: Option<&Path>, folder: &Path) -> String {
    let credentials = credentials.map_or_else(|| "not set".to_owned(), |c| c.display().to_string());
    format!(
        "cannot read file `{}`: not in $CREDENTIALS_DIRECTORY ({credentials}) nor at {}",
        raw.display(),
        folder.display()
    )
}

/// Resolves every reference read from the policy once, reporting those that fail.
pub(crate) fn check_all(cx: &mut Ctx<'_>) {
    let refs = std::mem::take(&mut cx.secret_refs);
    for (secret, key) in &refs {
        if matches!(secret.get_ref(), SecretRef::Vault { .. }) {
            continue;
        }
        let mut message = match secret.get_ref().resolve() {
            Ok(value) if key == "github.app.private_key" => {
                // Read as the GitHub client will: a key it cannot use fails every run.
                match octocrab::EncodingKey::from_rsa_pem(value.expose().as_bytes()) {
                    Ok(_) => continue,
                    Err(e) => format!(
                        "{} is not a PEM RSA private key ({e}); use the .pem file GitHub gives for the App \
                         (it starts with -----BEGIN RSA PRIVATE KEY-----)",
                        secret.get_ref().describe()
                    ),
                }
            }
            // A password or signing secret is not sent in a header (SMTP AUTH encodes it, HMAC
            // takes any bytes): anything goes there.
            Ok(_) if key.ends_with(".password") || key.ends_with(".secret") => continue,
            Ok(value) => match one_line(&value) {
                Ok(()) => continue,
                Err(e) => format!("{}: {e}", secret.get_ref().describe()),
            },
            Err(message) => message,
        };
        if let SecretRef::File(path) = secret.get_ref() {
            let relative = cx
                .relative_files
                .iter()
                .find(|(at, _)| *at == secret.span());
            if let Some((_, raw)) = relative
                && matches!(path.try_exists(), Ok(false))
            {
                let credentials = credentials_candidate(raw);
                message = not_found(raw, credentials.as_deref(), &folder_candidate(raw, cx.file));
            }
        }
        cx.error(&secret.span(), key.clone(), message);
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
    fn file_refs_refuse_devices_directories_and_large_files() {
        let refused = |path: &Path| SecretRef::File(path.to_path_buf()).resolve().err();
        assert_eq!(
            refused(Path::new("/dev/zero")).as_deref(),
            Some("credential file `/dev/zero` is not a regular file (a character device)")
        );
        let dir = std::env::temp_dir().join(format!("policy-secret-size-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        assert_eq!(
            refused(&dir),
            Some(format!(
                "credential file `{}` is not a regular file (a directory)",
                dir.display()
            ))
        );
        let big = dir.join("big");
        let limit = usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX);
        assert!(std::fs::write(&big, "x".repeat(limit + 1)).is_ok());
        assert_eq!(
            refused(&big),
            Some(format!(
                "credential file `{}` is larger than 64 KiB",
                big.display()
            ))
        );
        assert!(std::fs::write(&big, "x".repeat(limit)).is_ok());
        let read = SecretRef::File(big).resolve().map(|v| v.expose().len());
        assert_eq!(read, Ok(limit));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_relative_file_says_where_it_was_looked_for() {
        let folder = Path::new("/etc/ess/eci");
        assert_eq!(
            not_found(Path::new("eci"), None, folder),
            "cannot read file `eci`: not in $CREDENTIALS_DIRECTORY (not set) nor at /etc/ess/eci"
        );
        let credentials = Path::new("/run/credentials/ess.service/eci");
        assert_eq!(
            not_found(Path::new("eci"), Some(credentials), folder),
            "cannot read file `eci`: not in $CREDENTIALS_DIRECTORY \
             (/run/credentials/ess.service/eci) nor at /etc/ess/eci"
        );
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
