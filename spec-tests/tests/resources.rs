//! linux.resources fields the cgroups and update suites do not cover:
//! hugepageLimits, rdma, blockIO, memory reservation/swap/checkBeforeUpdate,
//! cpu burst/idle/realtime, pids 0 and -1. Each test checks the kernel's
//! files of the container's cgroup (v1 here, v2 in hack/test-v2), the block
//! I/O limits also their effect on direct I/O, and skips, saying why, only
//! where the kernel lacks the controller or file or the machine a device.

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
        // ozz writes rdma.max on v2 only: on v1 the limits are refused
        // rather than dropped, and the failed create leaves nothing.
        let mut b = bundle("rdma-v1", &["true"]);
        b.config["linux"]["resources"]["rdma"] = json!({"rxe0": {"hcaHandles": 3}});
        let out = b.create(&[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("rdma limits need cgroup v2"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!state_root().join(&b.id).exists());
        return;
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

/// A block device: its name under /sys/block, major and minor.
#[derive(Clone, Debug)]
struct Disk {
    name: String,
    major: u64,
    minor: u64,
}

impl Disk {
    fn from_name(name: &str) -> Option<Disk> {
        let dev = std::fs::read_to_string(Path::new("/sys/block").join(name).join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        Some(Disk {
            name: name.to_string(),
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    fn key(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }

    /// The I/O scheduler the kernel uses for it ("none" when it has none).
    fn scheduler(&self) -> String {
        let text = std::fs::read_to_string(
            Path::new("/sys/block")
                .join(&self.name)
                .join("queue/scheduler"),
        )
        .unwrap_or_default();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
            .unwrap_or("none")
            .to_string()
    }
}

/// The scratch disk hack/v2-guest attaches (OZZ_SCRATCH_DISK=/dev/vdX):
/// empty, the tests may write to it.
fn scratch_disk() -> Option<Disk> {
    let path = std::env::var("OZZ_SCRATCH_DISK").ok()?;
    Disk::from_name(path.strip_prefix("/dev/")?)
}

/// A block device for the checks that only read: the scratch disk, else a
/// real disk of the machine (with a device link), else any (loop, zram …:
/// io.max and blkio.throttle accept those as well).
fn block_device() -> Option<Disk> {
    if let Some(d) = scratch_disk() {
        return Some(d);
    }
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
    names.iter().find_map(|n| Disk::from_name(n))
}

/// A bundle whose container sees `disk` as /dev/blk (linux.devices, and a
/// device cgroup rule allowing it: as in runc, linux.devices alone is not
/// an allow rule) and runs `script`, then writes the seconds it took (from
/// /proc/uptime) to /out/secs.
fn timed_disk_bundle(tag: &str, disk: &Disk, script: &str) -> (Bundle, PathBuf) {
    let (mut b, out) = out_bundle(
        tag,
        &format!(
            "read t0 _ < /proc/uptime; {script}; read t1 _ < /proc/uptime; \
             echo $t0 $t1 > /out/secs.tmp; mv /out/secs.tmp /out/secs"
        ),
    );
    b.config["linux"]["devices"] = json!([{"path": "/dev/blk", "type": "b",
        "major": disk.major, "minor": disk.minor, "fileMode": 0o600}]);
    let rules = &mut b.config["linux"]["resources"]["devices"];
    if !rules.is_array() {
        *rules = json!([]);
    }
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "b",
        "major": disk.major, "minor": disk.minor, "access": "rwm"}));
    (b, out)
}

/// Runs the bundle to its end; the seconds its script took.
fn run_timed(b: &Bundle, out: &Path) -> f64 {
    b.create_and_start();
    // Generous: a throttled run takes seconds, the TCG guest is slow.
    for _ in 0..1200 {
        if out.join("secs").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = read_trimmed(&out.join("secs"));
    let t: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    t[1] - t[0]
}

/// A loop device over an 8 MiB sparse file of this test, for machines
/// without the guest's scratch disk (a test may write to it), optionally
/// switched to another I/O scheduler. On drop the scheduler is put back and
/// the device detached.
struct LoopDisk {
    disk: Disk,
    old_scheduler: Option<String>,
    _dir: HostDir,
}

impl LoopDisk {
    fn new(scheduler: Option<&str>) -> Result<LoopDisk, String> {
        let dir = HostDir::new("loop-disk");
        let image = dir.path.join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(8 << 20))
            .map_err(|e| format!("{}: {e}", image.display()))?;
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .map_err(|e| format!("losetup: {e}"))?;
        let dev = stdout(&out).trim().to_string();
        if !out.status.success() || dev.is_empty() {
            return Err(format!("losetup: {}", stderr(&out).trim()));
        }
        let Some(disk) = dev.strip_prefix("/dev/").and_then(Disk::from_name) else {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &dev])
                .status();
            return Err(format!("no /sys/block entry for {dev}"));
        };
        let mut l = LoopDisk {
            old_scheduler: None,
            disk,
            _dir: dir,
        };
        if let Some(want) = scheduler {
            let old = l.disk.scheduler();
            std::fs::write(l.scheduler_file(), want)
                .map_err(|e| format!("cannot schedule {dev} with {want}: {e}"))?;
            l.old_scheduler = Some(old);
        }
        Ok(l)
    }

    fn scheduler_file(&self) -> PathBuf {
        Path::new("/sys/block")
            .join(&self.disk.name)
            .join("queue/scheduler")
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if let Some(old) = &self.old_scheduler {
            let _ = std::fs::write(self.scheduler_file(), old);
        }
        let _ = std::process::Command::new("losetup")
            .args(["-d", &format!("/dev/{}", self.disk.name)])
            .status();
    }
}

#[test]
fn block_io_throttles_reach_the_kernel() {
    const T: &str = "block_io_throttles_reach_the_kernel";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    let Some(disk) = block_device() else {
        return skip(T, "no block device under /sys/block");
    };
    let (name, major, minor) = (&disk.name, disk.major, disk.minor);
    let dev = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
    let mut b = bundle("blkio", &["sleep", "1000"]);
    b.config["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": dev(1 << 20),
        "throttleWriteBpsDevice": dev(2 << 20),
        "throttleReadIOPSDevice": dev(100),
        "throttleWriteIOPSDevice": dev(200),
    });
    start(&b);
    let key = disk.key();
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

/// Bytes per second of `dd` reading `count` blocks of `bs` bytes with
/// O_DIRECT from the disk, in a container given it as /dev/blk, with
/// `block_io` as its linux.resources.blockIO (reads only: this may be the
/// machine's own disk).
fn direct_read_rate(disk: &Disk, bs: u64, count: u64, block_io: serde_json::Value) -> f64 {
    let (mut b, out) = timed_disk_bundle(
        "blkio-read",
        disk,
        &format!("dd if=/dev/blk of=/dev/null bs={bs} count={count} iflag=direct 2>/out/dd"),
    );
    b.config["linux"]["resources"]["blockIO"] = block_io;
    let secs = run_timed(&b, &out);
    let dd = std::fs::read_to_string(out.join("dd")).unwrap_or_default();
    assert!(
        dd.contains(&format!("{count}+0 records in")),
        "dd did not read it all: {dd}"
    );
    (bs * count) as f64 / secs.max(0.01)
}

/// A disk of at least 1 MiB that root can open here: the scratch disk, else
/// the first such disk of the machine (only ever read). Sandboxes often
/// refuse to open the machine's own disks (EPERM): the reason comes back.
fn readable_disk() -> Result<Disk, String> {
    let mut why = Vec::new();
    let mut disks: Vec<Disk> = scratch_disk().into_iter().collect();
    if let Some(d) = block_device() {
        disks.push(d);
    }
    for d in disks {
        let sectors: u64 =
            std::fs::read_to_string(Path::new("/sys/block").join(&d.name).join("size"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
        if sectors < 2048 {
            why.push(format!("{} is smaller than 1 MiB", d.name));
            continue;
        }
        match std::fs::File::open(Path::new("/dev").join(&d.name)) {
            Ok(_) => return Ok(d),
            Err(e) => why.push(format!("cannot open /dev/{}: {e}", d.name)),
        }
    }
    if why.is_empty() {
        why.push("no block device under /sys/block".into());
    }
    Err(why.join("; "))
}

#[test]
fn block_io_read_bps_throttle_slows_direct_reads() {
    const T: &str = "block_io_read_bps_throttle_slows_direct_reads";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    let mut _loop = None;
    let disk = match readable_disk() {
        Ok(d) => d,
        Err(why) => match LoopDisk::new(None) {
            Ok(l) => {
                let d = l.disk.clone();
                _loop = Some(l);
                d
            }
            Err(e) => return skip(T, &format!("no disk to read: {why}; no loop device: {e}")),
        },
    };
    let rate: u64 = 256 << 10;
    // Unthrottled first: the disk must be much faster than the limit for
    // the throttled rate to mean anything.
    let free = direct_read_rate(&disk, 64 << 10, 16, json!({}));
    assert!(
        free > 3.0 * rate as f64,
        "{}: unthrottled direct reads already as slow as the limit: {free:.0} B/s",
        disk.name
    );
    let limited = direct_read_rate(
        &disk,
        64 << 10,
        16,
        json!({"throttleReadBpsDevice":
            [{"major": disk.major, "minor": disk.minor, "rate": rate}]}),
    );
    eprintln!(
        "{T}: {}: {free:.0} B/s free, {limited:.0} B/s under {rate}",
        disk.name
    );
    // 1 MiB at 256 KiB/s: about 4 s, whatever the first slice lets through.
    assert!(
        limited <= 1.3 * rate as f64,
        "{}: {limited:.0} B/s read under a {rate} B/s limit (unthrottled {free:.0} B/s)",
        disk.name
    );
}

#[test]
fn block_io_write_iops_throttle_slows_direct_writes() {
    const T: &str = "block_io_write_iops_throttle_slows_direct_writes";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    // Only to a disk of the test's own: the guest's scratch disk, else a
    // loop device over a file (the machine's disks are never written to).
    let mut _loop = None;
    let disk = match scratch_disk() {
        Some(d) => d,
        None => match LoopDisk::new(None) {
            Ok(l) => {
                let d = l.disk.clone();
                _loop = Some(l);
                d
            }
            Err(e) => {
                return skip(
                    T,
                    &format!("no scratch disk (OZZ_SCRATCH_DISK) and no loop device: {e}"),
                )
            }
        },
    };
    let iops: u64 = 20;
    let count: u64 = 40;
    let write = format!(
        "dd if=/dev/zero of=/dev/blk bs=4096 count={count} oflag=direct conv=notrunc 2>/out/dd"
    );
    let rate = |block_io: serde_json::Value| {
        let (mut b, out) = timed_disk_bundle("blkio-write", &disk, &write);
        b.config["linux"]["resources"]["blockIO"] = block_io;
        let secs = run_timed(&b, &out);
        let dd = std::fs::read_to_string(out.join("dd")).unwrap_or_default();
        assert!(
            dd.contains(&format!("{count}+0 records out")),
            "dd did not write it all: {dd}"
        );
        count as f64 / secs.max(0.01)
    };
    let free = rate(json!({}));
    assert!(
        free > 3.0 * iops as f64,
        "{}: unthrottled direct writes already as slow as the limit: {free:.1}/s",
        disk.name
    );
    let limited = rate(json!({"throttleWriteIOPSDevice":
        [{"major": disk.major, "minor": disk.minor, "rate": iops}]}));
    eprintln!(
        "{T}: {}: {free:.1}/s free, {limited:.1}/s under {iops}",
        disk.name
    );
    // 40 writes at 20 per second: about 2 s.
    assert!(
        limited <= 1.3 * iops as f64,
        "{}: {limited:.1} writes/s under a limit of {iops} (unthrottled {free:.1}/s)",
        disk.name
    );
}

/// A disk the BFQ scheduler runs (or CFQ, on old v1 kernels): only those
/// take a per-device weight. The scratch disk first.
fn weighted_disk() -> Option<Disk> {
    let mut disks: Vec<Disk> = scratch_disk().into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/sys/block") {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        disks.extend(names.iter().filter_map(|n| Disk::from_name(n)));
    }
    disks
        .into_iter()
        .find(|d| matches!(d.scheduler().as_str(), "bfq" | "cfq"))
}

#[test]
fn block_io_weight_device_reaches_the_device_weight_file() {
    const T: &str = "block_io_weight_device_reaches_the_device_weight_file";
    if !has_controller(if is_cgroup_v2() { "io" } else { "blkio" }) {
        return skip(T, "the kernel has no io/blkio cgroup controller");
    }
    // Without a BFQ disk and without the guest's scratch disk (whose
    // scheduler hack/test-v2 picks: switching a loop device to BFQ would
    // load BFQ behind its back), a loop device of our own.
    let mut _loop = None;
    let mut why_no_loop = String::new();
    let mut found = weighted_disk();
    if found.is_none() && scratch_disk().is_none() {
        match LoopDisk::new(Some("bfq")) {
            Ok(l) => {
                found = Some(l.disk.clone());
                _loop = Some(l);
            }
            Err(e) => why_no_loop = format!("; no BFQ loop device either: {e}"),
        }
    }
    let Some(disk) = found else {
        // runc leaves weightDevice out on v2 when there is no io.bfq.weight
        // (BFQ not loaded): the container must start all the same.
        if is_cgroup_v2() {
            let probe = bundle("blkio-wdev-probe", &["sleep", "1000"]);
            start(&probe);
            let bfq_loaded = probe.cgroup_dir("").join("io.bfq.weight").exists();
            drop(probe);
            if let (false, Some(any)) = (bfq_loaded, block_device()) {
                let mut b = bundle("blkio-wdev-none", &["sleep", "1000"]);
                b.config["linux"]["resources"]["blockIO"] = json!({"weightDevice":
                    [{"major": any.major, "minor": any.minor, "weight": 300}]});
                start(&b);
                return skip(
                    T,
                    "no disk scheduled by BFQ (BFQ not loaded): checked only that \
                     weightDevice is left out, as runc does",
                );
            }
        }
        return skip(
            T,
            &format!("no disk scheduled by BFQ or CFQ: nothing takes a device weight{why_no_loop}"),
        );
    };
    let mut b = bundle("blkio-wdev", &["sleep", "1000"]);
    b.config["linux"]["resources"]["blockIO"] = json!({"weightDevice":
        [{"major": disk.major, "minor": disk.minor, "weight": 300}]});
    start(&b);
    let want = format!("{} 300", disk.key());
    let file = if is_cgroup_v2() {
        b.cgroup_dir("").join("io.bfq.weight")
    } else if disk.scheduler() == "cfq" {
        b.cgroup_dir("blkio").join("blkio.weight_device")
    } else {
        b.cgroup_dir("blkio").join("blkio.bfq.weight_device")
    };
    let text = read_trimmed(&file);
    assert!(
        text.lines().any(|l| l.trim() == want),
        "{want:?} not in {}: {text:?}",
        file.display()
    );
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
