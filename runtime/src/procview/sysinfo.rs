//! sysinfo(2) for containers with the view: busybox `free` and `uptime`
//! take their totals from it, not from /proc. The view's server is the
//! seccomp agent (linux.seccomp.listenerPath) of a filter create adds for
//! sysinfo only; it answers each call with the container's numbers,
//! written into the caller's buffer, and lets every other call through.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// The listenerMetadata that marks the profile create routed.
const METADATA: &str = "ozz-procview";

/// The agent's socket beside the mountpoint: DIR.sock.
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    let mut name = mountpoint.as_os_str().to_os_string();
    name.push(".sock");
    PathBuf::from(name)
}

/// The bundle's seccomp profile with sysinfo sent to the view's agent,
/// when the profile lets sysinfo through: with no profile, one allowing
/// everything else is made. A profile that refuses sysinfo, or that has an
/// agent of its own (the kernel takes one listener per process), is left
/// as it is, and sysinfo then shows the host's numbers.
pub fn route_to_agent(spec: Spec, socket: &Path) -> Result<Spec> {
    let mut config = serde_json::to_value(&spec).context("encode config")?;
    let rule = json!({"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"});
    let agent = json!(socket);
    let linux = config
        .as_object_mut()
        .context("config is not an object")?
        .entry("linux")
        .or_insert_with(|| json!({}));
    let Some(linux) = linux.as_object_mut() else {
        return Ok(spec);
    };
    match linux.get_mut("seccomp") {
        None | Some(Value::Null) => {
            linux.insert(
                "seccomp".into(),
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule],
                    "listenerPath": agent, "listenerMetadata": METADATA}),
            );
        }
        Some(profile) => {
            let set = |key: &str| profile.get(key).is_some_and(|p| !p.is_null());
            if set("listenerPath") || set("listenerMetadata") {
                return Ok(spec);
            }
            let default_allows = profile["defaultAction"] == json!("SCMP_ACT_ALLOW");
            let syscalls = profile
                .as_object_mut()
                .context("linux.seccomp is not an object")?
                .entry("syscalls")
                .or_insert_with(|| json!([]));
            let Some(list) = syscalls.as_array_mut() else {
                return Ok(spec);
            };
            let names_it = |e: &Value| {
                e["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n == "sysinfo"))
            };
            let naming: Vec<usize> = (0..list.len()).filter(|i| names_it(&list[*i])).collect();
            let plain_allow = |e: &Value| {
                e["action"] == json!("SCMP_ACT_ALLOW")
                    && e["args"].as_array().is_none_or(|a| a.is_empty())
            };
            match naming.as_slice() {
                [] if default_allows => {}
                [i] if plain_allow(&list[*i]) => {
                    let names = list[*i]["names"].as_array_mut().expect("checked above");
                    names.retain(|n| n != "sysinfo");
                    if names.is_empty() {
                        list.remove(*i);
                    }
                }
                _ => return Ok(spec),
            }
            list.push(rule);
            profile["listenerPath"] = agent;
            profile["listenerMetadata"] = json!(METADATA);
        }
    }
    serde_json::from_value(config).context("config with the sysinfo agent")
}

/// Whether the profile is one create routed to the procview's agent.
pub fn routed(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().as_deref())
        == Some(METADATA)
}

/// The routed profile with sysinfo let through again, as it was before
/// create routed it (a plain allow), and no agent.
pub fn unrouted(spec: Spec) -> Result<Spec> {
    let mut config = serde_json::to_value(&spec).context("encode config")?;
    let profile = &mut config["linux"]["seccomp"];
    if let Some(list) = profile["syscalls"].as_array_mut() {
        for entry in list.iter_mut() {
            if entry["action"] == json!("SCMP_ACT_NOTIFY") {
                entry["action"] = json!("SCMP_ACT_ALLOW");
            }
        }
    }
    if let Some(profile) = profile.as_object_mut() {
        profile.remove("listenerPath");
        profile.remove("listenerMetadata");
    }
    serde_json::from_value(config).context("config without the sysinfo agent")
}

/// Listens on `socket` for the notify fds create's processes send, and
/// answers their sysinfo calls, each fd in a thread of its own until no
/// process uses its filter.
pub fn listen(
    socket: &Path,
    root: PathBuf,
    loads: Arc<Mutex<HashMap<PathBuf, [f64; 3]>>>,
) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("listen on {}", socket.display()))?;
    std::thread::Builder::new()
        .name("sysinfo-agent".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let Some(fd) = receive_fd(&stream) else {
                    continue;
                };
                let (root, loads) = (root.clone(), loads.clone());
                let _ = std::thread::Builder::new()
                    .name("sysinfo".into())
                    .spawn(move || answer(fd, &root, &loads));
            }
        })
        .context("start the sysinfo agent")?;
    Ok(())
}

