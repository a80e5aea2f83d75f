//! The container's filesystem view: propagation, the bundle's mounts, /dev,
//! pivot_root, masked and read-only paths. Destinations are resolved inside
//! the rootfs through file descriptors (`in_root`: the kernel's scoped
//! lookup, libpathrs for the rest), so a symlink planted in the image can
//! never send a mount out to the host.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use pathrs::flags::OpenFlags;

mod in_root;
use in_root::InRoot;

/// A mount's options split the way the kernel wants them.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// mount_setattr(AT_RECURSIVE) attributes to set and to clear.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem-specific options, passed as the data string.
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Whether [`finish_mount`] has anything to do for these options.
    fn finishes(&self) -> bool {
        !self.propagation.is_empty() || self.rec_set != 0 || self.rec_clear != 0
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x01;
const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x00;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        rec_set: 0,
        rec_clear: 0,
        data: Vec::new(),
    };
    for opt in options {
        let set = |o: &mut MountOptions, f: MsFlags| o.flags.insert(f);
        let clear = |o: &mut MountOptions, f: MsFlags| o.flags.remove(f);
        match opt.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clear(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clear(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clear(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clear(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clear(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clear(&mut o, MsFlags::MS_MANDLOCK),
            "atime" => clear(&mut o, MsFlags::MS_NOATIME),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "diratime" => clear(&mut o, MsFlags::MS_NODIRATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clear(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clear(&mut o, MsFlags::MS_STRICTATIME),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clear(&mut o, MsFlags::MS_LAZYTIME),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clear(&mut o, MsFlags::MS_SILENT),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clear(&mut o, MsFlags::MS_I_VERSION),
            "bind" => set(&mut o, MsFlags::MS_BIND),
            "rbind" => set(&mut o, MsFlags::MS_BIND | MsFlags::MS_REC),
            "private" => o.propagation.push(MsFlags::MS_PRIVATE),
            "rprivate" => o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => o.propagation.push(MsFlags::MS_SHARED),
            "rshared" => o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => o.propagation.push(MsFlags::MS_SLAVE),
            "rslave" => o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE),
            "runbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "rro" => o.rec_set |= MOUNT_ATTR_RDONLY,
            "rrw" => o.rec_clear |= MOUNT_ATTR_RDONLY,
            "rnosuid" => o.rec_set |= MOUNT_ATTR_NOSUID,
            "rsuid" => o.rec_clear |= MOUNT_ATTR_NOSUID,
            "rnodev" => o.rec_set |= MOUNT_ATTR_NODEV,
            "rdev" => o.rec_clear |= MOUNT_ATTR_NODEV,
            "rnoexec" => o.rec_set |= MOUNT_ATTR_NOEXEC,
            "rexec" => o.rec_clear |= MOUNT_ATTR_NOEXEC,
            "rnodiratime" => o.rec_set |= MOUNT_ATTR_NODIRATIME,
            "rdiratime" => o.rec_clear |= MOUNT_ATTR_NODIRATIME,
            "rrelatime" => {
                o.rec_clear |= MOUNT_ATTR_ATIME_MASK;
                o.rec_set |= MOUNT_ATTR_RELATIME;
            }
            "rnorelatime" => o.rec_clear |= MOUNT_ATTR_ATIME_MASK,
            "rnoatime" => {
                o.rec_clear |= MOUNT_ATTR_ATIME_MASK;
                o.rec_set |= MOUNT_ATTR_NOATIME;
            }
            "ratime" => o.rec_clear |= MOUNT_ATTR_ATIME_MASK,
            "rstrictatime" => {
                o.rec_clear |= MOUNT_ATTR_ATIME_MASK;
                o.rec_set |= MOUNT_ATTR_STRICTATIME;
            }
            "rnostrictatime" => o.rec_clear |= MOUNT_ATTR_ATIME_MASK,
            "rnosymfollow" => o.rec_set |= MOUNT_ATTR_NOSYMFOLLOW,
            "rsymfollow" => o.rec_clear |= MOUNT_ATTR_NOSYMFOLLOW,
            // Options consumed by runc-era tooling that change nothing here
            // (idmap and ridmap are applied by open_bind_sources, see idmap.rs).
            "tmpcopyup" | "idmap" | "ridmap" => {}
            other => o.data.push(other.to_string()),
        }
    }
    o
}

/// The flags the kernel locks on a mount (and which a bind remount must
/// therefore repeat, or it fails with EPERM inside a user namespace).
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            flags.insert(ms);
        }
    }
    flags
}

fn mount_setattr(target: &Path, set: u64, clear: u64) -> Result<()> {
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    crate::mount_api::mount_setattr_at(libc::AT_FDCWD, &path, 0, set, clear)
        .with_context(|| format!("mount_setattr {}", target.display()))
}

/// Prepares the host side of the mount namespace: nothing the container
/// mounts propagates back, and the rootfs becomes a mount of its own.
/// `shares_host_mounts`: the container has no mount namespace of its own;
/// the host's root keeps its propagation and only the rootfs bind is made
/// (so that a read-only root never remounts the host's filesystem), as runc.
pub fn prepare(spec: &Spec, rootfs: &Path, shares_host_mounts: bool) -> Result<()> {
    // why: the cgroup namespace is left out of clone3 (see spawn::fork_child)
    // and created here, the first step after the parent has moved us into
    // the container's cgroup and before any cgroup mount needs it.
    crate::namespaces::unshare_cgroup_if_new(spec)?;
    if shares_host_mounts {
        return bind_rootfs(rootfs);
    }
    let propagation = match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            let parsed = parse_options(&[p.to_string()]);
            match parsed.propagation.as_slice() {
                // why: an unbindable / cannot have the rootfs bound out of
                // it (EINVAL, where runc fails): the namespace starts
                // private and the new root is made unbindable after
                // pivot_root (finish).
                [flag] if flag.contains(MsFlags::MS_UNBINDABLE) => {
                    MsFlags::MS_PRIVATE | (*flag & MsFlags::MS_REC)
                }
                [flag] => *flag,
                _ => bail!("invalid rootfsPropagation {p:?}"),
            }
        }
    };
    // why: applied as asked, like runc's prepareRoot. "rshared" must make
    // the binds of host shared mounts peers of the host's (Kubernetes'
    // Bidirectional propagation); starting from slave made it one-way.
    // This only changes the copies in our new mount namespace; the rootfs
    // bind below sits under a private parent, and the old root is made
    // rslave before it is detached (enter).
    mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
        .context("set propagation of /")?;
    // pivot_root refuses a new root whose parent mount is shared; after a
    // recursive slave or private no mount is (the default: no mountinfo
    // read).
    let none_shared = propagation.contains(MsFlags::MS_REC)
        && propagation.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE);
    if !none_shared {
        make_parent_private(rootfs)?;
    }
    bind_rootfs(rootfs)
}

