//! `ozz top`: OpenVZ's vzstat for ozz — every running container with its
//! CPU use, memory and process counts against their limits, I/O rates, and
//! the beancounters whose failcnt grew since the last refresh.
//!
//! Rates need two readings: each refresh reads every container's cgroup,
//! and the numbers shown are the differences from the reading before.
//! `--once` takes its two readings one interval apart and prints once.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::beancounters::params::{PAGE, UNLIMITED};
use crate::beancounters::view;
use crate::cli::events::{parse_duration, stats};
use crate::cli::list::format_table;
use crate::cli::{OutputFormat, TopArgs, TopSort};
use crate::state::ContainerState;

/// One container's counters at one moment.
#[derive(Clone)]
struct Reading {
    at: Instant,
    cpu_ns: u64,
    memory: u64,
    memory_limit: Option<u64>,
    numproc: u64,
    numproc_limit: Option<u64>,
    read_bytes: u64,
    write_bytes: u64,
    failcnts: BTreeMap<&'static str, u64>,
}

impl Reading {
    fn take(state: &ContainerState) -> Reading {
        let at = Instant::now();
        let stats = stats(&state.cgroup_path);
        let num = |v: &Value| v.as_u64().unwrap_or(0);
        // v1 writes "no limit" as LONG_MAX rounded down to a page.
        let limit = |v: &Value| v.as_u64().filter(|&l| l != 0 && l < UNLIMITED - PAGE);
        let (mut read_bytes, mut write_bytes) = (0, 0);
        let io = stats["blkio"]["ioServiceBytesRecursive"].as_array();
        for entry in io.into_iter().flatten() {
            match entry["op"].as_str() {
                Some("Read") => read_bytes += num(&entry["value"]),
                Some("Write") => write_bytes += num(&entry["value"]),
                _ => {}
            }
        }
        Reading {
            at,
            cpu_ns: num(&stats["cpu"]["usage"]["total"]),
            memory: num(&stats["memory"]["usage"]["usage"]),
            memory_limit: limit(&stats["memory"]["usage"]["limit"]),
            numproc: num(&stats["pids"]["current"]),
            numproc_limit: limit(&stats["pids"]["limit"]),
            read_bytes,
            write_bytes,
            failcnts: view::failcnts(&state.cgroup_path, &state.carried_beancounters)
                .into_iter()
                .collect(),
        }
    }
}

/// What one row shows: the newer reading, and the rates and failcnt growth
/// since the older one.
struct Row {
    id: String,
    pid: i32,
    now: Reading,
    cpu_percent: f64,
    read_per_s: f64,
    write_per_s: f64,
    failcnt_delta: BTreeMap<&'static str, u64>,
}

impl Row {
    fn new(state: &ContainerState, before: Option<&Reading>, now: Reading) -> Row {
        let (mut cpu_percent, mut read_per_s, mut write_per_s) = (0.0, 0.0, 0.0);
        let mut failcnt_delta = BTreeMap::new();
        if let Some(before) = before {
            let seconds = now.at.duration_since(before.at).as_secs_f64();
            if seconds > 0.0 {
                let cpu_s = now.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9;
                cpu_percent = 100.0 * cpu_s / seconds;
                read_per_s = now.read_bytes.saturating_sub(before.read_bytes) as f64 / seconds;
                write_per_s = now.write_bytes.saturating_sub(before.write_bytes) as f64 / seconds;
            }
            for (resource, &count) in &now.failcnts {
                let grew =
                    count.saturating_sub(before.failcnts.get(resource).copied().unwrap_or(0));
                if grew > 0 {
                    failcnt_delta.insert(*resource, grew);
                }
            }
        }
        Row {
            id: state.id.clone(),
            pid: state.pid,
            now,
            cpu_percent,
            read_per_s,
            write_per_s,
            failcnt_delta,
        }
    }

