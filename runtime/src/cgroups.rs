//! The thin adapter over libcgroups: where a container's cgroup is, how to
//! create, fill, freeze and remove it, on cgroup v2 and on v1/hybrid hosts.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, AnyManagerError, CgroupConfig, CgroupManager,
    CgroupSetup, ControllerOpt, FreezerState,
};
use libcgroups::v2::manager::V2ManagerError;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, LinuxWeightDevice, Spec};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn setup() -> Option<CgroupSetup> {
    libcgroups::common::get_cgroup_setup().ok()
}

pub fn is_v2() -> bool {
    // Read once (two statfs): the host's layout does not change under a
    // command, and `list` asks for every container.
    static V2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V2.get_or_init(|| matches!(setup(), Some(CgroupSetup::Unified)))
}

/// The container's cgroup path, always absolute from the hierarchy's root.
/// No cgroupsPath means `/<id>`, as runc does, or for a `rootless`
/// container on cgroup v2 without `--systemd-cgroup`, the
/// [`rootless_default_path`] when there is one. With `--systemd-cgroup`,
/// `slice:prefix:name` becomes the cgroupfs path systemd would use
/// (`/a.slice/a-b.slice/prefix-name.scope`); ozz does not talk to systemd.
pub fn container_path(spec: &Spec, id: &str, systemd: bool, rootless: bool) -> Result<PathBuf> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .filter(|p| !p.as_os_str().is_empty());
    let Some(path) = configured else {
        if rootless && !systemd && is_v2() {
            if let Some(path) = rootless_default_path(id) {
                return Ok(path);
            }
        }
        return Ok(PathBuf::from("/").join(id));
    };
    let text = path.to_string_lossy();
    if text.contains(['\0', '\n']) {
        bail!("cgroupsPath {text:?} must not contain a NUL byte or a newline");
    }
    let path = if systemd {
        systemd_to_cgroupfs(&text, id)?
    } else {
        PathBuf::from("/").join(text.trim_start_matches('/'))
    };
    // The same rule for both forms: a systemd unit name with a "/" in it
    // would otherwise walk out of its slice (and into other hierarchies).
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        bail!("cgroupsPath {text:?} must not contain \"..\"");
    }
    Ok(path)
}

/// A rootless container's cgroup on cgroup v2 when config.json names none
/// (and `--systemd-cgroup` is off): `<id>` in the parent of the runtime's
/// own cgroup, where runc's cgroupfs driver puts it (the caller's own
/// cgroup most likely has processes, so no controller could be enabled
/// below it). A user whose runtime runs from a leaf of a subtree delegated
/// to it (rootless podman started there) gets the container's cgroup in
/// that subtree; anywhere else the parent is not the user's and the
/// container runs without a cgroup, as before. None when the own cgroup
/// cannot be read or lies outside the cgroup namespace.
fn rootless_default_path(id: &str) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    rootless_default_from(&own, id)
}

fn rootless_default_from(proc_self_cgroup: &str, id: &str) -> Option<PathBuf> {
    let own = Path::new(
        proc_self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))?,
    );
    if !own.is_absolute()
        || own
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return None;
    }
    Some(own.parent().unwrap_or(own).join(id))
}

fn systemd_to_cgroupfs(text: &str, id: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        bail!("expected cgroupsPath of the form \"slice:prefix:name\" for systemd cgroups, got {text:?}");
    };
    if [slice, prefix, name]
        .iter()
        .any(|p| p.contains('/') || *p == "." || *p == "..")
    {
        bail!("cgroupsPath {text:?}: a systemd slice, prefix or name must not contain \"/\" or be \".\" or \"..\"");
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("invalid slice name {slice:?}");
    };
    let mut path = PathBuf::from("/");
    if slice != "-.slice" {
        // "a-b-c.slice" lives in /a.slice/a-b.slice/a-b-c.slice
        let mut acc = String::new();
        for piece in stem.split('-') {
            if piece.is_empty() {
                bail!("invalid slice name {slice:?}");
            }
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(piece);
            path.push(format!("{acc}.slice"));
        }
    }
    let name = if name.is_empty() { id } else { name };
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Ok(path)
}

