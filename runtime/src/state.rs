//! Container state on disk: one directory per container under the root
//! (`/run/ozz/<id>`), a lock serialising commands on it, and state.json
//! written atomically so a reader never sees half a file.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::beancounters::view::Carried;
use crate::errors::RuntimeError;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// What `delete --force` needs to clean up when state.json is missing or
/// unreadable (a create killed before saving it, a corrupt file): see
/// [`Recovery`]. Written by ozz before 2026-12-07; read still, for the
/// directories of containers created then.
pub const RECOVERY_FILE: &str = "recovery.json";
/// The recovery record as two symlinks, each made in one atomic call and
/// with nothing to write back: `cgroup` (its target is the cgroup path),
/// made before the cgroup is, and `init` ("PID:START"), once the init
/// exists. The JSON file they replace cost a create, a write and a rename,
/// and rewriting it by a rename over it made ext4 flush it at once
/// (auto_da_alloc), so that delete's unlink waited for that write.
pub const CGROUP_LINK: &str = "cgroup";
pub const INIT_LINK: &str = "init";
/// How long a command waits for another one's lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `--root`, else /run/ozz for root and $XDG_RUNTIME_DIR/ozz for others.
/// As runc: root of a user namespace (rootless podman runs the runtime
/// so) counts as "others", unless $USER says root.
pub fn root_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(root) = flag {
        return root.to_path_buf();
    }
    let real_root = nix::unistd::geteuid().is_root()
        && (!crate::rootless::in_user_namespace()
            || std::env::var_os("USER").is_some_and(|u| u == "root"));
    if real_root {
        return PathBuf::from("/run/ozz");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ozz"),
        _ => PathBuf::from("/run/ozz"),
    }
}

/// IDs become directory names and cgroup names: refuse anything that could
/// walk out of the root (`/`, `..`) or confuse a terminal or log parser.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if id.is_empty() || id == "." || id == ".." || !ok_chars || id.len() > 1024 {
        bail!("invalid container ID format: {id:?}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What ozz keeps about a container between commands (state.json).
pub type ContainerState = StateFile<Spec>;

/// A container as `list` shows it: state.json with the config passed over
/// unparsed (list reads every container's file, and the config is most of
/// it), or what a broken directory still tells.
pub type Listed = StateFile<serde::de::IgnoredAny>;

/// state.json, with the bundle's config as `C`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile<C> {
    pub id: String,
    /// Host PID of the container's init.
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22),
    /// so a recycled PID is never mistaken for our init.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup path handed to the cgroup manager.
    pub cgroup_path: PathBuf,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Beancounter counters from before a checkpoint (restored containers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub carried_beancounters: BTreeMap<String, Carried>,
    /// Created with rootless cgroups (see rootless.rs): a cgroup it has
    /// is a subtree delegated to the user and takes no device rules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rootless: bool,
    /// A rootless container that runs without a cgroup (the user may make
    /// none where `cgroup_path` says): nothing of cgroup_path exists.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cgroup: bool,
    /// The init executes the process through the exec stub: until start it
    /// runs from the host's binary (security/exec_stub.rs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exec_stub: bool,
    /// The bundle's config as it was at create: delete needs its hooks,
    /// exec its namespaces and process defaults. Written last: it is most
    /// of the file, and `list` stops reading where it begins.
    pub config: C,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl ContainerState {
    /// Host PIDs of the container's processes: its cgroup's, or for a
    /// rootless container without one, those of its init's pid namespace.
    pub fn pids(&self) -> Result<Vec<i32>> {
        if !self.no_cgroup {
            return crate::cgroups::pids(&self.cgroup_path);
        }
        if !self.init_alive() {
            return Ok(Vec::new());
        }
        let own_pid_ns = crate::namespaces::NamespacePlan::from_spec(&self.config)
            .creates(oci_spec::runtime::LinuxNamespaceType::Pid);
        Ok(crate::rootless::pids_without_cgroup(self.pid, own_pid_ns))
    }
}

/// The little `delete --force` needs to remove a container whose state.json
/// is missing or corrupt, kept in a file of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recovery {
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub pid_start_time: u64,
    #[serde(default)]
    pub cgroup_path: Option<PathBuf>,
}

