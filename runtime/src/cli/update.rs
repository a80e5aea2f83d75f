//! `ozz update`: change the resource limits of a live container, as runc
//! does: the update is merged into the stored config, applied to the
//! container's cgroup through libcgroups, and saved to state.json.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxResources, Spec};
use serde_json::{json, Map, Value};

use crate::beancounters;
use crate::cgroups;
use crate::cli::UpdateArgs;
use crate::errors::RuntimeError;
use crate::state::{ContainerDir, Status};

pub fn run(root: &Path, args: &UpdateArgs) -> Result<()> {
    // Parse everything before touching the container: a bad value changes
    // nothing.
    let update = requested(args)?;
    // why: runc has no Intel RDT support without resctrl; neither has ozz,
    // and silently ignoring a schema would leave the caller believing it holds.
    if args.l3_cache_schema.is_some() {
        bail!("Intel RDT/CAT: l3 cache schema is not enabled");
    }
    if args.mem_bw_schema.is_some() {
        bail!("Intel RDT/MBA: memory bandwidth schema is not enabled");
    }
    let dir = ContainerDir::open(root, &args.id)?;
    let mut state = dir.load()?;
    // why: runc's Set refuses a stopped container with ErrNotRunning,
    // "container not running"; created and paused containers are updated.
    if state.status(&dir.path) == Status::Stopped {
        return Err(RuntimeError::NotRunning.into());
    }
    state.require_cgroup("update")?;
    let mut config = state.config.clone();
    let mut update = update;
    if !args.beancounters.is_empty() {
        if args.resources.is_some() {
            bail!("--beancounter cannot be combined with -r");
        }
        let (annotations, plan) =
            beancounter_update(&config, &state.rootfs, &update, &args.beancounters)?;
        // Per-process limits first: they are what the kernel may refuse
        // (raising a hard limit needs CAP_SYS_RESOURCE).
        set_running_rlimits(&state.cgroup_path, &plan.rlimits)?;
        let numpty = format!("{}numpty", beancounters::settings::PARAM_PREFIX);
        if annotations.contains_key(&numpty) {
            let max = plan.devpts_max.as_ref().map(|(max, _)| *max);
            set_devpts_max(&mut config, state.pid, max)?;
        }
        let current = serde_json::to_value(
            config
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone())
                .unwrap_or_default(),
        )?;
        merge(
            &mut update,
            &beancounters::mapping::resources_patch(&plan, &current),
        );
        store_beancounters(&mut config, &annotations, &plan.rlimits)?;
        state.annotations.extend(annotations);
    }
    let merged = merge_resources(&config, &update)?;
    let mut linux = config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    config.set_linux(Some(linux));
    // The device rules are recomputed exactly as create computed them, so
    // the update leaves device access as it was.
    let resources = cgroups::effective_resources(&config)?;
    let manager = cgroups::manager(&state.cgroup_path)?;
    if state.rootless {
        cgroups::apply_rootless(&manager, &resources, &state.cgroup_path)?;
    } else {
        cgroups::apply(&manager, &resources, &state.cgroup_path)?;
    }
    state.config = config;
    dir.save(&state)
}

/// The annotations a `--beancounter NAME=VALUE` list sets, and the plan
/// that carries them to the kernel. A field set both by a flag and by a
/// beancounter is refused.
fn beancounter_update(
    config: &Spec,
    rootfs: &Path,
    update: &Value,
    pairs: &[String],
) -> Result<(HashMap<String, String>, beancounters::mapping::Plan)> {
    use beancounters::settings::{KNOBS, KNOB_PREFIX, PARAM_PREFIX};
    let mut annotations = HashMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--beancounter {pair:?}: want NAME=BARRIER:LIMIT"))?;
        let key = if beancounters::params::find(name).is_some() {
            format!("{PARAM_PREFIX}{name}")
        } else if KNOBS.contains(&name) {
            format!("{KNOB_PREFIX}{name}")
        } else {
            bail!("--beancounter {pair:?}: unknown beancounter {name:?}");
        };
        annotations.insert(key, value.to_string());
    }
    let settings = beancounters::Settings::from_annotations(&annotations)?;
    let merged = serde_json::to_value(merge_resources(config, update)?)?;
    let target = beancounters::target(&merged, rootfs, cgroups::is_v2());
    let plan = beancounters::mapping::plan(&settings, &target)?;
    for field in &plan.fields {
        let mut slot = Some(update);
        for key in &field.path {
            slot = slot.and_then(|v| v.get(key));
        }
        if slot.is_some_and(|v| !v.is_null()) {
            bail!(
                "{} and a flag both set {}",
                field.origin,
                field.path.join(".")
            );
        }
    }
    Ok((annotations, plan))
}

