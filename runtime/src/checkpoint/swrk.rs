//! CRIU's RPC over `criu swrk`: one request on a SOCK_SEQPACKET pair, then
//! notifications (answered one by one) until the final response. The
//! messages are rpc.proto's, as the rust-criu crate generates them; ozz
//! drives the exchange itself because it needs requests and options the
//! crate's own driver does not offer (PRE_DUMP, CHECK, cg_root, a criu
//! started inside the container's cgroup).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_notify, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};

/// rpc.proto's largest message is far below this; CRIU's own limit.
const MAX_MSG: usize = 1 << 20;

/// How a criu worker is started.
pub struct Worker<'a> {
    pub binary: &'a Path,
    /// Descriptors criu must inherit at their own numbers (stdio pipes for
    /// inherit_fd, --status-fd).
    pub keep_fds: Vec<RawFd>,
    /// cgroup files criu writes itself into before exec ("cgroup.procs" on
    /// v2, "tasks" on v1): what it restores is born there.
    pub join_cgroup: Vec<PathBuf>,
}

/// What a notification handler gets: the script name, CRIU's message and
/// the descriptor that came with it (orphan-pts-master's pty master).
pub type Notify<'n> = dyn FnMut(&str, &Criu_notify, Option<OwnedFd>) -> Result<()> + 'n;

/// Sends one request and returns CRIU's final response, or the one line
/// saying why it failed (with `log` named so the details are findable).
pub fn call(
    worker: &Worker,
    kind: Criu_req_type,
    opts: Option<Criu_opts>,
    log: Option<&Path>,
    notify: &mut Notify,
) -> Result<Criu_resp> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("criu socketpair")?;
    let their_fd = theirs.as_raw_fd();
    let mut keep = worker.keep_fds.clone();
    keep.push(their_fd);
    let join = worker.join_cgroup.clone();
    let mut cmd = Command::new(worker.binary);
    // why: `criu swrk` parses /etc/criu/default.conf, ~/.criu/default.conf
    // and $CRIU_CONFIG_FILE before it reads the request, and what another
    // tool wrote there must not change ozz's checkpoints.
    cmd.arg("--no-default-config")
        .arg("swrk")
        .arg(their_fd.to_string())
        .env_remove("CRIU_CONFIG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: ozz is single-threaded here, so the forked child may allocate;
    // it only clears close-on-exec and writes cgroup files before exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &keep {
                let flags = libc::fcntl(*fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(*fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for file in &join {
                std::fs::write(file, b"0")?;
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "criu binary {} not found (install criu, or give --criu PATH)",
                worker.binary.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("start {}", worker.binary.display())),
    };
    drop(theirs);
    let result = exchange(&ours, kind, opts, log, notify);
    if result.is_err() {
        let _ = child.kill();
    }
    drop(ours);
    let _ = child.wait();
    result
}

fn exchange(
    sock: &OwnedFd,
    kind: Criu_req_type,
    opts: Option<Criu_opts>,
    log: Option<&Path>,
    notify: &mut Notify,
) -> Result<Criu_resp> {
    let mut req = Criu_req::new();
    req.set_type(kind);
    if let Some(opts) = opts {
        req.opts = protobuf::MessageField::some(opts);
    }
    send(sock, &req)?;
    let where_ = || match log {
        Some(path) => format!(" (see {})", path.display()),
        None => String::new(),
    };
    loop {
        let (resp, fd) = recv(sock).with_context(|| format!("criu {kind:?} failed{}", where_()))?;
        if resp.type_() == Criu_req_type::NOTIFY {
            let script = resp.notify.script().to_string();
            crate::log::debug(&format!(
                "criu notification {script} (pid {})",
                resp.notify.pid()
            ));
            let outcome = notify(&script, &resp.notify, fd);
            let mut ack = Criu_req::new();
            ack.set_type(Criu_req_type::NOTIFY);
            ack.set_notify_success(outcome.is_ok());
            send(sock, &ack)?;
            outcome.with_context(|| format!("at CRIU's {script} notification"))?;
            continue;
        }
        if resp.type_() != kind {
            bail!("criu answered {:?} to a {kind:?} request", resp.type_());
        }
        if !resp.success() {
            let errno = resp.cr_errno();
            let msg = resp.cr_errmsg();
            let why = match (errno, msg.is_empty()) {
                (_, false) => msg.trim().replace('\n', " "),
                (0, true) => "criu reported failure".to_string(),
                (e, true) => nix::errno::Errno::from_raw(e).desc().to_string(),
            };
            bail!("criu {} failed: {why}{}", kind_name(kind), where_());
        }
        return Ok(resp);
    }
}

fn kind_name(kind: Criu_req_type) -> &'static str {
    match kind {
        Criu_req_type::DUMP => "dump",
        Criu_req_type::PRE_DUMP => "pre-dump",
        Criu_req_type::RESTORE => "restore",
        Criu_req_type::CHECK => "check",
        Criu_req_type::VERSION => "version",
        _ => "request",
    }
}

fn send(sock: &OwnedFd, req: &Criu_req) -> Result<()> {
    let bytes = req.write_to_bytes().context("encode criu request")?;
    let n = nix::unistd::write(sock, &bytes).context("send to criu")?;
    if n != bytes.len() {
        bail!("short write to criu");
    }
    Ok(())
}

fn recv(sock: &OwnedFd) -> Result<(Criu_resp, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive from criu")?;
    let mut fd = None;
    for c in msg.cmsgs().context("criu control message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for (i, raw) in fds.into_iter().enumerate() {
                // SAFETY: the kernel just installed this descriptor for us.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if i == 0 {
                    fd = Some(owned);
                }
            }
        }
    }
    let n = msg.bytes;
    if n == 0 {
        bail!("criu exited without answering");
    }
    let resp = Criu_resp::parse_from_bytes(&buf[..n]).context("decode criu response")?;
    Ok((resp, fd))
}
