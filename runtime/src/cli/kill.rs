//! `ozz kill`: signal the init, or every process with --all.

use std::path::Path;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups;
use crate::cli::KillArgs;
use crate::errors::RuntimeError;
use crate::state::{ContainerDir, Status};

pub fn run(root: &Path, args: &KillArgs) -> Result<()> {
    let signal = parse_signal_number(args.signal.as_deref().unwrap_or("SIGTERM"))?;
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    let status = state.status(&dir.path);
    if status == Status::Stopped {
        return Err(RuntimeError::NotRunning.into());
    }
    if args.all {
        if signal == libc::SIGKILL {
            return cgroups::kill_every_process(&state.cgroup_path);
        }
        let pids = cgroups::pids(&state.cgroup_path)?;
        for pid in pids {
            let _ = send(pid, signal);
        }
        return Ok(());
    }
    match send(state.pid, signal) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ESRCH) => Err(RuntimeError::NoSuchProcess.into()),
        Err(e) => Err(e.into()),
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
