//! Protection of the runtime binary against CVE-2019-5736.
//!
//! # The attack
//!
//! While `ozz create`/`run`/`exec` sets up a container, the runtime process
//! (or a child of it) joins the container's PID namespace. A malicious
//! container process that can ptrace it (same uid, `CAP_SYS_PTRACE`) can then
//! open `/proc/<runtime pid>/exe`. That magic link resolves to the *host*
//! file the runtime runs from, so opening it `O_WRONLY` once the runtime has
//! exited (or racing `ETXTBSY`) lets the container overwrite the host's `ozz`
//! binary, and the next `ozz` invocation runs attacker code as host root.
//!
//! # The defence
//!
//! Before doing anything that lets a container see us, the commands that enter
//! a container call [`reexec_sealed_if_needed`] (`exec`) or
//! [`protect_container_process`] (`create`, `run`: where the exec stub of
//! `exec_stub.rs` can stand in, it does, at a fraction of the cost), which
//! re-executes the same argv and environment from a view of the binary
//! that cannot be written through `/proc/<pid>/exe` at all:
//!
//! 1. **Read-only overlayfs (preferred, near zero cost).** With the new mount
//!    API (`fsopen`/`fsconfig`/`fsmount`) we build an overlayfs whose only
//!    layers are lower layers: the directory holding the binary on top and a
//!    filler directory below (overlayfs wants at least two lower layers when
//!    it has no upper layer). The mount is *detached*: it is never attached
//!    to any path, so nothing is left on the host and nothing needs cleaning
//!    up; it lives exactly as long as a file opened through it. We open the
//!    binary through that mount fd and `execveat(fd, "", AT_EMPTY_PATH)` it.
//!    Our `/proc/self/exe` then points into an overlayfs without upper layer,
//!    whose superblock is read-only: any write-open fails with `EROFS`, and
//!    there is no way to "unwrap" it back to the host file (unlike a read-only
//!    bind mount, which can be remounted). The filler is a detached empty tmpfs
//!    where the kernel accepts one as an overlay layer (recent kernels), else
//!    an existing host directory disjoint from the binary's (`/run`, `/tmp`,
//!    ...), which overlayfs only reads.
//! 2. **Sealed memfd copy (fallback)** when overlayfs or the new mount API is
//!    missing, or we lack `CAP_SYS_ADMIN` (rootless): the binary is copied into
//!    a `memfd_create(MFD_ALLOW_SEALING)` file sealed with
//!    `F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE` and executed from
//!    there. Writes fail with `EPERM`/`ETXTBSY`; it costs one copy of the
//!    binary in memory per invocation.
//!
//! 3. **No re-exec at all when the binary already sits on a read-only
//!    mount** (an immutable `/usr`, a read-only bind mount such as a Nix
//!    store, a dm-verity image): `/proc/<pid>/exe` then names that mount, and
//!    every write-open through it fails with `EROFS`. Only the mount's own
//!    read-only flag counts (asked of the kernel with `statmount`, Linux
//!    6.8): a read-only *superblock* under a writable mount could be
//!    reconfigured through another mount of it. Clearing the flag takes
//!    `CAP_SYS_ADMIN` over the mount namespace that holds the mount; a
//!    container has its own namespace, and the kernel refuses to remount, set
//!    attributes on, or clone (`open_tree`) a mount of another namespace, so
//!    nothing reachable from the container can make the binary writable. This
//!    saves the re-exec's whole cost (a second exec of the runtime).
//!
//! The re-executed process knows it is done when both the [`SEALED_ENV`]
//! marker is present (we set it) *and* `/proc/self/exe` really is a sealed
//! view (read-only overlayfs, or a memfd carrying the write seals). The marker
//! alone cannot be trusted (anyone can set an environment variable) and is
//! only there to stop a re-exec loop: marker present but binary unsealed is
//! an error, never a silent unprotected run. A binary that already runs from
//! a protected view without the marker (a read-only mount, or a view someone
//! else sealed) is used as it is. The marker is removed from the
//! environment straight away so it never reaches hooks or container processes.
//!
//! Every descriptor created here is `O_CLOEXEC`; `execveat` with
//! `AT_EMPTY_PATH` works on a close-on-exec descriptor for ELF binaries, so
//! no descriptor survives into the re-executed process.
//!
//! Must be called while the process is single-threaded (it edits the
//! environment and replaces the process image). A second call in a process
//! that already verified its seal is a no-op. After the re-exec,
//! `readlink /proc/self/exe` gives `/<binary name>` (overlay) or
//! `/memfd:ozz-sealed-exe (deleted)`; opening or executing `/proc/self/exe`
//! still works and yields the same sealed file.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

