//! `ozz run`: create, start, and (unless detached) wait and delete.

use std::path::Path;

use anyhow::Result;

use crate::cli::{create, delete, start, GlobalOpts, RunArgs};
use crate::foreground;

pub fn run(global: &GlobalOpts, root: &Path, args: &RunArgs) -> Result<i32> {
    crate::security::exe_seal::reexec_sealed_if_needed()?;
    let created = create::create(global, root, &args.create, !args.detach)?;
    if args.detach {
        start::start_locked(&created.dir, &created.state)?;
        return Ok(0);
    }
    let mut signals = foreground::block_signals()?;
    if let Err(err) = start::start_locked(&created.dir, &created.state) {
        let _ = delete::destroy(created.dir, &created.state);
        return Err(err);
    }
    let pid = created.state.pid;
    let code = foreground::wait(pid, &mut signals, created.console_master);
    crate::trace::mark("run: container exited");
    if !args.keep {
        delete::destroy(created.dir, &created.state)?;
    }
    code
}