pub fn manager(path: &Path) -> Result<AnyCgroupManager> {
    create_cgroup_manager(CgroupConfig {
        cgroup_path: path.to_path_buf(),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| anyhow!("cgroup {}: {e}", path.display()))
}

/// A container's limits, set while create goes on with clone3 and the
/// init's mounts: the init makes no device node before [`wait`] returns.
/// The limits go to the cgroup's directories, which exist before clone3,
/// not to a process, so they can be set from the start.
///
/// [`wait`]: PendingLimits::wait
pub enum PendingLimits {
    /// libcgroups' manager in a forked helper process.
    ///
    /// why: libcgroups' v1 manager finds each of its twelve controllers'
    /// mount point by reading mountinfo and /proc/self/cgroup again through
    /// pathrs, which checks its procfs handle around every read: about 850
    /// system calls, 1.3 ms, and the init waited for them before it could
    /// make its device nodes (issue 15's trace). A process and not a
    /// thread: nothing on the path that forks the container may run
    /// threads.
    Helper(LimitsHelper),
    /// v1 device rules alone ([`v1_device_rules_only`]): `wait` writes them
    /// itself, after clone3, while the init mounts. A fork costs more than
    /// these few writes.
    DeviceRules {
        rules: Vec<LinuxDeviceCgroup>,
        path: PathBuf,
    },
}

impl PendingLimits {
    /// Starts setting `resources` (as [`apply`], or [`apply_rootless`]).
    /// Call while the process is single-threaded.
    pub fn start(path: &Path, resources: &LinuxResources, rootless: bool) -> Result<Self> {
        if let Some(rules) = v1_device_rules_only(resources, rootless) {
            return Ok(PendingLimits::DeviceRules {
                rules: rules.to_vec(),
                path: path.to_path_buf(),
            });
        }
        LimitsHelper::start(path, resources, rootless).map(PendingLimits::Helper)
    }

    /// `Ok` once every limit is set, else the reason.
    pub fn wait(self) -> Result<()> {
        match self {
            PendingLimits::Helper(helper) => helper.wait(),
            PendingLimits::DeviceRules { rules, path } => write_v1_device_rules(&rules, &path),
        }
    }
}

/// The forked helper of [`PendingLimits::Helper`].
pub struct LimitsHelper {
    pid: Option<Pid>,
    report: std::fs::File,
}

/// The helper's report when every limit is set (an error's text otherwise).
const DONE: &str = "\0done";

impl LimitsHelper {
    /// Forks the helper: it makes the manager, applies `resources` and
    /// exits, its error on the pipe.
    fn start(path: &Path, resources: &LinuxResources, rootless: bool) -> Result<Self> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context("pipe for the cgroup limits")?;
        // SAFETY: create is single-threaded here (see PendingLimits), so the
        // child holds no lock another thread had; it only runs the code
        // below and leaves by _exit, never returning into the caller.
        match unsafe { nix::unistd::fork() }.context("fork to set the cgroup limits")? {
            nix::unistd::ForkResult::Child => {
                drop(read_end);
                let outcome = manager(path).and_then(|manager| {
                    crate::trace::mark("cgroup manager");
                    if rootless {
                        apply_rootless(&manager, resources, path)
                    } else {
                        apply(&manager, resources, path)
                    }
                });
                let (code, report) = match outcome {
                    Ok(()) => (0, DONE.to_string()),
                    Err(err) => (1, format!("{err:#}")),
                };
                let mut pipe = std::fs::File::from(write_end);
                let _ = std::io::Write::write_all(&mut pipe, report.as_bytes());
                crate::trace::mark("cgroup limits applied");
                // SAFETY: _exit ends this forked copy at once, without
                // running the parent's exit handlers or flushing its
                // buffers a second time.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                // The report ends (EOF) when the helper's end closes.
                drop(write_end);
                Ok(LimitsHelper {
                    pid: Some(child),
                    report: std::fs::File::from(read_end),
                })
            }
        }
    }

    /// Waits for the helper: `Ok` once every limit is set, else its error.
    fn wait(mut self) -> Result<()> {
        let mut report = String::new();
        let _ = std::io::Read::read_to_string(&mut self.report, &mut report);
        let pid = self.pid.take().expect("waited once");
        // The report decides: a caller that ignores SIGCHLD leaves nothing
        // to reap (ECHILD).
        let status = nix::sys::wait::waitpid(pid, None);
        match report.as_str() {
            DONE => Ok(()),
            "" => bail!("setting the cgroup limits failed ({status:?})"),
            reason => bail!("{reason}"),
        }
    }
}