use crate::mount_api::{fsconfig_create, fsconfig_set_string, fsmount, fsopen};

/// Environment marker set on the sealed re-exec (its value names the kind of
/// view). Not trusted on its own: see the module documentation.
pub const SEALED_ENV: &str = "_OZZ_EXE_SEALED";

/// Optional override of the protected view: `auto` (default), `overlay`, `memfd`.
pub const STRATEGY_ENV: &str = "OZZ_EXE_SEAL";

const PROC_SELF_EXE: &str = "/proc/self/exe";

/// Set once this process has verified it runs from a sealed view.
static VERIFIED: AtomicBool = AtomicBool::new(false);

// Constants of the new mount API (include/uapi/linux/mount.h). Spelled out here
// so the module does not depend on how much of that header the libc crate
// mirrors; they are kernel ABI and never change.
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
/// memfd_create flag (Linux 6.3) asking for an executable memfd even when the
/// `vm.memfd_noexec` sysctl defaults to non-executable ones.
const MFD_EXEC: libc::c_uint = 0x10;

/// Seals that make a memfd immutable (F_SEAL_SEAL also stops anyone from
/// adding F_SEAL_EXEC-style surprises later).
const REQUIRED_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Host directories tried, in order, as the empty-ish bottom overlay layer when
/// the kernel refuses a detached tmpfs there. Only read by overlayfs, and only
/// one that does not overlap the binary's directory is used.
const HOST_FILLER_DIRS: &[&str] = &["/run", "/var/tmp", "/tmp", "/dev", "/etc"];

/// Which protected view to re-execute from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Read-only overlayfs, falling back to a sealed memfd copy.
    Auto,
    /// Read-only overlayfs only.
    Overlay,
    /// Sealed memfd copy only.
    Memfd,
}

/// What kind of protected view a binary runs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    /// overlayfs with no upper layer, read-only superblock.
    ReadOnlyOverlay,
    /// memfd carrying the write/grow/shrink seals.
    SealedMemfd,
    /// Any file on a mount whose own read-only flag is set.
    ReadOnlyMount,
}

impl SealKind {
    /// Short name, used as the value of [`SEALED_ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            SealKind::ReadOnlyOverlay => "overlay",
            SealKind::SealedMemfd => "memfd",
            SealKind::ReadOnlyMount => "ro-mount",
        }
    }
}

/// Re-executes the current command from a sealed view of its binary unless it
/// already runs from one. Returns `Ok(())` only in the sealed process; on
/// success in the unsealed one it never returns.
///
/// Call it first thing in `exec` (and through
/// [`protect_container_process`] in `create` and `run`), while
/// single-threaded.
///
/// [`STRATEGY_ENV`] (`auto`, `overlay` or `memfd`) picks the view; unset means
/// `auto`. Every choice seals: it only exists to test the fallback.
pub fn reexec_sealed_if_needed() -> Result<()> {
    let strategy = match std::env::var_os(STRATEGY_ENV) {
        None => Strategy::Auto,
        Some(value) => parse_strategy(&value)?,
    };
    reexec_sealed_with(strategy)
}

fn parse_strategy(value: &OsStr) -> Result<Strategy> {
    Ok(match value.as_bytes() {
        b"" | b"auto" => Strategy::Auto,
        b"overlay" => Strategy::Overlay,
        b"memfd" => Strategy::Memfd,
        _ => bail!("{STRATEGY_ENV}={value:?}: expected auto, overlay or memfd"),
    })
}

