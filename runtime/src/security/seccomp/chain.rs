//! BPF: the guard, one seccompiler program per part, linking parts into
//! programs and ordering them for installation.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use seccompiler::{BackendError, BpfProgram, SeccompFilter, SeccompRule, TargetArch};

use super::profile::{Action, Match, RuleSet};
use super::{native, BPF_MAXINSNS};

/// `struct seccomp_data` as 32-bit words (little endian): nr, arch,
/// instruction pointer, then the six arguments.
pub(super) fn seccomp_data(nr: u32, arch: u32, args: [u64; 6]) -> [u32; 16] {
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
pub(super) fn run_bpf(prog: &[libc::sock_filter], data: &[u32; 16]) -> u32 {
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
pub(super) fn order_for_install(
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
pub(super) fn link(parts: Vec<Vec<libc::sock_filter>>) -> Vec<Vec<libc::sock_filter>> {
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

pub(super) fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Kill anything that is not a native-ABI syscall; allow the rest.
pub(super) fn guard_program() -> Vec<libc::sock_filter> {
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
pub(super) fn compile_one(
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
pub(super) fn emit(
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
