//! Checkpoint and restore through CRIU (`criu swrk`, its RPC), with runc's
//! semantics: the images hold the process tree, ozz adds what CRIU cannot
//! know (which mounts come from the host, where stdio pipes go) and puts the
//! restored container in its own cgroup and state.

pub mod carried;
pub mod swrk;

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_cg_mode, Criu_opts, Criu_page_server_info, Criu_req_type, Ext_mount_map,
    Inherit_fd,
};

use crate::cgroups;

/// The file beside the images that records where the init's stdio pointed
/// (runc's name and format: a JSON array of /proc/PID/fd/N link targets).
pub const DESCRIPTORS: &str = "descriptors.json";
pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";
/// CRIU's log level 4: debug, what runc asks for too.
const LOG_LEVEL: i32 = 4;

/// Options that checkpoint and restore share (runc's flag names).
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    pub status_fd: Option<RawFd>,
}

#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    pub common: Common,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    pub page_server: Option<String>,
}

/// The criu binary: runc's global --criu, else `criu` on PATH.
pub fn criu_binary(flag: Option<&str>) -> PathBuf {
    match flag {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("criu"),
    }
}

/// CRIU's own `check`, its exit status only: refuses in one line on a
/// kernel CRIU cannot work with. (CRIU 3.17's RPC CHECK crashes its worker
/// even where `criu check` passes, so the command is run instead.)
pub fn check(binary: &Path) -> Result<()> {
    let status = std::process::Command::new(binary)
        .arg("--no-default-config")
        .arg("check")
        .env_remove("CRIU_CONFIG_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => {
            bail!("criu cannot checkpoint on this kernel: `criu check` fails (run it to see why)")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "criu binary {} not found (install criu, or give --criu PATH)",
            binary.display()
        ),
        Err(e) => Err(e).with_context(|| format!("run {} check", binary.display())),
    }
}

/// A failed CRIU call on a kernel CRIU cannot use is said so in one line;
/// any other failure keeps CRIU's answer and the log to read.
fn explain(binary: &Path, err: anyhow::Error) -> anyhow::Error {
    match check(binary) {
        Ok(()) => err,
        Err(why) => why,
    }
}

