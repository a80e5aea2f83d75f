//! The child side: everything the container process does to itself between
//! clone3 and execve, in the runtime-spec's order. Any failure is sent to
//! the parent as one line and the child exits.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::{ChildConfig, ChildKind};
use crate::namespaces;
use crate::process;
use crate::rootfs;
use crate::security::{caps, seccomp};
use crate::sync::{Channel, Msg};

/// Entry point of the cloned child; never returns.
pub fn run(config: &ChildConfig, channel: Channel) -> ! {
    let err = match steps(config, &channel) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let text = format!("{err:#}");
    if channel.send(&Msg::Failed(text.clone())).is_err() {
        // After Ready the parent is gone: say it where the user sees it.
        report_after_ready(&text);
    }
    // SAFETY: _exit ends this process immediately, skipping atexit handlers
    // that belong to the parent's copy of the program.
    unsafe { libc::_exit(1) }
}

fn set_not_dumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// Every signal at its default and none blocked, as a fresh init has them.
/// why: an ignored signal stays ignored across execve, and so does the
/// mask. Rust's runtime ignores SIGPIPE (a writer to a closed pipe must
/// die); a caller under nohup hands us SIGHUP ignored, a shell's background
/// job SIGINT and SIGQUIT: a container's `trap ... HUP` was then silently
/// void (busybox's sh cannot trap a signal ignored at its start), where
/// runc's container got it.
fn reset_signals() {
    for signal in 1..=libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal() with a constant disposition, no handler code;
        // the ones libc reserves for itself fail with EINVAL, harmlessly.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // SAFETY: sigemptyset fills the set we own; sigprocmask reads it.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

fn steps(config: &ChildConfig, channel: &Channel) -> Result<Infallible> {
    // First of all: drop every descriptor of the parent's we do not need
    // (the state directory lock, the cgroup directory, a log file). We may
    // already be visible in the container's pid namespace, and a process
    // there with CAP_SYS_PTRACE walks out through /proc/PID/fd/N/../..
    let keep = super::kept_fds(config, channel);
    super::close_fds_except(keep.low_end, &keep.singles)?;
    crate::trace::mark("child: fds closed");
    // Until exec nothing in the container may ptrace us or open our
    // /proc/PID files (CVE-2016-9962); execve restores dumpability.
    // why: the id maps of a new user namespace are written by the parent
    // through our /proc/PID/{uid,gid}_map and setgroups, which are root's
    // while we are not dumpable: an unprivileged parent (rootless) could
    // not open them. Until the parent's Proceed (maps written) nothing of
    // the container runs yet: we are the first process of its namespaces.
    let maps_pending =
        config.kind == ChildKind::Init && config.plan.creates(LinuxNamespaceType::User);
    if !maps_pending {
        set_not_dumpable();
    }
    reset_signals();
    // (exec: the helper entered the cgroup and the container for us.)
    if config.kind == ChildKind::Init {
        enter_cgroup(config)?;
    }

    crate::trace::mark("child: cgroup joined");
    let state_json = match channel.recv()? {
        Some(Msg::Proceed(state)) => state,
        _ => bail!("parent did not complete setup"),
    };
    if maps_pending {
        set_not_dumpable();
    }

    // The seccomp agent's socket is a host path: connect before joining
    // namespaces or pivoting (see security/seccomp/notify.rs).
    let listener = connect_seccomp_listener(config, channel, &state_json)?;
    crate::trace::mark("child: released by parent");

    let fd_dir = match config.kind {
        ChildKind::Init => init_namespaces_and_rootfs(config, channel)?,
        ChildKind::Exec { .. } => {
            nix::unistd::setsid().context("setsid")?;
            None
        }
    };
    if config.kind == ChildKind::Init && config.spec.process().is_none() {
        return wait_without_process(config, channel, fd_dir.as_ref());
    }

    crate::trace::mark("child: namespaces and rootfs done");
    let process = &config.process;
    if process.terminal().unwrap_or(false) {
        let socket = config
            .console_socket
            .context("a terminal was requested but there is no console socket")?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        if config.keep_callers_stderr {
            save_callers_stderr();
        }
        crate::console::setup_in_container(socket, size, config.console_relayed_by_us)?;
    }
    if let Some(socket) = config.console_socket {
        let _ = nix::unistd::close(socket);
    }

    apply_process_attributes(&config.spec, process)?;
    crate::trace::mark("child: process attributes");
    // As runc: the first chdir comes while we are still root, so a cwd
    // that only root can reach (a 0700 /root) works for any user; only a
    // permission error is retried once we are the process's user.
    let cwd_pending = chdir_as_root(process)?;

    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let filter = match config
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(profile) => Some(seccomp::compile(profile).context("seccomp")?),
        None => None,
    };
    crate::trace::mark("child: seccomp compiled");
    let default_caps = oci_spec::runtime::LinuxCapabilities::default();
    let empty_caps = empty_capabilities(&default_caps);
    let capabilities = process.capabilities().as_ref().unwrap_or(&empty_caps);
    caps::prepare(capabilities)?;
    if no_new_privs {
        caps::set_no_new_privs()?;
    }
    fix_stdio_ownership(process.user().uid())?;
    process::switch_user(process)?;
    crate::trace::mark("child: user switched");
    // Without no_new_privs, loading the filter needs CAP_SYS_ADMIN: it stays
    // in permitted+effective until then, and execve drops it (see caps::apply).
    caps::apply(capabilities, filter.is_some() && !no_new_privs)?;

    if cwd_pending {
        let cwd = process.cwd();
        nix::unistd::chdir(cwd)
            .with_context(|| format!("chdir to cwd {:?} set in config.json", cwd))?;
    }
    verify_cwd_inside_root()?;

    let env = process_env(process);
    let args = process.args().clone().unwrap_or_default();
    let program = process::find_program(&args[0], &env)?;
    let mut exec_args = process::ExecArgs::new(&program, &args, &env)?;

    close_inherited_fds(3 + config.extra_fds)?;
    crate::trace::mark("child: exec prepared");

    if config.fifo_fd.is_some() {
        crate::cli::create::check_fifo_can_open()?;
    }
    channel.send(&Msg::Ready)?;
    if config.fifo_fd.is_some() {
        crate::cli::create::await_state_saved(channel)?;
    }
    // Kept open (close-on-exec) until execve: `start` reads our "0", then
    // the EOF that execve's close gives, and only then runs poststart.
    let start_fifo = match config.fifo_fd {
        Some(fifo_fd) => {
            // why: kept open until exec or _exit, not dropped when a step
            // below fails: `start` takes the fifo's hangup as the end, and
            // `run` then kills us before run() could report the failure.
            let fifo = std::mem::ManuallyDrop::new(open_exec_fifo(fd_dir.as_ref(), fifo_fd)?);
            crate::trace::mark("child: exec fifo opened (start)");
            // The host's procfs is not kept a moment longer than needed.
            drop(fd_dir);
            let start_hooks = config
                .spec
                .hooks()
                .as_ref()
                .and_then(|h| h.start_container().clone());
            crate::hooks::run_all("startContainer", start_hooks.as_ref(), &state_json)?;
            crate::trace::mark("child: startContainer hooks");
            Some(fifo)
        }
        None => None,
    };
    if let Some(fifo) = &start_fifo {
        use std::io::Write;
        (&**fifo).write_all(b"0").context("write exec fifo")?;
        if let Some(stub) = config.exec_stub {
            // The stub inherits the fifo to report its own execve's
            // failure, and marks it close-on-exec again before that execve.
            nix::fcntl::fcntl(
                fifo.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .context("exec fifo for the exec stub")?;
            exec_args = exec_args.through_stub(stub, fifo.as_raw_fd());
        }
    }
    // The filter is the last thing before execve: from here on, no system
    // call but execve (the profile may deny anything else), hence no
    // allocation either; install() allocates only on failure. With
    // SCMP_ACT_NOTIFY, one sendmsg hands the notify fd to the agent.
    crate::trace::mark("child: last mark (seccomp load, execve)");
    if let Some(filter) = &filter {
        let notify_fd = filter.install().context("load seccomp filter")?;
        if let (Some(fd), Some(listener)) = (notify_fd, &listener) {
            listener
                .send(fd)
                .context("send the seccomp notify fd to the listener")?;
        }
    }
    let errno = exec_args.exec();
    let err = exec_args.error(errno);
    if let Some(fifo) = &start_fifo {
        crate::cli::start::report_exec_failure(fifo, &err);
    }
    Err(err)
}

/// With SCMP_ACT_NOTIFY and a listenerPath: the connection to the agent and
/// the message it gets once the filter is loaded.
fn connect_seccomp_listener(
    config: &ChildConfig,
    channel: &Channel,
    state_json: &str,
) -> Result<Option<seccomp::ListenerMessage>> {
    let Some(path) = seccomp::listener_path(&config.spec) else {
        return Ok(None);
    };
    let (socket, pid) = match config.kind {
        ChildKind::Init => {
            let socket = seccomp::connect_listener(path)?;
            // Our pid as the runtime sees it: /proc is still the runtime's here.
            let pid = std::fs::read_link("/proc/self")
                .ok()
                .and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()))
                .context("read our pid from /proc/self")?;
            (socket, pid)
        }
        ChildKind::Exec {
            seccomp_listener, ..
        } => {
            // why: we were born in the container (its root, mount and pid
            // namespaces): `ozz exec` connected for us on the host, and it
            // tells our pid as it sees it (the helper reported it).
            let fd = seccomp_listener.context("seccomp: no connection to the listener")?;
            // SAFETY: the socket `ozz exec` connected, inherited through
            // the helper and kept by close_fds_except; nothing else in this
            // process owns it.
            let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
            let pid = match channel.recv()? {
                Some(Msg::Pid(pid)) => pid,
                _ => bail!("parent did not tell the process's pid for the seccomp listener"),
            };
            (socket, pid)
        }
    };
    let metadata = config
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().as_deref());
    seccomp::ListenerMessage::new(socket, state_json, pid, metadata).map(Some)
}

