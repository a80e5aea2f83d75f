//! Idmapped mounts (runtime-spec 1.1+: `mounts[].uidMappings`/`gidMappings`
//! and the `idmap`/`ridmap` options): a bind's detached copy given the
//! idmapping of a user namespace (mount_setattr(MOUNT_ATTR_IDMAP)), then
//! attached in the container like any other bind.
//!
//! Everything here runs in the runtime before the container's process is
//! cloned: giving a mount an idmapping takes CAP_SYS_ADMIN in the user
//! namespace that owns the source's filesystem (the host's, for ext4 or a
//! host tmpfs), which the container's root in a user namespace lacks.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

/// What a mount asks for: an idmapping, on the top mount only (`idmap`) or
/// on every mount of the tree (`ridmap`), with the mount's own maps or,
/// without them, the container's user namespace's.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub recursive: bool,
    /// uid_map and gid_map text; None: the container's user namespace.
    pub maps: Option<(String, String)>,
}

/// The text of a uid_map or gid_map file.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The idmapping `m` asks for, None for a plain mount; a one-line error for
/// a request that cannot be honoured as written (the spec's rules, and
/// runc's where it is silent). `in_user_ns`: the container has a user
/// namespace (new or joined), whose mapping stands in for missing maps.
pub fn request(m: &Mount, is_bind: bool, in_user_ns: bool) -> Result<Option<Request>> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let idmap = opts.iter().any(|o| o == "idmap");
    let ridmap = opts.iter().any(|o| o == "ridmap");
    let uid = m.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = m.gid_mappings().as_deref().unwrap_or(&[]);
    if !idmap && !ridmap {
        // why: the spec asks for the option with the maps so that a runtime
        // without idmap support refuses instead of ignoring them; a mount
        // with maps and no option is ambiguous (recursive or not).
        if !uid.is_empty() || !gid.is_empty() {
            bail!("uidMappings/gidMappings need the idmap or ridmap option");
        }
        return Ok(None);
    }
    if !is_bind {
        bail!("idmap and ridmap are supported on bind mounts only");
    }
    if uid.is_empty() != gid.is_empty() {
        bail!("uidMappings and gidMappings must be given together");
    }
    if uid.is_empty() && !in_user_ns {
        bail!("idmap without uidMappings/gidMappings needs the container in a user namespace");
    }
    let maps = (!uid.is_empty()).then(|| (map_text(uid), map_text(gid)));
    Ok(Some(Request {
        recursive: ridmap,
        maps,
    }))
}

/// Idmapping a mount of the host's filesystems takes CAP_SYS_ADMIN in the
/// host's user namespace (the one owning the source's superblock), and the
/// detached copy of the source CAP_SYS_ADMIN over the host's mount
/// namespace: a rootless ozz has neither, so it says so in one line
/// instead of the first EPERM (runc refuses them for a rootless container).
pub fn check_privileged() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("idmapped mounts are not supported for a rootless container: the kernel lets only the host's root idmap a mount of the host's filesystems");
    }
    Ok(())
}

/// A user namespace with these maps, only to lend its mapping to mounts: a
/// child cloned into a new user namespace waits while we write its maps and
/// open /proc/PID/ns/user, then is killed and reaped. The namespace lives
/// on as long as the descriptor (and the mounts that use it).
pub fn user_ns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let parent = nix::unistd::getpid().as_raw();
    let pid = crate::spawn::clone3(CloneFlags::CLONE_NEWUSER, None)
        .context("clone a process for the idmapping's user namespace")?;
    if pid == 0 {
        // SAFETY: only async-signal-safe system calls, in a copy of this
        // single-threaded process: drop every inherited descriptor (none
        // may outlive the runtime in here), die with the parent (or at
        // once if it is already gone), and wait for the SIGKILL that ends
        // this process.
        unsafe {
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            loop {
                libc::pause();
            }
        }
    }
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            crate::spawn::kill_and_reap(self.0);
        }
    }
    let _reap = Reap(pid);
    std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)
        .with_context(|| format!("write the idmapping's uid_map {uid_map:?}"))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)
        .with_context(|| format!("write the idmapping's gid_map {gid_map:?}"))?;
    open_user_ns(Path::new(&format!("/proc/{pid}/ns/user")))
}

/// An existing user namespace (the container's, joined by path).
pub fn open_user_ns(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open user namespace {}", path.display()))?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The user namespace for the requests without maps: the one the container
/// joins by path, or one made with the container's own maps (the same
/// mapping as the namespace clone3 will make for it).
pub fn container_user_ns(spec: &Spec, joined: Option<&Path>) -> Result<OwnedFd> {
    if let Some(path) = joined {
        return open_user_ns(path);
    }
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    if uid.is_empty() || gid.is_empty() {
        bail!("idmap without uidMappings/gidMappings needs the container's uid and gid mappings");
    }
    user_ns_with_maps(&map_text(&uid), &map_text(&gid))
}

/// A detached copy of `source` (its submounts too with `rbind`) carrying
/// the idmapping of `userns`, ready for move_mount.
pub fn idmapped_tree(
    source: &Path,
    rbind: bool,
    recursive: bool,
    userns: &OwnedFd,
) -> Result<OwnedFd> {
    let file = nix::fcntl::open(
        source,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {}", source.display()))?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    let file = unsafe { OwnedFd::from_raw_fd(file) };
    let tree = crate::mount_api::open_tree_clone(file.as_fd(), rbind)?;
    if let Err(e) = crate::mount_api::mount_setattr_idmap(tree.as_fd(), userns.as_fd(), recursive) {
        let what = if recursive {
            format!("{} or a mount under it", source.display())
        } else {
            source.display().to_string()
        };
        match e.raw_os_error() {
            Some(libc::EINVAL) => bail!(
                "{what} cannot be idmapped: its filesystem does not support idmapped mounts ({e})"
            ),
            Some(libc::EPERM) => bail!(
                "{what} cannot be idmapped: not permitted (already idmapped, or its filesystem belongs to another user namespace) ({e})"
            ),
            _ => bail!("idmap {what}: mount_setattr: {e}"),
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(v: serde_json::Value) -> Mount {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_and_refusals() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let plain = mount(serde_json::json!({"destination": "/a", "options": ["rbind"]}));
        assert_eq!(request(&plain, true, false).unwrap(), None);
        let both = mount(
            serde_json::json!({"destination": "/a", "options": ["rbind", "ridmap"],
            "uidMappings": map, "gidMappings": map}),
        );
        let r = request(&both, true, false).unwrap().unwrap();
        assert!(r.recursive);
        assert_eq!(r.maps, Some(("0 1000 1\n".into(), "0 1000 1\n".into())));
        let no_opt = mount(
            serde_json::json!({"destination": "/a", "options": ["rbind"],
            "uidMappings": map, "gidMappings": map}),
        );
        assert!(request(&no_opt, true, true).is_err());
        assert!(request(&both, false, true).is_err());
        let uid_only = mount(
            serde_json::json!({"destination": "/a", "options": ["idmap"],
            "uidMappings": map}),
        );
        assert!(request(&uid_only, true, true).is_err());
        let bare = mount(serde_json::json!({"destination": "/a", "options": ["idmap"]}));
        assert!(request(&bare, true, false).is_err());
        let r = request(&bare, true, true).unwrap().unwrap();
        assert!(!r.recursive && r.maps.is_none());
    }
}