/// The notify fd of one message (the state JSON that comes with it is
/// not needed: the caller's pid tells its container).
fn receive_fd(stream: &UnixStream) -> Option<OwnedFd> {
    let mut payload = vec![0u8; 1 << 16];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    for cmsg in msg.cmsgs().ok()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg {
            let fd = *fds.first()?;
            // SAFETY: the kernel just gave us this descriptor; nothing else
            // owns it.
            return Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    None
}

fn answer(fd: OwnedFd, root: &Path, loads: &Mutex<HashMap<PathBuf, [f64; 3]>>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::POLLHUP);
        if !revents.contains(PollFlags::POLLIN) {
            // POLLHUP: no process uses the filter any more.
            return;
        }
        // SAFETY: zero is a valid seccomp_notif (integers only).
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV fills the struct it is given, of the size its
        // request number encodes.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
            // ENOENT: the caller died before we read it.
            continue;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        if req.data.nr == libc::SYS_sysinfo as i32 {
            if let Some(error) = fill(&fd, &req, root, loads) {
                resp.flags = 0;
                resp.error = error;
            }
        }
        // SAFETY: SEND reads the response it is given.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

/// Writes the container's sysinfo into the caller's buffer: Some(0), or
/// Some(-EFAULT) for a bad buffer; None lets the kernel answer (a caller
/// in no container of ours).
fn fill(
    fd: &OwnedFd,
    req: &libc::seccomp_notif,
    root: &Path,
    loads: &Mutex<HashMap<PathBuf, [f64; 3]>>,
) -> Option<i32> {
    let paths = super::parse_cgroup_paths(
        &std::fs::read_to_string(format!("/proc/{}/cgroup", req.pid)).ok()?,
    );
    let state = crate::state::owner_of(root, &paths)?;
    let load = loads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&state.cgroup_path)
        .copied()
        .unwrap_or_default();
    let info = super::files::sysinfo(&state, &load);
    // The pid is still the caller's (not reused) only while the request
    // is alive: checked after reading its files, before writing.
    // SAFETY: ID_VALID reads the u64 it is given.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) } < 0 {
        return None;
    }
    let size = std::mem::size_of::<libc::sysinfo>();
    let local = [std::io::IoSlice::new(
        // SAFETY: a sysinfo is plain integers; its bytes are readable.
        unsafe { std::slice::from_raw_parts((&info as *const libc::sysinfo).cast::<u8>(), size) },
    )];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: req.data.args[0] as usize,
        len: size,
    }];
    let pid = nix::unistd::Pid::from_raw(req.pid as i32);
    match nix::sys::uio::process_vm_writev(pid, &local, &remote) {
        Ok(n) if n == size => Some(0),
        _ => Some(-libc::EFAULT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seccomp: Value) -> Spec {
        let mut config = json!({"ociVersion": "1.0.2", "linux": {}});
        if !seccomp.is_null() {
            config["linux"]["seccomp"] = seccomp;
        }
        serde_json::from_value(config).unwrap()
    }

    fn routed_profile(seccomp: Value) -> Value {
        let out = route_to_agent(spec(seccomp), Path::new("/run/v.sock")).unwrap();
        serde_json::to_value(&out).unwrap()["linux"]["seccomp"].clone()
    }

    #[test]
    fn sysinfo_goes_to_the_agent_only_where_the_profile_allows_it() {
        let notify = json!({"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"});
        let p = routed_profile(Value::Null);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(p["syscalls"], json!([notify]));
        assert_eq!(p["listenerPath"], "/run/v.sock");
        // An allow list naming sysinfo: moved to the notify rule.
        let p = routed_profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "sysinfo"], "action": "SCMP_ACT_ALLOW"}]}));
        assert_eq!(p["syscalls"][0]["names"], json!(["read"]));
        assert_eq!(p["syscalls"][1], notify);
        // Refused by the profile, or the bundle's own agent: left alone.
        for kept in [
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO"}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a.sock",
                "syscalls": [{"names": ["open"], "action": "SCMP_ACT_NOTIFY"}]}),
        ] {
            assert_eq!(
                routed_profile(kept.clone())["listenerPath"],
                kept["listenerPath"]
            );
            assert!(!routed(
                &route_to_agent(spec(kept), Path::new("/x")).unwrap()
            ));
        }
    }

    #[test]
    fn unrouted_lets_sysinfo_through_without_an_agent() {
        let out = route_to_agent(spec(Value::Null), Path::new("/run/v.sock")).unwrap();
        assert!(routed(&out));
        let back = serde_json::to_value(unrouted(out).unwrap()).unwrap();
        let p = &back["linux"]["seccomp"];
        assert_eq!(p["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert!(p.get("listenerPath").is_none_or(Value::is_null));
    }
}
