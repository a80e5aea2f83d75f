//! `ozz checkpoint` and `ozz restore` through CRIU. A counter (a shell whose
//! count lives only in its memory) appends 1, 2, 3, … to a file on a bind
//! mount; after checkpoint and restore the file must read as one unbroken
//! sequence: no number lost (a gap), none repeated (a reset). CRIU needs a
//! kernel it supports: these run in the cgroup v2 guest after
//! hack/criu-guest-setup (`make test-checkpoint-v2`); where `criu check`
//! fails each test says so and skips, except the refusals, which need none.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::*;

/// Why CRIU cannot run here (the last line of `criu check`), or None.
fn criu_unusable() -> Option<String> {
    match Command::new("criu")
        .args(["--no-default-config", "check"])
        .output()
    {
        Err(e) => Some(format!("criu is not installed: {e}")),
        Ok(out) if out.status.success() => None,
        Ok(out) => {
            let text = format!("{}{}", stdout(&out), stderr(&out));
            let line = text
                .lines()
                .find(|l| l.contains("Error"))
                .or(text.lines().last())
                .unwrap_or("")
                .to_string();
            Some(format!("criu check fails: {line}"))
        }
    }
}

macro_rules! need_criu {
    () => {
        if let Some(why) = criu_unusable() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

const COUNTER: &str = "echo started > /scratch/mark; i=0; \
    while :; do i=$((i+1)); echo $i >> /out/log; sleep 0.05; done";

/// A counter container: /out is a host directory (bind), /scratch a tmpfs
/// whose content CRIU must carry, pids limited so the cgroup has a limit
/// to keep.
fn counter(tag: &str) -> (Bundle, PathBuf) {
    let (mut b, out) = out_bundle(tag, COUNTER);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m"]}),
    );
    b.config["linux"]["resources"]["pids"] = json!({"limit": 77});
    (b, out)
}

/// The numbers of a counter log, complete lines only: when the scratch dir
/// is on 9p (the guest's share of target/), a reader can see the file's new
/// size before the bytes of the line being appended (NULs, no newline).
fn numbers(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad line {l:?}"))
        })
        .collect()
}