/// As [`reexec_sealed_if_needed`], choosing the protected view explicitly
/// (tests use it to force the memfd fallback).
pub fn reexec_sealed_with(strategy: Strategy) -> Result<()> {
    // A second call in the same (verified) process is a no-op rather than a
    // re-exec: the marker is gone from the environment by then.
    if VERIFIED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let marker = std::env::var_os(SEALED_ENV).is_some();
    if marker {
        // Never let the marker leak to hooks or container processes. The
        // caller guarantees the process is single-threaded here.
        std::env::remove_var(SEALED_ENV);
    }
    let current = self_exe_seal_kind().context("inspect /proc/self/exe")?;
    match decide(marker, current) {
        Decision::AlreadySealed => {
            if marker {
                crate::trace::mark("seal: verified");
            } else {
                crate::trace::mark("seal: already protected, no re-exec");
            }
            VERIFIED.store(true, Ordering::Relaxed);
            return Ok(());
        }
        Decision::Refuse => bail!(
            "{SEALED_ENV} is set but /proc/self/exe is not a sealed view of the \
             binary; refusing to run unprotected (CVE-2019-5736)"
        ),
        Decision::Reexec => {}
    }

    crate::trace::handoff();
    let exe = open_self_exe()?;
    let argv = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .context("argv holds a NUL byte")?;

    let mut failures = Vec::new();
    for &kind in candidates(strategy) {
        let view = match kind {
            SealKind::ReadOnlyOverlay => overlay_view(&exe),
            SealKind::SealedMemfd => sealed_memfd_copy(&exe),
            SealKind::ReadOnlyMount => unreachable!("not a view ozz builds"),
        };
        match view {
            Ok(fd) => {
                let envp = build_envp(std::env::vars_os(), kind)?;
                let err = exec_fd(fd.as_fd(), &argv, &envp);
                failures.push(format!("{}: execveat: {err}", kind.as_str()));
            }
            Err(err) => failures.push(format!("{}: {err:#}", kind.as_str())),
        }
    }
    bail!(
        "cannot re-execute from a sealed view of /proc/self/exe ({})",
        failures.join("; ")
    )
}

/// `create` and `run`, once the bundle is loaded: how the container's
/// process is kept from the host's binary. Where the exec stub can stand
/// in for the re-exec (`exec_stub::why_not`), a sealed copy of it for the
/// init to execute the process with; otherwise the re-exec, as
/// [`reexec_sealed_if_needed`] (`None` in the sealed process, or when the
/// binary is protected already).
///
/// A choice of view in [`STRATEGY_ENV`] other than `auto` (tests of the
/// fallbacks) always re-executes.
pub fn protect_container_process(spec: &oci_spec::runtime::Spec) -> Result<Option<OwnedFd>> {
    if VERIFIED.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let strategy = match std::env::var_os(STRATEGY_ENV) {
        None => Strategy::Auto,
        Some(value) => parse_strategy(&value)?,
    };
    let re_executed = std::env::var_os(SEALED_ENV).is_some();
    if strategy == Strategy::Auto && !re_executed {
        match crate::security::exec_stub::why_not(spec) {
            Some(why) => crate::trace::mark(&format!("seal: no exec stub ({why})")),
            // A binary protected already needs neither; the re-exec's check
            // says so below.
            None if !matches!(self_exe_seal_kind(), Ok(Some(_))) => {
                match crate::security::exec_stub::sealed_copy() {
                    Ok(stub) => {
                        crate::trace::mark("seal: exec stub");
                        return Ok(Some(stub));
                    }
                    Err(err) => crate::trace::mark(&format!("seal: no exec stub ({err:#})")),
                }
            }
            None => {}
        }
    }
    reexec_sealed_with(strategy)?;
    Ok(None)
}

/// Reports whether `/proc/self/exe` is a sealed view, and which.
pub fn self_exe_seal_kind() -> io::Result<Option<SealKind>> {
    seal_kind(open_self_exe()?.as_fd())
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    AlreadySealed,
    Reexec,
    Refuse,
}

/// A protected binary is done, with or without the marker; a marker on an
/// unprotected binary is either spoofed or a failed seal, and re-executing
/// again could loop.
fn decide(marker: bool, current: Option<SealKind>) -> Decision {
    match (marker, current) {
        (_, Some(_)) => Decision::AlreadySealed,
        (true, None) => Decision::Refuse,
        (false, None) => Decision::Reexec,
    }
}

