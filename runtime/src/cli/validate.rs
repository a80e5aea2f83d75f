//! `ozz validate BUNDLE` (OpenVZ's vzcfgvalidate): checks a bundle's limits
//! for consistency with each other, with this host, and with the
//! guarantees of the containers already running. Prints one `error:` or
//! `warning:` line per finding; errors make the exit status 1.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::beancounters::params::{self, Control, UNLIMITED};
use crate::beancounters::{mapping, Settings};
use crate::cgroups;
use crate::cli::split;
use crate::cli::ValidateArgs;
use crate::state::running_containers;

#[derive(Default)]
struct Findings {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Findings {
    fn error(&mut self, text: String) {
        self.errors.push(text);
    }
    fn warn(&mut self, text: String) {
        self.warnings.push(text);
    }
}

pub fn run(root: &Path, args: &ValidateArgs) -> Result<i32> {
    let mut findings = Findings::default();
    check(root, &args.bundle, &mut findings);
    for e in &findings.errors {
        println!("error: {e}");
    }
    for w in &findings.warnings {
        println!("warning: {w}");
    }
    println!(
        "{}: {} errors, {} warnings",
        args.bundle.join("config.json").display(),
        findings.errors.len(),
        findings.warnings.len()
    );
    Ok(if findings.errors.is_empty() { 0 } else { 1 })
}

fn check(root: &Path, bundle: &Path, findings: &mut Findings) {
    let loaded = match crate::bundle::load(bundle) {
        Ok(b) => b,
        Err(e) => return findings.error(format!("{e:#}")),
    };
    let v2 = cgroups::is_v2();
    let annotations = loaded.spec.annotations().clone().unwrap_or_default();
    // Each annotation on its own, so every bad one is reported.
    let mut good = HashMap::new();
    for (key, value) in &annotations {
        let one = HashMap::from([(key.clone(), value.clone())]);
        match Settings::from_annotations(&one) {
            Ok(_) => {
                good.insert(key.clone(), value.clone());
            }
            Err(e) => findings.error(format!("{e:#}")),
        }
    }
    let settings = Settings::from_annotations(&good).unwrap_or_default();
    let mut config = match serde_json::to_value(&loaded.spec) {
        Ok(c) => c,
        Err(e) => return findings.error(format!("encode config: {e}")),
    };
    let plan = mapping::plan(
        &settings,
        &crate::beancounters::target(&config["linux"]["resources"], &loaded.rootfs, v2),
    );
    match plan {
        Ok(plan) => {
            if let Err(e) = mapping::merge_into_config(&mut config, &plan, v2) {
                findings.error(format!("{e:#}"));
            }
        }
        Err(e) => findings.error(format!("{e:#}")),
    }
    for name in settings.params.keys() {
        let (control, how) = params::control(name, v2);
        if control == Control::Accounted {
            findings.warn(format!(
                "beancounter {name} is accounted only, not enforced: {how}"
            ));
        }
    }
    let host = match split::host() {
        Ok(h) => h,
        Err(e) => return findings.error(format!("{e:#}")),
    };
    let resources = &config["linux"]["resources"];
    check_memory(resources, &host, findings);
    check_cpu(resources, &host, &loaded.spec, findings);
    if let Some(pids) = resources["pids"]["limit"].as_i64().filter(|p| *p > 0) {
        if pids as u64 > host.tasks {
            findings.warn(format!(
                "pids limit {pids} is above this host's {} tasks",
                host.tasks
            ));
        }
    }
    check_guarantees(root, resources, &host, findings);
}

fn bytes(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|b| *b >= 0).map(|b| b as u64),
        Value::String(s) if s == "max" => Some(UNLIMITED),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn check_memory(resources: &Value, host: &split::Host, findings: &mut Findings) {
    let memory = &resources["memory"];
    let unified = &resources["unified"];
    let limit = bytes(&memory["limit"]).or_else(|| bytes(&unified["memory.max"]));
    let high = bytes(&unified["memory.high"]);
    if let (Some(high), Some(limit)) = (high, limit) {
        if high > limit {
            findings.error(format!(
                "memory.high {high} is above the memory limit {limit}"
            ));
        }
    }
    if let Some(limit) = limit.filter(|l| *l < UNLIMITED) {
        if limit > host.ram {
            findings.warn(format!(
                "memory limit {limit} is above this host's RAM ({})",
                host.ram
            ));
        }
    }
    if let Some(swap) = memory["swap"].as_i64().filter(|s| *s >= 0) {
        match memory["limit"].as_i64().filter(|l| *l > 0) {
            None => findings.error(format!(
                "memory.swap {swap} (memory plus swap) is given without a memory limit"
            )),
            Some(l) if swap < l => findings.error(format!(
                "memory.swap {swap} is memory plus swap and must not be below the memory limit {l}"
            )),
            Some(_) => {}
        }
    }
    let swap_wanted = bytes(&unified["memory.swap.max"]).is_some_and(|s| s > 0 && s < UNLIMITED)
        || memory["swap"]
            .as_i64()
            .zip(memory["limit"].as_i64())
            .is_some_and(|(s, l)| s > l);
    if swap_wanted && host.swap == 0 {
        findings.warn("swap is allowed but this host has no swap".into());
    }
    let guarantee = [
        bytes(&memory["reservation"]),
        bytes(&unified["memory.low"]),
        bytes(&unified["memory.min"]),
    ]
    .into_iter()
    .flatten()
    .max();
    if let (Some(g), Some(limit)) = (guarantee, limit) {
        if g > limit {
            findings.error(format!(
                "memory guarantee {g} is above the memory limit {limit}"
            ));
        }
    }
}

fn check_cpu(
    resources: &Value,
    host: &split::Host,
    spec: &oci_spec::runtime::Spec,
    findings: &mut Findings,
) {
    let cpu = &resources["cpu"];
    let quota = cpu["quota"].as_i64().filter(|q| *q > 0);
    let period = cpu["period"].as_u64().unwrap_or(100_000);
    if let Some(quota) = quota {
        if period == 0 {
            findings.error("cpu period is 0".into());
        } else if quota as u64 > period * host.cpus {
            findings.error(format!(
                "cpu quota {quota} per period {period} asks for {:.2} CPUs; this host has {}",
                quota as f64 / period as f64,
                host.cpus
            ));
        }
    }
    let cgroup = cgroups::container_path(spec, "validate", false, false).ok();
    for (key, parent_file_v2, parent_file_v1, what) in [
        (
            "cpus",
            "cpuset.cpus.effective",
            "cpuset.effective_cpus",
            "CPUs",
        ),
        (
            "mems",
            "cpuset.mems.effective",
            "cpuset.effective_mems",
            "memory nodes",
        ),
    ] {
        let Some(wanted) = cpu[key].as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(wanted) = parse_list(wanted) else {
            findings.error(format!("cpu.{key} {wanted:?} is not a list like 0-3,6"));
            continue;
        };
        let Some((dir, available)) = cgroup
            .as_ref()
            .and_then(|c| parent_set(c, parent_file_v2, parent_file_v1))
        else {
            continue;
        };
        let outside: Vec<_> = wanted.difference(&available).collect();
        if !outside.is_empty() {
            findings.error(format!(
                "cpu.{key} asks for {what} {outside:?} outside the parent cgroup's {} ({})",
                dir.display(),
                format_list(&available)
            ));
        }
    }
}

/// The effective set of the nearest existing ancestor of the cgroup.
fn parent_set(cgroup: &Path, v2_file: &str, v1_file: &str) -> Option<(PathBuf, BTreeSet<u32>)> {
    let v2 = cgroups::is_v2();
    let mut dir = cgroup.parent()?.to_path_buf();
    loop {
        let base = cgroups::controller_dir("cpuset", &dir);
        let file = base.join(if v2 { v2_file } else { v1_file });
        if let Ok(text) = std::fs::read_to_string(&file) {
            return Some((dir, parse_list(text.trim())?));
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn parse_list(text: &str) -> Option<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    if text.is_empty() {
        return Some(set);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(part.parse().ok()?);
            }
        }
    }
    Some(set)
}

fn format_list(set: &BTreeSet<u32>) -> String {
    set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The memory guarantees of every running container plus this bundle's
/// must fit in the host's RAM, or some guarantee is a lie.
fn check_guarantees(root: &Path, resources: &Value, host: &split::Host, findings: &mut Findings) {
    let v2 = cgroups::is_v2();
    let this = [
        bytes(&resources["memory"]["reservation"]),
        bytes(&resources["unified"]["memory.low"]),
        bytes(&resources["unified"]["memory.min"]),
    ]
    .into_iter()
    .flatten()
    .filter(|b| *b < UNLIMITED)
    .max()
    .unwrap_or(0);
    if this == 0 {
        return;
    }
    let mut total = this;
    for state in running_containers(root) {
        let dir = cgroups::controller_dir("memory", &state.cgroup_path);
        let files: &[&str] = if v2 {
            &["memory.min", "memory.low"]
        } else {
            &["memory.soft_limit_in_bytes"]
        };
        let guarantee = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .filter_map(|t| t.trim().parse::<u64>().ok())
            .filter(|b| *b < UNLIMITED - params::PAGE)
            .max()
            .unwrap_or(0);
        total = total.saturating_add(guarantee);
    }
    if total > host.ram {
        findings.error(format!(
            "memory guarantees of the running containers plus this one ({total} bytes) exceed this host's RAM ({})",
            host.ram
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_sets() {
        assert_eq!(parse_list("0-2,5").unwrap(), BTreeSet::from([0, 1, 2, 5]));
        assert!(parse_list("2-1").is_none());
        assert!(parse_list("x").is_none());
    }
}
