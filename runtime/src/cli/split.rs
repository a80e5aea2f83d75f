//! `ozz split N` (OpenVZ's vzsplit): the limits that divide this host's
//! RAM, swap, CPU time and tasks into N equal containers, printed as
//! beancounter annotations and as the equivalent linux.resources.

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::beancounters::params::PAGE;
use crate::cli::{OutputFormat, SplitArgs};

const CPU_PERIOD: u64 = 100_000;

pub struct Host {
    pub ram: u64,
    pub swap: u64,
    pub cpus: u64,
    pub tasks: u64,
}

pub fn host() -> Result<Host> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("read /proc/meminfo")?;
    let kib = |key: &str| -> Result<u64> {
        meminfo
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(key)?.strip_prefix(':')?;
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .with_context(|| format!("no {key} in /proc/meminfo"))
    };
    let number = |file: &str| -> Result<u64> {
        std::fs::read_to_string(file)
            .with_context(|| format!("read {file}"))?
            .trim()
            .parse()
            .with_context(|| format!("parse {file}"))
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    Ok(Host {
        ram: kib("MemTotal")? * 1024,
        swap: kib("SwapTotal")? * 1024,
        cpus,
        // Every task needs a PID and counts against threads-max.
        tasks: number("/proc/sys/kernel/pid_max")?.min(number("/proc/sys/kernel/threads-max")?),
    })
}

pub fn run(args: &SplitArgs) -> Result<()> {
    let n = args.count;
    if n == 0 {
        bail!("split: the number of containers must be at least 1");
    }
    let host = host()?;
    let physpages = host.ram / PAGE / n;
    let swappages = host.swap / PAGE / n;
    let numproc = host.tasks / n;
    // cpulimit is in percent of one CPU.
    let cpulimit = (host.cpus * 100 / n).max(1);
    if physpages == 0 || numproc == 0 {
        bail!("split: {n} containers would get no memory or no tasks");
    }
    let annotations = json!({
        "org.openvz.beancounter.physpages": physpages.to_string(),
        "org.openvz.beancounter.swappages": swappages.to_string(),
        "org.openvz.beancounter.numproc": numproc.to_string(),
        "org.openvz.cpulimit": cpulimit.to_string(),
    });
    let memory = physpages * PAGE;
    let resources = json!({
        "memory": {"limit": memory, "swap": memory + swappages * PAGE},
        "pids": {"limit": numproc},
        "cpu": {"quota": cpulimit * CPU_PERIOD / 100, "period": CPU_PERIOD},
    });
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            json!({"containers": n, "annotations": annotations, "resources": resources})
        ),
        OutputFormat::Table => {
            println!(
                "# this host ({} MiB RAM, {} MiB swap, {} CPUs, {} tasks) split into {n} equal containers",
                host.ram >> 20,
                host.swap >> 20,
                host.cpus,
                host.tasks
            );
            println!("# as annotations (config.json \"annotations\"):");
            for (key, value) in annotations.as_object().expect("an object") {
                println!("{key}={}", value.as_str().unwrap_or_default());
            }
            println!("# or as linux.resources (config.json \"linux\"):");
            println!("{}", serde_json::to_string_pretty(&resources)?);
        }
    }
    Ok(())
}