impl Recovery {
    /// From the recovery links (or an older ozz's recovery.json), else
    /// whatever fields of state.json still parse.
    pub fn find(dir: &Path) -> Recovery {
        let from = |file: &str| -> Option<Recovery> {
            serde_json::from_slice(&fs::read(dir.join(file)).ok()?).ok()
        };
        let from_links = || -> Option<Recovery> {
            let cgroup_path = fs::read_link(dir.join(CGROUP_LINK)).ok();
            let init = read_init_link(dir);
            if cgroup_path.is_none() && init.is_none() {
                return None;
            }
            let (pid, pid_start_time) = init.unwrap_or_default();
            Some(Recovery {
                pid,
                pid_start_time,
                cgroup_path,
            })
        };
        from(RECOVERY_FILE)
            .or_else(from_links)
            .or_else(|| from(STATE_FILE))
            .unwrap_or_default()
    }

    /// True while this pid is still the process we started.
    pub fn init_alive(&self) -> bool {
        init_alive(self.pid, self.pid_start_time)
    }
}

/// Runs `make` with the umask cleared, so the mode given to mkdir or mknod
/// is the new file's mode exactly: no chmod after it (on ext4 a chmod is
/// one more journalled inode update). The umask is the process's: call
/// only while single-threaded, as every command here is.
pub fn with_umask_cleared<T>(make: impl FnOnce() -> T) -> T {
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let made = make();
    nix::sys::stat::umask(umask);
    made
}

/// The per-container directory, locked for the lifetime of this value.
pub struct ContainerDir {
    pub path: PathBuf,
    _lock: Flock<File>,
}

