//! Process attributes applied by the container's init just before exec:
//! rlimits, scheduling, identity, and the lookup of the program to run.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{
    IOPriorityClass, LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler,
};

pub fn rlimit_resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for rlimit in rlimits {
        let limit = libc::rlimit {
            rlim_cur: rlimit.soft(),
            rlim_max: rlimit.hard(),
        };
        // SAFETY: setrlimit reads a valid, initialised struct we own.
        let rc = unsafe { libc::setrlimit(rlimit_resource(rlimit.typ()), &limit) };
        if rc != 0 {
            // why: name the limit as config.json does (RLIMIT_NOFILE), not
            // by its Rust variant (RlimitNofile).
            let name = serde_json::to_value(rlimit.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", rlimit.typ()));
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!(
                    "setrlimit {name} soft {} hard {}",
                    rlimit.soft(),
                    rlimit.hard()
                )
            });
        }
    }
    Ok(())
}

pub fn set_oom_score_adj(value: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
        .with_context(|| format!("set oom_score_adj to {value}"))
}

pub fn set_io_priority(class: IOPriorityClass, priority: i64) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let class_num = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class_num << IOPRIO_CLASS_SHIFT) | priority;
    // SAFETY: ioprio_set takes plain integers; 0 means the calling process.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("set I/O priority");
    }
    Ok(())
}

/// struct sched_attr of sched_setattr(2), version 1 (with the utilization
/// clamps): the kernel refuses SCHED_FLAG_UTIL_CLAMP_* with the shorter
/// version 0, and an older kernel accepts the longer struct as long as the
/// fields it does not know are zero.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

pub fn set_scheduler(scheduler: &Scheduler) -> Result<()> {
    use oci_spec::runtime::LinuxSchedulerFlag as F;
    let policy = match scheduler.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for flag in scheduler.flags().iter().flatten() {
        flags |= match flag {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: scheduler.nice().unwrap_or(0),
        sched_priority: scheduler.priority().unwrap_or(0) as u32,
        sched_runtime: scheduler.runtime().unwrap_or(0),
        sched_deadline: scheduler.deadline().unwrap_or(0),
        sched_period: scheduler.period().unwrap_or(0),
        // why: the spec has no clamp values; with UTIL_CLAMP_MAX a zero
        // maximum would pin the process's utilization estimate (and so the
        // CPU frequency chosen for it) to the minimum, so the clamps asked
        // for span the whole range (min 0, max 1024).
        sched_util_min: 0,
        sched_util_max: if flags & 0x40 != 0 { 1024 } else { 0 },
    };
    // SAFETY: attr is a properly sized, initialised sched_attr; pid 0 is self.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("set scheduler");
    }
    Ok(())
}

/// The nodes of a list such as "0-1,3" (the kernel's list format, as
/// cpuset.mems takes it), each below `limit`.
pub fn parse_node_list(list: &str, limit: usize) -> Result<Vec<usize>> {
    let mut nodes = Vec::new();
    for part in list.split(',').map(str::trim) {
        let parse = |n: &str| {
            n.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v < limit)
                .with_context(|| format!("{n:?} is not a node number below {limit}"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(part)?, parse(part)?),
        };
        if lo > hi {
            bail!("range {part:?} runs backwards");
        }
        nodes.extend(lo..=hi);
    }
    Ok(nodes)
}