impl Drop for LimitsHelper {
    /// A create that fails before it waits ends the helper, so nothing it
    /// started outlives it.
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The device rules, when they are all a v1 container's resources ask of
/// the controllers (the bundles of `ozz spec`, runc's and many others):
/// then [`write_v1_device_rules`] writes what libcgroups' v1 manager would,
/// without the manager.
///
/// why: the manager finds each of its twelve controllers by reading
/// mountinfo and /proc/self/cgroup through pathrs, which verifies its
/// procfs handle around every open: about 850 system calls and 1.3 ms of a
/// core, beside clone3 and the init's mounts on a two-core host, to write
/// one file (and a fork for it). Anything more (a memory, cpu, pids, blkio,
/// hugetlb or network section, even an empty one) goes through the manager
/// as before.
fn v1_device_rules_only(
    resources: &LinuxResources,
    rootless: bool,
) -> Option<&[LinuxDeviceCgroup]> {
    (!rootless && !is_v2() && asks_only_device_rules(resources))
        .then(|| resources.devices().as_deref().unwrap_or_default())
}

/// Whether no v1 controller but devices has anything to do: every section
/// that makes libcgroups handle a controller is absent (an empty one
/// counts as present, as it does for libcgroups). Not
/// rootless::needs_controllers, which asks whether any value is set: a
/// section that sets none (`"pids": {"limit": -1}`) still has libcgroups
/// write its default over what a reused cgroup held.
fn asks_only_device_rules(resources: &LinuxResources) -> bool {
    let cpu_unset = resources.cpu().as_ref().is_none_or(|c| {
        c.shares().is_none()
            && c.quota().is_none()
            && c.period().is_none()
            && c.burst().is_none()
            && c.realtime_runtime().is_none()
            && c.realtime_period().is_none()
            && c.idle().is_none()
            && c.cpus().is_none()
            && c.mems().is_none()
    });
    cpu_unset
        && resources.memory().is_none()
        && resources.pids().is_none()
        && resources.block_io().is_none()
        && resources
            .hugepage_limits()
            .as_ref()
            .is_none_or(|h| h.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|r| r.is_empty())
        && resources.unified().as_ref().is_none_or(|u| u.is_empty())
}

/// Writes a v1 container's device rules as libcgroups' v1 devices
/// controller does: the bundle's (with [`effective_resources`]' defaults),
/// then libcgroups' own defaults, each rule one write to devices.allow or
/// devices.deny, in that order. Each file is opened once.
fn write_v1_device_rules(rules: &[LinuxDeviceCgroup], path: &Path) -> Result<()> {
    let hierarchies = V1Hierarchies::read()?;
    let Some(mount) = hierarchies.devices else {
        bail!(
            "apply resources to cgroup {}: cgroup devices is required to fulfill the request, but is not supported by this system",
            path.display()
        );
    };
    let dir = mount.join(path.strip_prefix("/").unwrap_or(path));
    let mut allow = None;
    let mut deny = None;
    for rule in rules.iter().chain(libcgroups_default_device_rules().iter()) {
        let (slot, name) = if rule.allow() {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        let file = dir.join(name);
        let text = rule.to_string();
        let failed = |e: std::io::Error| {
            anyhow!(
                "apply resources to cgroup {}: failed to write {text} to {}: {e}",
                path.display(),
                file.display()
            )
        };
        if slot.is_none() {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|e| {
                    anyhow!(
                        "apply resources to cgroup {}: failed to open {}: {e}",
                        path.display(),
                        file.display()
                    )
                })?;
            *slot = Some(opened);
        }
        let opened = slot.as_mut().expect("opened above");
        std::io::Write::write_all(opened, text.as_bytes()).map_err(failed)?;
    }
    Ok(())
}

/// The rules libcgroups' v1 devices controller adds after a container's own
/// (its default device nodes, then `c *:* m`, `b *:* m`, the console,
/// ptys, ptmx and tun), kept in its order so both ways write the same list.
fn libcgroups_default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use oci_spec::runtime::LinuxDeviceType::{B, C};
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(typ));
        rule.set_major(major);
        rule.set_minor(minor);
        rule.set_access(Some(access.to_string()));
        rule
    };
    vec![
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

pub fn apply(manager: &AnyCgroupManager, resources: &LinuxResources, path: &Path) -> Result<()> {
    apply_with(manager, resources, path, false)
}

/// A rootless container's cgroup (a subtree delegated to the user): its
/// limits without the device rules, which need CAP_SYS_ADMIN on the host
/// (a BPF program on v2, devices.deny on v1). runc ignores them there too:
/// in a user namespace device nodes are bind mounts of the host's, whose
/// own permissions hold.
pub fn apply_rootless(
    manager: &AnyCgroupManager,
    resources: &LinuxResources,
    path: &Path,
) -> Result<()> {
    let mut resources = resources.clone();
    resources.set_devices(None);
    apply_with(manager, &resources, path, true)
}

fn apply_with(
    manager: &AnyCgroupManager,
    resources: &LinuxResources,
    path: &Path,
    rootless: bool,
) -> Result<()> {
    check_memory_usage(resources, path)?;
    let dir = controller_dir("", path);
    // why: libcgroups converts a blockIO weight for v2's io.weight in u16
    // arithmetic, which overflows (a panic in debug builds, a wrong weight in
    // release) for any weight above 16; runc's conversion, done here.
    let mut resources = resources.clone();
    let mut io_weight = None;
    if is_v2() && !dir.join("io.bfq.weight").exists() {
        if let Some(mut blkio) = resources.block_io().clone() {
            if let Some(w) = blkio.weight().filter(|w| *w > 0) {
                io_weight = Some(1 + (u64::from(w).saturating_sub(10)) * 9999 / 990);
                blkio.set_weight(None);
                resources.set_block_io(Some(blkio));
            }
        }
    }
    // why: libcgroups writes weightDevice to io.bfq.weight unconditionally
    // on v2 (failing where BFQ is not loaded) and not at all on v1; runc
    // writes it where the kernel has a per-device weight file and otherwise
    // leaves it out. Done here, after the rest.
    let mut weight_devices = Vec::new();
    if let Some(mut blkio) = resources.block_io().clone() {
        if let Some(devices) = blkio.weight_device().clone() {
            weight_devices = devices;
            blkio.set_weight_device(None);
            resources.set_block_io(Some(blkio));
        }
    }
    order_cpu_writes(&resources, path)?;
    let resources = &resources;
    let opts = ControllerOpt {
        resources,
        disable_oom_killer: resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false),
        oom_score_adj: None,
        freezer_state: None,
    };
    match manager.apply(&opts) {
        Ok(()) => {}
        // why: libcgroups always loads a v2 device program (the default
        // rules at least), after the controllers and before `unified`:
        // refused to a rootless caller, it is skipped and `unified` written
        // here.
        Err(AnyManagerError::V2(V2ManagerError::DevicesController(e))) if rootless => {
            crate::log::debug(&format!(
                "rootless: device rules not applied to cgroup {}: {e}",
                path.display()
            ));
            for (file, value) in resources.unified().iter().flatten() {
                std::fs::write(dir.join(file), value)
                    .with_context(|| format!("write {file} of cgroup {}", path.display()))?;
            }
        }
        Err(e) => bail!("apply resources to cgroup {}: {e}", path.display()),
    }
    if let Some(weight) = io_weight {
        std::fs::write(dir.join("io.weight"), weight.to_string())
            .with_context(|| format!("write io.weight of cgroup {}", path.display()))?;
    }
    write_weight_devices(&weight_devices, path)?;
    write_rdma(resources, path)?;
    // why: swap equal to the limit means no swap; runc writes 0 to
    // memory.swap.max (when the kernel accounts swap), libcgroups skips a 0
    // and leaves "max".
    if is_v2() && dir.join("memory.swap.max").exists() {
        if let Some(m) = resources.memory() {
            if m.limit().is_some_and(|l| l > 0) && m.swap() == m.limit() {
                std::fs::write(dir.join("memory.swap.max"), "0").with_context(|| {
                    format!("write memory.swap.max of cgroup {}", path.display())
                })?;
            }
        }
    }
    Ok(())
}

