//! linux.resources fields the cgroups and update suites do not cover:
//! hugepageLimits, rdma, blockIO, memory reservation/swap/checkBeforeUpdate,
//! cpu burst/idle/realtime, pids 0 and -1. Each test checks the kernel's
//! files of the container's cgroup (v1 here, v2 in hack/test-v2) and skips,
//! saying why, only where the kernel lacks the controller or file.

use std::path::{Path, PathBuf};

use serde_json::json;
use spec_tests::*;

fn skip(test: &str, why: &str) {
    eprintln!("SKIP {test}: {why}");
}

/// Whether the kernel offers `controller`: listed at the v2 root, or
/// mounted as a v1 hierarchy.
fn has_controller(controller: &str) -> bool {
    if is_cgroup_v2() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == controller)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).is_dir()
    }
}

fn start(b: &Bundle) {
    b.create_and_start();
    assert_eq!(b.status(), "running");
}

/// Waits (bounded) until the container wrote `/out/<name>`.
fn wait_file(out: &Path, name: &str) {
    for _ in 0..1000 {
        if out.join(name).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{name} never appeared in {}", out.display());
}

#[test]
fn hugepage_limits_reach_the_hugetlb_files() {
    const T: &str = "hugepage_limits_reach_the_hugetlb_files";
    if !has_controller("hugetlb") {
        return skip(T, "the kernel has no hugetlb cgroup controller");
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        return skip(T, "the kernel has no 2MB huge pages");
    }
    for limit in [0u64, 4 << 20] {
        let mut b = bundle("hugetlb", &["sleep", "1000"]);
        b.config["linux"]["resources"]["hugepageLimits"] =
            json!([{"pageSize": "2MB", "limit": limit}]);
        start(&b);
        let max = cg_file(
            &b,
            "hugetlb",
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.max",
        );
        assert_eq!(read_trimmed(&max), limit.to_string(), "{}", max.display());
        // The reservation limit follows where the kernel has one.
        let rsvd = cg_file(
            &b,
            "hugetlb",
            "hugetlb.2MB.rsvd.limit_in_bytes",
            "hugetlb.2MB.rsvd.max",
        );
        if rsvd.exists() {
            assert_eq!(read_trimmed(&rsvd), limit.to_string(), "{}", rsvd.display());
        }
    }
}

#[test]
fn rdma_limits_reach_rdma_max() {
    const T: &str = "rdma_limits_reach_rdma_max";
    if !is_cgroup_v2() {
        return skip(
            T,
            "rdma limits are checked on cgroup v2 only (hack/test-v2)",
        );
    }
    if !has_controller("rdma") {
        return skip(T, "the kernel has no rdma cgroup controller");
    }
    // The RDMA devices the kernel knows: the first word of each line of a
    // cgroup's rdma.current (none without an RDMA adapter).
    let probe = bundle("rdma-probe", &["sleep", "1000"]);
    start(&probe);
    let current = read_trimmed(&probe.cgroup_dir("").join("rdma.current"));
    let Some(device) = current.split_whitespace().next().map(str::to_string) else {
        return skip(T, "no RDMA device: rdma.current is empty");
    };
    let mut b = bundle("rdma", &["sleep", "1000"]);
    b.config["linux"]["resources"]["rdma"] =
        json!({device.clone(): {"hcaHandles": 3, "hcaObjects": 17}});
    start(&b);
    let max = read_trimmed(&b.cgroup_dir("").join("rdma.max"));
    let line = max
        .lines()
        .find(|l| l.split_whitespace().next() == Some(device.as_str()))
        .unwrap_or_else(|| panic!("{device} not in rdma.max: {max:?}"));
    assert_eq!(line, format!("{device} hca_handle=3 hca_object=17"));
}

/// A block device of the machine and its major:minor: a real disk where
/// there is one, else any (loop, zram …: io.max and blkio.throttle accept
/// those as well).
fn block_device() -> Option<(String, u64, u64)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // Real disks (with a device link) first, then by name.
    names.sort_by_key(|n| {
        (
            !Path::new("/sys/block").join(n).join("device").exists(),
            n.clone(),
        )
    });
    let name = names.into_iter().next()?;
    let dev = read_trimmed(&Path::new("/sys/block").join(&name).join("dev"));
    let (major, minor) = dev.split_once(':')?;
    Some((name, major.parse().ok()?, minor.parse().ok()?))
}

