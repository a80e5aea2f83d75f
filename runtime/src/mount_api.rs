//! The kernel's file-descriptor mount API (fsopen, fspick, fsconfig,
//! fsmount), which libc and nix do not wrap.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSPICK_CLOEXEC: libc::c_uint = 0x1;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSCONFIG_CMD_RECONFIGURE: libc::c_uint = 7;

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

pub fn fsopen(fs_name: &CStr) -> Result<OwnedFd> {
    // SAFETY: fs_name is NUL-terminated; fsopen takes no other pointers.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fs_name.as_ptr(), FSOPEN_CLOEXEC) };
    owned(fd).with_context(|| format!("fsopen {fs_name:?}"))
}

/// A context to reconfigure the filesystem mounted at `path` (its root).
pub fn fspick(path: &CStr) -> Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; the other arguments are integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fspick,
            libc::AT_FDCWD,
            path.as_ptr(),
            FSPICK_CLOEXEC,
        )
    };
    owned(fd).with_context(|| format!("fspick {path:?}"))
}

fn fsconfig(
    ctx: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: key and value are NUL-terminated strings valid for the call,
    // or null where the command takes none.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            cmd,
            ptr(key),
            ptr(value),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn fsconfig_set_string(ctx: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<()> {
    fsconfig(ctx, FSCONFIG_SET_STRING, Some(key), Some(value))
        .with_context(|| format!("fsconfig {key:?}={value:?}"))
}

pub fn fsconfig_set_flag(ctx: BorrowedFd<'_>, key: &CStr) -> Result<()> {
    fsconfig(ctx, FSCONFIG_SET_FLAG, Some(key), None).with_context(|| format!("fsconfig {key:?}"))
}

pub fn fsconfig_create(ctx: BorrowedFd<'_>) -> Result<()> {
    fsconfig(ctx, FSCONFIG_CMD_CREATE, None, None).context("fsconfig create")
}

pub fn fsconfig_reconfigure(ctx: BorrowedFd<'_>) -> Result<()> {
    fsconfig(ctx, FSCONFIG_CMD_RECONFIGURE, None, None).context("fsconfig reconfigure")
}

pub fn fsmount(ctx: BorrowedFd<'_>, attrs: libc::c_uint) -> Result<OwnedFd> {
    // SAFETY: fsmount takes only integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    owned(fd).context("fsmount")
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// A detached copy of the mount (a bind) of whatever `fd` names: the file
/// or directory itself, never a path looked up again.
pub fn open_tree_clone(fd: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is an empty NUL-terminated string (AT_EMPTY_PATH);
    // the other arguments are integers.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    owned(tree).context("open_tree")
}

/// Attaches the detached mount `from` on top of what `to` names.
pub fn move_mount_to_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: both paths are empty NUL-terminated strings, the mounts are
    // named by the descriptors (the *_EMPTY_PATH flags).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error()).context("move_mount");
    }
    Ok(())
}

/// mount_setattr(AT_RECURSIVE) on the mount tree `fd` names (a detached
/// one from open_tree included).
pub fn mount_setattr_fd(fd: BorrowedFd<'_>, set: u64, clear: u64) -> Result<()> {
    mount_setattr_at(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH, set, clear).context("mount_setattr")
}

/// mount_setattr(2) with AT_RECURSIVE added to `flags`: `path` relative to
/// `dirfd` (AT_FDCWD for a plain path, or an fd with an empty path and
/// AT_EMPTY_PATH).
pub fn mount_setattr_at(
    dirfd: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
    set: u64,
    clear: u64,
) -> io::Result<()> {
    mount_setattr_raw(dirfd, path, flags | libc::AT_RECURSIVE, set, clear, 0)
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Gives the detached mount `tree` the idmapping of the user namespace
/// `userns` (MOUNT_ATTR_IDMAP): on the mount at the top only, or on every
/// mount of the tree with `recursive`. The kernel allows it once per mount,
/// on a detached one, and only where the filesystem supports it (EINVAL
/// otherwise); the raw error is returned for the caller to explain.
pub fn mount_setattr_idmap(
    tree: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    let userns = u64::try_from(userns.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?;
    mount_setattr_raw(tree.as_raw_fd(), c"", flags, MOUNT_ATTR_IDMAP, 0, userns)
}

fn mount_setattr_raw(
    dirfd: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
    set: u64,
    clear: u64,
    userns_fd: u64,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd,
    };
    // SAFETY: path is NUL-terminated and attr a valid mount_attr of the
    // size we pass; the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
