//! Seccomp: the OCI seccomp object enforced inside a real container —
//! default actions, errno values, kill actions, argument conditions,
//! unknown names, SCMP_ACT_NOTIFY with a listener, every listed ABI, and a
//! realistic default profile like the ones podman and containerd send
//! (spec-tests/profiles/).

use serde_json::{json, Value};
use spec_tests::*;

/// The podman/containerd-like default profile: default SCMP_ACT_ERRNO
/// (errno 1), a long allow list, clone allowed without namespace flags,
/// clone3 → ENOSYS, personality allowed for a few values only.
fn default_like() -> Value {
    let path = workspace().join("spec-tests/profiles/default-like.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// `profile` with `names` removed from every rule.
fn without(mut profile: Value, names: &[&str]) -> Value {
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| !names.contains(&n.as_str().unwrap()));
    }
    profile
}

/// A bundle running `sh -c script` with a writable tmpfs on /tmp.
fn sh_bundle(tag: &str, script: &str) -> Bundle {
    let mut b = bundle(tag, &["sh", "-c", script]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]
    }));
    b
}

/// Runs the bundle; returns (exit code, stdout, stderr).
fn run(b: &Bundle) -> (Option<i32>, String, String) {
    let out = b.run();
    (out.status.code(), stdout(&out), stderr(&out))
}

const MKDIR: &str = "mkdir /tmp/d && echo made-dir; touch /tmp/f && echo touched";

#[test]
fn default_like_profile_runs_a_pipeline_and_refuses_unshare_and_mount() {
    let script = "grep Seccomp: /proc/self/status; \
        echo hello world | tr a-z A-Z | wc -c; \
        (unshare -m true && echo unshare-ok) || echo unshare-refused; \
        (mount -t tmpfs none /tmp && echo mount-ok) || echo mount-refused; \
        for i in 1 2 3; do echo $i; done | sort -r | head -1";
    // CAP_SYS_ADMIN is granted, so only seccomp can refuse unshare and mount:
    // the control run without the profile shows both succeed.
    let mut control = sh_bundle("sc-ctl", script);
    control.add_caps(&["CAP_SYS_ADMIN"]);
    let (code, out, err) = run(&control);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("unshare-ok") && out.contains("mount-ok"),
        "{out}{err}"
    );
    assert_eq!(status_field(&out, "Seccomp").as_deref(), Some("0"), "{out}");

    let mut b = sh_bundle("sc-default", script);
    b.add_caps(&["CAP_SYS_ADMIN"]);
    b.config["linux"]["seccomp"] = default_like();
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(status_field(&out, "Seccomp").as_deref(), Some("2"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..],
        ["12", "unshare-refused", "mount-refused", "3"],
        "{out}{err}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn allow_list_without_mkdir_fails_mkdir_with_eperm() {
    let mut b = sh_bundle("sc-eperm", MKDIR);
    b.config["linux"]["seccomp"] = without(default_like(), &["mkdir", "mkdirat"]);
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "touched\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn default_errno_ret_is_the_errno_of_the_default_action() {
    let mut b = sh_bundle("sc-deferrno", MKDIR);
    let mut profile = without(default_like(), &["mkdir", "mkdirat"]);
    profile["defaultErrnoRet"] = json!(13); // EACCES
    b.config["linux"]["seccomp"] = profile;
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "touched\n", "{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn errno_ret_of_one_rule() {
    let mut b = sh_bundle("sc-errnoret", MKDIR);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]
    });
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "touched\n", "{err}");
    assert!(err.contains("No space left on device"), "{err}"); // ENOSPC
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let mut b = sh_bundle("sc-kill", "");
        b.config["process"]["args"] = json!(["mkdir", "/tmp/d"]);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]
        });
        let (code, out, err) = run(&b);
        assert_eq!(code, Some(128 + 31), "{action}: {out}{err}");
    }
    // The same container without the rule makes its directory and exits 0.
    let mut b = sh_bundle("sc-kill-ctl", "");
    b.config["process"]["args"] = json!(["mkdir", "/tmp/d"]);
    assert_eq!(run(&b).0, Some(0));
}