/// Waits (bounded) until the log holds more than `n` numbers.
fn wait_past(log: &Path, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nums = numbers(log);
        if nums.len() > n {
            return nums;
        }
        assert!(
            Instant::now() < deadline,
            "{} stayed at {} numbers",
            log.display(),
            nums.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each number is the previous plus one: nothing lost, nothing repeated.
fn assert_unbroken(nums: &[u64], first: u64) {
    assert_eq!(
        nums.first(),
        Some(&first),
        "log starts at {:?}",
        nums.first()
    );
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the count broke: {} then {}", w[0], w[1]);
    }
}

/// Create and start with the container's stdio on /dev/null: the harness's
/// stderr file is unlinked once create returns, and CRIU cannot dump a
/// deleted file of the guest's 9p root (fstatfs fails).
fn start(b: &Bundle) {
    b.write();
    let status = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["create", "--bundle", b.dir.to_str().unwrap(), &b.id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    if !status.success() {
        // Again with the harness, for the error line.
        let out = b.create(&[]);
        panic!("ozz create: {}", stderr(&out));
    }
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "ozz start: {}", stderr(&out));
}

fn images(tag: &str) -> HostDir {
    HostDir::new(tag)
}

fn checkpoint(b: &Bundle, dir: &Path, extra: &[&str]) {
    let mut args = vec!["--image-path", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = b.cmd("checkpoint", &args);
    assert!(
        out.status.success(),
        "checkpoint {extra:?}: {}{}",
        stderr(&out),
        criu_log(&dir.join("dump.log"))
    );
}

/// CRIU's log lines that say what went wrong (the images dir goes away with
/// the test).
fn criu_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let first_error = lines
        .iter()
        .position(|l| l.contains("Error"))
        .unwrap_or(lines.len());
    let from = first_error.saturating_sub(12);
    let to = (first_error + 3).min(lines.len());
    format!(
        "\n--- {} ---\n{}",
        path.display(),
        lines[from..to].join("\n")
    )
}

/// `ozz restore -d` of `dir` as container `id` from bundle `b`'s directory.
/// Its stderr (which the restored init inherits in place of the host's
/// /dev/null it had) is a file kept in the images directory.
fn restore(b: &Bundle, id: &str, dir: &Path) {
    restore_with(b, id, dir, &[]);
}

fn restore_with(b: &Bundle, id: &str, dir: &Path, extra: &[&str]) {
    b.write();
    let err_path = dir.join("restore-stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let status = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["restore", "-d", "--bundle", b.dir.to_str().unwrap()])
        .args(extra)
        .arg("--image-path")
        .arg(dir)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "restore: {}{}",
        std::fs::read_to_string(&err_path).unwrap_or_default(),
        criu_log(&dir.join("restore.log"))
    );
}

fn pid_of(id: &str) -> i64 {
    let out = ozz(&["state", id]);
    assert!(out.status.success(), "state {id}: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "running", "{id}: {v}");
    v["pid"].as_i64().unwrap()
}

fn exec(id: &str, script: &str) -> String {
    let out = ozz(&["exec", id, "sh", "-c", script]);
    assert!(out.status.success(), "exec {script:?}: {}", stderr(&out));
    stdout(&out)
}

/// Checkpoint stops the counter and removes the container; restore brings
/// it back under the same ID, counting on from the very next number, with
/// its cgroup limit, tmpfs content, masked path, state and lo up.
#[test]
fn counter_resumes_exactly_where_it_stopped() {
    need_criu!();
    let (b, out) = counter("ck-resume");
    start(&b);
    let log = out.join("log");
    wait_past(&log, 10);
    let img = images("ck-resume-img");
    checkpoint(&b, &img.path, &[]);
    // The container is gone with its processes and cgroup, as with runc.
    assert!(
        !state_root().join(&b.id).exists(),
        "state left after checkpoint"
    );
    assert!(
        !b.cgroup_dir("").exists() || !is_cgroup_v2(),
        "cgroup left after checkpoint"
    );
    let stopped = numbers(&log);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        numbers(&log),
        stopped,
        "the counter ran on after checkpoint"
    );
    assert_unbroken(&stopped, 1);

    restore(&b, &b.id, &img.path);
    let pid = pid_of(&b.id);
    let nums = wait_past(&log, stopped.len() + 5);
    assert_unbroken(&nums, 1);
    // Its state is the restored init's, and the cgroup the container's.
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state_root().join(&b.id).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["pid"].as_i64(), Some(pid));
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.trim_end().ends_with(&b.id), "restored init in {cg:?}");
    if is_cgroup_v2() {
        assert_eq!(read_trimmed(&b.cgroup_dir("").join("pids.max")), "77");
    }
    assert_eq!(exec(&b.id, "cat /scratch/mark").trim(), "started");
    assert_eq!(exec(&b.id, "wc -c < /proc/kcore").trim(), "0", "mask lost");
    let lo = exec(&b.id, "ip link show lo");
    assert!(lo.contains(",UP"), "lo is down after restore: {lo}");
}

