//! `ozz exec`: start one more process inside a running container.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, Process};

use crate::cli::create::{preserved_fd_count, reserve_preserved_fds, write_pid_file};
use crate::cli::ExecArgs;
use crate::foreground;
use crate::namespaces::NamespacePlan;
use crate::spawn::{self, ChildConfig, ChildKind};
use crate::state::{ContainerDir, Status};
use crate::sync::Msg;

pub fn run(root: &Path, args: &ExecArgs) -> Result<i32> {
    crate::security::exe_seal::reexec_sealed_if_needed()?;
    // why: first, so the state lock cannot take a number the caller left
    // free among the preserved ones and be passed into the container.
    let extra_fds = preserved_fd_count(args.preserve_fds)?;
    reserve_preserved_fds(extra_fds)?;
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    let status = state.status(&dir.path);
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => bail!("cannot exec in a stopped container"),
    }
    // Not started yet (also when paused since): pid 1 is still the init.
    let not_started = dir.fifo_path().exists();
    // The new process joins the frozen cgroup and freezes with it until
    // `resume`, which needs the container's lock: let go of it now.
    let lock = (status != Status::Paused).then_some(dir);
    let process = build_process(args, state.config.process().as_ref())?;
    if not_started && state.exec_stub {
        crate::security::exec_stub::check_exec_beside_the_init(&state.config, &process)?;
    }
    let sub_cgroups = spawn::cgroup_join::SubCgroups::parse(&args.cgroup)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.detach && args.console_socket.is_none() {
        bail!("cannot allocate tty if ozz will detach without setting console socket");
    }

    // A console socket only matters for a terminal, as in runc.
    let socket_path = args.console_socket.as_deref().filter(|_| terminal);
    let (console_for_child, console_keep) = crate::console::sockets(socket_path, terminal)?;

    // why: the process is born inside the container, where listenerPath
    // (a host path) cannot be reached: we connect, it inherits the socket.
    let mut spec = state.config.clone();
    let seccomp_listener = match crate::security::seccomp::listener_path(&spec)
        .map(crate::security::seccomp::connect_listener)
    {
        // The procview's server is gone: the process gets the host's
        // sysinfo rather than no exec at all.
        Some(Err(_)) if crate::procview::agent::routed(&spec) => {
            spec = crate::procview::agent::unrouted(spec)?;
            None
        }
        other => other.transpose()?,
    };

    let config = ChildConfig {
        kind: ChildKind::Exec {
            target_pid: state.pid,
            seccomp_listener: seccomp_listener.as_ref().map(|s| s.as_raw_fd()),
        },
        spec,
        process,
        rootfs: state.rootfs.clone(),
        cgroup_path: state.cgroup_path.clone(),
        plan: NamespacePlan::from_spec(&state.config),
        no_pivot: false,
        no_new_keyring: true,
        console_socket: console_for_child.as_ref().map(|fd| fd.as_raw_fd()),
        console_relayed_by_us: console_keep.is_some(),
        // exec's process execs right after Ready: the dup is closed then.
        keep_callers_stderr: true,
        fifo_fd: None,
        exec_stub: None,
        extra_fds,
        id: state.id.clone(),
        cgroup_entry: if state.no_cgroup {
            if !sub_cgroups.is_empty() {
                state.require_cgroup("exec --cgroup")?;
            }
            Default::default()
        } else if sub_cgroups.is_empty() {
            spawn::cgroup_join::prepare(&state.cgroup_path)?
        } else {
            spawn::cgroup_join::prepare_sub(&state.cgroup_path, &sub_cgroups)?
        },
        // An exec'd process joins the init's mounts, the view's binds too.
        procview: None,
    };
    let child = spawn::fork_child(&config)?;
    drop(console_for_child);
    // The process has its own copy; the agent sees EOF once it has exec'd.
    let told_pid = seccomp_listener.is_some();
    drop(seccomp_listener);
    let setup = (|| -> Result<()> {
        child
            .channel
            .send(&Msg::Proceed(state.oci_json(Status::Running).to_string()))?;
        if told_pid {
            child.channel.send(&Msg::Pid(child.pid))?;
        }
        spawn::expect(&child.channel, Msg::Ready)
    })();
    if let Err(err) = setup {
        spawn::kill_and_reap(child.pid);
        return Err(err);
    }
    // why: the process can still fail between Ready and execve (seccomp,
    // a program that vanished); it reports that on the channel, and nobody
    // read it, so the failure was silent. The channel is close-on-exec:
    // EOF means the program is running.
    if let Ok(Some(Msg::Failed(reason))) = child.channel.recv() {
        spawn::kill_and_reap(child.pid);
        bail!(reason);
    }
    // The container's lock is not held while the process runs.
    drop(lock);
    if let Some(pid_file) = &args.pid_file {
        // A caller that gets no pid file cannot manage the process: it is
        // not left running, as in runc.
        if let Err(err) = write_pid_file(pid_file, child.pid) {
            spawn::kill_and_reap(child.pid);
            return Err(err);
        }
    }
    if args.detach {
        return Ok(0);
    }
    let console_master = match console_keep {
        Some(socket) => Some(crate::sync::recv_fd(socket.as_raw_fd())?),
        None => None,
    };
    let mut signals = foreground::block_signals()?;
    foreground::wait(child.pid, &mut signals, console_master)
}

/// The process to run: `--process FILE`, or the container's own process
/// with the command line's overrides, as runc builds it.
fn build_process(args: &ExecArgs, base: Option<&Process>) -> Result<Process> {
    if let Some(path) = &args.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let process: Process = crate::bundle::parse_lenient(&data, |value| {
            crate::bundle::normalize_process(value);
            // `user` may be left out: uid and gid 0, as runc reads it
            // (oci-spec requires the field).
            if let Some(object) = value.as_object_mut() {
                object
                    .entry("user")
                    .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
            }
        })
        .map_err(|e| anyhow::anyhow!("parse process {}: {e}", path.display()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            bail!("process args must not be empty");
        }
        return Ok(process);
    }
    if args.command.is_empty() {
        bail!("process args cannot be empty (pass COMMAND or --process)");
    }
    let mut process = base.cloned().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    for entry in &args.env {
        let key = entry.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(entry.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u.parse()?, Some(g.parse()?)),
            None => (user.parse()?, None),
        };
        let mut u = process.user().clone();
        u.set_uid(uid);
        if let Some(gid) = gid {
            u.set_gid(gid);
        }
        process.set_user(u);
    }
    if !args.additional_gids.is_empty() {
        let mut u = process.user().clone();
        u.set_additional_gids(Some(args.additional_gids.clone()));
        process.set_user(u);
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.caps.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
            let mut b = caps.bounding().clone().unwrap_or_default();
            b.insert(cap);
            caps.set_bounding(Some(b));
            let mut e = caps.effective().clone().unwrap_or_default();
            e.insert(cap);
            caps.set_effective(Some(e));
            let mut p = caps.permitted().clone().unwrap_or_default();
            p.insert(cap);
            caps.set_permitted(Some(p));
            // runc adds it to the ambient set too; the kernel keeps it
            // there only when it is also inheritable.
            let mut a = caps.ambient().clone().unwrap_or_default();
            a.insert(cap);
            caps.set_ambient(Some(a));
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}
