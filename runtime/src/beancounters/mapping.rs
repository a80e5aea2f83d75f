//! From beancounter settings to the kernel's controls, expressed as the
//! OCI config fields that carry them (linux.resources, its `unified` map on
//! cgroup v2, process.rlimits, the devpts mount's options), so create and
//! update go through the same paths as any bundle's own limits.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::params::{PAGE, UNLIMITED};
use super::settings::{Guarantee, Settings};

/// The CFS period ozz uses for cpulimit and cpus unless the bundle has one.
const CPU_PERIOD: u64 = 100_000;

/// One field of linux.resources a setting decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Keys below linux.resources, e.g. ["pids", "limit"].
    pub path: Vec<String>,
    pub value: Value,
    /// The setting it comes from, for messages.
    pub origin: String,
}

/// An entry of a blockIO throttle list, for the rootfs' disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// throttleReadBpsDevice, throttleWriteBpsDevice, ...
    pub list: &'static str,
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rlimit {
    pub typ: &'static str,
    pub soft: u64,
    pub hard: u64,
    pub origin: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub fields: Vec<Field>,
    pub throttles: Vec<Throttle>,
    pub rlimits: Vec<Rlimit>,
    /// The devpts `max=` option (numpty's limit).
    pub devpts_max: Option<(u64, String)>,
}

/// What the mapping needs to know besides the settings.
pub struct Target<'a> {
    pub v2: bool,
    /// The container's memory limit in bytes when the settings do not give
    /// physpages (memguarantee in percent and v1 swap are relative to it).
    pub memory_limit: Option<i64>,
    /// The CFS period already configured, if any.
    pub cpu_period: Option<u64>,
    pub rootfs: &'a Path,
}

fn bytes_or_unlimited(pages: u64) -> i64 {
    if pages >= UNLIMITED {
        -1
    } else {
        (pages.saturating_mul(PAGE)).min(i64::MAX as u64) as i64
    }
}

fn unified_bytes(pages: u64) -> Value {
    if pages >= UNLIMITED {
        json!("max")
    } else {
        json!(pages.saturating_mul(PAGE).to_string())
    }
}

