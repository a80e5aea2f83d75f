//! `ozz procfs serve`: a FUSE filesystem whose files (meminfo, cpuinfo,
//! stat, uptime, loadavg, diskstats, swaps, user_beancounters) answer each
//! open for the container of the *opening* process, found through its
//! cgroup, so one mount serves every container. create binds the files
//! over a container's /proc when asked (docs/procview.md).
//!
//! Built on the `fuser` crate without its libfuse feature: it speaks the
//! FUSE protocol itself and mounts with mount(2) as root, so neither
//! libfuse nor fusermount is needed on the host.

pub mod agent;
pub mod files;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, Request,
};

use crate::state::ContainerState;

/// Where the view is mounted unless `--procview DIR` says otherwise,
/// whatever `--root` is.
pub const DEFAULT_MOUNTPOINT: &str = "/run/ozz/procview";

/// The mount's source name in /proc/self/mountinfo, by which create knows
/// the view is ours.
pub const FS_NAME: &str = "ozz-procview";

/// The bundle annotation asking for the view.
pub const ANNOTATION: &str = "org.openvz.procview";

/// Attributes and entries are asked again each time: an entry's inode
/// depends on who looks it up.
const TTL: Duration = Duration::ZERO;

struct View {
    /// The state root whose containers the view knows.
    root: PathBuf,
    /// Open files: the text made at open, read in pieces.
    open: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    next_fh: AtomicU64,
    loads: Arc<Mutex<HashMap<PathBuf, [f64; 3]>>>,
    inodes: Mutex<Inodes>,
    /// A reader's /proc/PID/cgroup text -> the ID of its container.
    owners: Mutex<HashMap<String, String>>,
}

/// Each file has an inode per cgroup of its readers (the text of their
/// /proc/PID/cgroup; the binds are looked up by create's init, already in
/// the container's cgroup): a container's bind holds its own inode, so the
/// page cache that sendfile and splice read through (even on direct_io
/// files) is never shared between containers. Inode 1 is the directory.
#[derive(Default)]
struct Inodes {
    by_key: HashMap<(usize, String), u64>,
    /// inode - 2 -> the file's index in NAMES.
    files: Vec<usize>,
}

impl Inodes {
    fn get(&mut self, file: usize, cgroups: String) -> u64 {
        let next = self.files.len() as u64 + 2;
        let ino = *self.by_key.entry((file, cgroups)).or_insert(next);
        if ino == next {
            self.files.push(file);
        }
        ino
    }

    fn name(&self, ino: INodeNo) -> Option<&'static str> {
        let at = u64::from(ino).checked_sub(2)? as usize;
        files::NAMES.get(*self.files.get(at)?).copied()
    }
}

/// The size the files claim: more than any of them holds. Reads are
/// direct (each returns what the file has, 0 at its end), but sendfile and
/// splice stop at the size, and a size of 0 (procfs') made busybox's `cat`
/// print nothing; the kernel lowers it to the real end on the short read.
const CLAIMED_SIZE: u64 = 1 << 24;

fn attr(ino: u64) -> FileAttr {
    let dir = ino == 1;
    FileAttr {
        ino: INodeNo(ino),
        size: if dir { 0 } else { CLAIMED_SIZE },
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir { 0o555 } else { 0o444 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

fn index_of(name: &OsStr) -> Option<usize> {
    files::NAMES.iter().position(|n| OsStr::new(n) == name)
}

/// The paths of a /proc/PID/cgroup text: "hierarchy:controllers:path" per
/// line; on a hybrid host the container lives in the v1 hierarchies, on
/// v2 in the one "0::" line.
pub fn parse_cgroup_paths(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(PathBuf::from)
        .collect()
}

impl View {
    /// The container of a reader. why: finding it loads every state.json
    /// under the root; the ID found for a reader's cgroups is remembered
    /// and only that container's state is loaded again, and used while it
    /// still names those cgroups and its init lives.
    fn owner(&self, pid: u32) -> Option<ContainerState> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let paths = parse_cgroup_paths(&text);
        let known = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&text)
            .cloned();
        if let Some(id) = known {
            let file = self.root.join(&id).join(crate::state::STATE_FILE);
            if let Ok(state) = crate::state::load_state_file(&file) {
                let mine = paths.iter().any(|p| p.starts_with(&state.cgroup_path));
                if mine && state.init_alive() {
                    return Some(state);
                }
            }
        }
        let state = crate::state::owner_of(&self.root, &paths)?;
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a host with more reader cgroups than this starts over.
        if owners.len() > 4096 {
            owners.clear();
        }
        owners.insert(text, state.id.clone());
        Some(state)
    }

    fn name_of(&self, ino: INodeNo) -> Option<&'static str> {
        self.inodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .name(ino)
    }
}