#[test]
fn personality_is_allowed_only_for_listed_values() {
    let script = "uname -m; linux32 uname -m";
    // The default-like profile allows PER_LINUX32 (8): linux32 works.
    let mut b = sh_bundle("sc-pers", script);
    b.config["linux"]["seccomp"] = default_like();
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "x86_64\ni686\n", "{err}");

    // Without the rule for 8, personality(PER_LINUX32) is refused while
    // the other values still pass.
    let mut profile = default_like();
    profile["syscalls"]
        .as_array_mut()
        .unwrap()
        .retain(|r| !(r["names"] == json!(["personality"]) && r["args"][0]["value"] == json!(8)));
    let mut b = sh_bundle("sc-pers-deny", script);
    b.config["linux"]["seccomp"] = profile;
    let (code, out, err) = run(&b);
    assert_ne!(code, Some(0), "{out}{err}");
    assert_eq!(out, "x86_64\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn socket_family_conditions() {
    // AF_INET (2) refused, everything else (AF_NETLINK for `ip`) allowed.
    let script = "ip link show lo; nc 127.0.0.1 1";
    let mut b = sh_bundle("sc-socket", script);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]
    });
    let (code, out, err) = run(&b);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(out.contains("lo:"), "netlink socket refused: {out}{err}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // Control: without the rule nc gets past socket() and fails to connect.
    let b = sh_bundle("sc-socket-ctl", script);
    let (_, out, err) = run(&b);
    assert!(out.contains("lo:"), "{out}{err}");
    assert!(!err.contains("Operation not permitted"), "{err}");
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let mut b = sh_bundle("sc-unknown", MKDIR);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["no_such_syscall_ozz", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["another_unknown_one"], "action": "SCMP_ACT_KILL"}
        ]
    });
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "touched\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

fn assert_refused_cleanly(b: &Bundle, want: &str) {
    let out = b.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(want), "{err}");
    assert!(!state_root().join(&b.id).exists(), "state dir left");
    for ctrl in ["memory", "pids", "devices", ""] {
        assert!(
            !b.cgroup_dir(ctrl).join("cgroup.procs").exists(),
            "cgroup {ctrl} left"
        );
    }
}

/// runc 1.1.5 refuses both too, but not in one line.
#[test]
fn notify_without_a_reachable_listener_is_refused_with_a_clear_error() {
    let mut b = bundle("sc-notify", &["true"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/nonexistent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    assert_refused_cleanly(&b, "seccomp listener /run/nonexistent.sock");
    let mut b = bundle("sc-notify-def", &["true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"});
    assert_refused_cleanly(&b, "listenerPath");
}

#[test]
fn unknown_action_is_refused() {
    let mut b = bundle("sc-badact", &["true"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]
    });
    assert_refused_cleanly(&b, "SCMP_ACT_BOGUS");
}

#[test]
fn trap_log_and_trace_actions() {
    // TRAP: SIGSYS is delivered; busybox has no handler, so it dies of it.
    let mut b = sh_bundle("sc-trap", "");
    b.config["process"]["args"] = json!(["mkdir", "/tmp/d"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(128 + 31), "{out}{err}");

    // LOG: the call is allowed (and logged by the kernel).
    let mut b = sh_bundle("sc-log", MKDIR);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "made-dir\ntouched\n", "{err}");

    // TRACE without a tracer: the kernel fails the call with ENOSYS.
    let mut b = sh_bundle("sc-trace", MKDIR);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 1}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "touched\n", "{err}");
    assert!(err.contains("Function not implemented"), "{err}");
}

#[test]
fn every_argument_operator_compares_as_documented() {
    // linux32 calls personality(PER_LINUX32 = 8); the rule refuses it when
    // `8 <op> value` holds.
    let cases = [
        ("SCMP_CMP_EQ", 8, 0, true),
        ("SCMP_CMP_EQ", 9, 0, false),
        ("SCMP_CMP_NE", 8, 0, false),
        ("SCMP_CMP_NE", 9, 0, true),
        ("SCMP_CMP_LT", 9, 0, true),
        ("SCMP_CMP_LT", 8, 0, false),
        ("SCMP_CMP_LE", 8, 0, true),
        ("SCMP_CMP_LE", 7, 0, false),
        ("SCMP_CMP_GT", 7, 0, true),
        ("SCMP_CMP_GT", 8, 0, false),
        ("SCMP_CMP_GE", 8, 0, true),
        ("SCMP_CMP_GE", 9, 0, false),
        // (8 & mask) == valueTwo
        ("SCMP_CMP_MASKED_EQ", 0xc, 8, true),
        ("SCMP_CMP_MASKED_EQ", 0x4, 4, false),
    ];
    for (op, value, value_two, denied) in cases {
        let mut b = sh_bundle("sc-op", "linux32 uname -m");
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]}]});
        let (code, out, err) = run(&b);
        let what = format!("8 {op} {value}/{value_two}");
        if denied {
            assert_ne!(code, Some(0), "{what}: {out}{err}");
            assert!(err.contains("Operation not permitted"), "{what}: {err}");
        } else {
            assert_eq!(code, Some(0), "{what}: {out}{err}");
            assert_eq!(out, "i686\n", "{what}: {err}");
        }
    }
}

