//! OCI `linux.seccomp` → kernel seccomp BPF, and installing it.
//!
//! # Design: one verdict per part, parts chained by precedence
//!
//! A seccompiler [`SeccompFilter`] has exactly one "match" action and one
//! "mismatch" action, while an OCI profile gives every rule its own action.
//! We build several seccompiler programs ("parts") and chain them:
//!
//! 1. **guard**: native audit arch only (anything else → `KILL_PROCESS`); on
//!    x86_64 also kills x32-ABI syscalls (`nr & 0x4000_0000`, except the
//!    `-1` used by ptracers to skip a syscall); otherwise `ALLOW`.
//! 2. **one part per distinct rule action** (action *and* errno/trace data,
//!    `ALLOW` excluded), ordered from the most to the least restrictive
//!    (`KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > TRACE > LOG`, ties in
//!    profile order): "the call matches a rule with this action → the
//!    action, otherwise → `ALLOW`".
//! 3. **base** (omitted when the default action is `ALLOW`): "the call
//!    matches a rule → `ALLOW`, otherwise → `defaultAction`".  Only rules
//!    that are not *more* restrictive than the default need to be here.
//!
//! Chaining rewrites every `RET ALLOW` of a part (except the last) into a
//! jump to the next part, so the first part with a non-ALLOW verdict
//! decides.  A call that matches no rule passes every rule part and gets the
//! default from base; a call that matches rules gets the most restrictive
//! action among them (the first rule part that fires), and base would have
//! allowed it.  Worked cases:
//!
//! * default `ALLOW` + `ERRNO` rules: no base; matching calls get the errno.
//! * default `ERRNO(EPERM)` + `ALLOW` rules + `ERRNO(ENOSYS)` for `clone3`:
//!   the ENOSYS part fires for clone3; base allows the listed syscalls and
//!   returns EPERM for the rest.  A rule whose action has the default's rank
//!   but other data (ERRNO 38 vs default ERRNO 1) stays in base, so base
//!   never answers the default for it.
//! * default `KILL` + `LOG` rules: the LOG part logs (and allows) the listed
//!   calls; base kills the rest.
//! * default `ERRNO` + `KILL` rule: the KILL part fires first.
//!
//! The chain normally fits in one program (a podman-like profile of ~350
//! names is ~1800 instructions).  Beyond the kernel's 4096 instructions per
//! program, syscalls are split over several parts and the chain over several
//! programs; the kernel then applies its own rule across programs (the most
//! restrictive verdict wins), which gives the same result, except that which
//! data wins between two *matching* rules of equal rank (e.g. two errnos) is
//! unspecified.  Since each installed program filters the seccomp(2) calls
//! that load the next, the (at most one) program that would deny seccomp(2)
//! is installed last; if two would, compile fails with a clear error.
//!
//! Rule semantics follow libseccomp: several entries for the same syscall
//! are ORed; the conditions of one entry are ANDed and compare the full
//! 64-bit argument; `SCMP_CMP_MASKED_EQ` uses `value` as the mask and
//! `valueTwo` as the expected value (an expected value with bits outside the
//! mask never matches, so that entry is dropped); entries whose action
//! equals the default action are skipped, as are syscall names unknown to
//! the native table; errno/trace data defaults to EPERM.
//!
//! # Architectures
//!
//! Rules are compiled for the native architecture only (x86_64, aarch64 or
//! riscv64; names resolve through the `syscalls` crate's native table).
//! Every OCI architecture name is accepted in `architectures`, but syscalls
//! made through any other ABI (i386 `int 0x80`, x32, arm compat, …) kill the
//! process: giving them the default action could bypass a deny-list, so we
//! fail closed.  32-bit binaries therefore do not run under a profile.
//!
//! # Not supported
//!
//! `SCMP_ACT_NOTIFY` and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (rejected
//! with an error).  Unlike runc, syscalls newer than the profile are not
//! turned into ENOSYS; they get the default action.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

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

/// A resolved seccomp action with its data.  Variants are declared from the
/// most to the least restrictive; see [`Action::rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// Kernel precedence class; lower is more restrictive.  Equal ranks with
    /// different data (two errno values) are the same class for the kernel.
    fn rank(self) -> u8 {
        match self {
            Action::KillProcess => 0,
            Action::KillThread => 1,
            Action::Trap => 2,
            Action::Errno(_) => 3,
            // 4 is USER_NOTIF
            Action::Trace(_) => 5,
            Action::Log => 6,
            Action::Allow => 7,
        }
    }

    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Errno(e) => SeccompAction::Errno(u32::from(e)),
            Action::Trace(t) => SeccompAction::Trace(u32::from(t)),
            Action::Log => SeccompAction::Log,
            Action::Allow => SeccompAction::Allow,
        }
    }

    /// The `SECCOMP_RET_*` value a filter returns for this action.
    fn ret(self) -> u32 {
        u32::from(self.to_seccompiler())
    }
}

fn action_name(action: LinuxSeccompAction) -> &'static str {
    match action {
        LinuxSeccompAction::ScmpActKill => "SCMP_ACT_KILL",
        LinuxSeccompAction::ScmpActKillThread => "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActKillProcess => "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActTrap => "SCMP_ACT_TRAP",
        LinuxSeccompAction::ScmpActErrno => "SCMP_ACT_ERRNO",
        LinuxSeccompAction::ScmpActNotify => "SCMP_ACT_NOTIFY",
        LinuxSeccompAction::ScmpActTrace => "SCMP_ACT_TRACE",
        LinuxSeccompAction::ScmpActLog => "SCMP_ACT_LOG",
        LinuxSeccompAction::ScmpActAllow => "SCMP_ACT_ALLOW",
    }
}

