//! Creating the container's process: clone3 into fresh namespaces, the
//! host-side setup the parent owes it (cgroup, id maps, hooks), and the
//! handshake over the sync channel. The child's side is in `init.rs`.

pub mod cgroup_join;
pub mod init;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::namespaces::{self, NamespacePlan, SavedNamespaces};
use crate::sync::{self, Channel, Msg};

/// What the init (or an exec'd process) needs to become the container
/// process. Everything is prepared before the fork: the child only acts.
pub struct ChildConfig {
    pub kind: ChildKind,
    pub spec: Spec,
    pub process: Process,
    pub rootfs: PathBuf,
    pub cgroup_path: PathBuf,
    pub plan: NamespacePlan,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Unix socket (already connected) that receives the pty master.
    pub console_socket: Option<RawFd>,
    /// That socket is ozz's own (`run`/`exec` relaying the terminal in the
    /// foreground), not the caller's `--console-socket`.
    pub console_relayed_by_us: bool,
    /// With a terminal: keep a dup of the caller's stderr until exec, for a
    /// failure after Ready. Only when the caller waits for the process
    /// anyway: a caller that reads our stderr to EOF (containerd's shim
    /// behind `create --console-socket`) would wait until `start`.
    pub keep_callers_stderr: bool,
    /// O_PATH descriptor of exec.fifo (create only).
    pub fifo_fd: Option<RawFd>,
    /// The sealed exec stub that executes the process (create only, when
    /// ozz was not re-executed: security/exec_stub.rs).
    pub exec_stub: Option<RawFd>,
    /// Descriptors 3..3+N that the process inherits.
    pub extra_fds: u32,
    pub id: String,
    /// How the child enters its cgroup (see cgroup_join).
    pub cgroup_entry: cgroup_join::Entry,
    /// The procview's directory, when its files are bound over /proc.
    pub procview: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// The container's init, from `create`.
    Init,
    /// A process joining a running container, from `exec`.
    Exec {
        target_pid: i32,
        /// The seccomp agent's socket (listenerPath), connected on the
        /// host by `ozz exec`: the process is born inside the container,
        /// where that path cannot be reached (see seccomp/notify.rs).
        seccomp_listener: Option<RawFd>,
    },
}

/// struct clone_args of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// fork() with namespace flags, through clone3. Returns 0 in the child.
pub(crate) fn clone3(flags: CloneFlags, cgroup_fd: Option<RawFd>) -> Result<i32> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags.bits() as u32 as u64 | cgroup_fd.map_or(0, |_| CLONE_INTO_CGROUP),
        cgroup: cgroup_fd.map_or(0, |fd| fd as u64),
        // With CLONE_PARENT the kernel wants 0 here and uses the caller's
        // own exit signal (SIGCHLD for our helper).
        exit_signal: if flags.contains(CloneFlags::CLONE_PARENT) {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    // SAFETY: args is a valid clone_args of the size we pass; with no stack
    // given the child continues on a copy of ours, like fork. This process is
    // single-threaded, so the child's copy of every lock is consistent.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("clone3");
    }
    Ok(rc as i32)
}

