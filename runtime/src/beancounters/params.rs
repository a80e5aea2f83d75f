//! The beancounter parameters of OpenVZ, their units, and what on this
//! kernel stands behind each: a real control, a per-process one, or none.

/// OpenVZ counts `*pages` in 4 KiB pages, whatever the machine's page size.
pub const PAGE: u64 = 4096;

/// What OpenVZ prints for "no limit" (LONG_MAX); ozz stores and prints the
/// same number in JSON.
pub const UNLIMITED: u64 = i64::MAX as u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// 4 KiB pages (a K/M/G suffix gives bytes, converted to pages).
    Pages,
    Bytes,
    /// A count; no suffix.
    Count,
}

/// How honestly ozz can hold a parameter to its barrier and limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// A kernel control refuses or throttles the whole container.
    Enforced,
    /// A kernel control exists but is weaker than OpenVZ's: per process, a
    /// best-effort guarantee, or only one of barrier and limit.
    Partial,
    /// Nothing in the kernel enforces it; ozz only reports the usage.
    Accounted,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Enforced => "enforced",
            Control::Partial => "partial",
            Control::Accounted => "accounted",
        }
    }
}

pub struct Param {
    pub name: &'static str,
    pub unit: Unit,
}

/// In the order of /proc/user_beancounters (without its dummy rows).
pub const PARAMS: &[Param] = &[
    p("kmemsize", Unit::Bytes),
    p("lockedpages", Unit::Pages),
    p("privvmpages", Unit::Pages),
    p("shmpages", Unit::Pages),
    p("numproc", Unit::Count),
    p("physpages", Unit::Pages),
    p("vmguarpages", Unit::Pages),
    p("oomguarpages", Unit::Pages),
    p("numtcpsock", Unit::Count),
    p("numflock", Unit::Count),
    p("numpty", Unit::Count),
    p("numsiginfo", Unit::Count),
    p("tcpsndbuf", Unit::Bytes),
    p("tcprcvbuf", Unit::Bytes),
    p("othersockbuf", Unit::Bytes),
    p("dgramrcvbuf", Unit::Bytes),
    p("numothersock", Unit::Count),
    p("dcachesize", Unit::Bytes),
    p("numfile", Unit::Count),
    p("numiptent", Unit::Count),
    p("swappages", Unit::Pages),
];

const fn p(name: &'static str, unit: Unit) -> Param {
    Param { name, unit }
}

pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The control behind `name` on this hierarchy, and a few words naming it.
pub fn control(name: &str, v2: bool) -> (Control, &'static str) {
    use Control::*;
    match (name, v2) {
        ("numproc", true) => (Enforced, "pids.max"),
        ("numproc", false) => (Enforced, "pids.max (v1)"),
        ("physpages", true) => (Enforced, "memory.high (barrier), memory.max (limit)"),
        ("physpages", false) => (
            Partial,
            "memory.limit_in_bytes (limit); cgroup v1 has no barrier",
        ),
        ("swappages", true) => (Enforced, "memory.swap.max (limit)"),
        ("swappages", false) => (Enforced, "memory.memsw.limit_in_bytes (limit)"),
        ("numpty", _) => (Enforced, "devpts max= (limit)"),
        ("vmguarpages", true) => (Partial, "memory.low (barrier, best effort)"),
        ("vmguarpages", false) => (Partial, "memory.soft_limit_in_bytes (barrier, best effort)"),
        ("oomguarpages", true) => (Partial, "memory.min (barrier)"),
        ("oomguarpages", false) => (Accounted, "cgroup v1 has no memory.min"),
        ("lockedpages", _) => (Partial, "RLIMIT_MEMLOCK, per process"),
        ("numsiginfo", _) => (Partial, "RLIMIT_SIGPENDING, per user"),
        ("numfile", _) => (Partial, "RLIMIT_NOFILE, per process"),
        ("kmemsize", _) => (Accounted, "charged inside the memory limit"),
        ("tcpsndbuf" | "tcprcvbuf" | "othersockbuf" | "dgramrcvbuf", _) => (
            Accounted,
            "all socket buffers together, inside the memory limit",
        ),
        ("dcachesize", _) => (Accounted, "slab, inside the memory limit"),
        ("shmpages", _) => (Accounted, "no per-container control"),
        ("privvmpages", _) => (Accounted, "no per-container control"),
        ("numtcpsock" | "numothersock", _) => (Accounted, "no per-container control"),
        ("numflock", _) => (Accounted, "no kernel control (RLIMIT_LOCKS is ignored)"),
        ("numiptent", _) => (Accounted, "no kernel control; not counted"),
        _ => (Accounted, "unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_has_a_stated_control() {
        for param in PARAMS {
            for v2 in [true, false] {
                assert_ne!(control(param.name, v2).1, "unknown", "{}", param.name);
            }
        }
    }
}
