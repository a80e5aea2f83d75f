//! The OCI profile → rule sets per action, compiled into a chain.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::chain::{emit, guard_program, link, order_for_install};
use super::{native, CompiledSeccomp, DEFAULT_ERRNO};

/// A resolved seccomp action with its data.  Variants are declared from the
/// most to the least restrictive; see [`Action::rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
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
    pub(super) fn rank(self) -> u8 {
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

    pub(super) fn to_seccompiler(self) -> SeccompAction {
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
    pub(super) fn ret(self) -> u32 {
        u32::from(self.to_seccompiler())
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
        LinuxSeccompAction::ScmpActNotify => {
            bail!("seccomp action SCMP_ACT_NOTIFY is not supported")
        }
    })
}

/// Convert one OCI argument comparison.  `Ok(None)` means the comparison can
/// never be true (MASKED_EQ with an expected value outside the mask).
pub(super) fn convert_arg(arg: &LinuxSeccompArg) -> Result<Option<SeccompCondition>> {
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
