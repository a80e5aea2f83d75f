//! The one place that runs a hook: the hook's path with its args and env,
//! the container's state JSON on stdin, killed when its timeout passes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;

pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for (index, hook) in hooks.into_iter().flatten().enumerate() {
        run_one(hook, state_json).with_context(|| format!("{kind} hook #{index}"))?;
    }
    Ok(())
}

/// Runs every hook even when one fails, logging failures as warnings: the
/// spec's rule for poststart and poststop.
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for (index, hook) in hooks.into_iter().flatten().enumerate() {
        if let Err(err) = run_one(hook, state_json) {
            crate::log::warn(&format!("{kind} hook #{index}: {err:#}"));
        }
    }
}

fn run_one(hook: &Hook, state_json: &str) -> Result<()> {
    let path = hook.path();
    let mut command = Command::new(path);
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            command.arg0(argv0).args(rest);
        }
    }
    // why: runc (Go's exec.Cmd with a nil Env) lets a hook without "env"
    // inherit the runtime's environment, and hooks written for it rely on
    // PATH; an explicit list, even empty, is the hook's whole environment.
    if let Some(env) = hook.env() {
        command.env_clear();
        for entry in env {
            if let Some((key, value)) = entry.split_once('=') {
                command.env(key, value);
            }
        }
    }
    // why: pipes deadlock when a hook writes more than a pipe holds (we
    // only read after it exits) or ignores a state larger than one; the
    // init runs createContainer/startContainer hooks and must stay
    // single-threaded, so no reader threads: anonymous files instead.
    let stdin = anon_file("ozz-hook-stdin")?;
    (&stdin).write_all(state_json.as_bytes())?;
    (&stdin).seek(SeekFrom::Start(0))?;
    let output = anon_file("ozz-hook-output")?;
    let mut child = command
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output.try_clone()?))
        .spawn()
        .with_context(|| format!("start {}", path.display()))?;
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} timed out after {}s",
                path.display(),
                hook.timeout().unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        bail!(
            "{} failed: {status}: {}",
            path.display(),
            tail(&output).trim().replace('\n', " ")
        );
    }
    Ok(())
}

/// An unlinked read-write file in memory.
fn anon_file(name: &str) -> Result<File> {
    let name = std::ffi::CString::new(name)?;
    // SAFETY: name is a valid NUL-terminated string; the returned descriptor
    // is checked and then owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create for a hook");
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The last bytes a hook wrote (enough for an error line, bounded).
fn tail(output: &File) -> String {
    const MAX: u64 = 4096;
    let mut file = output;
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
