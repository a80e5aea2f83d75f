//! `ozz events`: runc's JSON lines. `--stats` matches the kernel's own
//! counts (processes in the cgroup, memory in use); the streaming form
//! reports an OOM kill inside the container and ends when the container
//! stops. v1 here, v2 in hack/test-v2.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::*;

fn procs_file(b: &Bundle) -> PathBuf {
    if is_cgroup_v2() {
        b.cgroup_dir("").join("cgroup.procs")
    } else {
        b.cgroup_dir("pids").join("cgroup.procs")
    }
}

fn procs(b: &Bundle) -> Vec<u64> {
    std::fs::read_to_string(procs_file(b))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_for_procs(b: &Bundle, n: usize) {
    for _ in 0..500 {
        if procs(b).len() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the container never had {n} processes: {:?}", procs(b));
}

fn one_stats_event(b: &Bundle) -> Value {
    let out = b.cmd("events", &["--stats"]);
    assert!(out.status.success(), "events --stats: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one JSON line: {text:?}");
    serde_json::from_str(text.trim()).expect("events JSON")
}

#[test]
fn stats_match_the_kernels_counts() {
    let b = bundle("ev-stats", &["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    b.create_and_start();
    wait_for_procs(&b, 3);
    let event = one_stats_event(&b);
    assert_eq!(event["type"], "stats", "{event}");
    assert_eq!(event["id"], json!(b.id), "{event}");
    let data = &event["data"];
    assert_eq!(
        data["pids"]["current"],
        json!(procs(&b).len()),
        "pids.current against cgroup.procs: {data}"
    );
    let usage = data["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "no memory usage: {}", data["memory"]);
    assert!(
        data["memory"]["usage"].get("limit").is_some(),
        "runc always encodes the limit: {}",
        data["memory"]
    );
    assert!(
        data["cpu"]["usage"].get("kernel").is_some(),
        "{}",
        data["cpu"]
    );
    assert!(
        data["cpu"]["usage"].get("user").is_some(),
        "{}",
        data["cpu"]
    );
    assert!(data["blkio"].is_object(), "{data}");
    assert!(data["hugetlb"].is_object(), "{data}");

    // A limit shows up as the kernel has it.
    let out = b.cmd("update", &["--pids-limit", "64", "--memory", "96m"]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    let data = one_stats_event(&b)["data"].clone();
    assert_eq!(data["pids"]["limit"], json!(64), "{data}");
    assert_eq!(data["memory"]["usage"]["limit"], json!(96 << 20), "{data}");
}

#[test]
fn events_of_a_stopped_container_fail_with_runcs_phrase() {
    let b = bundle("ev-stopped", &["true"]);
    b.create_and_start();
    b.wait_status("stopped");
    let out = b.cmd("events", &["--stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(
        err.contains(&format!("container with id {} is not running", b.id)),
        "{err}"
    );
    let b2 = bundle("ev-interval", &["sleep", "100"]);
    b2.create_and_start();
    let out = b2.cmd("events", &["--interval", "0s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("duration interval must be greater than 0"),
        "{}",
        stderr(&out)
    );
}

/// `ozz events` streaming into a channel of parsed lines.
fn stream(b: &Bundle, interval: &str) -> (Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["events", "--interval", interval, &b.id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| json!({"unparsable": line, "error": e.to_string()}));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The kernel's count of OOM kills in the container's cgroup, if it keeps one.
fn oom_kills(b: &Bundle) -> Option<u64> {
    let file: PathBuf = if is_cgroup_v2() {
        b.cgroup_dir("").join("memory.events")
    } else {
        b.cgroup_dir("memory").join("memory.oom_control")
    };
    keyed(&std::fs::read_to_string(file).ok()?, "oom_kill")
}

/// What the kernel says of the container's memory, for a failure message:
/// the OOM counters, the usage, and each process with its state.
fn memory_report(b: &Bundle) -> String {
    let (events, usage, stat) = if is_cgroup_v2() {
        let dir = b.cgroup_dir("");
        (
            dir.join("memory.events"),
            dir.join("memory.current"),
            dir.join("memory.stat"),
        )
    } else {
        let dir = b.cgroup_dir("memory");
        (
            dir.join("memory.oom_control"),
            dir.join("memory.usage_in_bytes"),
            dir.join("memory.stat"),
        )
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .replace('\n', " ")
    };
    let ps: Vec<String> = procs(b)
        .iter()
        .map(|pid| {
            let stat = read(Path::new(&format!("/proc/{pid}/stat")));
            let cmd = read(Path::new(&format!("/proc/{pid}/cmdline"))).replace('\0', " ");
            format!(
                "{pid} [{}] {cmd}",
                stat.split(") ")
                    .nth(1)
                    .unwrap_or("?")
                    .chars()
                    .next()
                    .unwrap_or('?')
            )
        })
        .collect();
    // Anonymous against file-backed memory, and how often file pages came
    // back after reclaim.
    let stat: Vec<String> = std::fs::read_to_string(stat)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let key = l.split(' ').next().unwrap_or("");
            ["anon", "rss", "file", "cache", "shmem"].contains(&key)
                || key.starts_with("workingset_refault")
                || key == "pgmajfault"
        })
        .map(str::to_string)
        .collect();
    format!(
        "events: {}; usage: {}; stat: {stat:?}; processes: {ps:?}",
        read(&events).trim(),
        read(&usage).trim()
    )
}

#[test]
fn streaming_reports_stats_and_an_oom_kill_then_ends_with_the_container() {
    let limit: u64 = 16 << 20;
    // After /out/go, dd reads 64 MiB of zeros into one buffer: the OOM
    // killer takes it, and the init carries on sleeping. The buffer fills
    // inside a single read(), so the kernel runs out of memory to reclaim at
    // once; a hog that needs its own text while it grows (a shell collecting
    // a pipe) keeps evicting and re-reading busybox from the 9p root of the
    // v2 guest, and reaches the OOM kill as late as that I/O lets it.
    let (mut b, out) = out_bundle(
        "ev-oom",
        "while [ ! -e /out/go ]; do sleep 0.1; done; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived > /out/r; \
         exec sleep 1000",
    );
    b.config["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    b.create_and_start();
    if oom_kills(&b).is_none() {
        eprintln!("skipped: this kernel keeps no oom_kill counter");
        return;
    }
    let (mut child, rx) = stream(&b, "300ms");
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no stats event within 10s");
    assert_eq!(first["type"], "stats", "{first}");
    assert_eq!(first["id"], json!(b.id), "{first}");
    assert!(first["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1);

    std::fs::write(out.join("go"), "").unwrap();
    let mut saw_oom = false;
    let mut stats = 1;
    // Stats keep coming every interval: bound the wait as a whole, generously
    // for the TCG guest, where the hog itself takes a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while std::time::Instant::now() < deadline {
        let Ok(event) = rx.recv_timeout(Duration::from_secs(15)) else {
            break;
        };
        match event["type"].as_str() {
            Some("oom") => {
                assert_eq!(event["id"], json!(b.id), "{event}");
                assert!(event.get("data").is_none(), "{event}");
                saw_oom = true;
                break;
            }
            Some("stats") => stats += 1,
            // The hog's charges beyond the limit grow physpages' failcnt
            // (memory.events max on v2) before the kill.
            Some("beancounter") => {
                assert_eq!(event["id"], json!(b.id), "{event}");
                assert!(event["data"]["resource"].is_string(), "{event}");
            }
            _ => panic!("unexpected line: {event}"),
        }
    }
    assert!(
        saw_oom,
        "no oom event ({stats} stats events); the cgroup: {}",
        memory_report(&b)
    );
    assert!(!Path::new(&out.join("r")).exists(), "the hog survived");
    assert_eq!(oom_kills(&b), Some(1), "{}", memory_report(&b));
    assert_eq!(b.status(), "running", "the init should survive");

    // The stream ends, with 0, once the container stops.
    let kill = ozz(&["kill", &b.id, "KILL"]);
    assert!(kill.status.success(), "kill: {}", stderr(&kill));
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("events did not end after the container stopped");
    };
    assert!(status.success(), "events exited with {status}");
}