fn bind_rootfs(rootfs: &Path) -> Result<()> {
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount rootfs {}", rootfs.display()))?;
    Ok(())
}

fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mountinfo = crate::mountinfo::read().unwrap_or_default();
    let mut best: Option<(PathBuf, bool)> = None;
    for mount in crate::mountinfo::mounts(&mountinfo) {
        let mp = mount.mount_point();
        if rootfs.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((mp, mount.is_shared()));
        }
    }
    if let Some((mp, true)) = best {
        mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .with_context(|| format!("make {} private", mp.display()))?;
    }
    Ok(())
}

/// Bind sources opened by the runtime before the child entered its user
/// namespace, by index in config.mounts. The child is a copy of the
/// parent's memory and descriptors, and takes them from here.
static BIND_SOURCES: std::sync::Mutex<Vec<(usize, std::os::fd::OwnedFd)>> =
    std::sync::Mutex::new(Vec::new());

/// Why an idmapped mount could not be prepared, by index in config.mounts:
/// the child reports it when it reaches that mount (naming it), so the
/// failure takes the path of every other mount failure.
static IDMAP_FAILURES: std::sync::Mutex<Vec<(usize, String)>> = std::sync::Mutex::new(Vec::new());

/// Opens (O_PATH) the source of every bind mount, to be called before the
/// container's user namespace exists: its root may not be allowed to reach
/// the source (a 0700 or 000 directory on the way), the runtime is. Sources
/// inside the rootfs are left to the child, since earlier mounts of the
/// config may cover them. A source that cannot be opened here is left to
/// the child too, which reports it. With `all_binds` false only idmapped
/// mounts are prepared.
///
/// Idmapped mounts (`idmap`/`ridmap`) are always prepared here, wherever
/// their source is: the idmapping takes rights over the source's
/// filesystem that only the runtime has (see idmap.rs). `joined_user_ns`:
/// the user namespace the container joins by path, if it does.
pub fn open_bind_sources(
    spec: &Spec,
    rootfs: &Path,
    all_binds: bool,
    joined_user_ns: Option<&Path>,
) {
    let mut opened = Vec::new();
    let mut failures = Vec::new();
    // One user namespace per distinct mapping (None: the container's).
    let mut user_namespaces: Vec<(Option<(String, String)>, std::os::fd::OwnedFd)> = Vec::new();
    let in_user_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let options = parse_options(m.options().as_deref().unwrap_or(&[]));
        let bind = m.typ().as_deref() == Some("bind") || options.is_bind();
        let recursive = options.flags.contains(MsFlags::MS_REC);
        // (A request refused here is refused again, with its words, by
        // mount_one in the child.)
        if let Ok(Some(request)) = crate::idmap::request(m, bind, in_user_ns) {
            if let Err(e) = crate::idmap::check_privileged() {
                failures.push((index, format!("{e:#}")));
                continue;
            }
            let source = m.source().clone().unwrap_or_default();
            let known = user_namespaces.iter().position(|(k, _)| *k == request.maps);
            let at = match known {
                Some(at) => Ok(at),
                None => match &request.maps {
                    Some((uid, gid)) => crate::idmap::user_ns_with_maps(uid, gid),
                    None => crate::idmap::container_user_ns(spec, joined_user_ns),
                }
                .map(|fd| {
                    user_namespaces.push((request.maps.clone(), fd));
                    user_namespaces.len() - 1
                }),
            };
            match at.and_then(|at| {
                let userns = &user_namespaces[at].1;
                crate::idmap::idmapped_tree(&source, recursive, request.recursive, userns)
            }) {
                Ok(tree) => opened.push((index, tree)),
                Err(e) => failures.push((index, format!("{e:#}"))),
            }
            continue;
        }
        if !all_binds {
            continue;
        }
        let Some(source) = m.source().as_deref().filter(|_| bind) else {
            continue;
        };
        // (Resolved: a symlinked way into the rootfs is inside it too; a
        // source that does not exist yet may be made by an earlier mount.)
        let inside = |real: &Path| real.starts_with(rootfs);
        if !std::fs::canonicalize(source).is_ok_and(|real| !inside(&real)) {
            continue;
        }
        let Ok(file) = nix::fcntl::open(
            source,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        // SAFETY: open just returned this descriptor; nothing else owns it.
        let file = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(file) };
        // why: a detached copy of the tree, not the O_PATH fd: mount(2)
        // refuses to bind from a mount of another namespace (EINVAL),
        // move_mount attaches a detached one.
        if let Ok(tree) = crate::mount_api::open_tree_clone(file.as_fd(), recursive) {
            opened.push((index, tree));
        }
    }
    // (The user namespaces close here: the mounts keep their idmapping.)
    drop(user_namespaces);
    *BIND_SOURCES.lock().unwrap_or_else(|e| e.into_inner()) = opened;
    *IDMAP_FAILURES.lock().unwrap_or_else(|e| e.into_inner()) = failures;
}

