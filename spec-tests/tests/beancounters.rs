//! Beancounters: limits set by `org.openvz.*` annotations reach the
//! kernel's controls, their counters show in `ozz beancounters` exactly as
//! the cgroup files hold them, and the tools (update --beancounter,
//! validate, split, pid, events) act on the real kernel. Runs on the hybrid
//! host (cgroup v1) and in the cgroup v2 guest.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::*;

const PAGE: u64 = 4096;
const UNLIMITED: u64 = i64::MAX as u64;

fn annotate(b: &mut Bundle, pairs: &[(&str, &str)]) {
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        map.insert(k.to_string(), json!(v));
    }
    b.config["annotations"] = Value::Object(map);
    // The default spec's RLIMIT_NOFILE would conflict with numfile tests.
    b.config["process"]["rlimits"] = json!([]);
}

/// The rows of `ozz beancounters --format json ID`, by resource name.
fn beancounters(b: &Bundle) -> serde_json::Map<String, Value> {
    let out = ozz(&["beancounters", "--format", "json", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], json!(b.id));
    list[0]["beancounters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["resource"].as_str().unwrap().to_string(), row.clone()))
        .collect()
}

fn number(path: &Path) -> u64 {
    let text = read_trimmed(path);
    if text == "max" {
        return UNLIMITED;
    }
    let v: u64 = text
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text}", path.display()));
    // v1 prints "no limit" as LONG_MAX rounded down to a page.
    if v >= UNLIMITED - PAGE {
        UNLIMITED
    } else {
        v
    }
}

fn keyed_file(path: &Path, key: &str) -> u64 {
    keyed(&read_trimmed(path), key).unwrap_or_else(|| panic!("{key} in {}", path.display()))
}

/// Waits until `read` gives the same value for a whole second.
fn settled<T: PartialEq + Clone + std::fmt::Debug>(read: impl FnMut() -> T) -> T {
    settled_once(read, |_| true)
}

/// Waits until `read` gives a value that shows the workload has begun
/// (`begun`), then until it gives the same value for a whole second: on a
/// loaded machine a container may not have started its work a second after
/// `start`, and "nothing yet" would otherwise look settled.
fn settled_once<T: PartialEq + Clone + std::fmt::Debug>(
    mut read: impl FnMut() -> T,
    begun: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = read();
    while !begun(&last) {
        assert!(Instant::now() < deadline, "never began: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
        last = read();
    }
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = read();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return last;
        }
    }
    panic!("never settled: {last:?}");
}

/// A fork bomb: each shell starts two more, `depth` levels deep, then
/// becomes a sleep. ash prints one "can't fork" message for each fork the
/// kernel refuses, and that shell ends.
/// The view, taken while the kernel's files it is compared with held still:
/// `kernel` reads them before and after, and only an unchanged pair counts.
/// Memory counters move even in a frozen cgroup: the kernel hands back a
/// CPU's cached charge batch (up to 64 pages) whenever another cgroup
/// charges on that CPU, and memory.stat is flushed lazily.
fn view_while_still<T: PartialEq + std::fmt::Debug>(
    b: &Bundle,
    kernel: impl Fn() -> T,
) -> (serde_json::Map<String, Value>, T) {
    let mut last = None;
    for _ in 0..20 {
        let before = kernel();
        let rows = beancounters(b);
        let after = kernel();
        if after == before {
            return (rows, before);
        }
        last = Some((before, after));
    }
    panic!("the cgroup files moved during every one of 20 views: {last:?}");
}

const BOMB: &str = "b() { if [ $1 -gt 0 ]; then b $(($1-1)) & b $(($1-1)) & fi; exec sleep 1000; }";

