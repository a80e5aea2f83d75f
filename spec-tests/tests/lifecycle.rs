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