/// The descriptors of the opened sources, which the child keeps until
/// mount_all has attached them.
pub fn bind_source_fds() -> Vec<std::os::fd::RawFd> {
    BIND_SOURCES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, fd)| fd.as_raw_fd())
        .collect()
}

/// Closes the parent's copies once the child has its own.
pub fn close_bind_sources() {
    drop(take_bind_sources());
}

fn take_idmap_failures() -> Vec<(usize, String)> {
    std::mem::take(&mut *IDMAP_FAILURES.lock().unwrap_or_else(|e| e.into_inner()))
}

fn take_bind_sources() -> Vec<(usize, std::os::fd::OwnedFd)> {
    drop(take_idmap_failures());
    std::mem::take(&mut *BIND_SOURCES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A /dev asked read-only is mounted writable, for the nodes and mounts
/// made under it, and remounted read-only last (runc's order).
pub fn finish_dev(spec: &Spec) -> Result<()> {
    let ro_dev = spec.mounts().iter().flatten().any(|m| {
        clean_path(m.destination()) == Path::new("/dev")
            && parse_options(m.options().as_deref().unwrap_or(&[]))
                .flags
                .contains(MsFlags::MS_RDONLY)
    });
    if ro_dev {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/dev"));
        mount(None::<&str>, "/dev", None::<&str>, flags, None::<&str>)
            .context("remount /dev read-only")?;
    }
    Ok(())
}

/// Everything mounted into the rootfs before pivot_root.
pub struct MountContext<'a> {
    pub rootfs: &'a Path,
    pub cgroup_path: &'a Path,
    pub in_user_ns: bool,
    /// The runtime itself runs in a user namespace (rootless podman runs
    /// it so): as in a container's own, mknod is refused and the flags of
    /// mounts from the host are locked.
    pub runtime_in_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// The mount namespace is a new copy of the runtime's: the cgroup
    /// hierarchies the runtime read before the fork are the ones here.
    pub new_mount_ns: bool,
    /// Returns once the container's cgroup limits are set: no device node
    /// may be made before the device rules are complete.
    pub await_limits: &'a dyn Fn() -> Result<()>,
}

pub fn mount_all(spec: &Spec, ctx: &MountContext) -> Result<()> {
    let open_root = || {
        InRoot::open(ctx.rootfs).with_context(|| format!("open rootfs {}", ctx.rootfs.display()))
    };
    let mut root = open_root()?;
    let mounts = spec.mounts().clone().unwrap_or_default();
    let idmap_failures = take_idmap_failures();
    let mut sources = take_bind_sources();
    for (index, m) in mounts.iter().enumerate() {
        let opened = sources
            .iter()
            .position(|(i, _)| *i == index)
            .map(|at| sources.swap_remove(at).1);
        let idmap_failure = idmap_failures
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, why)| why.as_str());
        mount_one(&root, m, opened.as_ref(), idmap_failure, ctx).with_context(|| {
            format!(
                "mount {:?} on {:?}",
                m.source().as_deref().unwrap_or(Path::new("")),
                m.destination()
            )
        })?;
        crate::trace::mark_fmt!("child: mount {}", m.destination().display());
        // why: a mount on / replaces the rootfs; later mounts (and
        // pivot_root, which goes by path) must land on the new one.
        if clean_path(m.destination()) == Path::new("/") {
            root = open_root()?;
        }
    }
    (ctx.await_limits)()?;
    crate::trace::mark("child: cgroup limits awaited");
    let dev_is_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || parse_options(m.options().as_deref().unwrap_or(&[])).is_bind())
    });
    if !dev_is_bind {
        // /dev is resolved once; its nodes and links are made in it by name
        // (nothing of the container runs yet to race us).
        let dev = root
            .mkdir_all("/dev", &perm(0o755))
            .context("create mount point /dev")?;
        let dev = dev.as_fd().as_raw_fd();
        create_default_devices(&root, dev, ctx.in_user_ns || ctx.runtime_in_user_ns)?;
        create_dev_symlinks(dev)?;
    }
    crate::trace::mark("child: default devices");
    for device in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        create_device(&root, &device, ctx.in_user_ns || ctx.runtime_in_user_ns)
            .with_context(|| format!("create device {}", device.path().display()))?;
    }
    Ok(())
}

fn perm(bits: u32) -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(bits)
}