impl Filesystem for View {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(file) = index_of(name).filter(|_| u64::from(parent) == 1) else {
            return reply.error(Errno::ENOENT);
        };
        let cgroups =
            std::fs::read_to_string(format!("/proc/{}/cgroup", req.pid())).unwrap_or_default();
        let ino = self
            .inodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(file, cgroups);
        reply.entry(&TTL, &attr(ino), Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if u64::from(ino) == 1 || self.name_of(ino).is_some() {
            reply.attr(&TTL, &attr(ino.into()));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(name) = self.name_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EACCES);
        }
        let owner = self.owner(req.pid());
        let loads = owner
            .as_ref()
            .and_then(|s| {
                self.loads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&s.cgroup_path)
                    .copied()
            })
            .unwrap_or_default();
        let text = files::render(name, owner.as_ref(), &self.root, &loads);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(text));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let text = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(text) = text else {
            return reply.error(Errno::EBADF);
        };
        let start = (offset as usize).min(text.len());
        let end = start.saturating_add(size as usize).min(text.len());
        reply.data(&text[start..end]);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if u64::from(ino) != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries = vec![
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
        ];
        {
            let mut inodes = self.inodes.lock().unwrap_or_else(|e| e.into_inner());
            for (i, name) in files::NAMES.iter().enumerate() {
                entries.push((inodes.get(i, String::new()), FileType::RegularFile, name));
            }
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Every 5 seconds, each running container's 1, 5 and 15 minute load
/// averages, decayed as the kernel does from its runnable task count.
fn sample_loads(root: PathBuf, loads: Arc<Mutex<HashMap<PathBuf, [f64; 3]>>>) {
    const PERIOD: f64 = 5.0;
    let decay = [60.0, 300.0, 900.0].map(|window: f64| (-PERIOD / window).exp());
    loop {
        let mut next = HashMap::new();
        let previous = loads.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for state in crate::state::running_containers(&root) {
            let (running, _) = files::task_counts(&state.cgroup_path);
            let old = previous
                .get(&state.cgroup_path)
                .copied()
                .unwrap_or_default();
            let n = running as f64;
            let new = [0, 1, 2].map(|i| old[i] * decay[i] + n * (1.0 - decay[i]));
            next.insert(state.cgroup_path, new);
        }
        *loads.lock().unwrap_or_else(|e| e.into_inner()) = next;
        std::thread::sleep(Duration::from_secs_f64(PERIOD));
    }
}

/// Mounts the view and serves it until SIGTERM or SIGINT, then unmounts.
pub fn serve(root: &Path, mountpoint: &Path) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    if is_view(mountpoint) {
        if std::fs::metadata(mountpoint.join("meminfo")).is_ok() {
            bail!("{}: a view is already served there", mountpoint.display());
        }
        // A dead server's mount (ENOTCONN): the new one replaces it; the
        // containers bound to the old one keep failing reads until they
        // are restarted.
        nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH)
            .with_context(|| format!("unmount the dead view on {}", mountpoint.display()))?;
    }
    std::fs::create_dir_all(mountpoint)
        .with_context(|| format!("create mountpoint {}", mountpoint.display()))?;

    // The threads fuser starts inherit the mask: only this one takes them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGHUP);
    signals.thread_block().context("block signals")?;
    let loads = Arc::new(Mutex::new(HashMap::new()));
    let view = View {
        root: root.to_path_buf(),
        open: Mutex::new(HashMap::new()),
        next_fh: AtomicU64::new(1),
        loads: loads.clone(),
        inodes: Mutex::new(Inodes::default()),
        owners: Mutex::new(HashMap::new()),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(FS_NAME.to_string()),
        MountOption::NoExec,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    // Every container's processes read it, whatever their user.
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(4);
    let session = fuser::Session::new(view, mountpoint, &config)
        .with_context(|| format!("mount the view on {}", mountpoint.display()))?;
    let background = session.spawn().context("start the view's threads")?;
    let socket = agent::socket_path(mountpoint);
    agent::listen(&socket, root.to_path_buf(), loads.clone())?;
    let sampler_root = root.to_path_buf();
    std::thread::Builder::new()
        .name("loadavg".into())
        .spawn(move || sample_loads(sampler_root, loads))
        .context("start the load sampler")?;
    eprintln!(
        "ozz procfs: serving {} for the containers of {}",
        mountpoint.display(),
        root.display()
    );
    // Woken by a signal, or every second to see whether someone else
    // unmounted the view (the session's thread then ends).
    let timeout = nix::sys::time::TimeSpec::from_duration(Duration::from_secs(1));
    loop {
        if background.guard.is_finished() {
            let _ = std::fs::remove_file(&socket);
            return background
                .join()
                .context("the view's session ended")
                .and_then(|_| bail!("{} was unmounted", mountpoint.display()));
        }
        if sigtimedwait(&signals, &timeout).is_some() {
            break;
        }
    }
    let _ = std::fs::remove_file(&socket);
    background
        .umount_and_join()
        .with_context(|| format!("unmount {}", mountpoint.display()))
}

