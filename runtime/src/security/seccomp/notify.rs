//! SCMP_ACT_NOTIFY: handing the notify fd to the seccomp agent listening on
//! `linux.seccomp.listenerPath`, with the container process state.
//!
//! The filter is loaded by the container process itself, as the last step
//! before execve, so that process is the one that holds the notify fd and
//! sends it.  The connection is made while the host's paths are still
//! reachable: by the init before it joins namespaces and pivots, and for
//! `exec` by the `ozz exec` parent, on the host, before the helper enters
//! the container (the exec process inherits the socket).  The message is
//! built before the filter, and the one system call made after the
//! filter, besides execve, is this sendmsg (which is why sendmsg cannot be
//! a notify rule).  The socket is close-on-exec: execve closes it, one
//! state per connection.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, Spec};

/// True when the profile notifies (so listenerPath is used at all).
fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|e| e.action() == LinuxSeccompAction::ScmpActNotify)
}

/// The agent's socket of a container whose profile notifies: None without
/// a profile, without a listenerPath, or without a notify rule (the spec:
/// listenerPath is then ignored).
pub fn listener_path(spec: &Spec) -> Option<&Path> {
    let profile = spec.linux().as_ref()?.seccomp().as_ref()?;
    let path = profile.listener_path().as_deref()?;
    uses_notify(profile).then_some(path)
}

/// Connects to the agent's socket (a host path).
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .with_context(|| format!("connect to seccomp listener {}", path.display()))
}

/// The container process state, ready to go out with the notify fd.
pub struct ListenerMessage {
    socket: UnixStream,
    payload: Vec<u8>,
}

impl ListenerMessage {
    /// `state_json`: the container's state; `pid`: the process's pid as
    /// the runtime sees it.
    pub fn new(
        socket: UnixStream,
        state_json: &str,
        pid: i32,
        metadata: Option<&str>,
    ) -> Result<Self> {
        let state: serde_json::Value =
            serde_json::from_str(state_json).context("container state for the seccomp listener")?;
        let mut message = serde_json::json!({
            "ociVersion": state["ociVersion"].clone(),
            "fds": ["seccompFd"],
            "pid": pid,
            "state": state,
        });
        if let Some(metadata) = metadata {
            message["metadata"] = serde_json::json!(metadata);
        }
        Ok(Self {
            socket,
            payload: serde_json::to_vec(&message)?,
        })
    }

    /// Sends the state with `notify_fd` (SCM_RIGHTS) in one sendmsg,
    /// without allocating: it runs after the filter is loaded.
    pub fn send(&self, notify_fd: RawFd) -> std::result::Result<(), nix::errno::Errno> {
        // CMSG_SPACE(sizeof(int)) is 24 on 64-bit and 16 on 32-bit targets;
        // u64 words keep the buffer aligned for cmsghdr.
        let mut control = [0u64; 4];
        let mut iov = libc::iovec {
            iov_base: self.payload.as_ptr() as *mut libc::c_void,
            iov_len: self.payload.len(),
        };
        // SAFETY: zero is a valid msghdr (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
        // SAFETY: msg_control points to `control`, which is at least
        // CMSG_SPACE(sizeof(int)) bytes and aligned, so CMSG_FIRSTHDR is a
        // valid header inside it and CMSG_DATA has room for one int.
        let rc = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), notify_fd);
            libc::sendmsg(self.socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
        };
        if rc < 0 {
            return Err(nix::errno::Errno::last());
        }
        if rc as usize != self.payload.len() {
            return Err(nix::errno::Errno::EMSGSIZE);
        }
        Ok(())
    }
}