impl ContainerDir {
    /// Creates the directory of a new container; fails if the ID is taken.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        create_root(root)?;
        let path = root.join(id);
        let made = with_umask_cleared(|| {
            std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o711).create(&path)
        });
        match made {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(id.to_string()).into())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("create state dir {}", path.display()))
            }
        }
        let lock = lock_dir(&path)?;
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Opens and locks the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        let dir = ContainerDir::open_any(root, id)?;
        if !dir.path.join(STATE_FILE).exists() {
            return Err(RuntimeError::NotExist(id.to_string()).into());
        }
        Ok(dir)
    }

    /// Opens and locks a container directory even without a state.json
    /// (what a crashed create leaves), for `delete --force`.
    pub fn open_any(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match lock_dir(&path) {
            Ok(lock) => lock,
            // why: only a directory that is truly missing is "does not
            // exist"; another user's root (EACCES) must say so, or `delete
            // --force` would report success for a container it never saw.
            Err(_)
                if fs::symlink_metadata(&path)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
            {
                return Err(RuntimeError::NotExist(id.to_string()).into())
            }
            Err(e) => return Err(e),
        };
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Records the container's cgroup before it is made (see [`CGROUP_LINK`]).
    pub fn record_cgroup(&self, cgroup_path: &Path) -> Result<()> {
        let link = self.path.join(CGROUP_LINK);
        std::os::unix::fs::symlink(cgroup_path, &link)
            .with_context(|| format!("create {}", link.display()))
    }

    /// The container goes without the cgroup it recorded (rootless).
    pub fn forget_cgroup(&self) -> Result<()> {
        let link = self.path.join(CGROUP_LINK);
        fs::remove_file(&link).with_context(|| format!("remove {}", link.display()))
    }

    /// Records the init's pid (see [`INIT_LINK`]).
    pub fn record_init(&self, pid: i32, start_time: u64) -> Result<()> {
        let link = self.path.join(INIT_LINK);
        std::os::unix::fs::symlink(format!("{pid}:{start_time}"), &link)
            .with_context(|| format!("create {}", link.display()))
    }

    /// Gives up the lock (and the value): other commands may then act on the
    /// container while the caller waits on it without changing its state.
    pub fn unlock(self) -> PathBuf {
        self.path
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<ContainerState> {
        load_state_file(&self.path.join(STATE_FILE))
    }

    /// state.json without its config (as `list` reads it): enough to tell
    /// which init the directory belongs to.
    pub fn load_listed(&self) -> Option<Listed> {
        read_listed(&Below::path(&self.path), Path::new(STATE_FILE))
    }

    pub fn save(&self, state: &ContainerState) -> Result<()> {
        self.prepare_state(state)?.commit()
    }

    /// state.json written whole beside its place, under a name no reader
    /// looks at: [`PreparedState::commit`] puts it in place. (create writes
    /// it while the init mounts and only renames it once the init is ready.)
    pub fn prepare_state(&self, state: &ContainerState) -> Result<PreparedState> {
        let json = serde_json::to_vec(state)?;
        write_beside(&self.path.join(STATE_FILE), &json)
    }

    /// Removes the directory and everything in it.
    pub fn destroy(self) -> Result<()> {
        fs::remove_dir_all(&self.path)
            .with_context(|| format!("remove state dir {}", self.path.display()))
    }
}

/// The pid and start time [`ContainerDir::record_init`] wrote.
fn read_init_link(dir: &Path) -> Option<(i32, u64)> {
    let target = fs::read_link(dir.join(INIT_LINK)).ok()?;
    let (pid, start_time) = target.to_str()?.split_once(':')?;
    Some((pid.parse().ok()?, start_time.parse().ok()?))
}

/// The state root, made 0700 when it does not exist yet (as runc does):
/// a rootless user's containers are then out of other users' reach, who
/// can neither list, signal nor delete them.
fn create_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if root.is_dir() {
        return Ok(());
    }
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("create state root {}", root.display())),
    }
    // The mode is exact, whatever the caller's umask.
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod state root {}", root.display()))
}

/// why: a blocking flock waits forever on a holder that never lets go;
/// the wait is bounded (the holder is another ozz command at work: the
/// container's own processes never hold it).
fn lock_dir(path: &Path) -> Result<Flock<File>> {
    let mut dir = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((file, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR))
                if std::time::Instant::now() < deadline =>
            {
                dir = file;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
                "{} is locked by another ozz command (waited {} s)",
                path.display(),
                LOCK_WAIT.as_secs()
            ),
            Err((_, e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
        }
    }
}

pub fn load_state_file(path: &Path) -> Result<ContainerState> {
    let data = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
}

/// Write to a temporary file beside `path`, then rename over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_beside(path, data)?.commit()
}

/// `data` in a new file beside `path` (its name with `.tmpPID`), not yet
/// in its place.
fn write_beside(path: &Path, data: &[u8]) -> Result<PreparedState> {
    let written = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file =
        File::create(&written).with_context(|| format!("create {}", written.display()))?;
    file.write_all(data)?;
    Ok(PreparedState {
        written,
        path: path.to_path_buf(),
    })
}

/// A file written whole beside its place (write_beside).
pub struct PreparedState {
    written: PathBuf,
    path: PathBuf,
}

impl PreparedState {
    /// Puts the file in place, whole, in one rename.
    pub fn commit(self) -> Result<()> {
        fs::rename(&self.written, &self.path)
            .with_context(|| format!("rename to {}", self.path.display()))
    }
}

/// Every container under the root with its status, oldest first; a
/// directory without a readable state.json is passed over.
pub fn load_all(root: &Path) -> Vec<(ContainerState, Status)> {
    let mut all = Vec::new();
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if let Ok(state) = load_state_file(&dir.join(STATE_FILE)) {
                let status = state.status(&dir);
                all.push((state, status));
            }
        }
    }
    all.sort_by(|a, b| a.0.created.cmp(&b.0.created));
    all
}