fn open_dir(path: &Path, create: bool) -> Result<OwnedFd> {
    if create {
        match fs::create_dir_all(path) {
            Ok(()) => {}
            Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
        }
    }
    nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(|fd| {
        // SAFETY: open just returned this descriptor and nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
    .with_context(|| format!("open {}", path.display()))
}

fn cg_mode(name: Option<&str>) -> Result<Option<Criu_cg_mode>> {
    Ok(Some(match name {
        None | Some("") => return Ok(None),
        Some("soft") => Criu_cg_mode::SOFT,
        Some("full") => Criu_cg_mode::FULL,
        Some("strict") => Criu_cg_mode::STRICT,
        Some("ignore") => Criu_cg_mode::IGNORE,
        Some(other) => bail!("invalid manage cgroups mode: {other:?}"),
    }))
}

/// The namespaces CRIU makes empty on restore instead of restoring their
/// content. The network one always is, as runc does: the runtime does not
/// manage network devices, addresses, routes or firewall rules (whoever set
/// up the namespace does), so CRIU neither saves nor replays them. Saving
/// them costs the final dump an `ip` or `iptables-save` run per table while
/// the container is frozen (3.4 s of an 8.3 s dump in the TCG guest); lo,
/// the only device ozz makes, is brought up again at restore.
fn empty_ns_flags(list: &[String]) -> Result<u32> {
    let mut flags = libc::CLONE_NEWNET as u32;
    for ns in list {
        match ns.as_str() {
            "network" => flags |= libc::CLONE_NEWNET as u32,
            other => bail!("namespace {other:?} is not supported by --empty-ns (only network)"),
        }
    }
    Ok(flags)
}

/// Options both directions set the same way.
fn base_opts(common: &Common, images: &OwnedFd, work: &OwnedFd, log: &str) -> Result<Criu_opts> {
    let mut opts = Criu_opts::new();
    opts.set_images_dir_fd(images.as_raw_fd());
    opts.set_work_dir_fd(work.as_raw_fd());
    opts.set_log_file(log.to_string());
    opts.set_log_level(LOG_LEVEL);
    opts.set_manage_cgroups(true);
    if let Some(mode) = cg_mode(common.manage_cgroups_mode.as_deref())? {
        opts.set_manage_cgroups_mode(mode);
    }
    opts.set_tcp_established(common.tcp_established);
    opts.set_ext_unix_sk(common.ext_unix_sk);
    opts.set_shell_job(common.shell_job);
    opts.set_file_locks(common.file_locks);
    opts.set_auto_dedup(common.auto_dedup);
    opts.set_notify_scripts(true);
    opts.set_empty_ns(empty_ns_flags(&common.empty_ns)?);
    if common.lazy_pages {
        opts.set_lazy_pages(true);
    }
    if let Some(fd) = common.status_fd {
        opts.set_status_fd(fd);
    }
    Ok(opts)
}

/// Bind mounts come from the host: CRIU records them by name at dump and
/// is told their host source at restore (key = destination, as runc does).
/// Masked files are binds of /dev/null.
fn external_mounts(spec: &Spec, bundle: &Path, restore: bool) -> Vec<Ext_mount_map> {
    let mut maps = Vec::new();
    let mut add = |key: String, val: String| {
        let mut m = Ext_mount_map::new();
        m.set_key(key);
        m.set_val(val);
        maps.push(m);
    };
    for m in spec.mounts().clone().unwrap_or_default() {
        let opts = m.options().clone().unwrap_or_default();
        let is_bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if !is_bind {
            continue;
        }
        let dest = m.destination().to_string_lossy().to_string();
        let val = if restore {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            };
            src.to_string_lossy().to_string()
        } else {
            dest.clone()
        };
        add(dest, val);
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for path in masked {
        // Only files are binds of /dev/null; directories get a tmpfs, which
        // CRIU dumps like any other mount.
        if is_masked_file(&path) {
            let val = if restore {
                "/dev/null".to_string()
            } else {
                path.clone()
            };
            add(path, val);
        }
    }
    maps
}

/// A masked path is a file (bound over with /dev/null) when the host's path
/// of the same name is not a directory: /proc and /sys look alike inside.
fn is_masked_file(path: &str) -> bool {
    match fs::metadata(path) {
        Ok(meta) => !meta.is_dir(),
        Err(_) => false,
    }
}

/// Checkpoints a running container. The caller holds its state lock.
pub fn dump(
    binary: &Path,
    state: &crate::state::ContainerState,
    opts_in: &DumpOptions,
) -> Result<()> {
    let image_path = &opts_in.common.image_path;
    let images = open_dir(image_path, true)?;
    let work_path = opts_in.common.work_path.as_deref().unwrap_or(image_path);
    let work = open_dir(work_path, true)?;
    let mut opts = base_opts(&opts_in.common, &images, &work, DUMP_LOG)?;
    opts.set_pid(state.pid);
    opts.set_root(state.rootfs.to_string_lossy().to_string());
    opts.set_leave_running(opts_in.leave_running);
    // CRIU freezes the whole container through its cgroup, so nothing forks
    // away while it seizes the tasks.
    let freezer = if cgroups::is_v2() {
        cgroups::controller_dir("", &state.cgroup_path)
    } else {
        cgroups::controller_dir("freezer", &state.cgroup_path)
    };
    opts.set_freeze_cgroup(freezer.to_string_lossy().to_string());
    if state.config.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        opts.set_orphan_pts_master(true);
    }
    if let Some(parent) = &opts_in.parent_path {
        // CRIU resolves the parent relative to the images directory.
        opts.set_parent_img(parent.to_string_lossy().to_string());
    }
    if opts_in.pre_dump || opts_in.parent_path.is_some() {
        opts.set_track_mem(true);
    }
    if let Some(ps) = &opts_in.page_server {
        let (addr, port) = ps
            .rsplit_once(':')
            .with_context(|| format!("--page-server {ps:?}: want ADDRESS:PORT"))?;
        let port: i32 = port
            .parse()
            .with_context(|| format!("--page-server {ps:?}: bad port"))?;
        let mut info = Criu_page_server_info::new();
        info.set_address(addr.to_string());
        info.set_port(port);
        opts.ps = protobuf::MessageField::some(info);
    }
    opts.ext_mnt = external_mounts(&state.config, &state.bundle, false);
    add_joined_namespaces(&mut opts, &state.config, false)?;
    write_descriptors(state.pid, image_path)?;
    let ext_stdio = external_stdio(state.pid);
    for (_, key) in &ext_stdio {
        opts.external.push(key.clone());
    }
    let json = serde_json::to_vec(&ext_stdio)?;
    crate::state::write_atomic(&image_path.join(EXTERNAL_STDIO), &json)?;
    let kind = if opts_in.pre_dump {
        Criu_req_type::PRE_DUMP
    } else {
        Criu_req_type::DUMP
    };
    let keep = opts_in.common.status_fd.into_iter().collect();
    let worker = swrk::Worker {
        binary,
        keep_fds: keep,
        join_cgroup: Vec::new(),
    };
    // Read before the dump: held values need the processes.
    let record = (!opts_in.pre_dump).then(|| carried::Record::of(state));
    let log = work_path.join(DUMP_LOG);
    swrk::call(&worker, kind, Some(opts), Some(&log), &mut |_, _, _| Ok(()))
        .map_err(|e| explain(binary, e))?;
    if let Some(record) = record {
        record.write(image_path)?;
    }
    Ok(())
}

/// Network and pid namespaces the container joined by path stay outside
/// the images: CRIU names them and restore plugs the same ones back in.
fn add_joined_namespaces(opts: &mut Criu_opts, spec: &Spec, restore: bool) -> Result<Vec<OwnedFd>> {
    let mut keep = Vec::new();
    let plan = crate::namespaces::NamespacePlan::from_spec(spec);
    for (typ, key, name) in [
        (LinuxNamespaceType::Network, "extRootNetNS", "net"),
        (LinuxNamespaceType::Pid, "extRootPidNS", "pid"),
    ] {
        let Some(path) = plan.joined_path(typ) else {
            continue;
        };
        if restore {
            let file = fs::File::open(path)
                .with_context(|| format!("open namespace {}", path.display()))?;
            let fd: OwnedFd = file.into();
            let mut inherit = Inherit_fd::new();
            inherit.set_key(key.to_string());
            inherit.set_fd(fd.as_raw_fd());
            opts.inherit_fd.push(inherit);
            keep.push(fd);
        } else {
            let ino = fs::metadata(path)
                .with_context(|| format!("stat namespace {}", path.display()))?
                .ino();
            opts.external.push(format!("{name}[{ino}]:{key}"));
        }
    }
    Ok(keep)
}

/// Stdio the init got from the host (ozz's own /dev/null, a log file) lies
/// on a mount the container does not have: CRIU cannot dump it and is told
/// it is external (`file[MNT:INO]`, hex); restore plugs in its own stdio.
fn external_stdio(pid: i32) -> Vec<(i32, String)> {
    let mounts: Vec<u64> = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let mut external = Vec::new();
    for fd in 0..3 {
        let Ok(link) = fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
            continue;
        };
        let link = link.to_string_lossy();
        if !link.starts_with('/') {
            continue; // pipes, sockets, anon inodes: not files on a mount
        }
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let Some(mnt_id) = info
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if mounts.contains(&mnt_id) {
            continue;
        }
        if let Ok(meta) = fs::metadata(format!("/proc/{pid}/fd/{fd}")) {
            external.push((fd, format!("file[{mnt_id:x}:{:x}]", meta.ino())));
        }
    }
    external
}

