//! The OCI profile → rule sets per action, compiled into a chain.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::chain::{emit, enosys_stub, guard_program, link, order_for_install};
use super::{native, Abi, CompiledSeccomp, DEFAULT_ERRNO, SECCOMP_RET_USER_NOTIF};

/// A resolved seccomp action with its data.  Variants are declared from the
/// most to the least restrictive; see [`Action::rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    /// SECCOMP_RET_USER_NOTIF: the listener decides.
    Notify,
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// Kernel precedence class; lower is more restrictive.  Equal ranks with
    /// different data (two errno values) are the same class for the kernel.
    pub(super) fn rank(self) -> u8 {
        match self {
            Action::KillProcess => 0,
            Action::KillThread => 1,
            Action::Trap => 2,
            Action::Errno(_) => 3,
            Action::Notify => 4,
            Action::Trace(_) => 5,
            Action::Log => 6,
            Action::Allow => 7,
        }
    }

    pub(super) fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Errno(e) => SeccompAction::Errno(u32::from(e)),
            // seccompiler has no USER_NOTIF: TRAP stands in for it, and
            // chain::compile_one rewrites it (a part never holds both).
            Action::Notify => SeccompAction::Trap,
            Action::Trace(t) => SeccompAction::Trace(u32::from(t)),
            Action::Log => SeccompAction::Log,
            Action::Allow => SeccompAction::Allow,
        }
    }

    /// The `SECCOMP_RET_*` value a filter returns for this action.
    pub(super) fn ret(self) -> u32 {
        match self {
            Action::Notify => SECCOMP_RET_USER_NOTIF,
            _ => u32::from(self.to_seccompiler()),
        }
    }
}

pub(super) fn action_name(action: LinuxSeccompAction) -> &'static str {
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
pub(super) fn convert_action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<Action> {
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
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    })
}

/// Convert one OCI argument comparison.  `Ok(None)` means the comparison can
/// never be true (MASKED_EQ with an expected value outside the mask).
#[cfg(test)]
pub(super) fn convert_arg(arg: &LinuxSeccompArg) -> Result<Option<SeccompCondition>> {
    convert_arg_for(arg, false)
}

/// [`convert_arg`] for an ABI; `word32`: a 32-bit ABI, whose arguments are
/// compared on their low 32 bits (values are truncated, as libseccomp does).
pub(super) fn convert_arg_for(
    arg: &LinuxSeccompArg,
    word32: bool,
) -> Result<Option<SeccompCondition>> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| {
            anyhow!(
                "seccomp argument index {} is out of range (0-5)",
                arg.index()
            )
        })?;
    let (len, word) = if word32 {
        (SeccompCmpArgLen::Dword, u64::from(u32::MAX))
    } else {
        (SeccompCmpArgLen::Qword, u64::MAX)
    };
    let value = arg.value() & word;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, value),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, value),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, value),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, value),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, value),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let mask = value;
            let expected = arg.value_two().unwrap_or(0) & word;
            if expected & !mask != 0 {
                return Ok(None);
            }
            (SeccompCmpOp::MaskedEq(mask), expected)
        }
    };
    SeccompCondition::new(index, len, op, value)
        .map(Some)
        .map_err(|e| anyhow!("invalid seccomp argument condition: {e}"))
}

/// How a syscall matches within one filter.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Match {
    /// Unconditionally.
    Always,
    /// When any of these rules (each an AND of conditions) matches.
    Any(Vec<SeccompRule>),
}

pub(super) type RuleSet = BTreeMap<i64, Match>;

pub(super) fn add_rule(set: &mut RuleSet, nr: i64, rule: &Option<SeccompRule>) {
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

/// The rules of one profile entry for one ABI, ORed; `None` inside means
/// "unconditionally".  `Ok(None)`: the entry can never match.
///
/// Conditions are ANDed, except that when two of them test the same
/// argument every condition becomes a rule of its own (ORed), as runc does
/// with libseccomp (which cannot AND two comparisons of one argument).
fn entry_rules(
    args: Option<&Vec<LinuxSeccompArg>>,
    word32: bool,
) -> Result<Option<Vec<Option<SeccompRule>>>> {
    let args = args.map(Vec::as_slice).unwrap_or_default();
    if args.is_empty() {
        return Ok(Some(vec![None]));
    }
    let mut conditions = Vec::new();
    for arg in args {
        conditions.push(convert_arg_for(arg, word32)?);
    }
    let rule = |c: Vec<SeccompCondition>| {
        SeccompRule::new(c).map_err(|e| anyhow!("invalid seccomp rule: {e}"))
    };
    let same_index = args
        .iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index() == a.index()));
    if same_index {
        let rules = conditions
            .into_iter()
            .flatten()
            .map(|c| rule(vec![c]).map(Some))
            .collect::<Result<Vec<_>>>()?;
        return Ok((!rules.is_empty()).then_some(rules));
    }
    match conditions.into_iter().collect::<Option<Vec<_>>>() {
        Some(all) => Ok(Some(vec![Some(rule(all)?)])),
        None => Ok(None),
    }
}

