//! `ozz pid PID`: which container a host process belongs to (OpenVZ's
//! vzpid), found through the process's cgroup.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::PidArgs;
use crate::state::running_containers;

pub fn run(root: &Path, args: &PidArgs) -> Result<()> {
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", args.pid))
        .with_context(|| format!("process {} not found", args.pid))?;
    // "hierarchy:controllers:path" per line; on a hybrid host the container
    // lives in the v1 hierarchies, on v2 in the one "0::" line.
    let paths: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(PathBuf::from)
        .collect();
    // The deepest match wins: a container's cgroup may sit below another's.
    let owner = running_containers(root)
        .into_iter()
        .filter(|state| paths.iter().any(|p| p.starts_with(&state.cgroup_path)))
        .max_by_key(|state| state.cgroup_path.components().count());
    match owner {
        Some(state) => {
            println!("{}", state.id);
            Ok(())
        }
        None => bail!("process {} is not in any container", args.pid),
    }
}