/// why: namespaces made by clone3 belong to the caller's user namespace.
/// When the container joins a user namespace by path, its new mount, pid,
/// uts … namespaces must belong to that one, or its root has no rights over
/// them (sethostname, mount fail with EPERM). We cannot join that user
/// namespace and come back, so a short-lived helper joins it and clones the
/// child with CLONE_PARENT (it is our child all the same), reports its pid
/// through a pipe and exits. Returns 0 in the child, like [`clone3`].
fn clone3_in_user_ns(
    user_ns: &Path,
    flags: CloneFlags,
    cgroup_fd: Option<RawFd>,
    keep: &KeptFds,
) -> Result<i32> {
    use std::os::fd::AsRawFd;
    let (rd, wr) = nix::unistd::pipe().context("pipe")?;
    let helper = clone3(CloneFlags::empty(), None)?;
    if helper == 0 {
        drop(rd);
        // why: the helper is already in a pid namespace joined by path,
        // where the container's processes can see it; it keeps only what
        // it and the child need (the cgroup fd goes with the child's clone).
        let mut singles = keep.singles.clone();
        singles.push(wr.as_raw_fd());
        singles.extend(cgroup_fd);
        if let Err(e) = close_fds_except(keep.low_end, &singles) {
            report_clone_and_exit(wr, Err(e));
        }
        let result = namespaces::join(LinuxNamespaceType::User, user_ns)
            .and_then(|()| clone3(flags | CloneFlags::CLONE_PARENT, cgroup_fd));
        if let Ok(0) = result {
            drop(wr);
            return Ok(0);
        }
        report_clone_and_exit(wr, result);
    }
    drop(wr);
    match read_clone_report(rd, helper)? {
        Ok(pid) => Ok(pid),
        Err(why) => bail!("clone into user namespace {}: {why}", user_ns.display()),
    }
}

/// The descriptors a child keeps from the parent's table: every fd below
/// `low_end` (stdio and the preserved ones) and the listed ones.
pub struct KeptFds {
    pub low_end: u32,
    pub singles: Vec<RawFd>,
}

/// Closes every descriptor except those below `low_end` and those in
/// `singles`: whatever else the parent holds (the state directory and its
/// lock, the cgroup directory of CLONE_INTO_CGROUP, a log file) must not
/// live in a process the container can reach through /proc/PID/fd, where
/// `/proc/PID/fd/N/..` walks out of its root. Close-on-exec is no help
/// there: it only acts at execve.
pub fn close_fds_except(low_end: u32, singles: &[RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = singles
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= low_end)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = low_end;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > next {
            let last = if fd == u32::MAX { u32::MAX } else { fd - 1 };
            // SAFETY: close_range takes plain integers; the range holds none
            // of the descriptors this process still uses.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, next, last, 0) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error()).context("close_range");
            }
        }
        next = fd.saturating_add(1);
    }
    Ok(())
}

/// The parent's handle on the child it started.
pub struct Child {
    pub pid: i32,
    pub channel: Channel,
}

