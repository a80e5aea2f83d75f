//! `ozz run`: create, start, and (unless detached) wait and delete.

use std::path::Path;

use anyhow::Result;

use crate::cli::{create, delete, start, GlobalOpts, RunArgs};
use crate::errors::RuntimeError;
use crate::foreground;
use crate::state::ContainerDir;

pub fn run(global: &GlobalOpts, root: &Path, args: &RunArgs) -> Result<i32> {
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
    // why: the lock is for changing state; held for the container's whole
    // life it blocked `state`, `kill` and `ps` from other shells.
    created.dir.unlock();
    let code = foreground::wait(pid, &mut signals, created.console_master);
    crate::trace::mark("run: container exited");
    if !args.keep {
        match ContainerDir::open(root, &args.create.id) {
            // Another command may have deleted it meanwhile.
            Err(e) if matches!(e.downcast_ref(), Some(RuntimeError::NotExist(_))) => {}
            Err(e) => return Err(e),
            // Or deleted it and made another of the same name.
            Ok(dir)
                if dir.load_listed().is_some_and(|s| {
                    s.pid == created.state.pid && s.pid_start_time == created.state.pid_start_time
                }) =>
            {
                delete::destroy(dir, &created.state)?
            }
            Ok(_) => {}
        }
    }
    code
}
