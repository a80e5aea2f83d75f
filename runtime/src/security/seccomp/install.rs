//! Loading the compiled programs into the kernel.

use anyhow::{anyhow, Result};

use std::os::fd::RawFd;

use super::{CompiledSeccomp, SECCOMP_FILTER_FLAG_NEW_LISTENER};

/// Why installing a program failed; plain data so that the failure path of
/// [`CompiledSeccomp::try_install`] does not allocate either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct InstallError {
    /// Index of the program that failed.
    pub(super) program: usize,
    /// `errno` from seccomp(2), or 0 when a TSYNC thread could not sync.
    pub(super) errno: i32,
    /// With SECCOMP_FILTER_FLAG_TSYNC: the thread that could not sync.
    pub(super) tsync_tid: libc::c_long,
}

impl CompiledSeccomp {
    /// Load every program into the calling thread (or, with
    /// SECCOMP_FILTER_FLAG_TSYNC, all threads of the process), in order,
    /// with the OCI `flags`.  Requires no_new_privs or CAP_SYS_ADMIN.
    ///
    /// Neither allocates nor spawns threads before the programs are loaded,
    /// so it is safe in a child forked from a multi-threaded process; only
    /// building the error message on failure allocates.
    ///
    /// Returns the notify fd when the profile uses SCMP_ACT_NOTIFY (the
    /// program that holds those rules is loaded with
    /// SECCOMP_FILTER_FLAG_NEW_LISTENER).
    pub fn install(&self) -> Result<Option<RawFd>> {
        self.try_install().map_err(|e| {
            if e.tsync_tid != 0 {
                anyhow!(
                    "seccomp: thread {} could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)",
                    e.tsync_tid
                )
            } else {
                let hint = if e.errno == libc::EACCES {
                    " (no_new_privs is not set and CAP_SYS_ADMIN is missing)"
                } else {
                    ""
                };
                anyhow!(
                    "seccomp(SECCOMP_SET_MODE_FILTER) failed for program {}/{}: {}{hint}",
                    e.program + 1,
                    self.programs.len(),
                    std::io::Error::from_raw_os_error(e.errno)
                )
            }
        })
    }

    /// Non-allocating core of [`install`](Self::install).
    pub(super) fn try_install(&self) -> std::result::Result<Option<RawFd>, InstallError> {
        let mut listener = None;
        for (i, program) in self.programs.iter().enumerate() {
            let new_listener = self.listener_program == Some(i);
            let flags = if new_listener {
                self.flags | SECCOMP_FILTER_FLAG_NEW_LISTENER
            } else {
                self.flags
            };
            let fprog = libc::sock_fprog {
                // Programs are at most BPF_MAXINSNS long (checked in compile).
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: `fprog` points to `len` valid, initialised sock_filter
            // instructions that outlive the call; the kernel copies the
            // program and does not write through the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if new_listener && rc >= 0 {
                listener = Some(rc as RawFd);
                continue;
            }
            if rc != 0 {
                let errno = if rc < 0 {
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
                } else {
                    0
                };
                return Err(InstallError {
                    program: i,
                    errno,
                    tsync_tid: if rc > 0 { rc } else { 0 },
                });
            }
        }
        Ok(listener)
    }
}