/// The /proc/self/fd path of a handle: mount(2) follows it to the very
/// inode we resolved, not to whatever the path names by then.
fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// `opened`: the source's detached tree the runtime prepared (an idmapped
/// one for idmap/ridmap); `idmap_failure`: why the runtime could not.
fn mount_one(
    root: &InRoot,
    m: &Mount,
    opened: Option<&std::os::fd::OwnedFd>,
    idmap_failure: Option<&str>,
    ctx: &MountContext,
) -> Result<()> {
    let mut options = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().clone().unwrap_or_default();
    let is_bind = options.is_bind() || typ == "bind";
    let dest = &resolve_in_root(root, m.destination());
    let source = m.source().clone().unwrap_or_default();

    // why: a bind without the idmapping asked for would show every file
    // with the wrong owner; only the runtime's prepared tree carries it.
    if crate::idmap::request(m, is_bind, ctx.in_user_ns)?.is_some() && opened.is_none() {
        bail!(
            "{}",
            idmap_failure.unwrap_or("the idmapped mount was not prepared by the runtime")
        );
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, dest, &options, ctx);
    }
    check_proc_mount(m.destination(), &typ, is_bind, &source)?;
    check_proc_mount(dest, &typ, is_bind, &source)?;
    // why: a /proc that is a symlink in the image would leave the
    // container's /proc wherever the image points it (or nowhere).
    if typ == "proc" && *dest != clean_path(m.destination()) {
        bail!(
            "{} is a symlink in the rootfs: refusing to mount proc through it",
            m.destination().display()
        );
    }

    // A file bind-mounted needs a file to land on; everything else a directory.
    let source_is_file = is_bind
        && match opened {
            Some(fd) => nix::sys::stat::fstat(fd.as_raw_fd())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR),
            None => std::fs::metadata(&source)
                .map(|s| !s.is_dir())
                .unwrap_or(false),
        };
    // why: runc's behaviour: a tmpfs without mode= keeps the mode of the
    // directory of the image it covers (the kernel would give 1777); one
    // created here for it gets the kernel's.
    let keeps_image_mode =
        typ == "tmpfs" && !options.data.iter().any(|d| d.starts_with("mode=")) && root.exists(dest);
    let target = mount_point(root, dest, source_is_file)?;
    let target_path = fd_path(&target);
    // The same check on where the destination really is, symlinks resolved.
    if let Ok(real) = std::fs::read_link(&target_path) {
        if let Ok(rel) = real.strip_prefix(ctx.rootfs) {
            check_proc_mount(&Path::new("/").join(rel), &typ, is_bind, &source)?;
        }
    }

    if is_bind {
        let bind_flags = MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC);
        match opened {
            // A copy of the source the runtime made before entering the
            // user namespace.
            Some(tree) => crate::mount_api::move_mount_to_fd(tree.as_fd(), target.as_fd()),
            None => mount(
                Some(&source),
                &target_path,
                None::<&str>,
                bind_flags,
                None::<&str>,
            )
            .map_err(Into::into),
        }
        .with_context(|| format!("bind {}", source.display()))?;
        // Re-resolve: the mount now covers the old target inode.
        let target = root.resolve(dest)?;
        let target_path = fd_path(&target);
        let extra = options.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        // why: a bind starts with the source mount's flags. Outside a user
        // namespace those not asked for are cleared (a read-only or noexec
        // source does not make the container's mount so); inside one the
        // kernel locks them, and the remount must repeat them.
        let inherited = locked_flags(&target_path) & CLEARABLE;
        let locked = ctx.in_user_ns || ctx.runtime_in_user_ns;
        let clear_inherited = !locked && !(inherited - extra).is_empty();
        if !extra.is_empty() || clear_inherited {
            let keep = if locked {
                locked_flags(&target_path)
            } else {
                locked_flags(&target_path) - CLEARABLE
            };
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep;
            mount(
                None::<&str>,
                &target_path,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .context("remount bind with options")?;
        }
        return finish_mount(&target_path, &options);
    }

    if keeps_image_mode {
        if let Ok(st) = nix::sys::stat::fstat(target.as_fd().as_raw_fd()) {
            options.data.push(format!("mode={:o}", st.st_mode & 0o7777));
        }
    }
    // why: devices and devpts are made under /dev after this mount; a
    // read-only /dev is remounted so at the end (finish_dev), as runc.
    if clean_path(dest) == Path::new("/dev") {
        options.flags.remove(MsFlags::MS_RDONLY);
    }
    let data = options.data.join(",");
    let result = mount(
        Some(&source),
        &target_path,
        Some(typ.as_str()),
        options.flags,
        if data.is_empty() {
            None
        } else {
            Some(data.as_str())
        },
    );
    match result {
        Ok(()) => {}
        // sysfs cannot be mounted in a user namespace without its own network
        // namespace (runc fails there): bind the host's instead, and make
        // every mount of it read-only with the flags asked. why: the bind
        // alone kept the host's flags, a writable /sys with the host's
        // cgroup trees under it.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
            mount(
                Some("/sys"),
                &target_path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context("bind /sys")?;
            let target = root.resolve(dest)?;
            let mut set = MOUNT_ATTR_RDONLY;
            for (ms, attr) in [
                (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
                (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
                (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            ] {
                if options.flags.contains(ms) {
                    set |= attr;
                }
            }
            mount_setattr(&fd_path(&target), set, 0).context("make the /sys bind read-only")?;
        }
        Err(e) => return Err(e).with_context(|| format!("mount type {typ:?}")),
    }
    if !options.finishes() {
        return Ok(());
    }
    let target = root.resolve(dest)?;
    finish_mount(&fd_path(&target), &options)
}

/// Flags a bind takes from its source that the config must ask for.
const CLEARABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME);

/// `path` made absolute and lexically clean ("." and ".." removed).
fn clean_path(path: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    clean
}

/// The destination with every symlink on the way followed inside the
/// rootfs, dangling ones included (`/etc/x -> ../foo/not/here` gives
/// `/foo/not/here`, created later), as runc does. The links are read
/// through the rootfs handle, so none can lead out of it.
fn resolve_in_root(root: &InRoot, dest: &Path) -> PathBuf {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let clean = clean_path(dest);
    // The usual cases, a path of plain directories or a mount point still
    // to be made under them: nothing to follow.
    if root.has_no_symlinks(&clean) {
        return clean;
    }
    let mut todo: VecDeque<OsString> = clean
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        if c == "." {
            continue;
        }
        let next = done.join(&c);
        match root.symlink_target(&next) {
            Some(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                for part in target.components().rev() {
                    match part {
                        std::path::Component::Normal(n) => todo.push_front(n.to_owned()),
                        std::path::Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done = next,
        }
    }
    done
}

/// why: a mount over /proc or inside it can hide what the kernel's procfs
/// enforces (CVE-2019-16884, CVE-2019-19921). Like runc's checkProcMount:
/// /proc itself only takes procfs, and inside it only the files lxcfs
/// emulates may be covered.
fn check_proc_mount(dest: &Path, typ: &str, is_bind: bool, source: &Path) -> Result<()> {
    const ALLOWED: [&str; 10] = [
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    ];
    // Lexical: "/proc/./x" and "/a/../proc/x" are /proc/x too.
    let mut clean = PathBuf::from("/");
    for c in dest.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    let Ok(rel) = clean.strip_prefix("/proc") else {
        return Ok(());
    };
    if rel.as_os_str().is_empty() {
        let source_is_proc = || {
            nix::sys::statfs::statfs(source)
                .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        };
        if typ == "proc" || (is_bind && source_is_proc()) {
            return Ok(());
        }
        bail!(
            "{} cannot be mounted because it is not of type proc",
            dest.display()
        );
    }
    if ALLOWED.iter().any(|a| clean == Path::new(a)) {
        return Ok(());
    }
    bail!(
        "{} cannot be mounted because it is inside /proc",
        dest.display()
    );
}

fn finish_mount(target: &Path, options: &MountOptions) -> Result<()> {
    for flag in &options.propagation {
        mount(None::<&str>, target, None::<&str>, *flag, None::<&str>)
            .with_context(|| format!("set propagation {flag:?}"))?;
    }
    if options.rec_set != 0 || options.rec_clear != 0 {
        mount_setattr(target, options.rec_set, options.rec_clear)?;
    }
    Ok(())
}

/// Restore: the mount points of the bundle's bind mounts, made in the
/// rootfs where missing (a file for a file source, else a directory), as
/// `create` makes them. CRIU mounts each bind on its point and fails where
/// there is none, as in a rootfs new to the checkpoint: a bundle copied to
/// another host before the container ever ran there (a migration), or the
/// fresh rootfs of `podman container restore --import`, where
/// `/run/.containerenv` and `/etc/hosts` were never made. Binds under a
/// tmpfs of the bundle are skipped: CRIU restores that tmpfs with what it
/// held, the points included.
pub fn create_bind_points(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<()> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| clean_path(m.destination()))
        .collect();
    let root = InRoot::open(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    for m in &mounts {
        let options = parse_options(m.options().as_deref().unwrap_or(&[]));
        if !(options.is_bind() || m.typ().as_deref() == Some("bind")) {
            continue;
        }
        let clean = clean_path(m.destination());
        if tmpfs.iter().any(|t| clean != *t && clean.starts_with(t)) {
            continue;
        }
        let dest = resolve_in_root(&root, m.destination());
        if root.exists(&dest) {
            continue;
        }
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_absolute() {
            source
        } else {
            bundle.join(source)
        };
        mount_point(
            &root,
            &dest,
            std::fs::metadata(&source).is_ok_and(|s| !s.is_dir()),
        )?;
    }
    Ok(())
}

/// The mount point at `dest`, made where missing: a file for a file
/// bind-mounted, a directory for everything else.
fn mount_point(root: &InRoot, dest: &Path, source_is_file: bool) -> Result<pathrs::Handle> {
    if source_is_file {
        ensure_file(root, dest)
    } else {
        root.mkdir_all(dest, &perm(0o755))
            .with_context(|| format!("create mount point {}", dest.display()))
    }
}

fn ensure_file(root: &InRoot, dest: &Path) -> Result<pathrs::Handle> {
    if let Ok(handle) = root.resolve(dest) {
        return Ok(handle);
    }
    if let Some(parent) = dest.parent() {
        root.mkdir_all(parent, &perm(0o755))?;
    }
    root.create_file(dest, OpenFlags::O_CREAT | OpenFlags::O_WRONLY, &perm(0o644))
        .with_context(|| format!("create mount point file {}", dest.display()))?;
    Ok(root.resolve(dest)?)
}

/// cgroup mounts: cgroup2 itself on a v2 host with a private cgroup
/// namespace; otherwise a tmpfs with the container's own directory of each
/// v1 hierarchy bound into it, as runc presents v1 to a container.
fn mount_cgroup(
    root: &InRoot,
    dest: &Path,
    options: &MountOptions,
    ctx: &MountContext,
) -> Result<()> {
    let perm = perm(0o755);
    let target = root.mkdir_all(dest, &perm)?;
    let readonly = options.flags.contains(MsFlags::MS_RDONLY);
    let base = options.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if crate::cgroups::is_v2() {
        if ctx.new_cgroup_ns {
            mount(
                Some("cgroup2"),
                &fd_path(&target),
                Some("cgroup2"),
                base | (options.flags & MsFlags::MS_RDONLY),
                None::<&str>,
            )
            .context("mount cgroup2")?;
        } else {
            let host = crate::cgroups::controller_dir("", ctx.cgroup_path);
            bind_with_flags(
                root,
                &host,
                dest,
                options.flags & (base | MsFlags::MS_RDONLY),
            )?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .context("mount tmpfs for cgroup v1")?;
    // The tmpfs is ours alone and brand new: its directories are made and
    // bound through its root's descriptor, without resolving a path of the
    // image (no symlink can be in it). Each hierarchy is a detached bind
    // (open_tree) given its flags (mount_setattr) before it is attached:
    // three system calls where bind + remount by path took two resolves
    // and two mounts (about half the time with 11 hierarchies).
    let tmpfs = root.resolve(dest)?;
    let attrs = mount_attrs(options.flags & (base | MsFlags::MS_RDONLY));
    let hierarchies = if ctx.new_mount_ns {
        crate::cgroups::V1Hierarchies::read()
    } else {
        crate::cgroups::V1Hierarchies::read_mountinfo()
    };
    for mount_point in hierarchies.map(|h| h.all_v1).unwrap_or_default() {
        let Some(name) = mount_point.file_name().map(|n| n.to_os_string()) else {
            continue;
        };
        let host = mount_point.join(ctx.cgroup_path.strip_prefix("/").unwrap_or(ctx.cgroup_path));
        bind_cgroup_v1(&tmpfs, &name, &host, attrs)
            .with_context(|| format!("bind cgroup {}", host.display()))?;
    }
    if readonly {
        let target = root.resolve(dest)?;
        let p = fd_path(&target);
        mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
            Some("mode=755"),
        )
        .context("remount cgroup tmpfs read-only")?;
    }
    Ok(())
}

/// One v1 hierarchy's directory of the container, bound at `name` in the
/// cgroup tmpfs with mount attributes `attrs`. A hierarchy without the
/// directory (a controller the cgroup is not in) is left out.
fn bind_cgroup_v1(
    tmpfs: &impl AsFd,
    name: &std::ffi::OsStr,
    host: &Path,
    attrs: u64,
) -> Result<()> {
    use nix::fcntl::{openat, OFlag};
    use std::os::fd::{FromRawFd, OwnedFd};
    let open_dir = |dir: libc::c_int, path: &Path| -> nix::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(Some(dir), path, flags, Mode::empty())?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let source = match open_dir(libc::AT_FDCWD, host) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).context("open"),
    };
    let tmpfs = tmpfs.as_fd().as_raw_fd();
    match nix::sys::stat::mkdirat(Some(tmpfs), name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).context("mkdir"),
    }
    let target = open_dir(tmpfs, Path::new(name)).context("open mount point")?;
    let tree = crate::mount_api::open_tree_clone(source.as_fd(), false)?;
    if attrs != 0 {
        crate::mount_api::mount_setattr_fd(tree.as_fd(), attrs, 0)?;
    }
    crate::mount_api::move_mount_to_fd(tree.as_fd(), target.as_fd())
}

/// The mount_setattr(2) attributes of these mount flags.
fn mount_attrs(flags: MsFlags) -> u64 {
    [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .fold(0, |attrs, (_, attr)| attrs | attr)
}

/// Binds `source` onto `dest` in the rootfs with `flags` (ro, nosuid, …).
/// The remount goes through a fresh handle: the old one names the
/// directory the bind now covers, not the new mount.
fn bind_with_flags(root: &InRoot, source: &Path, dest: &Path, flags: MsFlags) -> Result<()> {
    let target = root.resolve(dest)?;
    mount(
        Some(source),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    if !flags.is_empty() {
        let covered = root.resolve(dest)?;
        let target = fd_path(&covered);
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&target);
        mount(None::<&str>, &target, None::<&str>, flags, None::<&str>)?;
    }
    Ok(())
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// `dev`: the container's /dev, opened. In a user namespace the nodes are
/// the host's, bound (make_node); else made by name in `dev`.
fn create_default_devices(root: &InRoot, dev: RawFd, in_user_ns: bool) -> Result<()> {
    if !in_user_ns {
        // The umask is cleared so mknod gives the mode exactly: no chmod
        // through procfs after each node.
        return crate::state::with_umask_cleared(|| {
            DEFAULT_DEVICES.iter().try_for_each(|(path, major, minor)| {
                let name = Path::new(path).file_name().unwrap_or_default();
                unlink_file_if_any(dev, name);
                nix::sys::stat::mknodat(
                    Some(dev),
                    name,
                    SFlag::S_IFCHR,
                    Mode::from_bits_truncate(0o666),
                    makedev(*major, *minor),
                )
                .with_context(|| format!("create {path}: mknod {path}"))
            })
        });
    }
    for (path, major, minor) in DEFAULT_DEVICES {
        make_node(
            root,
            Path::new(path),
            SFlag::S_IFCHR,
            major,
            minor,
            0o666,
            None,
            in_user_ns,
        )
        .with_context(|| format!("create {path}"))?;
    }
    Ok(())
}

/// Removes the non-directory `name` in `dir`, if there is one.
fn unlink_file_if_any(dir: RawFd, name: &std::ffi::OsStr) {
    let _ = nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
}

/// The /dev links, made by name in `dev` (the container's /dev, opened).
fn create_dev_symlinks(dev: RawFd) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        let name = Path::new(link).file_name().unwrap_or_default();
        if link == "/dev/ptmx" {
            // A devpts mount provides pts/ptmx; replace any node the image has.
            unlink_file_if_any(dev, name);
        }
        match nix::unistd::symlinkat(target, Some(dev), name) {
            Ok(()) => {}
            Err(e)
                if nix::sys::stat::fstatat(
                    Some(dev),
                    name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok() =>
            {
                crate::log::debug(&format!("{link} exists: {e}"));
            }
            Err(e) => return Err(e).with_context(|| format!("symlink {link}")),
        }
    }
    Ok(())
}

fn create_device(root: &InRoot, device: &LinuxDevice, in_user_ns: bool) -> Result<()> {
    let kind = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => bail!("device type \"a\" is only valid in cgroup rules"),
    };
    let owner = Some((device.uid().unwrap_or(0), device.gid().unwrap_or(0)));
    // "/dev/fuse/" names /dev/fuse, as in runc.
    make_node(
        root,
        &clean_path(device.path()),
        kind,
        device.major() as u64,
        device.minor() as u64,
        device.file_mode().unwrap_or(0o666),
        owner,
        in_user_ns,
    )
}

#[allow(clippy::too_many_arguments)]
fn make_node(
    root: &InRoot,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    owner: Option<(u32, u32)>,
    in_user_ns: bool,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        root.mkdir_all(parent, &perm(0o755))?;
    }
    root.remove_file_if_any(path);
    if in_user_ns {
        // mknod is refused in a user namespace: bind the host's node instead.
        root.create_file(path, OpenFlags::O_CREAT | OpenFlags::O_WRONLY, &perm(0o644))?;
        let target = root.resolve(path)?;
        mount(
            Some(path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind host device {}", path.display()))?;
        return Ok(());
    }
    let dir = root.resolve(path.parent().unwrap_or(Path::new("/")))?;
    let name = path.file_name().context("device path has no name")?;
    let dev = makedev(major, minor);
    nix::sys::stat::mknodat(
        Some(dir.as_fd().as_raw_fd()),
        name,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    )
    .with_context(|| format!("mknod {}", path.display()))?;
    let node = root.resolve_nofollow(path)?;
    // mknod is subject to the umask: set the mode exactly as asked.
    let node_path = fd_path(&node);
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(&node_path, Some(uid.into()), Some(gid.into()))?;
    }
    std::fs::set_permissions(
        &node_path,
        std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777),
    )?;
    Ok(())
}

