//! numpty on a running container: the container's devpts instance takes a
//! new `max=` through fspick + fsconfig, from the host, without entering
//! the container's mount namespace.

use std::ffi::CString;
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use oci_spec::runtime::{Mount, Spec};

use crate::mount_api::{fsconfig_reconfigure, fsconfig_set_flag, fsconfig_set_string, fspick};

/// The container's /dev/pts mount of type devpts (the last one wins, as
/// mounts are applied in order), where numpty's `max=` lives.
pub fn mount_mut(mounts: &mut [Mount]) -> Option<&mut Mount> {
    mounts.iter_mut().rev().find(|m| {
        m.destination() == std::path::Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts")
    })
}

/// The `max=` the config gives the container's devpts, if any.
pub fn configured_max(spec: &Spec) -> Option<u64> {
    let mut mounts = spec.mounts().clone()?;
    mount_mut(&mut mounts)?
        .options()
        .as_ref()?
        .iter()
        .find_map(|o| o.strip_prefix("max=")?.parse().ok())
}

/// Reconfigures the devpts mounted at the container's /dev/pts with its
/// configured `options` and the new `max` (None: the kernel's default).
pub fn set_max(init_pid: i32, options: &[String], max: Option<u64>) -> Result<()> {
    let path = CString::new(format!("/proc/{init_pid}/root/dev/pts")).expect("no NUL");
    let ctx = fspick(&path).context("numpty: the container's /dev/pts")?;
    // why: a devpts reconfigure resets every option it is not given (mode,
    // ptmxmode, gid), so the configured ones are given again.
    let data = crate::rootfs::parse_options(options).data;
    for option in data.iter().filter(|o| !o.starts_with("max=")) {
        let c = |s: &str| CString::new(s).context("a NUL in a mount option");
        match option.split_once('=') {
            Some((key, value)) => fsconfig_set_string(ctx.as_fd(), &c(key)?, &c(value)?)?,
            None => fsconfig_set_flag(ctx.as_fd(), &c(option)?)?,
        }
    }
    if let Some(max) = max {
        let value = CString::new(max.to_string()).expect("digits");
        fsconfig_set_string(ctx.as_fd(), c"max", &value)?;
    }
    fsconfig_reconfigure(ctx.as_fd()).context("numpty: reconfigure /dev/pts")
}
