//! `ozz update`: new limits reach the kernel's cgroup files of a running
//! container (same init, still running), are enforced on its processes, and
//! are kept in the stored config; refused for stopped containers and bad
//! values (one line, nothing changed). v1 here, v2 in hack/test-v2.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use spec_tests::*;

fn pid(b: &Bundle) -> i64 {
    b.state()["pid"].as_i64().unwrap()
}

/// The stored state of the container (what later commands read).
fn stored(b: &Bundle) -> Value {
    let path = state_root().join(&b.id).join("state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn update_ok(b: &Bundle, flags: &[&str]) {
    let out = b.cmd("update", flags);
    assert!(
        out.status.success(),
        "ozz update {flags:?}: {}",
        stderr(&out)
    );
}

/// Asserts `ozz update` fails with exactly one line on stderr, exit 1.
fn update_fails(b: &Bundle, flags: &[&str]) -> String {
    let out = b.cmd("update", flags);
    assert_eq!(out.status.code(), Some(1), "update {flags:?} did not fail");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err.trim().to_string()
}

fn has_memsw(b: &Bundle) -> bool {
    !is_cgroup_v2()
        && b.cgroup_dir("memory")
            .join("memory.memsw.limit_in_bytes")
            .exists()
}

#[test]
fn memory_update_reaches_the_kernel_and_the_container_keeps_running() {
    let mut b = bundle("up-mem", &["sleep", "1000"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    // A device outside the default rules (/dev/kmsg, 1:11, writable
    // without capabilities): allowed only through the bundle's own rules.
    b.config["linux"]["devices"] = json!([{"path": "/dev/ozz-kmsg", "type": "c",
        "major": 1, "minor": 11, "fileMode": 438, "uid": 0, "gid": 0}]);
    b.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}));
    b.create_and_start();
    let before = pid(&b);
    let kmsg = "echo ozz-update-test > /dev/ozz-kmsg";
    let out = ozz(&["exec", &b.id, "sh", "-c", kmsg]);
    assert!(out.status.success(), "kmsg before: {}", stderr(&out));
    let limit = cg_file(&b, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read_trimmed(&limit), (32u64 << 20).to_string());

    update_ok(&b, &["--memory", "64m", "--memory-swap", "128M"]);
    assert_eq!(read_trimmed(&limit), (64u64 << 20).to_string());
    if is_cgroup_v2() {
        // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
        let swap = b.cgroup_dir("").join("memory.swap.max");
        if swap.exists() {
            assert_eq!(read_trimmed(&swap), (64u64 << 20).to_string());
        }
    } else if has_memsw(&b) {
        let memsw = b.cgroup_dir("memory").join("memory.memsw.limit_in_bytes");
        assert_eq!(read_trimmed(&memsw), (128u64 << 20).to_string());
    }
    assert_eq!(pid(&b), before, "the init changed");
    assert_eq!(b.status(), "running");
    assert!(!process_gone(before));
    // The device rules were re-applied as create made them (on v2 a new
    // eBPF program replaces the old one): the bundle's device still opens.
    let out = ozz(&["exec", &b.id, "sh", "-c", kmsg]);
    assert!(out.status.success(), "device rule lost: {}", stderr(&out));
    let memory = &stored(&b)["config"]["linux"]["resources"]["memory"];
    assert_eq!(memory["limit"], json!(64 << 20), "{memory}");
    assert_eq!(memory["swap"], json!(128 << 20), "{memory}");

    // -1 lifts the limit (and swap with it, as runc).
    update_ok(&b, &["--memory", "-1"]);
    let unlimited = read_trimmed(&limit);
    if is_cgroup_v2() {
        assert_eq!(unlimited, "max");
    } else {
        assert!(unlimited.parse::<u64>().unwrap() > 1 << 50, "{unlimited}");
    }
    assert_eq!(pid(&b), before);
}

#[test]
fn resources_from_stdin_are_applied_and_stored() {
    let mut b = bundle("up-stdin", &["sleep", "1000"]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 100});
    b.create_and_start();
    let resources = json!({"memory": {"limit": 48 << 20, "swap": 48 << 20},
        "pids": {"limit": 42}});
    let mut child = Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["update", "-r", "-", &b.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(resources.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "update -r -: {}", stderr(&out));
    assert_eq!(
        read_trimmed(&cg_file(
            &b,
            "memory",
            "memory.limit_in_bytes",
            "memory.max"
        )),
        (48u64 << 20).to_string()
    );
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "42"
    );
    let stored = &stored(&b)["config"]["linux"]["resources"];
    assert_eq!(stored["pids"]["limit"], json!(42));
    assert_eq!(stored["memory"]["limit"], json!(48 << 20));

    // A file works the same way.
    let file = b.dir.join("resources.json");
    std::fs::write(&file, json!({"pids": {"limit": 7}}).to_string()).unwrap();
    update_ok(&b, &["--resources", file.to_str().unwrap()]);
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "7"
    );
    // The earlier memory update survived the merge.
    assert_eq!(
        stored_limit(&b),
        json!(48 << 20),
        "memory lost in the merge"
    );
}

