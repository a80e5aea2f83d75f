//! `ozz create`: build the container and leave its init waiting on exec.fifo.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bundle;
use crate::cgroups;
use crate::cli::{CreateArgs, GlobalOpts};
use crate::hooks;
use crate::namespaces::NamespacePlan;
use crate::spawn::{self, ChildConfig, ChildKind};
use crate::state::{self, ContainerDir, ContainerState, Status};
use crate::sync::Msg;

pub fn run(global: &GlobalOpts, root: &Path, args: &CreateArgs) -> Result<()> {
    create(global, root, args, false).map(|_| ())
}

/// A created container, still locked by this process.
pub struct Created {
    pub dir: ContainerDir,
    pub state: ContainerState,
    /// The pty master, when `run` relays the terminal itself.
    pub console_master: Option<OwnedFd>,
}

/// What a failed create must undo, newest first.
struct Undo {
    child: Option<i32>,
    /// The cgroup directories this create made (deepest first): a failed
    /// create removes those and never one that existed before it.
    cgroup_made: Vec<PathBuf>,
    /// The container's cgroup, relative to each hierarchy's root.
    cgroup_rel: PathBuf,
}

impl Undo {
    fn run(self, dir: ContainerDir) {
        if let Some(pid) = self.child {
            spawn::kill_and_reap(pid);
        }
        for made in &self.cgroup_made {
            if made.ends_with(&self.cgroup_rel) {
                if let Err(e) = cgroups::remove_dirs(std::slice::from_ref(made)) {
                    crate::log::warn(&format!("cleanup: {e:#}"));
                }
            } else {
                // A parent we made: another container may be using it by now.
                let _ = std::fs::remove_dir(made);
            }
        }
        if let Err(e) = dir.destroy() {
            crate::log::warn(&format!("cleanup: {e:#}"));
        }
    }
}

/// The bundle of a new container (create, restore): loaded and validated,
/// with beancounter annotations turned into ordinary config fields before
/// anything exists on the host, so a conflict leaves nothing behind.
pub fn load_bundle(dir: &Path) -> Result<bundle::Bundle> {
    let mut bundle = bundle::load(dir)?;
    crate::trace::mark("bundle loaded and validated");
    bundle.spec =
        crate::beancounters::apply_to_spec(bundle.spec, &bundle.rootfs, cgroups::is_v2())?;
    crate::trace::mark("beancounter annotations");
    Ok(bundle)
}

/// What create settles from the bundle before anything exists on the host.
struct Settled {
    /// The procview's directory, when its files are bound over /proc.
    procview: Option<PathBuf>,
    /// The sealed exec stub for the init (security/exec_stub.rs).
    exec_stub: Option<OwnedFd>,
}

/// `relay_console`: `run` in the foreground owns the terminal itself when
/// no console socket is given.
pub fn create(
    global: &GlobalOpts,
    root: &Path,
    args: &CreateArgs,
    relay_console: bool,
) -> Result<Created> {
    state::validate_id(&args.id)?;
    let mut bundle = load_bundle(&args.bundle)?;
    let terminal = bundle.terminal();
    if terminal && args.console_socket.is_none() && !relay_console {
        bail!("cannot allocate tty if ozz will detach without setting console socket");
    }
    if !terminal && args.console_socket.is_some() {
        bail!("cannot use console socket if ozz will not detach or allocate tty");
    }
    // Checked before anything exists: a view asked for and not mounted
    // leaves nothing behind.
    let procview = crate::procview::for_create(&bundle.spec, global)?;
    if let Some(dir) = &procview {
        let socket = crate::procview::agent::socket_path(dir);
        bundle.spec = crate::procview::agent::route_to_agent(bundle.spec, &socket)?;
    }
    let extra_fds = preserved_fd_count(args.preserve_fds)?;
    reserve_preserved_fds(extra_fds)?;
    // CVE-2019-5736: decided on the final config, before anything exists
    // (the re-exec, where it is the way, starts this command over), and
    // after the preserved descriptors are reserved: the stub's memfd must
    // not take a gap among them into the container.
    let exec_stub = crate::security::exe_seal::protect_container_process(&bundle.spec)?;
    let settled = Settled {
        procview,
        exec_stub,
    };
    let dir = ContainerDir::create(root, &args.id)?;
    crate::trace::mark("state dir created");
    let mut undo = Undo {
        child: None,
        cgroup_made: Vec::new(),
        cgroup_rel: PathBuf::new(),
    };
    match build(
        global,
        args,
        bundle,
        settled,
        &dir,
        &mut undo,
        terminal && relay_console,
    ) {
        Ok((state, console_master)) => Ok(Created {
            dir,
            state,
            console_master,
        }),
        Err(err) => {
            undo.run(dir);
            Err(err)
        }
    }
}

