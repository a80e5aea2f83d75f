//! Hooks: each kind runs at its moment, in the right mount namespace, with
//! the state JSON on stdin, its args and env; timeouts kill; failures of
//! prestart/createRuntime abort create cleanly, of poststart/poststop only warn.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::*;

/// Records one hook's view: its stdin (state JSON), its mount namespace and
/// a line "<kind> <HOOKVAR> <second arg>" appended to `order`.
const RECORD: &str = r#"d=$LOGDIR; cat > "$d/$1.json"; readlink /proc/self/ns/mnt > "$d/$1.ns"; echo "$1 $HOOKVAR $2" >> "$d/order""#;

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn host_mnt_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A recording hook of `kind`; `logdir` is where it writes, as the hook sees it.
fn recording_hook(kind: &str, logdir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", RECORD, "argv0", kind, format!("arg-{kind}")],
        "env": [format!("LOGDIR={logdir}"), format!("HOOKVAR=env-{kind}"),
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    })
}

/// A bundle with a recording hook of every kind and a host directory
/// `logdir` bind-mounted at /hooklog (where startContainer, which runs after
/// pivot_root, writes).
fn recording_bundle(tag: &str, args: &[&str]) -> (Bundle, PathBuf) {
    let mut b = bundle(tag, args);
    let logdir = b.dir.join("hooklog");
    std::fs::create_dir_all(&logdir).unwrap();
    let host = logdir.to_str().unwrap();
    let mut hooks = serde_json::Map::new();
    for kind in KINDS {
        let seen_as = if kind == "startContainer" {
            "/hooklog"
        } else {
            host
        };
        hooks.insert(kind.to_string(), json!([recording_hook(kind, seen_as)]));
    }
    b.config["hooks"] = Value::Object(hooks);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/hooklog", "type": "bind", "source": host,
        "options": ["rbind", "rw"]
    }));
    (b, logdir)
}

fn order(logdir: &Path) -> Vec<String> {
    std::fs::read_to_string(logdir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hook_state(logdir: &Path, kind: &str) -> Value {
    let text = std::fs::read_to_string(logdir.join(format!("{kind}.json")))
        .unwrap_or_else(|e| panic!("{kind} left no state: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind} stdin {text:?}: {e}"))
}

fn hook_ns(logdir: &Path, kind: &str) -> String {
    std::fs::read_to_string(logdir.join(format!("{kind}.ns")))
        .unwrap()
        .trim()
        .to_string()
}

fn line(kind: &str) -> String {
    format!("{kind} env-{kind} arg-{kind}")
}

#[test]
fn every_hook_runs_at_its_moment_with_state_env_and_args() {
    let (b, logdir) = recording_bundle("hooks-all", &["sleep", "100"]);
    b.create_ok();
    assert_eq!(
        order(&logdir),
        vec![
            line("prestart"),
            line("createRuntime"),
            line("createContainer")
        ],
        "after create"
    );
    let pid = b.state()["pid"].as_i64().unwrap();
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    // Both ran (their relative order is checked by
    // poststart_runs_after_start_container_hooks).
    let mut after_start = wait_lines(&logdir, 5)[3..].to_vec();
    after_start.sort();
    assert_eq!(
        after_start,
        [line("poststart"), line("startContainer")],
        "after start"
    );
    assert!(ozz(&["kill", &b.id, "KILL"]).status.success());
    b.wait_status("stopped");
    let out = b.cmd("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    let all = order(&logdir);
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[5], line("poststop"), "{all:?}");

    let bundle_dir = b.dir.canonicalize().unwrap();
    for (kind, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let st = hook_state(&logdir, kind);
        assert_eq!(st["status"], status, "{kind}: {st}");
        assert_eq!(st["id"], b.id.as_str(), "{kind}: {st}");
        assert_eq!(st["bundle"], bundle_dir.to_str().unwrap(), "{kind}: {st}");
        assert!(st["ociVersion"].is_string(), "{kind}: {st}");
        if kind != "poststop" {
            assert_eq!(st["pid"].as_i64(), Some(pid), "{kind}: {st}");
        }
    }

    let host = host_mnt_ns();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(
            hook_ns(&logdir, kind),
            host,
            "{kind} must run in the host's mount ns"
        );
    }
    for kind in ["createContainer", "startContainer"] {
        let ns = hook_ns(&logdir, kind);
        assert!(ns.starts_with("mnt:["), "{kind}: {ns}");
        assert_ne!(ns, host, "{kind} must run in the container's mount ns");
    }
}

/// Waits (bounded) until `order` has `n` lines.
fn wait_lines(logdir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = order(logdir);
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The spec: startContainer hooks run before the user's program is
/// executed, poststart hooks after it is executed and before `start`
/// returns. A slow startContainer hook makes a violation deterministic.
#[test]
fn poststart_runs_after_start_container_hooks() {
    let (mut b, logdir) = recording_bundle("hooks-order", &["sleep", "100"]);
    let start = &mut b.config["hooks"]["startContainer"][0]["args"][2];
    *start = json!(format!("sleep 0.5; {RECORD}"));
    b.create_ok();
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let lines = order(&logdir);
    assert_eq!(
        lines[3..],
        [line("startContainer"), line("poststart")],
        "start returned before the startContainer hook ran / the program was executed"
    );
}

#[test]
fn run_fires_the_hooks_too() {
    let (b, logdir) = recording_bundle("hooks-run", &["true"]);
    b.run_ok();
    let mut lines = order(&logdir);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(
        lines[..3],
        [
            line("prestart"),
            line("createRuntime"),
            line("createContainer")
        ]
    );
    assert_eq!(lines[5], line("poststop"));
    lines.sort();
    let mut want: Vec<String> = KINDS.iter().map(|k| line(k)).collect();
    want.sort();
    assert_eq!(lines, want);
    assert_eq!(hook_state(&logdir, "poststop")["status"], "stopped");
}

/// Nothing of the container is left: no state dir, no cgroup directory, and
/// the init (whose pid the prestart hook recorded) is gone.
fn assert_nothing_left(b: &Bundle, pid_file: &Path) {
    assert!(
        !state_root().join(&b.id).exists(),
        "state dir of {} left behind",
        b.id
    );
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer", ""] {
        let dir = b.cgroup_dir(ctrl);
        assert!(
            !dir.join("cgroup.procs").exists(),
            "cgroup {} left behind",
            dir.display()
        );
    }
    let st: Value = serde_json::from_str(&std::fs::read_to_string(pid_file).unwrap()).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // The parent kills and reaps the init before it exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !process_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(process_gone(pid), "container init {pid} left running");
}

/// A prestart hook saving the state JSON (with the init's pid) to `file`.
fn save_state_hook(file: &Path) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", file.display())]})
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let mut b = bundle("hooks-fail", &["true"]);
    let saved = b.dir.join("saved-state.json");
    b.config["hooks"] = json!({
        "prestart": [save_state_hook(&saved)],
        "createRuntime": [{"path": "/bin/sh",
                           "args": ["sh", "-c", "echo hook-says-no >&2; exit 3"]}],
    });
    let out = b.create(&[]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("createRuntime"), "{err}");
    assert!(err.contains("hook-says-no"), "{err}");
    assert_nothing_left(&b, &saved);
}

