//! The runtime's log: runc-style text or JSON lines in the `--log` file.
//! containerd and podman read the last `"level":"error"` line of a JSON log
//! to show the user why a command failed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::LogFormat;

struct LogTarget {
    path: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

static TARGET: OnceLock<LogTarget> = OnceLock::new();

/// Sets the log up; a log file is created (or opened) now, so a path that
/// cannot be written (a missing directory, a directory) fails the command.
/// It is closed again and reopened for each line: a descriptor held open
/// here could take a number `--preserve-fds` passes into the container.
pub fn init(path: Option<PathBuf>, format: LogFormat, debug: bool) -> Result<()> {
    if let Some(path) = &path {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
    }
    let _ = TARGET.set(LogTarget {
        path,
        format,
        debug,
    });
    Ok(())
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    if TARGET.get().is_some_and(|t| t.debug) {
        write("debug", msg);
    }
}

fn write(level: &str, msg: &str) {
    let Some(target) = TARGET.get() else {
        return;
    };
    let time = rfc3339_now();
    let line = match target.format {
        LogFormat::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
    };
    match &target.path {
        Some(path) => {
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(file, "{line}");
            }
        }
        // Without a log file, warnings and debug lines go to stderr; errors
        // are printed there by main anyway.
        None if level != "error" => eprintln!("{line}"),
        None => {}
    }
}

/// Longest error line ozz prints (bytes): a path or value quoted from a
/// config may be megabytes long.
const MAX_LINE: usize = 4096;

/// An error as one line of sane length: newlines and other control
/// characters are escaped, and the middle of an overlong message is cut.
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(MAX_LINE + 64));
    for c in msg.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    if out.len() <= MAX_LINE {
        return out;
    }
    let mut head = MAX_LINE / 2;
    while !out.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = out.len() - MAX_LINE / 2;
    while !out.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} …({} bytes cut)… {}",
        &out[..head],
        tail - head,
        &out[tail..]
    )
}

/// UTC time as RFC 3339 with nanoseconds, the form Go's time package prints.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

#[cfg(test)]
mod tests {
    use super::format_rfc3339;

    #[test]
    fn error_lines_are_single_and_capped() {
        let long = "x".repeat(1 << 20);
        let line = super::one_line(&format!("a\nb{long}"));
        assert!(!line.contains('\n'));
        assert!(line.starts_with("a\\nb"));
        assert!(line.len() < 4200, "{}", line.len());
        assert_eq!(super::one_line("plain"), "plain");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(951_782_400, 5),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            format_rfc3339(1_795_320_000, 0),
            "2026-11-22T04:00:00.000000000Z"
        );
    }
}