/// Forks the child into its namespaces. Namespaces joined by path are
/// entered by the parent around the fork (pid and time only take effect for
/// children; net/ipc/uts/cgroup are entered here so a new user namespace
/// created by clone3 does not need rights over them), then left again.
pub fn fork_child(config: &ChildConfig) -> Result<Child> {
    let (parent_end, child_end) = sync::pair()?;
    if let ChildKind::Exec { target_pid, .. } = config.kind {
        let pid = clone_exec_child(config, target_pid, child_end)?;
        return Ok(Child {
            pid,
            channel: parent_end,
        });
    }
    let mut flags = CloneFlags::empty();
    let mut parent_joins: Vec<(LinuxNamespaceType, PathBuf)> = Vec::new();
    match config.kind {
        ChildKind::Init => {
            for typ in &config.plan.new {
                // why: a cgroup namespace is rooted at the cgroup its creator
                // is in when it is made. The child only reaches its own
                // cgroup after the parent moves it there, so it unshares the
                // cgroup namespace itself afterwards
                // (namespaces::unshare_cgroup_if_new), as runc does.
                if !matches!(typ, LinuxNamespaceType::Time | LinuxNamespaceType::Cgroup) {
                    flags |= namespaces::clone_flag(*typ);
                }
            }
            for (typ, path) in &config.plan.join {
                if !matches!(typ, LinuxNamespaceType::Mount | LinuxNamespaceType::User) {
                    parent_joins.push((*typ, path.clone()));
                }
            }
        }
        ChildKind::Exec { .. } => unreachable!("exec children are cloned by a helper"),
    }
    let new_time = config.kind == ChildKind::Init && config.plan.creates(LinuxNamespaceType::Time);
    let mut to_save: Vec<LinuxNamespaceType> = parent_joins.iter().map(|(t, _)| *t).collect();
    if new_time && !to_save.contains(&LinuxNamespaceType::Time) {
        to_save.push(LinuxNamespaceType::Time);
    }
    // why: the container's user namespace may not be allowed to reach a
    // bind source the runtime can (runc and crun open them first too).
    // Idmapped mounts are prepared here in every case (rootfs/), before
    // the namespaces joined by path: the user namespace lent to them is
    // made by a short-lived child of ours, which must not be born in the
    // container's pid or time namespace.
    if config.kind == ChildKind::Init {
        let all_binds = config.plan.has(LinuxNamespaceType::User)
            && config.plan.joined_path(LinuxNamespaceType::Mount).is_none();
        crate::rootfs::open_bind_sources(
            &config.spec,
            &config.rootfs,
            all_binds,
            config
                .plan
                .joined_path(LinuxNamespaceType::User)
                .map(|p| p.as_path()),
        );
    }
    let saved = SavedNamespaces::save(to_save.into_iter())?;
    for (typ, path) in &parent_joins {
        namespaces::join(*typ, path)?;
    }
    if new_time {
        unshare_time(&config.spec)?;
    }
    let pid = match config.plan.joined_path(LinuxNamespaceType::User) {
        Some(user_ns) if config.kind == ChildKind::Init => clone3_in_user_ns(
            user_ns,
            flags,
            config.cgroup_entry.clone_into(),
            &kept_fds(config, &child_end),
        )?,
        _ => clone3(flags, config.cgroup_entry.clone_into())?,
    };
    if pid == 0 {
        // The child's first step closes it with every other descriptor it
        // does not keep (a helper may have closed it already).
        std::mem::forget(parent_end);
        init::run(config, child_end);
    }
    drop(child_end);
    crate::rootfs::close_bind_sources();
    crate::trace::mark("clone3 (parent)");
    saved.restore()?;
    Ok(Child {
        pid,
        channel: parent_end,
    })
}

/// What the container's process keeps of our descriptors: stdio, the
/// preserved ones, the sync channel, exec.fifo, the console socket and
/// (exec) the seccomp agent's socket.
pub fn kept_fds(config: &ChildConfig, channel: &Channel) -> KeptFds {
    use std::os::fd::AsRawFd;
    let mut singles = vec![channel.as_raw_fd()];
    singles.extend(config.fifo_fd);
    singles.extend(config.exec_stub);
    singles.extend(config.console_socket);
    singles.extend(crate::trace::kept_fd());
    if let ChildKind::Exec {
        seccomp_listener: Some(fd),
        ..
    } = config.kind
    {
        // A unix socket connected to the agent, no way out of the root;
        // close-on-exec, so it is gone once the process has sent its fd.
        singles.push(fd);
    }
    // Bind sources the runtime opened for the init (rootfs::mount_all
    // attaches and closes them; empty for exec).
    singles.extend(crate::rootfs::bind_source_fds());
    KeptFds {
        low_end: config.extra_fds.saturating_add(3),
        singles,
    }
}