/// The ID of another container under `root` whose state names
/// `cgroup_path`, if any. why: create runs this on every call, so it reads
/// each container's small recovery file (for an old container, only the
/// fields it needs of state.json) and makes no error value for a directory
/// without one (building an anyhow error captures a backtrace when
/// RUST_BACKTRACE is set: ~2.5 ms).
pub fn cgroup_user(root: &Path, cgroup_path: &Path, except_id: &str) -> Option<String> {
    for entry in fs::read_dir(root).ok()?.flatten() {
        let id = entry.file_name();
        if id.to_str() == Some(except_id) {
            continue;
        }
        // The recovery file is small and is there from the start of a
        // create, while state.json only comes once the init is ready.
        let owner = Recovery::find(&entry.path());
        if owner.cgroup_path.as_deref() == Some(cgroup_path) {
            return Some(id.to_string_lossy().into_owned());
        }
    }
    None
}

/// Every container under the root for `list`, oldest first, plus a row
/// for every directory whose state.json is missing or unreadable (a
/// crashed create, a corrupt file), so `list` shows what `delete --force`
/// can remove; those rows carry the ID, the init's pid from the recovery
/// file and little else. One pass, no lock: a container made or removed
/// meanwhile is shown or not, as with runc.
///
/// A root that cannot be read (another user's) is an error, as in runc:
/// an empty list would say that user has no containers.
pub fn list_all(root: &Path) -> Result<Vec<(Listed, Status)>> {
    let entries: Vec<fs::DirEntry> = match fs::read_dir(root) {
        Ok(entries) => entries.flatten().collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("open {}", root.display())),
    };
    let dirs = StatusDirs::opened(root);
    // why: each container costs a few file reads (state, /proc/PID/stat,
    // the freezer state), independent of the others: with many of them the
    // CPUs share the work. (No container is forked here, so threads are
    // allowed.)
    let workers = if entries.len() < 32 {
        1
    } else {
        usable_cpus().min(4)
    };
    let list_one = |entry: &fs::DirEntry| list_one(entry, &dirs);
    let found: Vec<Found> = if workers < 2 {
        entries.iter().map(list_one).collect()
    } else {
        let chunk = entries.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(list_one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut all = Vec::new();
    let mut broken = Vec::new();
    for entry in found {
        match entry {
            Found::State(listed, status) => all.push((listed, status)),
            Found::Broken(listed, status) => broken.push((listed, status)),
            Found::Other => {}
        }
    }
    all.sort_by(|a, b| a.0.created.cmp(&b.0.created));
    all.extend(broken);
    Ok(all)
}

/// The CPUs this process may run on. why: std's available_parallelism also
/// reads the cgroup's CPU quota (/proc/self/cgroup, then two files of the
/// cpu controller): eleven system calls of `list`'s own, for a count that
/// here only caps a few threads.
fn usable_cpus() -> usize {
    use nix::sched::CpuSet;
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_or(1, |set| {
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count()
            .max(1)
    })
}

/// What one entry of the root is, for `list`.
enum Found {
    /// A container and its state.
    State(Listed, Status),
    /// A container whose state.json is missing or broken, as its recovery
    /// file tells.
    Broken(Listed, Status),
    /// Not a container's directory.
    Other,
}

fn list_one(entry: &fs::DirEntry, dirs: &StatusDirs) -> Found {
    let name = PathBuf::from(entry.file_name());
    if let Some(listed) = read_listed(&dirs.root, &name.join(STATE_FILE)) {
        let status = status_of(&listed, &name, dirs);
        return Found::State(listed, status);
    }
    let id = name.to_string_lossy().into_owned();
    if !entry.file_type().is_ok_and(|t| t.is_dir()) || validate_id(&id).is_err() {
        return Found::Other;
    }
    let dir = entry.path();
    let rec = Recovery::find(&dir);
    let status = if !rec.init_alive() {
        Status::Stopped
    } else if !dir.join(STATE_FILE).exists() {
        Status::Creating
    } else if dir.join(EXEC_FIFO).exists() {
        Status::Created
    } else {
        Status::Running
    };
    let listed = Listed {
        id,
        pid: rec.pid,
        pid_start_time: rec.pid_start_time,
        bundle: PathBuf::new(),
        rootfs: PathBuf::new(),
        created: String::new(),
        owner: String::new(),
        annotations: HashMap::new(),
        cgroup_path: rec.cgroup_path.unwrap_or_default(),
        systemd_cgroup: false,
        config: serde::de::IgnoredAny,
        carried_beancounters: BTreeMap::new(),
        rootless: false,
        no_cgroup: false,
        exec_stub: false,
    };
    Found::Broken(listed, status)
}

/// The fields of the state.json at `file` below `dir` that `list` prints.
/// why: most of a state.json is the config, which list does not read: the
/// fields before it are nearly always in the first 4 KB, and when they
/// parse from there that one read is all (the read that would find the
/// end of the file is spared).
fn read_listed(dir: &Below, file: &Path) -> Option<Listed> {
    use std::io::Read;
    let mut state = dir.open(file)?;
    let mut data = vec![0u8; 4096];
    let first = loop {
        match state.read(&mut data) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    };
    data.truncate(first);
    if let Some(listed) = parse_listed(&data) {
        return Some(listed);
    }
    // Cut short of the config, or not a state at all: the whole file decides.
    let rest = read_all(state)?;
    data.extend_from_slice(&rest);
    parse_listed(&data)
}

/// A directory whose files are read by paths from it. For `list`, which
/// reads the same few files of every container, it is held open: a path
/// from an open directory spares the kernel the walk from `/` and the
/// mounts crossed on the way (/proc, /sys/fs/cgroup/freezer), about half
/// the cost of each open.
pub struct Below {
    path: PathBuf,
    fd: Option<std::os::fd::OwnedFd>,
}

impl Below {
    /// Files opened by their whole path, `path` joined to theirs.
    pub fn path(path: impl Into<PathBuf>) -> Below {
        Below {
            path: path.into(),
            fd: None,
        }
    }

    /// `path` held open; if it cannot be, its files are opened by path.
    pub fn opened(path: impl Into<PathBuf>) -> Below {
        use nix::fcntl::OFlag;
        use std::os::fd::{FromRawFd, OwnedFd};
        let path = path.into();
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(&path, flags, nix::sys::stat::Mode::empty())
            .ok()
            // SAFETY: open just returned this descriptor; nothing else owns it.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        Below { path, fd }
    }

    fn open(&self, file: &Path) -> Option<File> {
        use nix::fcntl::OFlag;
        use std::os::fd::{AsRawFd, FromRawFd};
        let Some(dir) = &self.fd else {
            return File::open(self.path.join(file)).ok();
        };
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            file,
            flags,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        Some(unsafe { File::from_raw_fd(fd) })
    }

    /// The start of a file of the kernel's (procfs, cgroupfs) by one read,
    /// which gives all of a short one: the read that would find its end
    /// is spared. Returns the bytes read into `buf`.
    pub fn read_once<'b>(&self, file: &Path, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        use std::io::Read;
        let len = self.open(file)?.read(buf).ok()?;
        Some(&buf[..len])
    }

    fn exists(&self, file: &Path) -> bool {
        use std::os::fd::AsRawFd;
        match &self.fd {
            None => self.path.join(file).exists(),
            Some(dir) => {
                nix::sys::stat::fstatat(Some(dir.as_raw_fd()), file, nix::fcntl::AtFlags::empty())
                    .is_ok()
            }
        }
    }
}

