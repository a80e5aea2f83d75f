//! What changes when ozz runs without root (issue 12), as runc does it:
//! whether cgroups are "rootless" (`--rootless auto|true|false`), the
//! user namespace's maps written by an unprivileged caller (directly for
//! its own id, else through `newuidmap`/`newgidmap` and /etc/subuid), and
//! the processes of a container that runs without a cgroup.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxResources, Spec};

/// `--rootless`: runc's parseBoolOrAuto. None is "auto".
pub fn parse_flag(value: Option<&str>) -> Result<Option<bool>> {
    Ok(match value {
        None | Some("" | "auto") => None,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Some(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Some(false),
        Some(other) => bail!("invalid --rootless value {other:?}: expected true, false or auto"),
    })
}

/// Whether cgroups are handled the rootless way: a cgroup that cannot be
/// made or joined for want of permission is done without (when the config
/// names no cgroupsPath and asks no limits). As runc's "auto": when not
/// root, or root of a user namespace (that root's rights over the cgroup
/// tree are unknown); `--systemd-cgroup` in a user namespace is taken as
/// real root here, since ozz does not ask systemd who owns it.
pub fn cgroups_rootless(flag: Option<&str>, systemd_cgroup: bool) -> Result<bool> {
    if let Some(forced) = parse_flag(flag)? {
        return Ok(forced);
    }
    if !nix::unistd::geteuid().is_root() {
        return Ok(true);
    }
    Ok(in_user_namespace() && !systemd_cgroup)
}

/// Whether ozz runs in a user namespace other than the initial one (whose
/// uid_map is the whole range mapped onto itself). Read once: create asks
/// before it forks the init and the init asks again, which then need not
/// read the file (the init's own new user namespace is its config's, and
/// is asked of the config).
pub fn in_user_namespace() -> bool {
    static IN_USER_NS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USER_NS.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    })
}

/// Whether these resources need a cgroup controller (anything but the
/// device rules, which a rootless container never gets: runc ignores them
/// there too, device nodes being bind mounts in a user namespace).
pub fn needs_controllers(resources: &LinuxResources) -> bool {
    let unified = resources.unified().as_ref().is_some_and(|u| !u.is_empty());
    let hugepages = resources
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty());
    let memory = resources.memory().as_ref().is_some_and(|m| {
        m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
    });
    let cpu = resources.cpu().as_ref().is_some_and(|c| {
        c.shares().is_some()
            || c.quota().is_some()
            || c.burst().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.cpus().as_ref().is_some_and(|s| !s.is_empty())
            || c.mems().as_ref().is_some_and(|s| !s.is_empty())
            || c.idle().is_some()
    });
    let pids = resources.pids().as_ref().is_some_and(|p| p.limit() > 0);
    let block_io = resources.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
            || b.throttle_read_bps_device()
                .as_ref()
                .is_some_and(|d| !d.is_empty())
            || b.throttle_write_bps_device()
                .as_ref()
                .is_some_and(|d| !d.is_empty())
            || b.throttle_read_iops_device()
                .as_ref()
                .is_some_and(|d| !d.is_empty())
            || b.throttle_write_iops_device()
                .as_ref()
                .is_some_and(|d| !d.is_empty())
    });
    let network = resources.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    });
    let rdma = resources.rdma().as_ref().is_some_and(|r| !r.is_empty());
    unified || hugepages || memory || cpu || pids || block_io || network || rdma
}

/// Whether an error is the kernel refusing us a cgroup (runc's
/// isIgnorableError: EPERM, EACCES, EROFS).
pub fn is_permission_error(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .or_else(|| cause.downcast_ref::<nix::errno::Errno>().map(|e| *e as i32))
            .is_some_and(|code| matches!(code, libc::EPERM | libc::EACCES | libc::EROFS))
    })
}

