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
    // The runtime-spec: `process` may be left out at create, but start
    // MUST fail without it. The container stays created.
    if state.config.process().is_none() {
        bail!("cannot start a container without a process: config.json has no process");
    }
    let fifo_path = dir.fifo_path();
    // Non-blocking, so a dead init cannot leave us waiting for a writer forever.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .context("open exec fifo")?;
    // The init writes "0" once its startContainer hooks passed, and its copy
    // (or the exec stub's) closes at execve: "0" then EOF means the user's
    // program was started; more bytes after the "0" are why execve failed.
    let mut got = Vec::new();
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        // A start killed after releasing the init leaves the fifo behind
        // with the process long exec'd: no writer will ever come.
        if got.is_empty()
            && rounds.is_multiple_of(20)
            && init_holds_fifo(state.pid, &fifo_path) == Some(false)
        {
            let _ = std::fs::remove_file(&fifo_path);
            bail!("cannot start an already running container");
        }
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(50u16));
        let hung_up = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        let mut buf = [0u8; 4096];
        match fifo.read(&mut buf) {
            Ok(n) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                continue;
            }
            // EOF with POLLHUP: the writer came and went.
            Ok(_) if hung_up => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("read exec fifo"),
        }
        if !hung_up && !state.init_alive() {
            while let Ok(n @ 1..) = fifo.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if got.is_empty() {
                bail!("container process exited before start");
            }
            break;
        }
    }
    crate::trace::mark("start: exec seen");
    match got.split_first() {
        Some((b'0', [])) => {}
        Some((b'0', why)) => {
            // The init closed the fifo on its way out: let it finish dying,
            // so `state` right after this error says stopped.
            for _ in 0..200 {
                if !state.init_alive() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // The exec stub says its errno as a number (exec_stub.c).
            let text = crate::security::exec_stub::failure_text(why)
                .unwrap_or_else(|| String::from_utf8_lossy(why).into_owned());
            bail!("{}", crate::log::one_line(text.trim()))
        }
        _ => bail!("container init failed before running the process (see its stderr)"),
    }
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

/// Whether the waiting init still holds exec.fifo (its O_PATH descriptor
/// lives until execve); None when its descriptors cannot be read.
fn init_holds_fifo(pid: i32, fifo: &Path) -> Option<bool> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut any = false;
    for entry in entries.flatten() {
        any = true;
        if std::fs::read_link(entry.path()).is_ok_and(|target| target == fifo) {
            return Some(true);
        }
    }
    any.then_some(false)
}

/// Child side, when execve failed after the "0": the reason goes to
/// `start` through exec.fifo (it reads to EOF), and the init ends here so
/// the reason is said once, by `start`.
pub fn report_exec_failure(fifo: &std::fs::File, err: &anyhow::Error) -> ! {
    use std::io::Write;
    let text = crate::log::one_line(&format!("{err:#}"));
    let _ = (&*fifo).write_all(text.as_bytes());
    // SAFETY: _exit ends the init at once, running none of the parent's
    // atexit handlers.
    unsafe { libc::_exit(127) }
}

use std::os::unix::fs::OpenOptionsExt;