/// The directories the files that tell a container's status are below.
struct StatusDirs {
    /// The state root: each container's directory is named by its ID.
    root: Below,
    proc: Below,
    /// The v1 freezer's directory or the v2 root (cgroups::freezer_file).
    freezer: Below,
}

impl StatusDirs {
    /// For one container: every file opened by its path.
    fn paths(root: &Path) -> StatusDirs {
        StatusDirs {
            root: Below::path(root),
            proc: Below::path("/proc"),
            freezer: Below::path(crate::cgroups::freezer_root()),
        }
    }

    /// For `list`: each directory held open.
    fn opened(root: &Path) -> StatusDirs {
        StatusDirs {
            root: Below::opened(root),
            proc: Below::opened("/proc"),
            freezer: Below::opened(crate::cgroups::freezer_root()),
        }
    }
}

/// A small file's bytes, by open and plain reads (`list` reads several per
/// container). why: `File::read_to_end`, like fs::read, first asks for a
/// size hint, a statx and an lseek per file, which were a quarter of
/// `list`'s system calls.
fn read_all(mut file: File) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Some(data),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The fields of a state.json that `list` prints: parsed up to the config,
/// which is most of the file and which list never needs. Files written
/// before the config was put last have nothing list needs after it.
fn parse_listed(data: &[u8]) -> Option<Listed> {
    use serde::de::value::{MapAccessDeserializer, UnitDeserializer};
    use serde::de::{DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

    // why: the state's own fields, read straight into a Listed (no map of
    // values in between), and a map that ends at the "config" key: its
    // value is given as (), which the Listed's IgnoredAny takes, and the
    // file's rest is never read. serde_json then reports the unread rest
    // as an error, so the fields go out through the slot.
    struct UntilConfig<A> {
        fields: A,
        at_config: bool,
    }
    impl<'de, A: MapAccess<'de>> MapAccess<'de> for UntilConfig<A> {
        type Error = A::Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            if self.at_config {
                return Ok(None);
            }
            let Some(key) = self.fields.next_key::<String>()? else {
                return Ok(None);
            };
            self.at_config = key == "config";
            seed.deserialize(key.into_deserializer()).map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, A::Error> {
            if self.at_config {
                return seed.deserialize(UnitDeserializer::new());
            }
            self.fields.next_value_seed(seed)
        }
    }
    struct ToSlot<'a>(&'a mut Option<Listed>);
    impl<'de> Visitor<'de> for ToSlot<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a state object")
        }
        fn visit_map<A: MapAccess<'de>>(self, fields: A) -> Result<(), A::Error> {
            let until_config = UntilConfig {
                fields,
                at_config: false,
            };
            *self.0 = Listed::deserialize(MapAccessDeserializer::new(until_config)).ok();
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for ToSlot<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    let mut listed = None;
    // why: a reader, not a slice. The stop at "config" makes an error, and
    // an error over a slice finds its line with memchr's memrchr, whose
    // first call in a process probes the CPU's features: about ten CPUID
    // instructions, each a trap to the hypervisor in a VM (5 µs apiece
    // here), in every `run`. A reader counts lines as it goes.
    let _ = ToSlot(&mut listed).deserialize(&mut serde_json::Deserializer::from_reader(data));
    listed
}

