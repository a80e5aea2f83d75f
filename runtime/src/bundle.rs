//! The bundle: config.json loaded with oci-spec's types and checked against
//! the runtime-spec's MUSTs before anything is created on the host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Whether the container's process asks for a terminal.
    pub fn terminal(&self) -> bool {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }
}

pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(dir).with_context(|| format!("bundle {}", dir.display()))?;
    let config_path = dir.join("config.json");
    let data =
        std::fs::read(&config_path).with_context(|| format!("read {}", config_path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&data)
        .map_err(|e| anyhow::anyhow!("parse {}: {e}", config_path.display()))?;
    check_objects(&value)?;
    let spec: Spec = parse_lenient(&data, |v| {
        if let Some(process) = v.get_mut("process") {
            normalize_process(process);
        }
    })
    .map_err(|e| anyhow::anyhow!("parse {}: {e}", config_path.display()))?;
    let rootfs = resolve_rootfs(&dir, &spec)?;
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Where the spec requires a JSON object. serde reads a struct from an
/// array too (its fields in order), so `"process": [...]` would otherwise be
/// taken for a process.
const OBJECTS: [&str; 24] = [
    "",
    "/root",
    "/process",
    "/process/user",
    "/process/capabilities",
    "/process/consoleSize",
    "/process/ioPriority",
    "/process/scheduler",
    "/process/execCPUAffinity",
    "/linux",
    "/linux/resources",
    "/linux/resources/memory",
    "/linux/resources/cpu",
    "/linux/resources/pids",
    "/linux/resources/blockIO",
    "/linux/resources/network",
    "/linux/seccomp",
    "/linux/sysctl",
    "/linux/intelRdt",
    "/linux/personality",
    "/linux/memoryPolicy",
    "/linux/timeOffsets",
    "/hooks",
    "/annotations",
];

/// Arrays whose entries must be objects.
const OBJECT_LISTS: [&str; 14] = [
    "/mounts",
    "/process/rlimits",
    "/linux/namespaces",
    "/linux/devices",
    "/linux/uidMappings",
    "/linux/gidMappings",
    "/linux/resources/devices",
    "/linux/resources/hugepageLimits",
    "/hooks/prestart",
    "/hooks/createRuntime",
    "/hooks/createContainer",
    "/hooks/startContainer",
    "/hooks/poststart",
    "/hooks/poststop",
];

fn check_objects(config: &serde_json::Value) -> Result<()> {
    let name = |pointer: &str| {
        if pointer.is_empty() {
            "the config".to_string()
        } else {
            pointer[1..].replace('/', ".")
        }
    };
    for pointer in OBJECTS {
        if let Some(v) = config.pointer(pointer) {
            if !v.is_object() && !v.is_null() {
                bail!("config.json: {} must be a JSON object", name(pointer));
            }
        }
    }
    for pointer in OBJECT_LISTS {
        if let Some(list) = config.pointer(pointer).and_then(|v| v.as_array()) {
            if list.iter().any(|v| !v.is_object()) {
                bail!(
                    "config.json: every entry of {} must be a JSON object",
                    name(pointer)
                );
            }
        }
    }
    Ok(())
}

/// Typed parsing of `data`; only when that fails, once more after
/// `normalize` has fixed the JSON. When normalizing changed nothing, the
/// first error is kept: its line and column point into the file.
pub fn parse_lenient<T: serde::de::DeserializeOwned>(
    data: &[u8],
    normalize: impl FnOnce(&mut serde_json::Value),
) -> std::result::Result<T, serde_json::Error> {
    let first = match serde_json::from_slice(data) {
        Ok(typed) => return Ok(typed),
        Err(e) => e,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Err(first);
    };
    let original = value.clone();
    normalize(&mut value);
    if value == original {
        return Err(first);
    }
    serde_json::from_value(value)
}

/// What the runtime-spec allows in a process object but oci-spec's types
/// refuse, fixed in the JSON before typed parsing (also for `exec
/// --process`): the spec's names of the scheduler flags, and capability
/// names this build does not know, which runc skips with a warning.
pub fn normalize_process(process: &mut serde_json::Value) {
    use serde_json::Value;
    if let Some(Value::Array(flags)) = process.pointer_mut("/scheduler/flags") {
        for flag in flags.iter_mut() {
            // oci-spec 0.10 spells two of the seven differently.
            let renamed = match flag.as_str() {
                Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
                Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
                _ => continue,
            };
            *flag = Value::String(renamed.to_string());
        }
    }
    let mut unknown: Vec<String> = Vec::new();
    if let Some(Value::Object(sets)) = process.get_mut("capabilities") {
        for set in sets.values_mut() {
            let Value::Array(names) = set else { continue };
            names.retain(|name| {
                let known =
                    serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
                if !known && name.is_string() {
                    let text = name.as_str().unwrap_or_default().to_string();
                    if !unknown.contains(&text) {
                        unknown.push(text);
                    }
                    return false;
                }
                true
            });
        }
    }
    if !unknown.is_empty() {
        crate::log::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
}

fn resolve_rootfs(dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .context("config.json: root is missing")?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs =
        std::fs::canonicalize(&path).with_context(|| format!("rootfs {}", path.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    Ok(rootfs)
}

fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    match process.args() {
        Some(args) if !args.is_empty() => {}
        _ => bail!("config.json: process.args must not be empty"),
    }
    // A NUL byte cannot reach execve or sethostname: it would cut the
    // string short (or fail only after `start` said the container runs).
    let nul = |s: &str| s.contains('\0');
    if process.args().iter().flatten().any(|a| nul(a)) {
        bail!("config.json: process.args contains a NUL byte");
    }
    if process.env().iter().flatten().any(|e| nul(e)) {
        bail!("config.json: process.env contains a NUL byte");
    }
    if process.cwd().as_os_str().as_encoded_bytes().contains(&0) {
        bail!("config.json: process.cwd contains a NUL byte");
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            bail!(
                "config.json: process.ioPriority.priority {} is out of range 0-7",
                io.priority()
            );
        }
    }
    if !process.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd {:?} is not an absolute path",
            process.cwd()
        );
    }
    for rlimit in process.rlimits().iter().flatten() {
        if rlimit.soft() > rlimit.hard() {
            bail!(
                "config.json: rlimit {:?} has soft {} above hard {}",
                rlimit.typ(),
                rlimit.soft(),
                rlimit.hard()
            );
        }
    }
    Ok(())
}