fn candidates(strategy: Strategy) -> &'static [SealKind] {
    match strategy {
        Strategy::Auto => &[SealKind::ReadOnlyOverlay, SealKind::SealedMemfd],
        Strategy::Overlay => &[SealKind::ReadOnlyOverlay],
        Strategy::Memfd => &[SealKind::SealedMemfd],
    }
}

/// Classifies an open file: sealed memfd, read-only overlayfs, a file on a
/// read-only mount, or none of them.
fn seal_kind(fd: BorrowedFd<'_>) -> io::Result<Option<SealKind>> {
    // SAFETY: F_GET_SEALS only reads the seal set of a valid open descriptor.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & REQUIRED_SEALS == REQUIRED_SEALS {
        return Ok(Some(SealKind::SealedMemfd));
    }
    if seals < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    // Not a sealed memfd: any file (a tmpfs one too: shmem answers
    // F_GET_SEALS) may still sit on a read-only mount.
    // ST_RDONLY covers both a read-only mount and a read-only superblock.
    if fstatvfs(fd)?.f_flag & libc::ST_RDONLY == 0 {
        return Ok(None);
    }
    if fstatfs(fd)?.f_type == libc::OVERLAYFS_SUPER_MAGIC {
        return Ok(Some(SealKind::ReadOnlyOverlay));
    }
    Ok(mount_flag_read_only(fd).then_some(SealKind::ReadOnlyMount))
}

/// statmount(2), Linux 6.8 (not in every libc crate's table yet).
const SYS_STATMOUNT: libc::c_long = 457;
/// statmount's request mask bit for the mount's basic fields (`mnt_attr`).
const STATMOUNT_MNT_BASIC: u64 = 0x2;
/// Size of `struct mnt_id_req`, version 0.
const MNT_ID_REQ_SIZE_VER0: u32 = 24;
/// Byte offsets of `mnt_id` and `mnt_attr` in `struct statmount`
/// (include/uapi/linux/mount.h).
const STATMOUNT_MNT_ID_OFFSET: usize = 40;
const STATMOUNT_MNT_ATTR_OFFSET: usize = 64;

/// Whether the mount `fd` was opened through carries its own read-only flag
/// (not merely a read-only superblock). False where the kernel cannot say
/// (before 6.8): the caller then re-executes, as it always did.
fn mount_flag_read_only(fd: BorrowedFd<'_>) -> bool {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the path is a NUL-terminated empty string (AT_EMPTY_PATH: the
    // descriptor itself) and stx points to writable memory the size of
    // struct statx.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID_UNIQUE,
            stx.as_mut_ptr(),
        )
    };
    if rc < 0 {
        // No statx (before 4.11): not known to be read-only.
        return false;
    }
    // SAFETY: statx succeeded, so it filled stx (and it was zeroed before).
    let stx = unsafe { stx.assume_init() };
    if stx.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return false;
    }
    // struct mnt_id_req: size and a spare u32, the mount, what to report.
    let req = [
        u64::from(MNT_ID_REQ_SIZE_VER0),
        stx.stx_mnt_id,
        STATMOUNT_MNT_BASIC,
    ];
    // A u64 array keeps the buffer aligned as struct statmount wants; its
    // fixed part is 512 bytes, and no strings are asked for.
    let mut buf = [0u64; 128];
    // SAFETY: req is a valid struct mnt_id_req (version 0 layout) and buf a
    // writable buffer of the size passed; statmount touches nothing else.
    let rc = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            req.as_ptr(),
            buf.as_mut_ptr(),
            std::mem::size_of_val(&buf),
            0,
        )
    };
    if rc < 0 {
        // No statmount, or a mount outside our namespace: not known to be
        // read-only, so the caller re-executes.
        return false;
    }
    let (mask, mnt_id) = (buf[1], buf[STATMOUNT_MNT_ID_OFFSET / 8]);
    let mnt_attr = buf[STATMOUNT_MNT_ATTR_OFFSET / 8];
    mask & STATMOUNT_MNT_BASIC != 0
        && mnt_id == stx.stx_mnt_id
        && mnt_attr & u64::from(MOUNT_ATTR_RDONLY) != 0
}