/// Every container under the root that is not stopped, oldest first.
pub fn running_containers(root: &Path) -> Vec<ContainerState> {
    load_all(root)
        .into_iter()
        .filter(|(_, status)| *status != Status::Stopped)
        .map(|(state, _)| state)
        .collect()
}

/// The running container a process with these cgroup paths (from its
/// /proc/PID/cgroup) belongs to; the deepest match wins, as a container's
/// cgroup may sit below another's.
pub fn owner_of(root: &Path, cgroup_paths: &[PathBuf]) -> Option<ContainerState> {
    running_containers(root)
        .into_iter()
        .filter(|state| {
            cgroup_paths
                .iter()
                .any(|p| p.starts_with(&state.cgroup_path))
        })
        .max_by_key(|state| state.cgroup_path.components().count())
}

/// Clock ticks per second: the unit of /proc/PID/stat's times and
/// cpuacct.stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// Liveness of a host process as /proc/PID/stat reports it.
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    proc_stat_below(&Below::path("/proc"), pid)
}

fn proc_stat_below(proc: &Below, pid: i32) -> Option<ProcStat> {
    // One read into a buffer that holds any stat line (a 16-byte command
    // name and 52 numbers; we need the first 22 fields), where
    // read_to_string takes six small reads of a file whose size procfs
    // reports as 0; `list` does this per container.
    let mut buf = [0u8; 2048];
    let text = proc.read_once(Path::new(&format!("{pid}/stat")), &mut buf)?;
    let text = std::str::from_utf8(text).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let mut fields = text[text.rfind(')')? + 2..].split(' ');
    Some(ProcStat {
        state: fields.next()?.chars().next()?,
        start_time: fields.nth(18)?.parse().ok()?,
    })
}