/// Resolve an OCI action; `errno` is the entry's `errnoRet` (or
/// `defaultErrnoRet`), used by ERRNO and TRACE, EPERM when absent.
fn convert_action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<Action> {
    let data = || -> Result<u16> {
        match errno {
            None => Ok(DEFAULT_ERRNO),
            Some(e) => u16::try_from(e).map_err(|_| {
                anyhow!(
                    "seccomp errnoRet {e} for {} is out of range (max 65535)",
                    action_name(action)
                )
            }),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(data()?),
        LinuxSeccompAction::ScmpActTrace => Action::Trace(data()?),
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            bail!("seccomp action SCMP_ACT_NOTIFY is not supported")
        }
    })
}

/// Convert one OCI argument comparison.  `Ok(None)` means the comparison can
/// never be true (MASKED_EQ with an expected value outside the mask).
fn convert_arg(arg: &LinuxSeccompArg) -> Result<Option<SeccompCondition>> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| {
            anyhow!(
                "seccomp argument index {} is out of range (0-5)",
                arg.index()
            )
        })?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let mask = arg.value();
            let expected = arg.value_two().unwrap_or(0);
            if expected & !mask != 0 {
                return Ok(None);
            }
            (SeccompCmpOp::MaskedEq(mask), expected)
        }
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map(Some)
        .map_err(|e| anyhow!("invalid seccomp argument condition: {e}"))
}

/// How a syscall matches within one filter.
#[derive(Clone, Debug, PartialEq)]
enum Match {
    /// Unconditionally.
    Always,
    /// When any of these rules (each an AND of conditions) matches.
    Any(Vec<SeccompRule>),
}

type RuleSet = BTreeMap<i64, Match>;

fn add_rule(set: &mut RuleSet, nr: i64, rule: &Option<SeccompRule>) {
    match rule {
        None => {
            set.insert(nr, Match::Always);
        }
        Some(rule) => match set.entry(nr).or_insert_with(|| Match::Any(Vec::new())) {
            Match::Always => {}
            Match::Any(rules) => {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        },
    }
}

/// Compile the OCI object. Errors are anyhow errors with a clear one-line message.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<CompiledSeccomp> {
    let Some(target) = native::TARGET else {
        bail!("seccomp is not supported on this architecture")
    };

    let mut flags: libc::c_ulong = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                bail!("seccomp flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported")
            }
        };
    }

    let default = convert_action(seccomp.default_action(), seccomp.default_errno_ret())?;

    let mut base = RuleSet::new();
    let mut per_action: Vec<(Action, RuleSet)> = Vec::new();
    for entry in seccomp.syscalls().iter().flatten() {
        let action = convert_action(entry.action(), entry.errno_ret())?;
        let mut conditions = Vec::new();
        let mut satisfiable = true;
        for arg in entry.args().iter().flatten() {
            match convert_arg(arg)? {
                Some(c) => conditions.push(c),
                None => satisfiable = false,
            }
        }
        if action == default || !satisfiable {
            continue;
        }
        let rule = if conditions.is_empty() {
            None
        } else {
            Some(SeccompRule::new(conditions).map_err(|e| anyhow!("invalid seccomp rule: {e}"))?)
        };
        for name in entry.names() {
            let Ok(sysno) = syscalls::Sysno::from_str(name) else {
                continue; // unknown to this architecture: skipped like libseccomp
            };
            let nr = i64::from(sysno.id());
            if default != Action::Allow && action.rank() >= default.rank() {
                add_rule(&mut base, nr, &rule);
            }
            if action != Action::Allow {
                let idx = match per_action.iter().position(|(a, _)| *a == action) {
                    Some(i) => i,
                    None => {
                        per_action.push((action, RuleSet::new()));
                        per_action.len() - 1
                    }
                };
                add_rule(&mut per_action[idx].1, nr, &rule);
            }
        }
    }

    // Chain order: guard, rule actions from the most to the least
    // restrictive (stable: ties keep profile order), base filter last.
    per_action.sort_by_key(|(action, _)| action.rank());
    let mut parts = vec![guard_program()];
    for (action, set) in &per_action {
        emit(
            set,
            *action,
            Action::Allow,
            Action::Allow,
            target,
            &mut parts,
        )?;
    }
    if default != Action::Allow {
        emit(&base, Action::Allow, default, default, target, &mut parts)?;
    }
    Ok(CompiledSeccomp {
        programs: order_for_install(link(parts), flags)?,
        flags,
    })
}

/// `struct seccomp_data` as 32-bit words (little endian): nr, arch,
/// instruction pointer, then the six arguments.
fn seccomp_data(nr: u32, arch: u32, args: [u64; 6]) -> [u32; 16] {
    let mut data = [0u32; 16];
    data[0] = nr;
    data[1] = arch;
    for (i, a) in args.iter().enumerate() {
        data[4 + 2 * i] = *a as u32;
        data[5 + 2 * i] = (*a >> 32) as u32;
    }
    data
}

/// Run one of our programs on `data`, as the kernel would.  Only the
/// instructions we generate are understood; anything else, or running off
/// the end, yields KILL_PROCESS.
fn run_bpf(prog: &[libc::sock_filter], data: &[u32; 16]) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        let code = u32::from(insn.code);
        let op = code & 0xf0;
        match code & 0x07 {
            libc::BPF_LD if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                match data.get((insn.k / 4) as usize) {
                    Some(word) if insn.k % 4 == 0 => acc = *word,
                    _ => break,
                }
                pc += 1;
            }
            libc::BPF_ALU if op == libc::BPF_AND => {
                acc &= insn.k;
                pc += 1;
            }
            libc::BPF_JMP if op == libc::BPF_JA => pc += 1 + insn.k as usize,
            libc::BPF_JMP => {
                let taken = match op {
                    libc::BPF_JEQ => acc == insn.k,
                    libc::BPF_JGT => acc > insn.k,
                    libc::BPF_JGE => acc >= insn.k,
                    _ => break,
                };
                pc += 1 + usize::from(if taken { insn.jt } else { insn.jf });
            }
            libc::BPF_RET => return insn.k,
            _ => break,
        }
    }
    libc::SECCOMP_RET_KILL_PROCESS
}

