//! The process object of config.json: every attribute is read back from the
//! live container process (/proc/self/*, id, umask, ...) and compared with
//! what the config asked for.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use spec_tests::*;

/// `ozz run` of the bundle (written first), for a test to set up how ozz
/// itself is started.
fn run_command(b: &Bundle) -> Command {
    b.write();
    let mut cmd = Command::new(ozz_bin());
    cmd.arg("--root")
        .arg(state_root())
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(Stdio::null());
    cmd
}

/// `ozz run` with a chosen environment for ozz itself (to show none of it
/// leaks into the container).
fn run_with_host_env(b: &Bundle, vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = run_command(b);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run ozz")
}

/// The caller's ignored and blocked signals stay out of the container: run
/// from under nohup (SIGHUP ignored), a shell's background job (SIGINT,
/// SIGQUIT) and a parent that blocked signals, the init still starts with
/// every signal at its default and none blocked. (An ignored SIGHUP made a
/// busybox init's `trap ... HUP` void: docker's `kill -s HUP` was lost.)
#[test]
fn the_callers_ignored_and_blocked_signals_do_not_reach_the_container() {
    use std::os::unix::process::CommandExt;
    let b = bundle("sig-inherit", &["cat", "/proc/self/status"]);
    let mut cmd = run_command(&b);
    // SAFETY: between fork and exec only signal() and sigprocmask(), which
    // are async-signal-safe, on a set of our own.
    unsafe {
        cmd.pre_exec(|| {
            for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1] {
                libc::signal(signal, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = cmd.output().expect("run ozz");
    assert!(out.status.success(), "ozz run: {}", stderr(&out));
    let status = stdout(&out);
    // The standard signals, 1 to 31: glibc keeps 32 and 33 for itself
    // (signal() refuses them), and whatever the harness left there runc
    // leaves too.
    let standard = |name: &str| {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in {status}"));
        u64::from_str_radix(hex, 16).unwrap() & 0x7fff_ffff
    };
    assert_eq!(standard("SigIgn:"), 0, "ignored in the container");
    assert_eq!(standard("SigBlk:"), 0, "blocked in the container");
}

#[test]
fn args_with_spaces_quotes_and_empty_strings_arrive_intact() {
    let b = bundle(
        "args",
        &[
            "sh",
            "-c",
            "for a in \"$@\"; do printf '<%s>' \"$a\"; done",
            "sh",
            "a b",
            "it's",
            "\"dq\"",
            "",
            "$HOME",
            "x\ty",
        ],
    );
    assert_eq!(b.run_ok(), "<a b><it's><\"dq\"><><$HOME><x\ty>");
}

#[test]
fn env_is_exactly_the_configs_plus_home() {
    let mut b = bundle("env", &["env"]);
    let given = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b"];
    b.config["process"]["env"] = json!(given);
    let out = run_with_host_env(&b, &[("OZZ_LEAK_MARKER", "host-only")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    seen.sort();
    let mut want: Vec<String> = given.iter().map(|s| s.to_string()).collect();
    want.push("HOME=/root".to_string()); // uid 0's home from the rootfs's /etc/passwd
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn env_home_given_is_kept_and_nonroot_home_comes_from_passwd() {
    let mut b = bundle("env-home", &["env"]);
    b.config["process"]["env"] = json!(["PATH=/bin", "HOME=/custom"]);
    let out = b.run_ok();
    assert_eq!(out.lines().filter(|l| l.starts_with("HOME=")).count(), 1);
    assert!(out.lines().any(|l| l == "HOME=/custom"), "{out}");

    let mut b = bundle("env-home-user", &["env"]);
    b.config["process"]["env"] = json!(["PATH=/bin"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = b.run_ok();
    assert!(out.lines().any(|l| l == "HOME=/home/user"), "{out}");
}

#[test]
fn cwd_is_where_the_process_starts() {
    let mut b = bundle("cwd", &["sh", "-c", "pwd; readlink /proc/self/cwd"]);
    b.config["process"]["cwd"] = json!("/var/tmp");
    assert_eq!(b.run_ok(), "/var/tmp\n/var/tmp\n");
}

/// A program the kernel refuses (an executable file that is neither ELF
/// nor a script: ENOEXEC) fails `run` at start, in one line naming the
/// program and the kernel's reason, with or without ozz's exec stub (the
/// stub reports its execve's errno through exec.fifo), and leaves no
/// container behind.
#[test]
fn a_program_the_kernel_cannot_execute_fails_run_with_its_reason() {
    let host = HostDir::new("enoexec");
    let bad = host.path.join("bad");
    std::fs::write(&bad, b"\x00\x01 not a program\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut b = bundle("enoexec", &["/tmp/bad"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "bind", "source": host.path, "options": ["rbind", "ro"]
    }));
    // A non-root user too: the stub runs under the process's own identity.
    for user in [
        json!({"uid": 0, "gid": 0}),
        json!({"uid": 1000, "gid": 1000}),
    ] {
        b.config["process"]["user"] = user.clone();
        let out = b.run();
        let err = stderr(&out);
        assert!(!out.status.success(), "{user}: {err}");
        assert!(
            err.contains("/tmp/bad") && err.to_lowercase().contains("exec format error"),
            "{user}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{user}: {err}");
        assert!(!b.cmd("state", &[]).status.success(), "{user}: left behind");
    }
}

/// A cwd that cannot be made (a file is in the way) fails `create`.
#[test]
fn cwd_that_cannot_be_made_fails_clearly_and_leaves_nothing_behind() {
    let mut b = bundle("cwd-missing", &["true"]);
    b.config["process"]["cwd"] = json!("/etc/passwd/no/such/dir");
    let out = b.create(&[]);
    assert!(
        !out.status.success(),
        "create with an impossible cwd succeeded"
    );
    let err = stderr(&out);
    assert!(
        err.contains("/etc/passwd/no/such/dir") && err.contains("cwd"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !state_root().join(&b.id).exists(),
        "state directory left behind"
    );
    for ctrl in ["memory", "pids", "cpu", "freezer", ""] {
        let dir = b.cgroup_dir(ctrl);
        assert!(
            ctrl.is_empty() && !dir.join("cgroup.procs").exists()
                || !ctrl.is_empty() && !dir.exists(),
            "cgroup {dir:?} left behind"
        );
    }
    // And ozz does not know the container.
    let out = b.cmd("state", &[]);
    assert!(!out.status.success());
}

#[test]
fn user_groups_and_umask() {
    let mut b = bundle(
        "user",
        &[
            "sh",
            "-c",
            "id -u; id -g; grep Groups /proc/self/status; umask; touch /tmp/f; stat -c %a /tmp/f",
        ],
    );
    b.config["process"]["user"] = json!({
        "uid": 1000, "gid": 1000, "additionalGids": [5, 1, 4242], "umask": 0o027
    });
    // /tmp of the shared rootfs is read-only to us: give the container its own.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}));
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let mut groups: Vec<u32> = lines[2]
        .trim_start_matches("Groups:")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, vec![1, 5, 4242], "{out}");
    assert_eq!(lines[3], "0027");
    assert_eq!(lines[4], "640"); // 0666 & ~027
}

fn limits_line<'a>(limits: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} missing in {limits}"));
    let mut fields = line[name.len()..].split_whitespace();
    (fields.next().unwrap(), fields.next().unwrap())
}

#[test]
fn rlimits_are_applied_soft_and_hard() {
    let mut b = bundle("rlimits", &["cat", "/proc/self/limits"]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_NPROC", "soft": 777, "hard": 888},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]);
    let out = b.run_ok();
    assert_eq!(limits_line(&out, "Max open files"), ("123", "456"), "{out}");
    assert_eq!(limits_line(&out, "Max processes"), ("777", "888"), "{out}");
    assert_eq!(
        limits_line(&out, "Max core file size"),
        ("0", "4096"),
        "{out}"
    );
}

#[test]
fn rlimit_above_the_hosts_hard_limit_fails_clearly() {
    // Raising a hard limit needs CAP_SYS_RESOURCE, which this host's root
    // may lack; either way the result must be exact or a clear error.
    let host: Vec<String> = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let host = host.join("\n");
    let (_, hard) = limits_line(&host, "Max open files");
    let hard: u64 = hard.parse().unwrap();
    let mut b = bundle("rlimit-raise", &["cat", "/proc/self/limits"]);
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    let out = b.run();
    if out.status.success() {
        let want = (hard + 1).to_string();
        assert_eq!(
            limits_line(&stdout(&out), "Max open files"),
            (want.as_str(), want.as_str())
        );
    } else {
        assert!(
            stderr(&out).contains("setrlimit RLIMIT_NOFILE"),
            "{}",
            stderr(&out)
        );
        assert!(!state_root().join(&b.id).exists());
    }
}

fn caps_of(out: &str) -> [String; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(|k| status_field(out, k).unwrap_or_else(|| panic!("{k} missing in {out}")))
}

#[test]
fn capabilities_of_root_process() {
    let mut b = bundle("caps-root", &["cat", "/proc/self/status"]);
    let full = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    ];
    b.config["process"]["capabilities"] = json!({
        "bounding": full, "effective": full, "permitted": full,
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    });
    let out = b.run_ok();
    let [inh, prm, eff, bnd, amb] = caps_of(&out);
    assert_eq!(inh, cap_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]));
    assert_eq!(prm, cap_mask(&full));
    assert_eq!(eff, cap_mask(&full));
    assert_eq!(bnd, cap_mask(&full));
    assert_eq!(amb, cap_mask(&["CAP_NET_BIND_SERVICE"]));
}

#[test]
fn nonroot_user_keeps_an_ambient_capability() {
    let mut b = bundle("caps-user", &["cat", "/proc/self/status"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let one = ["CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": one, "permitted": one, "inheritable": one, "ambient": one,
    });
    let out = b.run_ok();
    let [inh, prm, eff, bnd, amb] = caps_of(&out);
    assert_eq!(bnd, cap_mask(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]));
    // After execve a non-root process without file caps holds exactly its
    // ambient set in permitted and effective.
    for (name, got) in [("inh", inh), ("prm", prm), ("eff", eff), ("amb", amb)] {
        assert_eq!(got, cap_mask(&one), "{name}: {out}");
    }
    assert_eq!(
        status_field(&out, "Uid").unwrap().split_whitespace().next(),
        Some("1000")
    );
}

#[test]
fn nonroot_user_without_ambient_has_no_effective_capabilities() {
    let mut b = bundle("caps-user-none", &["cat", "/proc/self/status"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let set = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": [],
    });
    let out = b.run_ok();
    let [inh, prm, eff, bnd, amb] = caps_of(&out);
    assert_eq!(bnd, cap_mask(&set));
    let zero = cap_mask(&[]);
    assert_eq!(
        (inh, prm, eff, amb),
        (zero.clone(), zero.clone(), zero.clone(), zero)
    );
}

/// A non-root process under no_new_privs whose program carries a file
/// capability it is permitted (not ambient): execve grants it, capped by
/// the permitted set the process had. (runc's runc-dmz lost it, its
/// intermediate exec having reduced permitted to ambient: ozz's exec stub
/// is not used for such a process; security/exec_stub.rs.)
#[test]
fn nonroot_user_gets_a_permitted_file_capability_under_no_new_privs() {
    let host = HostDir::new("filecap");
    let cat = host.path.join("cat");
    std::fs::copy(shared_rootfs().join("bin/busybox"), &cat).unwrap();
    // struct vfs_cap_data, revision 2, effective: CAP_NET_BIND_SERVICE
    // permitted, nothing inheritable.
    let mut xattr = Vec::new();
    let bit = 1u32 << cap_bit("CAP_NET_BIND_SERVICE");
    for word in [0x0200_0001u32, bit, 0, 0, 0] {
        xattr.extend_from_slice(&word.to_le_bytes());
    }
    let set = Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'security.capability', bytes.fromhex(sys.argv[2]))",
        ])
        .arg(&cat)
        .arg(xattr.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .status()
        .unwrap();
    assert!(set.success(), "set the file capability");
    let mut b = bundle("filecap", &["/tmp/cat", "/proc/self/status"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "bind", "source": host.path, "options": ["rbind", "ro"]
    }));
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(true);
    let set = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": [],
    });
    let out = b.run_ok();
    let [_, prm, eff, _, amb] = caps_of(&out);
    let one = cap_mask(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!((prm, eff), (one.clone(), one), "{out}");
    assert_eq!(amb, cap_mask(&[]));
}

