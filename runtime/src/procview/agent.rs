//! The view's seccomp agent: what a container learns from system calls
//! rather than /proc. busybox `free` and `uptime` take their totals from
//! sysinfo(2), and `nproc` (busybox's, coreutils', Go's runtime) counts the
//! CPUs of sched_getaffinity(2). The view's server is the agent
//! (linux.seccomp.listenerPath) of a filter create adds for those two
//! calls; it answers each with the container's numbers, written into the
//! caller's buffer, and lets every other call through.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;

use crate::state::ContainerState;
use serde_json::{json, Value};

/// The listenerMetadata that marks the profile create routed.
const METADATA: &str = "ozz-procview";

/// The calls the agent answers for the container.
const ROUTED: [&str; 2] = ["sysinfo", "sched_getaffinity"];

/// The agent's socket beside the mountpoint: DIR.sock.
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    let mut name = mountpoint.as_os_str().to_os_string();
    name.push(".sock");
    PathBuf::from(name)
}

/// The bundle's seccomp profile with the ROUTED calls it lets through
/// sent to the view's agent: with no profile, one allowing everything else
/// is made. A call the profile refuses (or allows only for some arguments)
/// is left as it is, and so is a profile with an agent of its own (the
/// kernel takes one listener per process): those calls then show the
/// host's numbers.
pub fn route_to_agent(spec: Spec, socket: &Path) -> Result<Spec> {
    let mut config = serde_json::to_value(&spec).context("encode config")?;
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
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ROUTED, "action": "SCMP_ACT_NOTIFY"}],
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
            let plain_allow = |e: &Value| {
                e["action"] == json!("SCMP_ACT_ALLOW")
                    && e["args"].as_array().is_none_or(|a| a.is_empty())
            };
            let mut routed = Vec::new();
            for call in ROUTED {
                let names_it = |e: &Value| {
                    e["names"]
                        .as_array()
                        .is_some_and(|n| n.iter().any(|n| n == call))
                };
                let naming: Vec<usize> = (0..list.len()).filter(|i| names_it(&list[*i])).collect();
                match naming.as_slice() {
                    [] if default_allows => {}
                    [i] if plain_allow(&list[*i]) => {
                        let names = list[*i]["names"].as_array_mut().expect("checked above");
                        names.retain(|n| n != call);
                        if names.is_empty() {
                            list.remove(*i);
                        }
                    }
                    _ => continue,
                }
                routed.push(call);
            }
            if routed.is_empty() {
                return Ok(spec);
            }
            list.push(json!({"names": routed, "action": "SCMP_ACT_NOTIFY"}));
            profile["listenerPath"] = agent;
            profile["listenerMetadata"] = json!(METADATA);
        }
    }
    serde_json::from_value(config).context("config with the procview's agent")
}

/// Whether the profile is one create routed to the procview's agent.
pub fn routed(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().as_deref())
        == Some(METADATA)
}

/// The routed profile with the routed calls let through again, as they
/// were before create routed them (a plain allow), and no agent.
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
    serde_json::from_value(config).context("config without the procview's agent")
}

/// Listens on `socket` for the notify fds create's processes send, and
/// answers their routed calls, each fd in a thread of its own until no
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
        .name("seccomp-agent".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let Some(fd) = receive_fd(&stream) else {
                    continue;
                };
                let (root, loads) = (root.clone(), loads.clone());
                let _ = std::thread::Builder::new()
                    .name("seccomp-notify".into())
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
        let reply = match i64::from(req.data.nr) {
            libc::SYS_sysinfo => fill_sysinfo(&fd, &req, root, loads),
            libc::SYS_sched_getaffinity => fill_affinity(&fd, &req, root),
            _ => None,
        };
        match reply {
            Some(Ok(value)) => (resp.flags, resp.val) = (0, value),
            Some(Err(errno)) => (resp.flags, resp.error) = (0, -errno),
            None => {}
        }
        // SAFETY: SEND reads the response it is given.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

/// What the agent answers for a call: Some(Ok(return value)),
/// Some(Err(errno)), or None to let the kernel answer (a caller in no
/// container of ours, or a question about another process).
type Reply = Option<Result<i64, i32>>;

/// The container of the calling process, found through its cgroup.
fn caller_container(req: &libc::seccomp_notif, root: &Path) -> Option<ContainerState> {
    let paths = super::parse_cgroup_paths(
        &std::fs::read_to_string(format!("/proc/{}/cgroup", req.pid)).ok()?,
    );
    crate::state::owner_of(root, &paths)
}

/// Copies `bytes` to `address` in the caller, if the request is still
/// alive: its pid is the caller's (not reused) only while it is, so this
/// is checked after reading the caller's files, before writing.
fn write_to_caller(fd: &OwnedFd, req: &libc::seccomp_notif, address: u64, bytes: &[u8]) -> Reply {
    // SAFETY: ID_VALID reads the u64 it is given.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) } < 0 {
        return None;
    }
    let local = [std::io::IoSlice::new(bytes)];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: address as usize,
        len: bytes.len(),
    }];
    let pid = nix::unistd::Pid::from_raw(req.pid as i32);
    match nix::sys::uio::process_vm_writev(pid, &local, &remote) {
        Ok(n) if n == bytes.len() => Some(Ok(0)),
        _ => Some(Err(libc::EFAULT)),
    }
}

