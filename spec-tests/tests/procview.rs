//! The per-container /proc view (`ozz procfs serve`, docs/procview.md):
//! each test starts its own server on its own mountpoint and gives it to
//! create with `--procview DIR`; what a container reads is checked from
//! inside it against the cgroup files and `ozz beancounters` outside.
//! Runs on the hybrid host (cgroup v1) and in the cgroup v2 guest. runc has
//! no such view: in a differential run these tests fail for it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::*;

/// A running `ozz procfs serve` on a scratch mountpoint; stopped and
/// unmounted when dropped, whatever the test did to it.
struct View {
    server: Option<Child>,
    dir: HostDir,
}

impl View {
    fn start() -> View {
        let dir = HostDir::new("procview");
        let mountpoint = dir.path.join("mnt");
        std::fs::create_dir_all(&mountpoint).unwrap();
        let log = std::fs::File::create(dir.path.join("server.log")).unwrap();
        let server = Command::new(ozz_bin())
            .arg("--root")
            .arg(state_root())
            .args(["procfs", "serve"])
            .arg(&mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run ozz procfs serve");
        let view = View {
            server: Some(server),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !mounted(&view.mountpoint()) {
            assert!(
                Instant::now() < deadline,
                "the view never mounted: {}",
                std::fs::read_to_string(view.dir.path.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        view
    }

    fn mountpoint(&self) -> std::path::PathBuf {
        self.dir.path.join("mnt")
    }

    /// `ozz --procview DIR create` of the bundle, stdio detached.
    fn create(&self, b: &Bundle) -> Output {
        b.write();
        let mp = self.mountpoint();
        ozz_quiet(&[
            "--procview",
            mp.to_str().unwrap(),
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ])
    }

    fn run(&self, b: &Bundle) {
        let out = self.create(b);
        assert!(out.status.success(), "ozz create: {}", stderr(&out));
        let out = b.cmd("start", &[]);
        assert!(out.status.success(), "ozz start: {}", stderr(&out));
    }

    fn kill_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SIGTERM: the server unmounts itself.
            let _ = Command::new("kill").arg(server.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        // A killed server's mount stays (ENOTCONN) until unmounted.
        if mounted(&self.mountpoint()) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.mountpoint())
                .status();
        }
    }
}

/// Whether `dir` is a mount of the view (by its FUSE source name).
fn mounted(dir: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&text).iter().any(|m| {
        Path::new(&m.mount_point) == dir && m.fstype == "fuse" && m.source == "ozz-procview"
    })
}

/// A container asking for the view, running a shell that reaps (its pid 1
/// adopts the fork bomb's orphans).
fn asking(tag: &str, memory: i64) -> Bundle {
    let mut b = bundle(tag, &["sh", "-c", "while :; do sleep 1; done"]);
    b.config["annotations"] = json!({"org.openvz.procview": "true"});
    b.config["linux"]["resources"]["memory"] = json!({"limit": memory});
    b.config["process"]["rlimits"] = json!([]);
    b
}

fn exec(b: &Bundle, script: &str) -> Output {
    ozz(&["exec", &b.id, "sh", "-c", script])
}

fn exec_ok(b: &Bundle, script: &str) -> String {
    let out = ozz(&["exec", &b.id, "sh", "-c", script]);
    assert!(
        out.status.success(),
        "exec {script:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The total of busybox free's Mem: line (KiB, from sysinfo(2)).
fn free_total(b: &Bundle) -> String {
    let free = exec_ok(b, "free");
    let mem = free.lines().nth(1).unwrap_or_default();
    mem.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn memory_cpu_and_uptime_are_the_containers() {
    let view = View::start();
    let mut b = asking("pv-limits", 64 << 20);
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 100000, "period": 100000});
    let before = Instant::now();
    view.run(&b);
    let out = exec_ok(&b, "head -1 /proc/meminfo; grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat; cat /proc/uptime");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "MemTotal:          65536 kB", "{out}");
    assert_eq!(lines[1], "1", "processors in /proc/cpuinfo: {out}");
    assert_eq!(lines[2], "1", "cpuN lines in /proc/stat: {out}");
    let age: f64 = lines[3].split_whitespace().next().unwrap().parse().unwrap();
    let elapsed = before.elapsed().as_secs_f64();
    assert!(
        age <= elapsed + 1.0,
        "uptime {age} s inside, the container is {elapsed} s old (host: {} s)",
        host_uptime()
    );
    std::thread::sleep(Duration::from_secs(2));
    let later: f64 = exec_ok(&b, "cat /proc/uptime")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        later >= age + 1.5 && later <= before.elapsed().as_secs_f64() + 1.0,
        "uptime went from {age} to {later} in 2 s"
    );
    // busybox free and uptime read sysinfo(2), which the view's agent
    // answers for the container.
    let free = exec_ok(&b, "free");
    let mem: Vec<&str> = free.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(mem[..2], ["Mem:", "65536"], "{free}");
    // nproc counts the CPUs of sched_getaffinity(2), which the agent cuts
    // to the container's.
    assert_eq!(exec_ok(&b, "nproc"), "1\n");
    let up = exec_ok(&b, "uptime");
    if host_uptime() > 120.0 {
        assert!(up.contains(" up 0 min"), "busybox uptime: {up}");
    }
    // MemFree is the limit less what the cgroup holds, never more.
    let free = exec_ok(&b, "sed -n 2p /proc/meminfo");
    let free_kib: u64 = free.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(free_kib > 0 && free_kib < 65536, "{free}");
    // The binds are read-only.
    let out = exec(&b, "echo x > /proc/meminfo");
    assert!(!out.status.success(), "writing /proc/meminfo succeeded");
}

#[test]
fn two_containers_read_their_own_numbers_and_one_not_asking_the_hosts() {
    let view = View::start();
    let a = asking("pv-a", 64 << 20);
    let b = asking("pv-b", 96 << 20);
    view.run(&a);
    view.run(&b);
    let mut c = bundle("pv-c", &["sh", "-c", "while :; do sleep 1; done"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    view.run(&c);
    for _ in 0..5 {
        assert_eq!(
            exec_ok(&a, "head -1 /proc/meminfo"),
            "MemTotal:          65536 kB\n"
        );
        assert_eq!(
            exec_ok(&b, "head -1 /proc/meminfo"),
            "MemTotal:          98304 kB\n"
        );
        assert_eq!(free_total(&a), "65536");
        assert_eq!(free_total(&b), "98304");
    }
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(
        exec_ok(&c, "head -1 /proc/meminfo"),
        format!("{}\n", host.lines().next().unwrap()),
        "a container without the annotation sees the host's meminfo"
    );
    let mounts = exec_ok(&c, "cat /proc/self/mountinfo");
    assert!(!mounts.contains("ozz-procview"), "{mounts}");
}

/// The columns of a user_beancounters text that no reader moves: barrier,
/// limit and failcnt, by resource.
fn still_columns(text: &str) -> Vec<(String, [u64; 3])> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Version: 2.5"), "{text}");
    assert!(lines
        .next()
        .unwrap()
        .trim_start()
        .starts_with("uid  resource"));
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let w = if w[0].ends_with(':') { &w[1..] } else { &w[..] };
            let n = |i: usize| w[i].parse::<u64>().unwrap_or_else(|_| panic!("{l}"));
            (w[0].to_string(), [n(3), n(4), n(5)])
        })
        .collect()
}

