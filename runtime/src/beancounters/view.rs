//! The /proc/user_beancounters view of one container, read live: held,
//! maxheld and failcnt from the kernel's counters, barrier and limit from
//! the controls that enforce them (or from the annotations, for what no
//! kernel control holds).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::params::{self, Control, Unit, PAGE, PARAMS, UNLIMITED};
use super::settings::{Pair, Settings};
use crate::cgroups;
use crate::state::ContainerState;

/// One row of the view; None where nothing is known (printed as "-").
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub resource: &'static str,
    pub held: Option<u64>,
    pub maxheld: Option<u64>,
    pub barrier: Option<u64>,
    pub limit: Option<u64>,
    pub failcnt: Option<u64>,
    pub control: Control,
    /// The kernel control (or its absence), in a few words.
    pub how: &'static str,
}

impl Row {
    pub fn to_json(&self) -> Value {
        json!({
            "resource": self.resource,
            "held": self.held,
            "maxheld": self.maxheld,
            "barrier": self.barrier,
            "limit": self.limit,
            "failcnt": self.failcnt,
            "control": self.control.as_str(),
            "how": self.how,
        })
    }
}

/// A parameter's counters from before a checkpoint: a restored container
/// has a new cgroup whose counters start at zero, and shows these on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    pub failcnt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxheld: Option<u64>,
}

/// The live failcnt plus what was carried over.
fn with_carried(live: Option<u64>, carried: Option<&Carried>) -> Option<u64> {
    match (live, carried) {
        (Some(n), Some(c)) => Some(n + c.failcnt),
        (None, Some(c)) if c.failcnt > 0 => Some(c.failcnt),
        (live, _) => live,
    }
}

/// The failure counters only: cheap enough for `events` to poll.
pub fn failcnts(cgroup: &Path, carried: &BTreeMap<String, Carried>) -> Vec<(&'static str, u64)> {
    let v2 = cgroups::is_v2();
    let files = Files { cgroup, v2 };
    PARAMS
        .iter()
        .filter_map(|p| {
            let n = with_carried(files.failcnt(p.name), carried.get(p.name))?;
            Some((p.name, n))
        })
        .collect()
}

pub fn rows(state: &ContainerState) -> Vec<Row> {
    let v2 = cgroups::is_v2();
    let files = Files {
        cgroup: &state.cgroup_path,
        v2,
    };
    let annotations = state.config.annotations().clone().unwrap_or_default();
    // An unreadable annotation (impossible after a create) counts as unset.
    let settings = Settings::from_annotations(&annotations).unwrap_or_default();
    let procs = Procs::of(state);
    PARAMS
        .iter()
        .map(|param| {
            let (control, how) = params::control(param.name, v2);
            let stored = settings.params.get(param.name).copied();
            let mut row = Row {
                resource: param.name,
                held: None,
                maxheld: None,
                barrier: stored.map(|p| p.barrier),
                limit: stored.map(|p| p.limit),
                failcnt: files.failcnt(param.name),
                control,
                how,
            };
            files.fill(&mut row, param.unit, stored, &procs, state);
            if let Some(carried) = state.carried_beancounters.get(param.name) {
                row.failcnt = with_carried(row.failcnt, Some(carried));
                if let Some(before) = carried.maxheld {
                    row.maxheld = Some(row.maxheld.map_or(before, |now| now.max(before)));
                }
            }
            // What nobody limited is unlimited, as OpenVZ shows it.
            row.barrier.get_or_insert(UNLIMITED);
            row.limit.get_or_insert(UNLIMITED);
            row
        })
        .collect()
}

/// The containers' rows in the text of OpenVZ's /proc/user_beancounters
/// (format version 2.5): each container's ID in the uid column of its
/// first row (where OpenVZ printed the numeric CTID), an unknown value 0.
pub fn openvz_text(states: &[ContainerState]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "Version: 2.5\n{:>10}  {:<12} {:>20} {:>20} {:>20} {:>20} {:>20}\n",
        "uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt"
    );
    for state in states {
        for (i, row) in rows(state).iter().enumerate() {
            let uid = match i {
                0 => format!("{}:", state.id),
                _ => String::new(),
            };
            let n = |v: Option<u64>| v.unwrap_or(0);
            let _ = writeln!(
                out,
                "{uid:>10}  {:<12} {:>20} {:>20} {:>20} {:>20} {:>20}",
                row.resource,
                n(row.held),
                n(row.maxheld),
                n(row.barrier),
                n(row.limit),
                n(row.failcnt)
            );
        }
    }
    out
}