/// --leave-running: the container goes on; its images restore under a new
/// ID into a new cgroup (runc 1.1.5 puts them back in the old one), with
/// the bind mount taken from the new bundle, and that copy can be
/// checkpointed again.
#[test]
fn leave_running_then_restore_under_a_new_id_in_its_own_cgroup() {
    need_criu!();
    let (b, out) = counter("ck-leave");
    start(&b);
    let log = out.join("log");
    wait_past(&log, 10);
    let img = images("ck-leave-img");
    let before = numbers(&log).len();
    checkpoint(&b, &img.path, &["--leave-running"]);
    let orig_pid = pid_of(&b.id);
    let after = wait_past(&log, numbers(&log).len() + 3);
    assert_unbroken(&after, 1);

    let (copy, copy_out) = counter("ck-copy");
    let copy_log = copy_out.join("log");
    restore(&copy, &copy.id, &img.path);
    let pid = pid_of(&copy.id);
    assert_ne!(pid, orig_pid);
    let nums = wait_past(&copy_log, 5);
    // The copy counts on from a number the original had reached by the dump.
    let first = nums[0];
    assert!(
        first as usize > before && after.contains(&(first - 1)),
        "copy resumed at {first}; original had {before} before the dump"
    );
    assert_unbroken(&nums, first);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines().all(|l| l.ends_with(&copy.id)),
        "restored copy is not in its own cgroup: {cg:?}"
    );
    let procs = std::fs::read_to_string(copy.cgroup_dir("").join("cgroup.procs"))
        .or_else(|_| std::fs::read_to_string(copy.cgroup_dir("pids").join("cgroup.procs")))
        .unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs:?}"
    );
    let ps = ozz(&["ps", "--format", "json", &copy.id]);
    assert!(
        stdout(&ps).contains(&pid.to_string()),
        "ps: {}",
        stdout(&ps)
    );
    // The original kept counting in its own log all along.
    assert_unbroken(&numbers(&log), 1);

    let img2 = images("ck-leave-img2");
    checkpoint(&copy, &img2.path, &[]);
    assert!(!state_root().join(&copy.id).exists());
    let frozen = numbers(&copy_log);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(numbers(&copy_log), frozen);
}

/// A pre-dump copies memory while the counter runs on; the final dump
/// writes only what changed since (--parent-path) and restores whole.
#[test]
fn pre_dump_then_dump_on_its_parent_restores_unbroken() {
    need_criu!();
    let (b, out) = counter("ck-pre");
    start(&b);
    let log = out.join("log");
    wait_past(&log, 10);
    let img = images("ck-pre-img");
    let pre = img.path.join("pre");
    let fin = img.path.join("final");
    checkpoint(&b, &pre, &["--pre-dump"]);
    assert_eq!(b.status(), "running");
    wait_past(&log, numbers(&log).len() + 3);
    checkpoint(&b, &fin, &["--parent-path", "../pre"]);
    let parent = std::fs::read_link(fin.join("parent")).expect("final images link a parent");
    assert_eq!(parent, Path::new("../pre"));
    let stopped = numbers(&log);
    restore(&b, &b.id, &fin);
    let nums = wait_past(&log, stopped.len() + 5);
    assert_unbroken(&nums, 1);
}

/// Forks until a fork is refused (ash exits at the first refusal), at most
/// 100 times (no limit: a runtime that ignores numproc); the short sleeps
/// end by themselves and the init reaps them.
const FORK_STORM: &str = "sh -c 'i=0; while [ $i -lt 100 ]; do sleep 3 & i=$((i+1)); done' \
    </dev/null >/dev/null 2>&1; true";

/// A counter that forks nothing (its pause is `read -t` on a pipe that
/// never has data), so refused forks cannot stop it.
const QUIET_COUNTER: &str = "tail -f /dev/null | { i=0; while :; do i=$((i+1)); \
    echo $i >> /out/log; read -t 0.05 x; done; }";