/// why: libcgroups writes the cpu files in a fixed order that the kernel
/// refuses for some updates: cpu.weight/cpu.shares while cpu.idle is still
/// 1 (EINVAL), the v1 period before the quota (lowering the period first
/// can exceed a parent's quota/period ratio), the quota before a lower
/// burst (burst above quota), the v1 rt runtime before a larger rt period.
/// Done first here, in an order the kernel accepts (runc's, with idle
/// first only when it is being cleared); libcgroups then writes the same
/// values again, which the kernel takes.
fn order_cpu_writes(resources: &LinuxResources, path: &Path) -> Result<()> {
    let Some(cpu) = resources.cpu() else {
        return Ok(());
    };
    let v2 = is_v2();
    let dir = controller_dir("cpu", path);
    // A cgroup not made yet has no old values to conflict with.
    if !dir.exists() {
        return Ok(());
    }
    let write = |file: &str, value: String| -> std::io::Result<()> {
        std::fs::write(dir.join(file), value)
    };
    let failed = |file: &str, e: std::io::Error| {
        anyhow::Error::new(e).context(format!("write {file} of cgroup {}", path.display()))
    };
    if cpu.idle() == Some(0)
        && cpu.shares().is_some_and(|s| s != 0)
        && dir.join("cpu.idle").exists()
    {
        write("cpu.idle", "0".to_string()).map_err(|e| failed("cpu.idle", e))?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    if let (Some(burst), Some(_)) = (cpu.burst(), quota) {
        let file = if v2 {
            "cpu.max.burst"
        } else {
            "cpu.cfs_burst_us"
        };
        // A burst above the old quota is refused now and taken after the
        // quota, when libcgroups writes it again.
        if dir.join(file).exists() {
            match write(file, burst.to_string()) {
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(failed(file, e)),
                _ => {}
            }
        }
    }
    if v2 {
        // cpu.max takes quota and period in one write.
        return Ok(());
    }
    let pairs = [
        (
            "cpu.cfs_period_us",
            cpu.period().filter(|p| *p != 0).map(|p| p.to_string()),
            "cpu.cfs_quota_us",
            quota.map(|q| q.to_string()),
        ),
        (
            "cpu.rt_period_us",
            cpu.realtime_period()
                .filter(|p| *p != 0)
                .map(|p| p.to_string()),
            "cpu.rt_runtime_us",
            cpu.realtime_runtime()
                .filter(|r| *r != 0)
                .map(|r| r.to_string()),
        ),
    ];
    for (period_file, period, amount_file, amount) in pairs {
        let (Some(period), Some(amount)) = (period, amount) else {
            continue;
        };
        match write(period_file, period.clone()) {
            Ok(()) => {}
            // The new period is refused beside the old amount: the amount
            // first, then the period.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                write(amount_file, amount).map_err(|e| failed(amount_file, e))?;
                write(period_file, period).map_err(|e| failed(period_file, e))?;
            }
            Err(e) => return Err(failed(period_file, e)),
        }
    }
    Ok(())
}

/// linux.resources.rdma into rdma.max (v2): libcgroups has no rdma
/// controller and would drop the limits without a word.
fn write_rdma(resources: &LinuxResources, path: &Path) -> Result<()> {
    let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let file = controller_dir("rdma", path).join("rdma.max");
    // Sorted: one write per device, in an order that does not depend on
    // hashing.
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (device, limits) in devices {
        let mut line = device.clone();
        if let Some(handles) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={handles}"));
        }
        if let Some(objects) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={objects}"));
        }
        if line == *device {
            continue;
        }
        std::fs::write(&file, &line)
            .with_context(|| format!("write {line:?} to rdma.max of cgroup {}", path.display()))?;
    }
    Ok(())
}

