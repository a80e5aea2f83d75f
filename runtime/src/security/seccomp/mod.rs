//! OCI `linux.seccomp` → kernel seccomp BPF, and installing it.
//!
//! `profile` turns the OCI object into rule sets and compiles them,
//! `chain` builds the BPF parts and links them into programs, `install`
//! loads them.  The design (parts chained by precedence, semantics,
//! architectures) is told in docs/design.md, "Seccomp".

mod chain;
mod install;
mod notify;
mod profile;
#[cfg(test)]
mod tests;

use std::fmt;

pub use notify::{connect as connect_listener, listener_path, ListenerMessage};
pub use profile::compile;

/// Kernel limit on instructions per classic-BPF program (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;
/// SECCOMP_RET_USER_NOTIF (not in every libc crate version).
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// SECCOMP_FILTER_FLAG_NEW_LISTENER
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
/// Default errno for ERRNO/TRACE actions that do not specify one.
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;

/// A system-call ABI a filter covers: how its calls are told apart (audit
/// arch, x32 bit) and how its syscall names map to numbers.
#[derive(Clone, Copy, Debug)]
struct Abi {
    /// The OCI name (`SCMP_ARCH_*`).
    oci: &'static str,
    audit_arch: u32,
    /// Set in every syscall number of this ABI: x32 shares x86_64's audit
    /// arch and is told apart by bit 30 of the number.
    nr_bit: u32,
    /// A 32-bit ABI: arguments are compared on their low 32 bits only, as
    /// libseccomp does.
    word32: bool,
    /// The ABI's number for a syscall name; `None` when it has no such call.
    lookup: fn(&str) -> Option<u32>,
    /// Whether this kernel runs the ABI's calls at all: rules for an ABI it
    /// refuses (ENOSYS) would only lengthen the filter.
    runs: fn() -> bool,
}

fn always() -> bool {
    true
}

#[cfg(target_arch = "x86_64")]
mod native {
    use super::Abi;
    use std::str::FromStr;

    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::x86_64);
    /// AUDIT_ARCH_X86_64
    pub const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    /// Syscall numbers with this bit are the x32 ABI.
    pub const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
    /// Every ABI an x86_64 kernel can run (i386 with IA32 emulation, x32
    /// with CONFIG_X86_X32_ABI), the native one first.
    pub const ABIS: &[Abi] = &[
        Abi {
            oci: "SCMP_ARCH_X86_64",
            audit_arch: AUDIT_ARCH,
            nr_bit: 0,
            word32: false,
            lookup: x86_64_nr,
            runs: super::always,
        },
        Abi {
            oci: "SCMP_ARCH_X86",
            // AUDIT_ARCH_I386
            audit_arch: 3 | 0x4000_0000,
            nr_bit: 0,
            word32: true,
            lookup: i386_nr,
            // Probing int 0x80 could fault; the rules are built.
            runs: super::always,
        },
        Abi {
            oci: "SCMP_ARCH_X32",
            audit_arch: AUDIT_ARCH,
            nr_bit: 0x4000_0000,
            word32: false,
            lookup: x32_nr,
            runs: x32_runs,
        },
    ];

    /// Most kernels are built without CONFIG_X86_X32_ABI: an x32 getpid
    /// then fails with ENOSYS.  Under a seccomp filter already (a nested
    /// runtime) the probe itself could be killed: assume x32 runs.
    fn x32_runs() -> bool {
        static RUNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *RUNS.get_or_init(|| {
            let filtered = std::fs::read_to_string("/proc/self/status")
                .map(|s| {
                    !s.lines()
                        .any(|l| l.split_whitespace().eq(["Seccomp:", "0"]))
                })
                .unwrap_or(true);
            if filtered {
                return true;
            }
            // SAFETY: getpid through the x32 ABI takes no arguments; it
            // either returns our pid or fails with ENOSYS.
            let rc = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
            !(rc == -1 && nix::errno::Errno::last() == nix::errno::Errno::ENOSYS)
        })
    }

    fn x86_64_nr(name: &str) -> Option<u32> {
        syscalls::x86_64::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    fn i386_nr(name: &str) -> Option<u32> {
        syscalls::x86::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    /// x32 uses the x86_64 numbers (with bit 30 set, added by the caller),
    /// except for the calls whose arguments differ in layout: those have
    /// their own numbers from 512 on, and their 64-bit numbers do not exist
    /// in x32 (arch/x86/entry/syscalls/syscall_64.tbl).
    fn x32_nr(name: &str) -> Option<u32> {
        const X32_OWN: [&str; 36] = [
            "rt_sigaction",
            "rt_sigreturn",
            "ioctl",
            "readv",
            "writev",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "execve",
            "ptrace",
            "rt_sigpending",
            "rt_sigtimedwait",
            "rt_sigqueueinfo",
            "sigaltstack",
            "timer_create",
            "mq_notify",
            "kexec_load",
            "waitid",
            "set_robust_list",
            "get_robust_list",
            "vmsplice",
            "move_pages",
            "preadv",
            "pwritev",
            "rt_tgsigqueueinfo",
            "recvmmsg",
            "sendmmsg",
            "process_vm_readv",
            "process_vm_writev",
            "setsockopt",
            "getsockopt",
            "io_setup",
            "io_submit",
            "execveat",
            "preadv2",
            "pwritev2",
        ];
        if let Some(i) = X32_OWN.iter().position(|n| *n == name) {
            return Some(512 + i as u32);
        }
        x86_64_nr(name)
    }
}
#[cfg(target_arch = "aarch64")]
mod native {
    use super::Abi;
    use std::str::FromStr;

    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::aarch64);
    /// AUDIT_ARCH_AARCH64
    pub const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const ABIS: &[Abi] = &[Abi {
        oci: "SCMP_ARCH_AARCH64",
        audit_arch: AUDIT_ARCH,
        nr_bit: 0,
        word32: false,
        lookup: native_nr,
        runs: super::always,
    }];

    fn native_nr(name: &str) -> Option<u32> {
        syscalls::Sysno::from_str(name).ok().map(|s| s.id() as u32)
    }
}
#[cfg(target_arch = "riscv64")]
mod native {
    use super::Abi;
    use std::str::FromStr;

    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::riscv64);
    /// AUDIT_ARCH_RISCV64
    pub const AUDIT_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const ABIS: &[Abi] = &[Abi {
        oci: "SCMP_ARCH_RISCV64",
        audit_arch: AUDIT_ARCH,
        nr_bit: 0,
        word32: false,
        lookup: native_nr,
        runs: super::always,
    }];

    fn native_nr(name: &str) -> Option<u32> {
        syscalls::Sysno::from_str(name).ok().map(|s| s.id() as u32)
    }
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
mod native {
    pub const TARGET: Option<seccompiler::TargetArch> = None;
    pub const AUDIT_ARCH: u32 = 0;
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const ABIS: &[super::Abi] = &[];
}

