//! The text of each file of the view, for one container (or the host's own
//! file when the reader is in none): everything is read live from the
//! container's cgroup and from the host's /proc at the moment of the open.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use crate::beancounters::params::UNLIMITED;
use crate::beancounters::view;
use crate::cgroups;
use crate::state::ContainerState;

/// The files of the view, in the order `ls` shows them.
pub const NAMES: &[&str] = &[
    "cpuinfo",
    "diskstats",
    "loadavg",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "user_beancounters",
];

/// The files ozz binds over the container's /proc (diskstats and swaps are
/// served for whoever binds them by hand).
pub const BOUND: &[&str] = &["meminfo", "cpuinfo", "stat", "loadavg", "uptime"];

/// The container's view of `name`; the host's file when `owner` is None or
/// the container has no limit that changes it.
pub fn render(
    name: &str,
    owner: Option<&ContainerState>,
    root: &Path,
    loads: &[f64; 3],
) -> Vec<u8> {
    let text = match owner {
        None if name == "user_beancounters" => Some(beancounters_of_all(root)),
        None => None,
        Some(state) => {
            let cg = Cgroup::of(state);
            match name {
                "user_beancounters" => Some(user_beancounters(state)),
                "meminfo" => cg.meminfo(),
                "cpuinfo" => cg.cpuinfo(),
                "stat" => cg.stat(),
                "uptime" => cg.uptime(),
                "loadavg" => Some(cg.loadavg(loads)),
                "diskstats" => Some(cg.diskstats()),
                "swaps" => cg.swaps(),
                _ => None,
            }
        }
    };
    text.map(String::into_bytes)
        .unwrap_or_else(|| host(name).into_bytes())
}

fn host(name: &str) -> String {
    std::fs::read_to_string(Path::new("/proc").join(name)).unwrap_or_default()
}

/// The container's /proc/user_beancounters: the rows of `ozz beancounters`.
fn user_beancounters(state: &ContainerState) -> String {
    view::openvz_text(std::slice::from_ref(state))
}

/// The host's view, as on an OpenVZ host node: every running container.
fn beancounters_of_all(root: &Path) -> String {
    view::openvz_text(&crate::state::running_containers(root))
}

struct Cgroup<'a> {
    state: &'a ContainerState,
    v2: bool,
}

/// A number that means "no limit": v2's "max", v1's huge values, -1.
fn limit_value(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" || text == "-1" {
        return None;
    }
    let v: u64 = text.parse().ok()?;
    (v < UNLIMITED - crate::beancounters::params::PAGE).then_some(v)
}

/// `key value` lines of a host /proc file in kB (meminfo).
fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim().trim_end_matches("kB").trim().parse().ok())?
    })
}

/// A cpu list ("0-3,6") as a set.
fn parse_cpus(list: &str) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            set.extend(a..=b);
        }
    }
    set
}

impl<'a> Cgroup<'a> {
    fn of(state: &'a ContainerState) -> Cgroup<'a> {
        Cgroup {
            state,
            v2: cgroups::is_v2(),
        }
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(
            cgroups::controller_dir(controller, &self.state.cgroup_path).join(file),
        )
        .ok()
    }

    fn keyed(&self, controller: &str, file: &str, key: &str) -> Option<u64> {
        cgroups::read_keyed(
            &cgroups::controller_dir(controller, &self.state.cgroup_path).join(file),
            key,
        )
    }

    /// memory.stat's key under its v1 (hierarchical) or v2 name.
    fn mem_stat(&self, v2_key: &str, v1_key: &str) -> u64 {
        let key = if self.v2 {
            v2_key.to_string()
        } else {
            format!("total_{v1_key}")
        };
        self.keyed("memory", "memory.stat", &key).unwrap_or(0)
    }

    /// The memory limit in bytes, if there is one below the host's RAM.
    fn memory_limit(&self, host_total: u64) -> Option<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        limit_value(&self.read("memory", file)?).filter(|l| *l < host_total)
    }

