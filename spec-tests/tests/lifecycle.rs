//! Lifecycle: create, start, state, kill, delete, run, list, ps, pause,
//! resume, exec — and the exact phrases runc's callers match.

use spec_tests::*;

#[test]
fn run_passes_output_and_exit_code_through() {
    let b = bundle(
        "run-exit",
        &["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 7"],
    );
    let out = b.run();
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out-42\n");
    assert!(stderr(&out).contains("err"));
    // run deletes the container afterwards
    assert!(!state_root().join(&b.id).exists());
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    // Without a pid namespace the shell is not an init, so SIGKILL kills it.
    let mut b = bundle("run-sig", &["sh", "-c", "kill -9 $$"]);
    let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "pid");
    assert_eq!(b.run().status.code(), Some(137));
}

#[test]
fn create_start_state_delete() {
    // Runs until told to stop: a SIGTERM handler makes the shell (pid 1 of
    // its namespace) exit 0, so no timing decides when it stops.
    let b = bundle(
        "cycle",
        &["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
    );
    b.create_ok();
    let st = b.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(
        st["bundle"],
        b.dir.canonicalize().unwrap().to_str().unwrap()
    );
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // The init exists and waits; it has not run the user's program yet.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("sleep"));
    // delete of a running container fails without --force
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert_eq!(b.status(), "running");
    let out = b.cmd("start", &[]);
    assert!(!out.status.success(), "second start must fail");
    let out = b.cmd("delete", &[]);
    assert!(
        !out.status.success(),
        "delete of a running container must fail"
    );
    // A pid namespace's init ignores a SIGTERM it has no handler for: send
    // it only once the shell has installed its trap (SigCgt has the bit).
    wait_until_catches(pid, libc::SIGTERM);
    let out = ozz(&["kill", &b.id, "TERM"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    b.wait_status("stopped");
    assert_eq!(b.state()["pid"], 0);
    let out = b.cmd("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!state_root().join(&b.id).exists());
    // The cgroup is gone with it.
    assert!(!b.cgroup_dir("pids").exists() && !b.cgroup_dir("").join("cgroup.procs").exists());
    assert!(process_gone(pid));
}

/// Waits (bounded) until `pid` has a handler installed for `signal`.
fn wait_until_catches(pid: i64, signal: i32) {
    for _ in 0..500 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status_field(&status, "SigCgt")
            .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
            .unwrap_or(0);
        if caught & (1 << (signal - 1)) != 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} never installed a handler for signal {signal}");
}

#[test]
fn delete_of_created_container_kills_its_init() {
    let b = bundle("del-created", &["true"]);
    b.create_ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let out = b.cmd("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(process_gone(pid));
}

#[test]
fn kill_and_the_phrases_callers_match() {
    let b = bundle("kill", &["sleep", "100"]);
    b.create_and_start();
    let out = b.cmd("kill", &[]); // SIGTERM to a pid-1 sleep without a handler is ignored
    assert!(out.status.success());
    let out = ozz(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    b.wait_status("stopped");
    let out = ozz(&["kill", &b.id, "KILL"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
    let out = ozz(&["kill", &b.id, "SIGNOPE"]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn unknown_container_says_does_not_exist() {
    for verb in ["state", "start", "kill", "delete", "pause", "resume", "ps"] {
        let out = ozz(&[verb, "no-such-ctr"]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        assert_eq!(
            stderr(&out).trim(),
            "container \"no-such-ctr\" does not exist",
            "{verb}"
        );
    }
}

#[test]
fn bad_ids_are_refused_and_leave_nothing() {
    let b = bundle("badid", &["true"]);
    b.write();
    for id in ["../escape", "a/b", "..", "bad\nid"] {
        let out = ozz(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert!(!out.status.success(), "{id:?} accepted");
        assert_eq!(stderr(&out).trim().lines().count(), 1);
    }
    assert!(!state_root().join("..").join("escape").exists());
}

#[test]
fn duplicate_id_is_refused() {
    let b = bundle("dup", &["true"]);
    b.create_ok();
    let out = b.create(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(b.status(), "created");
}

#[test]
fn list_shows_containers_as_table_and_json() {
    let b = bundle("list", &["sleep", "100"]);
    b.create_ok();
    let out = ozz(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == b.id.as_str())
        .expect("container listed");
    assert_eq!(me["status"], "created");
    let out = ozz(&["list"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with(&b.id) && l.contains("created")));
    let out = ozz(&["list", "-q"]);
    assert!(stdout(&out).lines().any(|l| l == b.id));
}

/// With many containers (32 or more) `list` reads them in parallel, each
/// file below a directory it opened once: every row must still say what
/// `state` says of the same container, in each status.
#[test]
fn list_agrees_with_state_for_many_containers_in_every_status() {
    let statuses = ["created", "running", "paused", "stopped"];
    let bundles: Vec<Bundle> = (0..40)
        .map(|_| {
            bundle(
                "list-many",
                &["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
            )
        })
        .collect();
    for (i, b) in bundles.iter().enumerate() {
        b.create_ok();
        let want = statuses[i % statuses.len()];
        if want != "created" {
            let out = b.cmd("start", &[]);
            assert!(out.status.success(), "start: {}", stderr(&out));
        }
        match want {
            "paused" => assert!(b.cmd("pause", &[]).status.success()),
            "stopped" => {
                assert!(ozz(&["kill", &b.id, "KILL"]).status.success());
                b.wait_status("stopped");
            }
            _ => {}
        }
    }
    let out = ozz(&["list", "--format", "json"]);
    assert!(out.status.success(), "list: {}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (i, b) in bundles.iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r["id"] == b.id.as_str())
            .unwrap_or_else(|| panic!("{} not listed", b.id));
        let state = b.state();
        assert_eq!(row["status"], statuses[i % statuses.len()], "{row}");
        for field in ["status", "pid", "bundle", "created"] {
            assert_eq!(row[field], state[field], "{field} of {}", b.id);
        }
    }
}

#[test]
fn ps_lists_every_process_of_the_container() {
    let b = bundle("ps", &["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    b.create_and_start();
    let mut pids = Vec::new();
    for _ in 0..200 {
        let out = b.cmd("ps", &["--format", "json"]);
        pids = serde_json::from_slice::<Vec<i32>>(&out.stdout).unwrap();
        if pids.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&(b.state()["pid"].as_i64().unwrap() as i32)));
    let out = b.cmd("ps", &[]);
    assert!(stdout(&out).contains("sleep 100"), "{}", stdout(&out));
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let b = bundle("pause", &["sh", "-c", "while true; do sleep 0.01; done"]);
    b.create_and_start();
    let out = b.cmd("pause", &[]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert_eq!(b.status(), "paused");
    let pid = b.state()["pid"].as_i64().unwrap();
    let freezer = if is_cgroup_v2() {
        std::fs::read_to_string(b.cgroup_dir("").join("cgroup.freeze")).unwrap()
    } else {
        std::fs::read_to_string(b.cgroup_dir("freezer").join("freezer.state")).unwrap()
    };
    assert!(
        freezer.trim() == "FROZEN" || freezer.trim() == "1",
        "{freezer}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains(") D ") || stat.contains(") S "), "{stat}");
    let out = b.cmd("resume", &[]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert_eq!(b.status(), "running");
    let out = b.cmd("resume", &[]);
    assert!(!out.status.success());
    let out = b.cmd("delete", &["--force"]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
}

#[test]
fn exec_runs_in_the_containers_namespaces() {
    let mut b = bundle("exec", &["sleep", "100"]);
    b.config["hostname"] = serde_json::json!("exec-host");
    b.create_and_start();
    let out = ozz(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "hostname; echo $$; cat /proc/1/cmdline",
    ]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "exec-host");
    assert_ne!(lines[1], "1");
    assert!(lines[2].starts_with("sleep"));
    // exit codes pass through
    let out = ozz(&["exec", &b.id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    // --env, --cwd, --user
    let out = ozz(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &b.id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    assert_eq!(stdout(&out), "bar\n/tmp\n1000\n1000\n", "{}", stderr(&out));
    // exec --detach with a pid file
    let pid_file = b.dir.join("exec.pid");
    let out = ozz_quiet(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "sleep",
        "50",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&b.id), "{cgroup}");
}

#[test]
fn exec_in_a_stopped_container_fails() {
    let b = bundle("exec-stopped", &["true"]);
    b.create_and_start();
    b.wait_status("stopped");
    let out = ozz(&["exec", &b.id, "true"]);
    assert!(!out.status.success());
}

#[test]
fn pid_file_holds_the_init_pid() {
    let b = bundle("pidfile", &["true"]);
    let pid_file = b.dir.join("init.pid");
    let out = b.create(&["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, b.state()["pid"].as_i64().unwrap());
}

#[test]
fn run_detached_leaves_a_running_container() {
    let b = bundle("run-d", &["sleep", "100"]);
    b.write();
    let out = ozz_quiet(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(), "running");
}

#[test]
fn delete_force_cleans_a_container_killed_from_outside() {
    let b = bundle("killed-outside", &["sleep", "100"]);
    b.create_and_start();
    let pid = b.state()["pid"].as_i64().unwrap() as i32;
    unsafe_kill(pid);
    b.wait_status("stopped");
    let out = b.cmd("delete", &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!state_root().join(&b.id).exists());
    assert!(!b.cgroup_dir("memory").exists() && !b.cgroup_dir("").join("cgroup.procs").exists());
}

fn unsafe_kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn socket_activation_fds_and_env_reach_the_container() {
    let b = bundle(
        "listen-fds",
        &[
            "sh",
            "-c",
            "echo $LISTEN_FDS $LISTEN_PID; cat <&3; ls /proc/self/fd",
        ],
    );
    b.write();
    let marker = b.dir.join("activation-marker");
    std::fs::write(&marker, "from fd 3\n").unwrap();
    // The caller holds fd 3 open (not close-on-exec) and says so in LISTEN_FDS.
    let script = format!(
        "exec 3<'{}'; LISTEN_FDS=1 exec '{}' --root '{}' run --bundle '{}' '{}'",
        marker.display(),
        ozz_bin().display(),
        state_root().display(),
        b.dir.display(),
        b.id
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1 1"), "{text}");
    assert_eq!(lines.next(), Some("from fd 3"), "{text}");
    // 0-2, the activation fd 3, and 4: the directory ls itself opened.
    let fds: Vec<&str> = lines.collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4"], "{text}");
}

/// Without a pid namespace the init's death does not take the others with
/// it: `kill --all` must reach every process of the cgroup.
#[test]
fn kill_all_reaches_every_process_of_the_cgroup() {
    for signal in ["KILL", "TERM"] {
        let mut b = bundle(
            "kill-all",
            &["sh", "-c", "sleep 100 & sleep 100 & sleep 100 & wait"],
        );
        let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "pid");
        b.create_and_start();
        let mut pids = Vec::new();
        for _ in 0..200 {
            pids = serde_json::from_slice::<Vec<i64>>(&b.cmd("ps", &["--format", "json"]).stdout)
                .unwrap();
            if pids.len() == 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(pids.len(), 4, "{pids:?}");
        let out = ozz(&["kill", "--all", &b.id, signal]);
        assert!(
            out.status.success(),
            "kill --all {signal}: {}",
            stderr(&out)
        );
        for _ in 0..300 {
            if pids.iter().all(|p| process_gone(*p)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for pid in &pids {
            assert!(
                process_gone(*pid),
                "{signal}: pid {pid} survived kill --all"
            );
        }
        b.wait_status("stopped");
    }
}

/// The PIDs in the container's cgroup, as the kernel lists them.
fn cgroup_procs(b: &Bundle) -> Vec<i64> {
    std::fs::read_to_string(cg_file(b, "pids", "cgroup.procs", "cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (bounded) until the cgroup holds `n` processes; returns them.
fn wait_for_procs(b: &Bundle, n: usize) -> Vec<i64> {
    let mut pids = Vec::new();
    for _ in 0..300 {
        pids = cgroup_procs(b);
        if pids.len() == n {
            return pids;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("cgroup of {} holds {pids:?}, not {n} processes", b.id);
}

fn assert_all_gone(pids: &[i64], what: &str) {
    for _ in 0..300 {
        if pids.iter().all(|p| process_gone(*p)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left: Vec<_> = pids.iter().filter(|p| !process_gone(**p)).collect();
    panic!("{what}: {left:?} survived");
}

fn without_pid_namespace(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|ns| ns["type"] != "pid");
}

/// Without its own PID namespace the init's death does not take the other
/// processes with it: `kill ID KILL` (no --all) must reach all of them, as
/// runc kills the whole cgroup then.
#[test]
fn kill_without_a_pid_namespace_kills_every_process() {
    let mut b = bundle(
        "kill-nopidns",
        &["sh", "-c", "sleep 100 & sleep 100 & wait"],
    );
    without_pid_namespace(&mut b);
    b.create_and_start();
    let pids = wait_for_procs(&b, 3);
    let out = ozz(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "kill KILL: {}", stderr(&out));
    assert_all_gone(&pids, "kill KILL without a pid namespace");
    b.wait_status("stopped");
    // The init is gone: the phrase and exit code runc gives.
    let out = ozz(&["kill", &b.id, "KILL"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "container not running");
}

/// Pods sharing one PID namespace: after a container's main process exits
/// the shim calls `kill --all` for what it left behind; runc signals every
/// process still in the cgroup and succeeds (ozz said "container not
/// running" and left them).
#[test]
fn kill_all_after_the_init_exited_signals_what_is_left() {
    for signal in ["KILL", "TERM"] {
        let mut b = bundle(
            "kill-all-orphans",
            &["sh", "-c", "sleep 100 & sleep 100 & exit 0"],
        );
        without_pid_namespace(&mut b);
        b.create_and_start();
        b.wait_status("stopped");
        let pids = wait_for_procs(&b, 2);
        let out = ozz(&["kill", "--all", &b.id, signal]);
        assert!(
            out.status.success(),
            "kill --all {signal} of a stopped container: {}",
            stderr(&out)
        );
        assert_all_gone(&pids, &format!("kill --all {signal}"));
        // Nothing left to signal is not an error either.
        let out = ozz(&["kill", "--all", &b.id, signal]);
        assert!(out.status.success(), "second kill --all: {}", stderr(&out));
        let out = b.cmd("delete", &[]);
        assert!(out.status.success(), "delete: {}", stderr(&out));
    }
}

/// A frozen process only dies once thawed: `kill KILL` of a paused
/// container thaws it, as runc does, and the container stops.
#[test]
fn kill_of_a_paused_container_thaws_it() {
    let b = bundle("kill-paused", &["sleep", "100"]);
    b.create_and_start();
    let pid = b.state()["pid"].as_i64().unwrap();
    let out = b.cmd("pause", &[]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    let out = ozz(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    assert_all_gone(&[pid], "kill KILL of a paused container");
    b.wait_status("stopped");
}

/// `exec` refuses a paused container with runc's words; with
/// `--ignore-paused` the process joins it, frozen, and runs once the
/// container is resumed (exec must not hold the lock `resume` needs).
#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let b = bundle("exec-paused", &["sleep", "100"]);
    b.create_and_start();
    let out = b.cmd("pause", &[]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    let out = ozz(&["exec", &b.id, "true"]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "exec failed: cannot exec in a paused container (use --ignore-paused to override)"
    );
    let exec = std::process::Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["exec", "--ignore-paused", &b.id, "sh", "-c", "echo joined"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The new process is in the frozen cgroup before the container thaws:
    // it was exec'd into the paused container, not after.
    let freezer = cg_file(&b, "freezer", "cgroup.procs", "cgroup.procs");
    let mut joined = false;
    for _ in 0..500 {
        let procs = std::fs::read_to_string(&freezer).unwrap_or_default();
        if procs.lines().count() == 2 {
            joined = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let resumed = b.cmd("resume", &[]);
    let out = exec.wait_with_output().unwrap();
    assert!(
        joined,
        "exec --ignore-paused never joined: {}",
        stderr(&out)
    );
    assert!(resumed.status.success(), "resume: {}", stderr(&resumed));
    assert!(
        out.status.success(),
        "exec --ignore-paused: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "joined\n");
    assert_eq!(b.status(), "running");
}

/// runc's `exec --cap` adds the capability to the ambient set as well as
/// to bounding, effective and permitted; the kernel keeps it ambient when
/// it is inheritable too.
#[test]
fn exec_cap_also_raises_the_ambient_set() {
    let mut b = bundle("exec-cap", &["sleep", "100"]);
    let caps = &mut b.config["process"]["capabilities"];
    caps["bounding"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!("CAP_NET_RAW"));
    caps["inheritable"] = serde_json::json!(["CAP_NET_RAW"]);
    caps["ambient"] = serde_json::json!([]);
    b.create_and_start();
    let out = ozz(&[
        "exec",
        "--cap",
        "CAP_NET_RAW",
        &b.id,
        "cat",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "exec --cap: {}", stderr(&out));
    let status = stdout(&out);
    let bit = 1u64 << cap_bit("CAP_NET_RAW");
    for key in ["CapAmb", "CapPrm", "CapEff", "CapBnd"] {
        let mask = u64::from_str_radix(&status_field(&status, key).unwrap(), 16).unwrap();
        assert_ne!(mask & bit, 0, "{key} lacks CAP_NET_RAW: {status}");
    }
    // Without --cap the process has none of it but the inheritable bit.
    let out = ozz(&["exec", &b.id, "cat", "/proc/self/status"]);
    let status = stdout(&out);
    let amb = u64::from_str_radix(&status_field(&status, "CapAmb").unwrap(), 16).unwrap();
    assert_eq!(amb & bit, 0, "{status}");
}

/// A process.json may leave `user` out: uid and gid 0, as runc reads it.
#[test]
fn exec_process_json_without_user_runs_as_root() {
    let mut b = bundle("exec-nouser", &["sleep", "100"]);
    b.config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    b.create_and_start();
    let file = b.dir.join("process.json");
    std::fs::write(&file, r#"{"args": ["/bin/id"], "cwd": "/"}"#).unwrap();
    let out = ozz(&["exec", "--process", file.to_str().unwrap(), &b.id]);
    assert!(out.status.success(), "exec -p: {}", stderr(&out));
    assert!(
        stdout(&out).starts_with("uid=0(root) gid=0(root)"),
        "{}",
        stdout(&out)
    );
}

/// The cgroup path of each hierarchy of a host process, keyed by the
/// controllers field of /proc/PID/cgroup ("" for cgroup v2).
fn proc_cgroups(pid: i64) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, names, path) = (f.next()?, f.next()?, f.next()?);
            Some((names.to_string(), path.to_string()))
        })
        .collect()
}

/// `exec -d --pid-file … --cgroup ARG`: the new process's host PID.
fn exec_in_sub_cgroup(b: &Bundle, arg: &str) -> i64 {
    let pid_file = b.dir.join(format!("exec-{}.pid", unique_id("cg")));
    let out = ozz_quiet(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--cgroup",
        arg,
        &b.id,
        "sleep",
        "100",
    ]);
    assert!(
        out.status.success(),
        "exec --cgroup {arg}: {}",
        stderr(&out)
    );
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// runc's `exec --cgroup [CONTROLLER[,CONTROLLER]:]PATH`: the process runs
/// in an existing sub-cgroup of the container (every hierarchy, or the
/// named controllers only; on a hybrid host the cgroup2 twin's sub-cgroup
/// too when there is one, as in runc 1.1, else the twin itself, where runc
/// fails); bad arguments are refused with runc's words; `ps` sees the
/// process and `delete` removes the sub-cgroups.
#[test]
fn exec_cgroup_runs_the_process_in_a_sub_cgroup() {
    let b = bundle("exec-cgroup", &["sleep", "100"]);
    b.create_and_start();
    let base = format!("/{}/{}", cgroup_parent(), b.id);
    let sub = format!("{base}/sub");
    let hierarchies: &[&str] = if is_cgroup_v2() {
        &[""]
    } else {
        &[
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "devices",
            "freezer",
            "blkio",
            "pids",
            "perf_event",
            "hugetlb",
            "net_cls",
            "net_prio",
            "systemd",
        ]
    };
    let mut subs = SubCgroupDirs(Vec::new());
    for h in hierarchies {
        let dir = b.cgroup_dir(h);
        if !dir.is_dir() || subs.0.contains(&dir.join("sub")) {
            continue;
        }
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        if *h == "cpuset" {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(dir.join(f)).unwrap();
                std::fs::write(dir.join("sub").join(f), v.trim()).unwrap();
            }
        }
        subs.0.push(dir.join("sub"));
    }

    let all = exec_in_sub_cgroup(&b, "sub");
    for (names, path) in proc_cgroups(all) {
        let want = if names.is_empty() && !is_cgroup_v2() {
            &base
        } else {
            &sub
        };
        assert_eq!(&path, want, "--cgroup sub, hierarchy {names:?}");
    }
    let twin = std::path::Path::new("/sys/fs/cgroup/unified").join(base.trim_start_matches('/'));
    let mut in_twin_sub = None;
    if !is_cgroup_v2() && twin.is_dir() {
        std::fs::create_dir(twin.join("sub")).unwrap();
        subs.0.push(twin.join("sub"));
        let pid = exec_in_sub_cgroup(&b, "sub");
        for (names, path) in proc_cgroups(pid) {
            assert_eq!(
                path, sub,
                "--cgroup sub with a twin sub, hierarchy {names:?}"
            );
        }
        in_twin_sub = Some(pid);
    }
    if is_cgroup_v2() {
        let out = ozz(&["exec", "--cgroup", "memory:sub", &b.id, "true"]);
        assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("unknown controller memory"),
            "{}",
            stderr(&out)
        );
    } else {
        let some = exec_in_sub_cgroup(&b, "memory,pids:sub");
        for (names, path) in proc_cgroups(some) {
            let named = names == "memory" || names == "pids";
            let want = if named { &sub } else { &base };
            assert_eq!(&path, want, "--cgroup memory,pids:sub, hierarchy {names:?}");
        }
    }
    let listed: Vec<i64> =
        serde_json::from_slice(&b.cmd("ps", &["--format", "json"]).stdout).unwrap();
    assert!(listed.contains(&all), "ps {listed:?} misses {all}");

    for (arg, phrase) in [
        ("a:b:c", "invalid --cgroup argument: a:b:c"),
        ("../x", "../x is not a sub cgroup path"),
        ("nosuch", "nosuch"),
        ("bogus:x", "unknown controller bogus"),
    ] {
        let out = ozz(&["exec", "--cgroup", arg, &b.id, "true"]);
        assert_eq!(
            out.status.code(),
            Some(255),
            "--cgroup {arg}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(phrase),
            "--cgroup {arg}: {}",
            stderr(&out)
        );
    }
    let out = ozz(&[
        "exec",
        "--cgroup",
        "memory:sub",
        "--cgroup",
        "sub",
        &b.id,
        "true",
    ]);
    assert!(
        stderr(&out).contains("missing <controller>: prefix"),
        "{}",
        stderr(&out)
    );

    let out = b.cmd("delete", &["--force"]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    assert_all_gone(&[all], "delete --force");
    assert_all_gone(
        &in_twin_sub.into_iter().collect::<Vec<_>>(),
        "delete --force",
    );
    for dir in &subs.0 {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// Sub-cgroups a test made: if the test failed before the container's
/// delete removed them, their processes are killed and they are removed
/// here (dropped before the bundle, so its delete can remove the rest).
struct SubCgroupDirs(Vec<std::path::PathBuf>);

impl Drop for SubCgroupDirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            for _ in 0..200 {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines() {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", pid])
                        .status();
                }
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// The runtime-spec makes `process` optional until `start`: a config
/// without it is created (the init waits, holding its namespaces), and
/// `start` fails with a clear line and leaves it created; `run` fails and
/// leaves nothing. (runc refuses it at create already.)
#[test]
fn a_config_without_process_is_created_and_start_refuses_it() {
    let mut b = bundle("noproc", &["true"]);
    b.config.as_object_mut().unwrap().remove("process");
    let out = b.create(&[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert_eq!(b.status(), "created");
    let pid = b.state()["pid"].as_i64().unwrap();
    assert!(!process_gone(pid));
    let out = b.cmd("start", &[]);
    assert_eq!(out.status.code(), Some(1), "start: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no process"), "{err}");
    assert_eq!(b.status(), "created");
    let out = b.cmd("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(process_gone(pid));
    assert!(!state_root().join(&b.id).exists());

    let out = b.run();
    assert_eq!(out.status.code(), Some(1), "run: {}", stderr(&out));
    assert!(stderr(&out).contains("no process"), "{}", stderr(&out));
    assert!(!state_root().join(&b.id).exists());
    assert!(!b.cgroup_dir("pids").exists() && !b.cgroup_dir("").join("cgroup.procs").exists());
}