/// sysinfo(info): the container's numbers in the caller's buffer.
fn fill_sysinfo(
    fd: &OwnedFd,
    req: &libc::seccomp_notif,
    root: &Path,
    loads: &Mutex<HashMap<PathBuf, [f64; 3]>>,
) -> Reply {
    let state = caller_container(req, root)?;
    let load = loads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&state.cgroup_path)
        .copied()
        .unwrap_or_default();
    let info = super::files::sysinfo(&state, &load);
    // SAFETY: a sysinfo is plain integers; all its bytes are readable.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&info as *const libc::sysinfo).cast::<u8>(),
            std::mem::size_of::<libc::sysinfo>(),
        )
    };
    write_to_caller(fd, req, req.data.args[0], bytes)
}

/// sched_getaffinity(pid, len, mask) of the caller itself (pid 0 or its
/// own thread id): its real mask cut to the container's CPUs, so that
/// nproc counts what cpuinfo lists, and any mask it sets from the answer
/// is one the kernel accepts. The return value is the bytes written, as
/// the kernel's: min(len, the size of a kernel cpumask).
fn fill_affinity(fd: &OwnedFd, req: &libc::seccomp_notif, root: &Path) -> Reply {
    let [pid, len, address, ..] = req.data.args;
    let asked = pid as i32;
    if asked != 0 && super::files::ns_pid(req.pid as i32) != Some(asked as u64) {
        return None;
    }
    // Lengths the kernel refuses: it answers them itself (EINVAL).
    let nr_cpu_ids = super::files::possible_cpus();
    let len = len as u32 as usize;
    let word = std::mem::size_of::<libc::c_ulong>();
    if len * 8 < nr_cpu_ids || !len.is_multiple_of(word) {
        return None;
    }
    let cpus = super::files::cpus(&caller_container(req, root)?)?;
    let real = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(req.pid as i32)).ok()?;
    let size = len.min(nr_cpu_ids.div_ceil(word * 8) * word);
    let mut mask = vec![0u8; size];
    let mut any = false;
    for cpu in cpus.into_iter().filter(|c| c / 8 < size) {
        if real.is_set(cpu).unwrap_or(false) {
            mask[cpu / 8] |= 1 << (cpu % 8);
            any = true;
        }
    }
    if !any {
        // Its own mask shares no CPU with the container's count (it was
        // moved): the truth is the better answer.
        return None;
    }
    write_to_caller(fd, req, address, &mask).map(|r| r.map(|_| size as i64))
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
    fn routed_calls_go_to_the_agent_only_where_the_profile_allows_them() {
        let notify = |names: Value| json!({"names": names, "action": "SCMP_ACT_NOTIFY"});
        let p = routed_profile(Value::Null);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(
            p["syscalls"],
            json!([notify(json!(["sysinfo", "sched_getaffinity"]))])
        );
        assert_eq!(p["listenerPath"], "/run/v.sock");
        // An allow list naming sysinfo: moved to the notify rule; an
        // allow list without sched_getaffinity keeps refusing it.
        let p = routed_profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "sysinfo"], "action": "SCMP_ACT_ALLOW"}]}));
        assert_eq!(p["syscalls"][0]["names"], json!(["read"]));
        assert_eq!(p["syscalls"][1], notify(json!(["sysinfo"])));
        // sysinfo refused by the profile: only sched_getaffinity is routed,
        // and the refusal stays.
        let p = routed_profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO"}]}));
        assert_eq!(p["syscalls"][0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(p["syscalls"][1], notify(json!(["sched_getaffinity"])));
        // Neither allowed, an argument filter, or the bundle's own agent:
        // left alone.
        for kept in [
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["sysinfo", "sched_getaffinity"],
                "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
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
    fn unrouted_lets_the_calls_through_without_an_agent() {
        let out = route_to_agent(spec(Value::Null), Path::new("/run/v.sock")).unwrap();
        assert!(routed(&out));
        let back = serde_json::to_value(unrouted(out).unwrap()).unwrap();
        let p = &back["linux"]["seccomp"];
        assert_eq!(p["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert!(p.get("listenerPath").is_none_or(Value::is_null));
    }
}
