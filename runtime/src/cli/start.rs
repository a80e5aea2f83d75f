//! `ozz start`: release the init waiting on exec.fifo.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::hooks;
use crate::state::{ContainerDir, ContainerState, Status};

pub fn run(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load()?;
    crate::trace::mark("start: state loaded");
    start_locked(&dir, &state)
}

pub fn start_locked(dir: &ContainerDir, state: &ContainerState) -> Result<()> {
    match state.status(&dir.path) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => bail!("cannot start a container that is still being created"),
    }
    let fifo_path = dir.fifo_path();
    // Non-blocking, so a dead init cannot leave us waiting for a writer forever.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .context("open exec fifo")?;
    // The init writes "0" once its startContainer hooks passed, and its copy
    // closes at execve: "0" then EOF means the user's program was started.
    let mut released = false;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(50u16));
        let hung_up = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        let mut buf = [0u8; 16];
        match fifo.read(&mut buf) {
            Ok(n) if n > 0 => released |= buf[..n].contains(&b'0'),
            // EOF with POLLHUP: the writer came and went.
            Ok(_) if hung_up => {
                if released {
                    break;
                }
                bail!("container init failed before running the process (see its stderr)");
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("read exec fifo"),
        }
        if !hung_up && !state.init_alive() {
            if released {
                break;
            }
            bail!("container process exited before start");
        }
    }
    crate::trace::mark("start: exec seen");
    std::fs::remove_file(&fifo_path).context("remove exec fifo")?;
    let running = state.oci_json(Status::Running).to_string();
    let poststart = state
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().clone());
    hooks::run_all_warn("poststart", poststart.as_ref(), &running);
    crate::trace::mark("start: poststart hooks");
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;