/// Lowers or raises the per-process limits of every process already in
/// the container (prlimit); new processes get them from the config.
fn set_running_rlimits(cgroup: &Path, rlimits: &[beancounters::mapping::Rlimit]) -> Result<()> {
    if rlimits.is_empty() {
        return Ok(());
    }
    for pid in cgroups::pids(cgroup)? {
        for r in rlimits {
            let typ: oci_spec::runtime::PosixRlimitType =
                serde_json::from_value(json!(r.typ)).context("rlimit type")?;
            let limit = libc::rlimit {
                rlim_cur: r.soft,
                rlim_max: r.hard,
            };
            // SAFETY: prlimit reads the struct we own and writes nothing
            // (old_limit is null); the pid is only a number to the kernel.
            let rc = unsafe {
                libc::prlimit(
                    pid,
                    crate::process::rlimit_resource(typ),
                    &limit,
                    std::ptr::null_mut(),
                )
            };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                // A process that exited meanwhile is no failure.
                if err.raw_os_error() != Some(libc::ESRCH) {
                    return Err(err).with_context(|| {
                        format!("set {} of process {pid} for {}", r.typ, r.origin)
                    });
                }
            }
        }
    }
    Ok(())
}

/// numpty's new limit on the container's devpts, and in its stored mount
/// options.
fn set_devpts_max(config: &mut Spec, init_pid: i32, max: Option<u64>) -> Result<()> {
    let mut mounts = config.mounts().clone().unwrap_or_default();
    let mount = beancounters::devpts::mount_mut(&mut mounts)
        .context("beancounter numpty needs a devpts mount at /dev/pts")?;
    let mut options: Vec<String> = mount
        .options()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.starts_with("max="))
        .collect();
    beancounters::devpts::set_max(init_pid, &options, max)?;
    options.extend(max.map(|m| format!("max={m}")));
    mount.set_options(Some(options));
    config.set_mounts(Some(mounts));
    Ok(())
}