/// linux.memoryPolicy checked against the rules of set_mempolicy(2), so a
/// mistake is reported by name rather than as the kernel's bare EINVAL:
/// returns the mode word (mode | flags) and the node mask.
pub fn memory_policy_args(
    policy: &oci_spec::runtime::LinuxMemoryPolicy,
) -> Result<(libc::c_int, Vec<libc::c_ulong>)> {
    use oci_spec::runtime::MemoryPolicyFlagType as F;
    use oci_spec::runtime::MemoryPolicyModeType as M;
    // The kernel's MAX_NUMNODES is at most 1 << 10 (NODES_SHIFT 10).
    const MAX_NODES: usize = 1024;
    let mode = policy.mode();
    let nodes_text = policy.nodes().as_deref().unwrap_or("").trim();
    let what = || format!("linux.memoryPolicy {mode}");
    let nodes = if nodes_text.is_empty() {
        Vec::new()
    } else {
        parse_node_list(nodes_text, MAX_NODES)
            .with_context(|| format!("{}: invalid nodes {nodes_text:?}", what()))?
    };
    let mode_num: libc::c_int = match mode {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let flags = policy.flags().clone().unwrap_or_default();
    let mut flag_bits: libc::c_int = 0;
    for flag in &flags {
        flag_bits |= match flag {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    let has = |f: F| flags.contains(&f);
    if has(F::MpolFStaticNodes) && has(F::MpolFRelativeNodes) {
        bail!(
            "{}: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
            what()
        );
    }
    if has(F::MpolFNumaBalancing) && !matches!(mode, M::MpolBind | M::MpolPreferredMany) {
        bail!(
            "{}: MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY",
            what()
        );
    }
    match mode {
        M::MpolDefault | M::MpolLocal => {
            if !nodes.is_empty() {
                bail!("{}: takes no nodes (got {nodes_text:?})", what());
            }
            if flag_bits != 0 {
                bail!("{}: takes no flags", what());
            }
        }
        // An empty preferred set means "local", without node flags.
        M::MpolPreferred if nodes.is_empty() && flag_bits != 0 => {
            bail!("{}: flags need nodes", what());
        }
        M::MpolPreferred => {}
        _ if nodes.is_empty() => bail!("{}: needs nodes", what()),
        _ => {}
    }
    let bits = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = vec![0; nodes.iter().max().map_or(0, |m| m / bits + 1)];
    for node in nodes {
        mask[node / bits] |= 1 << (node % bits);
    }
    Ok((mode_num | flag_bits, mask))
}

/// set_mempolicy(2) for this process; it holds across execve.
pub fn set_memory_policy(policy: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    let (mode, mask) = memory_policy_args(policy)?;
    let (ptr, maxnode) = if mask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // why: the kernel reads maxnode - 1 bits (a historic off-by-one).
        (
            mask.as_ptr(),
            (mask.len() * libc::c_ulong::BITS as usize + 1) as libc::c_ulong,
        )
    };
    // SAFETY: the kernel reads at most maxnode - 1 bits from `mask`, which
    // holds that many; a null mask with maxnode 0 is "no nodes".
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc != 0 {
        let nodes = policy.nodes().as_deref().unwrap_or("");
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "linux.memoryPolicy {} nodes {nodes:?}: set_mempolicy",
                policy.mode()
            )
        });
    }
    Ok(())
}

/// Parses a cpu list such as "0-2,5" into a CPU set and applies it.
pub fn set_cpu_affinity(list: &str) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>()?, b.parse::<usize>()?),
            None => (part.parse::<usize>()?, part.parse::<usize>()?),
        };
        for cpu in lo..=hi {
            set.set(cpu)
                .with_context(|| format!("cpu {cpu} out of range"))?;
        }
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("set CPU affinity {list:?}"))
}

/// Every CPU the process's cgroup allows: the kernel intersects the mask
/// asked for with the cpuset, so asking for all CPUs gives exactly that.
pub fn reset_cpu_affinity() -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in 0..nix::sched::CpuSet::count() {
        set.set(cpu).context("cpu set")?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .context("reset CPU affinity to the cgroup's CPUs")
}

pub fn set_personality(domain: &oci_spec::runtime::LinuxPersonalityDomain) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let persona: libc::c_ulong = match domain {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes a plain integer.
    let rc = unsafe { libc::personality(persona) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error()).context("set personality");
    }
    Ok(())
}

/// Switches to the process's uid/gid and supplementary groups. Capabilities
/// survive the switch because keep-caps is set first; they are trimmed later.
pub fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups is "deny".
    let setgroups_allowed = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    if setgroups_allowed {
        nix::unistd::setgroups(&gids).context("setgroups")?;
    } else if !gids.is_empty() {
        bail!("cannot set additional gids: setgroups is denied in this user namespace");
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).with_context(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).with_context(|| format!("setuid {}", user.uid()))?;
    Ok(())
}

/// Field `index` (0 name, 5 home) of `uid`'s line in /etc/passwd. Read
/// directly, not through NSS: in the container only the file exists, and
/// the runtime stays free of dlopen'ed NSS modules.
pub fn passwd_field(uid: u32, index: usize) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse::<u32>().ok() == Some(uid))
            .then(|| fields[index].to_string())
    })
}

/// Finds the program like execvp does, with the container's PATH.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        // why: like runc's exec.LookPath, a missing or non-executable path
        // fails `create` (one clear line, nothing left), not `start`.
        let meta =
            std::fs::metadata(arg0).with_context(|| format!("exec: {arg0:?}: stat {arg0}"))?;
        use std::os::unix::fs::PermissionsExt;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            bail!("exec: {arg0:?}: permission denied");
        }
        return Ok(PathBuf::from(arg0));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
}

