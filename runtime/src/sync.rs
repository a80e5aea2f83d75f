//! The parent <-> container-init channel: a SOCK_SEQPACKET socketpair, so
//! each message arrives whole. Messages are one tag byte and a UTF-8 body.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// parent -> child: uid/gid maps written, cgroup joined, hooks run; go
    /// on. Carries the container's state JSON for the hooks the child runs.
    Proceed(String),
    /// child -> parent: the mounts are done; run prestart/createRuntime hooks.
    RunCreateRuntimeHooks,
    /// child -> parent: init is ready and about to wait on exec.fifo.
    Ready,
    /// child -> parent: a step failed; the text is the one-line reason.
    Failed(String),
    /// parent -> exec process, after Proceed: its pid as the runtime sees
    /// it, for the seccomp agent (born in the container's pid namespace,
    /// it cannot tell). Sent only when it has a listener to report to.
    Pid(i32),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Proceed(state) => {
                let mut v = vec![b'P'];
                v.extend_from_slice(state.as_bytes());
                v
            }
            Msg::RunCreateRuntimeHooks => vec![b'H'],
            Msg::Ready => vec![b'R'],
            Msg::Failed(text) => {
                let mut v = vec![b'F'];
                v.extend_from_slice(text.as_bytes());
                v
            }
            Msg::Pid(pid) => format!("I{pid}").into_bytes(),
        }
    }

    fn decode(buf: &[u8]) -> Result<Msg> {
        Ok(match buf.first() {
            Some(b'P') => Msg::Proceed(String::from_utf8_lossy(&buf[1..]).into_owned()),
            Some(b'H') => Msg::RunCreateRuntimeHooks,
            Some(b'R') => Msg::Ready,
            Some(b'F') => Msg::Failed(String::from_utf8_lossy(&buf[1..]).into_owned()),
            Some(b'I') => match std::str::from_utf8(&buf[1..])
                .ok()
                .and_then(|s| s.parse().ok())
            {
                Some(pid) => Msg::Pid(pid),
                None => bail!("malformed pid message from the runtime"),
            },
            _ => bail!("unexpected message from the container process"),
        })
    }
}

pub struct Channel {
    fd: OwnedFd,
}

/// Both ends are close-on-exec: neither may reach the container's process.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("create sync socketpair")?;
    // A message (the state JSON with its annotations) must fit the send
    // buffer whole; Kubernetes allows 256 KiB of annotations alone.
    for fd in [&a, &b] {
        raise_send_buffer(fd.as_raw_fd(), 16 << 20);
    }
    Ok((Channel { fd: a }, Channel { fd: b }))
}

fn raise_send_buffer(fd: RawFd, bytes: libc::c_int) {
    for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: setsockopt reads one c_int we own; failure leaves the
        // default size, which still carries ordinary messages.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Largest packet sent whole. why: a big SOCK_SEQPACKET packet needs one
/// large kernel allocation, which fails with ENOBUFS (a 10 MB annotation in
/// the state JSON did); bigger messages go as pieces of this size.
const PIECE: usize = 32 << 10;
/// Tags of a message sent in pieces: each piece, then the end mark.
const PIECE_TAG: u8 = b'+';
const END_TAG: u8 = b'.';

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = msg.encode();
        if data.len() <= PIECE {
            return self.send_packet(&data);
        }
        for piece in data.chunks(PIECE) {
            let mut packet = Vec::with_capacity(piece.len() + 1);
            packet.push(PIECE_TAG);
            packet.extend_from_slice(piece);
            self.send_packet(&packet)?;
        }
        self.send_packet(&[END_TAG])
    }

    fn send_packet(&self, data: &[u8]) -> Result<()> {
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(data)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .context("send on sync socket")?;
        Ok(())
    }

    /// Receives one message; `None` when the other end closed without a word
    /// (the child died).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut pieces: Vec<u8> = Vec::new();
        loop {
            let Some(packet) = self.recv_packet()? else {
                return Ok(None);
            };
            match packet.first() {
                Some(&PIECE_TAG) => pieces.extend_from_slice(&packet[1..]),
                Some(&END_TAG) => return Msg::decode(&pieces).map(Some),
                _ => return Msg::decode(&packet).map(Some),
            }
        }
    }

    fn recv_packet(&self) -> Result<Option<Vec<u8>>> {
        // why: a peer that exits with a packet of ours unread (a child that
        // failed before reading Proceed) leaves ECONNRESET pending here,
        // and the kernel reports it before the packets the peer sent first
        // (its Failed reason). Reading the error clears it: read once more.
        let mut reset_seen = false;
        let mut reset_once = |e: nix::errno::Errno| {
            let first = e == nix::errno::Errno::ECONNRESET && !reset_seen;
            reset_seen |= first;
            first
        };
        // Peek at the next message's size (MSG_TRUNC reports it whole).
        let size = loop {
            // SAFETY: a zero-length peek writes nothing to the null buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            match n {
                n if n >= 0 => break n as usize,
                _ if nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
                _ if reset_once(nix::errno::Errno::last()) => continue,
                _ => return Err(std::io::Error::last_os_error()).context("receive on sync socket"),
            }
        };
        let mut buf = vec![0u8; size.max(1)];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let n = loop {
            match recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
                Ok(msg) => break msg.bytes,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) if reset_once(e) => continue,
                Err(e) => return Err(e).context("receive on sync socket"),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }
}

/// Sends `fd` over a unix socket with SCM_RIGHTS, `name` as the payload
/// (the console-socket protocol runc's callers speak).
pub fn send_fd(socket: RawFd, name: &str, fd: RawFd) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        socket,
        &[IoSlice::new(name.as_bytes())],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .context("send pty master over the console socket")?;
    Ok(())
}

/// Receives one fd sent with [`send_fd`].
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd> {
    let mut buf = vec![0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive pty master")?;
    for cmsg in msg.cmsgs().context("read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us
                // and nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("no file descriptor received on the console socket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_whole() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Failed("mount \"/proc\": permission denied".into()))
            .unwrap();
        a.send(&Msg::Ready).unwrap();
        a.send(&Msg::Pid(4242)).unwrap();
        assert_eq!(
            b.recv().unwrap(),
            Some(Msg::Failed("mount \"/proc\": permission denied".into()))
        );
        assert_eq!(b.recv().unwrap(), Some(Msg::Ready));
        assert_eq!(b.recv().unwrap(), Some(Msg::Pid(4242)));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    #[test]
    fn a_message_larger_than_a_packet_arrives_whole() {
        let (a, b) = pair().unwrap();
        let big = "a".repeat(3 * PIECE + 17);
        let sender = std::thread::spawn(move || {
            a.send(&Msg::Proceed(big.clone())).unwrap();
            a.send(&Msg::Ready).unwrap();
            big
        });
        let got = b.recv().unwrap();
        let big = sender.join().unwrap();
        assert_eq!(got, Some(Msg::Proceed(big)));
        assert_eq!(b.recv().unwrap(), Some(Msg::Ready));
    }
}