fn open_self_exe() -> io::Result<File> {
    // std opens with O_CLOEXEC.
    File::open(PROC_SELF_EXE)
}

/// Opens the running binary through a detached, read-only, lower-only
/// overlayfs mount of its directory.
fn overlay_view(exe: &File) -> Result<OwnedFd> {
    let target = std::fs::read_link(PROC_SELF_EXE).context("readlink /proc/self/exe")?;
    let (dir, name) = match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) if target.is_absolute() => (dir, name),
        _ => bail!("/proc/self/exe -> {target:?} is not a path to a file"),
    };
    let dir_fd = open_path(dir, libc::O_PATH | libc::O_DIRECTORY)
        .with_context(|| format!("open {}", dir.display()))?;
    let exe_st = fstat(exe.as_fd())?;
    let disk_st = fstatat_nofollow(dir_fd.as_fd(), name)
        .with_context(|| format!("stat {}", target.display()))?;
    if (disk_st.st_dev, disk_st.st_ino) != (exe_st.st_dev, exe_st.st_ino) {
        bail!("{} is no longer the running binary", target.display());
    }

    // Bail out early (no CAP_SYS_ADMIN, no overlayfs, no new mount API);
    // later attempts need a fresh context since a failed one is spent.
    let mut first_ctx = Some(fsopen(c"overlay")?);
    let mut failures = Vec::new();
    for filler in fillers(dir) {
        let attempt = match first_ctx.take() {
            Some(ctx) => Ok(ctx),
            None => fsopen(c"overlay"),
        }
        .and_then(|ctx| {
            let filler_fd = filler.open()?;
            open_through_overlay(ctx, dir_fd.as_fd(), filler_fd.as_fd(), name)
        });
        match attempt {
            Ok(fd) => {
                verify_same_content_meta(&exe_st, &fstat(fd.as_fd())?)?;
                match seal_kind(fd.as_fd())? {
                    Some(SealKind::ReadOnlyOverlay) => return Ok(fd),
                    other => bail!("overlay view is not read-only overlayfs ({other:?})"),
                }
            }
            Err(err) => failures.push(format!("{filler:?}: {err:#}")),
        }
    }
    bail!("overlayfs unavailable ({})", failures.join("; "))
}