pub fn plan(settings: &Settings, target: &Target) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut field = |path: &[&str], value: Value, origin: &str| {
        plan.fields.push(Field {
            path: path.iter().map(|s| s.to_string()).collect(),
            value,
            origin: origin.to_string(),
        })
    };
    let bc = |name: &str, column: &str| format!("beancounter {name} {column}");
    let params = &settings.params;

    if let Some(p) = params.get("numproc") {
        let limit = if p.limit >= UNLIMITED {
            -1
        } else {
            p.limit as i64
        };
        field(&["pids", "limit"], json!(limit), &bc("numproc", "limit"));
    }
    let mut memory_limit = target.memory_limit.filter(|l| *l > 0);
    if let Some(p) = params.get("physpages") {
        let limit = bytes_or_unlimited(p.limit);
        field(
            &["memory", "limit"],
            json!(limit),
            &bc("physpages", "limit"),
        );
        memory_limit = (limit > 0).then_some(limit);
        // OpenVZ's VSwap configurations carry a barrier of 0, meaning none;
        // memory.high = 0 would throttle the container to a standstill.
        if target.v2 && p.barrier > 0 {
            field(
                &["unified", "memory.high"],
                unified_bytes(p.barrier),
                &bc("physpages", "barrier"),
            );
        }
    }
    if let Some(p) = params.get("swappages") {
        if target.v2 {
            field(
                &["unified", "memory.swap.max"],
                unified_bytes(p.limit),
                &bc("swappages", "limit"),
            );
        } else {
            // cgroup v1 limits memory plus swap together.
            let Some(memory) = memory_limit else {
                bail!("beancounter swappages needs a memory limit (physpages or linux.resources.memory.limit) on cgroup v1");
            };
            let swap = bytes_or_unlimited(p.limit);
            let total = if swap < 0 {
                -1
            } else {
                memory.saturating_add(swap)
            };
            field(&["memory", "swap"], json!(total), &bc("swappages", "limit"));
        }
    }
    let mut reservation: Option<(i64, String)> = None;
    if let Some(p) = params.get("vmguarpages") {
        if p.barrier < UNLIMITED {
            reservation = Some((bytes_or_unlimited(p.barrier), bc("vmguarpages", "barrier")));
        }
    }
    if let Some(g) = settings.knobs.memguarantee {
        let bytes = match g {
            Guarantee::Bytes(b) => b.min(i64::MAX as u64) as i64,
            Guarantee::Percent(percent) => {
                let Some(memory) = memory_limit else {
                    bail!("org.openvz.memguarantee in percent needs a memory limit (physpages or linux.resources.memory.limit)");
                };
                memory / 100 * percent as i64
            }
        };
        if let Some((other, origin)) = &reservation {
            if *other != bytes {
                bail!("org.openvz.memguarantee ({bytes} bytes) conflicts with {origin} ({other} bytes)");
            }
        }
        reservation = Some((bytes, "org.openvz.memguarantee".to_string()));
    }
    if let Some((bytes, origin)) = reservation {
        field(&["memory", "reservation"], json!(bytes), &origin);
    }
    if let Some(p) = params.get("oomguarpages") {
        if target.v2 && p.barrier < UNLIMITED {
            field(
                &["unified", "memory.min"],
                unified_bytes(p.barrier),
                &bc("oomguarpages", "barrier"),
            );
        }
    }

    for (name, typ, scale) in [
        ("lockedpages", "RLIMIT_MEMLOCK", PAGE),
        ("numsiginfo", "RLIMIT_SIGPENDING", 1),
        ("numfile", "RLIMIT_NOFILE", 1),
    ] {
        if let Some(p) = params.get(name) {
            let scaled = |v: u64| {
                if v >= UNLIMITED {
                    u64::MAX
                } else {
                    v.saturating_mul(scale)
                }
            };
            plan.rlimits.push(Rlimit {
                typ,
                soft: scaled(p.barrier),
                hard: scaled(p.limit),
                origin: format!("beancounter {name}"),
            });
        }
    }
    if let Some(p) = params.get("numpty") {
        if p.limit < UNLIMITED {
            plan.devpts_max = Some((p.limit, bc("numpty", "limit")));
        }
    }

    let knobs = &settings.knobs;
    if let Some(units) = knobs.cpuunits {
        if target.v2 {
            // 1000 units, OpenVZ's default, give cpu.weight's default 100.
            let weight = (units / 10).clamp(1, 10_000);
            field(
                &["unified", "cpu.weight"],
                json!(weight.to_string()),
                "org.openvz.cpuunits",
            );
        } else {
            // 1000 units give cpu.shares' default 1024.
            let shares = (units * 1024 / 1000).max(2);
            field(&["cpu", "shares"], json!(shares), "org.openvz.cpuunits");
        }
    }
    let period = target.cpu_period.unwrap_or(CPU_PERIOD);
    let quota = [
        knobs.cpulimit.map(|percent| percent * period / 100),
        knobs.cpus.map(|cpus| cpus * period),
    ]
    .into_iter()
    .flatten()
    .min();
    if let Some(quota) = quota {
        let origin = match (knobs.cpulimit, knobs.cpus) {
            (Some(_), Some(_)) => "org.openvz.cpulimit and org.openvz.cpus",
            (Some(_), None) => "org.openvz.cpulimit",
            _ => "org.openvz.cpus",
        };
        field(&["cpu", "quota"], json!(quota), origin);
        if target.cpu_period.is_none() {
            field(&["cpu", "period"], json!(period), origin);
        }
    }
    if let Some(mask) = &knobs.cpumask {
        field(&["cpu", "cpus"], json!(mask), "org.openvz.cpumask");
    }
    if let Some(mask) = &knobs.nodemask {
        field(&["cpu", "mems"], json!(mask), "org.openvz.nodemask");
    }
    if let Some(prio) = knobs.ioprio {
        // Monotonic, doubling per step, with ioprio 4 (the default) at
        // the controller's default weight.
        if target.v2 {
            let weight = (100u64 << prio) / 16;
            field(
                &["unified", "io.weight"],
                json!(format!("default {weight}")),
                "org.openvz.ioprio",
            );
        } else {
            // why: libcgroups skips a weight the kernel has no file for;
            // an I/O priority must not be claimed and then dropped.
            let blkio = Path::new("/sys/fs/cgroup/blkio");
            if !blkio.join("blkio.weight").exists() && !blkio.join("blkio.bfq.weight").exists() {
                bail!("org.openvz.ioprio: this kernel has no cgroup v1 I/O weight (blkio.weight or blkio.bfq.weight)");
            }
            let weight = ((500u64 << prio) / 16).clamp(10, 1000);
            field(&["blockIO", "weight"], json!(weight), "org.openvz.ioprio");
        }
    }
    if knobs.iolimit.is_some() || knobs.iopslimit.is_some() {
        let (major, minor) = rootfs_disk(target.rootfs)?;
        for (rate, lists, origin) in [
            (
                knobs.iolimit,
                ["throttleReadBpsDevice", "throttleWriteBpsDevice"],
                "org.openvz.iolimit",
            ),
            (
                knobs.iopslimit,
                ["throttleReadIOPSDevice", "throttleWriteIOPSDevice"],
                "org.openvz.iopslimit",
            ),
        ] {
            let Some(rate) = rate else { continue };
            for list in lists {
                plan.throttles.push(Throttle {
                    list,
                    major,
                    minor,
                    rate,
                    origin: origin.to_string(),
                });
            }
        }
    }
    Ok(plan)
}

