//! The command line: --version, features, spec, --log in JSON, and the
//! one-line error + exit 1 + nothing left rule for bad input, compared with
//! Debian's runc where it makes sense.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use spec_tests::*;

const RUNC: &str = "/usr/sbin/runc";

fn features() -> Value {
    let out = ozz(&["features"]);
    assert!(out.status.success(), "features: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("features JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A bundle-less failure must leave neither a state dir nor a cgroup.
fn assert_nothing_left(id: &str) {
    assert!(
        !state_root().join(id).exists(),
        "state dir of {id} left behind"
    );
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = entry.path().join(cgroup_parent()).join(id);
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

/// One line on stderr and exit code 1.
fn assert_one_line_error(out: &Output, what: &str) -> String {
    assert_one_line_error_code(out, 1, what)
}

/// A failure of `exec` itself: one line, `exec failed: …`, and runc's exit
/// code for it, 255 (the process's own codes pass through unchanged).
fn assert_exec_error(out: &Output, what: &str) -> String {
    let err = assert_one_line_error_code(out, 255, what);
    assert!(err.starts_with("exec failed: "), "{what}: {err}");
    err
}

fn assert_one_line_error_code(out: &Output, code: i32, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err:?}");
    assert!(!err.trim().is_empty(), "{what}: empty error");
    err.trim().to_string()
}

#[test]
fn version_prints_ozz_and_spec_versions() {
    for flag in ["--version", "-v"] {
        let out = Command::new(ozz_bin()).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}");
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        let version = lines[0].strip_prefix("ozz version ").expect(&text);
        assert!(
            !version.is_empty() && version.chars().next().unwrap().is_ascii_digit(),
            "{text}"
        );
        assert_eq!(lines[1], "spec: 1.3.0", "{text}");
    }
}

#[test]
fn features_document_is_complete_and_true() {
    let f = features();
    assert_eq!(f["ociVersionMax"], "1.3.0");
    assert!(f["ociVersionMin"].as_str().unwrap().starts_with("1.0"));
    let hooks = strings(&f["hooks"]);
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|h| h == kind), "{kind} missing: {hooks:?}");
    }
    let opts = strings(&f["mountOptions"]);
    for o in [
        "ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "rprivate",
    ] {
        assert!(opts.iter().any(|x| x == o), "{o} missing");
    }
    let ns = strings(&f["linux"]["namespaces"]);
    for n in ["mount", "pid", "network", "ipc", "uts", "user", "cgroup"] {
        assert!(ns.iter().any(|x| x == n), "{n} missing");
    }
    let caps = strings(&f["linux"]["capabilities"]);
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{caps:?}");

    // The seccomp claims are those the seccomp tests prove, and every
    // claimed action and operator is accepted by create.
    let sc = &f["linux"]["seccomp"];
    assert_eq!(sc["enabled"], true);
    let actions = strings(&sc["actions"]);
    for a in [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
    // NOTIFY works with a listener (seccomp.rs:
    // notify_hands_the_fd_and_state_to_the_listener).
    assert!(
        actions.iter().any(|x| x == "SCMP_ACT_NOTIFY"),
        "NOTIFY missing: {actions:?}"
    );
    let ops = strings(&sc["operators"]);
    for o in ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ"] {
        assert!(ops.iter().any(|x| x == o), "{o} missing: {ops:?}");
    }
    let archs = strings(&sc["archs"]);
    if cfg!(target_arch = "x86_64") {
        // Rules are built for each (seccomp.rs: a_32_bit_program_runs_...).
        for a in ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] {
            assert!(archs.iter().any(|x| x == a), "{a} missing: {archs:?}");
        }
    }
    // NOTIFY needs a listener to connect to: proven in seccomp.rs.
    for action in actions.iter().filter(|a| *a != "SCMP_ACT_NOTIFY") {
        let mut b = bundle("feat-act", &["true"]);
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": action}]});
        let out = b.create(&[]);
        assert!(
            out.status.success(),
            "{action} claimed but: {}",
            stderr(&out)
        );
    }
    for op in &ops {
        let mut b = bundle("feat-op", &["true"]);
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 8, "valueTwo": 8, "op": op}]}]});
        let out = b.create(&[]);
        assert!(out.status.success(), "{op} claimed but: {}", stderr(&out));
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = workspace()
        .join("target/spec-tests/cli")
        .join(unique_id(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn spec_writes_a_config_that_run_accepts() {
    let dir = scratch_dir("spec-run");
    let out = ozz(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(out.status.success(), "spec: {}", stderr(&out));
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(config["ociVersion"], "1.3.0");
    assert_eq!(config["root"]["path"], "rootfs");
    // Only what a terminal-less test needs changes; the rootfs is linked in.
    std::os::unix::fs::symlink(shared_rootfs(), dir.join("rootfs")).unwrap();
    config["process"]["terminal"] = json!(false);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = unique_id("spec-run");
    let out = ozz(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    // `sh` reads EOF from /dev/null and exits 0.
    assert_eq!(out.status.code(), Some(0), "run: {}", stderr(&out));
    assert!(!state_root().join(&id).exists());
    assert!(!Path::new("/sys/fs/cgroup/pids").join(&id).exists());

    let rootless = scratch_dir("spec-rootless");
    let out = ozz(&["spec", "--rootless", "--bundle", rootless.to_str().unwrap()]);
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    let config: Value =
        serde_json::from_slice(&std::fs::read(rootless.join("config.json")).unwrap()).unwrap();
    let ns = config["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "{config}");
    assert!(config["linux"]["uidMappings"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rootless);
}

#[test]
fn spec_refuses_to_overwrite() {
    let dir = scratch_dir("spec-over");
    std::fs::write(dir.join("config.json"), "mine").unwrap();
    let out = ozz(&["spec", "--bundle", dir.to_str().unwrap()]);
    let err = assert_one_line_error(&out, "spec over an existing config");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        "mine"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        r.into_iter()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !(b[10] == b'T' || b[10] == b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

#[test]
fn log_json_records_the_error_line() {
    let log = scratch_dir("log").join("ozz.log");
    let out = ozz(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container-for-log",
    ]);
    let err = assert_one_line_error(&out, "state of an unknown container");
    let text = std::fs::read_to_string(&log).expect("log file written");
    let entry: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no JSON error line in {text:?}"));
    assert_eq!(entry["msg"], err.as_str());
    let time = entry["time"].as_str().unwrap();
    assert!(is_rfc3339(time), "{time}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["level"].is_string() && v["msg"].is_string(), "{line}");
    }
}

/// Every way of breaking a bundle, applied to a valid bundle.
type Breaker = Box<dyn Fn(&mut Bundle)>;

fn broken_bundles() -> Vec<(&'static str, Breaker)> {
    vec![
        (
            "malformed config.json",
            Box::new(|b: &mut Bundle| {
                b.write();
                std::fs::write(b.dir.join("config.json"), "{\"ociVersion\": \"1.0.2\", ").unwrap();
            }),
        ),
        (
            "process.args of the wrong type",
            Box::new(|b: &mut Bundle| {
                b.config["process"]["args"] = json!("sh -c true");
                b.write();
            }),
        ),
        (
            "uid of the wrong type",
            Box::new(|b: &mut Bundle| {
                b.config["process"]["user"]["uid"] = json!("root");
                b.write();
            }),
        ),
        (
            "missing rootfs",
            Box::new(|b: &mut Bundle| {
                b.config["root"]["path"] = json!(b.dir.join("no-such-rootfs"));
                b.write();
            }),
        ),
        (
            "missing process.args",
            Box::new(|b: &mut Bundle| {
                b.config["process"].as_object_mut().unwrap().remove("args");
                b.write();
            }),
        ),
        (
            "empty process.args",
            Box::new(|b: &mut Bundle| {
                b.config["process"]["args"] = json!([]);
                b.write();
            }),
        ),
        (
            "missing config.json",
            Box::new(|b: &mut Bundle| {
                let _ = std::fs::remove_file(b.dir.join("config.json"));
            }),
        ),
    ]
}

/// Runs create on the already written bundle.
fn create_written(b: &Bundle) -> Output {
    ozz_quiet(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
}

#[test]
fn bad_bundles_fail_with_one_line_and_leave_nothing() {
    for (what, breaker) in broken_bundles() {
        let mut b = bundle("bad", &["true"]);
        breaker(&mut b);
        let out = create_written(&b);
        assert_one_line_error(&out, what);
        assert_nothing_left(&b.id);
        // run fails the same way
        let out = ozz(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert_one_line_error(&out, what);
        assert_nothing_left(&b.id);
    }
}

#[test]
fn missing_program_fails_create_like_runc() {
    for program in ["no-such-program", "/no/such/program"] {
        let b = bundle("noprog", &[program]);
        let out = b.create(&[]);
        let err = assert_one_line_error(&out, program);
        assert!(err.contains(program), "{err}");
        assert_nothing_left(&b.id);
    }
}

#[test]
fn unknown_signals_are_refused() {
    let b = bundle("badsig", &["sleep", "100"]);
    b.create_ok();
    for sig in ["SIGNOPE", "NOPE", "0x9", "999", "65", ""] {
        let out = ozz(&["kill", &b.id, sig]);
        assert_one_line_error(&out, sig);
    }
    // Nothing happened to the container.
    assert_eq!(b.status(), "created");
}

#[test]
fn real_time_signals_by_number_are_delivered() {
    // podman sends systemd containers SIGRTMIN+3 as a number; runc accepts it.
    let sig = (SIGRTMIN + 3).to_string();
    let script = format!("trap 'exit 0' {sig}; while :; do sleep 0.05; done");
    let b = bundle("rtsig", &["sh", "-c", &script]);
    b.create_and_start();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(b.status(), "running");
    let out = ozz(&["kill", &b.id, &sig]);
    assert!(out.status.success(), "kill {sig}: {}", stderr(&out));
    // The shell's trap ends it: the signal arrived.
    b.wait_status("stopped");
}

/// glibc's SIGRTMIN (NPTL keeps 32 and 33 for itself).
const SIGRTMIN: i32 = 34;

fn runc(root: &Path, args: &[&str]) -> Output {
    Command::new(RUNC)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run runc")
}

#[test]
fn exit_codes_match_runc() {
    if !Path::new(RUNC).exists() {
        println!("SKIP: {RUNC} is not installed");
        return;
    }
    let root = scratch_dir("runc-root");
    // Control: both accept the valid bundle, so the failures below are about
    // what was broken.
    let b = bundle("runc-ok", &["true"]);
    b.write();
    let out = runc(&root, &["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
    assert_eq!(out.status.code(), Some(0), "runc: {}", stderr(&out));
    assert_eq!(b.run().status.code(), Some(0));

    for (what, breaker) in broken_bundles() {
        let mut b = bundle("runc-bad", &["true"]);
        breaker(&mut b);
        let theirs = runc(&root, &["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        let ours = ozz(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{what}: ozz {} / runc {}",
            stderr(&ours),
            stderr(&theirs)
        );
        let _ = runc(&root, &["delete", "--force", &b.id]);
    }
    for verb in ["state", "kill", "delete", "start", "pause", "ps"] {
        let theirs = runc(&root, &[verb, "no-such-ctr"]);
        let ours = ozz(&[verb, "no-such-ctr"]);
        assert_eq!(ours.status.code(), theirs.status.code(), "{verb}");
    }
    // An unknown signal: both refuse.
    let b = bundle("runc-sig", &["sleep", "100"]);
    b.write();
    let out = Command::new(RUNC)
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let theirs = runc(&root, &["kill", &b.id, "SIGNOPE"]);
    let _ = runc(&root, &["delete", "--force", &b.id]);
    b.create_ok();
    let ours = ozz(&["kill", &b.id, "SIGNOPE"]);
    assert_eq!(ours.status.code(), theirs.status.code());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn log_records_errors_from_inside_create_as_json_and_text() {
    let b = bundle("log-create", &["no-such-program-for-log"]);
    b.write();
    let dir = scratch_dir("log-create");
    let json_log = dir.join("json.log");
    let out = ozz_quiet(&[
        "--log",
        json_log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    let err = assert_one_line_error(&out, "create of a missing program");
    let text = std::fs::read_to_string(&json_log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error", "{text}");
    assert_eq!(last["msg"], err.as_str(), "{text}");
    assert!(is_rfc3339(last["time"].as_str().unwrap()), "{text}");
    assert_nothing_left(&b.id);

    // The text format is runc's logfmt: time="…" level=error msg="…"
    let text_log = dir.join("text.log");
    let out = ozz_quiet(&[
        "--log",
        text_log.to_str().unwrap(),
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert_one_line_error(&out, "create of a missing program");
    let text = std::fs::read_to_string(&text_log).unwrap();
    let line = text.lines().last().unwrap();
    let time = line
        .strip_prefix("time=\"")
        .and_then(|r| r.split_once('"'))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("{line}"));
    assert!(is_rfc3339(time), "{line}");
    assert!(line.contains(" level=error msg="), "{line}");
    assert!(line.contains("no-such-program-for-log"), "{line}");
    assert_nothing_left(&b.id);
}

#[test]
fn a_non_root_process_can_be_started() {
    // The init opens exec.fifo after becoming the configured user: the fifo
    // must be writable by it (0622 whatever the caller's umask, as runc).
    for nnp in [true, false] {
        let mut b = bundle("nonroot", &["id", "-u"]);
        b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.create_ok();
        use std::os::unix::fs::PermissionsExt;
        let fifo = state_root().join(&b.id).join("exec.fifo");
        let mode = std::fs::metadata(&fifo).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o622, "exec.fifo mode {mode:o}");
        let out = b.cmd("start", &[]);
        assert!(out.status.success(), "start (nnp {nnp}): {}", stderr(&out));
        b.wait_status("stopped");
        let out = b.cmd("delete", &[]);
        assert!(out.status.success());
        assert_eq!(b.run_ok(), "1000\n");
    }
}

fn runc_quiet(root: &Path, args: &[&str]) -> bool {
    Command::new(RUNC)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Brings a container (ozz's with `ours`, else runc's) to `state`.
fn drive(b: &Bundle, root: Option<&Path>, state: &str) {
    let id = b.id.as_str();
    let dir = b.dir.to_str().unwrap();
    let ok = |args: &[&str]| match root {
        Some(root) => runc_quiet(root, args),
        None => ozz_quiet(args).status.success(),
    };
    assert!(ok(&["create", "--bundle", dir, id]), "create {id}");
    if state == "created" {
        return;
    }
    assert!(ok(&["start", id]), "start {id}");
    if state == "paused" {
        assert!(ok(&["pause", id]), "pause {id}");
    }
    if state == "stopped" {
        assert!(ok(&["kill", id, "KILL"]), "kill {id}");
        for _ in 0..300 {
            let out = match root {
                Some(root) => runc(root, &["state", id]),
                None => ozz(&["state", id]),
            };
            let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if st["status"] == "stopped" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{id} never stopped");
    }
}

#[test]
fn refusals_by_state_match_runc() {
    if !Path::new(RUNC).exists() {
        println!("SKIP: {RUNC} is not installed");
        return;
    }
    let root = scratch_dir("runc-states");
    let verbs: [&[&str]; 10] = [
        &["state"],
        &["kill", "KILL"],
        &["kill", "0"],
        &["kill", "37"],
        &["start"],
        &["pause"],
        &["resume"],
        &["delete"],
        &["exec", "true"],
        &["ps"],
    ];
    for state in ["created", "running", "paused", "stopped"] {
        for verb in verbs {
            let ours = bundle("st-ozz", &["sleep", "100"]);
            let theirs = bundle("st-runc", &["sleep", "100"]);
            ours.write();
            theirs.write();
            drive(&ours, None, state);
            drive(&theirs, Some(&root), state);
            let call = |id: &str| {
                let mut args = vec![verb[0], id];
                args.extend_from_slice(&verb[1..]);
                if verb[0] == "exec" {
                    args = vec!["exec", id, "true"];
                }
                args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            };
            let ours_args = call(&ours.id);
            let theirs_args = call(&theirs.id);
            let ours_out = ozz_quiet(&ours_args.iter().map(String::as_str).collect::<Vec<_>>());
            let theirs_ok = runc_quiet(
                &root,
                &theirs_args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let _ = runc_quiet(&root, &["delete", "--force", &theirs.id]);
            // A frozen container would survive the harness's delete --force
            // (see paused_created_container_is_paused_and_deletable).
            thaw(&ours);
            assert_eq!(
                ours_out.status.success(),
                theirs_ok,
                "{verb:?} on a {state} container: ozz {:?} {}",
                ours_out.status.code(),
                stderr(&ours_out)
            );
            if !theirs_ok {
                // runc's exec fails with 255, every other command with 1.
                let code = if verb[0] == "exec" { 255 } else { 1 };
                assert_eq!(ours_out.status.code(), Some(code), "{verb:?} on {state}");
                assert_eq!(
                    stderr(&ours_out).trim().lines().count(),
                    1,
                    "{verb:?} on {state}: {}",
                    stderr(&ours_out)
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Thaws the container's freezer directly through the cgroup files.
fn thaw(b: &Bundle) {
    let (file, value) = if is_cgroup_v2() {
        (b.cgroup_dir("").join("cgroup.freeze"), "0")
    } else {
        (b.cgroup_dir("freezer").join("freezer.state"), "THAWED")
    };
    if file.exists() {
        let _ = std::fs::write(file, value);
    }
}

/// runc: a created container that was paused reports "paused", and
/// delete --force thaws it before killing it.
#[test]
fn paused_created_container_is_paused_and_deletable() {
    let b = bundle("pause-created", &["sleep", "100"]);
    b.create_ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let out = b.cmd("pause", &[]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    let status = b.status();
    let started = std::time::Instant::now();
    let deleted = b.cmd("delete", &["--force"]);
    let took = started.elapsed();
    if !deleted.status.success() {
        // Never leave a frozen, unkillable init behind.
        thaw(&b);
        let _ = b.cmd("delete", &["--force"]);
    }
    assert_eq!(status, "paused", "a frozen created container");
    assert!(
        deleted.status.success(),
        "delete --force of a paused created container ({took:?}): {}",
        stderr(&deleted)
    );
    assert!(process_gone(pid));
    assert_nothing_left(&b.id);
}

#[test]
fn exec_failures_are_reported_in_one_line() {
    let b = bundle("exec-fail", &["sleep", "100"]);
    b.create_and_start();
    for (args, want) in [
        (vec!["no-such-program"], "no-such-program"),
        (vec!["/no/such/program"], "/no/such/program"),
        (vec!["--cwd", "/no/such/dir", "true"], "/no/such/dir"),
        (vec!["--cap", "CAP_NOPE", "true"], "CAP_NOPE"),
    ] {
        // flags first, then the id, then the command
        let (flags, cmd) = args.split_at(args.len() - 1);
        let mut argv = vec!["exec"];
        argv.extend_from_slice(flags);
        argv.push(&b.id);
        argv.extend_from_slice(cmd);
        let out = ozz(&argv);
        let err = assert_exec_error(&out, &format!("{args:?}"));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // -d: the failure is reported before exec returns, too.
    let out = ozz(&["exec", "-d", &b.id, "/no/such/program"]);
    let err = assert_exec_error(&out, "exec -d of a missing program");
    assert!(err.contains("/no/such/program"), "{err}");
    // A detached exec of a real program returns at once.
    let started = std::time::Instant::now();
    let out = ozz_quiet(&["exec", "-d", &b.id, "sleep", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(b.status(), "running");
}

#[test]
fn every_claimed_mount_option_and_seccomp_flag_is_accepted() {
    let f = features();
    let mut refused = Vec::new();
    for opt in strings(&f["mountOptions"]) {
        let mut b = bundle("feat-mnt", &["true"]);
        let host = b.dir.join("src");
        std::fs::create_dir_all(&host).unwrap();
        // Propagation and bind options go on a bind mount, the rest on a tmpfs.
        let bindish = opt.contains("bind")
            || opt.contains("shared")
            || opt.contains("slave")
            || opt.contains("private")
            || opt.contains("symfollow")
            || opt.starts_with('r') && !["rw", "ro", "relatime"].contains(&opt.as_str());
        let mount = if bindish {
            let mut opts = vec![opt.clone()];
            if !opt.contains("bind") {
                opts.push("rbind".into());
            }
            json!({"destination": "/tmp", "type": "bind", "source": host, "options": opts})
        } else {
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [opt]})
        };
        b.config["mounts"].as_array_mut().unwrap().push(mount);
        let out = b.run();
        if !out.status.success() {
            refused.push(format!("{opt}: {}", stderr(&out).trim()));
        }
    }
    assert!(
        refused.is_empty(),
        "claimed but refused:\n{}",
        refused.join("\n")
    );

    for flag in strings(&f["linux"]["seccomp"]["supportedFlags"]) {
        let mut b = bundle("feat-flag", &["true"]);
        b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]});
        let out = b.run();
        assert!(out.status.success(), "{flag} claimed but: {}", stderr(&out));
    }
}

/// docs/cli.md: every error is one line on stderr and exit code 1 — usage
/// errors included (callers parse the last stderr line as the reason).
#[test]
fn usage_errors_are_one_line_and_exit_1() {
    for args in [
        &["list", "--format", "yaml"][..],
        &["frobnicate"][..],
        &["kill"][..],
        &["create", "--no-such-flag", "x"][..],
    ] {
        let out = ozz(args);
        assert_one_line_error(&out, &format!("{args:?}"));
    }
}

/// Kubernetes allows 256 KiB of annotations; they are part of the state
/// JSON the runtime passes around, so such a container must run.
#[test]
fn large_annotations_are_accepted() {
    let mut b = bundle("big-annot", &["true"]);
    b.config["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(250_000)
    });
    let out = b.run();
    assert!(out.status.success(), "run: {}", stderr(&out));
}

/// The namespace types of the config.json that `BIN spec` writes.
fn spec_namespaces(bin: &Path) -> Vec<String> {
    let dir = scratch_dir("spec-ns");
    let out = Command::new(bin)
        .args(["spec", "--bundle", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} spec: {}",
        bin.display(),
        stderr(&out)
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut types: Vec<String> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    types
}

/// runc's `spec` lists a cgroup namespace only on a pure cgroup v2 host:
/// on v1 and hybrid hosts the container sees its cgroups at host paths.
#[test]
fn spec_has_a_cgroup_namespace_only_on_cgroup_v2_like_runc() {
    let ours = spec_namespaces(&ozz_bin());
    assert_eq!(
        ours.iter().any(|t| t == "cgroup"),
        is_cgroup_v2(),
        "cgroup v2 host: {}; namespaces {ours:?}",
        is_cgroup_v2()
    );
    if Path::new(RUNC).exists() {
        assert_eq!(ours, spec_namespaces(Path::new(RUNC)), "ozz vs runc spec");
    } else {
        println!("SKIP the comparison: {RUNC} is not installed");
    }
}

/// runc prints each event as `{"type":…,"id":…,"data":…}` in that order
/// (types/events.go); a client reading the stream as text sees the same.
#[test]
fn events_print_type_id_data_in_runcs_order() {
    let b = bundle("ev-order", &["sleep", "100"]);
    b.create_and_start();
    let out = b.cmd("events", &["--stats"]);
    assert!(out.status.success(), "events --stats: {}", stderr(&out));
    let line = stdout(&out);
    let prefix = format!("{{\"type\":\"stats\",\"id\":\"{}\",\"data\":{{", b.id);
    assert!(line.starts_with(&prefix), "{line}");
    let event: Value = serde_json::from_str(line.trim()).expect("one JSON line");
    assert!(event["data"].is_object(), "{line}");
}

/// A `--log` that cannot be written fails the command (exit 1, the path in
/// the one line, nothing created), as runc's does, instead of losing every
/// error the caller would read there.
#[test]
fn unusable_log_path_fails_with_exit_1() {
    let dir = scratch_dir("badlog");
    let missing_dir = dir.join("no-such-dir").join("log.json");
    let paths = [
        "invalid:/path".to_string(),
        missing_dir.to_str().unwrap().to_string(),
        dir.to_str().unwrap().to_string(),
    ];
    for log in &paths {
        let flag = format!("--log={log}");
        let out = ozz(&[&flag, "list"]);
        let err = assert_one_line_error(&out, log);
        assert!(err.contains(log.as_str()), "{log}: {err}");
        if Path::new(RUNC).exists() {
            let theirs = runc(&dir, &[&flag, "list"]);
            assert_eq!(out.status.code(), theirs.status.code(), "{log} vs runc");
        }
        let b = bundle("badlog", &["true"]);
        b.write();
        let out = ozz_quiet(&[&flag, "create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert_one_line_error(&out, log);
        assert_nothing_left(&b.id);
    }
    assert!(!Path::new("invalid:").exists());
    // A log in a directory that exists is created at once, even when
    // nothing is logged (runc opens it at start too).
    let fresh = dir.join("fresh.log");
    let out = ozz(&["--log", fresh.to_str().unwrap(), "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fresh.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// runc's exec exits 255 when exec itself fails (its usage errors excepted):
/// podman and the shim tell a runtime failure from the process's exit
/// code by it. Compared with runc's, failure by failure; a pid file that
/// cannot be written leaves no process behind.
#[test]
fn exec_runtime_failures_exit_255_like_runc() {
    let ours = bundle("exec-255", &["sleep", "100"]);
    ours.create_and_start();
    let bad_pid_file = ours.dir.join("no-such-dir").join("exec.pid");
    let bad_pid_file = bad_pid_file.to_str().unwrap();
    let cases: [(&[&str], &[&str], &str); 5] = [
        (&[], &["/no/such/program"], "/no/such/program"),
        (&[], &[], "args cannot be empty"),
        (&["--cwd", "/no/such/dir"], &["true"], "/no/such/dir"),
        (
            &["--pid-file", bad_pid_file],
            &["sleep", "77"],
            "no-such-dir",
        ),
        (
            &["-d", "--pid-file", bad_pid_file],
            &["sleep", "77"],
            "no-such-dir",
        ),
    ];
    let argv = |flags: &[&str], id: &str, cmd: &[&str]| -> Vec<String> {
        let mut v = vec!["exec".to_string()];
        v.extend(flags.iter().map(|s| s.to_string()));
        v.push(id.to_string());
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    };
    for (flags, cmd, want) in cases {
        let args = argv(flags, &ours.id, cmd);
        let out = ozz_quiet(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = assert_exec_error(&out, &format!("{args:?}"));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // The sleeps whose pid file could not be written were not left running.
    let procs =
        std::fs::read_to_string(cg_file(&ours, "pids", "cgroup.procs", "cgroup.procs")).unwrap();
    assert_eq!(procs.lines().count(), 1, "left behind: {procs}");
    let out = ozz(&["exec", "no-such-ctr", "true"]);
    let err = assert_exec_error(&out, "exec of an unknown container");
    assert!(err.contains("does not exist"), "{err}");
    // The process's own exit code is not exec's failure.
    let out = ozz(&["exec", &ours.id, "sh", "-c", "exit 255"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(stderr(&out), "");

    if !Path::new(RUNC).exists() {
        println!("SKIP the comparison: {RUNC} is not installed");
        return;
    }
    let root = scratch_dir("runc-exec-255");
    let theirs = bundle("exec-255-runc", &["sleep", "100"]);
    theirs.write();
    assert!(runc_quiet(
        &root,
        &[
            "run",
            "-d",
            "--bundle",
            theirs.dir.to_str().unwrap(),
            &theirs.id
        ]
    ));
    for (flags, cmd, _) in cases {
        let args = argv(flags, &theirs.id, cmd);
        let out = runc(&root, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            out.status.code(),
            Some(255),
            "runc {args:?}: {}",
            stderr(&out)
        );
    }
    let out = runc(&root, &["exec", "no-such-ctr", "true"]);
    assert_eq!(out.status.code(), Some(255), "runc: {}", stderr(&out));
    let _ = runc_quiet(&root, &["delete", "--force", &theirs.id]);
    let _ = std::fs::remove_dir_all(&root);
}
