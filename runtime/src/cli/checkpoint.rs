//! `ozz checkpoint`: dump a running container with CRIU (runc's semantics:
//! the container is gone afterwards unless --leave-running or --pre-dump).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::checkpoint::{self, Common, DumpOptions};
use crate::cli::{delete, CheckpointArgs, CriuArgs, GlobalOpts};
use crate::state::{ContainerDir, Status};

pub fn run(global: &GlobalOpts, root: &Path, args: &CheckpointArgs) -> Result<()> {
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    let status = state.status(&dir.path);
    if status != Status::Running && status != Status::Paused {
        bail!("container {} is not running: {}", args.id, status.as_str());
    }
    let opts = DumpOptions {
        common: common(&args.criu)?,
        parent_path: args.parent_path.clone(),
        leave_running: args.leave_running || args.pre_dump,
        pre_dump: args.pre_dump,
        page_server: args.page_server.clone(),
    };
    let binary = checkpoint::criu_binary(global.criu.as_deref());
    checkpoint::dump(&binary, &state, &opts).context("checkpoint")?;
    let unlocked = if opts.leave_running || opts.common.tcp_established {
        Ok(())
    } else {
        checkpoint::unlock_joined_network(&state.config)
    };
    if !opts.leave_running {
        // The processes are gone with the dump: so is the container.
        delete::destroy(dir, &state)?;
    }
    unlocked.context("checkpoint")
}

/// The shared CRIU flags, with runc's default image path (./checkpoint).
pub fn common(args: &CriuArgs) -> Result<Common> {
    let cwd = std::env::current_dir().context("current directory")?;
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        }
    };
    Ok(Common {
        image_path: args
            .image_path
            .as_ref()
            .map(abs)
            .unwrap_or_else(|| cwd.join("checkpoint")),
        work_path: args.work_path.as_ref().map(abs),
        tcp_established: args.tcp_established,
        ext_unix_sk: args.ext_unix_sk,
        shell_job: args.shell_job,
        file_locks: args.file_locks,
        manage_cgroups_mode: args.manage_cgroups_mode.clone(),
        empty_ns: args.empty_ns.clone(),
        auto_dedup: args.auto_dedup,
        lazy_pages: args.lazy_pages,
        status_fd: args.status_fd,
    })
}