/// A container created without `process`: the init holds the namespaces
/// and waits on exec.fifo like any other, but has nothing to run; `start`
/// refuses such a container before opening the fifo, so only another
/// reader could get here.
fn wait_without_process(
    config: &ChildConfig,
    channel: &Channel,
    fd_dir: Option<&std::os::fd::OwnedFd>,
) -> Result<Infallible> {
    close_inherited_fds(3 + config.extra_fds)?;
    channel.send(&Msg::Ready)?;
    if let Some(fifo_fd) = config.fifo_fd {
        open_exec_fifo(fd_dir, fifo_fd)?;
    }
    bail!("config.json has no process to start")
}

/// The caller's stderr from before the pty became ours (-1: none kept).
static CALLERS_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// why: with a terminal, fd 2 becomes the pty, and a failure after Ready (a
/// startContainer hook, with the hook's own stderr in the message) would
/// only reach whoever reads the pty, not the caller who ran the runtime.
fn save_callers_stderr() {
    if let Ok(fd) = nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)) {
        CALLERS_STDERR.store(fd, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One failure line on the caller's stderr (the saved one when a terminal
/// took fd 2), else on fd 2.
fn report_after_ready(text: &str) {
    let line = format!("ozz: {text}\n");
    let saved = CALLERS_STDERR.load(std::sync::atomic::Ordering::Relaxed);
    if saved >= 0 {
        // SAFETY: `saved` is our own descriptor, open until _exit.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(saved) };
        if nix::unistd::write(fd, line.as_bytes()).is_ok() {
            return;
        }
    }
    eprint!("{line}");
}

fn empty_capabilities(
    template: &oci_spec::runtime::LinuxCapabilities,
) -> oci_spec::runtime::LinuxCapabilities {
    let mut caps = template.clone();
    caps.set_bounding(Some(Default::default()));
    caps.set_effective(Some(Default::default()));
    caps.set_inheritable(Some(Default::default()));
    caps.set_permitted(Some(Default::default()));
    caps.set_ambient(Some(Default::default()));
    caps
}

/// Namespaces the parent could not enter for us, identity inside a user
/// namespace, the session, hostname, and the whole root filesystem.
/// Returns the init's /proc/self/fd directory as it was before pivot_root.
fn init_namespaces_and_rootfs(
    config: &ChildConfig,
    channel: &Channel,
) -> Result<Option<std::os::fd::OwnedFd>> {
    let plan = &config.plan;
    if let Some(path) = plan.joined_path(LinuxNamespaceType::User) {
        namespaces::join(LinuxNamespaceType::User, path)?;
    }
    if plan.has(LinuxNamespaceType::User) {
        become_root_in_user_ns()?;
    }
    let runtime_mnt_ns = namespaces::current_id(LinuxNamespaceType::Mount);
    if let Some(path) = plan.joined_path(LinuxNamespaceType::Mount) {
        namespaces::join(LinuxNamespaceType::Mount, path)?;
    }
    // why: without a mount namespace of its own (none asked, or the path
    // names the runtime's own) the container shares the host's mounts:
    // nothing may pivot, move or re-propagate the host's root there.
    let shares_host_mounts = !plan.creates(LinuxNamespaceType::Mount)
        && runtime_mnt_ns.is_some()
        && namespaces::current_id(LinuxNamespaceType::Mount) == runtime_mnt_ns;
    nix::unistd::setsid().context("setsid")?;
    if !config.no_new_keyring {
        join_session_keyring(&config.id);
    }
    crate::trace::mark("child: setsid, keyring");
    if plan.has(LinuxNamespaceType::Uts) {
        if let Some(hostname) = config.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(hostname).context("sethostname")?;
        }
        if let Some(domain) = config
            .spec
            .domainname()
            .as_deref()
            .filter(|h| !h.is_empty())
        {
            set_domainname(domain)?;
        }
    }
    if plan.creates(LinuxNamespaceType::Network) {
        bring_up_loopback()?;
    }
    if shares_host_mounts {
        // runc's phrase: masking would cover the host's own /proc and /sys.
        let linux = config.spec.linux().as_ref();
        let masked = linux.and_then(|l| l.masked_paths().as_ref());
        let readonly = linux.and_then(|l| l.readonly_paths().as_ref());
        if masked.is_some_and(|m| !m.is_empty()) || readonly.is_some_and(|r| !r.is_empty()) {
            bail!("unable to restrict sys entries without a private MNT namespace");
        }
    }
    rootfs::prepare(&config.spec, &config.rootfs, shares_host_mounts)?;
    crate::trace::mark("child: rootfs prepared");
    rootfs::mount_all(
        &config.spec,
        &rootfs::MountContext {
            rootfs: &config.rootfs,
            cgroup_path: &config.cgroup_path,
            in_user_ns: plan.has(LinuxNamespaceType::User),
            runtime_in_user_ns: crate::rootless::in_user_namespace(),
            new_cgroup_ns: plan.creates(LinuxNamespaceType::Cgroup),
            new_mount_ns: plan.creates(LinuxNamespaceType::Mount),
            // The parent sets the cgroup's limits while we mount.
            await_limits: &|| match channel.recv()? {
                Some(Msg::Proceed(_)) => Ok(()),
                _ => bail!("parent did not complete setup"),
            },
        },
    )?;
    crate::trace::mark("child: mounts done");
    // prestart and createRuntime run in the runtime's namespaces (the
    // parent), createContainer here, before pivot_root.
    channel.send(&Msg::RunCreateRuntimeHooks)?;
    let state_json = match channel.recv()? {
        Some(Msg::Proceed(state)) => state,
        Some(Msg::Failed(reason)) => bail!(reason),
        _ => bail!("parent went away while running hooks"),
    };
    let hooks = config
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone());
    crate::hooks::run_all("createContainer", hooks.as_ref(), &state_json)?;
    crate::trace::mark("child: createContainer hooks");
    // The exec fifo is reopened through our own /proc/self/fd (the host's
    // procfs, reachable until pivot_root): the container may have no /proc.
    let fd_dir = nix::fcntl::open(
        "/proc/self/fd",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("open /proc/self/fd")?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    let fd_dir = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd_dir) };
    // The view's files, cloned while the host's mounts are in sight.
    let procview = match &config.procview {
        Some(dir) => crate::procview::open_files(dir)?,
        None => Vec::new(),
    };
    rootfs::enter(&config.rootfs, config.no_pivot, shares_host_mounts)?;
    crate::trace::mark("child: pivot_root");
    create_cwd(config.process.cwd())?;
    rootfs::finish(&config.spec, procview)?;
    crate::trace::mark("child: masked/readonly paths, sysctls");
    rootfs::finish_dev(&config.spec)?;
    crate::trace::mark("child: /dev finished");
    Ok(Some(fd_dir))
}