/// Compiled, ready-to-load filters (one or more BPF programs, loaded in order).
pub struct CompiledSeccomp {
    programs: Vec<Vec<libc::sock_filter>>,
    flags: libc::c_ulong,
    /// The program that holds SCMP_ACT_NOTIFY rules: loaded with
    /// SECCOMP_FILTER_FLAG_NEW_LISTENER, it yields the notify fd.
    listener_program: Option<usize>,
}

impl CompiledSeccomp {
    /// Whether every program lets this native call through, as the kernel
    /// would decide it (the exec stub asks before it is chosen).
    pub fn allows(&self, nr: libc::c_long, args: [u64; 6]) -> bool {
        let data = chain::seccomp_data(nr as u32, native::AUDIT_ARCH, args);
        self.programs
            .iter()
            .all(|program| chain::run_bpf(program, &data) == libc::SECCOMP_RET_ALLOW)
    }
}

impl fmt::Debug for CompiledSeccomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lens: Vec<usize> = self.programs.iter().map(Vec::len).collect();
        f.debug_struct("CompiledSeccomp")
            .field("program_lengths", &lens)
            .field("flags", &self.flags)
            .finish()
    }
}

/// Actions this module supports, spelled as OCI does.
pub fn supported_actions() -> &'static [&'static str] {
    &[
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
    ]
}

/// Argument operators this module supports, spelled as OCI does.
pub fn supported_operators() -> &'static [&'static str] {
    &[
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ]
}

/// Architectures whose syscalls the rules can filter: the native one and
/// the other ABIs its kernel can run.  Other names are accepted, but no
/// rules are built for them (the kernel cannot run their calls here).
pub fn supported_archs() -> Vec<&'static str> {
    native::ABIS.iter().map(|a| a.oci).collect()
}

/// Filter flags the runtime-spec defines, spelled as OCI does.
pub fn known_flags() -> &'static [&'static str] {
    &[
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ]
}

/// Filter flags this module supports, spelled as OCI does.
pub fn supported_flags() -> &'static [&'static str] {
    &[
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ]
}
