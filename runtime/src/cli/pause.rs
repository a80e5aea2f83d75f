//! `ozz pause` / `ozz resume`: the freezer (cgroup.freeze on v2).

use std::path::Path;

use anyhow::{bail, Result};

use crate::cgroups;
use crate::state::{ContainerDir, Status};

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load()?;
    state.require_cgroup("pause")?;
    match state.status(&dir.path) {
        Status::Running | Status::Created => cgroups::freeze(&state.cgroup_path, true),
        // why: runc refuses to pause a paused container with this phrase;
        // callers rely on the error to notice a double pause.
        _ => bail!("container not running"),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load()?;
    state.require_cgroup("resume")?;
    match state.status(&dir.path) {
        Status::Paused => cgroups::freeze(&state.cgroup_path, false),
        _ => bail!("container not paused"),
    }
}
