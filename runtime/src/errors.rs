//! Errors whose wording callers depend on. podman, conmon and the containerd
//! shim match these phrases in runc's output, so they live here, once.

use std::fmt;

#[derive(Debug)]
pub enum RuntimeError {
    /// `container "ID" does not exist`: podman maps it to "no such container".
    NotExist(String),
    /// `container not running`: kill of a stopped container.
    NotRunning,
    /// `no such process`: the process vanished between lookup and signal.
    NoSuchProcess,
    /// `container with id exists: ID`
    AlreadyExists(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NotExist(id) => write!(f, "container \"{id}\" does not exist"),
            RuntimeError::NotRunning => write!(f, "container not running"),
            RuntimeError::NoSuchProcess => write!(f, "no such process"),
            RuntimeError::AlreadyExists(id) => write!(f, "container with id exists: {id}"),
        }
    }
}

impl std::error::Error for RuntimeError {}
