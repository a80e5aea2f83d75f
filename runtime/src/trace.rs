//! The phase trace: with `OZZ_TRACE=1` (or `--debug` without `--log`) every
//! step of create, start, run and delete prints one line
//!
//! `ozz-trace <pid> <µs since the command started> +<µs since this process's previous mark> <step>`
//!
//! to stderr, or to the descriptor named by `OZZ_TRACE_FD`. The container's
//! init (a fork of the runtime) writes to the same stream until its last
//! mark, taken just before the seccomp filter and execve. `hack/bench
//! --phases` reads these lines.
//!
//! Off, a mark costs one relaxed load (the environment is read once, in
//! `init`). On, a mark allocates nothing: the line is formatted on the
//! stack and written with a single write(2), so it is safe in the child
//! between clone and exec.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

static ON: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(2);
/// CLOCK_MONOTONIC in ns at the start of the command (before a re-exec).
static START: AtomicU64 = AtomicU64::new(0);
/// CLOCK_MONOTONIC in ns of this process's previous mark.
static PREV: AtomicU64 = AtomicU64::new(0);

/// Carries the start time across the sealed re-exec (removed on arrival).
const START_ENV: &str = "OZZ_TRACE_T0";

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// First thing in main: reads OZZ_TRACE and OZZ_TRACE_FD once.
pub fn init() {
    let Some(value) = std::env::var_os("OZZ_TRACE") else {
        return;
    };
    if value.is_empty() || value == "0" {
        return;
    }
    enable();
}

/// `--debug` without a log file: debug lines go to stderr, the trace too.
/// (With `--log`, callers such as containerd parse that file and stderr is
/// theirs: the trace stays off unless OZZ_TRACE asks for it.)
pub fn enable_for_debug(debug: bool, has_log_file: bool) {
    if debug && !has_log_file && !on() {
        enable();
    }
}

fn enable() {
    let now = now_ns();
    // Single-threaded here (start of main): the environment may change.
    let start = match std::env::var(START_ENV) {
        Ok(text) => {
            std::env::remove_var(START_ENV);
            text.parse().unwrap_or(now)
        }
        Err(_) => now,
    };
    if let Some(fd) = std::env::var("OZZ_TRACE_FD")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|&fd| fd >= 0)
    {
        FD.store(fd, Ordering::Relaxed);
    }
    START.store(start, Ordering::Relaxed);
    PREV.store(now, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    mark("main");
}

#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The trace's own descriptor when it is not stdio: the child keeps it
/// (close-on-exec) so its marks reach the same stream.
pub fn kept_fd() -> Option<i32> {
    let fd = FD.load(Ordering::Relaxed);
    (on() && fd > 2).then_some(fd)
}

/// Just before the sealed re-exec: the new image continues this clock.
pub fn handoff() {
    if on() {
        mark("seal: re-exec");
        std::env::set_var(START_ENV, START.load(Ordering::Relaxed).to_string());
    }
}

/// One trace line for `step`.
#[inline]
pub fn mark(step: &str) {
    if on() {
        write_line(format_args!("{step}"));
    }
}

/// `trace::mark_fmt!("mount {}", dest)`: formats only when the trace is on.
macro_rules! mark_fmt {
    ($($arg:tt)*) => {
        if $crate::trace::on() {
            $crate::trace::write_line(format_args!($($arg)*));
        }
    };
}
pub(crate) use mark_fmt;

/// A line on the stack: what does not fit is cut, never allocated.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - 1 - self.len; // one byte kept for '\n'
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[doc(hidden)]
pub fn write_line(step: std::fmt::Arguments<'_>) {
    let now = now_ns();
    let since_start = now.saturating_sub(START.load(Ordering::Relaxed));
    let since_prev = now.saturating_sub(PREV.swap(now, Ordering::Relaxed));
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let line = format_line(pid, since_start, since_prev, step);
    // SAFETY: writes our own stack buffer; a failed trace write is ignored.
    unsafe {
        libc::write(
            FD.load(Ordering::Relaxed),
            line.buf.as_ptr().cast(),
            line.len,
        )
    };
}

/// `ozz-trace PID µs.ns +µs.ns STEP\n`, cut to the buffer, newline kept.
fn format_line(pid: i32, since_start: u64, since_prev: u64, step: std::fmt::Arguments<'_>) -> Line {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(
        line,
        "ozz-trace {pid} {}.{:03} +{}.{:03} {step}",
        since_start / 1000,
        since_start % 1000,
        since_prev / 1000,
        since_prev % 1000
    );
    line.buf[line.len] = b'\n';
    line.len += 1;
    line
}

#[cfg(test)]
mod tests {
    use super::format_line;

    #[test]
    fn formats_microseconds_and_cuts_long_steps() {
        let line = format_line(42, 1_234_567, 5_006, format_args!("mount {}", "/proc"));
        assert_eq!(
            &line.buf[..line.len],
            b"ozz-trace 42 1234.567 +5.006 mount /proc\n"
        );
        let long = "x".repeat(1000);
        let line = format_line(1, 0, 0, format_args!("{long}"));
        assert_eq!(line.len, 256);
        assert_eq!(line.buf[255], b'\n');
        assert!(line.buf[..255].starts_with(b"ozz-trace 1 0.000 +0.000 xxx"));
    }
}