fn build(
    global: &GlobalOpts,
    args: &CreateArgs,
    bundle: bundle::Bundle,
    settled: Settled,
    dir: &ContainerDir,
    undo: &mut Undo,
    relay_console: bool,
) -> Result<(ContainerState, Option<OwnedFd>)> {
    let spec = bundle.spec;
    let plan = NamespacePlan::from_spec(&spec);
    let rootless =
        crate::rootless::cgroups_rootless(global.rootless.as_deref(), global.systemd_cgroup)?;
    let cgroup_path = cgroups::container_path(&spec, &args.id, global.systemd_cgroup, rootless)?;

    // The console socket: connect to the caller's, or make our own pair.
    let (console_for_child, console_keep) =
        crate::console::sockets(args.console_socket.as_deref(), relay_console)?;
    crate::trace::mark("console sockets");

    let fifo_path = dir.fifo_path();
    // The mode is exact (mkfifo's is cut by the umask): the init may be a
    // non-root user or root of a user namespace, and must be able to open
    // it for writing.
    crate::state::with_umask_cleared(|| {
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
    })
    .context("create exec fifo")?;
    let fifo = nix::fcntl::open(
        &fifo_path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("open exec fifo")?;
    crate::trace::mark("exec fifo made");

    // Without a process (allowed until start) the init is made all the
    // same and waits on the fifo; this default is never run.
    let mut process = spec.process().clone().unwrap_or_default();
    // Socket activation: the descriptors follow stdio (after the preserved
    // ones) and the container's init is their listener, as runc passes them.
    let activation_fds = listen_fds();
    if activation_fds > 0 {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={activation_fds}"));
        env.push("LISTEN_PID=1".to_string());
        process.set_env(Some(env));
    }
    if let Some(other) = crate::state::cgroup_user(
        dir.path.parent().unwrap_or(Path::new("/")),
        &cgroup_path,
        &args.id,
    ) {
        bail!(
            "cgroup {} is in use by container {other}",
            cgroup_path.display()
        );
    }
    crate::trace::mark("cgroup in-use check (every state read)");
    undo.cgroup_rel = cgroup_path
        .strip_prefix("/")
        .unwrap_or(&cgroup_path)
        .to_path_buf();
    undo.cgroup_made = cgroups::check_before_create(&cgroup_path)?;
    crate::trace::mark("cgroup path checked");
    // From here on a create killed at any point leaves what `delete
    // --force` needs and what `list` shows: the recovery links (the
    // cgroup, then the init's pid; state::CGROUP_LINK). state.json is
    // written once, when the init is ready: serializing the whole config
    // costs more than the rest of a step here.
    dir.record_cgroup(&cgroup_path)?;
    crate::trace::mark("recovery link");
    let (cgroup_entry, no_cgroup) = match spawn::cgroup_join::prepare(&cgroup_path) {
        Ok(entry) => (entry, false),
        Err(err) if rootless && crate::rootless::is_permission_error(&err) => {
            go_without_cgroup(&spec, err)?;
            for made in undo.cgroup_made.drain(..) {
                let _ = std::fs::remove_dir(made);
            }
            dir.forget_cgroup()?;
            (Default::default(), true)
        }
        Err(err) => return Err(err),
    };
    crate::trace::mark("cgroup dirs created");
    // The limits are set beside clone3 and the init's mounts (see
    // PendingLimits); the init makes no device node before they are.
    let mut limits = None;
    if !no_cgroup {
        cgroups::check_not_frozen(&cgroup_path)?;
        let resources = cgroups::effective_resources(&spec)?;
        limits = Some(cgroups::PendingLimits::start(
            &cgroup_path,
            &resources,
            rootless,
        )?);
    }
    // The spec is lent to the child's config and taken back after the fork:
    // a deep copy of it cost more than the rest of the config.
    let child_config = ChildConfig {
        kind: ChildKind::Init,
        spec,
        process,
        rootfs: bundle.rootfs.clone(),
        cgroup_path: cgroup_path.clone(),
        plan: plan.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        console_socket: console_for_child.as_ref().map(|fd| fd.as_raw_fd()),
        console_relayed_by_us: console_keep.is_some(),
        // Only `run` in the foreground outlives the wait on exec.fifo.
        keep_callers_stderr: relay_console,
        fifo_fd: Some(fifo),
        exec_stub: settled.exec_stub.as_ref().map(|fd| fd.as_raw_fd()),
        extra_fds: preserved_fd_count(args.preserve_fds)?,
        id: args.id.clone(),
        cgroup_entry,
        procview: settled.procview,
    };
    let child = spawn::fork_child(&child_config)?;
    crate::trace::mark("child forked");
    let spec = child_config.spec;
    undo.child = Some(child.pid);
    let mut state = ContainerState {
        id: args.id.clone(),
        pid: child.pid,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::log::rfc3339_now(),
        owner: owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup_path: cgroup_path.clone(),
        systemd_cgroup: global.systemd_cgroup,
        config: spec,
        carried_beancounters: Default::default(),
        rootless,
        no_cgroup,
        exec_stub: settled.exec_stub.is_some(),
    };
    // why: the child prints "parent did not complete setup" when our end
    // of the channel closes first, which made a second error line; so on
    // failure it is killed while the channel is still open.
    let result = (|| -> Result<(ContainerState, Option<OwnedFd>)> {
        drop(console_for_child);
        let _ = nix::unistd::close(fifo);

        if plan.creates(oci_spec::runtime::LinuxNamespaceType::User) {
            crate::rootless::write_id_maps(child.pid, &state.config)?;
        }
        // The init keeps this first payload for its startContainer hooks,
        // which run once the container is created (runc passes "created");
        // the createContainer hooks get the second payload, "creating".
        let created_json = state.oci_json(Status::Created).to_string();
        child.channel.send(&Msg::Proceed(created_json))?;
        crate::trace::mark("child released");

        // why: while the init mounts its root (the longest step), we record
        // its pid and wait for the cgroup's limits. The init waits for
        // Proceed again before it makes any device node: the device rules
        // (v1 applies them as deny-all, then allows) must be complete by
        // then.
        state.pid_start_time = state::proc_stat(child.pid)
            .map(|s| s.start_time)
            .context("the container process exited during setup")?;
        dir.record_init(child.pid, state.pid_start_time)?;
        if let Some(limits) = limits.take() {
            limits.wait()?;
            crate::trace::mark("cgroup limits awaited (parent)");
        }
        // A child that failed meanwhile has sent why and exited: the send
        // then fails, and the expect below reads its reason.
        let _ = child.channel.send(&Msg::Proceed(String::new()));
        // why: the init still mounts, while we would only wait for it;
        // state.json (its serializing, the new file and its write: about a
        // quarter of a millisecond on ext4) is written now under another
        // name and put in place once the init is ready, until when there
        // is none, as before.
        let prepared_state = dir.prepare_state(&state)?;
        crate::trace::mark("state prepared");

        let creating_json = state.oci_json(Status::Creating).to_string();
        spawn::expect(&child.channel, Msg::RunCreateRuntimeHooks)?;
        crate::trace::mark("child mounted (waits for hooks)");
        let hooks = state.config.hooks().clone().unwrap_or_default();
        let hook_result = hooks::run_all("prestart", hooks.prestart().as_ref(), &creating_json)
            .and_then(|_| {
                hooks::run_all(
                    "createRuntime",
                    hooks.create_runtime().as_ref(),
                    &creating_json,
                )
            });
        if let Err(err) = hook_result {
            let _ = child.channel.send(&Msg::Failed(format!("{err:#}")));
            return Err(err);
        }
        crate::trace::mark("prestart/createRuntime hooks");
        child.channel.send(&Msg::Proceed(creating_json))?;
        spawn::expect(&child.channel, Msg::Ready)?;
        crate::trace::mark("child ready");

        let console_master = match console_keep {
            Some(socket) => Some(crate::sync::recv_fd(socket.as_raw_fd())?),
            None => None,
        };
        prepared_state.commit()?;
        crate::trace::mark("state written");
        if let Some(pid_file) = &args.pid_file {
            write_pid_file(pid_file, child.pid)?;
        }
        // The init waits for this before exec.fifo: had we died before
        // saving, it would have waited there forever with no state.json.
        child.channel.send(&Msg::Proceed(String::new()))?;
        Ok((state, console_master))
    })();
    if result.is_err() {
        spawn::kill_and_reap(child.pid);
        undo.child = None;
    }
    result
}

/// Rootless, and the cgroup cannot be made or joined for want of
/// permission (a cgroup v1 or hybrid host, or v2 with nothing delegated to
/// the user): the container may run without one, as runc's does, unless
/// the config names its cgroup (then that cgroup was meant) or asks for
/// limits (they would silently not hold).
fn go_without_cgroup(spec: &oci_spec::runtime::Spec, err: anyhow::Error) -> Result<()> {
    let named = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .is_some_and(|p| !p.as_os_str().is_empty());
    if named {
        return Err(err.context("rootless: the cgroupsPath of config.json is not writable by this user (delegate it, or leave cgroupsPath out)"));
    }
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if crate::rootless::needs_controllers(&resources) {
        bail!(
            "rootless: config.json asks for resource limits but this user may not create a cgroup ({:#}); delegate a cgroup v2 subtree to the user and name it in cgroupsPath, or drop the limits",
            err
        );
    }
    crate::log::debug(&format!(
        "rootless: no cgroup ({err:#}); the container runs without one"
    ));
    Ok(())
}

/// Child side, just before *ready*: after ready a failure reaches nobody
/// but the container's stderr while create reports success, so make sure
/// the rlimits just set still leave a descriptor for exec.fifo.
pub fn check_fifo_can_open() -> Result<()> {
    match nix::fcntl::fcntl(0, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))
        .or_else(|_| nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0)))
    {
        Ok(fd) => {
            let _ = nix::unistd::close(fd);
            Ok(())
        }
        // EINVAL: the limit is 0, so even descriptor 0 is out of range.
        Err(nix::errno::Errno::EMFILE | nix::errno::Errno::EINVAL) => {
            bail!("RLIMIT_NOFILE leaves the container's init no descriptor to open exec.fifo")
        }
        // No stdio to duplicate: nothing learnt, go on.
        Err(_) => Ok(()),
    }
}