/// With several programs, each one installed restricts the seccomp(2)
/// calls that load the next.  Put the programs that would deny our own
/// seccomp(2) call last; more than one of them cannot work.
fn order_for_install(
    programs: Vec<Vec<libc::sock_filter>>,
    flags: libc::c_ulong,
) -> Result<Vec<Vec<libc::sock_filter>>> {
    if programs.len() <= 1 {
        return Ok(programs);
    }
    let data = seccomp_data(
        libc::SYS_seccomp as u32,
        native::AUDIT_ARCH,
        [u64::from(libc::SECCOMP_SET_MODE_FILTER), flags, 0, 0, 0, 0],
    );
    let lets_through = |ret: u32| {
        let action = ret & libc::SECCOMP_RET_ACTION_FULL;
        action == libc::SECCOMP_RET_ALLOW || action == libc::SECCOMP_RET_LOG
    };
    let (passing, mut denying): (Vec<_>, Vec<_>) = programs
        .into_iter()
        .partition(|p| lets_through(run_bpf(p, &data)));
    if denying.len() > 1 {
        bail!(
            "seccomp profile needs {} BPF programs and denies seccomp(2), so it cannot be installed",
            passing.len() + denying.len()
        );
    }
    let mut ordered = passing;
    ordered.append(&mut denying);
    Ok(ordered)
}

/// Chain parts into as few programs as possible: within a program, every
/// `RET ALLOW` of a part except the last becomes a jump to the next part,
/// so the first part with a non-ALLOW verdict decides.  Parts are ordered
/// so that this equals the kernel's "most restrictive filter wins" rule,
/// which applies between the programs if there is more than one.
fn link(parts: Vec<Vec<libc::sock_filter>>) -> Vec<Vec<libc::sock_filter>> {
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    let ja = (libc::BPF_JMP | libc::BPF_JA) as u16;
    let mut programs: Vec<Vec<Vec<libc::sock_filter>>> = Vec::new();
    let mut len = 0;
    for part in parts {
        match programs.last_mut() {
            Some(current) if len + part.len() <= BPF_MAXINSNS => {
                len += part.len();
                current.push(part);
            }
            _ => {
                len = part.len();
                programs.push(vec![part]);
            }
        }
    }
    programs
        .into_iter()
        .map(|mut parts| {
            let count = parts.len();
            for part in parts.iter_mut().take(count - 1) {
                let end = part.len();
                for (i, insn) in part.iter_mut().enumerate() {
                    if insn.code == ret_k && insn.k == libc::SECCOMP_RET_ALLOW {
                        *insn = stmt(ja, (end - i - 1) as u32);
                    }
                }
            }
            parts.concat()
        })
        .collect()
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Kill anything that is not a native-ABI syscall; allow the rest.
fn guard_program() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // offsetof(struct seccomp_data, arch) and offsetof(.., nr)
    const ARCH_OFFSET: u32 = 4;
    const NR_OFFSET: u32 = 0;
    match native::X32_SYSCALL_BIT {
        Some(bit) => vec![
            /* 0 */ stmt(LD_W_ABS, ARCH_OFFSET),
            /* 1 */ jump(JEQ_K, native::AUDIT_ARCH, 0, 4), // foreign → 6
            /* 2 */ stmt(LD_W_ABS, NR_OFFSET),
            /* 3 */ jump(JGE_K, bit, 0, 1), // below the x32 range → 5
            /* 4 */ jump(JEQ_K, u32::MAX, 0, 1), // nr == -1 → 5, x32 → 6
            /* 5 */ stmt(RET_K, libc::SECCOMP_RET_ALLOW),
            /* 6 */ stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        ],
        None => vec![
            stmt(LD_W_ABS, ARCH_OFFSET),
            jump(JEQ_K, native::AUDIT_ARCH, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
            stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        ],
    }
}

/// Compile one program: syscalls in `set` whose rules match → `on_match`;
/// in `set` but no rule matches → `on_mismatch`; not in `set` → `outside`.
/// Returns `Ok(None)` if the program would be too long.
fn compile_one(
    set: &RuleSet,
    on_match: Action,
    on_mismatch: Action,
    outside: Action,
    target: TargetArch,
) -> Result<Option<Vec<libc::sock_filter>>> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = set
        .iter()
        .map(|(nr, m)| {
            let chain = match m {
                Match::Always => Vec::new(),
                Match::Any(rules) => rules.clone(),
            };
            (*nr, chain)
        })
        .collect();
    let filter = SeccompFilter::new(
        rules,
        on_mismatch.to_seccompiler(),
        on_match.to_seccompiler(),
        target,
    )
    .map_err(|e| anyhow!("cannot build seccomp filter: {e}"))?;
    let mut program = match BpfProgram::try_from(filter) {
        Ok(p) => p,
        Err(BackendError::FilterTooLarge(_)) => return Ok(None),
        Err(e) => bail!("cannot build seccomp filter: {e}"),
    };
    if program.len() > BPF_MAXINSNS {
        return Ok(None);
    }
    // seccompiler ends the program with the return reached when the syscall
    // number matched none of the entries: that is the "outside" action.
    let last = program
        .last_mut()
        .ok_or_else(|| anyhow!("seccompiler produced an empty program"))?;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    if last.code != ret_k || last.k != on_mismatch.ret() {
        bail!("unexpected seccompiler program layout");
    }
    last.k = outside.ret();
    Ok(Some(
        program
            .into_iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect(),
    ))
}

