//! Paths inside the container's rootfs, resolved by one `openat2(2)` each.
//!
//! libpathrs is what keeps a symlink in the image from leading a mount out
//! of the rootfs, and it stays the authority here: every call that is not
//! the plain case below goes to it, and so does every error, so its
//! messages and its fallbacks (no openat2, a rename race) are unchanged.
//! The plain case is the kernel's own scoped lookup, the same
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` pathrs makes, without
//! what pathrs adds around it: on each success a check of the result
//! through a private procfs, on each error the root's path read back
//! through procfs for the message, and for `mkdir_all` a re-open of every
//! directory through `/proc/thread-self/fd`. Those came to 20-100 system
//! calls per mount point, about a fifth of `run`'s time in the container's
//! init (issue 15's trace).
//!
//! Why the plain case is as safe: `RESOLVE_IN_ROOT` makes the kernel treat
//! the rootfs descriptor as `/` for the whole walk, `..` and absolute
//! symlinks included, and `RESOLVE_NO_MAGICLINKS` refuses `/proc/*/fd`-style
//! links, the same guarantees pathrs's own openat2 resolver relies on. A
//! directory this module creates is opened back with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` from its parent, so a symlink raced into its place
//! is refused (and the call handed to pathrs), never followed.

use std::ffi::{CString, OsStr};
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pathrs::{Handle, Root};

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `struct open_how` (include/uapi/linux/openat2.h): kernel ABI.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, {flags | O_CLOEXEC, resolve})`.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &OsStr,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let path = CString::new(path.as_bytes())?;
    // SAFETY: path is NUL-terminated and how a valid open_how of the size
    // passed; the kernel only reads both.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The rootfs: pathrs's [`Root`] (reached through `Deref` for everything
/// this type does not speed up) with fast paths for the calls the mounts
/// make most.
pub struct InRoot(Root);

impl Deref for InRoot {
    type Target = Root;
    fn deref(&self) -> &Root {
        &self.0
    }
}

impl InRoot {
    pub fn open(path: &Path) -> Result<Self, pathrs::error::Error> {
        Root::open(path).map(InRoot)
    }

    fn lookup(&self, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
        openat2(
            self.0.as_fd(),
            path.as_os_str(),
            flags,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// As [`Root::resolve`].
    pub fn resolve(&self, path: impl AsRef<Path>) -> Result<Handle, pathrs::error::Error> {
        let path = path.as_ref();
        match self.lookup(path, libc::O_PATH) {
            Ok(fd) => Ok(Handle::from_fd(fd)),
            Err(_) => self.0.resolve(path),
        }
    }

    /// Whether `path` resolves (symlinks followed) inside the root: a plain
    /// miss is answered without pathrs's error.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        let path = path.as_ref();
        match self.lookup(path, libc::O_PATH) {
            Ok(_) => true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => false,
            Err(_) => self.0.resolve(path).is_ok(),
        }
    }

    /// As [`Root::resolve_nofollow`].
    pub fn resolve_nofollow(&self, path: impl AsRef<Path>) -> Result<Handle, pathrs::error::Error> {
        let path = path.as_ref();
        match self.lookup(path, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => Ok(Handle::from_fd(fd)),
            Err(_) => self.0.resolve_nofollow(path),
        }
    }

    /// Whether no component of `path` (absolute, without `.` or `..`) is a
    /// symlink, as far as it exists: one openat2 answers what a walk asks of
    /// each component. The kernel walks it in order and stops at the first
    /// symlink (ELOOP) or missing component (ENOENT); at ENOENT every
    /// component before was a plain directory, and none after exists.
    pub fn has_no_symlinks(&self, path: impl AsRef<Path>) -> bool {
        match openat2(
            self.0.as_fd(),
            path.as_ref().as_os_str(),
            libc::O_PATH,
            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
        ) {
            Ok(_) => true,
            Err(e) => e.raw_os_error() == Some(libc::ENOENT),
        }
    }

    /// The target of `path` if it is a symlink; `None` if it is anything
    /// else or cannot be reached (what a failed [`Root::readlink`] meant to
    /// the callers).
    pub fn symlink_target(&self, path: impl AsRef<Path>) -> Option<PathBuf> {
        let path = path.as_ref();
        let fd = match self.lookup(path, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            // Missing, or a non-directory on the way: nothing to follow.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return None
            }
            Err(_) => return readlink_by_pathrs(&self.0, path),
        };
        read_link_fd(fd.as_fd())
    }

    /// As [`Root::mkdir_all`]: the directory at `path`, made (with its
    /// missing parents) where missing.
    pub fn mkdir_all(
        &self,
        path: impl AsRef<Path>,
        perm: &std::fs::Permissions,
    ) -> Result<Handle, pathrs::error::Error> {
        let path = path.as_ref();
        match self.mkdir_all_plain(path, perm.mode() & 0o7777) {
            Ok(fd) => Ok(Handle::from_fd(fd)),
            Err(_) => self.0.mkdir_all(path, perm),
        }
    }

    fn mkdir_all_plain(&self, path: &Path, mode: u32) -> io::Result<OwnedFd> {
        let err = match self.lookup(path, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        // Only a missing last component of a path of plain names is made
        // here; `..`, `.` and anything stranger are pathrs's.
        let plain = path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let (Some(parent), Some(name), true) = (path.parent(), path.file_name(), plain) else {
            return Err(err);
        };
        if err.raw_os_error() != Some(libc::ENOENT) {
            return Err(err);
        }
        let parent = self.mkdir_all_plain(parent, mode)?;
        match nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(mode),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        openat2(
            parent.as_fd(),
            name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        )
    }

    /// Removes the non-directory at `path` if there is one, as
    /// [`Root::remove_file`] would; a missing one is no error, and the
    /// callers (who make a node or link there next) need no other.
    pub fn remove_file_if_any(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            if let Ok(dir) = self.lookup(parent, libc::O_PATH | libc::O_DIRECTORY) {
                let flag = nix::unistd::UnlinkatFlags::NoRemoveDir;
                match nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, flag) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => return,
                    Err(_) => {}
                }
            }
        }
        let _ = self.0.remove_file(path);
    }
}

/// [`Root::readlink`], kept out of line. why: pathrs reads a link into a
/// 128 KB buffer on the stack; inlined into a caller, the stack probe of
/// that frame touched all 32 pages on every call, the fast path's too
/// (32 page faults and 128 KB of RSS in the init, at its first mount).
#[cold]
#[inline(never)]
fn readlink_by_pathrs(root: &Root, path: &Path) -> Option<PathBuf> {
    root.readlink(path).ok()
}

/// readlinkat(fd, ""): the target of the symlink `fd` (an O_PATH
/// descriptor of it); `None` if it is not a symlink.
fn read_link_fd(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
        .ok()
        .map(PathBuf::from)
}

#[cfg(test)]
fn is_symlink(fd: BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ozz-inroot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn path_of(handle: &Handle) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd())).unwrap()
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = scratch("links");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        symlink("/etc", rootfs.join("abs")).unwrap();
        symlink("../../../outside", rootfs.join("up")).unwrap();
        let root = InRoot::open(&rootfs).unwrap();
        assert_eq!(
            path_of(&root.resolve(Path::new("/abs")).unwrap()),
            rootfs.join("etc")
        );
        // `..` past the root stays at the root: "outside" is not there.
        assert!(root.resolve(Path::new("/up")).is_err());
        assert!(!root.exists("/up"));
        assert!(root.exists("/abs"));
        assert!(!root.exists("/etc/missing"));
        assert_eq!(
            root.symlink_target(Path::new("/abs")),
            Some(PathBuf::from("/etc"))
        );
        assert_eq!(root.symlink_target(Path::new("/etc")), None);
        assert_eq!(root.symlink_target(Path::new("/missing/x")), None);
        let link = root.resolve_nofollow(Path::new("/abs")).unwrap();
        assert!(is_symlink(link.as_fd()));
        symlink("/nowhere", rootfs.join("dangling")).unwrap();
        for plain in ["/etc", "/etc/missing", "/missing/deeper"] {
            assert!(root.has_no_symlinks(plain), "{plain}");
        }
        for linked in ["/abs", "/abs/missing", "/up", "/dangling", "/dangling/x"] {
            assert!(!root.has_no_symlinks(linked), "{linked}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mkdir_all_makes_what_is_missing_and_never_leaves_the_root() {
        let dir = scratch("mkdir");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        symlink("/../outside", rootfs.join("esc")).unwrap();
        let root = InRoot::open(&rootfs).unwrap();
        let perm = std::fs::Permissions::from_mode(0o755);
        let made = root.mkdir_all(Path::new("/dev/pts"), &perm).unwrap();
        assert_eq!(path_of(&made), rootfs.join("dev/pts"));
        // Again: it exists now.
        assert_eq!(
            path_of(&root.mkdir_all(Path::new("/dev/pts"), &perm).unwrap()),
            rootfs.join("dev/pts")
        );
        // Through a dangling symlink that points out (pathrs decides): never
        // outside the root.
        if let Ok(made) = root.mkdir_all(Path::new("/esc/x"), &perm) {
            assert!(path_of(&made).starts_with(&rootfs), "{:?}", path_of(&made));
        }
        assert!(!dir.join("outside/x").exists());
        // A file on the way is an error (from pathrs).
        std::fs::write(rootfs.join("file"), b"").unwrap();
        assert!(root.mkdir_all(Path::new("/file/x"), &perm).is_err());
        root.remove_file_if_any(Path::new("/file"));
        assert!(!rootfs.join("file").exists());
        root.remove_file_if_any(Path::new("/file"));
        // Never a directory, never through a symlink out of the root.
        root.remove_file_if_any(Path::new("/dev"));
        assert!(rootfs.join("dev/pts").is_dir());
        std::fs::write(dir.join("outside/victim"), b"").unwrap();
        root.remove_file_if_any(Path::new("/esc/victim"));
        assert!(dir.join("outside/victim").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