    fn memory_usage(&self) -> u64 {
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        self.read("memory", file)
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// (total, used) swap in bytes: the container's swap limit (bounded by
    /// the host's swap) and its use.
    fn swap(&self, host_swap: u64, memory_limit: u64) -> (u64, u64) {
        let (limit, used) = if self.v2 {
            let limit = self
                .read("memory", "memory.swap.max")
                .and_then(|t| limit_value(&t));
            let used = self
                .read("memory", "memory.swap.current")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            (limit, used)
        } else {
            let memsw = self
                .read("memory", "memory.memsw.limit_in_bytes")
                .and_then(|t| limit_value(&t));
            let used = self
                .read("memory", "memory.memsw.usage_in_bytes")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map_or(0, |sw| sw.saturating_sub(self.memory_usage()));
            (memsw.map(|s| s.saturating_sub(memory_limit)), used)
        };
        let total = limit.map_or(host_swap, |l| l.min(host_swap));
        (total, used.min(total))
    }

    fn meminfo(&self) -> Option<String> {
        let host = host("meminfo");
        let host_total = meminfo_kib(&host, "MemTotal")? * 1024;
        let limit = self.memory_limit(host_total)?;
        let usage = self.memory_usage().min(limit);
        let host_swap = meminfo_kib(&host, "SwapTotal").unwrap_or(0) * 1024;
        let (swap_total, swap_used) = self.swap(host_swap, limit);
        let active_anon = self.mem_stat("active_anon", "active_anon");
        let inactive_anon = self.mem_stat("inactive_anon", "inactive_anon");
        let active_file = self.mem_stat("active_file", "active_file");
        let inactive_file = self.mem_stat("inactive_file", "inactive_file");
        let shmem = self.mem_stat("shmem", "shmem");
        let cached = self.mem_stat("file", "cache");
        let slab_r = self.mem_stat("slab_reclaimable", "slab_reclaimable");
        let slab_u = self.mem_stat("slab_unreclaimable", "slab_unreclaimable");
        let free = limit - usage;
        let values: [(&str, u64); 20] = [
            ("MemTotal", limit),
            ("MemFree", free),
            // What can be had without swapping: the free part and the
            // page cache the kernel would drop first.
            ("MemAvailable", (free + inactive_file + slab_r).min(limit)),
            ("Buffers", 0),
            ("Cached", cached.saturating_sub(shmem).min(limit)),
            ("SwapCached", 0),
            ("Active", active_anon + active_file),
            ("Inactive", inactive_anon + inactive_file),
            ("Active(anon)", active_anon),
            ("Inactive(anon)", inactive_anon),
            ("Active(file)", active_file),
            ("Inactive(file)", inactive_file),
            ("Unevictable", self.mem_stat("unevictable", "unevictable")),
            ("SwapTotal", swap_total),
            ("SwapFree", swap_total - swap_used),
            ("AnonPages", self.mem_stat("anon", "rss")),
            ("Mapped", self.mem_stat("file_mapped", "mapped_file")),
            ("Shmem", shmem),
            ("Slab", slab_r + slab_u),
            ("SReclaimable", slab_r),
        ];
        let mut out = String::new();
        for line in host.lines() {
            let key = line.split(':').next().unwrap_or("");
            let value = values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            let value = value.or((key == "SUnreclaim").then_some(slab_u));
            match value {
                // The kernel's layout: the name and colon in 16 columns,
                // the number in 8.
                Some(bytes) => {
                    let _ = writeln!(out, "{:<16}{:>8} kB", format!("{key}:"), bytes / 1024);
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Some(out)
    }

    /// The CPUs the container may use: its cpuset, cut down to as many as
    /// its CFS quota buys (rounded up). None when that is every host CPU.
    fn cpus(&self) -> Option<Vec<usize>> {
        let host: BTreeSet<usize> = parse_cpus(&host_online_cpus());
        let cpuset = if self.v2 {
            self.read("cpuset", "cpuset.cpus.effective")
        } else {
            self.read("cpuset", "cpuset.effective_cpus")
                .or_else(|| self.read("cpuset", "cpuset.cpus"))
        }
        .map(|t| parse_cpus(&t))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| host.clone());
        let mut cpus: Vec<usize> = cpuset.intersection(&host).copied().collect();
        if cpus.is_empty() {
            cpus = host.iter().copied().collect();
        }
        if let Some(n) = self.quota_cpus() {
            cpus.truncate(n.max(1));
        }
        (cpus.len() < host.len()).then_some(cpus)
    }

    /// ceil(quota / period), if a quota is set.
    fn quota_cpus(&self) -> Option<usize> {
        let (quota, period) = if self.v2 {
            let text = self.read("cpu", "cpu.max")?;
            let mut it = text.split_whitespace();
            let quota = limit_value(it.next()?)?;
            (quota, it.next()?.parse::<u64>().ok()?)
        } else {
            let quota = limit_value(&self.read("cpu", "cpu.cfs_quota_us")?)?;
            let period = self.read("cpu", "cpu.cfs_period_us")?.trim().parse().ok()?;
            (quota, period)
        };
        (period > 0).then(|| quota.div_ceil(period) as usize)
    }

    fn cpuinfo(&self) -> Option<String> {
        let cpus = self.cpus()?;
        let host = host("cpuinfo");
        let mut out = String::new();
        let mut index = 0;
        for block in host.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let n = block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "processor").then(|| v.trim().parse::<usize>().ok())?
            });
            if !n.is_some_and(|n| cpus.contains(&n)) {
                continue;
            }
            for line in block.lines() {
                match line.split_once(':') {
                    Some((k, _)) if k.trim() == "processor" => {
                        let _ = writeln!(out, "{k}: {index}");
                    }
                    // x86 names the CPUs of a package; keep them counted
                    // as the container sees them.
                    Some((k, _)) if k.trim() == "siblings" || k.trim() == "cpu cores" => {
                        let _ = writeln!(out, "{k}: {}", cpus.len());
                    }
                    _ => {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
            out.push('\n');
            index += 1;
        }
        Some(out)
    }

    /// The container's CPU time as (user, system) in clock ticks.
    fn cpu_ticks(&self) -> (u64, u64) {
        let hz = crate::state::clock_ticks();
        if self.v2 {
            let us = |k| self.keyed("cpu", "cpu.stat", k).unwrap_or(0);
            (
                us("user_usec") * hz / 1_000_000,
                us("system_usec") * hz / 1_000_000,
            )
        } else {
            // cpuacct.stat counts in USER_HZ, which is the clock tick.
            let k = |key| self.keyed("cpuacct", "cpuacct.stat", key).unwrap_or(0);
            (k("user"), k("system"))
        }
    }

    /// The container's age in seconds: the host's uptime less the init's
    /// start (both from boot).
    fn age(&self) -> Option<f64> {
        let start = crate::state::proc_stat(self.state.pid)?.start_time;
        let uptime = host_uptime()?;
        Some((uptime - start as f64 / crate::state::clock_ticks() as f64).max(0.0))
    }

    /// The host's /proc/stat with the container's CPUs renumbered from 0;
    /// their times are the container's own (from its cgroup), spread
    /// evenly, idle being the rest of its age on those CPUs.
    fn stat(&self) -> Option<String> {
        let cpus = self.cpus()?;
        let n = cpus.len() as u64;
        let (user, system) = self.cpu_ticks();
        let age_ticks = (self.age().unwrap_or(0.0) * crate::state::clock_ticks() as f64) as u64;
        let idle = (age_ticks * n).saturating_sub(user + system);
        let line =
            |name: &str, u: u64, s: u64, i: u64| format!("{name} {u} 0 {s} {i} 0 0 0 0 0 0\n");
        let mut out = line("cpu ", user, system, idle);
        for i in 0..n {
            let share = |t: u64| t / n + u64::from(i == n - 1) * (t % n);
            out.push_str(&line(
                &format!("cpu{i}"),
                share(user),
                share(system),
                share(idle),
            ));
        }
        let (running, _) = self.task_counts();
        for l in host("stat").lines().filter(|l| !l.starts_with("cpu")) {
            if l.starts_with("procs_running ") {
                let _ = writeln!(out, "procs_running {running}");
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        Some(out)
    }

    fn uptime(&self) -> Option<String> {
        let age = self.age()?;
        let (user, system) = self.cpu_ticks();
        let n = self
            .cpus()
            .map_or_else(|| parse_cpus(&host_online_cpus()).len(), |c| c.len());
        let busy = (user + system) as f64 / crate::state::clock_ticks() as f64;
        let idle = (age * n as f64 - busy).max(0.0);
        Some(format!("{age:.2} {idle:.2}\n"))
    }

    /// (runnable, all) tasks of the container.
    fn task_counts(&self) -> (u64, u64) {
        task_counts(&self.state.cgroup_path)
    }

    fn loadavg(&self, loads: &[f64; 3]) -> String {
        let (running, all) = self.task_counts();
        // The last PID given out, as the container numbers them: its
        // highest.
        let last = cgroups::pids(&self.state.cgroup_path)
            .unwrap_or_default()
            .iter()
            .filter_map(|pid| ns_pid(*pid))
            .max()
            .unwrap_or(0);
        format!(
            "{:.2} {:.2} {:.2} {running}/{all} {last}\n",
            loads[0], loads[1], loads[2]
        )
    }

    /// The host's diskstats lines of the disks the container did I/O on,
    /// with the container's own counts (LXCFS's way); other fields 0.
    fn diskstats(&self) -> String {
        // (major:minor) -> (reads, read bytes, writes, written bytes)
        let mut io: std::collections::BTreeMap<String, [u64; 4]> = Default::default();
        if self.v2 {
            for line in self.read("io", "io.stat").unwrap_or_default().lines() {
                let mut words = line.split_whitespace();
                let Some(dev) = words.next() else { continue };
                let e = io.entry(dev.to_string()).or_default();
                for kv in words {
                    let Some((k, v)) = kv.split_once('=') else {
                        continue;
                    };
                    let v: u64 = v.parse().unwrap_or(0);
                    match k {
                        "rios" => e[0] = v,
                        "rbytes" => e[1] = v,
                        "wios" => e[2] = v,
                        "wbytes" => e[3] = v,
                        _ => {}
                    }
                }
            }
        } else {
            for (file, at) in [
                ("blkio.throttle.io_serviced_recursive", 0),
                ("blkio.throttle.io_service_bytes_recursive", 1),
            ] {
                for line in self.read("blkio", file).unwrap_or_default().lines() {
                    let w: Vec<&str> = line.split_whitespace().collect();
                    let [dev, op, v] = w[..] else { continue };
                    let v: u64 = v.parse().unwrap_or(0);
                    let e = io.entry(dev.to_string()).or_default();
                    match op {
                        "Read" => e[at] = v,
                        "Write" => e[at + 2] = v,
                        _ => {}
                    }
                }
            }
        }
        let mut out = String::new();
        for line in host("diskstats").lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 3 {
                continue;
            }
            let Some(e) = io.get(&format!("{}:{}", w[0], w[1])) else {
                continue;
            };
            if e.iter().all(|v| *v == 0) {
                continue;
            }
            let rest = " 0".repeat(w.len().saturating_sub(11));
            let _ = writeln!(
                out,
                "{:>4} {:>7} {} {} 0 {} 0 {} 0 {} 0 0 0 0{rest}",
                w[0],
                w[1],
                w[2],
                e[0],
                e[1] / 512,
                e[2],
                e[3] / 512
            );
        }
        out
    }

    /// One virtual swap line when the container has a memory limit.
    fn swaps(&self) -> Option<String> {
        let host_info = host("meminfo");
        let host_total = meminfo_kib(&host_info, "MemTotal")? * 1024;
        let limit = self.memory_limit(host_total)?;
        let host_swap = meminfo_kib(&host_info, "SwapTotal").unwrap_or(0) * 1024;
        let (total, used) = self.swap(host_swap, limit);
        let mut out = host("swaps").lines().next().unwrap_or("").to_string();
        out.push('\n');
        if total > 0 {
            let _ = writeln!(
                out,
                "none\t\t\t\t\tvirtual\t\t{}\t\t{}\t\t0",
                total / 1024,
                used / 1024
            );
        }
        Some(out)
    }
}

/// sysinfo(2) as the container should see it: the host's, with the
/// uptime, loads and task count of the container, and under a memory limit
/// its RAM and swap (the numbers of its meminfo), in bytes.
pub fn sysinfo(state: &ContainerState, loads: &[f64; 3]) -> libc::sysinfo {
    // SAFETY: zero is a valid sysinfo (integers only).
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: sysinfo writes only into the struct it is given.
    unsafe { libc::sysinfo(&mut info) };
    let cg = Cgroup::of(state);
    if let Some(age) = cg.age() {
        info.uptime = age as i64;
    }
    info.loads = loads.map(|l| (l * 65536.0) as u64);
    info.procs = cg.task_counts().1.min(u16::MAX as u64) as u16;
    let unit = u64::from(info.mem_unit.max(1));
    let host_total = info.totalram * unit;
    if let Some(limit) = cg.memory_limit(host_total) {
        let usage = cg.memory_usage().min(limit);
        let (swap_total, swap_used) = cg.swap(info.totalswap * unit, limit);
        info.totalram = limit;
        info.freeram = limit - usage;
        info.sharedram = cg.mem_stat("shmem", "shmem");
        info.bufferram = 0;
        info.totalswap = swap_total;
        info.freeswap = swap_total - swap_used;
        info.totalhigh = 0;
        info.freehigh = 0;
        info.mem_unit = 1;
    }
    info
}

/// The CPUs the container may use (cpuset, cut to what its CPU quota
/// buys), as its cpuinfo lists them; None when that is every host CPU.
pub fn cpus(state: &ContainerState) -> Option<Vec<usize>> {
    Cgroup::of(state).cpus()
}

/// The kernel's nr_cpu_ids: one more than the highest possible CPU.
pub fn possible_cpus() -> usize {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    parse_cpus(&list).last().map_or(1, |last| last + 1)
}

fn host_online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into())
}

fn host_uptime() -> Option<f64> {
    host("uptime").split_whitespace().next()?.parse().ok()
}

/// (runnable, all) tasks (threads) of a cgroup, from each one's stat.
pub fn task_counts(cgroup: &Path) -> (u64, u64) {
    let (mut running, mut all) = (0, 0);
    for pid in cgroups::pids(cgroup).unwrap_or_default() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            all += 1;
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|at| stat[at + 1..].split_whitespace().next());
            if matches!(state, Some("R" | "D")) {
                running += 1;
            }
        }
    }
    (running, all)
}

/// A host PID as its own pid namespace numbers it (NSpid's last field).
pub fn ns_pid(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_parsed() {
        assert_eq!(
            parse_cpus("0-2,5\n").into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 5]
        );
        assert!(parse_cpus("").is_empty());
    }

    #[test]
    fn no_limit_spellings_are_none() {
        assert_eq!(limit_value("max\n"), None);
        assert_eq!(limit_value("-1"), None);
        assert_eq!(limit_value("9223372036854771712"), None);
        assert_eq!(limit_value("67108864\n"), Some(64 << 20));
    }
}