#[test]
fn hook_timeout_kills_the_hook_and_fails_create() {
    let mut b = bundle("hooks-timeout", &["true"]);
    let saved = b.dir.join("saved-state.json");
    // A unique duration identifies the hook's process in /proc.
    let duration = format!("100.{}{}", std::process::id(), b.id.len());
    b.config["hooks"] = json!({
        "prestart": [save_state_hook(&saved)],
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", duration], "timeout": 1}],
    });
    let started = Instant::now();
    let out = b.create(&[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(took < Duration::from_secs(10), "create took {took:?}");
    assert!(took >= Duration::from_secs(1), "create took {took:?}");
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert_nothing_left(&b, &saved);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&duration),
                "hook process {} survived",
                entry.path().display()
            );
        }
    }
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let mut b = bundle("hooks-warn", &["sleep", "100"]);
    let marker = b.dir.join("second-poststop-ran");
    b.config["hooks"] = json!({
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}],
        "poststop": [{"path": "/bin/false"},
                     {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}],
    });
    b.create_ok();
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert!(
        stderr(&out).contains("poststart"),
        "no warning: {}",
        stderr(&out)
    );
    assert_eq!(b.status(), "running");
    let out = b.cmd("delete", &["--force"]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(
        stderr(&out).contains("poststop"),
        "no warning: {}",
        stderr(&out)
    );
    assert!(
        marker.exists(),
        "a failing poststop hook stopped the next one"
    );
    assert!(!state_root().join(&b.id).exists());
}

#[test]
fn failing_prestart_hook_stops_the_later_hooks() {
    let mut b = bundle("hooks-prestart", &["true"]);
    let marker = b.dir.join("create-runtime-ran");
    b.config["hooks"] = json!({
        "prestart": [{"path": "/bin/false"}],
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}],
    });
    let out = b.create(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("prestart"), "{}", stderr(&out));
    assert!(!marker.exists(), "createRuntime ran after prestart failed");
    assert!(!state_root().join(&b.id).exists());
}