#[test]
fn exec_runs_under_the_containers_filter() {
    let mut b = sh_bundle("sc-exec", "");
    b.config["process"]["args"] = json!(["sleep", "100"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    b.create_and_start();
    let out = ozz(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/d && echo made-dir; touch /tmp/f && echo touched",
    ]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        status_field(&text, "Seccomp").as_deref(),
        Some("2"),
        "{text}{err}"
    );
    assert!(!text.contains("made-dir"), "{text}");
    assert!(text.contains("touched"), "{text}{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn filter_loads_for_an_unprivileged_user_without_no_new_privs() {
    // Without no_new_privs the filter must be loaded while the init still
    // has CAP_SYS_ADMIN, before it becomes uid 1000 with no capabilities.
    let mut b = sh_bundle(
        "sc-nonnp",
        "grep -E '^(Seccomp|NoNewPrivs|Uid|CapEff):' /proc/self/status; \
         mkdir /tmp/d && echo made-dir; touch /tmp/f && echo touched",
    );
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(status_field(&out, "Seccomp").as_deref(), Some("2"), "{out}");
    assert_eq!(
        status_field(&out, "NoNewPrivs").as_deref(),
        Some("0"),
        "{out}"
    );
    assert!(
        status_field(&out, "Uid").unwrap().starts_with("1000"),
        "{out}"
    );
    assert_eq!(
        status_field(&out, "CapEff").as_deref(),
        Some("0000000000000000"),
        "{out}"
    );
    assert!(
        !out.contains("made-dir") && out.contains("touched"),
        "{out}{err}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn filter_flags_are_accepted_or_refused_clearly() {
    for flag in [
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ] {
        let mut b = sh_bundle("sc-flag", MKDIR);
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
        let (code, out, err) = run(&b);
        assert_eq!(code, Some(0), "{flag}: {out}{err}");
        assert_eq!(out, "touched\n", "{flag}: {err}");
    }
    let mut b = bundle("sc-flag-bad", &["true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_NO_SUCH_FLAG"]});
    assert_refused_cleanly(&b, "SECCOMP_FILTER_FLAG_NO_SUCH_FLAG");
}

/// Builds a static x86_64 program that calls mkdir through the i386 ABI
/// (`int 0x80`); None when there is no C compiler or not on x86_64.
fn i386_mkdir_probe(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let src = dir.join("probe.c");
    let bin = dir.join("i386probe");
    std::fs::write(
        &src,
        r#"int main(void) {
    static const char path[] = "/tmp/i386dir";
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(39), "b"(path), "c"(0755) : "memory");
    return ret < 0 ? 2 : 0;
}
"#,
    )
    .ok()?;
    let ok = std::process::Command::new("cc")
        .args(["-static", "-no-pie", "-O0", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then_some(bin)
}

/// Syscalls through another ABI must not bypass the rules written for the
/// native one: an ABI the profile lists gets the same rules (with its own
/// numbers), one it does not list is killed.
#[test]
fn foreign_abi_syscalls_do_not_bypass_the_filter() {
    // A bundle only for its scratch directory (removed with it).
    let probe_dir = bundle("sc-i386-probe", &["true"]);
    let Some(probe) = i386_mkdir_probe(&probe_dir.dir) else {
        println!("SKIP: no C compiler (cc) or not x86_64 to build the int 0x80 probe");
        return;
    };
    let with_probe = |tag: &str| {
        let mut b = sh_bundle(tag, "");
        b.config["process"]["args"] = json!(["/i386probe"]);
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/i386probe", "type": "bind",
            "source": probe.to_str().unwrap(), "options": ["bind", "ro"]
        }));
        b
    };
    // Control: without a filter the i386 mkdir works (needs IA32 emulation).
    let control = with_probe("sc-i386-ctl");
    let (code, out, err) = run(&control);
    if code != Some(0) {
        println!("SKIP: the kernel runs no i386 syscalls here ({code:?}: {out}{err})");
        return;
    }
    // Listed: the mkdir rule applies to i386's mkdir too (errno → exit 2).
    let mut b = with_probe("sc-i386");
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(2), "i386 mkdir: {out}{err}");
    // Not listed: killed (SIGSYS).
    let mut b = with_probe("sc-i386-unlisted");
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(128 + 31), "unlisted i386 ABI: {out}{err}");
}