/// Like [`compile_one`] but splits `set` over several programs when needed.
fn emit(
    set: &RuleSet,
    on_match: Action,
    on_mismatch: Action,
    outside: Action,
    target: TargetArch,
    out: &mut Vec<Vec<libc::sock_filter>>,
) -> Result<()> {
    if let Some(program) = compile_one(set, on_match, on_mismatch, outside, target)? {
        out.push(program);
        return Ok(());
    }
    if set.len() <= 1 {
        let nr = set.keys().next().copied().unwrap_or(-1);
        let name = syscalls::Sysno::new(nr as usize).map_or("?", |s| s.name());
        bail!("seccomp rules for syscall {name} do not fit in one BPF program");
    }
    if outside != Action::Allow {
        // Split programs must be neutral (ALLOW) for syscalls they do not
        // list, so a syscall-number-only program keeps `outside` for
        // syscalls that no rule names.  This is only sound when matching
        // means ALLOW (the base filter), since it allows every listed
        // syscall regardless of its conditions.
        if on_match != Action::Allow {
            bail!("seccomp profile too large to compile");
        }
        let numbers: RuleSet = set.keys().map(|nr| (*nr, Match::Always)).collect();
        let numbers_program = compile_one(&numbers, Action::Allow, outside, outside, target)?
            .ok_or_else(|| anyhow!("seccomp profile names too many syscalls"))?;
        let conditional: RuleSet = set
            .iter()
            .filter(|(_, m)| matches!(m, Match::Any(_)))
            .map(|(nr, m)| (*nr, m.clone()))
            .collect();
        if !conditional.is_empty() {
            emit(
                &conditional,
                on_match,
                on_mismatch,
                Action::Allow,
                target,
                out,
            )?;
        }
        // Last: it is the part most likely to deny seccomp(2) itself.
        out.push(numbers_program);
        return Ok(());
    }
    let mid = set.len() / 2;
    let first: RuleSet = set.iter().take(mid).map(|(k, v)| (*k, v.clone())).collect();
    let second: RuleSet = set.iter().skip(mid).map(|(k, v)| (*k, v.clone())).collect();
    emit(&first, on_match, on_mismatch, outside, target, out)?;
    emit(&second, on_match, on_mismatch, outside, target, out)
}

/// Why installing a program failed; plain data so that the failure path of
/// [`CompiledSeccomp::try_install`] does not allocate either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InstallError {
    /// Index of the program that failed.
    program: usize,
    /// `errno` from seccomp(2), or 0 when a TSYNC thread could not sync.
    errno: i32,
    /// With SECCOMP_FILTER_FLAG_TSYNC: the thread that could not sync.
    tsync_tid: libc::c_long,
}

impl CompiledSeccomp {
    /// Load every program into the calling thread (or, with
    /// SECCOMP_FILTER_FLAG_TSYNC, all threads of the process), in order,
    /// with the OCI `flags`.  Requires no_new_privs or CAP_SYS_ADMIN.
    ///
    /// Neither allocates nor spawns threads before the programs are loaded,
    /// so it is safe in a child forked from a multi-threaded process; only
    /// building the error message on failure allocates.
    pub fn install(&self) -> Result<()> {
        self.try_install().map_err(|e| {
            if e.tsync_tid != 0 {
                anyhow!(
                    "seccomp: thread {} could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)",
                    e.tsync_tid
                )
            } else {
                let hint = if e.errno == libc::EACCES {
                    " (no_new_privs is not set and CAP_SYS_ADMIN is missing)"
                } else {
                    ""
                };
                anyhow!(
                    "seccomp(SECCOMP_SET_MODE_FILTER) failed for program {}/{}: {}{hint}",
                    e.program + 1,
                    self.programs.len(),
                    std::io::Error::from_raw_os_error(e.errno)
                )
            }
        })
    }