/// Bottom layer of the overlay.
#[derive(Debug)]
enum Filler {
    /// A fresh detached tmpfs: leaves nothing anywhere (needs a kernel that
    /// accepts detached mounts as overlay layers).
    DetachedTmpfs,
    /// An existing host directory, only ever read.
    HostDir(&'static str),
}

impl Filler {
    fn open(&self) -> Result<OwnedFd> {
        match self {
            Filler::DetachedTmpfs => {
                let ctx = fsopen(c"tmpfs")?;
                fsconfig_set_string(ctx.as_fd(), c"size", c"4k")?;
                fsconfig_create(ctx.as_fd())?;
                fsmount(
                    ctx.as_fd(),
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                )
            }
            Filler::HostDir(dir) => {
                Ok(open_path(Path::new(dir), libc::O_PATH | libc::O_DIRECTORY)?)
            }
        }
    }
}

fn fillers(bin_dir: &Path) -> Vec<Filler> {
    let mut out = vec![Filler::DetachedTmpfs];
    out.extend(
        HOST_FILLER_DIRS
            .iter()
            .filter(|d| disjoint(Path::new(d), bin_dir))
            .map(|d| Filler::HostDir(d)),
    );
    out
}

/// overlayfs rejects layers where one directory contains the other.
fn disjoint(a: &Path, b: &Path) -> bool {
    !a.starts_with(b) && !b.starts_with(a)
}

/// Configures the fresh overlayfs context `ctx` with `top` over `bottom` as
/// its only (lower) layers and opens `name` in the resulting detached mount.
fn open_through_overlay(
    ctx: OwnedFd,
    top: BorrowedFd<'_>,
    bottom: BorrowedFd<'_>,
    name: &OsStr,
) -> Result<OwnedFd> {
    // The layers are given as /proc/self/fd magic links: no escaping of ':' or
    // '\' in the real paths, and no race with renames of those paths.
    let lower = format!(
        "/proc/self/fd/{}:/proc/self/fd/{}",
        top.as_raw_fd(),
        bottom.as_raw_fd()
    );
    let lower = CString::new(lower)?;
    fsconfig_set_string(ctx.as_fd(), c"lowerdir", &lower).context("lowerdir")?;
    // Only silences xino warnings when the layers sit on different
    // filesystems; older kernels may not know the option.
    let _ = fsconfig_set_string(ctx.as_fd(), c"xino", c"off");
    fsconfig_create(ctx.as_fd())?;
    let mnt = fsmount(ctx.as_fd(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV)?;
    let name = CString::new(name.as_bytes())?;
    // SAFETY: mnt is a valid directory descriptor and name a NUL-terminated
    // string that outlives the call.
    let fd = unsafe {
        libc::openat(
            mnt.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY,
        )
    };
    // The mount fd, context fd and layer fds close on return; the mount lives
    // on through the file opened in it.
    owned(fd).context("open binary through overlayfs")
}

/// overlayfs remaps st_dev (and maybe st_ino), but reports the lower file's
/// size, mode and times: enough to catch the wrong file in the top layer.
fn verify_same_content_meta(exe: &libc::stat, view: &libc::stat) -> Result<()> {
    let key = |s: &libc::stat| (s.st_size, s.st_mode, s.st_mtime, s.st_mtime_nsec);
    if key(exe) != key(view) {
        bail!("file seen through overlayfs differs from the running binary");
    }
    Ok(())
}

/// Copies the running binary into a memfd and seals it against any change.
fn sealed_memfd_copy(exe: &File) -> Result<OwnedFd> {
    sealed_memfd(c"ozz-sealed-exe", |copy| {
        let size = fstat(exe.as_fd())?.st_size;
        // std::io::copy uses copy_file_range/sendfile where it can.
        let mut src = exe;
        src.rewind().context("rewind /proc/self/exe")?;
        let copied = io::copy(&mut src, copy).context("copy binary into memfd")?;
        if i64::try_from(copied).ok() != Some(size) {
            bail!("copied {copied} bytes of a {size}-byte binary");
        }
        Ok(())
    })
}

/// A close-on-exec, executable memfd named `name`, filled by `fill`, then
/// sealed against any write, growth or shrinking (the re-exec's copy of
/// the binary, the exec stub).
pub fn sealed_memfd(name: &CStr, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<OwnedFd> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: name is a valid NUL-terminated string; memfd_create has no other
    // memory arguments.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 reject MFD_EXEC; their memfds are executable.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    let mut file = File::from(owned(fd).context("memfd_create")?);
    fill(&mut file)?;
    // SAFETY: F_ADD_SEALS takes an int argument and touches no memory.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) } < 0 {
        return Err(io::Error::last_os_error()).context("seal memfd");
    }
    let fd = OwnedFd::from(file);
    if seal_kind(fd.as_fd())? != Some(SealKind::SealedMemfd) {
        bail!("memfd seals did not stick");
    }
    Ok(fd)
}

/// Environment for the re-exec: ours, minus any stale marker, plus the marker.
fn build_envp(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    kind: SealKind,
) -> Result<Vec<CString>> {
    let mut envp = Vec::new();
    for (key, value) in vars {
        if key == SEALED_ENV {
            continue;
        }
        let mut entry = key.into_vec();
        entry.push(b'=');
        entry.extend(value.into_vec());
        envp.push(CString::new(entry).context("environment holds a NUL byte")?);
    }
    envp.push(CString::new(format!("{SEALED_ENV}={}", kind.as_str()))?);
    Ok(envp)
}

/// Replaces the process image with the file behind `fd`; returns only on error.
fn exec_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let argv_ptrs = null_terminated(argv);
    let envp_ptrs = null_terminated(envp);
    let empty: &CStr = c"";
    // SAFETY: all pointers reference NUL-terminated strings and
    // NULL-terminated pointer arrays that live until the call returns (which it
    // only does on failure); fd is a valid open descriptor.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return err;
    }
    // Pre-3.19 kernels: exec the magic link. The kernel opens it before it
    // closes the O_CLOEXEC descriptor, which is fine for ELF binaries.
    let Ok(path) = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        return err;
    };
    // SAFETY: as above.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_path(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: path is a valid NUL-terminated string for the duration of the call.
    owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st points to writable memory the size of struct stat.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

