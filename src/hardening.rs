//! Process hardening at start: a private umask, and warnings for policy and credential files
//! that others can read.

use crate::policy::{ChannelPolicy, GithubAuth, Policy, SecretRef, VaultAuth};
use rustix::fs::Mode;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Every file this process creates is private (0600 files, 0700 folders) whatever the caller's
/// umask was.
pub fn private_umask() {
    rustix::process::umask(Mode::from_raw_mode(0o077));
}

/// One line per policy or credential file that group or others may read or write.
pub fn permission_warnings(policy: &Policy) -> Vec<String> {
    let mut files: Vec<(String, PathBuf)> = vec![("policy".into(), policy.source.clone())];
    let mut add = |what: &str, r: &SecretRef| {
        if let SecretRef::File(p) = r {
            files.push((what.to_string(), p.clone()));
        }
    };
    add("[eci] token", &policy.eci.token);
    if let Some(v) = &policy.vault {
        match &v.auth {
            VaultAuth::Token { token } => add("[vault] auth token", token),
            VaultAuth::AppRole {
                role_id, secret_id, ..
            } => {
                add("[vault] auth role_id", role_id);
                add("[vault] auth secret_id", secret_id);
            }
            VaultAuth::Kubernetes { .. } => {} // the service account token is the platform's
        }
    }
    if let Some(g) = &policy.github {
        match &g.auth {
            GithubAuth::Token(t) => add("[github] token", t),
            GithubAuth::App { private_key, .. } => add("[github] app private_key", private_key),
        }
    }
    for c in &policy.notify.channels {
        channel_refs(c, &mut add);
    }
    files
        .iter()
        .filter_map(|(what, path)| loose(path).map(|mode| (what, path, mode)))
        .map(|(what, path, mode)| {
            format!(
                "{what} file {} can be read by other users (mode {mode:04o}); chmod 600 it, or 640 with \
                 the service's group",
                path.display()
            )
        })
        .collect()
}

fn channel_refs(c: &ChannelPolicy, add: &mut impl FnMut(&str, &SecretRef)) {
    for (what, r) in [
        ("[[notify.channel]] url", &c.url),
        ("[[notify.channel]] secret", &c.secret),
        ("[[notify.channel]] username", &c.username),
        ("[[notify.channel]] password", &c.password),
    ] {
        if let Some(r) = r {
            add(what, r);
        }
    }
}

/// The file's permission bits, when others have any access, or its group has and that group
/// is not one this process runs with (a service's own group may read its policy: 0640
/// root:eci-secret-sync is the intended setup).
fn loose(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.permissions().mode() & 0o777;
    let others = mode & 0o007 != 0;
    let group = mode & 0o070 != 0 && !own_group(meta.gid());
    (others || group).then_some(mode)
}

/// `gid` is one this process runs with, or the service's own group (`eci-secret-sync`, as
/// the unit and its install notes set up: root checking the policy by hand is not warned about
/// the intended 0640 root:eci-secret-sync).
fn own_group(gid: u32) -> bool {
    let mine = |g: rustix::process::Gid| g.as_raw() == gid;
    mine(rustix::process::getegid())
        || rustix::process::getgroups().is_ok_and(|groups| groups.into_iter().any(mine))
        || group_name(gid).as_deref() == Some(SERVICE_GROUP)
}

/// The group the systemd unit runs the service as.
const SERVICE_GROUP: &str = "eci-secret-sync";

/// The name of group `gid` in `/etc/group` (where systemd-sysusers puts the service's group).
fn group_name(gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == gid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_access_by_others_but_not_by_the_own_group() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let closed = dir.path().join("closed");
        std::fs::write(&open, "x").unwrap();
        std::fs::write(&closed, "x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loose(&open), Some(0o644));
        assert_eq!(loose(&closed), None);
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(u32::MAX - 7), None);
        // Group-readable by this process's own group is fine.
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(loose(&closed), None);
    }
}
