//! CVE-2019-5736 without re-executing ozz: the container's program is
//! executed by a tiny sealed stub (`exec_stub.c`) instead of by the init.
//!
//! # Why
//!
//! The sealed re-exec (`exe_seal`) protects the runtime's binary by
//! running the whole of `create` from a view of it that cannot be written:
//! a second exec of a 3.5 MB program, the largest single cost of `run`
//! (0.7–1 ms on the bench's host). Only two things need that protection,
//! though:
//!
//! - **The program's own exec.** The kernel resolves the container's
//!   program, its `#!` interpreter and its ELF interpreter while the init
//!   is still ozz, so a program that is `/proc/self/exe` (or names it as
//!   its interpreter) runs ozz's binary inside the container, where a
//!   process holding `/proc/PID/exe` can write it once ozz has gone. Here
//!   the init executes the stub from a sealed memfd first, and the stub
//!   executes the program: `/proc/self/exe` is then the sealed stub.
//! - **A container process opening `/proc/PID/exe` of the init while it
//!   sets up.** The init is not dumpable from its first steps until exec
//!   (`spawn::init`), so the kernel lets only a process with
//!   `CAP_SYS_PTRACE` over the host's user namespace open it. Such a
//!   process can exist only where the configuration gives the container
//!   that capability without a user namespace of its own, or lets other
//!   processes share the init's PID namespace: those keep the re-exec.
//!
//! The `create`/`run` process itself stays on the host, outside the
//! container's PID namespace, where no container process can name it.
//!
//! # When the stub is not used
//!
//! [`why_not`] lists them; `create` then re-executes as before:
//! - the PID namespace is not a new one (joined by path, or the host's);
//! - `CAP_SYS_PTRACE` in any of the process's capability sets, unless the
//!   container has a user namespace (a capability there does not reach
//!   the init, whose memory belongs to the host's user namespace);
//! - a process that is not root, with permitted capabilities beyond its
//!   ambient ones: the stub's exec would reduce permitted to ambient, and
//!   under no_new_privs the program's exec cannot then raise it back to
//!   what its file capabilities would have given (for root, and where
//!   permitted equals ambient, the second exec computes the same sets);
//! - a seccomp filter that does not allow the two calls the stub adds
//!   (execveat of the stub, fcntl of the fifo), evaluated on the compiled
//!   BPF as the kernel would;
//! - no stub for this architecture, or no executable sealed memfd.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxNamespaceType, Process, Spec};

use crate::namespaces::NamespacePlan;

/// The stub, built by build.rs (empty where it could not be built).
const STUB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exec-stub"));

/// The stub's argv[0]; it refuses to run under any other (exec_stub.c).
pub const MAGIC: &str = "ozz-exec-stub";

/// Why the stub cannot stand in for the re-exec for this container, or
/// None when it can.
pub fn why_not(spec: &Spec) -> Option<&'static str> {
    if STUB.is_empty() {
        return Some("no exec stub for this architecture");
    }
    let Some(process) = spec.process() else {
        return Some("no process");
    };
    let plan = NamespacePlan::from_spec(spec);
    if !plan.creates(LinuxNamespaceType::Pid) {
        return Some("the PID namespace is shared");
    }
    if ptrace_passes_the_dumpable_check(spec, process) {
        return Some("CAP_SYS_PTRACE without a user namespace");
    }
    if process.user().uid() != 0 && !permitted_is_ambient(process) {
        return Some("a non-root user with permitted capabilities beyond its ambient ones");
    }
    if let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let Ok(filter) = crate::security::seccomp::compile(profile) else {
            // The init reports the profile's error; the old way is kept.
            return Some("the seccomp profile does not compile");
        };
        if !filter_allows_stub(&filter) {
            return Some("the seccomp filter does not allow the stub's calls");
        }
    }
    None
}

/// `exec` into a container created the exec stub's way, not started yet:
/// its init runs from the host's binary, out of reach only by its dumpable
/// flag, which a process holding CAP_SYS_PTRACE over the host's user
/// namespace passes; create judged the config's process, not the ones
/// exec may add. Such an exec waits for start (pid 1 is then the
/// container's program).
pub fn check_exec_beside_the_init(spec: &Spec, process: &Process) -> Result<()> {
    if !ptrace_passes_the_dumpable_check(spec, process) {
        return Ok(());
    }
    bail!(
        "cannot exec a process with CAP_SYS_PTRACE into a created container whose init still \
         runs ozz's own binary (CVE-2019-5736): start the container first"
    )
}

/// Whether `process`, in the container `spec` describes, could hold
/// CAP_SYS_PTRACE over the host's user namespace, which the init's memory
/// belongs to: in some capability set, with no user namespace of its own.
fn ptrace_passes_the_dumpable_check(spec: &Spec, process: &Process) -> bool {
    !NamespacePlan::from_spec(spec).has(LinuxNamespaceType::User)
        && has_capability(process, Capability::SysPtrace)
}

fn has_capability(process: &Process, cap: Capability) -> bool {
    let Some(caps) = process.capabilities() else {
        return false;
    };
    [
        caps.bounding(),
        caps.effective(),
        caps.inheritable(),
        caps.permitted(),
        caps.ambient(),
    ]
    .iter()
    .any(|set| set.as_ref().is_some_and(|s| s.contains(&cap)))
}

