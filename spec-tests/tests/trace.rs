//! The phase trace (issue 15): `OZZ_TRACE=1` makes `run` print one
//! `ozz-trace PID µs +µs STEP` line per step, from the runtime and from the
//! container's init up to just before its seccomp filter and execve, on
//! stderr or on OZZ_TRACE_FD; without it, nothing.

use std::process::{Command, Output, Stdio};

use spec_tests::*;

struct Mark {
    pid: u32,
    at: f64,
    step: String,
}

fn marks(text: &str) -> Vec<Mark> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("ozz-trace ")?;
            let mut parts = rest.splitn(4, ' ');
            let pid = parts.next()?.parse().ok()?;
            let at = parts.next()?.parse().ok()?;
            let delta = parts.next()?.strip_prefix('+')?;
            delta.parse::<f64>().ok()?;
            Some(Mark {
                pid,
                at,
                step: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// `ozz run` of the bundle through sh, so a test can open a descriptor for
/// OZZ_TRACE_FD first; `env` is added to ours.
fn run_with(b: &Bundle, shell_prefix: &str, env: &[(&str, &str)]) -> Output {
    b.write();
    let script = format!("{shell_prefix} exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"",);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(ozz_bin())
        .arg(state_root())
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(Stdio::null())
        .env_remove("OZZ_TRACE")
        .env_remove("OZZ_TRACE_FD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ozz")
}

fn find<'a>(all: &'a [Mark], step: &str) -> &'a Mark {
    all.iter()
        .find(|m| m.step == step)
        .unwrap_or_else(|| panic!("no mark {step:?} in the trace"))
}

#[test]
fn trace_marks_runtime_and_container_init_in_order() {
    if !is_ozz() {
        eprintln!("SKIP: OZZ_TRACE is ozz's own");
        return;
    }
    let b = bundle("trace", &["echo", "traced"]);
    let out = run_with(&b, "", &[("OZZ_TRACE", "1")]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    // The container's own output is untouched.
    assert_eq!(stdout(&out), "traced\n");
    let text = stderr(&out);
    let all = marks(&text);
    // Every stderr line is a trace line.
    assert_eq!(all.len(), text.lines().count(), "stray stderr: {text}");
    assert_eq!(all[0].step, "main");
    let runtime = all[0].pid;
    // The init runs in a new pid namespace: it is pid 1 there.
    let child = find(&all, "child: pivot_root");
    assert_eq!(child.pid, 1, "the init's marks carry its own pid");
    assert_ne!(runtime, 1);
    // The default bundle's process is executed by the sealed exec stub, or
    // needs nothing from a binary on a read-only mount (the v2 guest's):
    // no re-exec either way (security.rs).
    let seal = ["seal: exec stub", "seal: already protected, no re-exec"]
        .into_iter()
        .find(|step| all.iter().any(|m| m.step == *step))
        .unwrap_or_else(|| panic!("neither the exec stub nor a protected binary: {text}"));
    assert!(
        all.iter().all(|m| m.step != "seal: re-exec"),
        "re-executed: {text}"
    );
    for step in [
        seal,
        "bundle loaded and validated",
        "cgroup dirs created",
        "clone3 (parent)",
        "child ready",
        "state written",
        "start: exec seen",
        "run: container exited",
        "delete: cgroup removed",
        "done",
    ] {
        assert_eq!(find(&all, step).pid, runtime, "{step} is the runtime's");
    }
    for step in [
        "child: fds closed",
        "child: mount /proc",
        "child: seccomp compiled",
        "child: last mark (seccomp load, execve)",
    ] {
        assert_eq!(find(&all, step).pid, 1, "{step} is the init's");
    }
    // One clock for the command, across the fork:
    // each process's marks never go back in time.
    for pid in [runtime, 1] {
        let times: Vec<f64> = all.iter().filter(|m| m.pid == pid).map(|m| m.at).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "marks of pid {pid} go back in time: {times:?}"
        );
    }
    let order = |a: &str, b: &str| {
        assert!(
            find(&all, a).at <= find(&all, b).at,
            "{a} should come before {b}"
        )
    };
    order("bundle loaded and validated", seal);
    order(seal, "state dir created");
    order("clone3 (parent)", "child: mount /proc");
    order("child: mount /proc", "child: pivot_root");
    order(
        "child: last mark (seccomp load, execve)",
        "start: exec seen",
    );
    order("run: container exited", "done");
}

#[test]
fn trace_off_is_silent_and_trace_fd_takes_the_lines() {
    if !is_ozz() {
        eprintln!("SKIP: OZZ_TRACE is ozz's own");
        return;
    }
    let b = bundle("trace-off", &["true"]);
    let out = run_with(&b, "", &[]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing on stderr without OZZ_TRACE");

    let b = bundle("trace-fd", &["true"]);
    let file = b.dir.join("trace.out");
    let prefix = format!("exec 7>'{}';", file.display());
    let out = run_with(&b, &prefix, &[("OZZ_TRACE", "1"), ("OZZ_TRACE_FD", "7")]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "the trace went to fd 7, not stderr");
    let text = std::fs::read_to_string(&file).unwrap();
    let all = marks(&text);
    // The init kept fd 7 for its own marks.
    find(&all, "child: last mark (seccomp load, execve)");
    find(&all, "done");
}