/// execCPUAffinity.initial holds while the process enters its cgroup (on
/// v2 it is born there, so initial and the cgroup apply together).
fn enter_cgroup(config: &ChildConfig) -> Result<()> {
    let affinity = config.process.exec_cpu_affinity().as_ref();
    if let Some(initial) = affinity.and_then(|a| a.initial().as_deref()) {
        process::set_cpu_affinity(initial)?;
    }
    config.cgroup_entry.join_self()
}

/// `exec`, in the helper that clones the process (spawn::clone_exec_child):
/// the cgroup, every namespace of the running container (user first, so
/// the others are entered with its rights; mount last), its root, and
/// pid and time namespaces for the child. Every descriptor opened here is
/// closed on return, before the clone.
pub fn enter_container(config: &ChildConfig, target_pid: i32) -> Result<()> {
    use LinuxNamespaceType as T;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    enter_cgroup(config)?;
    // The container's root and its pid and time namespaces, opened while
    // /proc is still the host's: after joining the mount namespace the host
    // PID means nothing.
    let root = std::fs::File::open(format!("/proc/{target_pid}/root"))
        .context("open the container's root")?;
    let mut for_children = Vec::new();
    for typ in [T::Pid, T::Time] {
        let path = format!("/proc/{target_pid}/ns/{}", namespaces::proc_name(typ));
        if Path::new(&path).exists() && !super::same_namespace(Path::new(&path), typ) {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("open {} namespace {path}", namespaces::proc_name(typ)))?;
            for_children.push((typ, file));
        }
    }
    let mut joined_user = false;
    for typ in [T::User, T::Ipc, T::Uts, T::Network, T::Cgroup, T::Mount] {
        let path = format!("/proc/{target_pid}/ns/{}", namespaces::proc_name(typ));
        if super::same_namespace(Path::new(&path), typ) {
            continue;
        }
        namespaces::join(typ, Path::new(&path))?;
        joined_user |= typ == T::User;
    }
    if joined_user {
        become_root_in_user_ns()?;
    }
    nix::unistd::fchdir(root.as_raw_fd()).context("enter the container's root")?;
    nix::unistd::chroot(".").context("enter the container's root")?;
    nix::unistd::chdir("/")?;
    drop(root);
    for (typ, file) in for_children {
        nix::sched::setns(&file, namespaces::clone_flag(typ))
            .with_context(|| format!("join {} namespace", namespaces::proc_name(typ)))?;
    }
    Ok(())
}

