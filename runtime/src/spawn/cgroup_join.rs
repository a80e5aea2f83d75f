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

/// The v1 controllers libcgroups manages (and removes on delete).
const CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Parent, before the fork: creates the container's directory in every
/// mounted v1 hierarchy that libcgroups manages and returns their `tasks`
/// files. Empty on a cgroup v2 host.
pub fn prepare(cgroup_path: &Path) -> Result<Vec<PathBuf>> {
    if crate::cgroups::is_v2() {
        return Ok(Vec::new());
    }
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let mut tasks = Vec::new();
    for mount in v1_mount_points()? {
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

/// Mount points of v1 hierarchies carrying a controller libcgroups manages,
/// each once (co-mounted controllers share one).
fn v1_mount_points() -> Result<Vec<PathBuf>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let mut points = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_options = post.nth(1).unwrap_or_default();
        if !super_options.split(',').any(|o| CONTROLLERS.contains(&o)) {
            continue;
        }
        if let Some(point) = pre.split(' ').nth(4) {
            let point = PathBuf::from(point);
            if !points.contains(&point) {
                points.push(point);
            }
        }
    }
    Ok(points)
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
