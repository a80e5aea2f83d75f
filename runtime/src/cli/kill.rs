//! `ozz kill`: signal the init, or every process with --all.

use std::path::Path;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use crate::cgroups;
use crate::cli::KillArgs;
use crate::errors::RuntimeError;
use crate::namespaces::NamespacePlan;
use crate::state::{ContainerDir, ContainerState, Status};

pub fn run(root: &Path, args: &KillArgs) -> Result<()> {
    let signal = parse_signal_number(args.signal.as_deref().unwrap_or("SIGTERM"))?;
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    if args.all {
        // Whatever the init's status: in a pod sharing one PID namespace
        // the shim calls `kill --all` after the main process exited, to
        // stop what it left in the cgroup. runc signals those and succeeds.
        return signal_cgroup(&state, signal);
    }
    if state.status(&dir.path) == Status::Stopped {
        return Err(RuntimeError::NotRunning.into());
    }
    // Without a PID namespace of its own the init is not a namespace's
    // pid 1, whose death takes every other process with it: SIGKILL goes
    // to the whole cgroup, or the rest would outlive the container (runc
    // does the same since 1.2).
    let own_pid_ns = NamespacePlan::from_spec(&state.config).creates(LinuxNamespaceType::Pid);
    if signal == libc::SIGKILL && !own_pid_ns {
        return signal_cgroup(&state, signal);
    }
    match send(state.pid, signal) {
        Ok(()) => {}
        Err(nix::errno::Errno::ESRCH) => return Err(RuntimeError::NoSuchProcess.into()),
        Err(e) => return Err(e.into()),
    }
    thaw_to_let_die(&state, signal);
    Ok(())
}

/// `signal` to every process of the container's cgroup; none left is not
/// an error.
fn signal_cgroup(state: &ContainerState, signal: i32) -> Result<()> {
    if state.no_cgroup {
        // Rootless without a cgroup: the processes of its pid namespace
        // (or the init alone, all runc can reach then too).
        for pid in state.pids()? {
            let _ = send(pid, signal);
        }
        return Ok(());
    }
    if signal == libc::SIGKILL {
        cgroups::kill_every_process(&state.cgroup_path)?;
    } else {
        for pid in cgroups::pids(&state.cgroup_path)? {
            let _ = send(pid, signal);
        }
    }
    thaw_to_let_die(state, signal);
    Ok(())
}

/// A task frozen by the v1 freezer only dies once thawed: after SIGKILL a
/// paused container is thawed, as runc does (other signals stay pending
/// until `resume`).
fn thaw_to_let_die(state: &ContainerState, signal: i32) {
    if signal == libc::SIGKILL && !state.no_cgroup && cgroups::is_frozen(&state.cgroup_path) {
        if let Err(e) = cgroups::freeze(&state.cgroup_path, false) {
            crate::log::warn(&format!("thaw after SIGKILL: {e:#}"));
        }
    }
}

/// kill(2) with a raw number: nix's `Signal` has no real-time signals.
fn send(pid: i32, signal: i32) -> nix::Result<()> {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(Pid::from_raw(pid).as_raw(), signal) };
    nix::errno::Errno::result(rc).map(drop)
}

/// Like [`parse_signal`], plus 0 and real-time signals by number (SIGRTMIN..=
/// SIGRTMAX): podman sends systemd containers SIGRTMIN+3 as "37", and runc
/// accepts any number in range.
pub fn parse_signal_number(text: &str) -> Result<i32> {
    if let Ok(num) = text.parse::<i32>() {
        // 0 only probes that the process exists (runc accepts it too).
        if num == 0 || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&num) {
            return Ok(num);
        }
    }
    parse_signal(text).map(|s| s as i32)
}

/// "KILL", "SIGKILL", "sigkill" or "9".
pub fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(num) = text.parse::<i32>() {
        return match Signal::try_from(num) {
            Ok(sig) => Ok(sig),
            Err(_) => bail!("unknown signal {text:?}"),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match name.parse::<Signal>() {
        Ok(sig) => Ok(sig),
        Err(_) => bail!("unknown signal {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("999").is_err());
        assert_eq!(parse_signal_number("37").unwrap(), 37);
        assert_eq!(parse_signal_number("KILL").unwrap(), 9);
        assert!(parse_signal_number("65").is_err());
        assert_eq!(parse_signal_number("0").unwrap(), 0);
        assert!(parse_signal_number("-1").is_err());
    }
}