fn stored_limit(b: &Bundle) -> Value {
    stored(b)["config"]["linux"]["resources"]["memory"]["limit"].clone()
}

#[test]
fn pids_limit_update_stops_forks_inside() {
    // Waits for /out/go, then tries 20 background sleeps. With the limit
    // lowered to 5: pid 1 + inner sh + 3 sleeps, the 4th fork fails.
    let (mut b, out) = out_bundle(
        "up-pids",
        "while [ ! -e /out/go ]; do sleep 0.1; done; \
         sh -c 'for i in $(seq 20); do sleep 30 & done' 2>/out/err; echo $? > /out/rc; \
         n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n > /out/n",
    );
    b.config["linux"]["resources"]["pids"] = json!({"limit": 100});
    b.create_and_start();
    update_ok(&b, &["--pids-limit", "5"]);
    assert_eq!(
        read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max")),
        "5"
    );
    std::fs::write(out.join("go"), "").unwrap();
    b.wait_status("stopped");
    let err = read_trimmed(&out.join("err"));
    assert!(err.contains("can't fork"), "no fork failed: {err:?}");
    assert_ne!(read_trimmed(&out.join("rc")), "0");
    assert_eq!(read_trimmed(&out.join("n")), "4", "pid 1 + 3 sleeps");
}