/// CAP_SYS_RESOURCE on a host whose root does not hold it: ozz grants what
/// it can, leaves that one out with a warning, and the container runs.
#[test]
fn capability_the_host_lacks_is_left_out_with_a_warning() {
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = u64::from_str_radix(&status_field(&host, "CapBnd").unwrap(), 16).unwrap();
    let host_has = host_bnd & (1 << cap_bit("CAP_SYS_RESOURCE")) != 0;
    let mut b = bundle("caps-sysres", &["cat", "/proc/self/status"]);
    let set = ["CAP_KILL", "CAP_SYS_RESOURCE"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": [],
    });
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    let [_, prm, eff, bnd, _] = caps_of(&stdout(&out));
    let want = if host_has {
        cap_mask(&set)
    } else {
        assert!(
            stderr(&out).contains("CAP_SYS_RESOURCE"),
            "no warning: {}",
            stderr(&out)
        );
        cap_mask(&["CAP_KILL"])
    };
    assert_eq!((prm, eff, bnd), (want.clone(), want.clone(), want));
}

#[test]
fn no_new_privileges_on_and_off() {
    for (flag, want) in [(true, "1"), (false, "0")] {
        let mut b = bundle("nnp", &["cat", "/proc/self/status"]);
        b.config["process"]["noNewPrivileges"] = json!(flag);
        let out = b.run_ok();
        assert_eq!(
            status_field(&out, "NoNewPrivs").as_deref(),
            Some(want),
            "{flag}"
        );
    }
}

