//! `ozz delete`: remove a stopped container (or kill it first with --force).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cgroups;
use crate::cli::DeleteArgs;
use crate::errors::RuntimeError;
use crate::hooks;
use crate::state::{ContainerDir, ContainerState, Recovery, Status};

pub fn run(root: &Path, args: &DeleteArgs) -> Result<()> {
    let dir = match ContainerDir::open(root, &args.id) {
        Ok(dir) => dir,
        // Like runc, `delete --force` of a container that does not exist
        // succeeds: podman calls it to clean up after a failed create and
        // would otherwise print "container ... does not exist" over the
        // real error. A directory without state.json (a create killed
        // early) is cleaned up from what it holds.
        Err(err)
            if args.force
                && matches!(
                    err.downcast_ref::<RuntimeError>(),
                    Some(RuntimeError::NotExist(_))
                ) =>
        {
            return match ContainerDir::open_any(root, &args.id) {
                Ok(dir) => remove_from_recovery(dir),
                Err(_) => Ok(()),
            };
        }
        Err(err) => return Err(err),
    };
    let state = match dir.load() {
        Ok(state) => state,
        // A corrupt state.json: clean up from what can be recovered.
        Err(err) if args.force => {
            crate::log::warn(&format!("{err:#}; removing what can be found"));
            return remove_from_recovery(dir);
        }
        Err(err) => return Err(err),
    };
    crate::trace::mark("delete: state loaded");
    match state.status(&dir.path) {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&state)?,
        _ if args.force => kill_and_wait(&state)?,
        status => bail!(
            "cannot delete container {} that is not stopped: {}",
            state.id,
            status.as_str()
        ),
    }
    destroy(dir, &state)
}

/// `delete --force` without a usable state.json: the init (if the recovered
/// pid is still the process we started), the cgroup and the directory.
fn remove_from_recovery(dir: ContainerDir) -> Result<()> {
    let rec = Recovery::find(&dir.path);
    if rec.init_alive() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(rec.pid),
            nix::sys::signal::SIGKILL,
        );
    }
    if let Some(path) = &rec.cgroup_path {
        cgroups::remove(path)?;
    }
    for _ in 0..1000 {
        if !rec.init_alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    dir.destroy()
}

/// SIGKILL the init and every process in the cgroup, and wait for the init
/// to be gone.
fn kill_and_wait(state: &ContainerState) -> Result<()> {
    if state.pid <= 0 {
        return Ok(());
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(state.pid),
        nix::sys::signal::SIGKILL,
    );
    if state.no_cgroup {
        for pid in state.pids().unwrap_or_default() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    } else {
        let _ = cgroups::kill_every_process(&state.cgroup_path);
    }
    // A v1-frozen task only dies once thawed; thaw after the signal is
    // queued so nothing runs user code in between.
    if !state.no_cgroup && cgroups::is_frozen(&state.cgroup_path) {
        let _ = cgroups::freeze(&state.cgroup_path, false);
    }
    for _ in 0..1000 {
        if !state.init_alive() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("container init {} did not die after SIGKILL", state.pid)
}

/// The end of a container: poststop hooks, cgroup, state directory.
pub fn destroy(dir: ContainerDir, state: &ContainerState) -> Result<()> {
    if state.init_alive() {
        kill_and_wait(state)?;
    }
    if !state.no_cgroup {
        cgroups::remove(&state.cgroup_path)?;
        crate::trace::mark("delete: cgroup removed");
    }
    let poststop = state
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().clone())
        .filter(|hooks| !hooks.is_empty());
    if let Some(poststop) = poststop {
        let stopped = state.oci_json(Status::Stopped).to_string();
        hooks::run_all_warn("poststop", Some(&poststop), &stopped);
    }
    crate::trace::mark("delete: poststop hooks");
    dir.destroy()
}