/// The same columns from `ozz beancounters --format json` (unknown: 0).
fn outside_columns(b: &Bundle) -> Vec<(String, [u64; 3])> {
    let out = ozz(&["beancounters", "--format", "json", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    list[0]["beancounters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            (
                r["resource"].as_str().unwrap().to_string(),
                [n("barrier"), n("limit"), n("failcnt")],
            )
        })
        .collect()
}

#[test]
fn user_beancounters_inside_equals_ozz_beancounters_and_counts_a_fork_bomb() {
    let view = View::start();
    let mut b = asking("pv-bc", 64 << 20);
    b.config["annotations"]["org.openvz.beancounter.numproc"] = json!("12");
    view.run(&b);
    // More sleepers than numproc allows: the kernel refuses some forks.
    let _ = exec(
        &b,
        "i=0; while [ $i -lt 20 ]; do sleep 2 & i=$((i+1)); done; wait",
    );
    let events = b.cgroup_dir("pids").join("pids.events");
    let refused = keyed(&read_trimmed(&events), "max").unwrap();
    assert!(refused > 0, "no fork was refused: {}", events.display());
    // The survivors end within 2 s and the init reaps them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        assert!(Instant::now() < deadline, "never agreed:\n{last}");
        let before = outside_columns(&b);
        let inside = exec(&b, "cat /dev/user_beancounters");
        let after = outside_columns(&b);
        if inside.status.success() {
            let text = stdout(&inside);
            let cols = still_columns(&text);
            if before == after && cols == before {
                let numproc = cols.iter().find(|(r, _)| r == "numproc").unwrap().1;
                assert_eq!(numproc[0], 12, "numproc barrier");
                assert_eq!(numproc[1], 12, "numproc limit");
                assert_eq!(numproc[2], keyed(&read_trimmed(&events), "max").unwrap());
                assert!(numproc[2] >= refused);
                assert!(text.contains(&format!("{}:", b.id)), "{text}");
                return;
            }
            last = format!("outside {before:?}\ninside {cols:?}\nafter {after:?}");
        } else {
            last = stderr(&inside);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_dead_server_leaves_the_container_running_and_its_reads_failing() {
    let mut view = View::start();
    let b = asking("pv-dead", 64 << 20);
    view.run(&b);
    assert_eq!(
        exec_ok(&b, "head -1 /proc/meminfo"),
        "MemTotal:          65536 kB\n"
    );
    view.kill_server();
    let started = Instant::now();
    let out = exec(&b, "cat /proc/meminfo");
    assert!(
        !out.status.success(),
        "a read through a dead view succeeded"
    );
    assert!(
        stderr(&out).contains("not connected") || stderr(&out).contains("I/O error"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20), "the read hung");
    assert_eq!(b.status(), "running");
    // The container's own files still work, and so does exec, whose
    // process gets the host's sysinfo (the agent is gone).
    assert_eq!(exec_ok(&b, "echo alive"), "alive\n");
    exec_ok(&b, "uptime");
}

#[test]
fn asking_without_a_mounted_view_fails_clearly_and_leaves_nothing() {
    let plain = HostDir::new("pv-none");
    let b = asking("pv-none", 64 << 20);
    b.write();
    let out = ozz_quiet(&[
        "--procview",
        plain.path.to_str().unwrap(),
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(!out.status.success(), "create succeeded without a view");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no view is mounted at"), "{err}");
    assert!(
        !state_root().join(&b.id).exists(),
        "a state directory is left"
    );
    assert!(!b.cgroup_dir("memory").exists(), "a cgroup is left");
    // A bad annotation value is refused the same way.
    let mut bad = asking("pv-bad", 64 << 20);
    bad.config["annotations"]["org.openvz.procview"] = json!("yes");
    bad.write();
    let out = bad.create(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("neither true nor false"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn procview_all_gives_a_container_that_does_not_ask_the_view() {
    let view = View::start();
    let mut b = bundle("pv-all", &["sh", "-c", "while :; do sleep 1; done"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    b.write();
    let mp = view.mountpoint();
    let out = ozz_quiet(&[
        "--procview",
        mp.to_str().unwrap(),
        "--procview-all",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &b.id,
    ]);
    assert!(out.status.success(), "ozz create: {}", stderr(&out));
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "ozz start: {}", stderr(&out));
    assert_eq!(
        exec_ok(&b, "head -1 /proc/meminfo"),
        "MemTotal:          65536 kB\n"
    );
    assert_eq!(free_total(&b), "65536");
}