struct Files<'a> {
    cgroup: &'a Path,
    v2: bool,
}

impl Files<'_> {
    fn read(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(cgroups::controller_dir(controller, self.cgroup).join(file)).ok()
    }

    /// A number file; "max" and v1's "no limit" values are UNLIMITED.
    fn number(&self, controller: &str, file: &str) -> Option<u64> {
        let text = self.read(controller, file)?;
        let text = text.trim();
        if text == "max" {
            return Some(UNLIMITED);
        }
        let v: u64 = text.parse().ok()?;
        // v1 prints "no limit" as LONG_MAX rounded down to a page.
        Some(if v >= UNLIMITED - PAGE { UNLIMITED } else { v })
    }

    /// `key value` lines (memory.events, memory.stat, pids.events).
    fn keyed(&self, controller: &str, file: &str, key: &str) -> Option<u64> {
        cgroups::read_keyed(
            &cgroups::controller_dir(controller, self.cgroup).join(file),
            key,
        )
    }

    fn failcnt(&self, name: &str) -> Option<u64> {
        match (name, self.v2) {
            ("numproc", _) => self.keyed("pids", "pids.events", "max"),
            ("physpages", true) => self.keyed("memory", "memory.events", "max"),
            ("physpages", false) => self.number("memory", "memory.failcnt"),
            ("swappages", true) => self.keyed("memory", "memory.swap.events", "fail"),
            ("swappages", false) => self.number("memory", "memory.memsw.failcnt"),
            ("vmguarpages", true) => self.keyed("memory", "memory.events", "low"),
            ("oomguarpages", true) => self.keyed("memory", "memory.events", "oom_kill"),
            ("oomguarpages", false) => self.keyed("memory", "memory.oom_control", "oom_kill"),
            ("kmemsize", false) => self.number("memory", "memory.kmem.failcnt"),
            ("tcpsndbuf" | "tcprcvbuf", false) => self.number("memory", "memory.kmem.tcp.failcnt"),
            _ => None,
        }
    }

    fn fill(
        &self,
        row: &mut Row,
        unit: Unit,
        stored: Option<Pair>,
        procs: &Procs,
        state: &ContainerState,
    ) {
        let pages =
            |bytes: Option<u64>| bytes.map(|b| if b >= UNLIMITED { UNLIMITED } else { b / PAGE });
        let stat = |key: &str| {
            let key = if self.v2 {
                key.to_string()
            } else {
                format!("total_{key}")
            };
            self.keyed("memory", "memory.stat", &key)
        };
        let in_unit = |bytes: Option<u64>| match unit {
            Unit::Pages => pages(bytes),
            _ => bytes,
        };
        match (row.resource, self.v2) {
            ("numproc", v2) => {
                row.held = self.number("pids", "pids.current");
                row.maxheld = v2.then(|| self.number("pids", "pids.peak")).flatten();
                let max = self.number("pids", "pids.max");
                row.limit = max.or(row.limit);
                // pids.max is one number: the barrier is the limit.
                row.barrier = max.or(row.barrier);
            }
            ("physpages", true) => {
                row.held = pages(self.number("memory", "memory.current"));
                row.maxheld = pages(self.number("memory", "memory.peak"));
                row.barrier = pages(self.number("memory", "memory.high"));
                row.limit = pages(self.number("memory", "memory.max"));
            }
            ("physpages", false) => {
                row.held = pages(self.number("memory", "memory.usage_in_bytes"));
                row.maxheld = pages(self.number("memory", "memory.max_usage_in_bytes"));
                row.limit = pages(self.number("memory", "memory.limit_in_bytes"));
            }
            ("swappages", true) => {
                row.held = pages(self.number("memory", "memory.swap.current"));
                row.maxheld = pages(self.number("memory", "memory.swap.peak"));
                row.limit = pages(self.number("memory", "memory.swap.max"));
            }
            ("swappages", false) => {
                let memsw = self.number("memory", "memory.memsw.usage_in_bytes");
                let mem = self.number("memory", "memory.usage_in_bytes");
                row.held = pages(memsw.zip(mem).map(|(s, m)| s.saturating_sub(m)));
                let limit = self.number("memory", "memory.memsw.limit_in_bytes");
                let mem_limit = self.number("memory", "memory.limit_in_bytes");
                row.limit = pages(limit.zip(mem_limit).map(|(s, m)| {
                    if s >= UNLIMITED {
                        UNLIMITED
                    } else {
                        s.saturating_sub(m)
                    }
                }));
            }
            ("vmguarpages", true) => {
                row.held = pages(self.number("memory", "memory.current"));
                row.barrier = pages(self.number("memory", "memory.low"));
            }
            ("vmguarpages", false) => {
                row.held = pages(self.number("memory", "memory.usage_in_bytes"));
                row.barrier = pages(self.number("memory", "memory.soft_limit_in_bytes"));
            }
            ("oomguarpages", true) => {
                let mem = self.number("memory", "memory.current");
                let swap = self.number("memory", "memory.swap.current").unwrap_or(0);
                row.held = pages(mem.map(|m| m + swap));
                row.maxheld = pages(self.number("memory", "memory.peak"));
                row.barrier = pages(self.number("memory", "memory.min"));
            }
            ("oomguarpages", false) => {
                row.held = pages(self.number("memory", "memory.memsw.usage_in_bytes"));
                row.maxheld = pages(self.number("memory", "memory.memsw.max_usage_in_bytes"));
            }
            ("kmemsize", true) => row.held = stat("kernel"),
            ("kmemsize", false) => {
                row.held = self.number("memory", "memory.kmem.usage_in_bytes");
                row.maxheld = self.number("memory", "memory.kmem.max_usage_in_bytes");
            }
            ("tcpsndbuf" | "tcprcvbuf" | "othersockbuf" | "dgramrcvbuf", true) => {
                row.held = stat("sock")
            }
            ("tcpsndbuf" | "tcprcvbuf", false) => {
                row.held = self.number("memory", "memory.kmem.tcp.usage_in_bytes");
                row.maxheld = self.number("memory", "memory.kmem.tcp.max_usage_in_bytes");
            }
            ("dcachesize", true) => row.held = stat("slab_reclaimable"),
            ("shmpages", _) => row.held = in_unit(stat("shmem")),
            ("lockedpages", _) => {
                row.held = in_unit(stat("unevictable"));
                if let Some((soft, hard)) = procs.init_limit("Max locked memory") {
                    row.barrier = pages(Some(soft));
                    row.limit = pages(Some(hard));
                }
            }
            ("privvmpages", _) => {
                row.held = Some(procs.sum_status_kib(&["VmData", "VmStk"]) * 1024 / PAGE)
            }
            ("numfile", _) => {
                row.held = Some(procs.fds.len() as u64);
                if let Some((soft, hard)) = procs.init_limit("Max open files") {
                    (row.barrier, row.limit) = (Some(soft), Some(hard));
                }
            }
            ("numsiginfo", _) => {
                row.held = procs.init_sigq();
                if let Some((soft, hard)) = procs.init_limit("Max pending signals") {
                    (row.barrier, row.limit) = (Some(soft), Some(hard));
                }
            }
            ("numflock", _) => row.held = Some(procs.locks()),
            ("numtcpsock", _) => row.held = Some(procs.sockets(true)),
            ("numothersock", _) => row.held = Some(procs.sockets(false)),
            ("numpty", _) => {
                row.held = procs.ptys();
                row.limit =
                    super::devpts::configured_max(&state.config).or(stored.map(|p| p.limit));
                row.barrier = row.barrier.or(row.limit);
            }
            _ => {}
        }
    }
}