/// ozz's record of [`external_stdio`], beside runc's descriptors.json.
pub const EXTERNAL_STDIO: &str = "ozz-external-stdio.json";

fn write_descriptors(pid: i32, image_path: &Path) -> Result<()> {
    let mut links = Vec::new();
    for fd in 0..3 {
        let target = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_else(|_| "/dev/null".to_string());
        links.push(target);
    }
    let json = serde_json::to_vec(&links)?;
    crate::state::write_atomic(&image_path.join(DESCRIPTORS), &json)
}

/// What a restore needs beyond the shared options.
pub struct RestoreRequest<'a> {
    pub common: &'a Common,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    /// A bind mount of the rootfs (CRIU pivots into a mount point).
    pub root: &'a Path,
    pub cgroup_path: &'a Path,
    pub console_socket: Option<OwnedFd>,
    /// Called with the restored init's PID at setup-namespaces, before any
    /// restored task runs (hooks).
    pub on_namespaces: &'a mut dyn FnMut(i32) -> Result<()>,
}

/// Restores the images; returns the PID of the restored init, a child of
/// this process.
pub fn restore(binary: &Path, req: RestoreRequest) -> Result<i32> {
    let image_path = &req.common.image_path;
    if !image_path.join("inventory.img").is_file() {
        bail!(
            "{} holds no checkpoint (no inventory.img)",
            image_path.display()
        );
    }
    let images = open_dir(image_path, false)?;
    let work_path = req.common.work_path.as_deref().unwrap_or(image_path);
    let work = open_dir(work_path, true)?;
    let mut opts = base_opts(req.common, &images, &work, RESTORE_LOG)?;
    opts.set_root(req.root.to_string_lossy().to_string());
    // The restored init becomes our child, as a created container's is.
    opts.set_rst_sibling(true);
    // A cg_root without a controller name applies to every hierarchy, the
    // cgroup v2 one included (runc names the v2 controller "", which CRIU
    // matches against nothing, so its tasks land in the dumped path).
    let mut root = Cgroup_root::new();
    root.set_path(req.cgroup_path.to_string_lossy().to_string());
    opts.cg_root.push(root);
    if req.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        opts.set_orphan_pts_master(true);
    }
    opts.ext_mnt = external_mounts(req.spec, req.bundle, true);
    let ns_fds = add_joined_namespaces(&mut opts, req.spec, true)?;
    let mut keep: Vec<RawFd> = ns_fds.iter().map(|fd| fd.as_raw_fd()).collect();
    // Our stdio goes to CRIU as copies above 2: the worker's own 0-2 are
    // /dev/null, so an inherit_fd naming 0-2 would hand the restored tasks
    // CRIU's /dev/null instead of the caller's pipes (conmon's, the shim's).
    let mut stdio_copies: Vec<Option<OwnedFd>> = Vec::new();
    for fd in 0..3 {
        stdio_copies.push(stdio_copy(fd));
    }
    let inherit_stdio = |opts: &mut Criu_opts, keep: &mut Vec<RawFd>, key: String, fd: usize| {
        if let Some(Some(copy)) = stdio_copies.get(fd) {
            let mut inherit = Inherit_fd::new();
            inherit.set_key(key);
            inherit.set_fd(copy.as_raw_fd());
            opts.inherit_fd.push(inherit);
            keep.push(copy.as_raw_fd());
        }
    };
    // Pipes the init had as stdio are replaced by ours (runc's way: podman's
    // conmon hands its pipes to restore as our stdio).
    if let Ok(data) = fs::read(image_path.join(DESCRIPTORS)) {
        let links: Vec<String> = serde_json::from_slice(&data)
            .with_context(|| format!("parse {}", image_path.join(DESCRIPTORS).display()))?;
        for (fd, link) in links.iter().enumerate().take(3) {
            if link.starts_with("pipe:") {
                inherit_stdio(&mut opts, &mut keep, link.clone(), fd);
            }
        }
    }
    if let Ok(data) = fs::read(image_path.join(EXTERNAL_STDIO)) {
        let ext: Vec<(i32, String)> = serde_json::from_slice(&data)
            .with_context(|| format!("parse {}", image_path.join(EXTERNAL_STDIO).display()))?;
        for (fd, key) in ext {
            if (0..3).contains(&fd) {
                inherit_stdio(&mut opts, &mut keep, key, fd as usize);
            }
        }
    }
    if let Some(fd) = req.common.status_fd {
        keep.push(fd);
    }
    let new_net =
        crate::namespaces::NamespacePlan::from_spec(req.spec).creates(LinuxNamespaceType::Network);
    let worker = swrk::Worker {
        binary,
        keep_fds: keep,
        // CRIU forks the restored tree from itself: started in the
        // container's cgroup, every restored task is born there.
        join_cgroup: join_files(req.cgroup_path)?,
    };
    let log = work_path.join(RESTORE_LOG);
    let console = req.console_socket;
    let on_namespaces = req.on_namespaces;
    let mut init_pid = 0;
    let resp = swrk::call(
        &worker,
        Criu_req_type::RESTORE,
        Some(opts),
        Some(&log),
        &mut |script, notify, fd| {
            match script {
                "setup-namespaces" => {
                    init_pid = notify.pid();
                    on_namespaces(notify.pid())?;
                }
                // CRIU sets the links' flags from the images after
                // setup-namespaces; before any task (or TCP socket) is
                // restored, lo goes up.
                "post-setup-namespaces" if new_net && init_pid > 0 => loopback_up(init_pid)?,
                "orphan-pts-master" => {
                    if let (Some(sock), Some(master)) = (&console, fd) {
                        crate::sync::send_fd(sock.as_raw_fd(), "console", master.as_raw_fd())?;
                    }
                }
                _ => {}
            }
            Ok(())
        },
    )
    .map_err(|e| explain(binary, e))?;
    drop(ns_fds);
    drop(stdio_copies);
    let pid = resp.restore.pid();
    if pid <= 0 {
        bail!("criu restore returned no PID");
    }
    Ok(pid)
}