/// The whole disk holding the rootfs: io.max and blkio throttles take a
/// disk, not a partition, and not an overlay's anonymous device.
pub fn rootfs_disk(rootfs: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(rootfs)
        .with_context(|| format!("stat rootfs {}", rootfs.display()))?
        .dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        bail!(
            "org.openvz.iolimit: the rootfs {} is not on a block device ({major}:{minor}); give linux.resources.blockIO instead",
            rootfs.display()
        );
    }
    if sys.join("partition").exists() {
        let parent = std::fs::read_to_string(sys.join("../dev"))
            .with_context(|| format!("read the disk of partition {major}:{minor}"))?;
        if let Some((ma, mi)) = parent.trim().split_once(':') {
            if let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) {
                return Ok((ma, mi));
            }
        }
        bail!("cannot read the disk of partition {major}:{minor}");
    }
    Ok((major, minor))
}

/// Writes the plan into a config (as JSON), refusing any value the config
/// already sets differently: a bundle's own limit and a beancounter must
/// never silently race.
pub fn merge_into_config(config: &mut Value, plan: &Plan, v2: bool) -> Result<()> {
    let resources = ensure_object(config, &["linux", "resources"]);
    for f in &plan.fields {
        let path: Vec<&str> = f.path.iter().map(String::as_str).collect();
        if let Some(existing) = get(resources, &path).filter(|v| !v.is_null()) {
            if !same_value(existing, &f.value) {
                bail!(
                    "{} ({}) conflicts with linux.resources.{} ({})",
                    f.origin,
                    f.value,
                    path.join("."),
                    existing
                );
            }
        }
        if let Some(twin) = unified_twin(&path, v2) {
            if let Some(existing) = get(resources, &["unified", twin]) {
                bail!(
                    "{} conflicts with linux.resources.unified[{twin:?}] ({existing})",
                    f.origin
                );
            }
        }
        if path == ["unified", "memory.swap.max"] {
            if let Some(existing) = get(resources, &["memory", "swap"]).filter(|v| !v.is_null()) {
                bail!(
                    "{} conflicts with linux.resources.memory.swap ({existing}); give one of them",
                    f.origin
                );
            }
        }
        if path == ["unified", "cpu.weight"] {
            if let Some(existing) = get(resources, &["cpu", "shares"]).filter(|v| !v.is_null()) {
                bail!(
                    "{} conflicts with linux.resources.cpu.shares ({existing})",
                    f.origin
                );
            }
        }
        if path == ["unified", "io.weight"] {
            if let Some(existing) = get(resources, &["blockIO", "weight"]).filter(|v| !v.is_null())
            {
                bail!(
                    "{} conflicts with linux.resources.blockIO.weight ({existing})",
                    f.origin
                );
            }
        }
        set(resources, &path, f.value.clone());
    }
    for t in &plan.throttles {
        let list = ensure_object(resources, &["blockIO"])
            .as_object_mut()
            .expect("an object")
            .entry(t.list)
            .or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        let entries = list.as_array_mut().expect("an array");
        match entries
            .iter()
            .find(|e| e["major"] == json!(t.major) && e["minor"] == json!(t.minor))
        {
            Some(e) if e["rate"] != json!(t.rate) => bail!(
                "{} ({}) conflicts with linux.resources.blockIO.{} for {}:{} ({})",
                t.origin,
                t.rate,
                t.list,
                t.major,
                t.minor,
                e["rate"]
            ),
            Some(_) => {}
            None => entries.push(json!({"major": t.major, "minor": t.minor, "rate": t.rate})),
        }
    }
    if !plan.rlimits.is_empty() {
        let process = ensure_object(config, &["process"]);
        let list = process
            .as_object_mut()
            .expect("an object")
            .entry("rlimits")
            .or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        let entries = list.as_array_mut().expect("an array");
        for r in &plan.rlimits {
            let wanted = json!({"type": r.typ, "soft": r.soft, "hard": r.hard});
            match entries.iter().find(|e| e["type"] == json!(r.typ)) {
                Some(e) if e["soft"] != wanted["soft"] || e["hard"] != wanted["hard"] => bail!(
                    "{} ({}:{}) conflicts with process.rlimits {} ({}:{})",
                    r.origin,
                    r.soft,
                    r.hard,
                    r.typ,
                    e["soft"],
                    e["hard"]
                ),
                Some(_) => {}
                None => entries.push(wanted),
            }
        }
    }
    if let Some((max, origin)) = &plan.devpts_max {
        let mount = config
            .get_mut("mounts")
            .and_then(Value::as_array_mut)
            .and_then(|mounts| {
                mounts.iter_mut().rev().find(|m| {
                    m["destination"].as_str().map(|d| d.trim_end_matches('/')) == Some("/dev/pts")
                        && m["type"] == json!("devpts")
                })
            })
            .with_context(|| format!("{origin} needs a devpts mount at /dev/pts"))?;
        let options = mount
            .as_object_mut()
            .expect("an object")
            .entry("options")
            .or_insert_with(|| json!([]));
        let options = options
            .as_array_mut()
            .with_context(|| format!("{origin}: the /dev/pts mount's options are not a list"))?;
        let wanted = format!("max={max}");
        match options
            .iter()
            .filter_map(Value::as_str)
            .find(|o| o.starts_with("max="))
        {
            Some(o) if o != wanted => {
                bail!("{origin} ({max}) conflicts with the /dev/pts mount option {o}")
            }
            Some(_) => {}
            None => options.push(json!(wanted)),
        }
        if !options.iter().any(|o| o == "newinstance") {
            options.push(json!("newinstance"));
        }
    }
    Ok(())
}