/// Child side, after *ready*: waits until create saved the final state.
/// If create died first, the channel's EOF ends the init here instead of
/// leaving it blocked on exec.fifo.
pub fn await_state_saved(channel: &crate::sync::Channel) -> Result<()> {
    match channel.recv()? {
        Some(Msg::Proceed(_)) => Ok(()),
        Some(Msg::Failed(reason)) => bail!(reason),
        _ => bail!("ozz create went away before saving the container's state"),
    }
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    state::write_atomic(&path, pid.to_string().as_bytes())
        .with_context(|| format!("write pid file {}", path.display()))
}

/// Socket activation: systemd's LISTEN_FDS descriptors follow stdio.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `--preserve-fds` plus LISTEN_FDS, checked: descriptors 3..3+n must all
/// lie below the open file limit, or the count wrapped or is nonsense (a
/// wrapped count would skip the close-on-exec sweep or close stdio).
pub fn preserved_fd_count(preserve: u32) -> Result<u32> {
    let listen = listen_fds();
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .context("getrlimit RLIMIT_NOFILE")?;
    let total = preserve.checked_add(listen);
    match total {
        Some(n) if 3 + u64::from(n) <= soft.min(i32::MAX as u64) => Ok(n),
        _ if listen > 0 => bail!(
            "--preserve-fds {preserve} with LISTEN_FDS {listen} exceeds the open file limit {soft}"
        ),
        _ => bail!("--preserve-fds {preserve} exceeds the open file limit {soft}"),
    }
}

/// Makes sure descriptors 3..3+n are open (on /dev/null if the caller left
/// gaps), so none of ozz's own descriptors can take a preserved number and
/// slip into the container.
pub fn reserve_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n as i32 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            let null = std::fs::File::open("/dev/null")?.into_raw_fd();
            if null != fd {
                nix::unistd::dup2(null, fd)?;
                nix::unistd::close(null)?;
            }
        }
    }
    Ok(())
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    crate::process::passwd_field(uid, 0).unwrap_or_else(|| uid.to_string())
}