/// A close-on-exec copy of our stdio FD numbered above 2 (the worker clears
/// close-on-exec on the FDs it keeps); None where FD is not open.
fn stdio_copy(fd: RawFd) -> Option<OwnedFd> {
    let copy = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).ok()?;
    // SAFETY: fcntl just made this descriptor and nothing else owns it.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) })
}

/// The cgroup files a process writes "0" into to join the container's
/// cgroup itself.
fn join_files(cgroup_path: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for dir in cgroups::all_dirs(cgroup_path)? {
        let tasks = dir.join("tasks");
        files.push(if tasks.exists() {
            tasks
        } else {
            dir.join("cgroup.procs")
        });
    }
    Ok(files)
}

/// CRIU restores a private network namespace with lo down (as dumped, or
/// as runc leaves it); a restored TCP
/// connection on 127.0.0.1 then fails with "Network is unreachable".
fn loopback_up(pid: i32) -> Result<()> {
    in_network_namespace(Path::new(&format!("/proc/{pid}/ns/net")), set_lo_up)
}

/// Runs `f` in the network namespace at `path` (and the processes it
/// starts), then returns to ours.
fn in_network_namespace(path: &Path, f: impl FnOnce() -> Result<()>) -> Result<()> {
    use nix::sched::{setns, CloneFlags};
    let own = fs::File::open("/proc/self/ns/net").context("open own network namespace")?;
    let target = fs::File::open(path)
        .with_context(|| format!("open network namespace {}", path.display()))?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("enter network namespace {}", path.display()))?;
    let result = f();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).context("return to own network namespace")?;
    result
}

