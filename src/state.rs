//! The state folder: where it is, its lock, and crash-safe writes of the files in it.

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where state lives: `$STATE_DIRECTORY` (systemd), else the policy's `[state] dir`,
/// else `/var/lib/eci-secret-sync`.
pub fn resolve_dir(policy_dir: Option<&Path>) -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, separated by ':'; the first is ours.
        let s = d.to_string_lossy().to_string();
        return PathBuf::from(s.split(':').next().unwrap_or(&s));
    }
    policy_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/var/lib/eci-secret-sync"))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is unreadable: {message}; nothing was changed. {}",
        corrupt_hint(path)
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "another eci-secret-sync{holder} holds the lock on {path} (a daemon pass or a one-shot run); \
         waited {}s, then gave up without changing anything", waited.as_secs()
    )]
    Locked {
        path: PathBuf,
        waited: Duration,
        holder: String,
    },
}

/// What an operator can do about an unreadable state file (none holds a secret value).
fn corrupt_hint(path: &Path) -> &'static str {
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    match folder {
        "rotations" => {
            "It is an open rotation's journal (no secret in it): move it aside and run again (a rotation \
             that was forced needs --rotate-now --force --token NAME); the run finds in ECI the \
             replacement this program made and finishes with it"
        }
        "tokens" => {
            "It records the token's last rotation (no secret in it): move it aside and run again; the token \
             of that name that expires first is then taken as the current one"
        }
        "minted" => {
            "It lists the replacements this program created (no secret in it): repair the JSON list of ids, \
             or move it aside; this program then deletes none of that token's other replacements and \
             reports them instead"
        }
        "held" => {
            "It lists replacements destinations may still hold, which must not be deleted (no secret in \
             it): repair the JSON list of ids (the token ids shown as kept before, or in the audit log's \
             abandoned records)"
        }
        "failures" => "It records the token's last failed run (no secret in it): remove it",
        _ => "It holds no secret value: repair it or move it aside and run again",
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An opened state folder (mode 0700).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Held for as long as this process is the one writer.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        for sub in ["", "rotations", "tokens", "held", "minted", "failures"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(io(&d))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(io(&d))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// A state folder that exists, opened without creating or changing anything (dry runs).
    pub fn open_existing(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the one-writer lock, waiting up to `wait` for another holder to let go.
    pub fn lock(&self, wait: Duration) -> Result<LockGuard, StateError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    // Who holds it, for the message another instance prints.
                    let mut f = &file;
                    let _ = f
                        .set_len(0)
                        .and_then(|()| write!(f, "{}", std::process::id()));
                    return Ok(LockGuard { _file: file });
                }
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = fs::read_to_string(&path)
                        .ok()
                        .and_then(|p| p.trim().parse::<u32>().ok())
                        .map(|pid| format!(" (pid {pid})"))
                        .unwrap_or_default();
                    return Err(StateError::Locked {
                        path,
                        waited: start.elapsed(),
                        holder,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
    }

    /// A file name for a token name: readable, collision-free, safe on any filesystem.
    pub fn file_for(&self, sub: &str, name: &str) -> PathBuf {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let digest = Sha256::digest(name.as_bytes());
        let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        self.dir.join(sub).join(format!("{clean}-{tag}.json"))
    }

    pub fn load<T: DeserializeOwned>(
        &self,
        sub: &str,
        name: &str,
    ) -> Result<Option<T>, StateError> {
        read_json(&self.file_for(sub, name))
    }

    pub fn save<T: Serialize>(&self, sub: &str, name: &str, value: &T) -> Result<(), StateError> {
        let path = self.file_for(sub, name);
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }

    pub fn remove(&self, sub: &str, name: &str) -> Result<(), StateError> {
        let path = self.file_for(sub, name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every file of `sub`, each read on its own: one that cannot be read does not hide the
    /// others.
    pub fn load_each<T: DeserializeOwned>(&self, sub: &str) -> Result<Vec<Loaded<T>>, StateError> {
        let d = self.dir.join(sub);
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&d)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&d))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_json(&path) {
                    Ok(Some(v)) => out.push((path, Ok(v))),
                    Ok(None) => {}
                    Err(e) => out.push((path, Err(e))),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A state file and what reading it gave.
pub type Loaded<T> = (PathBuf, Result<T, StateError>);

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Write a file so that a crash leaves either the old or the new content: temp file in the
/// same folder, fsync, rename over, fsync the folder. Mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if written.is_err() {
        // A full disk or a failed rename leaves no half-written file behind.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_remove_roundtrip_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .save("rotations", "ci/deploy", &vec![1, 2, 3])
            .unwrap();
        let back: Option<Vec<i32>> = store.load("rotations", "ci/deploy").unwrap();
        assert_eq!(back, Some(vec![1, 2, 3]));
        let files: Vec<_> = fs::read_dir(tmp.path().join("rotations"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temp file left behind");
        let mode = files[0]
            .as_ref()
            .unwrap()
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.remove("rotations", "ci/deploy").unwrap();
        assert!(
            store
                .load::<Vec<i32>>("rotations", "ci/deploy")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn second_lock_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let _held = store.lock(Duration::ZERO).unwrap();
        let err = store.lock(Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("holds the lock"), "{err}");
    }
}