    fn failcnt_total(&self) -> u64 {
        self.now.failcnts.values().sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "pid": self.pid,
            "cpu_percent": round2(self.cpu_percent),
            "cpu_usage_ns": self.now.cpu_ns,
            "memory": {"held": self.now.memory, "limit": self.now.memory_limit},
            "numproc": {"held": self.now.numproc, "limit": self.now.numproc_limit},
            "io": {
                "read_bytes_per_s": round2(self.read_per_s),
                "write_bytes_per_s": round2(self.write_per_s),
            },
            "failcnt": self.now.failcnts,
            "failcnt_delta": self.failcnt_delta,
        })
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Reads every running container, pairing each with its reading from the
/// last refresh (kept in `previous`, by ID, for the next one).
fn refresh(root: &Path, previous: &mut BTreeMap<String, Reading>, sort: TopSort) -> Vec<Row> {
    let containers = crate::state::running_containers(root);
    let mut rows: Vec<Row> = containers
        .iter()
        .map(|state| {
            Row::new(
                state,
                previous.remove(&state.id).as_ref(),
                Reading::take(state),
            )
        })
        .collect();
    sort_rows(&mut rows, sort);
    previous.clear();
    for row in &rows {
        previous.insert(row.id.clone(), row.now.clone());
    }
    rows
}