/// CRIU's chain that drops every packet of a dumped network namespace but
/// its own, until a restore in that namespace removes it.
const CRIU_LOCK_CHAIN: &str = "CRIU";

/// After a final dump, CRIU leaves its lock on the network namespace, so
/// that the peers of dumped TCP connections see nothing until the restore.
/// A namespace the container joined by path is shared (a pod, another
/// container): without `--tcp-established` there is no connection to keep,
/// and the lock would only cut everyone else off; ozz removes it.
pub fn unlock_joined_network(spec: &Spec) -> Result<()> {
    let plan = crate::namespaces::NamespacePlan::from_spec(spec);
    let Some(path) = plan.joined_path(LinuxNamespaceType::Network) else {
        return Ok(());
    };
    in_network_namespace(path, || {
        for tool in ["iptables", "ip6tables"] {
            remove_lock_chain(tool)?;
        }
        Ok(())
    })
}

/// Deletes the jumps to CRIU's chain (however many times they were added)
/// and the chain. No such tool: CRIU, which needs it to lock, did not.
fn remove_lock_chain(tool: &str) -> Result<()> {
    let run = |args: &[&str]| -> Result<bool> {
        match std::process::Command::new(tool)
            .arg("-w")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(status) => Ok(status.success()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("run {tool}")),
        }
    };
    if !run(&["-n", "-L", CRIU_LOCK_CHAIN])? {
        return Ok(());
    }
    for hook in ["INPUT", "OUTPUT"] {
        while run(&["-D", hook, "-j", CRIU_LOCK_CHAIN])? {}
    }
    if !(run(&["-F", CRIU_LOCK_CHAIN])? && run(&["-X", CRIU_LOCK_CHAIN])?) {
        bail!("{tool}: cannot remove CRIU's lock chain {CRIU_LOCK_CHAIN}");
    }
    Ok(())
}

fn set_lo_up() -> Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket for lo")?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags of the named interface into ifr.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error()).context("read lo flags");
    }
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS writes the flags from ifr, which names lo.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error()).context("bring lo up");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_cgroups_modes_are_runcs() {
        assert!(cg_mode(Some("soft")).unwrap().is_some());
        assert!(cg_mode(Some("ignore")).unwrap().is_some());
        assert!(cg_mode(None).unwrap().is_none());
        assert!(cg_mode(Some("props")).is_err());
    }

    #[test]
    fn empty_ns_takes_only_network() {
        assert_eq!(
            empty_ns_flags(&["network".to_string()]).unwrap(),
            libc::CLONE_NEWNET as u32
        );
        // as runc: the network namespace's configuration is never dumped
        assert_eq!(empty_ns_flags(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert!(empty_ns_flags(&["pid".to_string()]).is_err());
    }

    #[test]
    fn stdio_goes_to_criu_as_a_copy_above_2() {
        let copy = stdio_copy(2).expect("stderr is open in tests");
        assert!(copy.as_raw_fd() > 2);
        let flags = nix::fcntl::fcntl(copy.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        assert!(stdio_copy(-1).is_none());
    }

    #[test]
    fn a_missing_criu_is_one_clear_line() {
        let err = check(Path::new("/nonexistent/criu")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("not found"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