pub fn cstrings(items: &[String]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()).with_context(|| format!("NUL byte in {s:?}")))
        .collect()
}

/// Everything execve needs, built ahead of time: once the seccomp filter is
/// loaded, the only system call left is execve itself, so nothing may
/// allocate (mmap/brk could be denied) between the filter and the exec.
pub struct ExecArgs {
    program: CString,
    /// The sealed exec stub that executes `program` for us (exec_stub.rs).
    stub: Option<RawFd>,
    // Owned strings the pointer arrays point into; never mutated.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl ExecArgs {
    pub fn new(program: &Path, args: &[String], env: &[String]) -> Result<Self> {
        let prog = CString::new(program.as_os_str().as_bytes())
            .with_context(|| format!("NUL byte in {program:?}"))?;
        let argv = cstrings(args)?;
        let envp = cstrings(env)?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(Self {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            program: prog,
            stub: None,
            _argv: argv,
            _envp: envp,
        })
    }

    /// The same program, executed by the sealed exec stub `stub`, which
    /// reports a failure of its execve on exec.fifo (`fifo`).
    pub fn through_stub(self, stub: RawFd, fifo: RawFd) -> Self {
        let argv = crate::security::exec_stub::argv(fifo, &self.program, &self._argv);
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        Self {
            argv_ptrs,
            stub: Some(stub),
            _argv: argv,
            ..self
        }
    }

    /// execve without allocating; returns only on failure, with its errno.
    pub fn exec(&self) -> nix::errno::Errno {
        match self.stub {
            // SAFETY: the program path and every argv/envp entry are
            // NUL-terminated strings owned by `self` (moving a CString does
            // not move its heap buffer), and both pointer arrays end with a
            // null pointer.
            None => unsafe {
                libc::execve(
                    self.program.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                );
            },
            // SAFETY: as above; the path is an empty NUL-terminated string
            // and `stub` an open descriptor (AT_EMPTY_PATH: the file itself;
            // close-on-exec is no obstacle for an ELF program).
            Some(stub) => unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    stub,
                    c"".as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            },
        }
        nix::errno::Errno::last()
    }

    /// The failure of [`exec`](Self::exec) as an error naming the program.
    pub fn error(&self, errno: nix::errno::Errno) -> anyhow::Error {
        let through = if self.stub.is_some() {
            " through ozz's exec stub"
        } else {
            ""
        };
        anyhow::Error::new(errno).context(format!("exec {:?}{through}", self.program))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_policy_nodes_and_rules() {
        assert_eq!(parse_node_list("0-1,3", 64).unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_node_list(" 2 ", 64).unwrap(), vec![2]);
        for bad in ["", "x", "1-", "3-1", "0,,1", "64", "-1"] {
            assert!(parse_node_list(bad, 64).is_err(), "{bad:?} accepted");
        }
        let policy = |json: &str| -> oci_spec::runtime::LinuxMemoryPolicy {
            serde_json::from_str(json).unwrap()
        };
        let (mode, mask) =
            memory_policy_args(&policy(r#"{"mode":"MPOL_BIND","nodes":"0,65"}"#)).unwrap();
        assert_eq!((mode, mask), (2, vec![1, 2]));
        let (mode, mask) = memory_policy_args(&policy(
            r#"{"mode":"MPOL_INTERLEAVE","nodes":"1","flags":["MPOL_F_STATIC_NODES"]}"#,
        ))
        .unwrap();
        assert_eq!((mode, mask), (3 | 1 << 15, vec![2]));
        assert_eq!(
            memory_policy_args(&policy(r#"{"mode":"MPOL_LOCAL"}"#)).unwrap(),
            (4, vec![])
        );
        for bad in [
            r#"{"mode":"MPOL_BIND"}"#,
            r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#,
            r#"{"mode":"MPOL_PREFERRED","flags":["MPOL_F_STATIC_NODES"]}"#,
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
            r#"{"mode":"MPOL_LOCAL","flags":["MPOL_F_NUMA_BALANCING"]}"#,
        ] {
            assert!(memory_policy_args(&policy(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn program_lookup_uses_the_container_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_program("sh", &env).unwrap().ends_with("sh"));
        assert_eq!(
            find_program("/bin/sh", &env).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(find_program("/no/such/x", &env).is_err());
        assert!(find_program("/", &env).is_err());
        let err = find_program("no-such-program-xyz", &env).unwrap_err();
        assert!(err.to_string().contains("executable file not found"));
    }
}
