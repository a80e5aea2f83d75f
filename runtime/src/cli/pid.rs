//! `ozz pid PID`: which container a host process belongs to (OpenVZ's
//! vzpid), found through the process's cgroup.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::PidArgs;
use crate::state::owner_of;

pub fn run(root: &Path, args: &PidArgs) -> Result<()> {
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", args.pid))
        .with_context(|| format!("process {} not found", args.pid))?;
    let owner = owner_of(root, &crate::procview::parse_cgroup_paths(&text));
    match owner {
        Some(state) => {
            println!("{}", state.id);
            Ok(())
        }
        None => bail!("process {} is not in any container", args.pid),
    }
}
