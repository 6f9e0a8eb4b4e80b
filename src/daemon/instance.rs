//! One daemon per state folder: `daemon.lock`, held (flock) for the daemon's lifetime, names its pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE: &str = "daemon.lock";

/// Released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Become the state folder's daemon, or say who already is.
pub fn acquire(dir: &Path) -> Result<InstanceLock, String> {
    let path = dir.join(FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            let pid = std::process::id().to_string();
            let written = file
                .set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(pid.as_bytes()));
            if let Err(e) = written {
                tracing::debug!(error = %e, "cannot record the pid in {}", path.display());
            }
            Ok(InstanceLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            Err(format!(
                "another eci-secret-sync daemon{holder} is already running on the state folder {}; \
                 stop it first, or give this one its own state folder",
                dir.display()
            ))
        }
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_daemon_is_refused_with_the_holders_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let _held = acquire(tmp.path()).unwrap();
        let err = acquire(tmp.path()).unwrap_err();
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        assert!(err.contains("already running"), "{err}");
    }
}