fn sigtimedwait(set: &nix::sys::signal::SigSet, timeout: &nix::sys::time::TimeSpec) -> Option<i32> {
    // SAFETY: the set and timeout are valid for the call; no siginfo is
    // asked for.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), timeout.as_ref()) };
    (n > 0).then_some(n)
}

/// True when `dir` is a mount of the view (the FUSE source name ozz's
/// server gives), not a plain directory or another filesystem.
pub fn is_view(dir: &Path) -> bool {
    // (Not the point itself: stat on a dead server's mount fails.)
    let dir = match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            match std::fs::canonicalize(parent) {
                Ok(parent) => parent.join(name),
                Err(_) => return false,
            }
        }
        _ => match std::path::absolute(dir) {
            Ok(dir) => dir,
            Err(_) => return false,
        },
    };
    let Ok(mountinfo) = crate::mountinfo::read() else {
        return false;
    };
    // The last mount on the point is the one seen there.
    let seen = crate::mountinfo::mounts(&mountinfo)
        .rev()
        .find(|m| m.mount_point() == dir)
        .is_some_and(|m| m.fs_type == "fuse" && m.source == FS_NAME);
    seen
}

/// The view's directory a container asking for it will get its files from:
/// checked to be our FUSE mount and answering, or one line saying why not.
fn check_for_create(dir: &Path) -> Result<PathBuf> {
    if !is_view(dir) {
        bail!(
            "the bundle asks for the procview ({ANNOTATION}) but no view is mounted at {} (start `ozz procfs serve {}`)",
            dir.display(),
            dir.display()
        );
    }
    std::fs::metadata(dir.join("meminfo")).with_context(|| {
        format!(
            "the procview at {} does not answer (is its server running?)",
            dir.display()
        )
    })?;
    let dir = std::path::absolute(dir).context("the procview's path")?;
    let socket = agent::socket_path(&dir);
    if !socket.exists() {
        bail!(
            "the procview at {} has no seccomp agent at {} (restart its server)",
            dir.display(),
            socket.display()
        );
    }
    Ok(dir)
}

/// The view's directory when the bundle asks for it (annotation
/// org.openvz.procview=true) or --procview-all does, checked to be mounted;
/// None (after one map look-up) for a container that does not ask.
pub fn for_create(
    spec: &oci_spec::runtime::Spec,
    global: &crate::cli::GlobalOpts,
) -> Result<Option<PathBuf>> {
    let asked = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION));
    let wanted = match asked.map(String::as_str) {
        Some("true") => true,
        None | Some("false") => global.procview_all,
        Some(other) => bail!("annotation {ANNOTATION}: {other:?} is neither true nor false"),
    };
    if !wanted {
        return Ok(None);
    }
    let dir = global
        .procview
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_MOUNTPOINT));
    check_for_create(dir).map(Some)
}

/// Read-only detached binds of the files create puts over /proc (and of
/// user_beancounters), made in the init before pivot_root.
pub fn open_files(dir: &Path) -> Result<Vec<(&'static str, std::os::fd::OwnedFd)>> {
    use std::os::fd::{AsFd, FromRawFd};
    let mut trees = Vec::new();
    for name in files::BOUND.iter().chain(&["user_beancounters"]) {
        let path = dir.join(name);
        let fd = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("open the procview's {}", path.display()))?;
        // SAFETY: open just returned this descriptor; nothing else owns it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let tree = crate::mount_api::open_tree_clone(fd.as_fd(), false)
            .with_context(|| format!("clone the procview's {name}"))?;
        crate::mount_api::mount_setattr_fd(tree.as_fd(), crate::mount_api::MOUNT_ATTR_RDONLY, 0)
            .with_context(|| format!("make the procview's {name} read-only"))?;
        trees.push((*name, tree));
    }
    Ok(trees)
}
