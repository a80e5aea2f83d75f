//! Harness for the conformance suite: real bundles (a busybox rootfs built by
//! hack/mkrootfs) run by the real `ozz` binary, with every container,
//! cgroup and directory a test makes removed when the test ends, pass or fail.
//!
//! Differential mode: `OZZ_BIN` may name any runc-compatible runtime (runc,
//! crun); every test that runs a container then runs it on that runtime,
//! with the same bundles (see [`bundle`]) and its own `--root`.
//! `hack/differential` compares the results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// The binary under test: $OZZ_BIN, else the workspace's release build.
pub fn ozz_bin() -> PathBuf {
    match std::env::var_os("OZZ_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace().join("target/release/ozz"),
    }
}

/// The runtime under test by its own name: the first word of its
/// `--version` ("ozz", "runc", "crun"; "unknown" if it says nothing).
pub fn runtime_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let out = Command::new(ozz_bin())
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} --version: {e}", ozz_bin().display()));
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        text.split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_string()
    })
}

/// True when the binary under test is ozz (not a differential run).
pub fn is_ozz() -> bool {
    runtime_name() == "ozz"
}

/// `ozz spec`'s config when the runtime under test is not ozz, fixed here
/// as a fallback for when no ozz is at hand to make it (see
/// [`default_config`]): runc's and crun's own `spec` differ (hostname,
/// ambient capabilities, the cgroup namespace, ociVersion).
fn spec_template() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let namespaces = json!([
        {"type": "pid"},
        {"type": "network"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "cgroup"}
    ]);
    json!({
        "ociVersion": "1.3.0",
        "hostname": "ozz",
        "root": {"path": "rootfs", "readonly": true},
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    })
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Scratch space of this test run: under target/ so CI cleans it with the
/// tree, or under `$OZZ_SPEC_SCRATCH` when set (the checkpoint run in the v2
/// guest puts it on the guest's tmpfs: CRIU interrupting a process in the
/// middle of a 9p write can leave it and its readers hung for good).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("OZZ_SPEC_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/spec-tests"));
        let dir = base.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// One busybox rootfs shared (read-only) by every bundle of the run.
pub fn shared_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = scratch().join("rootfs");
        let status = Command::new(workspace().join("hack/mkrootfs"))
            .arg(&dir)
            .status()
            .expect("run hack/mkrootfs");
        assert!(status.success(), "hack/mkrootfs failed");
        dir
    })
}

/// The state root of this run, so tests never touch /run/ozz.
pub fn state_root() -> PathBuf {
    scratch().join("state")
}

/// A unique container ID for a test.
pub fn unique_id(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The parent cgroup of this run's containers (`ozz-test-<pid>`). It is
/// per run and never removed by a test: removing a shared parent races with
/// a parallel test creating its container in it. `make spec` removes the
/// empty parents afterwards (hack/clean-test-cgroups).
pub fn cgroup_parent() -> &'static str {
    static PARENT: OnceLock<String> = OnceLock::new();
    PARENT.get_or_init(|| format!("ozz-test-{}", std::process::id()))
}

pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    pub config: Value,
}

/// The ozz that makes the bundles of a differential run: $OZZ_SPEC_BIN, else
/// the workspace's own build, if there is one.
fn spec_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OZZ_SPEC_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = workspace().join("target");
    let triple = format!("{}-unknown-linux-gnu/release/ozz", std::env::consts::ARCH);
    [triple.as_str(), "release/ozz", "debug/ozz"]
        .iter()
        .map(|p| target.join(p))
        .find(|p| p.is_file())
}

/// The default config of a bundle, written to `dir`: `ozz spec`'s, made by
/// the ozz under test, or, when the runtime under test is another one
/// (differential mode), by the ozz of [`spec_bin`] (else [`spec_template`]),
/// so that every runtime runs the same bundles. Only ociVersion is lowered
/// for crun: Debian's crun 1.8 refuses versions newer than it knows.
fn default_config(dir: &Path) -> Value {
    let bin = if is_ozz() {
        Some(ozz_bin())
    } else {
        spec_bin()
    };
    let mut config = match bin {
        Some(bin) => {
            let out = Command::new(&bin)
                .args(["spec", "--bundle"])
                .arg(dir)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run {} spec: {e}", bin.display()));
            assert!(out.status.success(), "ozz spec: {}", stderr(&out));
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
        }
        None => spec_template(),
    };
    if runtime_name() == "crun" {
        config["ociVersion"] = json!("1.0.2");
    }
    config
}

/// The default config of `ozz spec`, made non-interactive, running `args`,
/// with the shared rootfs and a cgroup under /ozz-test (see
/// [`default_config`] for runc and crun).
pub fn bundle(tag: &str, args: &[&str]) -> Bundle {
    let id = unique_id(tag);
    let dir = scratch().join("bundles").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = default_config(&dir);
    config["root"]["path"] = json!(shared_rootfs());
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", cgroup_parent()));
    Bundle { id, dir, config }
}