/// blockIO.weightDevice as runc writes it: on v2 into io.bfq.weight when
/// that file takes per-device lines (it reads back as more than one number;
/// without it the entries are left out), on v1 into blkio.weight_device
/// (CFQ) or else blkio.bfq.weight_device, with leafWeight into
/// blkio.leaf_weight_device. The kernel refuses a device that is not
/// scheduled by BFQ (or CFQ): that error is the caller's, as with runc.
fn write_weight_devices(devices: &[LinuxWeightDevice], path: &Path) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let write = |file: &Path, line: String| {
        std::fs::write(file, &line).with_context(|| {
            format!(
                "set device weight {line:?} in {} of cgroup {}",
                file.file_name().unwrap_or_default().to_string_lossy(),
                path.display()
            )
        })
    };
    if is_v2() {
        let bfq = controller_dir("", path).join("io.bfq.weight");
        let per_device =
            std::fs::read_to_string(&bfq).is_ok_and(|text| text.trim().parse::<u64>().is_err());
        if per_device {
            for d in devices {
                if let Some(w) = d.weight() {
                    write(&bfq, format!("{}:{} {w}", d.major(), d.minor()))?;
                }
            }
        }
        return Ok(());
    }
    let dir = controller_dir("blkio", path);
    let file = if dir.join("blkio.weight").exists() {
        dir.join("blkio.weight_device")
    } else {
        dir.join("blkio.bfq.weight_device")
    };
    for d in devices {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            write(&file, format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight().filter(|w| *w != 0) {
            write(
                &dir.join("blkio.leaf_weight_device"),
                format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

/// why: runc refuses, under memory.checkBeforeUpdate on v2, a memory (or
/// memory+swap) limit not above the cgroup's memory.current, instead of
/// letting the kernel reclaim or OOM-kill the container; libcgroups ignores
/// the field. (On v1 the kernel itself refuses with EBUSY what it cannot
/// reclaim.)
fn check_memory_usage(resources: &LinuxResources, path: &Path) -> Result<()> {
    let Some(memory) = resources.memory() else {
        return Ok(());
    };
    if !is_v2() || memory.check_before_update() != Some(true) {
        return Ok(());
    }
    // Best effort, as runc: no usage to read (a cgroup being created) is no
    // refusal.
    let Some(usage) = std::fs::read_to_string(controller_dir("", path).join("memory.current"))
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Ok(());
    };
    if let Some(swap) = memory.swap().filter(|s| *s > 0) {
        if swap <= usage {
            bail!("rejecting memory+swap limit {swap} <= usage {usage}");
        }
    }
    if let Some(limit) = memory.limit().filter(|l| *l > 0) {
        if limit <= usage {
            bail!("rejecting memory limit {limit} <= usage {usage}");
        }
    }
    Ok(())
}

pub fn freeze(path: &Path, frozen: bool) -> Result<()> {
    let state = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    manager(path)?
        .freeze(state)
        .map_err(|e| anyhow!("freeze cgroup {}: {e}", path.display()))
}

/// The controllers libcgroups manages on v1 (and ozz therefore removes).
const V1_CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// The hierarchies of a host that is not pure cgroup v2, from one read of
/// mountinfo (libcgroups' manager reads it once per controller, which costs
/// milliseconds that `delete` and `ps` need not pay).
#[derive(Clone)]
pub struct V1Hierarchies {
    /// Mount points of the hierarchies carrying a controller libcgroups
    /// manages, each once (co-mounted controllers share one).
    pub controllers: Vec<PathBuf>,
    /// `name=systemd`: no controller, but where systemd looks for a
    /// process's unit. runc moves the container there too, so stopping the
    /// unit that started the runtime does not take the container with it.
    pub systemd: Option<PathBuf>,
    /// A hybrid host's cgroup2 mount (usually `/sys/fs/cgroup/unified`):
    /// no limits are set there, but runc puts the container in it, and
    /// cgroup v2 tools and BPF programs find it there.
    pub unified: Option<PathBuf>,
    /// Every cgroup v1 mount, in mountinfo's order: what a container's
    /// /sys/fs/cgroup shows.
    pub all_v1: Vec<PathBuf>,
    /// The hierarchy carrying the devices controller.
    pub devices: Option<PathBuf>,
}

impl V1Hierarchies {
    /// Read once per process: `run` asks four times (the in-use check, the
    /// directories, the hybrid twin, the removal), and the host's cgroup
    /// mounts do not move under a container.
    pub fn read() -> Result<Self> {
        static READ: std::sync::OnceLock<V1Hierarchies> = std::sync::OnceLock::new();
        if let Some(found) = READ.get() {
            return Ok(found.clone());
        }
        let found = Self::read_mountinfo()?;
        Ok(READ.get_or_init(|| found).clone())
    }

    /// Read now, in this process's mount namespace.
    pub fn read_mountinfo() -> Result<Self> {
        let mountinfo = crate::mountinfo::read().context("read mountinfo")?;
        let mut found = V1Hierarchies {
            controllers: Vec::new(),
            systemd: None,
            unified: None,
            all_v1: Vec::new(),
            devices: None,
        };
        for mount in crate::mountinfo::mounts(&mountinfo) {
            let point = mount.mount_point();
            if mount.fs_type == "cgroup" {
                found.all_v1.push(point.clone());
                if found.devices.is_none() && mount.super_options().any(|o| o == "devices") {
                    found.devices = Some(point.clone());
                }
            }
            match mount.fs_type {
                "cgroup2" => found.unified = found.unified.or(Some(point)),
                "cgroup" if mount.super_options().any(|o| o == "name=systemd") => {
                    found.systemd = found.systemd.or(Some(point))
                }
                "cgroup"
                    if mount.super_options().any(|o| V1_CONTROLLERS.contains(&o))
                        && !found.controllers.contains(&point) =>
                {
                    found.controllers.push(point)
                }
                _ => {}
            }
        }
        Ok(found)
    }
}

/// Every directory of the container's cgroup: the one v2 directory, or on
/// v1 one per hierarchy (the hybrid cgroup2 one first: its cgroup.kill
/// stops every process at once).
pub fn all_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if is_v2() {
        return Ok(vec![Path::new(CGROUP_ROOT).join(rel)]);
    }
    let hierarchies = V1Hierarchies::read()?;
    Ok(hierarchies
        .unified
        .into_iter()
        .chain(hierarchies.controllers)
        .chain(hierarchies.systemd)
        .map(|m| m.join(rel))
        .collect())
}

/// The hierarchy mounts a container's cgroup lives in (as [`all_dirs`]).
fn hierarchy_mounts() -> Result<Vec<PathBuf>> {
    if is_v2() {
        return Ok(vec![PathBuf::from(CGROUP_ROOT)]);
    }
    let h = V1Hierarchies::read()?;
    Ok(h.unified
        .into_iter()
        .chain(h.controllers)
        .chain(h.systemd)
        .collect())
}

/// Before create makes anything: every level of the cgroup path must be a
/// directory where it exists, and an existing cgroup must hold no process
/// (runc 1.2's rule; joining one would let our cleanup kill processes ozz
/// never started). Returns the directories that do not exist yet, deepest
/// first: what a failed create may remove, and nothing else.
pub fn check_before_create(path: &Path) -> Result<Vec<PathBuf>> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut missing = Vec::new();
    for mount in hierarchy_mounts()? {
        let leaf = mount.join(rel);
        // why: the usual cases, a cgroup that exists or one whose parent
        // does, take one or two lstat per hierarchy instead of one per
        // level (ten hierarchies on a hybrid host); anything else walks
        // down from the mount, as the errors name the first odd level.
        let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        match std::fs::symlink_metadata(&leaf) {
            Ok(meta) if meta.is_dir() => {
                let found = count_procs(&leaf, 0);
                if found > 0 {
                    bail!("container's cgroup is not empty: {found} process(es) found");
                }
                continue;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && leaf.parent().is_some_and(|p| p == mount || is_dir(p)) =>
            {
                missing.push(leaf);
                continue;
            }
            _ => {}
        }
        let mut dir = mount.clone();
        for part in rel.components() {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => bail!(
                    "cgroupsPath {}: {} is not a directory",
                    path.display(),
                    dir.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(dir.clone()),
                Err(e) => return Err(e).with_context(|| format!("stat {}", dir.display())),
            }
        }
    }
    missing.reverse();
    Ok(missing)
}

/// Processes in a cgroup directory and its descendants.
fn count_procs(dir: &Path, depth: u32) -> usize {
    let mut n = read_procs(dir).len();
    if depth < 32 {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                n += count_procs(&entry.path(), depth + 1);
            }
        }
    }
    n
}