/// The checks runc makes before creating anything, with its wording where
/// callers may match it.
pub fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        bail!("config.json: unsupported ociVersion {version:?} (want 1.x)");
    }
    // The spec makes `process` optional until `start` (which refuses a
    // container without one); what is given must be valid now.
    if let Some(process) = spec.process() {
        validate_process(process)?;
    }
    let nul = |s: &str| s.contains('\0');
    if spec.hostname().as_deref().is_some_and(nul) {
        bail!("config.json: hostname contains a NUL byte");
    }
    if spec.domainname().as_deref().is_some_and(nul) {
        bail!("config.json: domainname contains a NUL byte");
    }
    let linux = spec.linux().as_ref();
    let namespaces = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    for ns in &namespaces {
        if !seen.insert(ns.typ()) {
            bail!("config.json: namespace {:?} is listed twice", ns.typ());
        }
        // An empty path means a new namespace (NamespacePlan agrees).
        if let Some(path) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
            if !path.exists() {
                bail!(
                    "config.json: namespace {} path {} does not exist",
                    ns.typ(),
                    path.display()
                );
            }
        }
    }
    let has = |typ: LinuxNamespaceType| seen.contains(&typ);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!("unable to set hostname without a private UTS namespace");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        bail!("unable to set domainname without a private UTS namespace");
    }
    if let Some(linux) = linux {
        let mapped = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if mapped && !has(LinuxNamespaceType::User) {
            bail!(
                "user namespace mappings specified, but user namespace isn't enabled in the config"
            );
        }
        if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
            bail!("time offsets specified, but time namespace isn't enabled in the config");
        }
        for (key, _) in linux.sysctl().iter().flatten() {
            validate_sysctl(key, &has)?;
        }
        if let Some(policy) = linux.memory_policy() {
            crate::process::memory_policy_args(policy)?;
        }
    }
    // why: the spec says a hook's path MUST be absolute; a relative one
    // would be looked up in the runtime's PATH and run some other program.
    if let Some(hooks) = spec.hooks() {
        #[allow(deprecated)] // prestart is deprecated but still run
        let kinds = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for hook in list.iter().flatten() {
                if !hook.path().is_absolute() {
                    bail!(
                        "config.json: {kind} hook path {} is not an absolute path",
                        hook.path().display()
                    );
                }
                // The spec: if set, timeout MUST be greater than zero.
                if hook.timeout().is_some_and(|t| t <= 0) {
                    bail!(
                        "config.json: {kind} hook {} has timeout {}, which must be greater than zero",
                        hook.path().display(),
                        hook.timeout().unwrap_or(0)
                    );
                }
            }
        }
    }
    for mount in spec.mounts().iter().flatten() {
        if !mount.destination().is_absolute() {
            bail!(
                "config.json: mount destination {} is not an absolute path",
                mount.destination().display()
            );
        }
    }
    Ok(())
}