/// Makes `rootfs` the root: pivot_root, or chroot with --no-pivot. In the
/// host's mount namespace only chroot: pivot_root and MS_MOVE there would
/// change every host process's root.
pub fn enter(rootfs: &Path, no_pivot: bool, shares_host_mounts: bool) -> Result<()> {
    if shares_host_mounts {
        nix::unistd::chdir(rootfs)?;
        nix::unistd::chroot(".").context("chroot")?;
        nix::unistd::chdir("/")?;
        return Ok(());
    }
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        nix::unistd::chdir(rootfs)?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .context("move rootfs to /")?;
        nix::unistd::chroot(".").context("chroot")?;
        nix::unistd::chdir("/")?;
        return Ok(());
    }
    let old_root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let new_root = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    nix::unistd::fchdir(new_root)?;
    // Stack the old root under the new one, then detach it from there.
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    nix::unistd::fchdir(old_root)?;
    // The old root must not propagate the unmount to the host.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    nix::unistd::chdir("/")?;
    let _ = nix::unistd::close(old_root);
    let _ = nix::unistd::close(new_root);
    Ok(())
}

/// --no-pivot keeps the host's mounts under the container's root in its
/// mount namespace; a full procfs or sysfs there is what lets the kernel
/// allow the container a fresh, unmasked one. Detach them (cover with an
/// empty tmpfs where that is refused), as runc does before its MS_MOVE.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let mountinfo = crate::mountinfo::read().context("read mountinfo")?;
    let mut targets = Vec::new();
    for mount in crate::mountinfo::mounts(&mountinfo) {
        let mp = mount.mount_point();
        if mount.root == "/" && matches!(mount.fs_type, "proc" | "sysfs") && !mp.starts_with(rootfs)
        {
            targets.push(mp);
        }
    }
    for mp in targets {
        // The unmount must not propagate to the host.
        match mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            // Gone with a parent detached before it.
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("make {} slave", mp.display())),
        }
        match umount2(&mp, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &mp,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .with_context(|| format!("cover {}", mp.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("detach {}", mp.display())),
        }
    }
    Ok(())
}