/// A cgroup frozen before the container exists would freeze its init
/// mid-setup and hang create: refuse it, as runc does.
pub fn check_not_frozen(path: &Path) -> Result<()> {
    // Each file is read only where it exists: freezer.state in the v1
    // freezer hierarchy, the v2 files in the cgroup2 directory (on a hybrid
    // host its twin). Probing every hierarchy for all three cost 30 opens.
    let rel = path.strip_prefix("/").unwrap_or(path);
    let (v1_freezer, v2_dir) = if is_v2() {
        (None, Some(Path::new(CGROUP_ROOT).join(rel)))
    } else {
        let hierarchies = V1Hierarchies::read()?;
        let freezer = hierarchies
            .controllers
            .iter()
            .find(|m| {
                m.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("freezer"))
            })
            .map(|m| m.join(rel));
        (freezer, hierarchies.unified.map(|m| m.join(rel)))
    };
    let v1 = v1_freezer.is_some_and(|dir| {
        std::fs::read_to_string(dir.join("freezer.state"))
            .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
    });
    let v2 = v2_dir.is_some_and(|dir| {
        std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            || read_keyed(&dir.join("cgroup.events"), "frozen") == Some(1)
    });
    if v1 || v2 {
        bail!("container's cgroup unexpectedly frozen");
    }
    Ok(())
}

/// Removes the cgroup if it exists, killing anything left in it first.
/// Every hierarchy is tried even when one fails; the first error is returned.
pub fn remove(path: &Path) -> Result<()> {
    remove_dirs(&all_dirs(path)?)
}