/// The container's processes, and the open files of all of them.
struct Procs {
    pids: Vec<i32>,
    init: Option<i32>,
    /// Where each open descriptor of each process points.
    fds: Vec<String>,
    /// The inodes of the TCP sockets of the init's network namespace,
    /// read once for numtcpsock and numothersock.
    tcp_inodes: std::cell::OnceCell<HashSet<String>>,
}

impl Procs {
    fn of(state: &ContainerState) -> Procs {
        let pids = cgroups::pids(&state.cgroup_path).unwrap_or_default();
        let init = state.init_alive().then_some(state.pid);
        let mut fds = Vec::new();
        for pid in &pids {
            let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(target) = std::fs::read_link(entry.path()) {
                    fds.push(target.to_string_lossy().into_owned());
                }
            }
        }
        Procs {
            pids,
            init,
            fds,
            tcp_inodes: std::cell::OnceCell::new(),
        }
    }

    /// (soft, hard) of one line of the init's /proc/PID/limits.
    fn init_limit(&self, name: &str) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{}/limits", self.init?)).ok()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        let mut values = line[name.len()..].split_whitespace().map(|v| {
            if v == "unlimited" {
                Some(UNLIMITED)
            } else {
                v.parse().ok()
            }
        });
        Some((values.next()??, values.next()??))
    }

    fn sum_status_kib(&self, keys: &[&str]) -> u64 {
        self.pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        if !keys.contains(&k) {
                            return None;
                        }
                        v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()
                    })
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Signals queued for the init's user (SigQ counts per user).
    fn init_sigq(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.init?)).ok()?;
        let line = text.lines().find(|l| l.starts_with("SigQ:"))?;
        line["SigQ:".len()..].trim().split('/').next()?.parse().ok()
    }

    /// Lines of /proc/locks held by the container's processes.
    fn locks(&self) -> u64 {
        let pids: HashSet<String> = self.pids.iter().map(i32::to_string).collect();
        std::fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                // "1: POSIX  ADVISORY  WRITE 1234 fd:01:123 0 EOF"
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|p| pids.contains(p))
            })
            .count() as u64
    }

    /// Distinct sockets open in the container, TCP or the others; a socket
    /// is TCP when its inode is listed in the init's /proc/net/tcp{,6}.
    fn sockets(&self, tcp: bool) -> u64 {
        let inodes: HashSet<&str> = self
            .fds
            .iter()
            .filter_map(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
            .collect();
        if inodes.is_empty() {
            return 0;
        }
        let Some(pid) = self.init.or(self.pids.first().copied()) else {
            return 0;
        };
        let tcp_inodes = self.tcp_inodes.get_or_init(|| tcp_socket_inodes(pid));
        inodes
            .iter()
            .filter(|i| tcp_inodes.contains(**i) == tcp)
            .count() as u64
    }

    /// Pseudo-terminals in the container's own devpts.
    fn ptys(&self) -> Option<u64> {
        let dir = std::fs::read_dir(format!("/proc/{}/root/dev/pts", self.init?)).ok()?;
        Some(
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count() as u64,
        )
    }
}