/// After pivot_root: the spec's masked and read-only paths, read-only root
/// and the final root propagation.
pub fn finish(spec: &Spec, procview: Vec<(&'static str, std::os::fd::OwnedFd)>) -> Result<()> {
    // why: sysctls are written through /proc/sys, which readonlyPaths is
    // about to make read-only (runc's order: sysctl, then the paths).
    write_sysctls(spec)?;
    // Before the masks: a masked /proc file stays masked.
    if !procview.is_empty() {
        bind_procview(procview)?;
    }
    let linux = spec.linux().as_ref();
    let masked = linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    let null = match masked.is_empty() {
        true => None,
        false => Some(open_dev_null()?),
    };
    for (path, null) in masked.iter().zip(null.iter().cycle()) {
        mask_path(Path::new(path), null).with_context(|| format!("mask {path}"))?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly_path(Path::new(&path)).with_context(|| format!("make {path} read-only"))?;
    }
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| p.contains("shared") || p.contains("unbindable"))
    {
        let parsed = parse_options(&[p.to_string()]);
        for flag in parsed.propagation {
            mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
                .context("set root propagation")?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/"));
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context("remount root read-only")?;
    }
    Ok(())
}

/// Attaches the procview's files (detached read-only mounts) over the
/// container's /proc files of the same name. /proc/user_beancounters
/// cannot be made (procfs has no such entry and takes no new files): that
/// one goes to /dev/user_beancounters when /dev is a tmpfs ours.
fn bind_procview(files: Vec<(&'static str, std::os::fd::OwnedFd)>) -> Result<()> {
    use crate::mount_api as api;
    for (name, tree) in files {
        let target = if name == "user_beancounters" {
            match procview_dev_file(name)? {
                Some(fd) => fd,
                None => continue,
            }
        } else {
            let path = Path::new("/proc").join(name);
            // Only over a procfs file: the container's /proc may be
            // something else, or missing.
            let fd = match open_path(&path, false) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
            };
            let fs = nix::sys::statfs::fstatfs(&fd)
                .with_context(|| format!("statfs {}", path.display()))?;
            if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
                continue;
            }
            fd
        };
        api::move_mount_to_fd(tree.as_fd(), target.as_fd())
            .with_context(|| format!("bind the procview's {name}"))?;
    }
    Ok(())
}