#[test]
fn numproc_refuses_forks_and_failcnt_counts_each_refusal() {
    // The messages go to the container's own tmpfs: concurrent writers
    // to one file on the guest's 9p share can lose lines.
    let mut b = bundle(
        "bc-bomb",
        &["sh", "-c", &format!("exec 2>/dev/shm/err; {BOMB}; b 4")],
    );
    annotate(&mut b, &[("org.openvz.beancounter.numproc", "10")]);
    b.create_and_start();
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "10"
    );
    let err = PathBuf::from(format!("/proc/{}/root/dev/shm/err", b.state()["pid"]));
    let refused = || {
        std::fs::read_to_string(&err)
            .unwrap_or_default()
            // Counted as messages, not lines: ash may write one in pieces,
            // and two shells' pieces can share a line.
            .matches("can't fork")
            .count() as u64
    };
    let events = cg_file(&b, "pids", "pids.events", "pids.events");
    // The bomb outgrows the limit (31 shells), so refusals must come.
    let (refusals, failcnt) = settled_once(
        || (refused(), keyed_file(&events, "max")),
        |&(refused, failcnt)| refused > 0 || failcnt > 0,
    );
    assert!(refusals > 0, "the bomb was never refused");
    assert_eq!(failcnt, refusals, "pids.events max against refused forks");
    let row = &beancounters(&b)["numproc"];
    assert_eq!(row["failcnt"], json!(refusals), "{row}");
    assert_eq!(row["limit"], json!(10));
    assert_eq!(row["control"], json!("enforced"));
    let current = number(&cg_file(&b, "pids", "pids.current", "pids.current"));
    assert_eq!(row["held"], json!(current), "{row}");
    assert!(current <= 10);
    if is_cgroup_v2() {
        let peak = number(&b.cgroup_dir("").join("pids.peak"));
        assert_eq!(row["maxheld"], json!(peak), "{row}");
        assert!(peak <= 10 && peak >= current, "peak {peak}");
    }
}