/// `exec`: the process must never be visible in the container's pid
/// namespace while it still has anything of the host's — a descriptor, its
/// root or its working directory — since a process there with
/// CAP_SYS_PTRACE can walk out through `/proc/PID/{fd/N,root,cwd}/..`, and
/// a child cloned straight into that namespace is visible before it runs
/// a single instruction. So a helper, in our pid namespace (out of the
/// container's sight) and born in the container's cgroup, drops our
/// descriptors, enters every other namespace and the container's root, and
/// only then clones the process into the container's pid namespace
/// (CLONE_PARENT: it is our child all the same). It reports the pid through
/// a pipe and exits. Of the host's, the process keeps only stdio, the
/// preserved descriptors, the console socket and the seccomp agent's
/// socket: sockets and pipes, nothing a path can be walked from.
fn clone_exec_child(config: &ChildConfig, target_pid: i32, child_end: Channel) -> Result<i32> {
    use std::os::fd::AsRawFd;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let helper = clone3(CloneFlags::empty(), config.cgroup_entry.clone_into())?;
    if helper == 0 {
        drop(rd);
        let mut keep = kept_fds(config, &child_end);
        keep.singles.push(wr.as_raw_fd());
        let result = close_fds_except(keep.low_end, &keep.singles)
            .and_then(|()| init::enter_container(config, target_pid))
            .and_then(|()| clone3(CloneFlags::CLONE_PARENT, None));
        if let Ok(0) = result {
            drop(wr);
            init::run(config, child_end);
        }
        report_clone_and_exit(wr, result);
    }
    drop(wr);
    drop(child_end);
    match read_clone_report(rd, helper)? {
        Ok(pid) => Ok(pid),
        Err(why) if why.is_empty() => bail!("the process helper exited before cloning"),
        Err(why) => bail!("{why}"),
    }
}

/// A clone helper's last act: the pid it cloned (or -1 and the error's
/// text) down the pipe to the parent, then _exit.
fn report_clone_and_exit(wr: std::os::fd::OwnedFd, result: Result<i32>) -> ! {
    use std::io::Write;
    let mut report = std::fs::File::from(wr);
    let (pid, text) = match result {
        Ok(pid) => (pid, String::new()),
        Err(e) => (-1, format!("{e:#}")),
    };
    let _ = report.write_all(&pid.to_ne_bytes());
    let _ = report.write_all(text.as_bytes());
    drop(report);
    // SAFETY: _exit ends the helper at once, running none of the parent's
    // atexit handlers or destructors twice.
    unsafe { libc::_exit(0) }
}

/// The parent's side of [`report_clone_and_exit`]: reaps the helper and
/// returns the pid it cloned, or the error text it sent (empty if it died
/// before saying anything).
fn read_clone_report(
    rd: std::os::fd::OwnedFd,
    helper: i32,
) -> Result<std::result::Result<i32, String>> {
    use std::io::Read;
    let mut answer = Vec::new();
    let read = std::fs::File::from(rd).read_to_end(&mut answer);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper), None);
    read.context("read the cloned pid from the helper")?;
    let pid = answer
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(-1);
    if pid <= 0 {
        return Ok(Err(String::from_utf8_lossy(
            answer.get(4..).unwrap_or_default(),
        )
        .into_owned()));
    }
    Ok(Ok(pid))
}

fn same_namespace(path: &Path, typ: LinuxNamespaceType) -> bool {
    let own = format!("/proc/self/ns/{}", namespaces::proc_name(typ));
    match (std::fs::metadata(path), std::fs::metadata(own)) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.ino() == b.ino() && a.dev() == b.dev()
        }
        _ => false,
    }
}

/// A new time namespace takes its offsets before any process enters it, so
/// the parent creates it (for its children only) and writes them first.
fn unshare_time(spec: &Spec) -> Result<()> {
    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
        .context("unshare time namespace")?;
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .unwrap_or_default();
    let mut text = String::new();
    for (clock, offset) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            bail!("unknown clock {clock:?} in timeOffsets (want monotonic or boottime)");
        }
        text.push_str(&format!(
            "{clock} {} {}\n",
            offset.secs().unwrap_or(0),
            offset.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", text).context("write time offsets")?;
    }
    Ok(())
}

/// Waits for the child's next message; a failure report becomes our error.
pub fn expect(channel: &Channel, want: Msg) -> Result<()> {
    match channel.recv()? {
        Some(got) if got == want => Ok(()),
        Some(Msg::Failed(reason)) => Err(anyhow::anyhow!(reason)),
        Some(other) => bail!("unexpected message {other:?} from the container process"),
        None => bail!("the container process exited during setup"),
    }
}

/// Reaps `pid` (our child) without blocking forever.
pub fn kill_and_reap(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}