    /// Non-allocating core of [`install`](Self::install).
    fn try_install(&self) -> std::result::Result<(), InstallError> {
        for (i, program) in self.programs.iter().enumerate() {
            let fprog = libc::sock_fprog {
                // Programs are at most BPF_MAXINSNS long (checked in compile).
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: `fprog` points to `len` valid, initialised sock_filter
            // instructions that outlive the call; the kernel copies the
            // program and does not write through the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    self.flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc != 0 {
                let errno = if rc < 0 {
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
                } else {
                    0
                };
                return Err(InstallError {
                    program: i,
                    errno,
                    tsync_tid: if rc > 0 { rc } else { 0 },
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompArgBuilder;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).expect("valid LinuxSeccomp JSON")
    }

    fn nr(name: &str) -> u32 {
        syscalls::Sysno::from_str(name).unwrap().id() as u32
    }

    /// What the kernel would return for this syscall given all installed
    /// programs: the most recent filter wins ties, lower action wins.
    fn evaluate_arch(c: &CompiledSeccomp, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let data = seccomp_data(nr, arch, args);
        let mut ret = libc::SECCOMP_RET_ALLOW;
        for prog in c.programs.iter().rev() {
            let cur = run_bpf(prog, &data);
            let action_only = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
            if action_only(cur) < action_only(ret) {
                ret = cur;
            }
        }
        ret
    }

    fn evaluate(c: &CompiledSeccomp, name: &str, args: [u64; 6]) -> u32 {
        evaluate_arch(c, native::AUDIT_ARCH, nr(name), args)
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
    const LOG: u32 = libc::SECCOMP_RET_LOG;
    fn errno(e: u32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e
    }

    // ---- conversion tests ----

    #[test]
    fn action_conversion_table() {
        use LinuxSeccompAction as A;
        let cases: &[(A, Option<u32>, Action)] = &[
            (A::ScmpActKill, None, Action::KillThread),
            (A::ScmpActKillThread, None, Action::KillThread),
            (A::ScmpActKillProcess, None, Action::KillProcess),
            (A::ScmpActTrap, None, Action::Trap),
            (A::ScmpActErrno, None, Action::Errno(1)),
            (A::ScmpActErrno, Some(38), Action::Errno(38)),
            (A::ScmpActErrno, Some(0), Action::Errno(0)),
            (A::ScmpActTrace, None, Action::Trace(1)),
            (A::ScmpActTrace, Some(7), Action::Trace(7)),
            (A::ScmpActLog, None, Action::Log),
            (A::ScmpActAllow, None, Action::Allow),
            (A::ScmpActAllow, Some(5), Action::Allow),
        ];
        for (oci, errno, want) in cases {
            assert_eq!(
                convert_action(*oci, *errno).unwrap(),
                *want,
                "{oci:?} {errno:?}"
            );
        }
        assert!(convert_action(A::ScmpActErrno, Some(70000)).is_err());
        let err = convert_action(A::ScmpActNotify, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "seccomp action SCMP_ACT_NOTIFY is not supported"
        );
        // Precedence order used by the stacking design matches the kernel's.
        let order = [
            Action::KillProcess,
            Action::KillThread,
            Action::Trap,
            Action::Errno(1),
            Action::Trace(1),
            Action::Log,
            Action::Allow,
        ];
        for w in order.windows(2) {
            assert!(w[0].rank() < w[1].rank());
            assert!((w[0].ret() as i32) < (w[1].ret() as i32));
        }
    }

    #[test]
    fn notify_rejected() {
        for json in [
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}),
        ] {
            let err = compile(&profile(json)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "seccomp action SCMP_ACT_NOTIFY is not supported"
            );
        }
        assert!(!supported_actions().contains(&"SCMP_ACT_NOTIFY"));
    }

    #[test]
    fn operator_conversion_table() {
        use LinuxSeccompOperator as O;
        let arg = |index: usize, op: O, value: u64, two: Option<u64>| {
            let b = LinuxSeccompArgBuilder::default()
                .index(index)
                .op(op)
                .value(value);
            match two {
                Some(t) => b.value_two(t).build().unwrap(),
                None => b.build().unwrap(),
            }
        };
        let q = SeccompCmpArgLen::Qword;
        let cases: Vec<(LinuxSeccompArg, Option<SeccompCondition>)> = vec![
            (
                arg(0, O::ScmpCmpNe, 1, None),
                Some(SeccompCondition::new(0, q.clone(), SeccompCmpOp::Ne, 1).unwrap()),
            ),
            (
                arg(1, O::ScmpCmpLt, 2, None),
                Some(SeccompCondition::new(1, q.clone(), SeccompCmpOp::Lt, 2).unwrap()),
            ),
            (
                arg(2, O::ScmpCmpLe, 3, None),
                Some(SeccompCondition::new(2, q.clone(), SeccompCmpOp::Le, 3).unwrap()),
            ),
            (
                arg(3, O::ScmpCmpEq, u64::MAX, None),
                Some(SeccompCondition::new(3, q.clone(), SeccompCmpOp::Eq, u64::MAX).unwrap()),
            ),
            (
                arg(4, O::ScmpCmpGe, 5, Some(9)),
                Some(SeccompCondition::new(4, q.clone(), SeccompCmpOp::Ge, 5).unwrap()),
            ),
            (
                arg(5, O::ScmpCmpGt, 6, None),
                Some(SeccompCondition::new(5, q.clone(), SeccompCmpOp::Gt, 6).unwrap()),
            ),
            (
                arg(0, O::ScmpCmpMaskedEq, 0xf0, Some(0x30)),
                Some(
                    SeccompCondition::new(0, q.clone(), SeccompCmpOp::MaskedEq(0xf0), 0x30)
                        .unwrap(),
                ),
            ),
            (
                arg(0, O::ScmpCmpMaskedEq, 0xf0, None),
                Some(SeccompCondition::new(0, q.clone(), SeccompCmpOp::MaskedEq(0xf0), 0).unwrap()),
            ),
            // Expected bits outside the mask: can never match.
            (arg(0, O::ScmpCmpMaskedEq, 0xf0, Some(0x31)), None),
        ];
        for (a, want) in cases {
            assert_eq!(convert_arg(&a).unwrap(), want, "{a:?}");
        }
        let err = convert_arg(&arg(6, O::ScmpCmpEq, 0, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "seccomp argument index 6 is out of range (0-5)"
        );
    }

    /// Every operator, on 64-bit boundary values, behaves like the Rust
    /// comparison when run through the generated BPF.
    #[test]
    fn operators_evaluate_on_64_bits() {
        let values = [
            0u64,
            1,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0001,
            u64::MAX - 1,
            u64::MAX,
        ];
        type Cmp = fn(u64, u64) -> bool;
        let ops: &[(&str, Cmp)] = &[
            ("SCMP_CMP_NE", |a, v| a != v),
            ("SCMP_CMP_LT", |a, v| a < v),
            ("SCMP_CMP_LE", |a, v| a <= v),
            ("SCMP_CMP_EQ", |a, v| a == v),
            ("SCMP_CMP_GE", |a, v| a >= v),
            ("SCMP_CMP_GT", |a, v| a > v),
        ];
        for (op, f) in ops {
            for v in values {
                let c = compile(&profile(serde_json::json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["getpid", "dup"], "action": "SCMP_ACT_ALLOW",
                                  "args": [{"index": 2, "value": v, "op": op}]}]
                })))
                .unwrap();
                for a in values {
                    let want = if f(a, v) { ALLOW } else { errno(1) };
                    assert_eq!(
                        evaluate(&c, "dup", [0, 0, a, 0, 0, 0]),
                        want,
                        "{a:#x} {op} {v:#x}"
                    );
                }
            }
        }
        // MASKED_EQ: (arg & value) == valueTwo
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "clone", [0x0001_1200, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "clone", [0x1_0000_0000, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            evaluate(&c, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            errno(1)
        );
    }

    #[test]
    fn args_in_one_entry_are_anded_and_entries_are_ored() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["dup3"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["dup3"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}
            ]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "dup3", [1, 2, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "dup3", [1, 3, 0, 0, 0, 0]), errno(1));
        assert_eq!(evaluate(&c, "dup3", [0, 2, 0, 0, 0, 0]), errno(1));
        assert_eq!(evaluate(&c, "dup3", [0, 0, 9, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "getpid", [0; 6]), errno(1));
    }