#[test]
fn oom_score_adj_is_raised() {
    let current: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Only raise it: lowering needs CAP_SYS_RESOURCE.
    let want = if current < 500 { 500 } else { 1000 };
    let mut b = bundle("oom", &["cat", "/proc/self/oom_score_adj"]);
    b.config["process"]["oomScoreAdj"] = json!(want);
    assert_eq!(b.run_ok().trim(), want.to_string());
}

#[test]
fn io_priority_is_set() {
    let mut b = bundle("ioprio", &["sh", "-c", "ionice -p $$"]);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let out = b.run_ok();
    assert!(
        out.contains("best-effort") && out.contains("prio 6"),
        "{out}"
    );
    let mut b = bundle("ioprio-idle", &["sh", "-c", "ionice -p $$"]);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let out = b.run_ok();
    assert!(out.contains("idle"), "{out}");
}

/// Field 41 of /proc/PID/stat is the scheduling policy.
fn stat_policy(stat: &str) -> u32 {
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(38).unwrap().parse().unwrap()
}

#[test]
fn scheduler_policy_batch_and_idle() {
    for (policy, num) in [("SCHED_BATCH", 3), ("SCHED_IDLE", 5)] {
        let mut b = bundle("sched", &["cat", "/proc/self/stat"]);
        b.config["process"]["scheduler"] = json!({"policy": policy});
        let out = b.run_ok();
        assert_eq!(stat_policy(&out), num, "{policy}: {out}");
    }
    // And /proc/self/sched, where the kernel has it, agrees.
    if std::path::Path::new("/proc/self/sched").exists() {
        let mut b = bundle("sched-file", &["cat", "/proc/self/sched"]);
        b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH"});
        let out = b.run_ok();
        let line = out
            .lines()
            .find(|l| l.starts_with("policy"))
            .expect("policy line");
        assert_eq!(line.rsplit(':').next().unwrap().trim(), "3", "{out}");
    }
}