/// An empty read-only file /dev/NAME to mount on, when /dev is a tmpfs
/// (the runtime's own, never a bind of the host's /dev).
fn procview_dev_file(name: &str) -> Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    let Ok(dev) = open_path(Path::new("/dev"), false) else {
        return Ok(None);
    };
    let fs = nix::sys::statfs::fstatfs(&dev).context("statfs /dev")?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Ok(None);
    }
    let flags = nix::fcntl::OFlag::O_CREAT
        | nix::fcntl::OFlag::O_EXCL
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_RDONLY
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        Some(dev.as_raw_fd()),
        name,
        flags,
        Mode::from_bits_truncate(0o444),
    )
    .with_context(|| format!("create /dev/{name}"))?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
}

/// Opens `path` (inside the new root, so absolute symlinks and `..` stay
/// in it) once, as O_PATH: what is checked and what is mounted on is this
/// inode, never the path looked up again, which a party that can change a
/// bind-mounted directory of the image could swap in between.
fn open_path(path: &Path, follow: bool) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
    if !follow {
        flags |= nix::fcntl::OFlag::O_NOFOLLOW;
    }
    let fd = nix::fcntl::open(path, flags, Mode::empty())?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// /dev/null is what masks files: open it once, without following a
/// symlink, and make sure that inode is the null device (the image, or
/// whoever can change a bind-mounted /dev, could make it a symlink to
/// /proc/sys/kernel/core_pattern or a file with data). Masks are bound
/// from this descriptor (CVE-2025-31133).
fn open_dev_null() -> Result<std::os::fd::OwnedFd> {
    const NOT_NULL: &str =
        "/dev/null is not the null device (char 1:3); refusing to mask paths with it";
    let fd = match open_path(Path::new("/dev/null"), false) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
            bail!(NOT_NULL)
        }
        Err(e) => return Err(e).context("open /dev/null"),
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("stat /dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(1, 3) {
        bail!(NOT_NULL);
    }
    Ok(fd)
}