/// True while `pid` is still the init we started (not a recycled PID, not
/// a zombie).
fn init_alive(pid: i32, pid_start_time: u64) -> bool {
    init_alive_below(&Below::path("/proc"), pid, pid_start_time)
}

fn init_alive_below(proc: &Below, pid: i32, pid_start_time: u64) -> bool {
    pid > 0
        && proc_stat_below(proc, pid).is_some_and(|stat| {
            stat.start_time == pid_start_time && !matches!(stat.state, 'Z' | 'X')
        })
}

/// The status of the container whose directory is `name` below the root.
fn status_of<C>(state: &StateFile<C>, name: &Path, dirs: &StatusDirs) -> Status {
    if !init_alive_below(&dirs.proc, state.pid, state.pid_start_time) {
        return Status::Stopped;
    }
    // A frozen container is paused whether or not it was started.
    let mut freezer_state = [0u8; 16];
    if dirs
        .freezer
        .read_once(
            &crate::cgroups::freezer_file(&state.cgroup_path),
            &mut freezer_state,
        )
        .is_some_and(crate::cgroups::says_frozen)
    {
        return Status::Paused;
    }
    if dirs.root.exists(&name.join(EXEC_FIFO)) {
        return Status::Created;
    }
    Status::Running
}

impl<C> StateFile<C> {
    /// True while our init (not a recycled PID, not a zombie) exists.
    pub fn init_alive(&self) -> bool {
        init_alive(self.pid, self.pid_start_time)
    }

    /// The status of the container whose directory is `dir`.
    pub fn status(&self, dir: &Path) -> Status {
        let (root, name) = (
            dir.parent().unwrap_or(dir),
            dir.file_name().unwrap_or_default(),
        );
        status_of(self, Path::new(name), &StatusDirs::paths(root))
    }

    /// Refuses what needs the container's cgroup when it has none.
    pub fn require_cgroup(&self, what: &str) -> Result<()> {
        if self.no_cgroup {
            bail!(
                "{what}: container {} runs without a cgroup (rootless, nothing delegated): cgroups not configured for container",
                self.id
            );
        }
        Ok(())
    }

