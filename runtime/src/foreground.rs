//! Waiting for a foreground container process (`run`, `exec` without -d):
//! forward the signals we receive to it, relay its terminal, and turn its
//! end into our exit code.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Blocks every signal we may forward and returns a signalfd for them. Call
/// after the child is forked: it must not inherit this mask.
pub fn block_signals() -> Result<SignalFd> {
    let mut set = SigSet::all();
    for keep in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGABRT,
    ] {
        set.remove(keep);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .context("block signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("signalfd")
}

/// Supervises `pid` until it exits; returns its exit code (128+N when killed
/// by signal N, as a shell reports it).
pub fn wait(pid: i32, signals: &mut SignalFd, console: Option<OwnedFd>) -> Result<i32> {
    let child = Pid::from_raw(pid);
    let _raw = console
        .as_ref()
        .map(|_| crate::console::RawTerminal::enter());
    if let Some(master) = &console {
        copy_window_size(master.as_raw_fd());
    }
    let mut stdin_open = console.is_some();
    loop {
        if let Some(code) = reap(child)? {
            if let Some(master) = &console {
                // Drain what the process wrote before it exited.
                while crate::console::pump(master.as_raw_fd(), 1) {}
            }
            return Ok(code);
        }
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(master) = &console {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            if let Ok(Some(info)) = signals.read_signal() {
                forward(child, info.ssi_signo as i32, console.as_ref());
            }
        }
        if let Some(master) = &console {
            if master_ready && !crate::console::pump(master.as_raw_fd(), 1) {
                // The slave side is gone; only the exit status is left to see.
                let status = waitpid(child, None).context("wait for container process")?;
                return Ok(exit_code(status).unwrap_or(0));
            }
            if stdin_ready && !crate::console::pump(0, master.as_raw_fd()) {
                stdin_open = false;
            }
        }
    }
}

fn forward(child: Pid, signo: i32, console: Option<&OwnedFd>) {
    let Ok(signal) = Signal::try_from(signo) else {
        return;
    };
    match signal {
        Signal::SIGCHLD => {}
        Signal::SIGWINCH => {
            if let Some(master) = console {
                copy_window_size(master.as_raw_fd());
            }
        }
        other => {
            let _ = nix::sys::signal::kill(child, other);
        }
    }
}

fn reap(child: Pid) -> Result<Option<i32>> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(status) => Ok(exit_code(status)),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e).context("wait for container process"),
    }
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn copy_window_size(master: i32) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we own; failure (stdin not a
    // terminal) leaves it zeroed and we skip the copy.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
        let _ = crate::console::set_window_size(master, ws.ws_row, ws.ws_col);
    }
}
