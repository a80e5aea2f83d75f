//! OCI `linux.seccomp` → kernel seccomp BPF, and installing it.
//!
//! `profile` turns the OCI object into rule sets and compiles them,
//! `chain` builds the BPF parts and links them into programs, `install`
//! loads them.  The design (parts chained by precedence, semantics,
//! architectures) is told in docs/design.md, "Seccomp".

mod chain;
mod install;
mod profile;
#[cfg(test)]
mod tests;

use std::fmt;

pub use profile::compile;

/// Kernel limit on instructions per classic-BPF program (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;
/// Default errno for ERRNO/TRACE actions that do not specify one.
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;

#[cfg(target_arch = "x86_64")]
mod native {
    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::x86_64);
    /// AUDIT_ARCH_X86_64
    pub const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    /// Syscall numbers with this bit are the x32 ABI.
    pub const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
    pub const ARCHS: &[&str] = &["SCMP_ARCH_X86_64"];
}
#[cfg(target_arch = "aarch64")]
mod native {
    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::aarch64);
    /// AUDIT_ARCH_AARCH64
    pub const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const ARCHS: &[&str] = &["SCMP_ARCH_AARCH64"];
}
#[cfg(target_arch = "riscv64")]
mod native {
    pub const TARGET: Option<seccompiler::TargetArch> = Some(seccompiler::TargetArch::riscv64);
    /// AUDIT_ARCH_RISCV64
    pub const AUDIT_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const ARCHS: &[&str] = &["SCMP_ARCH_RISCV64"];
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
    pub const ARCHS: &[&str] = &[];
}

/// Compiled, ready-to-load filters (one or more BPF programs, loaded in order).
pub struct CompiledSeccomp {
    programs: Vec<Vec<libc::sock_filter>>,
    flags: libc::c_ulong,
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

/// Architectures whose syscalls are filtered by the rules (the native one).
/// Other architecture names are accepted, but their syscalls are killed.
pub fn supported_archs() -> &'static [&'static str] {
    native::ARCHS
}

/// Filter flags this module supports, spelled as OCI does.
pub fn supported_flags() -> &'static [&'static str] {
    &[
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ]
}