    /// The OCI state object, with runc's extra fields (rootfs, created, owner).
    pub fn oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": crate::SPEC_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_read_from_its_links() {
        let root = std::env::temp_dir().join(format!("ozz-unit-recovery-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = ContainerDir::create(&root, "c").unwrap();
        assert!(Recovery::find(&dir.path).cgroup_path.is_none());
        dir.record_cgroup(Path::new("/ozz-test/c")).unwrap();
        let before = Recovery::find(&dir.path);
        assert_eq!((before.pid, before.pid_start_time), (0, 0));
        assert_eq!(
            before.cgroup_path.as_deref(),
            Some(Path::new("/ozz-test/c"))
        );
        dir.record_init(4242, 987654).unwrap();
        let after = Recovery::find(&dir.path);
        assert_eq!((after.pid, after.pid_start_time), (4242, 987654));
        assert_eq!(after.cgroup_path.as_deref(), Some(Path::new("/ozz-test/c")));
        // A second init is never recorded over the first.
        assert!(dir.record_init(1, 1).is_err());
        dir.forget_cgroup().unwrap();
        assert!(Recovery::find(&dir.path).cgroup_path.is_none());
        assert_eq!(Recovery::find(&dir.path).pid, 4242);
        dir.destroy().unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ids_that_escape_or_confuse_are_refused() {
        for bad in [
            "", ".", "..", "a/b", "../x", "a\nb", "a\u{1b}b", "a b", "x/..",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "web-1", "pod_2.x", "c+d", "0123456789abcdef"] {
            assert!(validate_id(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn list_reads_the_fields_before_the_config_only() {
        let fields = r#""id":"a","pid":7,"pid_start_time":9,"bundle":"/b","rootfs":"/b/r",
            "created":"t","owner":"root","annotations":{"config":"x"},"cgroup_path":"/c""#;
        let now = format!(r#"{{{fields},"rootless":true,"config":{{"ociVersion":"1.0.2"}}}}"#);
        let listed = parse_listed(now.as_bytes()).expect("listed");
        assert_eq!(
            (listed.id.as_str(), listed.pid, listed.rootless),
            ("a", 7, true)
        );
        assert_eq!(listed.annotations["config"], "x");
        // What follows the config is not read, even if it is not JSON.
        let older = format!(r#"{{{fields},"config":{{}},"rootless":true}}"#);
        let listed = parse_listed(older.as_bytes()).expect("listed");
        assert!(!listed.rootless);
        assert!(parse_listed(format!(r#"{{{fields},"config":garbage"#).as_bytes()).is_some());
        // A broken field, or a missing one, is not a state.
        assert!(parse_listed(br#"{"id": garbage"#).is_none());
        assert!(parse_listed(br#"{"id":"a","config":{}}"#).is_none());
    }

    #[test]
    fn read_all_reads_a_file_whole_past_its_buffer() {
        let path = std::env::temp_dir().join(format!("ozz-read-all-{}", std::process::id()));
        let text: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            read_all(File::open(&path).unwrap()).as_deref(),
            Some(&text[..])
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            read_all(File::open(&path).unwrap()).as_deref(),
            Some(&b""[..])
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn list_reads_fields_that_run_past_the_first_read() {
        let dir = std::env::temp_dir().join(format!("ozz-read-listed-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let long = "x".repeat(6000);
        let state = format!(
            r#"{{"id":"a","pid":7,"pid_start_time":9,"bundle":"/b","rootfs":"/r","created":"t","owner":"root","annotations":{{"long":"{long}"}},"cgroup_path":"/c","rootless":true,"config":{{}}}}"#
        );
        fs::write(dir.join(STATE_FILE), &state).unwrap();
        for below in [Below::path(&dir), Below::opened(&dir)] {
            let listed = read_listed(&below, Path::new(STATE_FILE)).expect("listed");
            assert_eq!(listed.annotations["long"], long);
            assert!(listed.rootless);
        }
        // Cut inside the fields: not a state.
        fs::write(dir.join(STATE_FILE), &state[..5000]).unwrap();
        assert!(read_listed(&Below::opened(&dir), Path::new(STATE_FILE)).is_none());
        fs::remove_dir_all(&dir).unwrap();
        assert!(read_listed(&Below::opened(&dir), Path::new(STATE_FILE)).is_none());
    }

    #[test]
    fn proc_stat_reads_our_own_process() {
        let me = proc_stat(std::process::id() as i32).expect("own stat");
        assert!(matches!(me.state, 'R' | 'S'), "{}", me.state);
        assert!(me.start_time > 0);
    }
}