/// A real 32-bit (i386) static program, freestanding so that no 32-bit C
/// library is needed: mkdir /tmp/i386dir, print "i386-ok", exit 0 (2 when
/// mkdir failed).  None when the compiler cannot target i386.
fn i386_program(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let src = dir.join("prog32.c");
    let bin = dir.join("prog32");
    std::fs::write(
        &src,
        r#"static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
void _start(void) {
    static const char msg[] = "i386-ok\n";
    long r = sys3(39, (long)"/tmp/i386dir", 0755, 0);
    sys3(4, 1, (long)msg, sizeof msg - 1);
    sys3(1, r < 0 ? 2 : 0, 0, 0);
    for (;;) {}
}
"#,
    )
    .ok()?;
    let ok = std::process::Command::new("cc")
        .args(["-m32", "-static", "-nostdlib", "-ffreestanding", "-fno-pic"])
        .args(["-fno-stack-protector", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then_some(bin)
}

/// podman's and Docker's default profiles list x86_64, x86 and x32: a 32-bit
/// program must run under them, its calls filtered by the i386 numbers.
/// runc 1.1.5: passes.
#[test]
fn a_32_bit_program_runs_under_a_default_like_profile() {
    let scratch = bundle("sc-prog32", &["true"]);
    let Some(prog) = i386_program(&scratch.dir) else {
        println!("SKIP: cc cannot build an i386 program here (cc -m32) or not x86_64");
        return;
    };
    let with_prog = |tag: &str| {
        let mut b = sh_bundle(tag, "");
        b.config["process"]["args"] = json!(["/prog32"]);
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/prog32", "type": "bind",
            "source": prog.to_str().unwrap(), "options": ["bind", "ro"]
        }));
        b
    };
    let (code, out, err) = run(&with_prog("sc-prog32-ctl"));
    if code != Some(0) {
        println!("SKIP: the kernel runs no i386 programs here ({code:?}: {out}{err})");
        return;
    }
    let mut b = with_prog("sc-prog32");
    b.config["linux"]["seccomp"] = default_like();
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "i386-ok\n", "{err}");
    // The same profile without mkdir: the i386 mkdir gets the default EPERM.
    let mut b = with_prog("sc-prog32-nomkdir");
    b.config["linux"]["seccomp"] = without(default_like(), &["mkdir"]);
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(2), "{out}{err}");
    assert_eq!(out, "i386-ok\n", "{err}");
}

/// runc splits a rule whose conditions test the same argument twice into
/// one rule per condition (ORed): socket(AF_INET) or socket(AF_INET6) is
/// refused, AF_NETLINK passes.  ANDed, the rule could never match.
/// runc 1.1.5: passes.
#[test]
fn conditions_on_the_same_argument_are_ored() {
    let script = "ip link show lo >/dev/null && echo netlink-ok; \
        nc 127.0.0.1 1 </dev/null; nc ::1 1 </dev/null";
    let mut b = sh_bundle("sc-same-arg", script);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                     {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}]});
    let (_, out, err) = run(&b);
    assert_eq!(out, "netlink-ok\n", "{err}");
    assert_eq!(err.matches("Operation not permitted").count(), 2, "{err}");
}

/// A syscall newer than the profile (numbered above every one it names)
/// gets ENOSYS, not the default EPERM, so that libc can fall back.
/// runc 1.1.5 fails: it cannot run this profile at all ("close log pipe fd
/// 4: operation not permitted": runc's own code runs after its filter).
#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    if !cfg!(target_arch = "x86_64") {
        println!("SKIP: the syscall numbers below are x86_64's");
        return;
    }
    // The highest call listed is set_tid_address (218); unshare (272) is
    // "newer" and must fail with ENOSYS.  (glibc's start-up calls above 218,
    // rseq, getrandom, prlimit64, set_robust_list, take ENOSYS in stride.)
    let names = [
        "execve",
        "arch_prctl",
        "brk",
        "mprotect",
        "getuid",
        "prctl",
        "readlink",
        "set_tid_address",
        "exit",
        "exit_group",
        "write",
    ];
    let mut b = bundle("sc-enosys", &["/bin/unshare", "-m", "/bin/true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
    let (code, out, err) = run(&b);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("Function not implemented"), "{out}{err}");
    // A call below the highest one listed still gets the default (EPERM):
    // adding rseq (334) to the list makes unshare an "old" call.
    let mut names = names.to_vec();
    names.push("rseq");
    let mut b = bundle("sc-enosys-old", &["/bin/unshare", "-m", "/bin/true"]);
    b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
    let (code, out, err) = run(&b);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("Operation not permitted"), "{out}{err}");
}