#[test]
fn block_io_throttles_reach_the_kernel() {
    const T: &str = "block_io_throttles_reach_the_kernel";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    let Some((name, major, minor)) = block_device() else {
        return skip(T, "no block device under /sys/block");
    };
    let dev = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
    let mut b = bundle("blkio", &["sleep", "1000"]);
    b.config["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": dev(1 << 20),
        "throttleWriteBpsDevice": dev(2 << 20),
        "throttleReadIOPSDevice": dev(100),
        "throttleWriteIOPSDevice": dev(200),
    });
    start(&b);
    let key = format!("{major}:{minor}");
    if is_cgroup_v2() {
        let max = read_trimmed(&b.cgroup_dir("").join("io.max"));
        let line = max
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{name} ({key}) not in io.max: {max:?}"));
        assert_eq!(
            line,
            format!("{key} rbps=1048576 wbps=2097152 riops=100 wiops=200")
        );
    } else {
        for (file, want) in [
            ("blkio.throttle.read_bps_device", 1u64 << 20),
            ("blkio.throttle.write_bps_device", 2 << 20),
            ("blkio.throttle.read_iops_device", 100),
            ("blkio.throttle.write_iops_device", 200),
        ] {
            let text = read_trimmed(&b.cgroup_dir("blkio").join(file));
            assert_eq!(text, format!("{key} {want}"), "{file} for {name}");
        }
    }
}

/// The weight file the kernel exposes, as runc picks it: BFQ's where the
/// device's scheduler is BFQ, else io.weight (io.cost) on v2 / blkio.weight
/// (CFQ) on v1. None when the kernel has neither.
fn weight_file(b: &Bundle) -> Option<(PathBuf, bool)> {
    let dir = if is_cgroup_v2() {
        b.cgroup_dir("")
    } else {
        b.cgroup_dir("blkio")
    };
    let (bfq, plain) = if is_cgroup_v2() {
        ("io.bfq.weight", "io.weight")
    } else {
        ("blkio.bfq.weight", "blkio.weight")
    };
    // runc (and libcgroups) prefer the plain file on v1, BFQ's on v2.
    let order = if is_cgroup_v2() {
        [(bfq, true), (plain, false)]
    } else {
        [(plain, false), (bfq, true)]
    };
    order
        .into_iter()
        .map(|(f, is_bfq)| (dir.join(f), is_bfq))
        .find(|(p, _)| p.exists())
}

#[test]
fn block_io_weight_reaches_the_weight_file() {
    const T: &str = "block_io_weight_reaches_the_weight_file";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    // Whether the kernel exposes a weight file shows in a bare container.
    let probe = bundle("blkio-probe", &["sleep", "1000"]);
    start(&probe);
    let Some((probe_file, _)) = weight_file(&probe) else {
        return skip(
            T,
            "no weight file (no BFQ scheduler active, no io.cost, no CFQ): \
             runc fails such a weight as well",
        );
    };
    drop(probe);
    let mut b = bundle("blkio-weight", &["sleep", "1000"]);
    b.config["linux"]["resources"]["blockIO"] = json!({"weight": 500});
    start(&b);
    let (file, is_bfq) = weight_file(&b).unwrap();
    assert_eq!(file.file_name(), probe_file.file_name());
    let text = read_trimmed(&file);
    let default = text
        .lines()
        .find_map(|l| l.strip_prefix("default "))
        .unwrap_or(&text);
    // v2's io.weight takes [1, 10000]: runc maps [10, 1000] linearly onto it.
    let want = if is_cgroup_v2() && !is_bfq {
        1 + (500 - 10) * 9999 / 990
    } else {
        500
    };
    assert_eq!(default, want.to_string(), "{}", file.display());
}