impl Bundle {
    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `ozz run` in the foreground; returns the output.
    pub fn run(&self) -> Output {
        self.write();
        ozz(&["run", "--bundle", self.dir.to_str().unwrap(), &self.id])
    }

    /// `ozz run` that must succeed; returns its stdout.
    pub fn run_ok(&self) -> String {
        let out = self.run();
        assert!(
            out.status.success(),
            "ozz run failed ({:?}): {}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `ozz create` with stdio detached (so the test does not wait on pipes).
    pub fn create(&self, extra: &[&str]) -> Output {
        self.write();
        let mut args = vec!["create", "--bundle", self.dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        ozz_quiet(&args)
    }

    pub fn create_ok(&self) {
        let out = self.create(&[]);
        assert!(out.status.success(), "ozz create: {}", stderr(&out));
    }

    pub fn create_and_start(&self) {
        self.create_ok();
        let out = self.cmd("start", &[]);
        assert!(out.status.success(), "ozz start: {}", stderr(&out));
    }

    /// Adds capabilities to the bounding, effective and permitted sets.
    pub fn add_caps(&mut self, names: &[&str]) {
        for set in ["bounding", "effective", "permitted"] {
            let list = self.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap();
            for n in names {
                list.push(json!(n));
            }
        }
    }

    pub fn cmd(&self, verb: &str, extra: &[&str]) -> Output {
        let mut args = vec![verb];
        args.extend_from_slice(extra);
        args.push(&self.id);
        ozz(&args)
    }

    pub fn state(&self) -> Value {
        let out = self.cmd("state", &[]);
        assert!(out.status.success(), "ozz state: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// The host directory of this container's cgroup for one v1 controller
    /// (or the v2 directory when `controller` is empty on a v2 host).
    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        cgroup_root(controller).join(cgroup_parent()).join(&self.id)
    }

    /// Waits (bounded) until the container reports `want`.
    pub fn wait_status(&self, want: &str) {
        for _ in 0..500 {
            if self.status() == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {} never became {want}", self.id);
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = ozz(&["delete", "--force", &self.id]);
        for controller in cgroup_controllers() {
            let dir = cgroup_root(&controller)
                .join(cgroup_parent())
                .join(&self.id);
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn is_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn cgroup_root(controller: &str) -> PathBuf {
    if is_cgroup_v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    }
}

/// Removes the (empty) cgroup directory `rel` from every hierarchy: a
/// parent a test made, which ozz, like runc, leaves when it deletes the
/// container's own directory.
pub fn remove_cgroup_everywhere(rel: &str) {
    for controller in cgroup_controllers() {
        let _ = std::fs::remove_dir(cgroup_root(&controller).join(rel));
    }
}

fn cgroup_controllers() -> Vec<String> {
    if is_cgroup_v2() {
        return vec![String::new()];
    }
    [
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "perf_event",
        "hugetlb",
        "net_cls",
        "net_prio",
        // No controllers, but ozz puts containers there as runc does.
        "systemd",
        "unified",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs ozz with the run's state root; stdio captured.
pub fn ozz(args: &[&str]) -> Output {
    Command::new(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ozz")
}

/// Like [`ozz`] but stdio goes to files, not pipes: for `create` and
/// `run -d`, whose container inherits stdio and outlives the command (a pipe
/// would never see EOF). The Output carries what ozz wrote to stderr.
pub fn ozz_quiet(args: &[&str]) -> Output {
    let log = scratch().join(format!("stderr-{}", unique_id("q")));
    let mut command = Command::new(ozz_bin());
    command
        .arg("--root")
        .arg(state_root())
        .args(args)
        .stdin(Stdio::null());
    status_with_stderr_file(command, &log)
}

/// Runs `command` with stdout to /dev/null and stderr to the file `log`
/// (removed afterwards): an Output carrying what it wrote to stderr.
pub fn status_with_stderr_file(mut command: Command, log: &Path) -> Output {
    let file = std::fs::File::create(log).expect("stderr file");
    let status = command
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let stderr = std::fs::read(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses "Key:\tvalue" lines of /proc/PID/status as printed inside a container.
pub fn status_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

/// The kernel's capability bit of a name (e.g. "CAP_NET_RAW" -> 13).
pub fn cap_bit(name: &str) -> u32 {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .expect("known capability") as u32
}

/// A capability mask as /proc/PID/status prints it.
pub fn cap_mask(names: &[&str]) -> String {
    let mask = names.iter().fold(0u64, |m, n| m | (1u64 << cap_bit(n)));
    format!("{mask:016x}")
}

/// True when `pid` no longer runs: gone, or a zombie waiting for its reaper
/// (a container's init is reparented when `create` exits).
pub fn process_gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

// ---------------------------------------------------------------------------
// Mount and namespace helpers (mounts.rs, namespaces.rs).
// ---------------------------------------------------------------------------

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// major:minor of the filesystem.
    pub dev: String,
    /// The root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (ro, nosuid, noatime …).
    pub options: Vec<String>,
    /// Optional fields: shared:N, master:N, propagate_from:N, unbindable.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options (size=, mode=, gid= …).
    pub super_options: Vec<String>,
}

impl MountEntry {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }
    pub fn has_optional(&self, prefix: &str) -> bool {
        self.optional.iter().any(|o| o.starts_with(prefix))
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                dev: pre.get(2)?.to_string(),
                root: pre.get(3)?.replace("\\040", " "),
                mount_point: pre.get(4)?.replace("\\040", " "),
                options: split(pre.get(5)?),
                optional: pre[6..].iter().map(|s| s.to_string()).collect(),
                fstype: post.first()?.to_string(),
                source: post.get(1)?.to_string(),
                super_options: split(post.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The topmost mount at `mount_point` (the last one listed).
pub fn mount_at<'a>(entries: &'a [MountEntry], mount_point: &str) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == mount_point)
}

/// A scratch directory on the host and the host mounts a test made in it;
/// all unmounted (lazily, innermost first) and removed when dropped.
pub struct HostDir {
    pub path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl HostDir {
    pub fn new(tag: &str) -> HostDir {
        let path = scratch().join("host").join(unique_id(tag));
        std::fs::create_dir_all(&path).unwrap();
        HostDir {
            path,
            mounts: Vec::new(),
        }
    }

    /// A private copy of the shared rootfs (`cp -a`), for tests that let
    /// the runtime create things in it.
    pub fn rootfs_copy(tag: &str) -> HostDir {
        let dir = HostDir::new(tag);
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", shared_rootfs().display()))
            .arg(&dir.path)
            .status()
            .expect("cp -a");
        assert!(status.success(), "cp -a of the rootfs failed");
        dir
    }

    /// Runs the host's mount(8) with `args`; `target` is unmounted on drop.
    pub fn mount(&mut self, args: &[&str], target: &Path) {
        let out = Command::new("mount")
            .args(args)
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {args:?} {}: {}",
            target.display(),
            stderr(&out)
        );
        self.mounts.push(target.to_path_buf());
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        for target in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(target).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The inode a /proc/PID/ns/NAME link names, e.g. "net:[4026531840]".
pub fn ns_link(pid: &str, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---- cgroup helpers shared by the cgroups, update and events suites ----

/// A bundle running `sh -c script`, with a host directory bind-mounted at
/// /out (returned) for results.
pub fn out_bundle(tag: &str, script: &str) -> (Bundle, PathBuf) {
    let mut b = bundle(tag, &["sh", "-c", script]);
    let out = b.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/out", "type": "bind",
        "source": out.to_str().unwrap(), "options": ["rbind", "rw"]}));
    (b, out)
}

/// A file's content without surrounding white space; panics naming the file.
pub fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The value after `key ` in a flat-keyed file (memory.events, cpu.stat …).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The cgroup file of `v1` in `controller` (v1) or `v2` (v2).
pub fn cg_file(b: &Bundle, controller: &str, v1: &str, v2: &str) -> PathBuf {
    if is_cgroup_v2() {
        b.cgroup_dir("").join(v2)
    } else {
        b.cgroup_dir(controller).join(v1)
    }
}

/// crun's and runc's shares -> cpu.weight mapping: a parabola in log2(shares)
/// through (2, 1), (1024, 100) and (262144, 10000), rounded up.
pub fn shares_to_weight(shares: u64) -> u64 {
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// Asserts the container's cpu cgroup files hold `quota`/`period` and the
/// `shares` (v1) or the weight they convert to (v2).
pub fn assert_cpu_files(b: &Bundle, shares: u64, quota: i64, period: u64) {
    if is_cgroup_v2() {
        assert_eq!(
            read_trimmed(&b.cgroup_dir("").join("cpu.max")),
            format!("{quota} {period}")
        );
        assert_eq!(
            read_trimmed(&b.cgroup_dir("").join("cpu.weight")),
            shares_to_weight(shares).to_string()
        );
    } else {
        let dir = b.cgroup_dir("cpu");
        assert_eq!(read_trimmed(&dir.join("cpu.shares")), shares.to_string());
        assert_eq!(
            read_trimmed(&dir.join("cpu.cfs_quota_us")),
            quota.to_string()
        );
        assert_eq!(
            read_trimmed(&dir.join("cpu.cfs_period_us")),
            period.to_string()
        );
    }
}
