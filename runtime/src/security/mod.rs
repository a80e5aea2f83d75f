//! What keeps the container in: capabilities, seccomp, no_new_privs, and the
//! sealed binary that defeats /proc/self/exe overwrites.

pub mod caps;
pub mod exe_seal;
pub mod exec_stub;
pub mod seccomp;