#[test]
fn memory_reservation_is_the_low_or_soft_limit() {
    let mut b = bundle("mem-low", &["sleep", "1000"]);
    b.config["linux"]["resources"]["memory"] =
        json!({"limit": 64u64 << 20, "reservation": 16u64 << 20});
    start(&b);
    let low = cg_file(&b, "memory", "memory.soft_limit_in_bytes", "memory.low");
    assert_eq!(read_trimmed(&low), (16u64 << 20).to_string());
    let max = cg_file(&b, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read_trimmed(&max), (64u64 << 20).to_string());
}

#[test]
fn memory_swap_is_memory_plus_swap() {
    const T: &str = "memory_swap_is_memory_plus_swap";
    let (file, unlimited) = if is_cgroup_v2() {
        ("memory.swap.max", "max")
    } else {
        ("memory.memsw.limit_in_bytes", "9223372036854771712")
    };
    let probe = bundle("swap-probe", &["sleep", "1000"]);
    start(&probe);
    if !cg_file(&probe, "memory", file, file).exists() {
        return skip(T, &format!("no {file}: the kernel does not account swap"));
    }
    drop(probe);
    let limit: i64 = 32 << 20;
    // (OCI swap, what the kernel file must say)
    let v1 = !is_cgroup_v2();
    let cases: [(i64, String); 3] = [
        // v2's memory.swap.max is swap alone: swap - limit.
        (
            96 << 20,
            if v1 { 96u64 << 20 } else { 64u64 << 20 }.to_string(),
        ),
        (limit, if v1 { limit as u64 } else { 0 }.to_string()),
        (-1, unlimited.to_string()),
    ];
    for (swap, want) in cases {
        let mut b = bundle("swap", &["sleep", "1000"]);
        b.config["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": swap});
        start(&b);
        let path = cg_file(&b, "memory", file, file);
        assert_eq!(read_trimmed(&path), want, "swap {swap}: {}", path.display());
        let max = cg_file(&b, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(read_trimmed(&max), limit.to_string());
    }
}

#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    // 8 MiB of tmpfs in /dev/shm is charged to the container's cgroup.
    let (mut b, out) = out_bundle(
        "mem-check",
        "dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=8 2>/dev/null; \
         touch /out/ready; sleep 1000",
    );
    b.config["linux"]["resources"]["memory"] =
        json!({"limit": 64u64 << 20, "checkBeforeUpdate": true});
    start(&b);
    wait_file(&out, "ready");
    let max = cg_file(&b, "memory", "memory.limit_in_bytes", "memory.max");
    let usage_file = cg_file(&b, "memory", "memory.usage_in_bytes", "memory.current");
    let usage: u64 = read_trimmed(&usage_file).parse().unwrap();
    assert!(usage > 8 << 20, "the fill is not charged: usage {usage}");

    let upd = b.cmd("update", &["--memory", "4m"]);
    assert_eq!(
        upd.status.code(),
        Some(1),
        "update below usage did not fail"
    );
    let err = stderr(&upd);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    if is_cgroup_v2() {
        // runc's check (the kernel would reclaim, then OOM-kill).
        assert!(err.contains("rejecting memory limit"), "{err:?}");
    } else {
        // v1: the kernel refuses (EBUSY) what it cannot reclaim (tmpfs, no
        // swap), reported as runc does.
        assert!(err.contains("unable to set memory limit"), "{err:?}");
    }
    assert_eq!(
        read_trimmed(&max),
        (64u64 << 20).to_string(),
        "limit changed"
    );
    assert_eq!(b.status(), "running");

    // A limit above the usage still applies.
    let upd = b.cmd("update", &["--memory", "48m"]);
    assert!(upd.status.success(), "update 48m: {}", stderr(&upd));
    assert_eq!(read_trimmed(&max), (48u64 << 20).to_string());
}