/// The new settings in the stored config: its annotations, and the rlimits
/// that later `exec`s start with.
fn store_beancounters(
    config: &mut Spec,
    annotations: &HashMap<String, String>,
    rlimits: &[beancounters::mapping::Rlimit],
) -> Result<()> {
    let mut all = config.annotations().clone().unwrap_or_default();
    all.extend(annotations.clone());
    config.set_annotations(Some(all));
    if rlimits.is_empty() {
        return Ok(());
    }
    let mut value = serde_json::to_value(&*config)?;
    let list = value["process"]["rlimits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut list: Vec<Value> = list
        .into_iter()
        .filter(|e| !rlimits.iter().any(|r| e["type"] == json!(r.typ)))
        .collect();
    for r in rlimits {
        list.push(json!({"type": r.typ, "soft": r.soft, "hard": r.hard}));
    }
    value["process"]["rlimits"] = Value::Array(list);
    *config = serde_json::from_value(value).context("config with new rlimits")?;
    Ok(())
}

/// The update asked for, as an OCI LinuxResources JSON object.
fn requested(args: &UpdateArgs) -> Result<Value> {
    if let Some(source) = &args.resources {
        // As runc: with -r, every other flag is ignored.
        let mut text = String::new();
        if source == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read resources from stdin")?;
        } else {
            text = std::fs::read_to_string(source).with_context(|| format!("open {source}"))?;
        }
        let value: Value = serde_json::from_str(&text).context("decode resources")?;
        // Typed once so a wrong type is refused here, not half-applied.
        serde_json::from_value::<LinuxResources>(value.clone()).context("decode resources")?;
        if !value.is_object() {
            bail!("decode resources: expected a JSON object");
        }
        return Ok(value);
    }
    let mut memory = Map::new();
    for (flag, key, value) in [
        ("memory", "limit", &args.memory),
        ("memory-swap", "swap", &args.memory_swap),
        (
            "memory-reservation",
            "reservation",
            &args.memory_reservation,
        ),
    ] {
        if let Some(text) = value {
            let bytes = if text == "-1" {
                -1
            } else {
                ram_in_bytes(text).with_context(|| format!("invalid value for {flag}"))?
            };
            memory.insert(key.to_string(), json!(bytes));
        }
    }
    // For compatibility with v1, as runc: unlimited memory without an
    // explicit swap means unlimited swap too.
    if memory.get("limit") == Some(&json!(-1)) && !memory.contains_key("swap") {
        memory.insert("swap".to_string(), json!(-1));
    }
    for (flag, value) in [
        ("kernel-memory", &args.kernel_memory),
        ("kernel-memory-tcp", &args.kernel_memory_tcp),
    ] {
        if value.is_some() {
            crate::log::warn(&format!("Setting --{flag} is ignored and will be removed"));
        }
    }
    let mut cpu = Map::new();
    for (flag, key, value) in [
        ("cpu-period", "period", &args.cpu_period),
        ("cpu-rt-period", "realtimePeriod", &args.cpu_rt_period),
        ("cpu-share", "shares", &args.cpu_share),
        ("cpu-burst", "burst", &args.cpu_burst),
    ] {
        if let Some(text) = value {
            let v: u64 = text
                .parse()
                .with_context(|| format!("invalid value for {flag}: {text:?}"))?;
            cpu.insert(key.to_string(), json!(v));
        }
    }
    for (flag, key, value) in [
        ("cpu-quota", "quota", &args.cpu_quota),
        ("cpu-rt-runtime", "realtimeRuntime", &args.cpu_rt_runtime),
        ("cpu-idle", "idle", &args.cpu_idle),
    ] {
        if let Some(text) = value {
            let v: i64 = text
                .parse()
                .with_context(|| format!("invalid value for {flag}: {text:?}"))?;
            cpu.insert(key.to_string(), json!(v));
        }
    }
    if let Some(cpus) = args.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
        cpu.insert("cpus".to_string(), json!(cpus));
    }
    if let Some(mems) = args.cpuset_mems.as_ref().filter(|s| !s.is_empty()) {
        cpu.insert("mems".to_string(), json!(mems));
    }
    let mut update = Map::new();
    if !memory.is_empty() {
        update.insert("memory".to_string(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        update.insert("cpu".to_string(), Value::Object(cpu));
    }
    // As runc: 0 means "not given" for these two integer flags.
    if let Some(limit) = args.pids_limit.filter(|&l| l != 0) {
        update.insert("pids".to_string(), json!({ "limit": limit }));
    }
    if let Some(weight) = args.blkio_weight.filter(|&w| w != 0) {
        let weight = u16::try_from(weight)
            .ok()
            .with_context(|| format!("invalid value for blkio-weight: {weight}"))?;
        update.insert("blockIO".to_string(), json!({ "weight": weight }));
    }
    Ok(Value::Object(update))
}

/// The container's resources with `update` laid over them: objects merge
/// key by key, anything else (numbers, strings, arrays) replaces.
fn merge_resources(config: &Spec, update: &Value) -> Result<LinuxResources> {
    let current = config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut merged = serde_json::to_value(current)?;
    merge(&mut merged, update);
    serde_json::from_value(merged).context("merge resources")
}

fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(base), Value::Object(update)) => {
            for (key, value) in update {
                if value.is_null() {
                    continue;
                }
                match base.get_mut(key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, update) => *base = update.clone(),
    }
}

/// docker/go-units' RAMInBytes, which runc uses: a decimal number, an
/// optional space, an optional k/m/g/t/p (binary multiples), an optional
/// `i` and an optional `b`, case-insensitive.
pub fn ram_in_bytes(text: &str) -> Result<i64> {
    let invalid = || anyhow::anyhow!("invalid size: '{text}'");
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(digits_end);
    if number.is_empty()
        || !number.starts_with(|c: char| c.is_ascii_digit())
        || number.ends_with('.')
        || number.contains("..")
    {
        return Err(invalid());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars().peekable();
    let shift = match chars.peek() {
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => 0,
    };
    if shift != 0 {
        chars.next();
    }
    if chars.peek() == Some(&'i') {
        chars.next();
    }
    if chars.peek() == Some(&'b') {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(invalid());
    }
    // go-units parses the number as a float ("1.5g" is allowed) and
    // truncates the product.
    let value: f64 = number
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
        .parse()
        .map_err(|_| invalid())?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_go_units() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("32k").unwrap(), 32 << 10);
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("64 MiB").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 3 << 29);
        for bad in ["", "x", "12x", "-5", "1..2m", "m", "10mm", "1.m"] {
            assert!(ram_in_bytes(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn updates_merge_into_the_stored_resources() {
        let spec: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2", "linux": {
            "resources": {"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5},
            "cpu": {"shares": 512}}}}))
        .unwrap();
        let merged = merge_resources(
            &spec,
            &json!({"memory": {"limit": 150}, "cpu": {"quota": 1000}}),
        )
        .unwrap();
        let m = merged.memory().as_ref().unwrap();
        assert_eq!(m.limit(), Some(150));
        assert_eq!(m.swap(), Some(200));
        let c = merged.cpu().as_ref().unwrap();
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.quota(), Some(1000));
        assert_eq!(merged.pids().as_ref().unwrap().limit(), 5);
    }
}