#[test]
fn personality_linux32_makes_uname_say_i686() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skip: LINUX32 -> i686 is an x86_64 check");
        return;
    }
    let mut b = bundle("persona", &["uname", "-m"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    assert_eq!(b.run_ok().trim(), "i686");
    let mut b = bundle("persona64", &["uname", "-m"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX"});
    assert_eq!(b.run_ok().trim(), "x86_64");
}

#[test]
fn exec_cpu_affinity_final_is_what_the_process_gets() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skip: needs two CPUs to tell affinities apart");
        return;
    }
    let mut b = bundle("affinity", &["cat", "/proc/self/status"]);
    b.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    let out = b.run_ok();
    assert_eq!(
        status_field(&out, "Cpus_allowed_list").as_deref(),
        Some("1"),
        "{out}"
    );
    let mut b = bundle("affinity0", &["cat", "/proc/self/status"]);
    b.config["process"]["execCPUAffinity"] = json!({"final": "0"});
    let out = b.run_ok();
    assert_eq!(
        status_field(&out, "Cpus_allowed_list").as_deref(),
        Some("0"),
        "{out}"
    );
}

#[test]
fn terminal_run_in_the_foreground_gets_a_pty() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skip: script(1) from bsdutils is not installed");
        return;
    }
    let mut b = bundle(
        "tty",
        &[
            "sh",
            "-c",
            "echo tty=$(tty); test -t 0 && test -t 1 && echo both-tty",
        ],
    );
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let cmdline = format!(
        "{} --root {} run --bundle {} {}",
        ozz_bin().display(),
        state_root().display(),
        b.dir.display(),
        b.id
    );
    let out = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out).replace('\r', "");
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // script(1) may echo a stray ^@ for its closed stdin: match markers.
    assert!(text.contains("tty=/dev/pts/"), "{text}");
    assert!(text.lines().any(|l| l.ends_with("both-tty")), "{text}");
}

/// Receives one message with one descriptor (SCM_RIGHTS) from `stream`.
fn recv_fd(stream: &std::os::unix::net::UnixStream) -> (String, std::os::fd::OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let mut fd = None;
    for cmsg in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            fd = fds.first().copied();
        }
    }
    let len = msg.bytes;
    let fd = fd.expect("no descriptor in the console message");
    // SAFETY: the kernel just installed `fd` in our table for us alone.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    (String::from_utf8_lossy(&buf[..len]).into_owned(), fd)
}

#[test]
fn console_socket_receives_the_pty_master() {
    use std::io::Read;
    let mut b = bundle(
        "console",
        &["sh", "-c", "echo tty=$(tty); stty size; sleep 0.2"],
    );
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(&stream)
    });
    let out = b.create(&["--console-socket", sock.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (payload, master) = accept.join().unwrap();
    // runc sends the pty's path as the message's payload.
    assert!(
        payload.trim_end_matches('\0').starts_with("/dev/pts/"),
        "payload {payload:?}"
    );
    // The descriptor is a pty master, and the payload names its slave.
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer we own.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            libc::TIOCGPTN,
            &mut n,
        )
    };
    assert_eq!(rc, 0, "TIOCGPTN: not a pty master");
    assert_eq!(payload.trim_end_matches('\0'), format!("/dev/pts/{n}"));
    let start = b.cmd("start", &[]);
    assert!(start.status.success(), "start: {}", stderr(&start));
    // Read the container's output from the master until the slave closes (EIO).
    let mut master = std::fs::File::from(master);
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => text.extend_from_slice(&buf[..k]),
        }
    }
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    assert!(text.contains(&format!("tty=/dev/pts/{n}")), "{text:?}");
    assert!(
        text.contains("33 111"),
        "console size not applied: {text:?}"
    );
}

/// runc sets umask 0022 when process.user.umask is absent, whatever the
/// caller's umask is.
#[test]
fn umask_defaults_to_0022_not_the_callers() {
    let b = bundle("umask-default", &["sh", "-c", "umask"]);
    b.write();
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0022\n");
}