fn become_root_in_user_ns() -> Result<()> {
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).context("setgid 0 in the user namespace")?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).context("setuid 0 in the user namespace")?;
    Ok(())
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setdomainname");
    }
    Ok(())
}

/// A fresh session keyring, so containers do not share the host's keys.
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let Ok(name) = std::ffi::CString::new(format!("_ses.{id}")) else {
        return;
    };
    // SAFETY: keyctl reads the NUL-terminated name; failure (e.g. ENOSYS or
    // EDQUOT) only means the container keeps the inherited keyring.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
}

fn apply_process_attributes(spec: &oci_spec::runtime::Spec, process: &Process) -> Result<()> {
    if let Some(score) = process.oom_score_adj() {
        process::set_oom_score_adj(score)?;
    }
    process::set_rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    if let Some(io) = process.io_priority() {
        process::set_io_priority(io.class(), io.priority())?;
    }
    if let Some(scheduler) = process.scheduler() {
        process::set_scheduler(scheduler)?;
    }
    // execCPUAffinity.final: the affinity once inside the cgroup; without
    // it, every CPU the cgroup allows, not the affinity of whoever ran ozz
    // (`taskset -c 0 ozz run`), as runc resets it.
    let affinity = process.exec_cpu_affinity().as_ref();
    match affinity.and_then(|a| a.cpu_affinity_final().as_deref()) {
        Some(list) => process::set_cpu_affinity(list)?,
        None => process::reset_cpu_affinity()?,
    }
    if let Some(policy) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        process::set_memory_policy(policy)?;
    }
    if let Some(personality) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        process::set_personality(&personality.domain())?;
    }
    // why: without process.user.umask the caller's umask leaked into the
    // container; runc (and callers relying on it) expect 0022.
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    Ok(())
}