/// What a static busybox needs to start and exit (strace of `busybox true`),
/// plus `extra`: an allow-list profile that denies everything else, the
/// runtime's own system calls included.
fn allow_only(extra: &[&str]) -> Value {
    let mut names = vec![
        "execve",
        "arch_prctl",
        "brk",
        "mprotect",
        "getrandom",
        "getuid",
        "prctl",
        "prlimit64",
        "readlink",
        "rseq",
        "set_robust_list",
        "set_tid_address",
        "exit",
        "exit_group",
    ];
    names.extend_from_slice(extra);
    json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]})
}

/// Nothing runs after the filter but execve: a profile that allows only
/// what the workload needs starts it. `true` is not even allowed write(2),
/// so the exec.fifo "0" must be written before the filter too.
fn allow_list_runs_the_workload(nnp: bool) {
    let mut b = bundle("sc-allow-true", &["/bin/true"]);
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["linux"]["seccomp"] = allow_only(&[]);
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "nnp {nnp}: {out}{err}");

    let mut b = bundle("sc-allow-echo", &["/bin/echo", "only-echo"]);
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["linux"]["seccomp"] = allow_only(&["write"]);
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "nnp {nnp} uid 1000: {out}{err}");
    assert_eq!(out, "only-echo\n", "nnp {nnp}: {err}");
}

/// runc 1.1.5 fails ("container process is already dead"): without
/// no_new_privs it loads the filter before its own set-up is done, and its
/// Go runtime makes system calls (futex, sigaltstack, …) after the filter.
#[test]
fn allow_list_profile_runs_the_workload_without_no_new_privs() {
    allow_list_runs_the_workload(false);
}

/// runc 1.1.5 fails too ("container process is already dead"): its Go
/// runtime runs between the filter and execve. Fails on the baseline ozz,
/// which wrote the exec.fifo "0" after loading the filter.
#[test]
fn allow_list_profile_runs_the_workload_with_no_new_privs() {
    allow_list_runs_the_workload(true);
}

/// The same for `exec` into a container whose init runs under the profile.
fn allow_list_runs_exec(nnp: bool) {
    let mut b = bundle("sc-allow-exec", &["/bin/sleep", "100"]);
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["linux"]["seccomp"] =
        allow_only(&["write", "nanosleep", "clock_nanosleep", "rt_sigaction"]);
    b.create_and_start();
    let out = ozz(&["exec", &b.id, "/bin/echo", "exec-echo"]);
    assert!(
        out.status.success(),
        "nnp {nnp}: {:?} {}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "exec-echo\n", "nnp {nnp}: {}", stderr(&out));
}

/// runc 1.1.5 fails (its init dies under the profile, so `create` fails).
#[test]
fn allow_list_profile_runs_exec_without_no_new_privs() {
    allow_list_runs_exec(false);
}

/// runc 1.1.5 fails (its init dies under the profile). The baseline ozz
/// passed this one: with no_new_privs it already loaded the filter late.
#[test]
fn allow_list_profile_runs_exec_with_no_new_privs() {
    allow_list_runs_exec(true);
}

/// Without no_new_privs ozz keeps CAP_SYS_ADMIN until the filter is loaded,
/// right before execve; execve must then drop it when the config did not
/// grant it: for uid 0 the new permitted set is the (trimmed) bounding set,
/// for another uid the ambient set (capabilities(7)).
#[test]
fn sys_admin_held_for_the_filter_is_gone_after_exec() {
    for uid in [0, 1000] {
        let mut b = sh_bundle(
            "sc-caps",
            "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status",
        );
        b.config["process"]["noNewPrivileges"] = json!(false);
        b.config["process"]["user"] = json!({"uid": uid, "gid": uid});
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]});
        let granted = b.config["process"]["capabilities"]["bounding"].clone();
        let granted: Vec<&str> = granted
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!granted.contains(&"CAP_SYS_ADMIN"), "{granted:?}");
        let (code, out, err) = run(&b);
        assert_eq!(code, Some(0), "uid {uid}: {out}{err}");
        let sys_admin = 1u64 << cap_bit("CAP_SYS_ADMIN");
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let mask = u64::from_str_radix(&status_field(&out, key).unwrap(), 16).unwrap();
            assert_eq!(mask & sys_admin, 0, "uid {uid} {key}: {out}");
        }
        let want = if uid == 0 {
            cap_mask(&granted)
        } else {
            "0".repeat(16)
        };
        assert_eq!(status_field(&out, "CapPrm"), Some(want), "uid {uid}: {out}");
    }
}

// struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes), and
// their ioctls: _IOWR('!', 0/1, ...).
#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}
#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;

/// What the listener got: the message and what it answered.
struct Agent {
    message: Value,
    /// /proc/PID/status of the process named in the message, read while
    /// its mkdir waited for our answer.
    status: String,
    syscalls: Vec<i64>,
    /// The sockets that process held while its mkdir waited: the agent's
    /// connection must not survive execve into the container's program.
    sockets: Vec<String>,
}

/// A seccomp agent: accepts connections on `path`, one state and notify fd
/// (SCM_RIGHTS) each; the first `skip` are kept unanswered, the next one
/// gets two answers: the first notification "succeeds" without doing
/// anything, the second fails with EROFS.
fn seccomp_agent(path: &std::path::Path, skip: usize) -> std::sync::mpsc::Receiver<Agent> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for _ in 0..skip {
            kept.push(listener.accept().unwrap().0);
        }
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut notify_fd = -1;
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                notify_fd = fds[0];
            }
        }
        let len = msg.bytes;
        let message: Value = serde_json::from_slice(&buf[..len]).unwrap();
        let pid = message["pid"].as_i64().unwrap();
        let mut status = String::new();
        let mut syscalls = Vec::new();
        let mut sockets = Vec::new();
        for answer in [0, -libc::EROFS] {
            let mut req = SeccompNotif::default();
            // SAFETY: req is a zeroed seccomp_notif of the kernel's size.
            let rc = unsafe { libc::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
            assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
            if status.is_empty() {
                status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
                    let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with("socket:") {
                        sockets.push(target);
                    }
                }
            }
            syscalls.push(i64::from(req.nr));
            let resp = SeccompNotifResp {
                id: req.id,
                val: 0,
                error: answer,
                flags: 0,
            };
            // SAFETY: resp is a valid seccomp_notif_resp.
            let rc = unsafe { libc::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND as _, &resp) };
            assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the fd came from SCM_RIGHTS and is ours.
        unsafe { libc::close(notify_fd) };
        let _ = tx.send(Agent {
            message,
            status,
            syscalls,
            sockets,
        });
    });
    rx
}

/// SCMP_ACT_NOTIFY with listenerPath: the agent gets the container process
/// state (right id and pid, listenerMetadata) with a working notify fd, and
/// its answers are what the container's mkdir returns. runc 1.1.5: passes.
#[test]
fn notify_hands_the_fd_and_state_to_the_listener() {
    let mut b = sh_bundle(
        "sc-notify-agent",
        "mkdir /tmp/a && echo made-a; [ -d /tmp/a ] || echo no-a; mkdir /tmp/b || echo failed-b",
    );
    let socket = b.dir.join("agent.sock");
    let agent = seccomp_agent(&socket, 0);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket.to_str().unwrap(),
        "listenerMetadata": "agent-meta",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let (code, out, err) = run(&b);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "made-a\nno-a\nfailed-b\n", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let got = agent
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the agent got no connection");
    let m = &got.message;
    assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
    assert_eq!(m["metadata"], json!("agent-meta"), "{m}");
    assert_eq!(m["state"]["id"], json!(b.id), "{m}");
    assert_eq!(m["pid"], m["state"]["pid"], "{m}");
    assert!(m["ociVersion"].is_string(), "{m}");
    // The pid was the container's process: it was waiting in the container
    // (its NSpid has two levels) and ran under seccomp.
    assert_eq!(
        status_field(&got.status, "Seccomp").as_deref(),
        Some("2"),
        "{}",
        got.status
    );
    let nspid = status_field(&got.status, "NSpid").unwrap_or_default();
    assert_eq!(nspid.split_whitespace().count(), 2, "{}", got.status);
    let mkdir = [libc::SYS_mkdir, libc::SYS_mkdirat];
    assert!(
        got.syscalls.iter().all(|nr| mkdir.contains(nr)),
        "{:?}",
        got.syscalls
    );
    assert_eq!(
        got.sockets,
        Vec::<String>::new(),
        "a socket outlived execve"
    );
}