/// Removes these cgroup directories (see [`remove`]).
pub fn remove_dirs(dirs: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    for dir in dirs {
        if let Err(e) = remove_one(dir) {
            first_err.get_or_insert(e);
        }
        crate::trace::mark_fmt!("cgroup rmdir {}", dir.display());
    }
    first_err.map_or(Ok(()), Err)
}

fn remove_one(dir: &Path) -> Result<()> {
    // The usual case, an exited container that left no sub-cgroup, takes
    // one rmdir: a cgroup with a process or a child refuses it (EBUSY), and
    // only then are the processes killed and the sub-cgroups walked (two
    // directory reads and a cgroup.procs read per hierarchy, about four
    // times the rmdir).
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    if !dir.is_dir() {
        return Ok(());
    }
    kill_all(dir);
    // Sub-cgroups (`exec --cgroup`) first, deepest first, as runc does.
    let mut subs = sub_cgroups(dir);
    subs.reverse();
    for sub in &subs {
        remove_dir_retrying(sub)?;
    }
    remove_dir_retrying(dir)
}

fn remove_dir_retrying(dir: &Path) -> Result<()> {
    // rmdir fails with EBUSY until the killed tasks are gone.
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempts < 200 => {
                attempts += 1;
                crate::trace::mark_fmt!("cgroup rmdir {} busy, retry", dir.display());
                crate::log::debug(&format!("rmdir {}: {e}; retrying", dir.display()));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e).with_context(|| format!("remove cgroup {}", dir.display())),
        }
    }
}

/// SIGKILL to every process of one cgroup directory: through cgroup.kill
/// where the kernel has it (v2, 5.14+: atomic, even against a fork bomb),
/// else one by one.
fn kill_all(dir: &Path) {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() && std::fs::write(&kill_file, b"1").is_ok() {
        return;
    }
    for pid in read_procs(dir) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// `kill --all` with SIGKILL, and `delete --force`: every process of the
/// container's cgroup.
pub fn kill_every_process(path: &Path) -> Result<()> {
    for dir in all_dirs(path)? {
        kill_all(&dir);
    }
    Ok(())
}

/// The processes of one cgroup directory and of its sub-cgroups
/// (`exec --cgroup` puts processes there; cgroup.procs lists only its own).
fn read_procs(dir: &Path) -> Vec<i32> {
    std::iter::once(dir.to_path_buf())
        .chain(sub_cgroups(dir))
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Every directory below `dir`, parents before their children.
fn sub_cgroups(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut next = 0;
    let mut current = dir.to_path_buf();
    loop {
        if let Ok(entries) = std::fs::read_dir(&current) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    found.push(entry.path());
                }
            }
        }
        let Some(dir) = found.get(next) else {
            return found;
        };
        current = dir.clone();
        next += 1;
    }
}

/// The processes of the container's cgroup (all hierarchies, once each).
pub fn pids(path: &Path) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    for dir in all_dirs(path)? {
        for pid in read_procs(&dir) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

pub fn is_frozen(path: &Path) -> bool {
    let mut content = [0u8; 16];
    crate::state::Below::path(freezer_root())
        .read_once(&freezer_file(path), &mut content)
        .is_some_and(says_frozen)
}

/// The directory every cgroup's freezer state is below: the v1 freezer's,
/// or the v2 root. (`list` opens it once for all its containers.)
pub fn freezer_root() -> PathBuf {
    if is_v2() {
        PathBuf::from(CGROUP_ROOT)
    } else {
        Path::new(CGROUP_ROOT).join("freezer")
    }
}

/// The file that holds the freezer state of the cgroup at `path`, as a
/// path from freezer_root().
pub fn freezer_file(path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    rel.join(if is_v2() {
        "cgroup.freeze"
    } else {
        "freezer.state"
    })
}

/// True if the content of freezer_file() says the cgroup is frozen:
/// `1` in v2's cgroup.freeze, `FROZEN` in v1's freezer.state.
pub fn says_frozen(content: &[u8]) -> bool {
    content.trim_ascii() == if is_v2() { &b"1"[..] } else { b"FROZEN" }
}

/// The directory of one v1 controller (or the v2 directory) of `path`.
pub fn controller_dir(controller: &str, path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if is_v2() {
        Path::new(CGROUP_ROOT).join(rel)
    } else {
        Path::new(CGROUP_ROOT).join(controller).join(rel)
    }
}

/// Device rules every container gets after the bundle's own, as runc adds
/// them: the default /dev nodes and ptys. linux.devices entries get no rule
/// of their own (runc): after a deny-all only the bundle's rules allow them.
pub fn effective_resources(spec: &Spec) -> Result<LinuxResources> {
    let linux = spec.linux().as_ref();
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    // why: on v1 the unified map was silently dropped; runc refuses it, so a
    // caller learns its limits would not apply.
    if !is_v2() && resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("invalid configuration: cannot use unified on cgroup v1");
    }
    // why: a pids limit of 0 is a real limit since runc 1.4 (runc#4949),
    // which writes it as 1 (0 and 1 forbid fork alike); libcgroups does so on
    // v2 but writes "max" on v1.
    if !is_v2() && resources.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        resources.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(1)
                .build()
                .context("pids limit")?,
        ));
    }
    // why: ozz writes rdma limits on v2 only; on a v1 host they would be
    // dropped, so they are refused before anything is created.
    if !is_v2() && resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        bail!("invalid configuration: rdma limits need cgroup v2");
    }
    let mut rules = resources.devices().clone().unwrap_or_default();
    // why: the kernel refuses a devices.allow/deny line without access
    // ("c 1:9 ", EINVAL) and v2 would make it a rule matching nothing. The
    // spec makes access optional: a rule without it covers "rwm".
    for rule in &mut rules {
        match rule.access().as_deref() {
            None | Some("") => {
                rule.set_access(Some("rwm".to_string()));
            }
            Some(access) if access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) => {}
            Some(access) => bail!("invalid device access {access:?} in linux.resources.devices"),
        }
    }
    let extra = vec![
        serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}),
        serde_json::json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}),
    ];
    for rule in extra {
        rules.push(serde_json::from_value(rule).context("default device rule")?);
    }
    resources.set_devices(Some(rules));
    Ok(resources)
}