#[test]
fn cpu_update_writes_quota_period_shares_and_throttles() {
    let b = bundle("up-cpu", &["sleep", "1000"]);
    b.create_and_start();
    update_ok(
        &b,
        &[
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "100000",
            "--cpu-share",
            "256",
        ],
    );
    assert_cpu_files(&b, 256, 20000, 100000);
    // A busy loop exec'd into the container is throttled by the new quota.
    let out = ozz(&[
        "exec",
        &b.id,
        "timeout",
        "1",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    assert_ne!(out.status.code(), None, "exec: {}", stderr(&out));
    let stat = read_trimmed(&cg_file(&b, "cpu", "cpu.stat", "cpu.stat"));
    assert!(
        keyed(&stat, "nr_throttled").unwrap_or(0) > 0,
        "never throttled: {stat}"
    );
    let cpu = &stored(&b)["config"]["linux"]["resources"]["cpu"];
    assert_eq!(cpu["quota"], json!(20000), "{cpu}");
    assert_eq!(cpu["shares"], json!(256), "{cpu}");
}

#[test]
fn cpuset_update_rebinds_the_running_init() {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = (ncpu - 1).to_string();
    let b = bundle("up-cpuset", &["sleep", "1000"]);
    b.create_and_start();
    update_ok(&b, &["--cpuset-cpus", &last, "--cpuset-mems", "0"]);
    assert_eq!(
        read_trimmed(&cg_file(&b, "cpuset", "cpuset.cpus", "cpuset.cpus")),
        last
    );
    assert_eq!(
        read_trimmed(&cg_file(&b, "cpuset", "cpuset.mems", "cpuset.mems")),
        "0"
    );
    let status = read_trimmed(Path::new(&format!("/proc/{}/status", pid(&b))));
    assert_eq!(
        status_field(&status, "Cpus_allowed_list").as_deref(),
        Some(last.as_str()),
        "{status}"
    );
}

#[test]
fn update_of_a_stopped_container_fails_with_runcs_phrase() {
    let b = bundle("up-stopped", &["true"]);
    b.create_and_start();
    b.wait_status("stopped");
    let err = update_fails(&b, &["--memory", "64m"]);
    assert!(err.contains("container not running"), "{err}");
    let err = update_fails(&b, &["--pids-limit", "10"]);
    assert!(err.contains("container not running"), "{err}");
}

#[test]
fn bad_values_fail_with_one_line_and_change_nothing() {
    let mut b = bundle("up-bad", &["sleep", "1000"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    b.create_and_start();
    let limit = cg_file(&b, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cg_file(&b, "pids", "pids.max", "pids.max");
    let state_file = state_root().join(&b.id).join("state.json");
    let before = std::fs::read(&state_file).unwrap();
    let bad_json = b.dir.join("bad.json");
    std::fs::write(&bad_json, r#"{"memory": {"limit": "lots"}}"#).unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--memory", "12x", "--pids-limit", "9"],
            "invalid value for memory",
        ),
        (&["--memory-swap", "lots"], "invalid value for memory-swap"),
        (
            &["--cpu-quota", "abc", "--pids-limit", "9"],
            "invalid value for cpu-quota",
        ),
        (&["--cpu-share", "-5"], "invalid value for cpu-share"),
        (&["-r", bad_json.to_str().unwrap()], "decode resources"),
        (
            &["--l3-cache-schema", "L3:0=f", "--pids-limit", "9"],
            "Intel RDT",
        ),
    ];
    for (flags, phrase) in cases {
        let err = update_fails(&b, flags);
        assert!(err.contains(phrase), "{flags:?}: {err}");
        assert_eq!(read_trimmed(&limit), (32u64 << 20).to_string(), "{flags:?}");
        assert_eq!(read_trimmed(&pids), "50", "{flags:?}");
        assert_eq!(
            std::fs::read(&state_file).unwrap(),
            before,
            "{flags:?} changed state.json"
        );
    }
    assert_eq!(b.status(), "running");
}

/// Removes a parent cgroup the test made (itself, or ozz for the
/// container), in every hierarchy, after the container (declared later, so
/// dropped first) is gone.
struct OwnCgroup(String);

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        remove_cgroup_everywhere(&self.0);
    }
}

/// Lowering period and quota together: on v1 the kernel refuses a period
/// that, beside the old quota, exceeds the parent's quota/period ratio
/// (EINVAL), so the quota goes first, as runc writes them. The parent is
/// the test's own cgroup, limited to one CPU. (On v2 cpu.max takes both in
/// one write: the same update is checked there without a parent limit.)
#[test]
fn cpu_period_and_quota_lowered_together_under_a_limited_parent() {
    let id = unique_id("up-period");
    let parent_rel = format!("{}/{id}-lim", cgroup_parent());
    let guard = OwnCgroup(parent_rel.clone());
    if !is_cgroup_v2() {
        let dir = cgroup_root("cpu").join(&parent_rel);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000").unwrap();
        std::fs::write(dir.join("cpu.cfs_quota_us"), "100000").unwrap();
    }
    let mut b = bundle("up-period", &["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{parent_rel}/{}", b.id));
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 100000, "period": 100000});
    b.create_and_start();
    update_ok(&b, &["--cpu-period", "50000", "--cpu-quota", "50000"]);
    let (v1_dir, v2_dir) = (
        cgroup_root("cpu").join(&parent_rel).join(&b.id),
        cgroup_root("").join(&parent_rel).join(&b.id),
    );
    if is_cgroup_v2() {
        assert_eq!(read_trimmed(&v2_dir.join("cpu.max")), "50000 50000");
    } else {
        assert_eq!(read_trimmed(&v1_dir.join("cpu.cfs_period_us")), "50000");
        assert_eq!(read_trimmed(&v1_dir.join("cpu.cfs_quota_us")), "50000");
    }
    // And back up: a larger period with its quota.
    update_ok(&b, &["--cpu-period", "200000", "--cpu-quota", "200000"]);
    if is_cgroup_v2() {
        assert_eq!(read_trimmed(&v2_dir.join("cpu.max")), "200000 200000");
    } else {
        assert_eq!(read_trimmed(&v1_dir.join("cpu.cfs_period_us")), "200000");
        assert_eq!(read_trimmed(&v1_dir.join("cpu.cfs_quota_us")), "200000");
    }
    assert_eq!(b.status(), "running");
    drop(b);
    drop(guard);
}

/// An idle cgroup takes no weight (the kernel refuses cpu.shares and
/// cpu.weight while cpu.idle is 1): clearing idle and setting shares in
/// one update writes cpu.idle first.
#[test]
fn cpu_idle_cleared_and_shares_set_in_one_update() {
    let mut b = bundle("up-idle", &["sleep", "1000"]);
    let idle_file = cg_file(&b, "cpu", "cpu.idle", "cpu.idle");
    b.config["linux"]["resources"]["cpu"] = json!({"idle": 1});
    b.create_and_start();
    if !idle_file.exists() {
        eprintln!("skip: the kernel has no cpu.idle");
        return;
    }
    assert_eq!(read_trimmed(&idle_file), "1");
    update_ok(&b, &["--cpu-idle", "0", "--cpu-share", "512"]);
    assert_eq!(read_trimmed(&idle_file), "0");
    if is_cgroup_v2() {
        assert_eq!(
            read_trimmed(&b.cgroup_dir("").join("cpu.weight")),
            shares_to_weight(512).to_string()
        );
    } else {
        assert_eq!(read_trimmed(&b.cgroup_dir("cpu").join("cpu.shares")), "512");
    }
    // Setting idle again with a weight in the same update also works.
    update_ok(&b, &["--cpu-idle", "1", "--cpu-share", "1024"]);
    assert_eq!(read_trimmed(&idle_file), "1");
    assert_eq!(b.status(), "running");
}