    #[test]
    fn unknown_names_are_skipped() {
        let with_unknown = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["no_such_syscall", "getpid", "arm_fadvise64_64_nope"],
                          "action": "SCMP_ACT_ALLOW"},
                         {"names": ["only_unknown"], "action": "SCMP_ACT_KILL"}]
        })))
        .unwrap();
        let without = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        assert_eq!(with_unknown.programs.len(), without.programs.len());
        for (a, b) in with_unknown.programs.iter().zip(&without.programs) {
            let key = |p: &Vec<libc::sock_filter>| -> Vec<(u16, u8, u8, u32)> {
                p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
            };
            assert_eq!(key(a), key(b));
        }
    }

    #[test]
    fn empty_syscalls_and_defaults() {
        // (profile, number of programs, result for getpid)
        let cases = [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}),
                1,
                ALLOW,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}),
                1,
                ALLOW,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"}),
                1,
                errno(1),
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}),
                1,
                errno(38),
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_KILL"}),
                1,
                KILL_THREAD,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}),
                1,
                KILL_PROCESS,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_TRAP"}),
                1,
                libc::SECCOMP_RET_TRAP,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_TRACE"}),
                1,
                libc::SECCOMP_RET_TRACE | 1,
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 3}),
                1,
                libc::SECCOMP_RET_TRACE | 3,
            ),
            (serde_json::json!({"defaultAction": "SCMP_ACT_LOG"}), 1, LOG),
            // A rule with the default action adds nothing.
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
                1,
                errno(1),
            ),
        ];
        for (json, count, want) in cases {
            let c = compile(&profile(json.clone())).unwrap();
            assert_eq!(c.programs.len(), count, "{json}");
            assert_eq!(evaluate(&c, "getpid", [0; 6]), want, "{json}");
        }
    }

    #[test]
    fn stacking_semantics() {
        // default ERRNO(EPERM), ALLOW rules, ERRNO(ENOSYS) for clone3, KILL for ptrace.
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "clone3", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["getpid"], "action": "SCMP_ACT_LOG"}
            ]
        })))
        .unwrap();
        // guard, KILL_PROCESS, ERRNO(38), LOG and base chained in one program
        assert_eq!(c.programs.len(), 1);
        assert_eq!(evaluate(&c, "read", [0; 6]), ALLOW);
        assert_eq!(evaluate(&c, "clone3", [0; 6]), errno(38));
        assert_eq!(evaluate(&c, "ptrace", [0; 6]), KILL_PROCESS);
        assert_eq!(evaluate(&c, "getpid", [0; 6]), LOG);
        assert_eq!(evaluate(&c, "mkdir", [0; 6]), errno(1));

        // default ALLOW + ERRNO rule.
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "mkdir", [0; 6]), errno(13));
        assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW);

        // default KILL + LOG rules.
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG"}]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "getpid", [0; 6]), LOG);
        assert_eq!(evaluate(&c, "getppid", [0; 6]), KILL_THREAD);

        // default ERRNO(38) with an ERRNO(1) rule conditioned on an argument.
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
            ]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "socket", [40, 0, 0, 0, 0, 0]), errno(1));
        assert_eq!(evaluate(&c, "socket", [2, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "getpid", [0; 6]), errno(38));
    }

    #[test]
    fn foreign_abis_are_killed() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        })))
        .unwrap();
        assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW);
        // AUDIT_ARCH_I386
        assert_eq!(evaluate_arch(&c, 3 | 0x4000_0000, 20, [0; 6]), KILL_PROCESS);
        if let Some(bit) = native::X32_SYSCALL_BIT {
            assert_eq!(
                evaluate_arch(&c, native::AUDIT_ARCH, bit | 39, [0; 6]),
                KILL_PROCESS
            );
            // nr == -1 (syscall skipped by a tracer) is not killed.
            assert_eq!(
                evaluate_arch(&c, native::AUDIT_ARCH, u32::MAX, [0; 6]),
                ALLOW
            );
        }
    }

    #[test]
    fn flags() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        })))
        .unwrap();
        assert_eq!(c.flags, 0b111);
        let err = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        })))
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("WAIT_KILLABLE_RECV is not supported"));
        for f in supported_flags() {
            assert!(LinuxSeccompFilterFlag::from_str(f).is_ok(), "{f}");
        }
        for a in supported_actions() {
            assert!(LinuxSeccompAction::from_str(a).is_ok(), "{a}");
        }
        for o in supported_operators() {
            assert!(LinuxSeccompOperator::from_str(o).is_ok(), "{o}");
        }
        for a in supported_archs() {
            assert!(oci_spec::runtime::Arch::from_str(a).is_ok(), "{a}");
        }
    }

    #[test]
    fn invalid_arg_index_is_an_error() {
        let err = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "seccomp argument index 6 is out of range (0-5)"
        );
    }

    /// Syscall names of a container-engine default profile (the allow list).
    const BIG_ALLOW_LIST: &[&str] = &[
        "_llseek",
        "_newselect",
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "get_mempolicy",
        "get_robust_list",
        "get_thread_area",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "io_setup",
        "io_submit",
        "ioctl",
        "ioprio_get",
        "ioprio_set",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listxattr",
        "llistxattr",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "set_mempolicy",
        "set_robust_list",
        "set_thread_area",
        "set_tid_address",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "setsid",
        "setsockopt",
        "setuid",
        "setuid32",
        "setxattr",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
        "arch_prctl",
        "modify_ldt",
        "chroot",
        "fchdir",
        "setns",
        "unshare",
        "mount",
        "umount2",
        "pivot_root",
        "open_by_handle_at",
        "bpf",
        "perf_event_open",
        "fanotify_init",
        "lookup_dcookie",
        "quotactl",
        "setdomainname",
        "sethostname",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
        "kcmp",
    ];

    /// A podman-like profile: default ERRNO(ENOSYS), a big allow list,
    /// argument rules for personality/clone/socket, EPERM for some calls.
    fn big_profile() -> LinuxSeccomp {
        profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": BIG_ALLOW_LIST, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                          {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["bdflush", "io_pgetevents", "kexec_file_load", "kexec_load",
                           "migrate_pages", "move_pages", "nfsservctl", "nice", "oldfstat",
                           "oldlstat", "oldolduname", "oldstat", "olduname", "pciconfig_iobase",
                           "pciconfig_read", "pciconfig_write", "sgetmask", "ssetmask",
                           "swapoff", "swapon", "syscall", "sysfs", "uselib", "userfaultfd",
                           "ustat", "vm86", "vm86old", "vmsplice"],
                 "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        }))
    }

    #[test]
    fn big_profile_compiles() {
        let c = compile(&big_profile()).unwrap();
        // A profile of this size is chained into a single program.
        assert_eq!(c.programs.len(), 1, "{c:?}");
        assert_eq!(evaluate(&c, "read", [0; 6]), ALLOW);
        assert_eq!(evaluate(&c, "clone3", [0; 6]), errno(38));
        assert_eq!(evaluate(&c, "vmsplice", [0; 6]), errno(1));
        assert_eq!(evaluate(&c, "syslog", [0; 6]), errno(38));
        assert_eq!(
            evaluate(&c, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            evaluate(&c, "personality", [0x11, 0, 0, 0, 0, 0]),
            errno(38)
        );
        assert_eq!(evaluate(&c, "socket", [40, 1, 0, 0, 0, 0]), errno(38));
        assert_eq!(evaluate(&c, "socket", [1, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "socket", [16, 3, 9, 0, 0, 0]), errno(22));
        assert_eq!(evaluate(&c, "socket", [16, 3, 0, 0, 0, 0]), ALLOW);
    }

    /// Every syscall of the native table, each with many argument rules:
    /// forces splitting into several programs and checks the result.
    fn huge_profile(per_syscall: u64, allow_seccomp: bool) -> LinuxSeccomp {
        let names: Vec<&str> = syscalls::Sysno::iter().map(|s| s.name()).collect();
        let mut always = vec!["exit_group", "exit", "getpid"];
        if allow_seccomp {
            always.push("seccomp");
        }
        let mut entries = vec![serde_json::json!({"names": always, "action": "SCMP_ACT_ALLOW"})];
        for v in 0..per_syscall {
            entries.push(
                serde_json::json!({"names": names, "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1000 + v, "op": "SCMP_CMP_EQ"}]}),
            );
        }
        entries.push(
            serde_json::json!({"names": ["getpgid"], "action": "SCMP_ACT_ERRNO",
            "errnoRet": 22, "args": [{"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"}]}),
        );
        profile(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": entries}))
    }

    #[test]
    fn oversized_profile_is_split() {
        let c = compile(&huge_profile(3, true)).unwrap();
        assert!(c.programs.len() > 1, "{c:?}");
        assert!(c.programs.iter().all(|p| p.len() <= BPF_MAXINSNS));
        assert_eq!(evaluate(&c, "getpid", [7; 6]), ALLOW);
        assert_eq!(evaluate(&c, "getcwd", [1001, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "getcwd", [1, 0, 0, 0, 0, 0]), errno(1));
        assert_eq!(evaluate(&c, "getpgid", [1000, 0, 0, 0, 0, 0]), errno(22));
        assert_eq!(evaluate(&c, "getpgid", [1002, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(evaluate(&c, "getpgid", [3, 0, 0, 0, 0, 0]), errno(1));
        // A number outside the table still gets the default action.
        assert_eq!(
            evaluate_arch(&c, native::AUDIT_ARCH, 1000, [1000; 6]),
            errno(1)
        );
    }

    // ---- real enforcement in forked children ----

    /// Fork; the child sets no_new_privs, installs `c`, runs `body` and exits
    /// with its result.  Returns the exit status, or 1000 + signal number.
    fn run_in_child(c: &CompiledSeccomp, body: fn() -> i32) -> i32 {
        // SAFETY: the child only makes raw syscalls and calls
        // `CompiledSeccomp::try_install`, which never allocates, then leaves
        // with `_exit`; no locks held by other test threads are needed.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: prctl with integer arguments only.
            let code = if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                101
            } else if let Err(e) = c.try_install() {
                // Report the errno without allocating (we are a forked child
                // of a multi-threaded test binary).
                150 + e.errno.min(100)
            } else {
                body()
            };
            // SAFETY: terminates the child without running any destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            1000 + libc::WTERMSIG(status)
        }
    }

    fn last_errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Result of a raw syscall: Ok(return value) or Err(errno).
    fn sys(nr: libc::c_long, a0: libc::c_long, a1: libc::c_long) -> Result<i64, i32> {
        sys3(nr, a0, a1, 0)
    }

    fn sys3(nr: libc::c_long, a0: i64, a1: i64, a2: i64) -> Result<i64, i32> {
        // SAFETY: only called with syscalls whose arguments are integers,
        // pointers to a static buffer or to a C string literal (see callers).
        let rc = unsafe { libc::syscall(nr, a0, a1, a2, 0, 0, 0) };
        if rc < 0 {
            Err(last_errno())
        } else {
            Ok(rc)
        }
    }

    static mut BUF: [u8; 256] = [0; 256];

    fn buf_ptr() -> libc::c_long {
        // Only the address is taken; each forked child has its own copy.
        std::ptr::addr_of_mut!(BUF) as libc::c_long
    }

    #[test]
    fn enforce_default_errno_with_allow_rules() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["exit_group", "exit", "write", "getpid", "rt_sigreturn"],
                 "action": "SCMP_ACT_ALLOW"},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
            ]
        })))
        .unwrap();
        let code = run_in_child(&c, || {
            if sys(libc::SYS_getcwd, buf_ptr(), 256) != Err(libc::EPERM) {
                return 1;
            }
            let path = c"/tmp/ozz-seccomp-test".as_ptr() as i64;
            if sys3(libc::SYS_mkdirat, libc::AT_FDCWD.into(), path, 0o700) != Err(libc::EPERM) {
                return 2;
            }
            if sys(libc::SYS_getpid, 0, 0).is_err() {
                return 3;
            }
            if sys(libc::SYS_getppid, 0, 0) != Err(libc::ENOSYS) {
                return 4;
            }
            if sys(libc::SYS_personality, 0xffff_ffff, 0).is_err() {
                return 5;
            }
            if sys(libc::SYS_personality, 0, 0) != Err(libc::EPERM) {
                return 6;
            }
            // write(-1, ...) reaches the kernel: EBADF, not EPERM.
            if sys(libc::SYS_write, -1, buf_ptr()) != Err(libc::EBADF) {
                return 7;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn enforce_default_allow_with_errno_and_kill_rules() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]
        })))
        .unwrap();
        let code = run_in_child(&c, || {
            if sys(libc::SYS_getcwd, buf_ptr(), 256) != Err(libc::EACCES) {
                return 1;
            }
            if sys(libc::SYS_getpid, 0, 0).is_err() {
                return 2;
            }
            0
        });
        assert_eq!(code, 0);
        let code = run_in_child(&c, || {
            let _ = sys(libc::SYS_getppid, 0, 0);
            0
        });
        assert_eq!(code, 1000 + libc::SIGSYS);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn enforce_x32_abi_killed() {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        })))
        .unwrap();
        let code = run_in_child(&c, || {
            let _ = sys(0x4000_0000 | libc::SYS_getpid, 0, 0);
            0
        });
        assert_eq!(code, 1000 + libc::SIGSYS);
    }

    #[test]
    fn enforce_big_profile() {
        let c = compile(&big_profile()).unwrap();
        let code = run_in_child(&c, || {
            if sys(libc::SYS_getpid, 0, 0).is_err() {
                return 1;
            }
            if sys(libc::SYS_getcwd, buf_ptr(), 256).is_err() {
                return 2;
            }
            // SYSLOG_ACTION_SIZE_BUFFER is harmless but not allowed.
            if sys(libc::SYS_syslog, 10, 0) != Err(libc::ENOSYS) {
                return 3;
            }
            if sys(libc::SYS_personality, 0xffff_ffff, 0).is_err() {
                return 4;
            }
            if sys(libc::SYS_personality, 0x11, 0) != Err(libc::ENOSYS) {
                return 5;
            }
            if sys(libc::SYS_userfaultfd, 0, 0) != Err(libc::EPERM) {
                return 6;
            }
            if sys(libc::SYS_socket, 40, libc::SOCK_STREAM as libc::c_long) != Err(libc::ENOSYS) {
                return 7;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn enforce_split_profile() {
        let c = compile(&huge_profile(3, true)).unwrap();
        assert!(c.programs.len() > 1);
        let code = run_in_child(&c, || {
            if sys(libc::SYS_getpid, 0, 0).is_err() {
                return 1;
            }
            if sys(libc::SYS_getpgid, 1000, 0) != Err(libc::EINVAL) {
                return 2;
            }
            // Allowed by the rule: reaches the kernel, no such process.
            if sys(libc::SYS_getpgid, 1001, 0) == Err(libc::EPERM) {
                return 3;
            }
            if sys(libc::SYS_getpgid, 0, 0) != Err(libc::EPERM) {
                return 4;
            }
            if sys(libc::SYS_getcwd, buf_ptr(), 256) != Err(libc::EPERM) {
                return 5;
            }
            0
        });
        assert_eq!(code, 0);
        // Denying seccomp(2) too: the one program that denies it goes last.
        let c = compile(&huge_profile(3, false)).unwrap();
        assert!(c.programs.len() > 1);
        assert_eq!(run_in_child(&c, || 0), 0);
    }

    #[test]
    fn install_order_puts_seccomp_denying_program_last() {
        let ret = |k: u32| vec![stmt((libc::BPF_RET | libc::BPF_K) as u16, k)];
        let deny = ret(errno(1));
        let log = ret(LOG);
        let allow = ret(ALLOW);
        let ordered = order_for_install(vec![deny.clone(), allow.clone(), log.clone()], 0).unwrap();
        assert_eq!(ordered.len(), 3);
        assert_eq!(ordered[2][0].k, errno(1));
        let err = order_for_install(vec![deny.clone(), allow, ret(KILL_THREAD)], 0).unwrap_err();
        assert!(err.to_string().contains("denies seccomp(2)"), "{err}");
        // A single program is always fine.
        assert_eq!(order_for_install(vec![deny], 0).unwrap().len(), 1);
    }
}