/// Largest first, ties (and `id`) by ID.
fn sort_rows(rows: &mut [Row], sort: TopSort) {
    rows.sort_by(|a, b| {
        let key = |r: &Row| -> f64 {
            match sort {
                TopSort::Cpu => r.cpu_percent,
                TopSort::Mem => r.now.memory as f64,
                TopSort::Numproc => r.now.numproc as f64,
                TopSort::Io => r.read_per_s + r.write_per_s,
                TopSort::Fail => {
                    r.failcnt_delta.values().sum::<u64>() as f64 * 1e12 + r.failcnt_total() as f64
                }
                TopSort::Id => 0.0,
            }
        };
        key(b).total_cmp(&key(a)).then_with(|| a.id.cmp(&b.id))
    });
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn held_of(held: String, limit: Option<String>) -> String {
    format!("{held}/{}", limit.unwrap_or_else(|| "-".into()))
}

/// The table's cells; `mark` wraps the failcnt cell of a row whose
/// counters grew (reverse video on a terminal, a `*` in plain text).
fn table(rows: &[Row], mark: &dyn Fn(&str) -> String) -> String {
    let mut cells = vec![[
        "ID",
        "PID",
        "CPU%",
        "MEM/LIMIT",
        "NUMPROC/LIMIT",
        "READ/s",
        "WRITE/s",
        "FAILCNT",
    ]
    .map(String::from)
    .to_vec()];
    for row in rows {
        let failed = if row.failcnt_delta.is_empty() {
            row.failcnt_total().to_string()
        } else {
            let grown: Vec<String> = row
                .failcnt_delta
                .iter()
                .map(|(resource, n)| format!("{resource}+{n}"))
                .collect();
            format!("{} ({})", row.failcnt_total(), grown.join(" "))
        };
        cells.push(vec![
            row.id.clone(),
            row.pid.to_string(),
            format!("{:.1}", row.cpu_percent),
            held_of(
                bytes(row.now.memory as f64),
                row.now.memory_limit.map(|l| bytes(l as f64)),
            ),
            held_of(
                row.now.numproc.to_string(),
                row.now.numproc_limit.map(|l| l.to_string()),
            ),
            bytes(row.read_per_s),
            bytes(row.write_per_s),
            failed,
        ]);
    }
    let text = format_table(&cells);
    // The marks go on after layout, so escape codes do not skew widths.
    let mut out = String::new();
    for (line, row) in text
        .lines()
        .zip(std::iter::once(None).chain(rows.iter().map(Some)))
    {
        match row {
            Some(r) if !r.failcnt_delta.is_empty() => out.push_str(&mark(line)),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub fn run(root: &Path, args: &TopArgs) -> Result<()> {
    let interval = parse_duration(&args.interval)?;
    if interval.is_zero() {
        bail!("duration interval must be greater than 0");
    }
    let mut previous = BTreeMap::new();
    if args.once {
        refresh(root, &mut previous, args.sort);
        std::thread::sleep(interval);
        let rows = refresh(root, &mut previous, args.sort);
        return print_once(&rows, args.format);
    }
    if args.format == OutputFormat::Json || !std::io::stdout().is_terminal() {
        // Batch mode, as `top -b`: one table (or JSON line) per refresh.
        refresh(root, &mut previous, args.sort);
        loop {
            std::thread::sleep(interval);
            let rows = refresh(root, &mut previous, args.sort);
            print_once(&rows, args.format)?;
            if args.format == OutputFormat::Table {
                println!();
            }
        }
    }
    live(root, args, interval, previous)
}

fn print_once(rows: &[Row], format: OutputFormat) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            let list: Vec<Value> = rows.iter().map(Row::to_json).collect();
            writeln!(out, "{}", serde_json::to_string(&list)?)?;
        }
        OutputFormat::Table => {
            write!(out, "{}", table(rows, &|line| format!("{line} *")))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The refreshing screen: keys c, m, p, i, f, n sort by CPU, memory,
/// numproc, I/O, failcnt or ID; q (or Esc, Ctrl-C) quits.
fn live(
    root: &Path,
    args: &TopArgs,
    interval: Duration,
    mut previous: BTreeMap<String, Reading>,
) -> Result<()> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use crossterm::{cursor, execute, terminal};

    let mut out = std::io::stdout();
    terminal::enable_raw_mode()?;
    execute!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
    let result = (|| -> Result<()> {
        let mut sort = args.sort;
        refresh(root, &mut previous, sort);
        // The first screen soon, with rates over a span long enough to mean
        // something (the counters tick in milliseconds).
        let mut next = Instant::now() + interval.min(Duration::from_millis(250));
        loop {
            if Instant::now() >= next {
                let rows = refresh(root, &mut previous, sort);
                let body = table(&rows, &|line| format!("\x1b[7m{line}\x1b[0m"));
                let header = format!(
                    "ozz top - {} containers, every {:?}, sorted by {} (c m p i f n: sort, q: quit)",
                    rows.len(),
                    interval,
                    sort.name()
                );
                execute!(
                    out,
                    cursor::MoveTo(0, 0),
                    terminal::Clear(terminal::ClearType::All)
                )?;
                // Raw mode: every line needs its own carriage return.
                for line in std::iter::once(header.as_str()).chain(body.lines()) {
                    write!(out, "{line}\r\n")?;
                }
                out.flush()?;
                next = Instant::now() + interval;
            }
            let wait = next.saturating_duration_since(Instant::now());
            if !event::poll(wait)? {
                continue;
            }
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let chosen = match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('c') => Some(TopSort::Cpu),
                    KeyCode::Char('m') => Some(TopSort::Mem),
                    KeyCode::Char('p') => Some(TopSort::Numproc),
                    KeyCode::Char('i') => Some(TopSort::Io),
                    KeyCode::Char('f') => Some(TopSort::Fail),
                    KeyCode::Char('n') => Some(TopSort::Id),
                    _ => None,
                };
                if let Some(chosen) = chosen {
                    sort = chosen;
                    // Redraw now, with rates over the time since the last.
                    next = Instant::now();
                }
            }
        }
    })();
    let restored = execute!(out, cursor::Show, terminal::LeaveAlternateScreen);
    terminal::disable_raw_mode()?;
    result?;
    restored?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(bytes(0.0), "0B");
        assert_eq!(bytes(1023.0), "1023B");
        assert_eq!(bytes(64.0 * 1024.0 * 1024.0), "64.0M");
        assert_eq!(bytes(1536.0), "1.5K");
    }
}
