//! Unit tests: conversion tables, BPF evaluated in user space, and real
//! filters enforced in forked children.

use std::str::FromStr;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};

use super::chain::*;
use super::profile::*;
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
    assert_eq!(
        convert_action(A::ScmpActNotify, None).unwrap(),
        Action::Notify
    );
    // Precedence order used by the stacking design matches the kernel's.
    let order = [
        Action::KillProcess,
        Action::KillThread,
        Action::Trap,
        Action::Errno(1),
        Action::Notify,
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
fn notify_rules_return_user_notif_from_one_listener_program() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                     {"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
    })))
    .unwrap();
    assert_eq!(evaluate(&c, "mkdir", [0; 6]), SECCOMP_RET_USER_NOTIF);
    assert_eq!(evaluate(&c, "getppid", [0; 6]), libc::SECCOMP_RET_TRAP);
    assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW);
    assert_eq!(c.listener_program, Some(0));
    // A notify default: everything not allowed goes to the agent.
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW);
    assert_eq!(evaluate(&c, "read", [0; 6]), SECCOMP_RET_USER_NOTIF);
    // Without notify rules there is no listener.
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"
    })))
    .unwrap();
    assert_eq!(c.listener_program, None);
    for (json, want) in [
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "seccomp action SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
            "seccomp action SCMP_ACT_NOTIFY cannot be used for sendmsg",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            "linux.seccomp.listenerMetadata is set without listenerPath",
        ),
    ] {
        assert_eq!(compile(&profile(json)).unwrap_err().to_string(), want);
    }
    assert!(supported_actions().contains(&"SCMP_ACT_NOTIFY"));
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
            Some(SeccompCondition::new(0, q.clone(), SeccompCmpOp::MaskedEq(0xf0), 0x30).unwrap()),
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
    assert_eq!(evaluate(&c, "read", [0; 6]), KILL_THREAD);
    // Above the highest syscall the profile names: ENOSYS (runc's stub).
    assert_eq!(evaluate(&c, "getppid", [0; 6]), errno(38));

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
        "architectures": ["SCMP_ARCH_X86_64"]
    })))
    .unwrap();
    assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW);
    // AUDIT_ARCH_I386, not listed
    assert_eq!(evaluate_arch(&c, 3 | 0x4000_0000, 20, [0; 6]), KILL_PROCESS);
    // AUDIT_ARCH_ARM: not an ABI of this kernel
    assert_eq!(
        evaluate_arch(&c, 40 | 0x4000_0000, 20, [0; 6]),
        KILL_PROCESS
    );
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
    // One program per arch group at most (x86_64 with x32, then i386);
    // one in all when the kernel has no x32.
    assert!(c.programs.len() <= 2, "{c:?}");
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
    // A number above every one the profile names: ENOSYS (runc's stub).
    assert_eq!(
        evaluate_arch(&c, native::AUDIT_ARCH, 1000, [1000; 6]),
        errno(38)
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
        // mkdirat is numbered above every syscall the profile names: newer
        // than the profile, so ENOSYS rather than the default EPERM.
        let path = c"/tmp/ozz-seccomp-test".as_ptr() as i64;
        if sys3(libc::SYS_mkdirat, libc::AT_FDCWD.into(), path, 0o700) != Err(libc::ENOSYS) {
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
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
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

// ---- runc's semantics: same-argument OR, ENOSYS stub, every listed ABI ----

#[test]
fn conditions_on_the_same_argument_are_ored_like_runc() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            // Once one index repeats, runc splits *every* condition.
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            // Distinct indexes stay ANDed.
            {"names": ["dup2"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    assert_eq!(evaluate(&c, "socket", [1, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(evaluate(&c, "socket", [2, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(evaluate(&c, "socket", [3, 0, 0, 0, 0, 0]), errno(1));
    assert_eq!(evaluate(&c, "kill", [3, 9, 0, 0, 0, 0]), ALLOW);
    assert_eq!(evaluate(&c, "kill", [2, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(evaluate(&c, "kill", [3, 0, 0, 0, 0, 0]), errno(1));
    assert_eq!(evaluate(&c, "dup2", [1, 2, 0, 0, 0, 0]), ALLOW);
    assert_eq!(evaluate(&c, "dup2", [1, 3, 0, 0, 0, 0]), errno(1));
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    let names = serde_json::json!(["read", "write", "getpid"]);
    // Default ERRNO(EPERM) and KILL: numbers above getpid (39) get ENOSYS.
    for (default, want) in [("SCMP_ACT_ERRNO", errno(1)), ("SCMP_ACT_KILL", KILL_THREAD)] {
        let c = compile(&profile(serde_json::json!({"defaultAction": default,
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]})))
        .unwrap();
        assert_eq!(evaluate(&c, "getpid", [0; 6]), ALLOW, "{default}");
        assert_eq!(evaluate(&c, "open", [0; 6]), want, "{default}");
        assert_eq!(evaluate(&c, "clone3", [0; 6]), errno(38), "{default}");
    }
    // Permissive defaults (and an ENOSYS default) get no stub.
    for json in [
        serde_json::json!({"defaultAction": "SCMP_ACT_LOG",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}),
        serde_json::json!({"defaultAction": "SCMP_ACT_TRACE",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]}),
    ] {
        let c = compile(&profile(json.clone())).unwrap();
        let got = evaluate(&c, "clone3", [0; 6]);
        assert_ne!(got, errno(38), "{json}");
    }
    // The highest name counts whatever its action.
    let c = compile(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["clone3"], "action": "SCMP_ACT_ERRNO"}]}),
    ))
    .unwrap();
    assert_eq!(evaluate(&c, "clone3", [0; 6]), errno(1));
    assert_eq!(evaluate(&c, "openat2", [0; 6]), errno(38));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn every_listed_abi_gets_the_rules() {
    const I386: u32 = 3 | 0x4000_0000;
    const X32: u32 = 0x4000_0000;
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["getpid", "execve", "exit_group", "waitpid", "vmsplice"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let x86_64 = native::AUDIT_ARCH;
    // x86_64: getpid 39, mkdir 83, personality 135, setuid 105.
    assert_eq!(evaluate_arch(&c, x86_64, 39, [0; 6]), ALLOW);
    assert_eq!(evaluate_arch(&c, x86_64, 83, [0; 6]), errno(13));
    assert_eq!(evaluate_arch(&c, x86_64, 105, [0; 6]), errno(1));
    // i386: getpid 20, mkdir 39, waitpid 7, personality 136 (32-bit args).
    assert_eq!(evaluate_arch(&c, I386, 20, [0; 6]), ALLOW);
    assert_eq!(evaluate_arch(&c, I386, 39, [0; 6]), errno(13));
    assert_eq!(evaluate_arch(&c, I386, 7, [0; 6]), ALLOW);
    assert_eq!(
        evaluate_arch(&c, I386, 136, [0xffff_ffff, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(evaluate_arch(&c, I386, 136, [8, 0, 0, 0, 0, 0]), errno(1));
    let x32_runs = native::ABIS
        .iter()
        .any(|a| a.oci == "SCMP_ARCH_X32" && (a.runs)());
    if !x32_runs {
        // No x32 in this kernel: no rules for it, its calls pass the guard
        // and get ENOSYS (the kernel would give the same).
        assert_eq!(evaluate_arch(&c, x86_64, X32 | 39, [0; 6]), errno(38));
        assert_eq!(evaluate_arch(&c, x86_64, 279, [0; 6]), errno(38));
        assert_eq!(evaluate_arch(&c, I386, 317, [0; 6]), errno(38));
        // x86_64 and i386 now fit in one program.
        assert_eq!(c.programs.len(), 1, "{c:?}");
        return;
    }
    // x32: x86_64 numbers with bit 30, its own execve (520), vmsplice (532).
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 39, [0; 6]), ALLOW);
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 83, [0; 6]), errno(13));
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 520, [0; 6]), ALLOW);
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 532, [0; 6]), ALLOW);
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 59, [0; 6]), errno(1));
    // ENOSYS above the highest number per ABI (x86_64: vmsplice 278,
    // i386: vmsplice 316, x32: 532).
    assert_eq!(evaluate_arch(&c, x86_64, 279, [0; 6]), errno(38));
    assert_eq!(evaluate_arch(&c, I386, 317, [0; 6]), errno(38));
    assert_eq!(evaluate_arch(&c, I386, 300, [0; 6]), errno(1));
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 533, [0; 6]), errno(38));
    assert_eq!(evaluate_arch(&c, x86_64, X32 | 300, [0; 6]), errno(1));
}