/// Covers a file with a bind of the verified /dev/null, a directory with an
/// empty read-only tmpfs, each mounted on the descriptor of the target.
fn mask_path(path: &Path, null: &std::os::fd::OwnedFd) -> Result<()> {
    use crate::mount_api::{self as api, MOUNT_ATTR_RDONLY};
    let target = match open_path(path, true) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = nix::sys::stat::fstat(target.as_raw_fd())?;
    let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let ctx = api::fsopen(c"tmpfs")?;
        api::fsconfig_create(ctx.as_fd())?;
        api::fsmount(ctx.as_fd(), MOUNT_ATTR_RDONLY as libc::c_uint)?
    } else {
        api::open_tree_clone(null.as_fd(), false)?
    };
    api::move_mount_to_fd(tree.as_fd(), target.as_fd())
}

/// A recursive read-only bind of the target onto itself, made detached from
/// its descriptor and attached back onto that same descriptor.
fn readonly_path(path: &Path) -> Result<()> {
    use crate::mount_api::{self as api, MOUNT_ATTR_RDONLY};
    let target = match open_path(path, true) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let tree = api::open_tree_clone(target.as_fd(), true)?;
    api::mount_setattr_fd(tree.as_fd(), MOUNT_ATTR_RDONLY, 0)?;
    api::move_mount_to_fd(tree.as_fd(), target.as_fd())
}

/// Writes linux.sysctl through a procfs we know is one, never through
/// paths of the image: when the container's /proc is not procfs (proc
/// mounted elsewhere, or not at all), `/proc/sys/kernel/domainname` could
/// be the image's symlink to another sysctl (issue 14, escape 3).
fn write_sysctls(spec: &Spec) -> Result<()> {
    let sysctl = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = open_procfs()?;
    for (key, value) in sysctl {
        let rel = format!("sys/{}", key.replace('.', "/"));
        let file = openat2_beneath(proc.as_fd(), &rel)
            .with_context(|| format!("write sysctl {key}: open /proc/{rel}"))?;
        nix::unistd::write(&file, value.as_bytes())
            .with_context(|| format!("write sysctl {key}"))?;
    }
    Ok(())
}

/// A procfs of our own (a detached fsmount, in our pid namespace), or the
/// container's /proc when that is refused, checked by fstatfs to be procfs.
fn open_procfs() -> Result<std::os::fd::OwnedFd> {
    use crate::mount_api as api;
    let detached = api::fsopen(c"proc").and_then(|ctx| {
        api::fsconfig_create(ctx.as_fd())?;
        api::fsmount(ctx.as_fd(), 0)
    });
    let fd = match detached {
        Ok(fd) => fd,
        // (No log line: past pivot_root the log's path is the container's.)
        Err(_) => {
            use std::os::fd::FromRawFd;
            let flags = nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC;
            let fd = nix::fcntl::open("/proc", flags, Mode::empty()).context("open /proc")?;
            // SAFETY: open just returned this descriptor; nothing else owns it.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
        }
    };
    let fs = nix::sys::statfs::fstatfs(&fd).context("statfs /proc")?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        bail!("/proc is not procfs: refusing to write sysctls through it");
    }
    Ok(fd)
}

/// openat2(O_WRONLY) of `rel` beneath `dir`, following no symlink and
/// crossing no mount.
fn openat2_beneath(dir: std::os::fd::BorrowedFd<'_>, rel: &str) -> Result<std::os::fd::OwnedFd> {
    use in_root::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV};
    Ok(in_root::openat2(
        dir,
        std::ffi::OsStr::new(rel),
        libc::O_WRONLY,
        RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_propagation_and_data_are_split() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "nodev",
            "mode=755",
            "size=65536k",
            "rslave",
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_override_earlier() {
        assert_eq!(opts(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(
            opts(&["rbind", "ro"]).flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert!(opts(&["bind"]).is_bind());
    }

    #[test]
    fn paths_are_cleaned_lexically() {
        assert_eq!(clean_path(Path::new("/dev/fuse/")), Path::new("/dev/fuse"));
        assert_eq!(clean_path(Path::new("proc/./x/..")), Path::new("/proc"));
        assert_eq!(clean_path(Path::new("/../..")), Path::new("/"));
    }

    #[test]
    fn recursive_attributes_go_to_mount_setattr() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clear, MOUNT_ATTR_ATIME_MASK);
        assert!(o.data.is_empty());
    }
}
