//! Terminals: the container's init opens a pty inside the container, sends
//! the master over the console socket and makes the slave its stdio and
//! controlling terminal; `ozz run` without a socket relays it itself.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

/// The console socket ends: the one the child sends the pty master over
/// (connected to the caller's `path`, or one end of our own pair when
/// `relay` and no path), and the end we keep to receive it and relay.
pub fn sockets(
    path: Option<&std::path::Path>,
    relay: bool,
) -> Result<(Option<std::os::fd::OwnedFd>, Option<std::os::fd::OwnedFd>)> {
    use std::os::unix::net::UnixStream;
    if let Some(path) = path {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connect to console socket {}", path.display()))?;
        return Ok((Some(stream.into()), None));
    }
    if relay {
        let (child_end, our_end) = UnixStream::pair().context("console socketpair")?;
        return Ok((Some(child_end.into()), Some(our_end.into())));
    }
    Ok((None, None))
}

/// In the container (after pivot_root): open a pty on the container's
/// devpts, hand the master to `socket`, and take the slave as stdio.
/// `relayed_by_us`: the socket is ozz's own pair, not the caller's.
pub fn setup_in_container(
    socket: RawFd,
    size: Option<(u16, u16)>,
    relayed_by_us: bool,
) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let slave_path = ptsname_r(&master).context("ptsname")?;
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {slave_path}"))?;
    if let Some((height, width)) = size {
        set_window_size(slave, height, width)?;
    }
    if relayed_by_us {
        clear_onlcr(slave)?;
    }
    crate::sync::send_fd(socket, &slave_path, master.as_raw_fd())?;
    drop(master);
    for target in 0..=2 {
        nix::unistd::dup2(slave, target).context("dup pty slave onto stdio")?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    // SAFETY: ioctl on our own stdin, which is the pty slave.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("make the pty the controlling terminal");
    }
    Ok(())
}

/// why: the pty's output processing turns every "\n" into "\r\n". When
/// ozz relays the pty itself (`run`/`exec` in the foreground without a
/// console socket), it copies to a terminal or file that does its own, so
/// ONLCR is cleared, as runc clears it on the master it relays. A master
/// sent to the caller's console socket keeps the default, as runc leaves
/// it: conmon, containerd's shim, `kubectl exec -t` and `docker -t` put
/// their own terminal in raw mode and rely on the pty's "\r\n".
fn clear_onlcr(pty: RawFd) -> Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    // SAFETY: `pty` is open for the whole call.
    let fd = unsafe { BorrowedFd::borrow_raw(pty) };
    let mut attrs = tcgetattr(fd).context("read the pty's terminal attributes")?;
    attrs.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(fd, SetArg::TCSANOW, &attrs).context("clear ONLCR on the pty")
}

pub fn set_window_size(fd: RawFd, height: u16, width: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize we own.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error()).context("set terminal size");
    }
    Ok(())
}

/// Puts the caller's terminal in raw mode while the relay runs and restores
/// it when dropped.
pub struct RawTerminal {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawTerminal {
    pub fn enter() -> RawTerminal {
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = nix::sys::termios::tcgetattr(stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let _ = nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}

/// Copies what is readable from `from` to `to`; false at EOF or error.
pub fn pump(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut done = 0;
            while done < n {
                // SAFETY: `to` is an fd the caller keeps open during the call.
                let to_fd = unsafe { BorrowedFd::borrow_raw(to) };
                match nix::unistd::write(to_fd, &buf[done..n]) {
                    Ok(w) => done += w,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}