/// Waits (bounded) until the container's forks are reaped.
fn wait_pids_below(b: &Bundle, n: u64) {
    let dir = if is_cgroup_v2() {
        b.cgroup_dir("")
    } else {
        b.cgroup_dir("pids")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current: u64 = read_trimmed(&dir.join("pids.current")).parse().unwrap();
        if current < n {
            return;
        }
        assert!(Instant::now() < deadline, "{current} tasks stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The numproc row of `ozz beancounters --format json`.
fn numproc(id: &str) -> serde_json::Value {
    let out = ozz(&["beancounters", "--format", "json", id]);
    assert!(out.status.success(), "beancounters: {}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list[0]["beancounters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["resource"] == "numproc")
        .cloned()
        .expect("a numproc row")
}

fn pids_events_max(b: &Bundle) -> u64 {
    let dir = if is_cgroup_v2() {
        b.cgroup_dir("")
    } else {
        b.cgroup_dir("pids")
    };
    keyed(&read_trimmed(&dir.join("pids.events")), "max").expect("max in pids.events")
}

/// OpenVZ's container came back with its limits and its counters: the
/// numproc limit set by `update` after create (the bundle still says 12)
/// and the failcnt of forks refused before the checkpoint are there after
/// restore, in a new cgroup whose own counter starts at zero; new refusals
/// add to it.
#[test]
fn beancounter_limits_and_failcnt_survive_a_restore() {
    need_criu!();
    let (mut b, out) = out_bundle("ck-bc", QUIET_COUNTER);
    b.config["annotations"] = json!({"org.openvz.beancounter.numproc": "12"});
    start(&b);
    let log = out.join("log");
    wait_past(&log, 5);
    exec(&b.id, FORK_STORM);
    wait_pids_below(&b, 5);
    let refused = pids_events_max(&b);
    assert!(refused > 0, "no fork was refused under numproc 12");
    assert_eq!(numproc(&b.id)["failcnt"], json!(refused));
    let up = ozz(&["update", &b.id, "--beancounter", "numproc=14"]);
    assert!(up.status.success(), "update: {}", stderr(&up));
    let maxheld = numproc(&b.id)["maxheld"].clone();

    let img = images("ck-bc-img");
    checkpoint(&b, &img.path, &[]);
    let stopped = numbers(&log);
    restore(&b, &b.id, &img.path);
    let row = numproc(&b.id);
    assert_eq!(row["limit"], json!(14), "{row}");
    assert_eq!(row["failcnt"], json!(refused), "{row}");
    assert_eq!(pids_events_max(&b), 0, "the restored cgroup is not new");
    if is_cgroup_v2() {
        assert_eq!(read_trimmed(&b.cgroup_dir("").join("pids.max")), "14");
        let (before, now) = (maxheld.as_u64().unwrap(), row["maxheld"].as_u64().unwrap());
        assert!(
            now >= before,
            "maxheld {now} after restore, {before} before"
        );
    }
    exec(&b.id, FORK_STORM);
    wait_pids_below(&b, 5);
    let again = pids_events_max(&b);
    assert!(again > 0, "no fork was refused after restore");
    assert_eq!(numproc(&b.id)["failcnt"], json!(refused + again));
    let nums = wait_past(&log, stopped.len() + 3);
    assert_unbroken(&nums, 1);
}

/// A TCP stream inside the container over 127.0.0.1: a client sends 1, 2,
/// 3, … to a server that writes what it receives to /out/log (its stdin
/// never ends: at EOF busybox's nc would close the connection).
const TCP_COUNTER: &str = "ip link set lo up; tail -f /dev/null | nc -l -p 5000 > /out/log & \
    sleep 0.5; \
    i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | nc 127.0.0.1 5000";

/// An established connection survives with --tcp-established (CRIU's TCP
/// repair): the server's log goes on from the next number. Without the
/// flag the checkpoint is refused and the container runs on.
#[test]
fn tcp_established_connection_survives_checkpoint_and_restore() {
    need_criu!();
    let (mut b, out) = out_bundle("ck-tcp", TCP_COUNTER);
    b.add_caps(&["CAP_NET_ADMIN"]);
    start(&b);
    let log = out.join("log");
    wait_past(&log, 10);
    let img = images("ck-tcp-img");
    let refused = b.cmd("checkpoint", &["--image-path", img.path.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "checkpoint of an established connection without --tcp-established"
    );
    assert_eq!(b.status(), "running");
    let counting = wait_past(&log, numbers(&log).len() + 3);
    assert_unbroken(&counting, 1);

    let img = images("ck-tcp-img2");
    checkpoint(&b, &img.path, &["--tcp-established"]);
    let stopped = numbers(&log);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(numbers(&log), stopped, "the stream ran on after checkpoint");
    restore_with(&b, &b.id, &img.path, &["--tcp-established"]);
    let nums = wait_past(&log, stopped.len() + 5);
    assert_unbroken(&nums, 1);
}

/// A named network namespace (`ip netns add`), deleted when dropped.
struct NamedNetns(String);

impl NamedNetns {
    fn new(tag: &str) -> NamedNetns {
        let name = unique_id(tag);
        let ok = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        };
        ok(&["netns", "add", &name]);
        let ns = NamedNetns(name);
        ok(&["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    /// Whether a TCP connection over its 127.0.0.1 gets through (CRIU's
    /// lock drops every packet), tried from a process in the namespace.
    fn loopback_connects(&self) -> bool {
        const PROBE: &str = "import socket\n\
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
            c = socket.create_connection(s.getsockname(), timeout=2)\n";
        Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-c", PROBE])
            .output()
            .expect("run ip netns exec")
            .status
            .success()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A container in a network namespace joined by path (as a pod's are):
/// CRIU locks that namespace for the dump and, unless a restore follows in
/// it, leaves it locked, cutting off everyone else who uses it. Without
/// --tcp-established there is nothing to keep, and ozz removes the lock;
/// a restore into the namespace then counts on and leaves it open.
#[test]
fn a_joined_network_namespace_is_not_left_locked() {
    need_criu!();
    let ns = NamedNetns::new("ck-ns");
    assert!(ns.loopback_connects(), "no loopback before the test");
    let (mut b, out) = counter("ck-ns");
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns.path());
        }
    }
    start(&b);
    let log = out.join("log");
    wait_past(&log, 5);
    let img = images("ck-ns-img");
    checkpoint(&b, &img.path, &[]);
    assert!(
        ns.loopback_connects(),
        "the namespace stayed locked after the checkpoint"
    );
    let stopped = numbers(&log);
    restore(&b, &b.id, &img.path);
    let nums = wait_past(&log, stopped.len() + 3);
    assert_unbroken(&nums, 1);
    assert!(
        ns.loopback_connects(),
        "the namespace is locked after the restore"
    );
}

/// Lazy migration: the dump serves the memory from a page server
/// (`--lazy-pages --page-server`, ready when a byte comes on --status-fd),
/// CRIU's lazy-pages daemon fetches it, and `restore --lazy-pages` resumes
/// the tasks before their memory is there (userfaultfd brings each page on
/// first touch). The copy, under a new ID, counts on from the very next
/// number; the checkpoint ends once every page went over.
#[test]
fn lazy_pages_restore_counts_on_from_the_next_number() {
    need_criu!();
    let (b, out) = counter("ck-lazy");
    start(&b);
    let log = out.join("log");
    wait_past(&log, 10);
    let img = images("ck-lazy-img");
    let port = (20000 + std::process::id() % 20000).to_string();
    let status = img.path.join("status");
    let script = format!(
        "exec 3>'{}'; exec '{}' --root '{}' checkpoint --lazy-pages \
         --page-server 127.0.0.1:{port} --status-fd 3 --image-path '{}' '{}'",
        status.display(),
        ozz_bin().display(),
        state_root().display(),
        img.path.display(),
        b.id
    );
    let mut dump = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&status).map_or(0, |m| m.len()) == 0 {
        if let Some(exit) = dump.try_wait().unwrap() {
            let out = dump.wait_with_output().unwrap();
            panic!(
                "lazy checkpoint ended ({exit}) before it was ready: {}{}",
                stderr(&out),
                criu_log(&img.path.join("dump.log"))
            );
        }
        assert!(Instant::now() < deadline, "lazy checkpoint never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = numbers(&log);
    let mut daemon = Command::new("criu")
        .args(["--no-default-config", "lazy-pages", "--page-server"])
        .args(["--address", "127.0.0.1", "--port", &port, "-D"])
        .arg(&img.path)
        .args(["-o", "lazy-pages.log", "-v4"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The daemon's socket, which restore connects to, in the images dir.
    let socket = img.path.join("lazy-pages.socket");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "criu lazy-pages never listened{}",
            criu_log(&img.path.join("lazy-pages.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (copy, copy_out) = counter("ck-lazy-copy");
    restore_with(&copy, &copy.id, &img.path, &["--lazy-pages"]);
    let nums = wait_past(&copy_out.join("log"), 5);
    assert_unbroken(&nums, stopped.last().unwrap() + 1);
    let dumped = dump.wait_with_output().unwrap();
    assert!(
        dumped.status.success(),
        "lazy checkpoint: {}{}",
        stderr(&dumped),
        criu_log(&img.path.join("dump.log"))
    );
    assert!(
        !state_root().join(&b.id).exists(),
        "the dumped container is left"
    );
    assert!(daemon.wait().unwrap().success(), "criu lazy-pages failed");
}

fn assert_one_line_failure(out: &std::process::Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{what} did not fail");
    let err = stderr(out);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: not one line: {err:?}"
    );
    err
}

/// Restore from a directory that holds no checkpoint, or from garbage
/// images: one line, and no container, state or cgroup left.
#[test]
fn bad_image_dirs_fail_in_one_line_and_leave_nothing() {
    let (b, _out) = counter("ck-bad");
    b.write();
    let empty = images("ck-bad-empty");
    let garbage = images("ck-bad-garbage");
    std::fs::write(garbage.path.join("inventory.img"), b"not an image").unwrap();
    let missing = empty.path.join("nothing-here");
    let mut dirs = vec![&empty.path, &missing];
    if criu_unusable().is_none() {
        dirs.push(&garbage.path);
    }
    for dir in dirs {
        let out = ozz_quiet(&[
            "restore",
            "-d",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--image-path",
            dir.to_str().unwrap(),
            &b.id,
        ]);
        let err = assert_one_line_failure(&out, &format!("restore from {}", dir.display()));
        assert!(err.starts_with("restore: "), "{err}");
        assert!(!state_root().join(&b.id).exists(), "state left: {err}");
        for controller in ["", "pids", "memory"] {
            let dir = b.cgroup_dir(controller);
            assert!(!dir.exists(), "cgroup {} left: {err}", dir.display());
        }
    }
}

/// A missing criu binary: checkpoint says so in one line and the container
/// runs on untouched; restore says so and leaves nothing.
#[test]
fn a_missing_criu_is_one_line_and_changes_nothing() {
    let (b, out) = counter("ck-nocriu");
    start(&b);
    let log = out.join("log");
    wait_past(&log, 3);
    let img = images("ck-nocriu-img");
    let pid = pid_of(&b.id);
    let res = ozz(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img.path.to_str().unwrap(),
        &b.id,
    ]);
    let err = assert_one_line_failure(&res, "checkpoint without criu");
    assert!(
        err.contains("/nonexistent/criu") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(pid_of(&b.id), pid);
    wait_past(&log, numbers(&log).len() + 2);

    std::fs::write(img.path.join("inventory.img"), b"").unwrap();
    let other = unique_id("ck-nocriu-r");
    let res = ozz_quiet(&[
        "--criu",
        "/nonexistent/criu",
        "restore",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--image-path",
        img.path.to_str().unwrap(),
        &other,
    ]);
    let err = assert_one_line_failure(&res, "restore without criu");
    assert!(err.contains("not found"), "{err}");
    assert!(!state_root().join(&other).exists());
    assert!(!cgroup_root("").join(cgroup_parent()).join(&other).exists());
}

/// Where the kernel fails `criu check` (this host's, not the guest's), the
/// checkpoint says so in one line and the container runs on.
#[test]
fn an_unsupported_kernel_is_one_line() {
    if criu_unusable().is_none() {
        eprintln!("SKIPPED: criu check passes here; this test is for kernels it fails on");
        return;
    }
    if Command::new("criu").arg("--version").output().is_err() {
        eprintln!("SKIPPED: criu is not installed");
        return;
    }
    let (b, out) = counter("ck-kernel");
    start(&b);
    wait_past(&out.join("log"), 3);
    let img = images("ck-kernel-img");
    let res = b.cmd("checkpoint", &["--image-path", img.path.to_str().unwrap()]);
    let err = assert_one_line_failure(&res, "checkpoint on an unsupported kernel");
    assert!(err.contains("criu check"), "{err}");
    assert_eq!(b.status(), "running");
}
