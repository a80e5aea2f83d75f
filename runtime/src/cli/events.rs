//! `ozz events`: the container's cgroup statistics and OOM kills as JSON
//! lines in runc's events format (`types/events.go`). Read straight from the
//! cgroup files, tolerating controllers that are absent, so one missing
//! file never hides the rest. Single-threaded: a sleep loop polls.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::beancounters;
use crate::cgroups;
use crate::cli::EventsArgs;
use crate::state::{ContainerDir, Status};

/// How often the OOM counter and the container's liveness are checked
/// between stats events.
const POLL: Duration = Duration::from_millis(100);

pub fn run(root: &Path, args: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&args.interval)?;
    if interval.is_zero() {
        bail!("duration interval must be greater than 0");
    }
    // The lock is held only while reading the state: events runs for as
    // long as the container does and must not block kill or delete.
    let state = {
        let dir = ContainerDir::open(root, &args.id)?;
        let state = dir.load()?;
        if state.status(&dir.path) == Status::Stopped {
            // runc's wording.
            bail!("container with id {} is not running", args.id);
        }
        state.require_cgroup("events")?;
        state
    };
    let path = state.cgroup_path.clone();
    let id = state.id.clone();
    if args.stats {
        return emit(&Event::new("stats", &id, Some(stats(&path))));
    }
    let mut ooms = cgroups::oom_kill_count(&path).unwrap_or(0);
    let mut failcnts = beancounters::view::failcnts(&path, &state.carried_beancounters);
    let mut next_stats = Instant::now() + interval;
    loop {
        let alive = state.init_alive();
        // Checked once more after the init died: an OOM kill of the init is
        // what stops the container, and it must still be reported.
        if let Some(count) = cgroups::oom_kill_count(&path) {
            if count > ooms {
                emit(&Event::<()>::new("oom", &id, None))?;
            }
            ooms = ooms.max(count);
        }
        // A beancounter event for each refusal counter that grew, as
        // OpenVZ's failcnt would have.
        let now_failcnts = beancounters::view::failcnts(&path, &state.carried_beancounters);
        for (resource, count) in &now_failcnts {
            let before = failcnts
                .iter()
                .find(|(r, _)| r == resource)
                .map_or(0, |(_, c)| *c);
            if *count > before {
                let data = Beancounter {
                    resource,
                    failcnt: *count,
                    delta: count - before,
                };
                emit(&Event::new("beancounter", &id, Some(data)))?;
            }
        }
        if !now_failcnts.is_empty() {
            failcnts = now_failcnts;
        }
        if !alive {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_stats {
            emit(&Event::new("stats", &id, Some(stats(&path))))?;
            next_stats = now + interval;
        }
        std::thread::sleep(POLL.min(next_stats.saturating_duration_since(Instant::now())));
    }
}

/// One line of output. A struct, not a `json!` map, because serde_json's
/// map sorts its keys and runc prints `type`, `id`, `data` in that order
/// (serde_json's preserve_order feature would pull in indexmap for this).
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

impl<'a, T: Serialize> Event<'a, T> {
    fn new(kind: &'static str, id: &'a str, data: Option<T>) -> Self {
        Event { kind, id, data }
    }
}

/// The data of a beancounter event.
#[derive(Serialize)]
struct Beancounter<'a> {
    resource: &'a str,
    failcnt: u64,
    delta: u64,
}