/// The ABIs the filter covers: the native one (always, as libseccomp's
/// native filter) and every listed one this kernel can run; names of
/// other architectures are accepted and ignored (no such calls happen).
fn selected_abis(seccomp: &LinuxSeccomp) -> Vec<Abi> {
    let listed: Vec<String> = seccomp
        .architectures()
        .iter()
        .flatten()
        .filter_map(|a| serde_json::to_value(a).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    native::ABIS
        .iter()
        .enumerate()
        .filter(|(i, abi)| *i == 0 || listed.iter().any(|l| l == abi.oci))
        .map(|(_, abi)| *abi)
        .collect()
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
    let notify = default == Action::Notify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|e| e.action() == LinuxSeccompAction::ScmpActNotify);
    if notify && seccomp.listener_path().is_none() {
        bail!("seccomp action SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    }
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        bail!("linux.seccomp.listenerMetadata is set without listenerPath");
    }
    let listed = selected_abis(seccomp);
    // Rules only for the ABIs this kernel runs; the guard still lets the
    // calls of the others through (the kernel answers them ENOSYS).
    let abis: Vec<Abi> = listed.iter().copied().filter(|a| (a.runs)()).collect();
    // One rule set per audit arch (x32 shares x86_64's, with its own numbers).
    let mut arches: Vec<u32> = Vec::new();
    for abi in &abis {
        if !arches.contains(&abi.audit_arch) {
            arches.push(abi.audit_arch);
        }
    }
    let arch_index = |abi: &Abi| {
        arches
            .iter()
            .position(|a| *a == abi.audit_arch)
            .unwrap_or(0)
    };
    let empty_sets = vec![RuleSet::new(); arches.len()];

    // The highest syscall number the profile names, per ABI (any action).
    let mut highest: Vec<Option<u32>> = vec![None; abis.len()];
    let mut base = empty_sets.clone();
    let mut per_action: Vec<(Action, Vec<RuleSet>)> = Vec::new();
    for entry in seccomp.syscalls().iter().flatten() {
        let action = convert_action(entry.action(), entry.errno_ret())?;
        if action == Action::Notify && entry.names().iter().any(|n| n == "sendmsg") {
            // The notify fd is sent to the listener with sendmsg after the
            // filter is loaded: notifying it would wait for a listener that
            // never gets the fd.
            bail!("seccomp action SCMP_ACT_NOTIFY cannot be used for sendmsg");
        }
        for (abi, high) in abis.iter().zip(highest.iter_mut()) {
            for nr in entry.names().iter().filter_map(|n| (abi.lookup)(n)) {
                *high = (*high).max(Some(nr));
            }
        }
        if action == default {
            continue;
        }
        let idx = match per_action.iter().position(|(a, _)| *a == action) {
            Some(i) => i,
            None => {
                per_action.push((action, empty_sets.clone()));
                per_action.len() - 1
            }
        };
        for abi in &abis {
            let Some(rules) = entry_rules(entry.args().as_ref(), abi.word32)? else {
                continue; // can never match
            };
            let g = arch_index(abi);
            for name in entry.names() {
                let Some(nr) = (abi.lookup)(name) else {
                    continue; // unknown to this ABI: skipped like libseccomp
                };
                let nr = i64::from(nr | abi.nr_bit);
                for rule in &rules {
                    if default != Action::Allow && action.rank() >= default.rank() {
                        add_rule(&mut base[g], nr, rule);
                    }
                    if action != Action::Allow {
                        add_rule(&mut per_action[idx].1[g], nr, rule);
                    }
                }
            }
        }
    }

    // Chain order, per audit arch (parts of other arches let its calls
    // pass): rule actions from the most to the least restrictive (stable:
    // ties keep profile order), then its base filter.  Each arch's parts
    // are kept in one program when they fit, so that its verdicts never
    // depend on the kernel's rule between programs.  The guard and the
    // ENOSYS stub head every program.
    per_action.sort_by_key(|(action, _)| action.rank());
    let mut groups = Vec::new();
    for (g, arch) in arches.iter().enumerate() {
        let mut parts = Vec::new();
        for (action, sets) in &per_action {
            if !sets[g].is_empty() {
                emit(
                    &sets[g],
                    *action,
                    Action::Allow,
                    Action::Allow,
                    *arch,
                    target,
                    &mut parts,
                )?;
            }
        }
        if default != Action::Allow {
            emit(
                &base[g],
                Action::Allow,
                default,
                default,
                *arch,
                target,
                &mut parts,
            )?;
        }
        groups.push(parts);
    }
    let mut prelude = vec![guard_program(&listed)?];
    // runc's rule: a syscall above the highest one the profile names is
    // newer than the profile and gets ENOSYS (so that libc falls back, e.g.
    // clone3 → clone), unless the default is permissive anyway or already
    // ENOSYS.
    let permissive = matches!(default, Action::Allow | Action::Log | Action::Trace(_));
    if !permissive && seccomp.default_errno_ret() != Some(libc::ENOSYS as u32) {
        if let Some(stub) = enosys_stub(&abis, &highest)? {
            prelude.push(stub);
        }
    }
    let programs = order_for_install(link(prelude, groups), flags)?;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    let notifying: Vec<usize> = programs
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.iter()
                .any(|i| i.code == ret_k && i.k == SECCOMP_RET_USER_NOTIF)
        })
        .map(|(i, _)| i)
        .collect();
    // The kernel allows one listener per filter tree.
    if notifying.len() > 1 {
        bail!("seccomp SCMP_ACT_NOTIFY rules do not fit in one BPF program");
    }
    Ok(CompiledSeccomp {
        programs,
        flags,
        listener_program: notifying.first().copied(),
    })
}