/// `exec` into a container with a notify profile: as runc 1.1.5 does, the
/// agent gets a connection for the exec process with its notify fd, the
/// container's state ("running", the init's pid) and the exec process's
/// own pid as the runtime sees it (the one --pid-file gets); its answers
/// are what the exec'd program's mkdir returns, and the program holds no
/// socket. runc 1.1.5: passes. Fails on the baseline (which refuses NOTIFY
/// at create) and before this change (exec was refused).
#[test]
fn exec_hands_its_notify_fd_and_state_to_the_listener() {
    let mut b = sh_bundle("sc-notify-exec", "");
    b.config["process"]["args"] = json!(["sleep", "100"]);
    let socket = b.dir.join("agent.sock");
    // The first connection is the init's (it never calls mkdir).
    let agent = seccomp_agent(&socket, 1);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket.to_str().unwrap(),
        "listenerMetadata": "exec-meta",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.create_and_start();
    let init_pid = b.state()["pid"].as_i64().unwrap();
    let pid_file = b.dir.join("exec.pid");
    let out = ozz(&[
        "exec",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "sh",
        "-c",
        "mkdir /tmp/a && echo made-a; [ -d /tmp/a ] || echo no-a; mkdir /tmp/b || echo failed-b",
    ]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}{err}");
    assert_eq!(text, "made-a\nno-a\nfailed-b\n", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let got = agent
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the agent got no connection for the exec process");
    let m = &got.message;
    let exec_pid: i64 = read_trimmed(&pid_file).parse().unwrap();
    assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
    assert_eq!(m["metadata"], json!("exec-meta"), "{m}");
    assert_eq!(m["state"]["id"], json!(b.id), "{m}");
    assert_eq!(m["state"]["status"], json!("running"), "{m}");
    assert_eq!(m["state"]["pid"], json!(init_pid), "{m}");
    assert_eq!(m["pid"], json!(exec_pid), "{m}");
    assert_ne!(exec_pid, init_pid);
    // That pid was the exec process, waiting in the container's pid
    // namespace (two levels, not its init) under seccomp.
    assert_eq!(
        status_field(&got.status, "Seccomp").as_deref(),
        Some("2"),
        "{}",
        got.status
    );
    let nspid = status_field(&got.status, "NSpid").unwrap_or_default();
    let levels: Vec<&str> = nspid.split_whitespace().collect();
    assert_eq!(levels.len(), 2, "{}", got.status);
    assert_eq!(levels[0], exec_pid.to_string(), "{}", got.status);
    assert_ne!(levels[1], "1", "{}", got.status);
    let mkdir = [libc::SYS_mkdir, libc::SYS_mkdirat];
    assert!(
        got.syscalls.iter().all(|nr| mkdir.contains(nr)),
        "{:?}",
        got.syscalls
    );
    assert_eq!(
        got.sockets,
        Vec::<String>::new(),
        "a socket outlived execve"
    );
    assert_eq!(b.status(), "running");
}

/// `exec` when the agent's socket is gone: one line naming the listener,
/// nothing started in the container, which keeps running. runc 1.1.5:
/// passes (exit 255).
#[test]
fn exec_with_the_listener_gone_is_refused_in_one_line() {
    let mut b = sh_bundle("sc-notify-gone", "");
    b.config["process"]["args"] = json!(["sleep", "100"]);
    let socket = b.dir.join("agent.sock");
    let _agent = seccomp_agent(&socket, 1);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket.to_str().unwrap(),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.create_and_start();
    std::fs::remove_file(&socket).unwrap();
    let out = ozz(&["exec", &b.id, "sh", "-c", "echo ran"]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}{err}");
    assert_eq!(text, "", "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(socket.to_str().unwrap()), "{err}");
    assert_eq!(b.status(), "running");
    let procs = std::fs::read_to_string(b.cgroup_dir("pids").join("cgroup.procs")).unwrap();
    assert_eq!(procs.lines().count(), 1, "{procs}");
}
