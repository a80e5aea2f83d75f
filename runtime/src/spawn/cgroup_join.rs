//! How the container's process enters its cgroup without being moved.
//!
//! Moving another process into a cgroup takes the kernel's global
//! threadgroup rwsem for writing, which waits for an RCU grace period (about
//! 15 ms measured here, the largest single cost of a create). Two ways
//! avoid it:
//! - cgroup v2: clone3 with CLONE_INTO_CGROUP starts the child in its cgroup;
//! - cgroup v1: a single-threaded process that moves *itself* through a
//!   `tasks` file (writing "0") skips the lock, so the child joins itself.
//!   A hybrid host's cgroup2 mount has no `tasks` file (and a self-move
//!   through cgroup.procs takes the lock), but it is a cgroup v2 hierarchy:
//!   clone3 starts the child in its directory there.
//!
//! Either way the parent creates the directories beforehand (enabling v2
//! controllers, seeding v1 cpuset) and applies the limits through libcgroups.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The prepared way in.
#[derive(Debug, Default)]
pub struct Entry {
    /// A cgroup v2 directory opened for clone3's CLONE_INTO_CGROUP: the
    /// container's cgroup on v2, its hybrid cgroup2 twin on v1.
    clone_into: Option<OwnedFd>,
    /// v1: the `tasks` files the child writes itself into.
    tasks_files: Vec<PathBuf>,
}

impl Entry {
    pub fn clone_into(&self) -> Option<RawFd> {
        self.clone_into.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Child, right after the fork: join every prepared v1 cgroup.
    pub fn join_self(&self) -> Result<()> {
        for file in &self.tasks_files {
            std::fs::write(file, b"0")
                .with_context(|| format!("join cgroup {}", file.display()))?;
        }
        Ok(())
    }
}

/// Parent, before the fork: creates the container's cgroup directories and
/// returns how the child gets in.
pub fn prepare(cgroup_path: &Path) -> Result<Entry> {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if crate::cgroups::is_v2() {
        return Ok(Entry {
            clone_into: Some(prepare_v2(Path::new("/sys/fs/cgroup"), rel, true)?),
            tasks_files: Vec::new(),
        });
    }
    let hierarchies = crate::cgroups::V1Hierarchies::read()?;
    let mut entry = Entry::default();
    for mount in hierarchies.controllers {
        let dir = mount.join(rel);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("create cgroup {}", dir.display()))?;
        if mount
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("cpuset"))
        {
            seed_cpuset(&mount, rel)?;
        }
        entry.tasks_files.push(dir.join("tasks"));
    }
    // The hierarchies without limits are joined as runc joins them, but a
    // host that does not let us write there keeps a working container.
    if let Some(mount) = hierarchies.systemd {
        let dir = mount.join(rel);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => entry.tasks_files.push(dir.join("tasks")),
            Err(e) => crate::log::debug(&format!("create cgroup {}: {e}", dir.display())),
        }
    }
    if let Some(mount) = hierarchies.unified {
        // No controllers are enabled there: v1 holds the limits.
        match prepare_v2(&mount, rel, false) {
            Ok(fd) => entry.clone_into = Some(fd),
            Err(e) => crate::log::debug(&format!("hybrid cgroup2 {}: {e:#}", mount.display())),
        }
    }
    Ok(entry)
}

/// Creates the v2 directory under `root` level by level, enabling in each
/// parent's subtree_control every controller it has (as libcgroups does)
/// when `enable_controllers`, and opens it for CLONE_INTO_CGROUP.
fn prepare_v2(root: &Path, rel: &Path, enable_controllers: bool) -> Result<OwnedFd> {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        if enable_controllers {
            enable_every_controller(&dir);
        }
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create cgroup {}", dir.display())),
        }
    }
    let fd = nix::fcntl::open(
        &dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open cgroup {}", dir.display()))?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Enables in `dir`'s subtree_control every controller `dir` has.
fn enable_every_controller(dir: &Path) {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in available.split_whitespace() {
        if !enabled.split_whitespace().any(|c| c == controller) {
            // One at a time: a controller the parent cannot delegate must
            // not keep the others off; apply reports what is missing.
            if let Err(e) =
                std::fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}"))
            {
                crate::log::debug(&format!("enable {controller} in {}: {e}", dir.display()));
            }
        }
    }
}

/// A new v1 cpuset starts with empty cpus and mems, and no task may join
/// it then: copy them down from the nearest ancestor, level by level.
fn seed_cpuset(mount: &Path, rel: &Path) -> Result<()> {
    let mut dir = mount.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let inherited = std::fs::read_to_string(parent.join(file))
                    .with_context(|| format!("read {}", parent.join(file).display()))?;
                std::fs::write(dir.join(file), inherited.trim())
                    .with_context(|| format!("seed {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}