/// runc's fixStdioPermissions: stdio (a pipe, the pty slave) is handed to
/// the process's uid before the switch, so a non-root user can reopen it
/// (`echo > /dev/stdout`). /dev/null is left alone; EINVAL (uid not mapped),
/// EPERM (owner not mapped in our user namespace) and EROFS are not errors.
fn fix_stdio_ownership(uid: u32) -> Result<()> {
    use nix::errno::Errno;
    use nix::sys::stat::fstat;
    let null = nix::sys::stat::stat("/dev/null").ok().map(|s| s.st_rdev);
    for fd in 0..=2 {
        let Ok(st) = fstat(fd) else { continue };
        let is_null = null
            .is_some_and(|rdev| st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == rdev);
        if st.st_uid == uid || is_null {
            continue;
        }
        match nix::unistd::fchown(fd, Some(nix::unistd::Uid::from_raw(uid)), None) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(e).with_context(|| format!("chown stdio fd {fd} to uid {uid}")),
        }
    }
    Ok(())
}

/// CVE-2024-21626: a working directory reached through a leaked host fd
/// reads as "(unreachable)/..." — refuse to run there.
fn verify_cwd_inside_root() -> Result<()> {
    const OUTSIDE: &str = "current working directory is outside of the container's root";
    // why: glibc's getcwd fails with ENOENT (instead of returning
    // "(unreachable)/...") for a directory outside our root: that is the
    // attack, so say so rather than "getcwd: ENOENT".
    let cwd = match nix::unistd::getcwd() {
        Err(nix::errno::Errno::ENOENT) => bail!(OUTSIDE),
        other => other.context("getcwd")?,
    };
    if !cwd.is_absolute() || cwd.to_string_lossy().starts_with("(unreachable)") {
        bail!(OUTSIDE);
    }
    Ok(())
}