fn emit<T: Serialize>(event: &Event<'_, T>) -> Result<()> {
    let line = serde_json::to_string(event)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Go's time.ParseDuration for the units a person uses: "5s", "500ms",
/// "1m30s", "1.5s", "2h".
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = || anyhow::anyhow!("invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..end].parse().map_err(|_| invalid())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A single-number file; "max" (v2's unlimited) reads as u64::MAX.
fn number(path: &Path) -> Option<u64> {
    let text = read(path)?;
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

/// A flat-keyed file ("key value" lines).
fn keyed(path: &Path) -> BTreeMap<String, u64> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// runc's `types.Stats` (the fields ozz can fill) for the cgroup at `path`.
pub fn stats(path: &Path) -> Value {
    if cgroups::is_v2() {
        stats_v2(&cgroups::controller_dir("", path))
    } else {
        stats_v1(path)
    }
}

/// A MemoryEntry: `limit` and `failcnt` always present, as runc encodes it.
fn memory_entry(usage: u64, max: u64, limit: u64, failcnt: u64) -> Value {
    let mut entry = Map::new();
    entry.insert("limit".into(), json!(limit));
    if usage != 0 {
        entry.insert("usage".into(), json!(usage));
    }
    if max != 0 {
        entry.insert("max".into(), json!(max));
    }
    entry.insert("failcnt".into(), json!(failcnt));
    Value::Object(entry)
}

/// Drops the zero values Go's `omitempty` would drop from an object.
fn omit_zero(fields: &[(&str, u64)]) -> Value {
    Value::Object(
        fields
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

fn stats_v1(path: &Path) -> Value {
    let cpu_dir = cgroups::controller_dir("cpu", path);
    let acct = cgroups::controller_dir("cpuacct", path);
    let mem = cgroups::controller_dir("memory", path);
    let pids_dir = cgroups::controller_dir("pids", path);
    let blkio = cgroups::controller_dir("blkio", path);

    // cpuacct.stat is in USER_HZ ticks; runc reports nanoseconds.
    let ticks = keyed(&acct.join("cpuacct.stat"));
    let hz = crate::state::clock_ticks();
    let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * (1_000_000_000 / hz);
    let mut usage = Map::new();
    if let Some(total) = number(&acct.join("cpuacct.usage")).filter(|&t| t != 0) {
        usage.insert("total".into(), json!(total));
    }
    let percpu: Vec<u64> = read(&acct.join("cpuacct.usage_percpu"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if !percpu.is_empty() {
        usage.insert("percpu".into(), json!(percpu));
    }
    usage.insert("kernel".into(), json!(ns("system")));
    usage.insert("user".into(), json!(ns("user")));
    let throttle = keyed(&cpu_dir.join("cpu.stat"));
    let t = |k: &str| throttle.get(k).copied().unwrap_or(0);
    let cpu = json!({
        "usage": usage,
        "throttling": omit_zero(&[("periods", t("nr_periods")),
            ("throttledPeriods", t("nr_throttled")), ("throttledTime", t("throttled_time"))]),
    });

    let entry = |prefix: &str| {
        let f = |name: &str| number(&mem.join(format!("{prefix}{name}"))).unwrap_or(0);
        memory_entry(
            f("usage_in_bytes"),
            f("max_usage_in_bytes"),
            f("limit_in_bytes"),
            f("failcnt"),
        )
    };
    let raw = keyed(&mem.join("memory.stat"));
    let mut memory = Map::new();
    if let Some(&cache) = raw.get("cache").filter(|&&c| c != 0) {
        memory.insert("cache".into(), json!(cache));
    }
    memory.insert("usage".into(), entry("memory."));
    memory.insert("swap".into(), entry("memory.memsw."));
    memory.insert("kernel".into(), entry("memory.kmem."));
    memory.insert("kernelTCP".into(), entry("memory.kmem.tcp."));
    if !raw.is_empty() {
        memory.insert("raw".into(), json!(raw));
    }

    let blkio = json!({
        "ioServiceBytesRecursive": blkio_v1(&blkio, "io_service_bytes_recursive"),
        "ioServicedRecursive": blkio_v1(&blkio, "io_serviced_recursive"),
    });
    json!({
        "cpu": cpu,
        "memory": memory,
        "pids": pids(&pids_dir),
        "blkio": strip_empty(blkio),
        "hugetlb": hugetlb(&cgroups::controller_dir("hugetlb", path), false),
    })
}

fn pids(dir: &Path) -> Value {
    // runc: a limit of 0 means "max".
    let limit = number(&dir.join("pids.max"))
        .filter(|&l| l != u64::MAX)
        .unwrap_or(0);
    omit_zero(&[
        ("current", number(&dir.join("pids.current")).unwrap_or(0)),
        ("limit", limit),
    ])
}

/// blkio.FILE, or blkio.throttle.FILE when the CFQ file is empty (as runc).
fn blkio_v1(dir: &Path, file: &str) -> Vec<Value> {
    let entries = |name: String| -> Vec<Value> {
        read(&dir.join(name))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let (major, minor) = fields.next()?.split_once(':')?;
                let op = fields.next()?;
                let value: u64 = fields.next()?.parse().ok()?;
                Some(blkio_entry(
                    major.parse().ok()?,
                    minor.parse().ok()?,
                    op,
                    value,
                ))
            })
            .collect()
    };
    let cfq = entries(format!("blkio.{file}"));
    if cfq.is_empty() {
        entries(format!("blkio.throttle.{file}"))
    } else {
        cfq
    }
}

fn blkio_entry(major: u64, minor: u64, op: &str, value: u64) -> Value {
    let mut entry = Map::new();
    for (k, v) in [("major", major), ("minor", minor)] {
        if v != 0 {
            entry.insert(k.into(), json!(v));
        }
    }
    if !op.is_empty() {
        entry.insert("op".into(), json!(op));
    }
    if value != 0 {
        entry.insert("value".into(), json!(value));
    }
    Value::Object(entry)
}

/// Removes empty arrays (Go's omitempty on the blkio lists).
fn strip_empty(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.as_array().is_some_and(|a| a.is_empty()));
    }
    value
}

/// Per page size: usage, max usage, failcnt (v1 `hugetlb.SIZE.*`, v2
/// `hugetlb.SIZE.current/max` and the `max` event).
fn hugetlb(dir: &Path, v2: bool) -> Value {
    let mut out = Map::new();
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Value::Object(out);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|n| n.strip_suffix("kB"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let size = if kb >= 1 << 20 {
            format!("{}GB", kb >> 20)
        } else if kb >= 1 << 10 {
            format!("{}MB", kb >> 10)
        } else {
            format!("{kb}KB")
        };
        let f = |suffix: &str| dir.join(format!("hugetlb.{size}.{suffix}"));
        let (usage, max, failcnt) = if v2 {
            if !f("current").exists() {
                continue;
            }
            let events = keyed(&f("events"));
            (
                number(&f("current")).unwrap_or(0),
                0,
                events.get("max").copied().unwrap_or(0),
            )
        } else {
            if !f("usage_in_bytes").exists() {
                continue;
            }
            (
                number(&f("usage_in_bytes")).unwrap_or(0),
                number(&f("max_usage_in_bytes")).unwrap_or(0),
                number(&f("failcnt")).unwrap_or(0),
            )
        };
        let mut v = Map::new();
        if usage != 0 {
            v.insert("usage".into(), json!(usage));
        }
        if max != 0 {
            v.insert("max".into(), json!(max));
        }
        v.insert("failcnt".into(), json!(failcnt));
        out.insert(size, Value::Object(v));
    }
    Value::Object(out)
}

fn stats_v2(dir: &Path) -> Value {
    // cpu.stat is in microseconds; runc reports nanoseconds.
    let stat = keyed(&dir.join("cpu.stat"));
    let us = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
    let mut usage = Map::new();
    if us("usage_usec") != 0 {
        usage.insert("total".into(), json!(us("usage_usec")));
    }
    usage.insert("kernel".into(), json!(us("system_usec")));
    usage.insert("user".into(), json!(us("user_usec")));
    let cpu = json!({
        "usage": usage,
        "throttling": omit_zero(&[
            ("periods", stat.get("nr_periods").copied().unwrap_or(0)),
            ("throttledPeriods", stat.get("nr_throttled").copied().unwrap_or(0)),
            ("throttledTime", us("throttled_usec")),
        ]),
    });

    let raw = keyed(&dir.join("memory.stat"));
    let events = keyed(&dir.join("memory.events"));
    let current = number(&dir.join("memory.current")).unwrap_or(0);
    let limit = number(&dir.join("memory.max")).unwrap_or(u64::MAX);
    let peak = number(&dir.join("memory.peak")).unwrap_or(0);
    let mut memory = Map::new();
    if let Some(&file) = raw.get("file").filter(|&&c| c != 0) {
        memory.insert("cache".into(), json!(file));
    }
    memory.insert(
        "usage".into(),
        memory_entry(
            current,
            peak,
            limit,
            events.get("max").copied().unwrap_or(0),
        ),
    );
    // As runc: v2's swap entry is memory+swap, like v1's memsw.
    if let Some(swap) = number(&dir.join("memory.swap.current")) {
        let swap_max = number(&dir.join("memory.swap.max")).unwrap_or(u64::MAX);
        let swap_limit = if swap_max == u64::MAX || limit == u64::MAX {
            u64::MAX
        } else {
            swap_max + limit
        };
        let swap_events = keyed(&dir.join("memory.swap.events"));
        memory.insert(
            "swap".into(),
            memory_entry(
                swap + current,
                0,
                swap_limit,
                swap_events.get("fail").copied().unwrap_or(0),
            ),
        );
    }
    if !raw.is_empty() {
        memory.insert("raw".into(), json!(raw));
    }

    // io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N".
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in read(&dir.join("io.stat")).unwrap_or_default().lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "rbytes" => bytes.push(blkio_entry(major, minor, "Read", value)),
                "wbytes" => bytes.push(blkio_entry(major, minor, "Write", value)),
                "rios" => ios.push(blkio_entry(major, minor, "Read", value)),
                "wios" => ios.push(blkio_entry(major, minor, "Write", value)),
                _ => {}
            }
        }
    }
    let blkio = json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios});
    json!({
        "cpu": cpu,
        "memory": memory,
        "pids": pids(dir),
        "blkio": strip_empty(blkio),
        "hugetlb": hugetlb(dir, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