#[test]
fn exec_env_does_not_leak_the_callers_environment() {
    let mut b = bundle("exec-env", &["sleep", "100"]);
    b.config["process"]["env"] = json!(["PATH=/bin", "FROM_CONFIG=1"]);
    b.create_and_start();
    let out = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["exec", "--env", "ADDED=2", &b.id, "env"])
        .env("OZZ_LEAK_MARKER", "host-only")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    seen.sort();
    assert_eq!(
        seen,
        ["ADDED=2", "FROM_CONFIG=1", "HOME=/root", "PATH=/bin"],
        "{}",
        stdout(&out)
    );
}

#[test]
fn exec_user_caps_and_no_new_privs_reach_the_process() {
    let mut b = bundle("exec-attrs", &["sleep", "100"]);
    let base = ["CAP_KILL", "CAP_CHOWN"];
    b.config["process"]["capabilities"] = json!({
        "bounding": base, "effective": base, "permitted": base, "inheritable": [], "ambient": [],
    });
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.create_and_start();

    let out = ozz(&["exec", &b.id, "cat", "/proc/self/status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(status_field(&text, "CapEff").unwrap(), cap_mask(&base));
    assert_eq!(status_field(&text, "NoNewPrivs").as_deref(), Some("0"));

    let out = ozz(&[
        "exec",
        "--cap",
        "CAP_NET_RAW",
        "--no-new-privs",
        &b.id,
        "cat",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let with = cap_mask(&["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"]);
    assert_eq!(status_field(&text, "CapEff").unwrap(), with);
    assert_eq!(status_field(&text, "CapBnd").unwrap(), with);
    assert_eq!(status_field(&text, "CapInh").unwrap(), cap_mask(&[]));
    assert_eq!(status_field(&text, "NoNewPrivs").as_deref(), Some("1"));

    let out = ozz(&[
        "exec",
        "--user",
        "1000:1000",
        "--additional-gids",
        "5",
        &b.id,
        "cat",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        status_field(&text, "Uid").unwrap(),
        "1000\t1000\t1000\t1000"
    );
    assert_eq!(
        status_field(&text, "Gid").unwrap(),
        "1000\t1000\t1000\t1000"
    );
    assert_eq!(status_field(&text, "Groups").unwrap(), "5");
    // A non-root process without ambient capabilities has none effective.
    assert_eq!(status_field(&text, "CapEff").unwrap(), cap_mask(&[]));
    assert_eq!(status_field(&text, "CapBnd").unwrap(), cap_mask(&base));
}

#[test]
fn scheduler_nice_is_applied() {
    let mut b = bundle("sched-nice", &["cat", "/proc/self/stat"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 7});
    let out = b.run_ok();
    let (_, rest) = out.rsplit_once(')').unwrap();
    // Field 19 of /proc/PID/stat is the nice value.
    assert_eq!(rest.split_whitespace().nth(16), Some("7"), "{out}");
    assert_eq!(stat_policy(&out), 0, "{out}");
}

#[test]
fn user_namespace_maps_root_and_a_user() {
    if !Path::new("/proc/self/ns/user").exists() {
        eprintln!("skip: the kernel has no user namespaces");
        return;
    }
    // Container root and a container user, both mapped to unprivileged host
    // IDs: exec.fifo must be openable by them (runc makes it 0622).
    for uid in [0u32, 1000] {
        let mut b = bundle("userns", &["sh", "-c", "id -u; cat /proc/self/uid_map"]);
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        b.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        b.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        b.config["process"]["user"] = json!({"uid": uid, "gid": uid});
        let out = b.run();
        assert!(
            out.status.success(),
            "uid {uid}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(uid.to_string().as_str()), "{text}");
        let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(map, ["0", "100000", "65536"], "{text}");
    }
}

/// runc hands the stdio it passes to a non-root process.user over to that
/// user (fixStdioPermissions), so reopening /dev/stdout works.
#[test]
fn nonroot_user_can_reopen_its_stdio() {
    let mut b = bundle(
        "stdio-user",
        &[
            "sh",
            "-c",
            "echo via-dev-stdout > /dev/stdout; echo via-dev-stderr > /dev/stderr",
        ],
    );
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "via-dev-stdout\n", "{}", stderr(&out));
    assert_eq!(stderr(&out), "via-dev-stderr\n");
}

/// Process attributes the kernel refuses fail `create` with one clear line
/// and leave no state directory and no cgroup behind.
#[test]
fn invalid_process_attributes_fail_clearly_and_leave_nothing() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "missing program",
            |c| c["process"]["args"] = json!(["no-such-program-xyz"]),
            "executable file not found in $PATH",
        ),
        (
            "missing absolute program",
            |c| c["process"]["args"] = json!(["/no/such/program"]),
            "/no/such/program",
        ),
        (
            "soft above hard",
            |c| {
                c["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 100}])
            },
            "soft 200 above hard 100",
        ),
        (
            "cpu out of range",
            |c| c["process"]["execCPUAffinity"] = json!({"final": "99999"}),
            "99999",
        ),
        (
            "bad cpu list",
            |c| c["process"]["execCPUAffinity"] = json!({"final": "zero"}),
            "zero",
        ),
    ];
    for (what, edit, phrase) in cases {
        let mut b = bundle("bad-proc", &["true"]);
        edit(&mut b.config);
        let out = b.create(&[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: create succeeded");
        assert!(err.contains(phrase), "{what}: {phrase:?} not in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(!state_root().join(&b.id).exists(), "{what}: state left");
        assert!(!b.cgroup_dir("pids").exists(), "{what}: cgroup left");
        assert!(!b.cgroup_dir("").join("cgroup.procs").exists());
    }
}

/// A program in the container starts with SIGPIPE at its default action,
/// whatever the runtime's own language runtime does with it: a writer to a
/// closed pipe must die of SIGPIPE, not loop on EPIPE.
#[test]
fn sigpipe_is_not_ignored_in_the_container() {
    let b = bundle("sigpipe", &["sleep", "100"]);
    b.create_and_start();
    let pipe_bit = 1u64 << (libc::SIGPIPE - 1);
    // The init is PID 1 of its namespace; the exec'd grep reads itself.
    for status in ["/proc/1/status", "/proc/self/status"] {
        let out = ozz(&["exec", &b.id, "grep", "SigIgn", status]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let mask = u64::from_str_radix(text.trim().trim_start_matches("SigIgn:").trim(), 16)
            .expect("a hex mask");
        assert_eq!(mask & pipe_bit, 0, "{status}: {text}");
    }
}

/// A temporary /tmp for tests that let the runtime create things there
/// (the shared rootfs stays untouched).
fn with_tmpfs_tmp(b: &mut Bundle) {
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["mode=1777"]}),
    );
}

/// runc makes a missing cwd (0755, owned by the container's root) before
/// the process's user takes over, so a non-root user starts there too.
#[test]
fn missing_cwd_is_created_0755_for_any_user() {
    let mut b = bundle(
        "cwd-create",
        &["sh", "-c", "pwd; id -u; stat -c '%a %u' /tmp/a /tmp/a/b"],
    );
    with_tmpfs_tmp(&mut b);
    b.config["process"]["cwd"] = json!("/tmp/a/b");
    b.config["process"]["user"] = json!({"uid": 42, "gid": 42, "umask": 0o077});
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/tmp/a/b\n42\n755 0\n755 0\n");
}

/// The cwd is entered while the init is still root: a 0700 directory of
/// root's is a valid cwd for uid 42 (as with runc), even though uid 42
/// could not enter it itself.
#[test]
fn cwd_only_root_can_reach_works_for_a_non_root_user() {
    let rootfs = HostDir::rootfs_copy("cwd-0700");
    let root_home = rootfs.path.join("root");
    std::fs::create_dir_all(&root_home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root_home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut b = bundle(
        "cwd-0700",
        &[
            "sh",
            "-c",
            "readlink /proc/self/cwd; id -u; ls . >/dev/null 2>&1 || echo denied",
        ],
    );
    b.config["root"]["path"] = json!(rootfs.path);
    b.config["process"]["cwd"] = json!("/root");
    b.config["process"]["user"] = json!({"uid": 42, "gid": 42});
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    // In it, yet still without the right to read it: the user did not gain
    // root's access, it only starts there.
    assert_eq!(stdout(&out), "/root\n42\ndenied\n");
}

/// As runc: a key given twice keeps its first place and its last value;
/// an empty HOME is the user's home from /etc/passwd.
#[test]
fn duplicate_env_keys_keep_the_last_and_empty_home_is_filled_in() {
    let mut b = bundle("env-dup", &["env"]);
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "HOME=", "A=1", "B=x", "A=2"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    assert_eq!(
        b.run_ok(),
        "PATH=/bin:/usr/bin\nHOME=/home/user\nA=2\nB=x\n"
    );
}

/// `taskset -c 0 ozz run`: the container does not inherit the caller's
/// affinity; it may use every CPU its cgroup's cpuset allows.
#[test]
fn callers_cpu_affinity_is_not_inherited() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skip: needs two CPUs to tell affinities apart");
        return;
    }
    let mut b = bundle(
        "affinity-reset",
        &["grep", "Cpus_allowed_list", "/proc/self/status"],
    );
    b.config["linux"]["resources"]["cpu"] = json!({"cpus": "0-1"});
    let mut cmd = run_command(&b);
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on the child itself, between fork and
    // exec; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        status_field(&stdout(&out), "Cpus_allowed_list").as_deref(),
        Some("0-1")
    );
}

/// An unknown capability is skipped with runc's warning; the known ones
/// are granted and the container runs.
#[test]
fn unknown_capability_is_skipped_with_a_warning() {
    let mut b = bundle("caps-unknown", &["grep", "CapBnd", "/proc/self/status"]);
    let set = ["CAP_KILL", "CAP_NO_SUCH_THING"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": [],
    });
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        status_field(&stdout(&out), "CapBnd").unwrap(),
        cap_mask(&["CAP_KILL"])
    );
    let err = stderr(&out);
    assert!(
        err.contains("ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING]"),
        "{err}"
    );
}