/// Brings up `lo` in the container's new network namespace, as runc and
/// crun do: a fresh namespace has its loopback device down, and programs
/// expect 127.0.0.1 to answer.
fn bring_up_loopback() -> Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket() takes plain integers; the descriptor is checked and
    // then owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("bring up lo: socket");
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is a valid value of this plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq we own, named by ifr_name.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error()).context("bring up lo: get flags");
    }
    // SAFETY: SIOCGIFFLAGS just set the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(std::io::Error::last_os_error()).context("bring up lo: set flags");
    }
    Ok(())
}

/// A cwd missing in the rootfs is made (0755, owned by the container's
/// root) before the rootfs turns read-only, as runc does.
fn create_cwd(cwd: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if cwd.exists() {
        return Ok(());
    }
    let mut missing: Vec<&Path> = cwd.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for dir in missing {
        match std::fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => {
                // The mode is exact, whatever the caller's umask.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("create cwd {}", cwd.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create cwd {}", cwd.display())),
        }
    }
    Ok(())
}

/// The first chdir to the cwd, as root. True when it must be retried after
/// the switch to the process's user (root was refused: EACCES/EPERM, e.g.
/// a root-squashed or user-namespaced mount the user owns).
fn chdir_as_root(process: &Process) -> Result<bool> {
    let cwd = process.cwd();
    match nix::unistd::chdir(cwd) {
        Ok(()) => Ok(false),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => Ok(true),
        Err(e) => Err(e).with_context(|| format!("chdir to cwd {:?} set in config.json", cwd)),
    }
}

/// The process's environment as runc builds it: a key given twice keeps
/// its first place and its last value, and a missing or empty HOME becomes
/// the user's home from /etc/passwd (or /).
fn process_env(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    for entry in process.env().iter().flatten() {
        let key = entry.split('=').next().unwrap_or_default();
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(slot) => slot.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
    let home = format!("HOME={}", home_dir(process.user().uid()));
    match env.iter_mut().find(|e| e.starts_with("HOME=")) {
        Some(slot) if slot.as_str() == "HOME=" => *slot = home,
        Some(_) => {}
        None => env.push(home),
    }
    env
}

/// HOME from the container's own /etc/passwd (we are past pivot_root).
fn home_dir(uid: u32) -> String {
    process::passwd_field(uid, 5).unwrap_or_else(|| "/".to_string())
}

/// Marks every descriptor from `first` up close-on-exec, so nothing of the
/// host's (and none of ours) reaches the container process.
fn close_inherited_fds(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes plain integers and only flags descriptors.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("close_range");
    }
    // Preserved descriptors (3..first) must survive exec.
    for fd in 3..first as RawFd {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
    }
    Ok(())
}

/// Blocks until `start` opens exec.fifo for reading. `fd_dir`: our
/// /proc/self/fd opened before pivot_root, else the current /proc's.
fn open_exec_fifo(fd_dir: Option<&std::os::fd::OwnedFd>, fifo_fd: RawFd) -> Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let flags = nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = match fd_dir {
        Some(dir) => nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            fifo_fd.to_string().as_str(),
            flags,
            nix::sys::stat::Mode::empty(),
        ),
        None => nix::fcntl::open(
            format!("/proc/self/fd/{fifo_fd}").as_str(),
            flags,
            nix::sys::stat::Mode::empty(),
        ),
    }
    .context("open exec fifo")?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}