#[test]
fn physpages_limit_counts_failures_and_the_barrier_throttles() {
    let (mut b, out) = out_bundle(
        "bc-hog",
        "while [ ! -e /out/go ]; do sleep 0.1; done; \
         dd if=/dev/zero of=/dev/null bs=32M count=1 && echo survived > /out/r; \
         echo done > /out/done; exec sleep 1000",
    );
    annotate(
        &mut b,
        &[
            ("org.openvz.beancounter.physpages", "22M:24M"),
            ("org.openvz.beancounter.swappages", "0"),
        ],
    );
    b.create_and_start();
    let limit = 24u64 << 20;
    if is_cgroup_v2() {
        let dir = b.cgroup_dir("");
        assert_eq!(number(&dir.join("memory.max")), limit);
        assert_eq!(number(&dir.join("memory.high")), 22 << 20);
        assert_eq!(number(&dir.join("memory.swap.max")), 0);
    } else {
        let dir = b.cgroup_dir("memory");
        assert_eq!(number(&dir.join("memory.limit_in_bytes")), limit);
        assert_eq!(number(&dir.join("memory.memsw.limit_in_bytes")), limit);
    }
    std::fs::write(out.join("go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !out.join("done").exists() {
        assert!(Instant::now() < deadline, "the hog never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!out.join("r").exists(), "the hog survived its limit");
    // Paused, and after the killed hog's pages are given back, the
    // counters hold still while both sides read them.
    assert!(b.cmd("pause", &[]).status.success());
    let usage = cg_file(&b, "memory", "memory.usage_in_bytes", "memory.current");
    settled(|| number(&usage));
    let (usage, peak) = if is_cgroup_v2() {
        ("memory.current", "memory.peak")
    } else {
        ("memory.usage_in_bytes", "memory.max_usage_in_bytes")
    };
    let (rows, (held, maxheld)) = view_while_still(&b, || {
        let mem = |f: &str| number(&cg_file(&b, "memory", f, f)) / PAGE;
        (mem(usage), mem(peak))
    });
    let row = &rows["physpages"];
    assert_eq!(row["held"], json!(held), "{row}");
    assert_eq!(row["maxheld"], json!(maxheld), "{row}");
    let failcnt = if is_cgroup_v2() {
        let dir = b.cgroup_dir("");
        assert!(
            keyed_file(&dir.join("memory.events"), "high") > 0,
            "never throttled at the barrier"
        );
        assert_eq!(row["barrier"], json!((22u64 << 20) / PAGE), "{row}");
        keyed_file(&dir.join("memory.events"), "max")
    } else {
        let dir = b.cgroup_dir("memory");
        let oom_kills = keyed_file(&dir.join("memory.oom_control"), "oom_kill");
        assert!(oom_kills > 0, "the limit never stopped the hog");
        let failcnt = number(&dir.join("memory.failcnt"));
        if failcnt == 0 {
            // Seen on 6.18 hybrid hosts: the v1 page counter no longer
            // counts failures; the OOM kill above proves the limit held.
            eprintln!("note: this kernel keeps memory.failcnt at 0 on cgroup v1");
        }
        failcnt
    };
    assert!(
        failcnt > 0 || !is_cgroup_v2(),
        "the limit never refused a charge"
    );
    assert_eq!(row["failcnt"], json!(failcnt), "{row}");
    assert_eq!(row["limit"], json!(limit / PAGE), "{row}");
    assert!(b.cmd("resume", &[]).status.success());
}

/// Holds two ptys open and tries a third; says in /out/r whether it opened.
const PTY_SCRIPT: &str = "exec 3<>/dev/ptmx 4<>/dev/ptmx; \
    if (exec 5<>/dev/ptmx) 2>/dev/null; then echo third-opened; else echo third-refused; fi > /out/r.new; \
    mv /out/r.new /out/r; \
    exec sleep 1000";

#[test]
fn numpty_refuses_the_pty_beyond_its_limit() {
    for (limit, expect) in [("2", "third-refused"), ("3", "third-opened")] {
        let (mut b, out) = out_bundle("bc-pty", PTY_SCRIPT);
        annotate(&mut b, &[("org.openvz.beancounter.numpty", limit)]);
        b.create_and_start();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !out.join("r").exists() {
            assert!(Instant::now() < deadline, "no result");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(read_trimmed(&out.join("r")), expect, "numpty={limit}");
        let row = &beancounters(&b)["numpty"];
        assert_eq!(row["held"], json!(2), "{row}");
        assert_eq!(row["limit"], json!(limit.parse::<u64>().unwrap()), "{row}");
        if limit != "2" {
            continue;
        }
        // Raised on the running container, the third pty opens, and the
        // devpts keeps its other options (ptmxmode=0666).
        let out = ozz(&["update", &b.id, "--beancounter", "numpty=3"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let third = ozz(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "(exec 5<>/dev/ptmx) && stat -c %a /dev/pts/ptmx",
        ]);
        assert_eq!(stdout(&third).trim(), "666", "{}", stderr(&third));
        assert_eq!(beancounters(&b)["numpty"]["limit"], json!(3));
    }
}

#[test]
fn rlimit_parameters_reach_the_process() {
    let mut b = bundle("bc-rlimits", &["cat", "/proc/self/limits"]);
    annotate(
        &mut b,
        &[
            ("org.openvz.beancounter.numfile", "100:200"),
            ("org.openvz.beancounter.lockedpages", "16:32"),
            ("org.openvz.beancounter.numsiginfo", "50:60"),
        ],
    );
    let limits = b.run_ok();
    let line = |name: &str| {
        let l = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {limits}"));
        l[name.len()..]
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("Max open files"), "100 200");
    assert_eq!(line("Max locked memory"), "65536 131072");
    assert_eq!(line("Max pending signals"), "50 60");
}

#[test]
fn cpu_knobs_set_weight_and_cap() {
    let mut b = bundle("bc-cpu", &["sleep", "100"]);
    annotate(
        &mut b,
        &[
            ("org.openvz.cpuunits", "2000"),
            ("org.openvz.cpulimit", "50"),
            ("org.openvz.cpumask", "0"),
        ],
    );
    b.create_and_start();
    if is_cgroup_v2() {
        let dir = b.cgroup_dir("");
        assert_eq!(read_trimmed(&dir.join("cpu.weight")), "200");
        assert_eq!(read_trimmed(&dir.join("cpu.max")), "50000 100000");
        assert_eq!(read_trimmed(&dir.join("cpuset.cpus")), "0");
    } else {
        let dir = b.cgroup_dir("cpu");
        assert_eq!(read_trimmed(&dir.join("cpu.shares")), "2048");
        assert_eq!(read_trimmed(&dir.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trimmed(&dir.join("cpu.cfs_period_us")), "100000");
        assert_eq!(
            read_trimmed(&b.cgroup_dir("cpuset").join("cpuset.cpus")),
            "0"
        );
    }
}

#[test]
fn iolimit_throttles_the_rootfs_disk_or_is_refused_clearly() {
    let mut b = bundle("bc-io", &["sleep", "100"]);
    annotate(
        &mut b,
        &[
            ("org.openvz.iolimit", "1M"),
            ("org.openvz.iopslimit", "100"),
        ],
    );
    let rootfs = b.config["root"]["path"].as_str().unwrap().to_string();
    let disk = rootfs_disk(Path::new(&rootfs));
    let Some((major, minor)) = disk else {
        // Not on a block device (the guest's 9p root): a clear refusal.
        let out = b.create(&[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("not on a block device"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!state_root().join(&b.id).exists());
        return;
    };
    b.create_and_start();
    let dev = format!("{major}:{minor}");
    if is_cgroup_v2() {
        let text = read_trimmed(&b.cgroup_dir("").join("io.max"));
        assert!(
            text.contains(&format!(
                "{dev} rbps=1048576 wbps=1048576 riops=100 wiops=100"
            )),
            "{text}"
        );
    } else {
        let dir = b.cgroup_dir("blkio");
        for (file, rate) in [
            ("blkio.throttle.read_bps_device", "1048576"),
            ("blkio.throttle.write_bps_device", "1048576"),
            ("blkio.throttle.read_iops_device", "100"),
            ("blkio.throttle.write_iops_device", "100"),
        ] {
            assert_eq!(
                read_trimmed(&dir.join(file)),
                format!("{dev} {rate}"),
                "{file}"
            );
        }
    }
}

/// The whole disk under `path`, if it is on one.
fn rootfs_disk(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        return None;
    }
    if sys.join("partition").exists() {
        let text = read_trimmed(&sys.join("../dev"));
        let (a, b) = text.split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    Some((major, minor))
}

#[test]
fn a_beancounter_that_contradicts_the_bundle_is_refused_and_leaves_nothing() {
    let mut b = bundle("bc-conflict", &["sleep", "100"]);
    annotate(&mut b, &[("org.openvz.beancounter.numproc", "10")]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    let out = b.create(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("numproc") && err.contains("conflicts with linux.resources.pids.limit"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!state_root().join(&b.id).exists(), "state left behind");
    assert!(!cg_file(&b, "pids", "", "").exists(), "cgroup left behind");
    // The same value in both places is no conflict.
    b.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    b.create_and_start();
    // And a name OpenVZ never had is an error, not silence.
    let mut bad = bundle("bc-unknown", &["true"]);
    annotate(&mut bad, &[("org.openvz.beancounter.numprocs", "10")]);
    let out = bad.create(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown beancounter"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn accounted_parameters_are_reported_never_enforced() {
    let mut b = bundle(
        "bc-kmem",
        &["sh", "-c", "x=$(seq 1 20000); exec sleep 1000"],
    );
    // Far below what any container uses: accepted, shown, not enforced.
    annotate(
        &mut b,
        &[
            ("org.openvz.beancounter.kmemsize", "4096:8192"),
            ("org.openvz.beancounter.numflock", "1"),
        ],
    );
    b.create_and_start();
    let rows = beancounters(&b);
    let row = &rows["kmemsize"];
    assert_eq!(row["control"], json!("accounted"), "{row}");
    assert_eq!(row["barrier"], json!(4096));
    assert_eq!(row["limit"], json!(8192));
    let held = row["held"].as_u64().expect("kmemsize is counted");
    assert!(
        held > 8192,
        "held {held}: a container needs more kernel memory"
    );
    assert_eq!(b.status(), "running", "an accounted limit must not stop it");
    assert_eq!(rows["numflock"]["control"], json!("accounted"));
    // The table says the same, in words.
    let table = stdout(&ozz(&["beancounters", &b.id]));
    let line = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("kmemsize"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("accounted"), "{line}");
}

#[test]
fn the_view_equals_the_cgroup_files_read_at_the_same_moment() {
    let mut b = bundle(
        "bc-view",
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
    );
    annotate(
        &mut b,
        &[
            ("org.openvz.beancounter.numproc", "50"),
            ("org.openvz.beancounter.physpages", "64M"),
        ],
    );
    b.create_and_start();
    let pids_current = cg_file(&b, "pids", "pids.current", "pids.current");
    settled(|| number(&pids_current));
    assert!(b.cmd("pause", &[]).status.success());
    // The kernel's own files, as (row, column, value).
    let kernel = || {
        let pid = |f: &str| cg_file(&b, "pids", f, f);
        let mem = |v1: &str, v2: &str| number(&cg_file(&b, "memory", v1, v2));
        let mut files = vec![
            ("numproc", "held", number(&pid("pids.current"))),
            ("numproc", "limit", number(&pid("pids.max"))),
            ("numproc", "failcnt", keyed_file(&pid("pids.events"), "max")),
            (
                "physpages",
                "held",
                mem("memory.usage_in_bytes", "memory.current") / PAGE,
            ),
            (
                "physpages",
                "limit",
                mem("memory.limit_in_bytes", "memory.max") / PAGE,
            ),
        ];
        if is_cgroup_v2() {
            let stat = read_trimmed(&b.cgroup_dir("").join("memory.stat"));
            files.push(("kmemsize", "held", keyed(&stat, "kernel").unwrap()));
            files.push(("shmpages", "held", keyed(&stat, "shmem").unwrap() / PAGE));
        } else {
            files.push(("kmemsize", "held", mem("memory.kmem.usage_in_bytes", "")));
        }
        // numfile: every descriptor of the container's three processes.
        let fds: usize = read_trimmed(&cg_file(&b, "pids", "cgroup.procs", "cgroup.procs"))
            .lines()
            .map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).unwrap().count())
            .sum();
        files.push(("numfile", "held", fds as u64));
        files
    };
    let (rows, files) = view_while_still(&b, kernel);
    for (row, column, value) in &files {
        assert_eq!(rows[*row][*column], json!(value), "{row} {column}");
    }
    assert_eq!(rows["numproc"]["held"], json!(3));
    assert_eq!(rows["physpages"]["limit"], json!(16384));
    assert!(b.cmd("resume", &[]).status.success());
}

#[test]
fn update_beancounter_moves_the_kernels_values() {
    let mut b = bundle("bc-update", &["sleep", "1000"]);
    annotate(
        &mut b,
        &[
            ("org.openvz.beancounter.numproc", "50"),
            ("org.openvz.beancounter.physpages", "32M"),
            ("org.openvz.beancounter.numfile", "200:300"),
        ],
    );
    b.create_and_start();
    let out = ozz(&[
        "update",
        &b.id,
        "--beancounter",
        "numproc=30",
        "--beancounter",
        "physpages=48M",
        "--beancounter",
        "numfile=100:250",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "30"
    );
    assert_eq!(
        number(&cg_file(
            &b,
            "memory",
            "memory.limit_in_bytes",
            "memory.max"
        )),
        48 << 20
    );
    let pid = b.state()["pid"].as_i64().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        files.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
        ["100", "250"],
        "{files}"
    );
    let rows = beancounters(&b);
    assert_eq!(rows["numproc"]["limit"], json!(30));
    assert_eq!(rows["physpages"]["limit"], json!(12288));
    // A later exec starts with the new limits too.
    let exec = ozz(&["exec", &b.id, "sh", "-c", "ulimit -n"]);
    assert_eq!(stdout(&exec).trim(), "100", "{}", stderr(&exec));
    // A flag and a beancounter on the same control: refused, nothing moves.
    let out = ozz(&[
        "update",
        &b.id,
        "--pids-limit",
        "40",
        "--beancounter",
        "numproc=20",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("numproc"), "{}", stderr(&out));
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "30"
    );
    let out = ozz(&["update", &b.id, "--beancounter", "nosuch=1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown beancounter"),
        "{}",
        stderr(&out)
    );
}

/// A change that makes a bundle invalid.
type Edit = Box<dyn Fn(&mut Bundle)>;

fn validate(b: &Bundle) -> (i32, String) {
    b.write();
    let out = ozz(&["validate", b.dir.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), stdout(&out))
}

#[test]
fn validate_reports_inconsistent_limits() {
    let mut good = bundle("bc-valid", &["true"]);
    annotate(
        &mut good,
        &[
            ("org.openvz.beancounter.physpages", "16M:32M"),
            ("org.openvz.beancounter.numproc", "100"),
        ],
    );
    let (code, text) = validate(&good);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 errors"), "{text}");

    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "barrier above limit",
            Box::new(|b| annotate(b, &[("org.openvz.beancounter.physpages", "32M:16M")])),
            "barrier",
        ),
        (
            "memory.high above memory.max",
            Box::new(|b| {
                b.config["linux"]["resources"]["memory"] = json!({"limit": 1 << 24});
                if is_cgroup_v2() {
                    b.config["linux"]["resources"]["unified"] = json!({"memory.high": "33554432"});
                } else {
                    // v1 has no memory.high: the swap rule stands in.
                    b.config["linux"]["resources"]["memory"]["swap"] = json!(1 << 20);
                }
            }),
            "memory",
        ),
        (
            "more CPUs than the host has",
            Box::new(|b| {
                b.config["linux"]["resources"]["cpu"] =
                    json!({"quota": 100_000_000, "period": 100_000});
            }),
            "CPUs",
        ),
        (
            "cpuset outside the parent's",
            Box::new(|b| annotate(b, &[("org.openvz.cpumask", "1000-1001")])),
            "outside the parent",
        ),
        (
            "guarantees above the host's RAM",
            Box::new(|b| annotate(b, &[("org.openvz.memguarantee", "100000G")])),
            "exceed this host's RAM",
        ),
    ];
    for (what, edit, needle) in cases {
        let mut b = bundle("bc-invalid", &["true"]);
        edit(&mut b);
        let (code, text) = validate(&b);
        assert_eq!(code, 1, "{what}: {text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("error:") && l.contains(needle)),
            "{what}: {text}"
        );
    }
}

#[test]
fn split_divides_the_host_and_its_output_runs() {
    let out = ozz(&["split", "4", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let split: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let pages = total_kib * 1024 / PAGE;
    let physpages: u64 = split["annotations"]["org.openvz.beancounter.physpages"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(physpages, pages / 4, "{split}");
    assert_eq!(
        split["resources"]["memory"]["limit"],
        json!(physpages * PAGE)
    );
    let numproc: u64 = split["annotations"]["org.openvz.beancounter.numproc"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let pid_max: u64 = read_trimmed(Path::new("/proc/sys/kernel/pid_max"))
        .parse()
        .unwrap();
    assert!(numproc * 4 <= pid_max && numproc > 0, "{split}");
    // Its annotations make a valid bundle that runs with those limits.
    let mut b = bundle("bc-split", &["sleep", "100"]);
    b.config["annotations"] = split["annotations"].clone();
    b.config["process"]["rlimits"] = json!([]);
    let (code, text) = validate(&b);
    assert_eq!(code, 0, "{text}");
    b.create_and_start();
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        numproc.to_string()
    );
    assert!(!ozz(&["split", "0"]).status.success());
}

#[test]
fn pid_names_the_container_of_a_host_process() {
    let b = bundle("bc-pid", &["sh", "-c", "sleep 1000 & exec sleep 1000"]);
    b.create_and_start();
    let init = b.state()["pid"].as_i64().unwrap().to_string();
    let out = ozz(&["pid", &init]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), b.id);
    // Any process of the container, not only its init.
    let procs_file = cg_file(&b, "pids", "cgroup.procs", "cgroup.procs");
    let procs = settled(|| read_trimmed(&procs_file));
    let other = procs
        .lines()
        .find(|p| *p != init)
        .expect("a second process");
    assert_eq!(stdout(&ozz(&["pid", other])).trim(), b.id);
    let me = std::process::id().to_string();
    let out = ozz(&["pid", &me]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not in any container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn events_report_a_beancounter_when_failcnt_grows() {
    let (mut b, out) = out_bundle(
        "bc-events",
        // The bomb waits for /out/go, written once `ozz events` is known
        // to have read its starting counters (see below).
        &format!("while [ ! -e /out/go ]; do sleep 0.1; done; exec 2>/dev/null; {BOMB}; b 4"),
    );
    annotate(&mut b, &[("org.openvz.beancounter.numproc", "8")]);
    b.create_and_start();
    let mut child = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["events", "--interval", "1s", &b.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // why: `ozz events` counts refusals from the moment it has read its
    // starting counters, and all the bomb's refusals come in one burst. A
    // fixed wait was not enough in a loaded TCG guest (ozz events had not
    // started when the burst was over); its first stats event is printed
    // after it has read them, so the bomb starts only then.
    let mut go_written = false;
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["type"] == json!("stats") && !go_written {
            std::fs::write(out.join("go"), "").unwrap();
            go_written = true;
        }
        if event["type"] == json!("beancounter") {
            seen = Some(event);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(go_written, "ozz events printed no stats event");
    let event = seen.expect("no beancounter event");
    assert_eq!(event["id"], json!(b.id), "{event}");
    assert_eq!(event["data"]["resource"], json!("numproc"), "{event}");
    assert!(event["data"]["failcnt"].as_u64().unwrap() >= 1, "{event}");
    assert!(event["data"]["delta"].as_u64().unwrap() >= 1, "{event}");
}

#[test]
fn sockets_are_counted_per_container() {
    // A TCP listener, and syslogd's unix datagram socket at /dev/log.
    let b = bundle(
        "bc-socks",
        &[
            "sh",
            "-c",
            "nc -l -p 9000 & syslogd -n -O /dev/null & exec sleep 1000",
        ],
    );
    b.create_and_start();
    let rows = settled_once(
        || {
            let rows = beancounters(&b);
            (
                rows["numtcpsock"]["held"].clone(),
                rows["numothersock"]["held"].clone(),
            )
        },
        |(tcp, other)| tcp != &json!(0) && other != &json!(0),
    );
    assert_eq!(rows, (json!(1), json!(1)), "tcp, other");
}

/// Builds a static program that takes `argv[1]` flock()s and one POSIX lock
/// on files in /out, says so in /out/ready and waits; None without a C
/// compiler (busybox has no applet that holds a lock).
fn locker(out: &Path) -> Option<PathBuf> {
    let src = out.join("locker.c");
    let bin = out.join("locker");
    std::fs::write(
        &src,
        r#"#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    char path[64];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/out/flock%d", i);
        int fd = open(path, O_CREAT | O_RDWR, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
            return 2;
    }
    int fd = open("/out/posix", O_CREAT | O_RDWR, 0600);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0)
        return 3;
    close(open("/out/ready", O_CREAT | O_WRONLY, 0600));
    pause();
    return 0;
}
"#,
    )
    .ok()?;
    let built = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    built.then_some(bin)
}

#[test]
fn numflock_counts_the_locks_the_container_holds() {
    let (mut b, out) = out_bundle("bc-flock", "exec /out/locker 3");
    if locker(&out).is_none() {
        eprintln!("skipped: no C compiler to build the lock holder");
        return;
    }
    // Below what the program takes: numflock is accounted, never enforced.
    annotate(&mut b, &[("org.openvz.beancounter.numflock", "2")]);
    b.create_and_start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("ready").exists() {
        assert_eq!(b.status(), "running", "the lock holder failed");
        assert!(Instant::now() < deadline, "the locks were never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let init = b.state()["pid"].as_u64().unwrap().to_string();
    // The kernel's own list: the init's three flock()s and its POSIX lock
    // (a 9p mount, as in the v2 guest, lists its flock()s as POSIX too).
    let kernel = read_trimmed(Path::new("/proc/locks"))
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(init.as_str()))
        .count();
    assert_eq!(kernel, 4, "/proc/locks");
    let row = beancounters(&b)["numflock"].clone();
    assert_eq!(row["held"], json!(kernel), "{row}");
    assert_eq!(row["limit"], json!(2), "{row}");
    assert_eq!(row["control"], json!("accounted"), "{row}");
    assert_eq!(b.status(), "running", "an accounted limit must not stop it");
}

// ---- ozz top (vzstat) ----

/// The container's CPU time in nanoseconds, from the kernel's own counter.
fn cpu_usage_ns(b: &Bundle) -> u64 {
    if is_cgroup_v2() {
        keyed_file(&cg_file(b, "cpu", "", "cpu.stat"), "usage_usec") * 1000
    } else {
        number(&cg_file(b, "cpuacct", "cpuacct.usage", ""))
    }
}

/// `ozz top --once --format json` with a sampling interval, by container ID
/// (other tests' containers share the state root), and the IDs in the
/// order top printed them.
fn top_once(interval: &str, sort: &str) -> (serde_json::Map<String, Value>, Vec<String>) {
    let out = ozz(&[
        "top", "--once", "-d", interval, "--sort", sort, "-f", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let rows = list.as_array().expect("an array");
    let order = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let by_id = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    (by_id, order)
}

fn limited(tag: &str, args: &[&str]) -> Bundle {
    let mut b = bundle(tag, args);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    b
}

#[test]
fn top_shows_each_containers_cpu_memory_and_numproc_from_the_kernel() {
    let busy = limited("top-busy", &["sh", "-c", "while :; do :; done"]);
    let idle = limited("top-idle", &["sleep", "1000"]);
    busy.create_and_start();
    idle.create_and_start();
    let before = (cpu_usage_ns(&busy), cpu_usage_ns(&idle));
    let pids_before = read_trimmed(&cg_file(&idle, "pids", "pids.current", "pids.current"));
    let (rows, order) = top_once("1s", "cpu");
    let after = (cpu_usage_ns(&busy), cpu_usage_ns(&idle));
    let pids_after = read_trimmed(&cg_file(&idle, "pids", "pids.current", "pids.current"));
    let (b, i) = (&rows[&busy.id], &rows[&idle.id]);
    for (row, bundle) in [(b, &busy), (i, &idle)] {
        assert_eq!(row["pid"], bundle.state()["pid"], "{row}");
        // Limits cannot move: exactly the bundle's.
        assert_eq!(row["memory"]["limit"], json!(64 << 20), "{row}");
        assert_eq!(row["numproc"]["limit"], json!(20), "{row}");
        let held = row["memory"]["held"].as_u64().unwrap();
        assert!(held > 0 && held <= 64 << 20, "{row}");
    }
    // The CPU time top read lies between the kernel's readings around it.
    let busy_ns = b["cpu_usage_ns"].as_u64().unwrap();
    assert!(
        before.0 <= busy_ns && busy_ns <= after.0,
        "{before:?} {b} {after:?}"
    );
    let idle_ns = i["cpu_usage_ns"].as_u64().unwrap();
    assert!(
        before.1 <= idle_ns && idle_ns <= after.1,
        "{before:?} {i} {after:?}"
    );
    // A spinning shell takes most of a CPU; a sleep none (a loaded machine
    // may give the spinner less, never nothing).
    assert!(b["cpu_percent"].as_f64().unwrap() > 10.0, "{b}");
    assert!(i["cpu_percent"].as_f64().unwrap() < 5.0, "{i}");
    let position = |id: &str| order.iter().position(|o| o == id).unwrap();
    assert!(
        position(&busy.id) < position(&idle.id),
        "sorted by CPU: {order:?}"
    );
    if pids_before == pids_after {
        assert_eq!(
            i["numproc"]["held"],
            json!(pids_before.parse::<u64>().unwrap()),
            "{i}"
        );
    }
}

#[test]
fn top_marks_the_beancounters_whose_failcnt_grew() {
    // Refusals within any sampling interval: five sleeps and the shell
    // hold 6 of 8; each subshell takes the 7th, forks the 8th and is
    // refused the next. The shell itself is never refused (ash ends on a
    // refused fork), so the refusals never stop.
    let mut b = bundle(
        "top-fail",
        &[
            "sh",
            "-c",
            "exec 2>/dev/null; for i in 1 2 3 4 5; do sleep 1000 & done; \
             while :; do ( sleep 0 & sleep 0 & sleep 0 ); done",
        ],
    );
    annotate(&mut b, &[("org.openvz.beancounter.numproc", "8")]);
    b.create_and_start();
    let events = cg_file(&b, "pids", "pids.events", "pids.events");
    let failed_before = keyed_file(&events, "max");
    let (rows, _) = top_once("1s", "fail");
    let failed_after = keyed_file(&events, "max");
    let row = &rows[&b.id];
    let failcnt = row["failcnt"]["numproc"].as_u64().unwrap();
    assert!(
        failed_before <= failcnt && failcnt <= failed_after,
        "{failed_before} {row} {failed_after}"
    );
    assert!(
        row["failcnt_delta"]["numproc"].as_u64().unwrap_or(0) >= 1,
        "{row}"
    );
    // The table marks the row and names the counter that grew.
    let out = ozz(&["top", "--once", "-d", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with(&b.id))
        .unwrap_or_else(|| panic!("no row for {}: {text}", b.id));
    assert!(line.contains("numproc+") && line.ends_with(" *"), "{line}");
}

#[test]
fn top_live_screen_refreshes_sorts_by_key_and_quits_on_q() {
    let b = limited("top-live", &["sleep", "1000"]);
    b.create_and_start();
    // A terminal for top: util-linux's script runs it on a pty.
    let command = format!(
        "{} --root {} top -d 200ms",
        ozz_bin().display(),
        state_root().display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-c", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let mut keys = child.stdin.take().unwrap();
    // The screen as it comes, read by a thread; each key is sent only once
    // the screen shows what came before it (a loaded guest starts top late).
    let (tx, rx) = std::sync::mpsc::channel();
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let wait_for = |text: &str, screen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => screen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => return false,
            }
        }
        true
    };
    use std::io::Write;
    let shown = wait_for("sorted by cpu", &mut screen);
    keys.write_all(b"m").unwrap();
    keys.flush().unwrap();
    let resorted = wait_for("sorted by mem", &mut screen);
    keys.write_all(b"q").unwrap();
    keys.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("top did not quit on q: {screen:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The rest of the screen, up to the end of the pty's output.
    wait_for("\x1b[?1049l", &mut screen);
    assert!(shown, "no first screen sorted by cpu: {screen:?}");
    assert!(resorted, "the m key: {screen:?}");
    assert!(status.success(), "{status:?}: {screen}");
    assert!(screen.contains(&b.id), "{screen}");
    // The terminal is given back: the alternate screen left, the cursor shown.
    assert!(screen.ends_with("\x1b[?25h\x1b[?1049l"), "{screen:?}");
}

#[test]
fn top_refuses_a_bad_interval_in_one_line() {
    for interval in ["0s", "soon"] {
        let out = ozz(&["top", "--once", "-d", interval]);
        assert!(!out.status.success(), "{interval}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("interval") || err.contains("duration"),
            "{err}"
        );
    }
}
