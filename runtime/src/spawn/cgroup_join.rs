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

use anyhow::{bail, Context, Result};

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
    open_dir(&dir)
}

/// Opens a cgroup v2 directory for CLONE_INTO_CGROUP.
fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open cgroup {}", dir.display()))?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `exec --cgroup`: the sub-cgroup(s) of the container's cgroup that the
/// new process joins instead, in runc's form `[CONTROLLER[,CONTROLLER]:]PATH`.
#[derive(Debug, Default)]
pub struct SubCgroups {
    /// `PATH` alone: the same sub-cgroup in every hierarchy.
    all: Option<String>,
    /// `CONTROLLER:PATH`, by controller name as /proc/PID/cgroup spells it
    /// (`memory`, `name=systemd`); the other hierarchies keep the
    /// container's cgroup.
    by_controller: Vec<(String, String)>,
}

impl SubCgroups {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut sub = SubCgroups::default();
        for arg in args {
            let parts: Vec<&str> = arg.splitn(3, ':').collect();
            match parts[..] {
                [path] if args.len() == 1 => sub.all = Some(path.to_string()),
                [_] => bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)"),
                // ":PATH" names no controller: every hierarchy, as runc reads it.
                ["", path] if args.len() == 1 => sub.all = Some(path.to_string()),
                [controllers, path] => {
                    for controller in controllers.split(',') {
                        if controller.is_empty() {
                            bail!("invalid --cgroup argument: {arg} (empty <controller> prefix)");
                        }
                        if sub.by_controller.iter().any(|(c, _)| c == controller) {
                            bail!("invalid --cgroup argument(s): controller {controller} specified multiple times");
                        }
                        sub.by_controller
                            .push((controller.to_string(), path.to_string()));
                    }
                }
                _ => bail!("invalid --cgroup argument: {arg}"),
            }
        }
        Ok(sub)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_controller.is_empty()
    }

    /// The sub-path for a hierarchy carrying `names`, if one was asked.
    fn for_hierarchy(&self, names: &[String]) -> Result<Option<&str>> {
        if let Some(all) = &self.all {
            return Ok(Some(all));
        }
        let mut found: Option<&str> = None;
        for (controller, path) in &self.by_controller {
            if names.contains(controller) {
                if found.is_some_and(|f| f != path) {
                    bail!(
                        "--cgroup: the controllers {} share one hierarchy but were given different paths",
                        names.join(",")
                    );
                }
                found = Some(path);
            }
        }
        Ok(found)
    }
}

/// `base` joined with a sub-cgroup path that may not climb out of it
/// (runc: "is not a sub cgroup path").
fn sub_dir(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for part in sub.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("{sub} is not a sub cgroup path");
                }
            }
            name => parts.push(name),
        }
    }
    let dir = parts.iter().fold(base.to_path_buf(), |d, p| d.join(p));
    if !dir.is_dir() {
        bail!("--cgroup: sub-cgroup {} does not exist", dir.display());
    }
    Ok(dir)
}

/// The controllers and `name=` of every cgroup v1 mount, from the super
/// options in mountinfo.
fn v1_names() -> Result<Vec<(PathBuf, Vec<String>)>> {
    let mountinfo = crate::mountinfo::read().context("read mountinfo")?;
    let mut found = Vec::new();
    for mount in crate::mountinfo::mounts(&mountinfo) {
        if mount.fs_type != "cgroup" {
            continue;
        }
        let names = mount
            .super_options()
            .filter(|o| {
                o.starts_with("name=")
                    || !(o.contains('=')
                        || matches!(
                            *o,
                            "rw" | "ro"
                                | "xattr"
                                | "noprefix"
                                | "clone_children"
                                | "cpuset_v2_mode"
                        ))
            })
            .map(str::to_string)
            .collect();
        found.push((mount.mount_point(), names));
    }
    Ok(found)
}

/// Parent, before the fork of `exec --cgroup`: the sub-cgroup directories
/// (which must exist: they are the caller's) the child joins, as
/// [`prepare`] gives the container's own. On a hybrid host a path for
/// every controller also names the sub-cgroup of the cgroup2 twin, as
/// runc 1.1 puts the process there; where the caller made none, the
/// process stays in the twin itself (runc fails).
pub fn prepare_sub(cgroup_path: &Path, sub: &SubCgroups) -> Result<Entry> {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if crate::cgroups::is_v2() {
        if let Some((controller, _)) = sub.by_controller.first() {
            // One hierarchy: runc knows only the unnamed path there.
            bail!("unknown controller {controller} in --cgroup (cgroup v2 takes a path alone)");
        }
        let root = Path::new("/sys/fs/cgroup");
        prepare_v2(root, rel, true)?;
        let dir = sub_dir(&root.join(rel), sub.all.as_deref().unwrap_or_default())?;
        return Ok(Entry {
            clone_into: Some(open_dir(&dir)?),
            tasks_files: Vec::new(),
        });
    }
    let names = v1_names()?;
    for (controller, _) in &sub.by_controller {
        if !names.iter().any(|(_, n)| n.contains(controller)) {
            bail!("unknown controller {controller} in --cgroup");
        }
    }
    let base = prepare(cgroup_path)?;
    let mut entry = Entry {
        clone_into: base.clone_into,
        tasks_files: Vec::new(),
    };
    if let (Some(path), Some(mount)) = (
        sub.all.as_deref(),
        crate::cgroups::V1Hierarchies::read()?.unified,
    ) {
        let twin_sub = sub_dir(&mount.join(rel), path).ok();
        if let Some(fd) = twin_sub.and_then(|d| open_dir(&d).ok()) {
            entry.clone_into = Some(fd);
        }
    }
    for tasks in base.tasks_files {
        let dir = tasks.parent().unwrap_or(Path::new("/"));
        let hierarchy = names
            .iter()
            .filter(|(point, _)| dir.starts_with(point))
            .max_by_key(|(point, _)| point.as_os_str().len());
        let wanted = match hierarchy {
            Some((_, n)) => sub.for_hierarchy(n)?,
            None => None,
        };
        entry.tasks_files.push(match wanted {
            Some(path) => sub_dir(dir, path)?.join("tasks"),
            None => tasks,
        });
    }
    Ok(entry)
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