/// The unified key that sets the same file as an OCI field on cgroup v2.
fn unified_twin(path: &[&str], v2: bool) -> Option<&'static str> {
    if !v2 {
        return None;
    }
    Some(match path {
        ["pids", "limit"] => "pids.max",
        ["memory", "limit"] => "memory.max",
        ["memory", "reservation"] => "memory.low",
        ["memory", "swap"] => "memory.swap.max",
        ["cpu", "quota"] | ["cpu", "period"] => "cpu.max",
        ["cpu", "shares"] => "cpu.weight",
        ["cpu", "cpus"] => "cpuset.cpus",
        ["cpu", "mems"] => "cpuset.mems",
        _ => return None,
    })
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn get<'v>(mut v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    for key in path {
        v = v.get(key)?;
    }
    Some(v)
}

fn ensure_object<'v>(mut v: &'v mut Value, path: &[&str]) -> &'v mut Value {
    for key in path {
        if !v.is_object() {
            *v = json!({});
        }
        v = v
            .as_object_mut()
            .expect("an object")
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    if !v.is_object() {
        *v = json!({});
    }
    v
}

fn set(v: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    ensure_object(v, parents)
        .as_object_mut()
        .expect("an object")
        .insert(last.to_string(), value);
}

/// The plan's resources as a LinuxResources JSON patch (update semantics:
/// the new values replace what is there).
pub fn resources_patch(plan: &Plan, current: &Value) -> Value {
    let mut patch = json!({});
    for f in &plan.fields {
        let path: Vec<&str> = f.path.iter().map(String::as_str).collect();
        set(&mut patch, &path, f.value.clone());
    }
    for t in &plan.throttles {
        // Lists replace as a whole in a merge: start from the current one.
        let list = patch
            .get("blockIO")
            .and_then(|b| b.get(t.list))
            .or_else(|| current.get("blockIO").and_then(|b| b.get(t.list)))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut list: Vec<Value> = list
            .into_iter()
            .filter(|e| !(e["major"] == json!(t.major) && e["minor"] == json!(t.minor)))
            .collect();
        list.push(json!({"major": t.major, "minor": t.minor, "rate": t.rate}));
        set(&mut patch, &["blockIO", t.list], Value::Array(list));
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let a: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_annotations(&a).unwrap()
    }

    fn target(v2: bool) -> Target<'static> {
        Target {
            v2,
            memory_limit: None,
            cpu_period: None,
            rootfs: Path::new("/"),
        }
    }

    fn merged(pairs: &[(&str, &str)], v2: bool, mut config: Value) -> Result<Value> {
        let plan = plan(&settings(pairs), &target(v2))?;
        merge_into_config(&mut config, &plan, v2)?;
        Ok(config)
    }

    #[test]
    fn memory_parameters_map_to_the_hierarchys_files() {
        let pairs = [
            ("org.openvz.beancounter.physpages", "16M:32M"),
            ("org.openvz.beancounter.swappages", "0:8M"),
            ("org.openvz.beancounter.numproc", "40"),
        ];
        let v2 = merged(&pairs, true, json!({})).unwrap();
        let r = &v2["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], json!(32 << 20));
        assert_eq!(r["unified"]["memory.high"], json!((16 << 20).to_string()));
        assert_eq!(
            r["unified"]["memory.swap.max"],
            json!((8 << 20).to_string())
        );
        assert_eq!(r["pids"]["limit"], json!(40));
        let v1 = merged(&pairs, false, json!({})).unwrap();
        let r = &v1["linux"]["resources"];
        assert_eq!(r["memory"]["swap"], json!(40 << 20), "memory + swap on v1");
        assert!(r.get("unified").is_none());
    }

    #[test]
    fn a_differing_bundle_limit_is_a_conflict_and_an_equal_one_is_not() {
        let config = json!({"linux": {"resources": {"pids": {"limit": 20}}}});
        let err = merged(
            &[("org.openvz.beancounter.numproc", "10")],
            true,
            config.clone(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("conflicts with linux.resources.pids.limit"),
            "{err}"
        );
        merged(&[("org.openvz.beancounter.numproc", "20")], true, config).unwrap();
        let unified = json!({"linux": {"resources": {"unified": {"memory.max": "100"}}}});
        assert!(merged(&[("org.openvz.beancounter.physpages", "10")], true, unified).is_err());
    }

    #[test]
    fn rlimits_and_devpts_follow_their_parameters() {
        let config = json!({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}]},
            "mounts": [{"destination": "/dev/pts", "type": "devpts", "options": ["newinstance"]}]});
        let out = merged(
            &[
                ("org.openvz.beancounter.numpty", "4"),
                ("org.openvz.beancounter.lockedpages", "1:2"),
            ],
            true,
            config.clone(),
        )
        .unwrap();
        assert_eq!(out["mounts"][0]["options"], json!(["newinstance", "max=4"]));
        let rl = &out["process"]["rlimits"];
        assert_eq!(
            rl[1],
            json!({"type": "RLIMIT_MEMLOCK", "soft": 4096, "hard": 8192})
        );
        assert!(merged(&[("org.openvz.beancounter.numfile", "11")], true, config).is_err());
    }

    #[test]
    fn cpu_knobs_take_the_smaller_cap() {
        let out = merged(
            &[
                ("org.openvz.cpulimit", "150"),
                ("org.openvz.cpus", "1"),
                ("org.openvz.cpuunits", "2000"),
            ],
            true,
            json!({}),
        )
        .unwrap();
        let r = &out["linux"]["resources"];
        assert_eq!(r["cpu"]["quota"], json!(100_000));
        assert_eq!(r["cpu"]["period"], json!(100_000));
        assert_eq!(r["unified"]["cpu.weight"], json!("200"));
        let shares = json!({"linux": {"resources": {"cpu": {"shares": 512}}}});
        assert!(merged(&[("org.openvz.cpuunits", "2000")], true, shares).is_err());
    }
}
