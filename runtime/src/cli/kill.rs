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
    let signal = parse_signal(args.signal.as_deref().unwrap_or("SIGTERM"))?;
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    let status = state.status(&dir.path);
    if status == Status::Stopped {
        return Err(RuntimeError::NotRunning.into());
    }
    if args.all {
        let pids = cgroups::pids(&state.cgroup_path)?;
        for pid in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
        return Ok(());
    }
    match nix::sys::signal::kill(Pid::from_raw(state.pid), signal) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ESRCH) => Err(RuntimeError::NoSuchProcess.into()),
        Err(e) => Err(e.into()),
    }
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
    }
}