#[test]
fn missing_hook_binary_fails_create_and_leaves_nothing() {
    let mut b = bundle("hooks-nobin", &["true"]);
    let saved = b.dir.join("saved-state.json");
    b.config["hooks"] = json!({
        "prestart": [save_state_hook(&saved)],
        "createRuntime": [{"path": "/no/such/hook"}],
    });
    let out = b.create(&[]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/hook"), "{err}");
    assert_nothing_left(&b, &saved);
}

/// The spec: if a startContainer hook fails, the runtime MUST generate an
/// error and stop the container; the user's program never runs.
#[test]
fn failing_start_container_hook_fails_start() {
    let (mut b, logdir) = recording_bundle(
        "hooks-startfail",
        &["sh", "-c", "echo ran > /hooklog/program"],
    );
    b.config["hooks"]["startContainer"] =
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]);
    b.create_ok();
    let out = b.cmd("start", &[]);
    assert!(
        !out.status.success(),
        "start succeeded although its startContainer hook failed"
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    b.wait_status("stopped");
    assert!(!logdir.join("program").exists(), "the program ran");
    assert!(
        !order(&logdir).contains(&line("poststart")),
        "poststart ran"
    );
}

#[test]
fn relative_hook_paths_and_bad_timeouts_are_refused_before_anything_runs() {
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let mut b = bundle("hooks-relative", &["true"]);
        let marker = b.dir.join("ran");
        b.config["hooks"] = json!({
            kind: [{"path": "sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}]
        });
        let out = b.create(&[]);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("absolute"), "{kind}: {err}");
        assert!(!marker.exists(), "{kind}: the relative hook ran");
        assert!(!state_root().join(&b.id).exists());
    }
    // The same MUST for timeouts: if set, greater than zero.
    for timeout in [0, -1] {
        let mut b = bundle("hooks-timeout0", &["true"]);
        b.config["hooks"] = json!({"prestart": [{"path": "/bin/true", "timeout": timeout}]});
        let out = b.create(&[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "timeout {timeout}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("timeout"), "{}", stderr(&out));
        assert!(!state_root().join(&b.id).exists());
    }
}

/// As runc: a hook without "env" inherits the runtime's environment; an
/// explicit list (even empty) is the hook's whole environment.
#[test]
fn hook_env_absent_inherits_the_runtimes_and_present_replaces_it() {
    let mut b = bundle("hooks-env", &["true"]);
    let inherited = b.dir.join("inherited");
    let replaced = b.dir.join("replaced");
    b.config["hooks"] = json!({"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", format!("echo \"[$OZZ_HOOK_MARK]\" > {}", inherited.display())]},
        {"path": "/bin/sh", "args": ["sh", "-c", format!("echo \"[$OZZ_HOOK_MARK]\" > {}", replaced.display())],
         "env": []},
    ]});
    b.write();
    let out = std::process::Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .env("OZZ_HOOK_MARK", "from-runtime")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "run: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&inherited).unwrap(),
        "[from-runtime]\n"
    );
    assert_eq!(std::fs::read_to_string(&replaced).unwrap(), "[]\n");
}

/// A hook that writes more than a pipe holds, or never reads a large state
/// from stdin, must not deadlock the runtime (runc drains both).
#[test]
fn chatty_hooks_do_not_deadlock() {
    let mut b = bundle("hooks-chatty", &["true"]);
    let marker = b.dir.join("after");
    // A state JSON beyond a pipe's 64 KiB, via a large annotation (larger
    // ones: see cli.rs large_annotations_are_accepted).
    b.config["annotations"] = json!({"big": "x".repeat(100_000)});
    b.config["hooks"] = json!({
        "prestart": [
            {"path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"]},
            {"path": "/bin/true"},
        ],
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", format!("wc -c > {}", marker.display())]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero; exit 1"]}],
    });
    b.write();
    let started = Instant::now();
    let mut child = std::process::Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.expect("ozz run hung on a chatty hook");
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "run: {err}");
    let seen: usize = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(seen > 100_000, "the hook got {seen} bytes of state");
    // The failing poststop's warning stays one bounded line.
    let warning = err
        .lines()
        .find(|l| l.contains("poststop"))
        .unwrap_or_default();
    assert!(warning.len() < 10_000, "warning of {} bytes", warning.len());
}

/// createContainer runs after the runtime environment is set up (the
/// bundle's mounts are in place under the rootfs) and before pivot_root;
/// prestart/createRuntime see none of it, being in the host's namespace.
#[test]
fn create_container_hooks_see_the_container_mounts() {
    let mut b = bundle("hooks-mounts", &["true"]);
    let out = b.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let rootfs = shared_rootfs().canonicalize().unwrap();
    let probe = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("grep -c ' {}/tmp ' /proc/self/mountinfo > {}/{name}; true",
                    rootfs.display(), out.display())]})
    };
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
    }));
    b.config["hooks"] = json!({
        "createRuntime": [probe("createRuntime")],
        "createContainer": [probe("createContainer")],
    });
    b.run_ok();
    let count = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        count("createContainer"),
        "1",
        "the /tmp tmpfs is not mounted yet"
    );
    assert_eq!(
        count("createRuntime"),
        "0",
        "the host sees the container's mount"
    );
}