fn permitted_is_ambient(process: &Process) -> bool {
    let Some(caps) = process.capabilities() else {
        return true;
    };
    let empty = Default::default();
    caps.permitted().as_ref().unwrap_or(&empty) == caps.ambient().as_ref().unwrap_or(&empty)
}

/// The calls the stub adds under the filter, with descriptor numbers and
/// pointers varied: a rule that looks at them must pass every variant.
fn filter_allows_stub(filter: &crate::security::seccomp::CompiledSeccomp) -> bool {
    const FDS: [u64; 3] = [3, 64, 1023];
    const POINTERS: [u64; 2] = [0x1000, 0x7ffc_0000_0000];
    FDS.iter().all(|&fd| {
        let fcntl = [fd, libc::F_SETFD as u64, libc::FD_CLOEXEC as u64, 0, 0, 0];
        filter.allows(libc::SYS_fcntl, fcntl)
            && POINTERS.iter().all(|&p| {
                let execveat = [fd, p, p, p, libc::AT_EMPTY_PATH as u64, 0];
                filter.allows(libc::SYS_execveat, execveat)
            })
    })
}

/// A close-on-exec, sealed, executable memfd holding the stub.
pub fn sealed_copy() -> Result<OwnedFd> {
    crate::security::exe_seal::sealed_memfd(c"ozz-exec-stub", |file| {
        file.write_all(STUB).context("write the exec stub")
    })
}

/// What `ozz start` reads from exec.fifo when the stub's execve failed:
/// "<prefix>\0<errno>" worded as the init words its own failures.
pub fn failure_text(why: &[u8]) -> Option<String> {
    let nul = why.iter().position(|&b| b == 0)?;
    let errno: i32 = std::str::from_utf8(&why[nul + 1..])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&why[..nul]),
        nix::errno::Errno::from_raw(errno)
    ))
}

/// The stub's argv: the magic word, the fifo, the failure's prefix (as
/// `ExecArgs::error` words it), the program, then its own argv.
pub fn argv(fifo: RawFd, program: &CString, args: &[CString]) -> Vec<CString> {
    let prefix = format!("exec {program:?}: ");
    let mut argv = Vec::with_capacity(args.len() + 4);
    argv.push(CString::new(MAGIC).expect("no NUL in the magic word"));
    argv.push(CString::new(fifo.to_string()).expect("digits"));
    // A program path holds no NUL (it is a CString), nor does its Debug form.
    argv.push(CString::new(prefix).unwrap_or_default());
    argv.push(program.clone());
    argv.extend(args.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        });
        merge(&mut base, json);
        serde_json::from_value(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    #[test]
    fn the_stub_is_built_and_refuses_a_stray_run() {
        assert!(STUB.starts_with(b"\x7fELF"), "no exec stub was built");
        let fd = sealed_copy().unwrap();
        let out = std::process::Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&out.stderr).contains("only ozz's init"));
        // Nothing reaches its pages: no write, no resize.
        let mut through_proc = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap();
        assert!(through_proc.write_all(b"pwned").is_err());
        assert!(through_proc.set_len(0).is_err());
    }

    #[test]
    fn when_the_stub_stands_in_for_the_re_exec() {
        assert_eq!(why_not(&spec(serde_json::json!({}))), None);
        let ptrace =
            serde_json::json!({"process": {"capabilities": {"bounding": ["CAP_SYS_PTRACE"]}}});
        assert!(why_not(&spec(ptrace.clone())).is_some());
        let mut with_userns = ptrace;
        with_userns["linux"] =
            serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "user"}]});
        assert_eq!(why_not(&spec(with_userns)), None);
        let shared_pid = serde_json::json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}});
        assert!(why_not(&spec(shared_pid)).is_some());
        let host_pid = serde_json::json!({"linux": {"namespaces": [{"type": "mount"}]}});
        assert!(why_not(&spec(host_pid)).is_some());
        let non_root = |permitted: &[&str], ambient: &[&str]| {
            spec(
                serde_json::json!({"process": {"user": {"uid": 1000, "gid": 1000},
                "capabilities": {"permitted": permitted, "inheritable": ambient, "ambient": ambient}}}),
            )
        };
        assert!(why_not(&non_root(&["CAP_NET_BIND_SERVICE"], &[])).is_some());
        let same = ["CAP_NET_BIND_SERVICE"];
        assert_eq!(why_not(&non_root(&same, &same)), None);
        let deny = |names: &[&str]| {
            spec(
                serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}}}),
            )
        };
        assert!(why_not(&deny(&["execveat"])).is_some());
        assert!(why_not(&deny(&["fcntl"])).is_some());
        assert_eq!(why_not(&deny(&["mkdir"])), None);
    }

    #[test]
    fn a_failure_is_worded_from_its_errno() {
        assert_eq!(
            failure_text(b"exec \"/x\": \x0013").as_deref(),
            Some("exec \"/x\": EACCES: Permission denied")
        );
        assert_eq!(failure_text(b"no errno"), None);
    }
}