fn fstatat_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let name = CString::new(name.as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: name is NUL-terminated and st points to writable memory the size
    // of struct stat.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: st points to writable memory the size of struct statfs.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: st points to writable memory the size of struct statvfs.
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatvfs succeeded, so it filled st.
    Ok(unsafe { st.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// overlayfs through the new mount API needs CAP_SYS_ADMIN and kernel
    /// support; tests of that path skip where it is missing.
    fn overlay_available() -> bool {
        let ok = fsopen(c"overlay").is_ok();
        if !ok {
            eprintln!("skipped: fsopen(\"overlay\") unavailable here");
        }
        ok
    }

    fn read_all(fd: BorrowedFd<'_>) -> Vec<u8> {
        let mut file = File::from(fd.try_clone_to_owned().unwrap());
        file.rewind().unwrap();
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).unwrap();
        buf
    }

    fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
        // SAFETY: F_GETFD only reads descriptor flags.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        flags >= 0 && flags & libc::FD_CLOEXEC != 0
    }

    /// Opens the view again by its /proc magic link for writing, as the
    /// attacker would open /proc/<pid>/exe.
    fn reopen_for_write(fd: BorrowedFd<'_>, extra: libc::c_int) -> io::Result<File> {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let path = CString::new(path).unwrap();
        // SAFETY: path is NUL-terminated.
        owned(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC | extra) })
            .map(File::from)
    }

    #[test]
    fn decision_needs_marker_and_seal() {
        assert_eq!(
            decide(true, Some(SealKind::ReadOnlyOverlay)),
            Decision::AlreadySealed
        );
        assert_eq!(
            decide(true, Some(SealKind::SealedMemfd)),
            Decision::AlreadySealed
        );
        assert_eq!(decide(true, None), Decision::Refuse);
        assert_eq!(decide(false, None), Decision::Reexec);
        // A binary on a read-only mount, or in a view someone else sealed,
        // cannot be written through /proc/PID/exe: no re-exec needed.
        for kind in [
            SealKind::ReadOnlyMount,
            SealKind::ReadOnlyOverlay,
            SealKind::SealedMemfd,
        ] {
            assert_eq!(decide(false, Some(kind)), Decision::AlreadySealed);
        }
    }

    #[test]
    fn strategy_parsing() {
        assert_eq!(parse_strategy(OsStr::new("")).unwrap(), Strategy::Auto);
        assert_eq!(parse_strategy(OsStr::new("auto")).unwrap(), Strategy::Auto);
        assert_eq!(
            parse_strategy(OsStr::new("memfd")).unwrap(),
            Strategy::Memfd
        );
        assert_eq!(
            parse_strategy(OsStr::new("overlay")).unwrap(),
            Strategy::Overlay
        );
        assert!(parse_strategy(OsStr::new("none")).is_err());
    }

    #[test]
    fn strategy_candidates() {
        assert_eq!(
            candidates(Strategy::Auto),
            &[SealKind::ReadOnlyOverlay, SealKind::SealedMemfd]
        );
        assert_eq!(candidates(Strategy::Memfd), &[SealKind::SealedMemfd]);
        assert_eq!(candidates(Strategy::Overlay), &[SealKind::ReadOnlyOverlay]);
    }

    #[test]
    fn envp_replaces_stale_marker() {
        let vars = vec![
            ("A".into(), "1".into()),
            (SEALED_ENV.into(), "spoofed".into()),
            ("B".into(), "x=y".into()),
        ];
        let envp = build_envp(vars.into_iter(), SealKind::SealedMemfd).unwrap();
        let envp: Vec<_> = envp.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(envp, ["A=1", "B=x=y", &format!("{SEALED_ENV}=memfd")]);
    }

    #[test]
    fn overlapping_layers_are_skipped() {
        assert!(!disjoint(Path::new("/tmp"), Path::new("/tmp/build/bin")));
        assert!(!disjoint(Path::new("/usr/bin"), Path::new("/usr")));
        assert!(disjoint(Path::new("/run"), Path::new("/usr/bin")));
        assert!(disjoint(Path::new("/tmp"), Path::new("/tmpfoo")));
        let names: Vec<_> = fillers(Path::new("/tmp/x"))
            .iter()
            .map(|f| format!("{f:?}"))
            .collect();
        assert!(names.iter().all(|n| !n.contains("\"/tmp\"")), "{names:?}");
        assert!(names[0].contains("DetachedTmpfs"));
    }

    #[test]
    fn plain_files_are_not_sealed() {
        let exe = open_self_exe().unwrap();
        // The test binary sits on a writable filesystem.
        assert_eq!(seal_kind(exe.as_fd()).unwrap(), None);
        assert_eq!(self_exe_seal_kind().unwrap(), None);
        assert!(!mount_flag_read_only(exe.as_fd()));
    }

    #[test]
    fn unsealed_memfd_is_not_sealed() {
        // SAFETY: valid NUL-terminated name.
        let fd = owned(unsafe {
            libc::memfd_create(c"t".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })
        .unwrap();
        assert_eq!(seal_kind(fd.as_fd()).unwrap(), None);
        // SAFETY: int argument only.
        assert_eq!(
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_GROW) },
            0
        );
        assert_eq!(seal_kind(fd.as_fd()).unwrap(), None);
    }

    #[test]
    fn memfd_copy_is_identical_sealed_and_unwritable() {
        let exe = open_self_exe().unwrap();
        let fd = sealed_memfd_copy(&exe).unwrap();
        assert!(is_cloexec(fd.as_fd()));
        assert_eq!(seal_kind(fd.as_fd()).unwrap(), Some(SealKind::SealedMemfd));
        assert_eq!(read_all(fd.as_fd()), std::fs::read(PROC_SELF_EXE).unwrap());

        let mut same = File::from(fd.try_clone().unwrap());
        let err = same.write_all(b"pwned").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        // A fresh write-open, as through /proc/<pid>/exe, may succeed but
        // cannot write; truncating opens fail outright.
        if let Ok(mut w) = reopen_for_write(fd.as_fd(), 0) {
            assert_eq!(
                w.write(b"pwned").unwrap_err().raw_os_error(),
                Some(libc::EPERM)
            );
        }
        let err = reopen_for_write(fd.as_fd(), libc::O_TRUNC).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }

    fn check_overlay(fd: OwnedFd) {
        assert!(is_cloexec(fd.as_fd()));
        assert_eq!(
            seal_kind(fd.as_fd()).unwrap(),
            Some(SealKind::ReadOnlyOverlay)
        );
        assert_eq!(read_all(fd.as_fd()), std::fs::read(PROC_SELF_EXE).unwrap());
        for extra in [0, libc::O_TRUNC] {
            let err = reopen_for_write(fd.as_fd(), extra).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        }
    }

    #[test]
    fn overlay_view_is_identical_and_read_only() {
        if !overlay_available() {
            return;
        }
        let exe = open_self_exe().unwrap();
        check_overlay(overlay_view(&exe).unwrap());
    }

    #[test]
    fn overlay_with_every_usable_filler() {
        if !overlay_available() {
            return;
        }
        let target = std::fs::read_link(PROC_SELF_EXE).unwrap();
        let dir = open_path(target.parent().unwrap(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        let name = target.file_name().unwrap();
        let mut worked = 0;
        for filler in fillers(target.parent().unwrap()) {
            let Ok(bottom) = filler.open() else { continue };
            assert!(is_cloexec(bottom.as_fd()));
            let ctx = fsopen(c"overlay").unwrap();
            match open_through_overlay(ctx, dir.as_fd(), bottom.as_fd(), name) {
                Ok(fd) => {
                    check_overlay(fd);
                    worked += 1;
                }
                Err(err) => eprintln!("{filler:?}: {err:#}"),
            }
        }
        assert!(worked > 0);
    }
}
