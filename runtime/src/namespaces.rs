//! Which namespaces a container creates and which it joins by path.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME (0x80) is not in nix's CloneFlags.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns/ entry name of a namespace type.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

#[derive(Debug, Default, Clone)]
pub struct NamespacePlan {
    /// Namespaces created fresh for the container.
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces joined through a path (e.g. /proc/PID/ns/net of a pod).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> NamespacePlan {
        let mut plan = NamespacePlan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in namespaces {
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    plan.join.push((ns.typ(), path.clone()))
                }
                _ => plan.new.push(ns.typ()),
            }
        }
        plan
    }

    pub fn creates(&self, typ: LinuxNamespaceType) -> bool {
        self.new.contains(&typ)
    }

    pub fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.creates(typ) || self.join.iter().any(|(t, _)| *t == typ)
    }

    pub fn joined_path(&self, typ: LinuxNamespaceType) -> Option<&PathBuf> {
        self.join.iter().find(|(t, _)| *t == typ).map(|(_, p)| p)
    }
}

pub fn join(typ: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
    let file = File::open(path)
        .with_context(|| format!("open {} namespace {}", proc_name(typ), path.display()))?;
    // why: setns into the user namespace we are already in fails (EINVAL);
    // the init is born in a joined user namespace (spawn::clone3_in_user_ns).
    if typ == LinuxNamespaceType::User && is_current(&file, typ) {
        return Ok(());
    }
    setns(file.as_fd(), clone_flag(typ))
        .with_context(|| format!("join {} namespace {}", proc_name(typ), path.display()))
}

/// The identity (device, inode) of the caller's namespace of type `typ`.
pub fn current_id(typ: LinuxNamespaceType) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(typ))).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether `file` names the namespace of type `typ` the caller is in.
fn is_current(file: &File, typ: LinuxNamespaceType) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(typ)));
    match (file.metadata(), own) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The caller's own namespaces of some types, kept open so the caller can
/// return to them after joining a container's (setns is per type).
pub struct SavedNamespaces {
    saved: Vec<(LinuxNamespaceType, File)>,
}

impl SavedNamespaces {
    pub fn save(types: impl Iterator<Item = LinuxNamespaceType>) -> Result<SavedNamespaces> {
        let mut saved = Vec::new();
        for typ in types {
            // For pid and time, the namespace our children get is the one to restore.
            let name = match typ {
                LinuxNamespaceType::Pid => "pid_for_children",
                LinuxNamespaceType::Time => "time_for_children",
                other => proc_name(other),
            };
            let path = format!("/proc/self/ns/{name}");
            let file = File::open(&path).with_context(|| format!("open {path}"))?;
            saved.push((typ, file));
        }
        Ok(SavedNamespaces { saved })
    }

    pub fn restore(self) -> Result<()> {
        for (typ, file) in self.saved {
            setns(file.as_fd(), clone_flag(typ))
                .with_context(|| format!("return to own {} namespace", proc_name(typ)))?;
        }
        Ok(())
    }
}

/// Creates the container's cgroup namespace when the spec asks for a new
/// one. Must run in the child after the parent has moved it into its
/// cgroup, so that the namespace's root is the container's cgroup (and
/// /proc/self/cgroup reads "/" inside).
pub fn unshare_cgroup_if_new(spec: &Spec) -> Result<()> {
    if NamespacePlan::from_spec(spec).creates(LinuxNamespaceType::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("create cgroup namespace")?;
    }
    Ok(())
}