/// Writes the uid and gid maps of the user namespace of `pid`, as an
/// unprivileged caller can: its own id alone is written directly (for the
/// gids after "deny" in setgroups, which the kernel requires), anything
/// more goes through the setuid helpers `newuidmap`/`newgidmap`, which
/// check it against /etc/subuid and /etc/subgid. Root writes everything
/// directly.
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    let privileged = nix::unistd::geteuid().is_root() && !in_user_namespace();
    if !uids.is_empty() {
        write_map(pid, "uid", &uids, privileged)?;
    }
    if !gids.is_empty() {
        let egid = nix::unistd::getegid().as_raw();
        if !privileged && is_own_id_only(&gids, egid) {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny").context("write setgroups")?;
        }
        write_map(pid, "gid", &gids, privileged)?;
    }
    Ok(())
}

/// One mapping of size 1 whose host id is `own`.
fn is_own_id_only(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

fn write_map(pid: i32, kind: &str, maps: &[LinuxIdMapping], privileged: bool) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{pid}/{kind}_map");
    match std::fs::write(&path, &text) {
        Ok(()) => Ok(()),
        Err(e) if !privileged && e.raw_os_error() == Some(libc::EPERM) => {
            crate::log::debug(&format!(
                "write {kind}_map: {e}; trying new{kind}map (/etc/sub{kind})"
            ));
            map_with_tool(pid, kind, maps)
        }
        Err(e) => Err(e).with_context(|| format!("write {kind}_map")),
    }
}

/// `newuidmap PID ID HOSTID SIZE...` (or newgidmap).
fn map_with_tool(pid: i32, kind: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let tool = format!("new{kind}map");
    let mut command = std::process::Command::new(&tool);
    command.arg(pid.to_string());
    for m in maps {
        command.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let output = match command.stdin(std::process::Stdio::null()).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the {kind} mappings need {tool} (Debian package uidmap) and a range in /etc/sub{kind}, and {tool} is not installed"
        ),
        Err(e) => return Err(e).with_context(|| format!("run {tool}")),
    };
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why.trim().replace('\n', "; ");
        bail!(
            "{tool} refused the {kind} mappings ({}): {why}",
            output.status
        );
    }
    Ok(())
}

/// The processes of a container that runs without a cgroup: those in its
/// init's pid namespace when it has one of its own, else the init alone
/// (others cannot be told from the host's). Empty once the init is gone.
pub fn pids_without_cgroup(init: i32, own_pid_ns: bool) -> Vec<i32> {
    let ns_of = |pid: &str| std::fs::read_link(Path::new("/proc").join(pid).join("ns/pid")).ok();
    let Some(init_ns) = ns_of(&init.to_string()) else {
        return Vec::new();
    };
    if !own_pid_ns {
        return vec![init];
    }
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let pid = name.to_str()?.parse::<i32>().ok()?;
            (ns_of(name.to_str()?).as_ref() == Some(&init_ns)).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_as_runc_reads_them() {
        assert_eq!(parse_flag(None).unwrap(), None);
        assert_eq!(parse_flag(Some("auto")).unwrap(), None);
        assert_eq!(parse_flag(Some("true")).unwrap(), Some(true));
        assert_eq!(parse_flag(Some("1")).unwrap(), Some(true));
        assert_eq!(parse_flag(Some("False")).unwrap(), Some(false));
        assert!(parse_flag(Some("yes")).is_err());
    }

    #[test]
    fn limits_need_controllers_devices_do_not() {
        let none: LinuxResources =
            serde_json::from_str(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).unwrap();
        assert!(!needs_controllers(&none));
        let memory: LinuxResources =
            serde_json::from_str(r#"{"memory": {"limit": 1048576}}"#).unwrap();
        assert!(needs_controllers(&memory));
        let pids: LinuxResources = serde_json::from_str(r#"{"pids": {"limit": 10}}"#).unwrap();
        assert!(needs_controllers(&pids));
    }

    #[test]
    fn own_id_alone_is_written_directly() {
        let one: Vec<LinuxIdMapping> =
            serde_json::from_str(r#"[{"containerID": 0, "hostID": 1000, "size": 1}]"#).unwrap();
        assert!(is_own_id_only(&one, 1000));
        assert!(!is_own_id_only(&one, 1001));
        let range: Vec<LinuxIdMapping> =
            serde_json::from_str(r#"[{"containerID": 0, "hostID": 1000, "size": 1},{"containerID": 1, "hostID": 100000, "size": 65536}]"#)
                .unwrap();
        assert!(!is_own_id_only(&range, 1000));
    }
}
