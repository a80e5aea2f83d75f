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
    crate::security::exe_seal::reexec_sealed_if_needed()?;
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
    cgroup: Option<PathBuf>,
}

impl Undo {
    fn run(self, dir: ContainerDir) {
        if let Some(pid) = self.child {
            spawn::kill_and_reap(pid);
        }
        if let Some(path) = self.cgroup {
            if let Err(e) = cgroups::remove(&path) {
                crate::log::warn(&format!("cleanup: {e:#}"));
            }
        }
        if let Err(e) = dir.destroy() {
            crate::log::warn(&format!("cleanup: {e:#}"));
        }
    }
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
    let mut bundle = bundle::load(&args.bundle)?;
    // Beancounter annotations become ordinary config fields before anything
    // exists on the host, so a conflict leaves nothing behind.
    bundle.spec =
        crate::beancounters::apply_to_spec(bundle.spec, &bundle.rootfs, cgroups::is_v2())?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && args.console_socket.is_none() && !relay_console {
        bail!("cannot allocate tty if ozz will detach without setting console socket");
    }
    if !terminal && args.console_socket.is_some() {
        bail!("cannot use console socket if ozz will not detach or allocate tty");
    }
    reserve_preserved_fds(args.preserve_fds + listen_fds())?;
    let dir = ContainerDir::create(root, &args.id)?;
    let mut undo = Undo {
        child: None,
        cgroup: None,
    };
    match build(
        global,
        args,
        bundle,
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
    dir: &ContainerDir,
    undo: &mut Undo,
    relay_console: bool,
) -> Result<(ContainerState, Option<OwnedFd>)> {
    let spec = bundle.spec;
    let plan = NamespacePlan::from_spec(&spec);
    let cgroup_path = cgroups::container_path(&spec, &args.id, global.systemd_cgroup)?;

    // The console socket: connect to the caller's, or make our own pair.
    let (console_for_child, console_keep) =
        crate::console::sockets(args.console_socket.as_deref(), relay_console)?;

    let fifo_path = dir.fifo_path();
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .context("create exec fifo")?;
    // mkfifo's mode is cut by the umask; the init may be a non-root user or
    // root of a user namespace, and must be able to open it for writing.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .context("chmod exec fifo")?;
    let fifo = nix::fcntl::open(
        &fifo_path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("open exec fifo")?;

    let mut process = spec
        .process()
        .clone()
        .context("config.json: process is missing")?;
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
    let manager = cgroups::manager(&cgroup_path)?;
    undo.cgroup = Some(cgroup_path.clone());
    let cgroup_entry = spawn::cgroup_join::prepare(&cgroup_path)?;
    let child_config = ChildConfig {
        kind: ChildKind::Init,
        spec: spec.clone(),
        process,
        rootfs: bundle.rootfs.clone(),
        cgroup_path: cgroup_path.clone(),
        plan: plan.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        console_socket: console_for_child.as_ref().map(|fd| fd.as_raw_fd()),
        // Only `run` in the foreground outlives the wait on exec.fifo.
        keep_callers_stderr: relay_console,
        fifo_fd: Some(fifo),
        extra_fds: args.preserve_fds + listen_fds(),
        id: args.id.clone(),
        cgroup_entry,
    };
    let child = spawn::fork_child(&child_config)?;
    undo.child = Some(child.pid);
    // why: the child prints "parent did not complete setup" when our end
    // of the channel closes first, which made a second error line; so on
    // failure it is killed while the channel is still open.
    let result = (|| -> Result<(ContainerState, Option<OwnedFd>)> {
        drop(console_for_child);
        let _ = nix::unistd::close(fifo);

        if plan.creates(oci_spec::runtime::LinuxNamespaceType::User) {
            spawn::write_id_maps(child.pid, &spec)?;
        }

        let pid_start_time = state::proc_stat(child.pid)
            .map(|s| s.start_time)
            .context("the container process exited during setup")?;
        let state = ContainerState {
            id: args.id.clone(),
            pid: child.pid,
            pid_start_time,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: crate::log::rfc3339_now(),
            owner: owner_name(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup_path: cgroup_path.clone(),
            systemd_cgroup: global.systemd_cgroup,
            config: spec.clone(),
        };
        // Limits (the device rules above all: v1 applies them as deny-all
        // then allows) must be complete before the child makes its nodes.
        cgroups::apply(
            &manager,
            &cgroups::effective_resources(&state.config)?,
            &state.cgroup_path,
        )?;
        let creating_json = state.oci_json(Status::Creating).to_string();
        // why: the init keeps this first payload for its startContainer hooks,
        // which run once the container is created (runc passes "created"); the
        // createContainer hooks get the second payload, "creating", below.
        let created_json = state.oci_json(Status::Created).to_string();
        child.channel.send(&Msg::Proceed(created_json))?;

        spawn::expect(&child.channel, Msg::RunCreateRuntimeHooks)?;
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
        child.channel.send(&Msg::Proceed(creating_json))?;
        spawn::expect(&child.channel, Msg::Ready)?;

        let console_master = match console_keep {
            Some(socket) => Some(crate::sync::recv_fd(socket.as_raw_fd())?),
            None => None,
        };
        dir.save(&state)?;
        if let Some(pid_file) = &args.pid_file {
            write_pid_file(pid_file, child.pid)?;
        }
        Ok((state, console_master))
    })();
    if result.is_err() {
        spawn::kill_and_reap(child.pid);
        undo.child = None;
    }
    result
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