/// A sysctl is only allowed when the namespace that isolates it is private,
/// else the container would change the host.
fn validate_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC_KEYS: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        if has(LinuxNamespaceType::Ipc) {
            return Ok(());
        }
        bail!("sysctl {key:?} is not allowed as it conflicts with the OCI \"ipc\" namespace");
    }
    if key.starts_with("net.") {
        if has(LinuxNamespaceType::Network) {
            return Ok(());
        }
        bail!("sysctl {key:?} not allowed in host network namespace");
    }
    // why: runc refuses kernel.hostname, which would fight the hostname
    // field, with this phrase; kernel.domainname it allows in a private UTS
    // namespace (Docker sets a container's domain name that way).
    if key == "kernel.hostname" {
        bail!("sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field");
    }
    if key == "kernel.domainname" {
        if has(LinuxNamespaceType::Uts) {
            return Ok(());
        }
        bail!("sysctl {key:?} is not allowed in the host UTS namespace");
    }
    bail!("sysctl {key:?} is not in a separate kernel namespace");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_from(json: &str) -> Result<Spec> {
        Ok(serde_json::from_str(json)?)
    }

    const BASE: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}"#;

    #[test]
    fn minimal_config_is_valid() {
        validate(&spec_from(&format!("{BASE}}}")).unwrap()).unwrap();
    }

    #[test]
    fn hostname_needs_uts() {
        let s = spec_from(&format!(r#"{BASE},"hostname":"x"}}"#)).unwrap();
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("UTS namespace"), "{err}");
    }

    #[test]
    fn wrong_types_are_refused() {
        assert!(spec_from(r#"{"ociVersion":"1.0.2","process":{"args":"sh"}}"#).is_err());
    }

    #[test]
    fn relative_cwd_and_empty_args_are_refused() {
        let s = spec_from(
            &BASE
                .replace(r#""cwd":"/""#, r#""cwd":"tmp""#)
                .replace("}}", "}}}"),
        )
        .ok();
        if let Some(s) = s {
            assert!(validate(&s).is_err());
        }
        let s = spec_from(&format!("{}}}", BASE.replace(r#"["sh"]"#, "[]"))).unwrap();
        assert!(validate(&s).is_err());
    }

    #[test]
    fn net_sysctl_needs_netns() {
        let json = BASE.replace(
            r#""namespaces""#,
            r#""sysctl":{"net.ipv4.ip_forward":"1"},"namespaces""#,
        );
        let s = spec_from(&format!("{json}}}")).unwrap();
        assert!(validate(&s).is_err());
    }

    #[test]
    fn spec_names_of_scheduler_flags_and_unknown_caps_are_accepted() {
        let json = BASE.replace(
            r#""user":{"uid":0,"gid":0}"#,
            r#""user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_KILL","CAP_NO_SUCH"]},
            "scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_RESET_ON_FORK",
            "SCHED_FLAG_RECLAIM","SCHED_FLAG_DL_OVERRUN","SCHED_FLAG_KEEP_POLICY",
            "SCHED_FLAG_KEEP_PARAMS","SCHED_FLAG_UTIL_CLAMP_MIN","SCHED_FLAG_UTIL_CLAMP_MAX"]}"#,
        ) + "}";
        let spec: Spec = parse_lenient(json.as_bytes(), |v| {
            normalize_process(v.get_mut("process").unwrap())
        })
        .unwrap();
        let process = spec.process().as_ref().unwrap();
        let flags = process
            .scheduler()
            .as_ref()
            .unwrap()
            .flags()
            .clone()
            .unwrap();
        assert_eq!(flags.len(), 7);
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
        // A mistake normalizing cannot fix keeps its line and column.
        let bad = BASE.replace(r#""uid":0"#, r#""uid":"x""#) + "}";
        let err = parse_lenient::<Spec>(bad.as_bytes(), |_| {}).unwrap_err();
        assert!(err.line() > 0, "{err}");
    }

    #[test]
    fn duplicate_namespaces_are_refused() {
        let s =
            spec_from(&(BASE.replace(r#"{"type":"mount"}"#, r#"{"type":"pid"}"#) + "}")).unwrap();
        assert!(validate(&s).is_err());
    }
}
