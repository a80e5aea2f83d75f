//! The one place that runs a hook: the hook's path with its args and env,
//! the container's state JSON on stdin, killed when its timeout passes.

use std::io::{Read, Write};
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
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that never reads stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json.as_bytes());
    }
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
        let mut out = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut out);
        }
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        bail!(
            "{} failed: {status}: {}",
            path.display(),
            out.trim().replace('\n', " ")
        );
    }
    Ok(())
}
