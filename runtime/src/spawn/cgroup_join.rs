//! How the container's process enters its cgroup on v1 (hybrid) hosts.
//!
//! Moving another process into a cgroup takes the kernel's global
//! threadgroup rwsem for writing, which waits for an RCU grace period (about
//! 15 ms measured here, the largest single cost of a create). A thread that
//! moves *itself* through a v1 `tasks` file (writing "0") skips that lock.
//! Our child is single-threaded, so it joins its own cgroups that way; the
//! parent only creates the directories (and seeds cpuset) beforehand and
//! applies the limits through libcgroups. On cgroup v2 the parent keeps
//! using libcgroups' add_task.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Parent, before the fork: creates the container's directory in every
/// mounted v1 hierarchy that libcgroups manages and returns their `tasks`
/// files. Empty on a cgroup v2 host.
pub fn prepare(cgroup_path: &Path) -> Result<Vec<PathBuf>> {
    if crate::cgroups::is_v2() {
        return Ok(Vec::new());
    }
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let mut tasks = Vec::new();
    for mount in crate::cgroups::v1_mount_points()? {
        let dir = mount.join(rel);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("create cgroup {}", dir.display()))?;
        if mount
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("cpuset"))
        {
            seed_cpuset(&mount, rel)?;
        }
        tasks.push(dir.join("tasks"));
    }
    Ok(tasks)
}

/// Child, right after the fork: join every prepared cgroup.
pub fn join_self(tasks_files: &[PathBuf]) -> Result<()> {
    for file in tasks_files {
        std::fs::write(file, b"0").with_context(|| format!("join cgroup {}", file.display()))?;
    }
    Ok(())
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