/// The inodes of the TCP sockets in the network namespace of `pid`.
/// why: /proc/net/tcp{,6} walk every bucket of the host's TCP hash table
/// whatever the namespace holds, about 4 ms each on a host with 24 GiB
/// (the procview server renders this on every read of
/// user_beancounters). sockstat's per-namespace "inuse" counts the same
/// hashed sockets the tables list, so when both are 0 the walk is skipped.
fn tcp_socket_inodes(pid: i32) -> HashSet<String> {
    let in_use = |file: &str, label: &str| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).ok()?;
        let line = text.lines().find(|l| l.starts_with(label))?;
        line.split_whitespace().nth(2)?.parse::<u64>().ok()
    };
    let mut inodes = HashSet::new();
    for (table, sockstat, label) in [("tcp", "sockstat", "TCP:"), ("tcp6", "sockstat6", "TCP6:")] {
        if in_use(sockstat, label) == Some(0) {
            continue;
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9) {
                inodes.insert(inode.to_string());
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openvz_header_is_version_2_5s() {
        let text = super::openvz_text(&[]);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("Version: 2.5"));
        assert_eq!(
            lines.next(),
            Some("       uid  resource                     held              maxheld              barrier                limit              failcnt")
        );
        assert_eq!(lines.next(), None);
    }
}