/// How many processes of the cgroup the kernel's OOM killer has killed:
/// `oom_kill` of memory.events (v2) or memory.oom_control (v1). None when
/// the file is gone or the kernel does not count.
pub fn oom_kill_count(path: &Path) -> Option<u64> {
    let file = if is_v2() {
        controller_dir("", path).join("memory.events")
    } else {
        controller_dir("memory", path).join("memory.oom_control")
    };
    read_keyed(&file, "oom_kill")
}

/// The number after `key ` in a flat-keyed cgroup file (memory.events,
/// memory.stat, pids.events, memory.oom_control).
pub fn read_keyed(file: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let (k, value) = l.split_once(' ')?;
        (k == key).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_device_section_skips_the_v1_manager() {
        let parse = |v: serde_json::Value| -> LinuxResources { serde_json::from_value(v).unwrap() };
        let devices = serde_json::json!([{"allow": false, "access": "rwm"}]);
        assert!(asks_only_device_rules(&parse(
            serde_json::json!({"devices": devices})
        )));
        assert!(asks_only_device_rules(&parse(serde_json::json!({}))));
        assert!(asks_only_device_rules(&parse(
            serde_json::json!({"cpu": {}, "hugepageLimits": []})
        )));
        for other in [
            serde_json::json!({"memory": {}}),
            serde_json::json!({"pids": {"limit": 10}}),
            serde_json::json!({"cpu": {"shares": 512}}),
            serde_json::json!({"cpu": {"cpus": "0"}}),
            serde_json::json!({"blockIO": {}}),
            serde_json::json!({"network": {"classID": 1}}),
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
        ] {
            assert!(!asks_only_device_rules(&parse(other.clone())), "{other}");
        }
    }

    fn spec_with_path(path: Option<&str>) -> Spec {
        let json = match path {
            Some(p) => format!(r#"{{"ociVersion":"1.0.2","linux":{{"cgroupsPath":"{p}"}}}}"#),
            None => r#"{"ociVersion":"1.0.2","linux":{}}"#.to_string(),
        };
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn paths_are_anchored_at_the_root() {
        let p = |path, systemd| container_path(&spec_with_path(path), "c1", systemd, false);
        assert_eq!(p(None, false).unwrap(), PathBuf::from("/c1"));
        assert_eq!(p(Some("/a/b"), false).unwrap(), PathBuf::from("/a/b"));
        assert_eq!(p(Some("a/b"), false).unwrap(), PathBuf::from("/a/b"));
        assert!(p(Some("/a/../../etc"), false).is_err());
    }

    #[test]
    fn rootless_default_is_next_to_the_runtimes_cgroup() {
        let p = |own| rootless_default_from(own, "c1");
        assert_eq!(p("0::/deleg/client\n"), Some(PathBuf::from("/deleg/c1")));
        assert_eq!(
            p("0::/user.slice/user-1000.slice/session-2.scope\n"),
            Some(PathBuf::from("/user.slice/user-1000.slice/c1"))
        );
        assert_eq!(p("0::/\n"), Some(PathBuf::from("/c1")));
        // outside the cgroup namespace, or no v2 line (v1)
        assert_eq!(p("0::/../../x\n"), None);
        assert_eq!(p("4:memory:/a\n"), None);
    }

    #[test]
    fn systemd_slices_expand_like_systemd() {
        let p = |path| container_path(&spec_with_path(Some(path)), "c1", true, false);
        assert_eq!(
            p("machine.slice:libpod:abc").unwrap(),
            PathBuf::from("/machine.slice/libpod-abc.scope")
        );
        assert_eq!(
            p("a-b-c.slice:pre:x").unwrap(),
            PathBuf::from("/a.slice/a-b.slice/a-b-c.slice/pre-x.scope")
        );
        assert_eq!(
            p(":ozz:c1").unwrap(),
            PathBuf::from("/system.slice/ozz-c1.scope")
        );
        assert!(p("notaslice").is_err());
    }
}