/// `"path": ""` is no path: the namespace is a new one.
#[test]
fn namespace_with_an_empty_path_is_new() {
    let mut b = bundle("ns-empty-path", &["readlink", "/proc/self/ns/uts"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "uts" {
            ns["path"] = json!("");
        }
    }
    let out = b.run_ok();
    assert!(out.starts_with("uts:["), "{out}");
    assert_ne!(
        out.trim(),
        ns_link("self", "uts"),
        "shares the host's UTS namespace"
    );
}

/// The nice value of the process itself and of a child it forks
/// (field 19 of /proc/PID/stat).
const NICE_OF_SELF_AND_CHILD: &str =
    "cut -d' ' -f19 /proc/$$/stat; cut -d' ' -f19 /proc/self/stat; true";

/// process.scheduler.flags by the runtime-spec's names. With
/// SCHED_FLAG_RESET_ON_FORK a child of the process starts at nice 0 again.
#[test]
fn scheduler_flags_take_the_specs_names() {
    let mut b = bundle("sched-flags", &["sh", "-c", NICE_OF_SELF_AND_CHILD]);
    b.config["process"]["scheduler"] =
        json!({"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    assert_eq!(b.run_ok(), "-5\n0\n");
    // Without the flag the child keeps it: the difference is the flag's.
    let mut b = bundle("sched-noflags", &["sh", "-c", NICE_OF_SELF_AND_CHILD]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": -5});
    assert_eq!(b.run_ok(), "-5\n-5\n");
    // The other names parse and reach the kernel, which takes them with
    // SCHED_OTHER.
    let mut b = bundle("sched-flags-all", &["true"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "flags": [
        "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
        "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS"]});
    b.run_ok();
    // The utilization clamps need a kernel built with CONFIG_UCLAMP_TASK:
    // then they apply; else the kernel's own refusal is what ozz reports.
    let mut b = bundle("sched-uclamp", &["true"]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER",
        "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"]});
    let out = b.run();
    if !out.status.success() {
        let err = stderr(&out);
        assert!(
            err.contains("set scheduler") && err.contains("Operation not supported"),
            "{err}"
        );
        eprintln!("note: this kernel has no utilization clamping (CONFIG_UCLAMP_TASK)");
    }
}

/// runc refuses kernel.hostname, which would fight the hostname field.
#[test]
fn sysctl_kernel_hostname_is_refused_as_runc_does() {
    let mut b = bundle("sysctl-hostname", &["hostname"]);
    b.config["hostname"] = json!("from-field");
    b.config["linux"]["sysctl"] = json!({"kernel.hostname": "from-sysctl"});
    let out = b.create(&[]);
    assert!(!out.status.success(), "create succeeded");
    let err = stderr(&out);
    assert!(
        err.contains(
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!state_root().join(&b.id).exists(), "state left");
    // kernel.domainname stays allowed in a private UTS namespace, as in
    // runc (Docker sets the domain name that way).
    let mut b = bundle("sysctl-domainname", &["cat", "/proc/sys/kernel/domainname"]);
    b.config["linux"]["sysctl"] = json!({"kernel.domainname": "example.org"});
    assert_eq!(b.run_ok(), "example.org\n");
}

/// The kernel's release as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// linux.memoryPolicy reaches the kernel: /proc/self/numa_maps shows the
/// process's policy (for mappings without their own) in the kernel's words.
/// Node 0 exists on every NUMA-enabled kernel, one node or many.
#[test]
fn memory_policy_is_applied_in_every_mode() {
    if !Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skip: the kernel has no NUMA support (no /proc/self/numa_maps)");
        return;
    }
    let kernel = kernel_version();
    let cases: [(serde_json::Value, &str, (u32, u32)); 11] = [
        (json!({"mode": "MPOL_DEFAULT"}), "default", (0, 0)),
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0", (0, 0)),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
            (0, 0),
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0"}),
            "prefer:0",
            (0, 0),
        ),
        (json!({"mode": "MPOL_LOCAL"}), "local", (3, 8)),
        (
            json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "0"}),
            "prefer (many):0",
            (5, 15),
        ),
        (
            json!({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"}),
            "weighted interleave:0",
            (6, 9),
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
            (0, 0),
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}),
            "interleave=relative:0",
            (0, 0),
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "bind=balancing:0",
            (5, 12),
        ),
        // A list with ranges: nodes the host lacks are dropped by the kernel.
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-0,0"}),
            "bind:0",
            (0, 0),
        ),
    ];
    // `ozz features` claims exactly the modes and flags proven here.
    let out = ozz(&["features"]);
    let features: serde_json::Value = serde_json::from_slice(&out.stdout).expect("features");
    let claimed = |key: &str| {
        let mut list: Vec<String> = features["linux"]["memoryPolicy"][key]
            .as_array()
            .unwrap_or_else(|| panic!("memoryPolicy.{key} missing from features"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        list.sort();
        list
    };
    let tested = |key: &str| {
        let mut list: Vec<String> = cases
            .iter()
            .flat_map(|(p, _, _)| match &p[key] {
                serde_json::Value::Array(a) => a.clone(),
                serde_json::Value::Null => vec![],
                v => vec![v.clone()],
            })
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        list.sort();
        list.dedup();
        list
    };
    assert_eq!(claimed("modes"), tested("mode"));
    assert_eq!(claimed("flags"), tested("flags"));
    for (policy, want, since) in cases {
        if kernel < since {
            eprintln!("skip {want}: needs Linux {}.{}", since.0, since.1);
            continue;
        }
        let mut b = bundle("mempolicy", &["head", "-n1", "/proc/self/numa_maps"]);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        let out = b.run();
        assert!(out.status.success(), "{policy}: {}", stderr(&out));
        let text = stdout(&out);
        // "ADDRESS POLICY key=value…"; the policy may hold a space.
        let (_, rest) = text.trim().split_once(' ').expect("a numa_maps line");
        assert!(
            rest == want || rest.starts_with(&format!("{want} ")),
            "{policy}: want {want:?} in {text:?}"
        );
    }
}

/// Memory policies the spec or the kernel does not allow fail `create`
/// with one line naming the problem, and leave nothing behind.
#[test]
fn memory_policy_mistakes_are_refused() {
    if !Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skip: the kernel has no NUMA support (no /proc/self/numa_maps)");
        return;
    }
    let cases = [
        (
            json!({"mode": "MPOL_BIND", "nodes": "1000"}),
            "set_mempolicy",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            "invalid nodes \"0-x\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "3-1"}),
            "runs backwards",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0,,1"}),
            "invalid nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "99999"}),
            "invalid nodes",
        ),
        (json!({"mode": "MPOL_BIND"}), "needs nodes"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0",
                "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "exclude each other",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "MPOL_F_NUMA_BALANCING needs",
        ),
        (
            json!({"mode": "MPOL_NO_SUCH_MODE", "nodes": "0"}),
            "MPOL_NO_SUCH_MODE",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NO_SUCH_FLAG"]}),
            "MPOL_F_NO_SUCH_FLAG",
        ),
    ];
    for (policy, phrase) in cases {
        let mut b = bundle("mempolicy-bad", &["true"]);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        let out = b.create(&[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{policy}: create succeeded");
        assert!(err.contains(phrase), "{policy}: {phrase:?} not in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "{policy}: {err}");
        assert!(!state_root().join(&b.id).exists(), "{policy}: state left");
        assert!(!b.cgroup_dir("pids").exists(), "{policy}: cgroup left");
        assert!(!b.cgroup_dir("").join("cgroup.procs").exists());
    }
}

/// As runc: the pty whose master goes to the caller's console socket keeps
/// ONLCR (its reader — conmon, containerd's shim, `kubectl exec -t` — puts
/// its own terminal in raw mode and relies on "\r\n"); when the runtime
/// relays the pty itself (`run` in the foreground without a socket) it
/// clears ONLCR, so the output it copies keeps bare newlines.
#[test]
fn terminal_newlines_as_runc_gives_them() {
    use std::io::Read;
    let mut b = bundle("onlcr", &["printf", "a\\nb\\n"]);
    b.config["process"]["terminal"] = json!(true);
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(&stream)
    });
    let out = b.create(&["--console-socket", sock.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (_, master) = accept.join().unwrap();
    let start = b.cmd("start", &[]);
    assert!(start.status.success(), "start: {}", stderr(&start));
    let mut master = std::fs::File::from(master);
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => text.extend_from_slice(&buf[..k]),
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&text),
        "a\r\nb\r\n",
        "through the console socket"
    );
    drop(b);

    let mut b = bundle("onlcr-run", &["printf", "a\\nb\\n"]);
    b.config["process"]["terminal"] = json!(true);
    assert_eq!(b.run_ok(), "a\nb\n", "relayed by `run` in the foreground");
}

/// `exec --process` with a terminal takes the process.json's consoleSize.
#[test]
fn exec_process_json_console_size_is_applied() {
    let b = bundle("exec-consize", &["sleep", "100"]);
    b.create_and_start();
    let process = json!({
        "terminal": true,
        "consoleSize": {"height": 27, "width": 93},
        "user": {"uid": 0, "gid": 0},
        "args": ["stty", "size"],
        "env": ["PATH=/bin:/usr/bin"],
        "cwd": "/"
    });
    let file = b.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = ozz(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "27 93");
}

/// With a terminal, the init's stderr is the pty; a startContainer hook's
/// failure (its own stderr in the message) must still reach the stderr of
/// whoever ran ozz, not only the pty.
#[test]
fn hook_failure_reaches_the_caller_with_a_terminal() {
    use std::io::Read;
    let mut b = bundle("hook-tty", &["true"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh",
        "args": ["sh", "-c", "echo hook-said-this >&2; exit 3"]}]});
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (_, master) = recv_fd(&stream);
        let mut master = std::fs::File::from(master);
        let mut text = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => text.extend_from_slice(&buf[..k]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    b.write();
    let out = ozz(&[
        "run",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    let pty = accept.join().unwrap();
    assert!(
        !out.status.success(),
        "run succeeded despite the failing hook"
    );
    let err = stderr(&out);
    assert!(
        err.contains("startContainer") && err.contains("hook-said-this"),
        "stderr: {err:?}, pty: {pty:?}"
    );
}