#[test]
fn cpu_burst_and_idle_reach_the_kernel() {
    const T: &str = "cpu_burst_and_idle_reach_the_kernel";
    let probe = bundle("cpu-probe", &["sleep", "1000"]);
    start(&probe);
    let burst_file = cg_file(&probe, "cpu", "cpu.cfs_burst_us", "cpu.max.burst");
    let idle_file = cg_file(&probe, "cpu", "cpu.idle", "cpu.idle");
    let (has_burst, has_idle) = (burst_file.exists(), idle_file.exists());
    drop(probe);
    if !has_burst && !has_idle {
        return skip(T, "the kernel has neither cpu burst nor cpu.idle");
    }
    let mut b = bundle("cpu-burst", &["sleep", "1000"]);
    let mut cpu = json!({"quota": 50000, "period": 100000});
    if has_burst {
        cpu["burst"] = json!(20000);
    } else {
        skip(T, "no cpu burst file: burst not checked");
    }
    if has_idle {
        cpu["idle"] = json!(1);
    } else {
        skip(T, "no cpu.idle: idle not checked");
    }
    b.config["linux"]["resources"]["cpu"] = cpu;
    start(&b);
    if has_burst {
        let f = cg_file(&b, "cpu", "cpu.cfs_burst_us", "cpu.max.burst");
        assert_eq!(read_trimmed(&f), "20000", "{}", f.display());
    }
    if has_idle {
        let f = cg_file(&b, "cpu", "cpu.idle", "cpu.idle");
        assert_eq!(read_trimmed(&f), "1", "{}", f.display());
    }
    let max = cg_file(&b, "cpu", "cpu.cfs_quota_us", "cpu.max");
    let want = if is_cgroup_v2() {
        "50000 100000"
    } else {
        "50000"
    };
    assert_eq!(read_trimmed(&max), want);
}

#[test]
fn cpu_realtime_reaches_the_rt_files() {
    const T: &str = "cpu_realtime_reaches_the_rt_files";
    if is_cgroup_v2() {
        return skip(T, "cgroup v2 has no realtime bandwidth files");
    }
    let parent = cgroup_root("cpu").join(cgroup_parent());
    if !cgroup_root("cpu").join("cpu.rt_runtime_us").exists() {
        return skip(
            T,
            "no cpu.rt_runtime_us (kernel without RT group scheduling)",
        );
    }
    // A child's RT runtime must fit in its parent's, and a new cgroup gets
    // none: give this run's parent some, as an admin would for runc.
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::write(parent.join("cpu.rt_runtime_us"), "100000").unwrap();
    let mut b = bundle("cpu-rt", &["sleep", "1000"]);
    b.config["linux"]["resources"]["cpu"] =
        json!({"realtimeRuntime": 30000, "realtimePeriod": 500000});
    start(&b);
    let dir = b.cgroup_dir("cpu");
    assert_eq!(read_trimmed(&dir.join("cpu.rt_period_us")), "500000");
    assert_eq!(read_trimmed(&dir.join("cpu.rt_runtime_us")), "30000");
}

/// Runs `echo $(echo forked)` (one fork) under pids limit `limit`; returns
/// pids.max and what reached /out/fork.
fn pids_run(limit: i64) -> (String, String) {
    let (mut b, out) = out_bundle("pids-max", "echo $(echo forked) > /out/fork");
    b.config["linux"]["resources"]["pids"] = json!({"limit": limit});
    b.create_ok();
    let max = read_trimmed(&cg_file(&b, "pids", "pids.max", "pids.max"));
    let st = b.cmd("start", &[]);
    assert!(st.status.success(), "start: {}", stderr(&st));
    b.wait_status("stopped");
    let fork = std::fs::read_to_string(out.join("fork")).unwrap_or_default();
    (max, fork.trim().to_string())
}

#[test]
fn pids_limit_minus_one_is_max() {
    let (max, fork) = pids_run(-1);
    assert_eq!(max, "max");
    assert_eq!(fork, "forked", "the container could not fork");
}

/// runc 1.4 (runc#4949, runtime-spec#1279): 0 is a real limit, written as 1
/// (a cgroup holding its init cannot fork under either).
#[test]
fn pids_limit_zero_forbids_fork() {
    let (max, fork) = pids_run(0);
    assert_eq!(max, "1");
    assert_eq!(fork, "", "the container forked under pids limit 0");
}
