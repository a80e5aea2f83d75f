//! The five capability sets of process.capabilities.

use std::collections::HashSet;

use anyhow::{anyhow, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// Converts OCI names to the kernel's set. Names the kernel does not know,
/// and those this process cannot hold (outside its own bounding set, e.g.
/// CAP_SYS_RESOURCE on a host that withholds it), are left out with a warning.
pub fn to_kernel_set(names: Option<&Capabilities>, held: &CapsHashSet) -> CapsHashSet {
    let mut set = HashSet::new();
    for cap in names.into_iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match name.parse::<Capability>() {
            Ok(c) if held.contains(&c) => {
                set.insert(c);
            }
            Ok(_) => crate::log::warn(&format!(
                "capability {name} is not in the runtime's bounding set; not granted"
            )),
            Err(_) => crate::log::warn(&format!("unknown capability {name}; ignored")),
        }
    }
    set
}

/// Step one, before changing uid: trim the bounding set and keep the
/// permitted set across setuid.
pub fn prepare(spec: &LinuxCapabilities) -> Result<()> {
    let held = caps::read(None, CapSet::Bounding).map_err(|e| anyhow!("read bounding set: {e}"))?;
    let bounding = to_kernel_set(spec.bounding().as_ref(), &held);
    for cap in held.difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| anyhow!("drop {cap} from the bounding set: {e}"))?;
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_KEEPCAPS)");
    }
    Ok(())
}

/// Step two, after changing uid: set effective, permitted, inheritable and
/// ambient exactly as asked.
///
/// `hold_sys_admin`: also keep CAP_SYS_ADMIN in permitted and effective,
/// when it is still held, so that a seccomp filter can be loaded without
/// no_new_privs as the very last step before execve.  It is never added to
/// the inheritable or ambient sets, so execve drops it unless the config
/// granted it (capabilities(7)): the new permitted set is
/// `(P(inh) & F(inh)) | (F(perm) & P(bnd)) | P'(amb)`; for uid 0 the file
/// sets count as full, giving `P(inh) | P(bnd)`, and for any other uid
/// without file capabilities it is the ambient set.  The bounding set was
/// trimmed in [`prepare`], so a file capability cannot bring it back either.
pub fn apply(spec: &LinuxCapabilities, hold_sys_admin: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_KEEPCAPS)");
    }
    let held = caps::read(None, CapSet::Permitted).map_err(|e| anyhow!("read permitted: {e}"))?;
    let mut permitted = to_kernel_set(spec.permitted().as_ref(), &held);
    let mut effective = to_kernel_set(spec.effective().as_ref(), &held);
    let inheritable = to_kernel_set(spec.inheritable().as_ref(), &held);
    let ambient = to_kernel_set(spec.ambient().as_ref(), &held);
    // The kernel only allows ambient caps that are permitted and
    // inheritable; decided before CAP_SYS_ADMIN may join permitted.
    let ambient: CapsHashSet = ambient
        .into_iter()
        .filter(|c| permitted.contains(c) && inheritable.contains(c))
        .collect();
    if hold_sys_admin && held.contains(&Capability::CAP_SYS_ADMIN) {
        permitted.insert(Capability::CAP_SYS_ADMIN);
        effective.insert(Capability::CAP_SYS_ADMIN);
    }
    // Effective must stay within permitted: set it last when shrinking.
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| anyhow!("set inheritable capabilities: {e}"))?;
    caps::set(
        None,
        CapSet::Effective,
        &effective.intersection(&permitted).copied().collect(),
    )
    .map_err(|e| anyhow!("set effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(|e| anyhow!("set permitted capabilities: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| anyhow!("clear ambient capabilities: {e}"))?;
    for cap in ambient {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| anyhow!("raise ambient {cap}: {e}"))?;
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_NO_NEW_PRIVS)");
    }
    Ok(())
}
