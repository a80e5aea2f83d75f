//! BPF: the guard, one seccompiler program per part, linking parts into
//! programs and ordering them for installation.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use seccompiler::{BackendError, BpfProgram, SeccompFilter, SeccompRule, TargetArch};

use super::profile::{Action, Match, RuleSet};
use super::{native, Abi, BPF_MAXINSNS};

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
/// which applies between the programs if there is more than one.  A group
/// (one arch's parts) starts a new program rather than being split, unless
/// it is too long for one.  The `prelude` parts (guard, ENOSYS stub) head
/// every program, so that each program gives the same verdict for the
/// calls they decide.
pub(super) fn link(
    prelude: Vec<Vec<libc::sock_filter>>,
    groups: Vec<Vec<Vec<libc::sock_filter>>>,
) -> Vec<Vec<libc::sock_filter>> {
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    let ja = (libc::BPF_JMP | libc::BPF_JA) as u16;
    let prelude_len: usize = prelude.iter().map(Vec::len).sum();
    let mut programs: Vec<Vec<Vec<libc::sock_filter>>> = Vec::new();
    let mut len = 0;
    for group in groups {
        let group_len: usize = group.iter().map(Vec::len).sum();
        let mut fresh = len + group_len > BPF_MAXINSNS;
        for part in group {
            match programs.last_mut() {
                Some(current) if !fresh && len + part.len() <= BPF_MAXINSNS => {
                    len += part.len();
                    current.push(part);
                }
                _ => {
                    fresh = false;
                    len = prelude_len + part.len();
                    let mut program = prelude.clone();
                    program.push(part);
                    programs.push(program);
                }
            }
        }
    }
    if programs.is_empty() {
        programs.push(prelude);
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

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
// offsetof(struct seccomp_data, arch) and offsetof(.., nr)
const ARCH_OFFSET: u32 = 4;
const NR_OFFSET: u32 = 0;

/// A jump target while assembling: the next instruction or a label.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

/// A tiny assembler with forward labels, for the hand-written parts.
#[derive(Default)]
struct Asm {
    insns: Vec<(libc::sock_filter, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push((stmt(code, k), To::Next, To::Next));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.insns.push((jump(code, k, 0, 0), jt, jf));
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>> {
        let offset = |at: usize, to: To| -> Result<u8> {
            let target = match to {
                To::Next => at + 1,
                To::Label(l) => self.labels[l].ok_or_else(|| anyhow!("unplaced BPF label"))?,
            };
            target
                .checked_sub(at + 1)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| anyhow!("BPF jump out of range"))
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (at, (mut insn, jt, jf)) in self.insns.iter().copied().enumerate() {
            if insn.code & 0x07 == libc::BPF_JMP as u16 {
                insn.jt = offset(at, jt)?;
                insn.jf = offset(at, jf)?;
            }
            out.push(insn);
        }
        Ok(out)
    }
}

/// Kill any call that comes through an ABI the filter does not cover (on
/// x86_64 without x32: numbers with the x32 bit, except the `-1` that
/// ptracers use to skip a call); allow the rest.
pub(super) fn guard_program(abis: &[Abi]) -> Result<Vec<libc::sock_filter>> {
    let mut asm = Asm::default();
    let (allow, kill) = (asm.label(), asm.label());
    asm.stmt(LD_W_ABS, ARCH_OFFSET);
    let mut foreign: Vec<u32> = abis
        .iter()
        .map(|a| a.audit_arch)
        .filter(|a| *a != native::AUDIT_ARCH)
        .collect();
    foreign.dedup();
    for arch in foreign {
        asm.jump(JEQ_K, arch, To::Label(allow), To::Next);
    }
    asm.jump(JEQ_K, native::AUDIT_ARCH, To::Next, To::Label(kill));
    if let Some(bit) = native::X32_SYSCALL_BIT {
        if !abis.iter().any(|a| a.nr_bit == bit) {
            asm.stmt(LD_W_ABS, NR_OFFSET);
            asm.jump(JGE_K, bit, To::Next, To::Label(allow));
            asm.jump(JEQ_K, u32::MAX, To::Label(allow), To::Label(kill));
        }
    }
    asm.place(allow);
    asm.stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    asm.place(kill);
    asm.stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS);
    asm.finish()
}

/// runc's ENOSYS stub: per audit arch, a call numbered above the highest
/// one the profile names for that ABI returns ENOSYS; anything else is
/// allowed (passed on to the rules).  `highest[i]` belongs to `abis[i]`;
/// ABIs without any known name get no stub.  `None` when no ABI has one.
pub(super) fn enosys_stub(
    abis: &[Abi],
    highest: &[Option<u32>],
) -> Result<Option<Vec<libc::sock_filter>>> {
    // Per audit arch: its highest plain number, and (x32) the tag bit with
    // the highest tagged number.
    type Highest = (u32, Option<u32>, Option<(u32, u32)>);
    let mut arches: Vec<Highest> = Vec::new();
    for (abi, high) in abis.iter().zip(highest) {
        let Some(high) = *high else { continue };
        let i = match arches.iter().position(|(a, _, _)| *a == abi.audit_arch) {
            Some(i) => i,
            None => {
                arches.push((abi.audit_arch, None, None));
                arches.len() - 1
            }
        };
        if abi.nr_bit == 0 {
            arches[i].1 = Some(high);
        } else {
            arches[i].2 = Some((abi.nr_bit, high | abi.nr_bit));
        }
    }
    if arches.is_empty() {
        return Ok(None);
    }
    let mut asm = Asm::default();
    let (allow, enosys) = (asm.label(), asm.label());
    let sections: Vec<usize> = arches.iter().map(|_| asm.label()).collect();
    asm.stmt(LD_W_ABS, ARCH_OFFSET);
    for ((arch, _, _), section) in arches.iter().zip(&sections) {
        asm.jump(JEQ_K, *arch, To::Label(*section), To::Next);
    }
    asm.stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    for ((_, plain, tagged), section) in arches.iter().zip(&sections) {
        asm.place(*section);
        asm.stmt(LD_W_ABS, NR_OFFSET);
        let plain_check = asm.label();
        if let Some((bit, high)) = tagged {
            let target = if plain.is_some() {
                To::Label(plain_check)
            } else {
                To::Label(allow)
            };
            asm.jump(JGE_K, *bit, To::Next, target);
            asm.jump(JGT_K, *high, To::Label(enosys), To::Label(allow));
        }
        asm.place(plain_check);
        match plain {
            Some(high) => asm.jump(JGT_K, *high, To::Label(enosys), To::Label(allow)),
            // Only x32 names are known: plain calls are not this stub's.
            None => asm.jump(JGE_K, 0, To::Label(allow), To::Label(allow)),
        }
    }
    asm.place(allow);
    asm.stmt(RET_K, libc::SECCOMP_RET_ALLOW);
    asm.place(enosys);
    asm.stmt(RET_K, Action::Errno(libc::ENOSYS as u16).ret());
    asm.finish().map(Some)
}

/// Compile one program: syscalls in `set` whose rules match → `on_match`;
/// in `set` but no rule matches → `on_mismatch`; not in `set` → `outside`.
/// Returns `Ok(None)` if the program would be too long.
pub(super) fn compile_one(
    set: &RuleSet,
    on_match: Action,
    on_mismatch: Action,
    outside: Action,
    audit_arch: u32,
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
    // seccompiler starts with "arch is the target's, or KILL_PROCESS": make
    // it "arch is this part's, or not this part's business" (the guard has
    // killed the arches the filter does not cover).
    let header_ok = program.len() > 3
        && program[0].code == LD_W_ABS
        && program[0].k == ARCH_OFFSET
        && program[1].code == JEQ_K
        && (program[1].jt, program[1].jf) == (1, 0)
        && program[2].code == RET_K
        && program[2].k == libc::SECCOMP_RET_KILL_PROCESS;
    if !header_ok {
        bail!("unexpected seccompiler program layout");
    }
    program[1].k = audit_arch;
    program[2].k = libc::SECCOMP_RET_ALLOW;
    // seccompiler ends the program with the return reached when the syscall
    // number matched none of the entries: that is the "outside" action.
    let last = program
        .last_mut()
        .ok_or_else(|| anyhow!("seccompiler produced an empty program"))?;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    if last.code != ret_k || last.k != u32::from(on_mismatch.to_seccompiler()) {
        bail!("unexpected seccompiler program layout");
    }
    last.k = u32::from(outside.to_seccompiler());
    // USER_NOTIF went through seccompiler as TRAP (see Action::to_seccompiler).
    if [on_match, on_mismatch, outside].contains(&Action::Notify) {
        let trap = u32::from(Action::Trap.to_seccompiler());
        for insn in program.iter_mut().skip(3) {
            if insn.code == ret_k && insn.k == trap {
                insn.k = Action::Notify.ret();
            }
        }
    }
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
    audit_arch: u32,
    target: TargetArch,
    out: &mut Vec<Vec<libc::sock_filter>>,
) -> Result<()> {
    if let Some(program) = compile_one(set, on_match, on_mismatch, outside, audit_arch, target)? {
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
        let numbers_program = compile_one(
            &numbers,
            Action::Allow,
            outside,
            outside,
            audit_arch,
            target,
        )?
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
                audit_arch,
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
    emit(
        &first,
        on_match,
        on_mismatch,
        outside,
        audit_arch,
        target,
        out,
    )?;
    emit(
        &second,
        on_match,
        on_mismatch,
        outside,
        audit_arch,
        target,
        out,
    )
}
