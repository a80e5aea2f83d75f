//! Rootless: the runtime run by an unprivileged user (issue 12).
//!
//! Each test makes its own users (lines appended to /etc/passwd and
//! /etc/group, and to /etc/subuid and /etc/subgid when the test maps a
//! range) and removes exactly those lines, the users' processes and
//! directories when it ends, pass or fail ([`TestUser`]'s Drop). The
//! runtime runs as the user through setpriv, with its own
//! XDG_RUNTIME_DIR (a 0700 directory under /tmp) and no `--root`: the
//! default state root is part of what is tested.
//!
//! Where /etc cannot be written (the cgroup v2 guest, whose root is the
//! host's, read-only), the four files are first replaced, inside the guest
//! only, by bind mounts of writable copies, which vanish with the guest.
//!
//! Differential: with OZZ_BIN=/usr/sbin/runc every test runs on runc,
//! from runc's own `spec --rootless`; the few places where runc 1.1
//! differs are tested for what runc does (see docs/testing.md).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};
use spec_tests::*;

/// Serialises the edits of /etc/passwd, /etc/group, /etc/subuid, /etc/subgid
/// between this process's threads.
static ETC: Mutex<()> = Mutex::new(());

/// Held while editing the account files: the threads' mutex, and the
/// system's password-file lock (lckpwdf, as useradd and vipw take it), so
/// that another process editing them at the same moment (another test run,
/// an administrator's useradd) neither loses our lines nor we its. In the
/// v2 guest /etc is read-only and the files are private copies: there the
/// lock file cannot be made, and only this process edits them.
struct EtcLock {
    _threads: std::sync::MutexGuard<'static, ()>,
    system: bool,
}

// glibc's password-file lock (shadow.h); the libc crate does not declare it.
extern "C" {
    fn lckpwdf() -> libc::c_int;
    fn ulckpwdf() -> libc::c_int;
}

impl EtcLock {
    fn take() -> EtcLock {
        let threads = ETC.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: lckpwdf takes no arguments; it waits up to 15 s for the lock.
        let system = unsafe { lckpwdf() } == 0;
        EtcLock {
            _threads: threads,
            system,
        }
    }
}

impl Drop for EtcLock {
    fn drop(&mut self) {
        if self.system {
            // SAFETY: releases the lock lckpwdf took in this process.
            unsafe { ulckpwdf() };
        }
    }
}

const SUB_SIZE: u32 = 65536;

/// An unprivileged user made for one test, with a private directory
/// (`base`, root's, 0755) holding what the user owns: `xdg`
/// (XDG_RUNTIME_DIR, 0700) and the bundles.
struct TestUser {
    name: String,
    uid: u32,
    /// The first id of its /etc/subuid and /etc/subgid range, if it has one.
    sub: Option<u32>,
    base: PathBuf,
    xdg: PathBuf,
    lines: Vec<(&'static str, String)>,
}

impl TestUser {
    fn new(tag: &str, with_subids: bool) -> TestUser {
        let guard = EtcLock::take();
        make_etc_writable();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let group = std::fs::read_to_string("/etc/group").unwrap();
        let used = |text: &str, id: u32| {
            text.lines()
                .any(|l| l.split(':').nth(2) == Some(id.to_string().as_str()))
        };
        let uid = (61000..62000)
            .find(|&id| !used(&passwd, id) && !used(&group, id))
            .expect("a free uid and gid in 61000..62000");
        let name = format!("ozzrl{uid}");
        let sub = with_subids.then(|| 1_000_000_000 + (uid - 61000) * SUB_SIZE);
        let mut user = TestUser {
            name: name.clone(),
            uid,
            sub,
            base: std::env::temp_dir().join(format!("ozz-rootless-{}-{name}", std::process::id())),
            xdg: PathBuf::new(),
            lines: Vec::new(),
        };
        user.add_line(
            "/etc/passwd",
            format!("{name}:x:{uid}:{uid}:ozz rootless test:/nonexistent:/usr/sbin/nologin"),
        );
        user.add_line("/etc/group", format!("{name}:x:{uid}:"));
        if let Some(sub) = sub {
            user.add_line("/etc/subuid", format!("{name}:{sub}:{SUB_SIZE}"));
            user.add_line("/etc/subgid", format!("{name}:{sub}:{SUB_SIZE}"));
        }
        drop(guard);
        let _ = std::fs::remove_dir_all(&user.base);
        std::fs::create_dir_all(&user.base).unwrap();
        std::fs::set_permissions(&user.base, std::fs::Permissions::from_mode(0o755)).unwrap();
        user.xdg = user.mkdir_owned(&format!("xdg-{tag}"), 0o700);
        user
    }

    fn add_line(&mut self, file: &'static str, line: String) {
        let mut text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            // Never the case on Debian; a file without its last newline
            // would have it added for good.
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        write_in_place(file, &text);
        self.lines.push((file, line));
    }

    /// A directory under `base` owned by the user.
    fn mkdir_owned(&self, name: &str, mode: u32) -> PathBuf {
        let dir = self.base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&dir, self.uid);
        dir
    }

    /// The runtime as this user, in `cwd`, with a clean environment.
    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        self.command_from(cwd, args, None)
    }

    /// As [`command`], first moving itself (still root) into the cgroup
    /// whose cgroup.procs is `cgroup_procs`.
    fn command_from(&self, cwd: &Path, args: &[&str], cgroup_procs: Option<&Path>) -> Command {
        let mut cmd = match cgroup_procs {
            Some(procs) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg("echo $$ > \"$0\" && exec \"$@\"")
                    .arg(procs)
                    .arg("setpriv");
                sh
            }
            None => Command::new("setpriv"),
        };
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--clear-groups")
            .arg("--")
            .arg(ozz_bin())
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.base)
            .env("USER", &self.name)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the runtime as this user; stdio captured.
    fn run(&self, args: &[&str]) -> Output {
        self.command(&self.base, args)
            .output()
            .expect("run setpriv")
    }

    /// Like [`run`] with stdout to /dev/null and stderr to a file: for
    /// `create`, whose container keeps stdio open.
    fn run_quiet(&self, args: &[&str]) -> Output {
        let log = self.base.join(format!("stderr-{}", unique_id("q")));
        status_with_stderr_file(self.command(&self.base, args), &log)
    }

    /// The runtime's default state root for this user.
    fn state_root(&self) -> PathBuf {
        self.xdg.join(runtime_name())
    }

    /// A bundle owned by the user: the runtime's own `spec --rootless`,
    /// non-interactive, running `args` on a private copy of the rootfs.
    fn bundle(&self, tag: &str, args: &[&str]) -> RlBundle {
        let id = unique_id(tag);
        let dir = self.mkdir_owned(&format!("bundle-{id}"), 0o755);
        let rootfs = dir.join("rootfs");
        let status = Command::new("cp")
            .arg("-a")
            .arg(shared_rootfs())
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a of the rootfs");
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", self.uid))
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success(), "chown -R of the rootfs");
        let out = self
            .command(&dir, &["spec", "--rootless"])
            .output()
            .unwrap();
        assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["path"] = json!("rootfs");
        RlBundle { id, dir, config }
    }

    /// Processes of this user (its uid or its subordinate range) on the host.
    fn pids(&self) -> Vec<i32> {
        let ours =
            |id: u32| id == self.uid || self.sub.is_some_and(|s| (s..s + SUB_SIZE).contains(&id));
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let uids = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|u| u.parse::<u32>().ok())
                .collect::<Vec<_>>();
            if uids.iter().any(|&u| ours(u)) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Whatever the test left running (a container, a stuck runtime).
        for _ in 0..500 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill takes plain integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.base);
        let _guard = EtcLock::take();
        for (file, line) in self.lines.iter().rev() {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mine = format!("{line}\n");
            let kept: String = text
                .split_inclusive('\n')
                .filter(|l| *l != mine && *l != line.as_str())
                .collect();
            if kept != text {
                write_in_place(file, &kept);
            }
        }
    }
}

/// Rewrites an account file. On the host: a new file renamed over it, so
/// that a test killed half-way never leaves /etc/passwd cut short. A file
/// that is a mount (the guest's bind of a private copy) is rewritten in
/// place instead: a rename could not replace it and the bind must stay.
fn write_in_place(file: &str, text: &str) {
    use std::io::Write;
    let path = Path::new(file);
    let dir_dev = std::fs::metadata(path.parent().unwrap()).map(|m| m.dev());
    let file_meta = std::fs::metadata(path);
    if let (Ok(dir_dev), Ok(meta)) = (dir_dev, &file_meta) {
        if meta.dev() == dir_dev {
            let new = path.with_extension("ozz-test-new");
            let mut f = std::fs::File::create(&new)
                .unwrap_or_else(|e| panic!("create {}: {e}", new.display()));
            f.write_all(text.as_bytes()).unwrap();
            f.sync_all().unwrap();
            std::fs::set_permissions(&new, meta.permissions()).unwrap();
            std::os::unix::fs::chown(&new, Some(meta.uid()), Some(meta.gid())).unwrap();
            std::fs::rename(&new, path)
                .unwrap_or_else(|e| panic!("rename {} over {file}: {e}", new.display()));
            return;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)
        .unwrap_or_else(|e| panic!("open {file}: {e}"));
    f.write_all(text.as_bytes()).unwrap();
}

/// In the v2 guest /etc is the host's, read-only: replace the four files
/// by writable copies, inside the guest's mount namespace only.
fn make_etc_writable() {
    let files = ["/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"];
    if nix::unistd::access("/etc/passwd", nix::unistd::AccessFlags::W_OK).is_ok() {
        for file in files {
            if !Path::new(file).exists() {
                std::fs::write(file, "").unwrap();
            }
        }
        return;
    }
    let copies = std::env::temp_dir().join(format!("ozz-rootless-etc-{}", std::process::id()));
    std::fs::create_dir_all(&copies).unwrap();
    for file in files {
        let copy = copies.join(Path::new(file).file_name().unwrap());
        if copy.exists() {
            continue;
        }
        std::fs::write(&copy, std::fs::read(file).unwrap_or_default()).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = Command::new("mount")
            .arg("--bind")
            .arg(&copy)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bind a copy over {file}: {}",
            stderr(&out)
        );
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

struct RlBundle {
    id: String,
    dir: PathBuf,
    config: Value,
}

impl RlBundle {
    fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    fn add_mount(&mut self, dest: &str, typ: &str, source: &str, options: &[&str]) {
        self.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": typ, "source": source, "options": options}));
    }

    /// `run` as `user`; returns the output.
    fn run(&self, user: &TestUser) -> Output {
        self.write();
        let bundle = self.dir.to_str().unwrap();
        user.run(&["run", "--bundle", bundle, &self.id])
    }

    fn run_ok(&self, user: &TestUser) -> String {
        let out = self.run(user);
        assert!(
            out.status.success(),
            "run failed ({:?}): {}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn create(&self, user: &TestUser) -> Output {
        self.write();
        let bundle = self.dir.to_str().unwrap();
        user.run_quiet(&["create", "--bundle", bundle, &self.id])
    }

    fn create_ok(&self, user: &TestUser) {
        let out = self.create(user);
        assert!(out.status.success(), "create: {}", stderr(&out));
    }

    fn create_and_start(&self, user: &TestUser) {
        self.create_ok(user);
        let out = user.run(&["start", &self.id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
    }

    fn state(&self, user: &TestUser) -> Value {
        let out = user.run(&["state", &self.id]);
        assert!(out.status.success(), "state: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    fn wait_status(&self, user: &TestUser, want: &str) {
        for _ in 0..500 {
            if self.state(user)["status"] == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {} never became {want}", self.id);
    }
}

/// The lines of `out` after `key`, trimmed.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{out}"))
}

/// Nothing of a failed create may stay in the state root.
fn assert_no_state(user: &TestUser, id: &str) {
    let dir = user.state_root().join(id);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn run_maps_the_user_to_root_and_keeps_state_private() {
    let user = TestUser::new("run", false);
    let b = user.bundle(
        "rl-run",
        &[
            "sh",
            "-c",
            "echo uid=$(id -u) gid=$(id -g); echo map=$(cat /proc/self/uid_map); echo gmap=$(cat /proc/self/gid_map)",
        ],
    );
    let out = b.run_ok(&user);
    assert_eq!(value(&out, "uid="), "0 gid=0", "{out}");
    assert_eq!(value(&out, "map="), format!("0 {} 1", user.uid), "{out}");
    assert_eq!(value(&out, "gmap="), format!("0 {} 1", user.uid), "{out}");
    // The default state root: $XDG_RUNTIME_DIR/<runtime>, the user's, 0700.
    let meta = std::fs::metadata(user.state_root()).expect("state root");
    assert_eq!(meta.uid(), user.uid);
    assert_eq!(meta.mode() & 0o777, 0o700, "mode {:o}", meta.mode());
    assert_no_state(&user, &b.id);
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    let user = TestUser::new("life", false);
    let b = user.bundle("rl-life", &["sleep", "1000"]);
    b.create_ok(&user);
    let state = b.state(&user);
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap();
    // The init is the user's on the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = value(&status, "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(uids, user.uid.to_string());
    let out = user.run(&["start", &b.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    b.wait_status(&user, "running");
    let out = user.run(&["list", "-q"]);
    assert!(out.status.success(), "list: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), b.id);
    let out = user.run(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    b.wait_status(&user, "stopped");
    let out = user.run(&["delete", &b.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(process_gone(pid));
    assert_no_state(&user, &b.id);
    let out = user.run(&["list", "-q"]);
    assert_eq!(stdout(&out).trim(), "");
}

#[test]
fn exec_joins_the_containers_user_namespace() {
    let user = TestUser::new("exec", false);
    let b = user.bundle("rl-exec", &["sleep", "1000"]);
    b.create_and_start(&user);
    let init = b.state(&user)["pid"].as_i64().unwrap().to_string();
    let out = user.run(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "echo uid=$(id -u); echo map=$(cat /proc/self/uid_map); echo pid=$$",
    ]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(value(&text, "uid="), "0", "{text}");
    assert_eq!(value(&text, "map="), format!("0 {} 1", user.uid), "{text}");
    // A pid of the container's own pid namespace (the init is 1).
    assert_ne!(value(&text, "pid="), "1");
    let ns = ns_link(&init, "user");
    assert_ne!(
        ns,
        ns_link("self", "user"),
        "the container has its own user namespace"
    );
    let out = user.run(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    assert_no_state(&user, &b.id);
}

/// Without a cgroup (v1, or v2 with nothing delegated) the container's
/// processes are still found: ozz through the pid namespace. runc 1.1
/// fails there (`unable to get all container pids`) and needs a cgroup.
#[test]
fn ps_and_kill_all_without_a_cgroup() {
    let user = TestUser::new("ps", false);
    let b = user.bundle("rl-ps", &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    b.create_and_start(&user);
    let init = b.state(&user)["pid"].as_i64().unwrap();
    // The background sleep shows once the shell has forked it.
    let mut pids: Vec<i64> = Vec::new();
    for _ in 0..500 {
        let out = user.run(&["ps", "--format", "json", &b.id]);
        if !is_ozz() {
            assert!(
                !out.status.success(),
                "runc 1.1 lists no pids without a cgroup"
            );
            return;
        }
        assert!(out.status.success(), "ps: {}", stderr(&out));
        pids = serde_json::from_slice(&out.stdout).unwrap();
        if pids.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&init), "{pids:?}");
    let out = user.run(&["kill", "--all", &b.id, "KILL"]);
    assert!(out.status.success(), "kill --all: {}", stderr(&out));
    b.wait_status(&user, "stopped");
    for pid in pids {
        for _ in 0..500 {
            if process_gone(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(process_gone(pid), "{pid} survived kill --all");
    }
}

/// pause needs a freezer, hence a cgroup: refused in one line (as runc's
/// `cannot toggle freezer: cgroups not configured for container`), and
/// the container runs on.
#[test]
fn pause_without_a_cgroup_is_refused() {
    let user = TestUser::new("pause", false);
    let b = user.bundle("rl-pause", &["sleep", "1000"]);
    b.create_and_start(&user);
    let out = user.run(&["pause", &b.id]);
    assert!(!out.status.success(), "pause succeeded without a cgroup");
    // (runc 1.1.5 says so on v1; on v2 `freezer not supported: openat2
    // …/cgroup.freeze: no such file or directory`.)
    let err = stderr(&out);
    if is_ozz() {
        assert!(
            err.contains("cgroups not configured for container"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(b.state(&user)["status"], "running");
}

#[test]
fn bind_mount_of_a_user_dir_and_tmpfs() {
    let user = TestUser::new("mnt", false);
    let share = user.mkdir_owned("share", 0o755);
    std::fs::write(share.join("from-host"), "hostdata\n").unwrap();
    chown(&share.join("from-host"), user.uid);
    let mut b = user.bundle(
        "rl-mnt",
        &[
            "sh",
            "-c",
            "echo read=$(cat /data/from-host); echo made > /data/from-ctr && echo wrote=ok; \
             echo t > /t/x && echo tmpfs=$(cat /t/x); grep ' /t ' /proc/self/mounts | cut -d' ' -f3",
        ],
    );
    b.add_mount("/data", "bind", share.to_str().unwrap(), &["rbind", "rw"]);
    b.add_mount("/t", "tmpfs", "tmpfs", &["size=1m", "nosuid", "nodev"]);
    let out = b.run_ok(&user);
    assert_eq!(value(&out, "read="), "hostdata", "{out}");
    assert_eq!(value(&out, "wrote="), "ok", "{out}");
    assert_eq!(value(&out, "tmpfs="), "t", "{out}");
    assert!(out.lines().any(|l| l == "tmpfs"), "{out}");
    // What the container's root made is the user's on the host.
    let meta = std::fs::metadata(share.join("from-ctr")).unwrap();
    assert_eq!(meta.uid(), user.uid);
    assert_eq!(meta.gid(), user.uid);
}

/// The kernel lets only the host's root idmap a mount of the host's
/// filesystems: refused before anything is made (runc: no such option in
/// 1.1, refused for rootless containers in newer versions).
#[test]
fn idmapped_mount_is_refused_clearly() {
    let user = TestUser::new("idmap", false);
    let share = user.mkdir_owned("share", 0o755);
    let mut b = user.bundle("rl-idmap", &["true"]);
    b.add_mount(
        "/data",
        "bind",
        share.to_str().unwrap(),
        &["rbind", "idmap"],
    );
    let out = b.run(&user);
    if !is_ozz() {
        // runc 1.1 knows no idmap option: the bind is made without one.
        return;
    }
    assert!(
        !out.status.success(),
        "an idmapped mount as a rootless user"
    );
    let err = stderr(&out);
    assert!(
        err.contains("idmapped mounts are not supported for a rootless container"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_no_state(&user, &b.id);
}

/// A user namespace without a network namespace: sysfs cannot be mounted
/// (it belongs to the host's network namespace), and the host's /sys must
/// not become writable through a bind instead. With `spec --rootless`'s
/// own read-only bind of /sys, and with a plain sysfs mount asked rw.
#[test]
fn host_sys_stays_read_only() {
    let user = TestUser::new("sys", false);
    let script = "grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; \
                  for f in /sys/kernel/mm/ksm/run /sys/kernel/profiling /sys/x; do \
                  if echo 1 > $f; then echo WROTE $f; fi; done 2>/dev/null; echo done";
    let b = user.bundle("rl-sys", &["sh", "-c", script]);
    let out = b.run_ok(&user);
    assert!(out.lines().next() == Some("ro"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.contains("done"), "{out}");

    let mut b = user.bundle("rl-sysfs", &["sh", "-c", script]);
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                        "options": ["nosuid", "noexec", "nodev"]});
        }
    }
    let out = b.run(&user);
    if !out.status.success() {
        // runc 1.1: the sysfs mount fails (EPERM) and so does create.
        assert!(!is_ozz(), "run: {}", stderr(&out));
        assert_no_state(&user, &b.id);
        return;
    }
    let text = stdout(&out);
    assert!(text.lines().next() == Some("ro"), "{text}");
    assert!(!text.contains("WROTE"), "{text}");
}

/// Whether newuidmap is there to run; says SKIP and why when it is not
/// (`make test` installs it: hack/deps).
fn newuidmap_installed() -> bool {
    let installed = Command::new("newuidmap").arg("--help").output().is_ok();
    if !installed {
        println!("SKIP: newuidmap is not installed (Debian package uidmap)");
    }
    installed
}

/// More than the user's own id: newuidmap/newgidmap with the user's
/// /etc/subuid and /etc/subgid range; setgroups stays allowed then.
#[test]
fn subordinate_range_through_newuidmap() {
    if !newuidmap_installed() {
        return;
    }
    let user = TestUser::new("subid", true);
    let sub = user.sub.unwrap();
    let mut b = user.bundle(
        "rl-subid",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; cat /proc/self/gid_map; echo setgroups=$(cat /proc/self/setgroups); \
             touch /t/f && chown 1000:1000 /t/f && echo owner=$(stat -c %u:%g /t/f); \
             touch /data/f && chown 1000:1000 /data/f && echo chowned",
        ],
    );
    let share = user.mkdir_owned("share", 0o755);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_CHOWN"));
    }
    for key in ["uidMappings", "gidMappings"] {
        b.config["linux"][key]
            .as_array_mut()
            .unwrap()
            .push(json!({"containerID": 1, "hostID": sub, "size": SUB_SIZE}));
    }
    b.add_mount("/t", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_mount("/data", "bind", share.to_str().unwrap(), &["rbind", "rw"]);
    let out = b.run_ok(&user);
    let maps: Vec<Vec<String>> = out
        .lines()
        .take(4)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let own = vec!["0".to_string(), user.uid.to_string(), "1".to_string()];
    let range = vec!["1".to_string(), sub.to_string(), SUB_SIZE.to_string()];
    assert_eq!(maps, vec![own.clone(), range.clone(), own, range], "{out}");
    assert_eq!(value(&out, "setgroups="), "allow", "{out}");
    assert_eq!(value(&out, "owner="), "1000:1000", "{out}");
    assert!(out.contains("chowned"), "{out}");
    // Container id 1000 is the range's 999th id on the host.
    let meta = std::fs::metadata(share.join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (sub + 999, sub + 999));
}

/// A range the user was not given: newuidmap refuses, create fails in one
/// line and leaves nothing.
#[test]
fn range_without_subuid_lines_is_refused() {
    if !newuidmap_installed() {
        return;
    }
    let user = TestUser::new("nosub", false);
    let mut b = user.bundle("rl-nosub", &["true"]);
    for key in ["uidMappings", "gidMappings"] {
        b.config["linux"][key]
            .as_array_mut()
            .unwrap()
            .push(json!({"containerID": 1, "hostID": 1_500_000_000u32, "size": 1000}));
    }
    let out = b.run(&user);
    assert!(
        !out.status.success(),
        "a range not in /etc/subuid was mapped"
    );
    let err = stderr(&out);
    if is_ozz() {
        assert!(err.contains("newuidmap"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_no_state(&user, &b.id);
    // (runc 1.1 leaves its `runc init` behind here.)
    if is_ozz() {
        assert!(user.pids().is_empty(), "processes left: {:?}", user.pids());
    }
}

/// Another user cannot list, signal or delete a user's containers, even
/// naming the state root: file permissions refuse it, and the container
/// runs on.
#[test]
fn another_user_cannot_reach_the_containers() {
    let owner = TestUser::new("own", false);
    let other = TestUser::new("oth", false);
    let b = owner.bundle("rl-own", &["sleep", "1000"]);
    b.create_and_start(&owner);
    let root = owner.state_root();
    let root = root.to_str().unwrap();
    let out = other.run(&["--root", root, "list"]);
    assert!(!out.status.success(), "list: {}", stdout(&out));
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
    for args in [
        vec!["--root", root, "kill", &b.id, "KILL"],
        vec!["--root", root, "state", &b.id],
        vec!["--root", root, "delete", "--force", &b.id],
    ] {
        let out = other.run(&args);
        // runc 1.1's `delete --force` takes a container it cannot see for
        // one that does not exist, and succeeds (doing nothing).
        if is_ozz() || args[2] != "delete" {
            assert!(!out.status.success(), "{args:?} succeeded");
        }
        if is_ozz() {
            assert!(
                stderr(&out).contains("ermission denied"),
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }
    assert_eq!(b.state(&owner)["status"], "running");
    let out = owner.run(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
}

/// Limits need a cgroup: where the user may make none (a v1 or hybrid
/// host, v2 with nothing delegated) create fails in one line and leaves
/// nothing (runc: `cannot set memory limit: container could not join or
/// create cgroup` on v1).
#[test]
fn limits_without_a_delegated_cgroup_fail_clearly() {
    let user = TestUser::new("lim", false);
    let mut b = user.bundle("rl-lim", &["true"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    let out = b.run(&user);
    assert!(!out.status.success(), "limits applied without a cgroup?");
    let err = stderr(&out);
    if is_ozz() {
        assert!(err.contains("asks for resource limits"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_no_state(&user, &b.id);
    assert!(user.pids().is_empty(), "processes left: {:?}", user.pids());
}

/// A cgroup v2 subtree delegated to the user as systemd's Delegate=yes
/// does it: the directory and its cgroup.procs, cgroup.subtree_control and
/// cgroup.threads are the user's, controllers enabled below it, and the
/// user's runtime runs from a leaf inside it (moving a process between
/// cgroups takes write access to their common ancestor's cgroup.procs).
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(user: &TestUser) -> Delegated {
        let dir = Path::new("/sys/fs/cgroup").join(format!("ozz-rl-{}", user.name));
        let _ = std::fs::remove_dir(dir.join("client"));
        let _ = std::fs::remove_dir(&dir);
        for controller in ["memory", "pids"] {
            let _ = std::fs::write(
                "/sys/fs/cgroup/cgroup.subtree_control",
                format!("+{controller}"),
            );
        }
        std::fs::create_dir(&dir).unwrap();
        let delegated = Delegated { dir: dir.clone() };
        for file in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            chown(&dir.join(file), user.uid);
        }
        std::fs::create_dir(dir.join("client")).unwrap();
        chown(&dir.join("client"), user.uid);
        chown(&dir.join("client/cgroup.procs"), user.uid);
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids").unwrap();
        delegated
    }

    /// The runtime as `user`, started from the delegated leaf.
    fn run(&self, user: &TestUser, args: &[&str]) -> Output {
        let leaf = self.dir.join("client/cgroup.procs");
        user.command_from(&user.base, args, Some(&leaf))
            .output()
            .expect("run sh")
    }

    /// As [`run`] for `create`: stdout to /dev/null, stderr to a file (the
    /// container keeps what it inherits open).
    fn create(&self, user: &TestUser, args: &[&str]) -> Output {
        let leaf = self.dir.join("client/cgroup.procs");
        let log = user.base.join(format!("stderr-{}", unique_id("d")));
        status_with_stderr_file(user.command_from(&user.base, args, Some(&leaf)), &log)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Whatever still runs in the subtree (a failed test's container),
        // then every cgroup left, deepest first.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let mut dirs = Vec::new();
        let mut todo = vec![self.dir.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            for _ in 0..200 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// cgroup v2 with a delegated subtree: the rootless container gets its
/// limits there (memory.max, pids.max checked in the cgroup's files), and
/// delete removes its cgroup.
#[test]
fn delegated_cgroup_v2_takes_limits() {
    if !is_cgroup_v2() {
        println!("SKIP: cgroup v1/hybrid host: no cgroup v2 delegation (the v2 guest runs this)");
        return;
    }
    let user = TestUser::new("deleg", false);
    let delegated = Delegated::new(&user);
    let mut b = user.bundle("rl-deleg", &["sleep", "1000"]);
    let rel = format!(
        "/{}/{}",
        delegated.dir.file_name().unwrap().to_str().unwrap(),
        b.id
    );
    b.config["linux"]["cgroupsPath"] = json!(rel);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    b.write();
    let bundle = b.dir.to_str().unwrap().to_string();
    let out = delegated.create(&user, &["create", "--bundle", &bundle, &b.id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let cg = delegated.dir.join(&b.id);
    assert_eq!(read_trimmed(&cg.join("memory.max")), "67108864");
    assert_eq!(read_trimmed(&cg.join("pids.max")), "50");
    let pid = b.state(&user)["pid"].as_i64().unwrap();
    let procs = read_trimmed(&cg.join("cgroup.procs"));
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let out = delegated.run(&user, &["start", &b.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    b.wait_status(&user, "running");
    // A cgroup of its own: the freezer and update work for the user.
    let out = delegated.run(&user, &["pause", &b.id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert_eq!(b.state(&user)["status"], "paused");
    assert_eq!(read_trimmed(&cg.join("cgroup.freeze")), "1");
    let out = delegated.run(&user, &["resume", &b.id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert_eq!(b.state(&user)["status"], "running");
    let out = delegated.run(&user, &["update", "--pids-limit", "40", &b.id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(read_trimmed(&cg.join("pids.max")), "40");
    let out = delegated.run(&user, &["delete", "--force", &b.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!cg.exists(), "the container's cgroup outlived delete");
    drop(user);
    drop(delegated);
}

/// `--rootless false`: cgroups are not done the rootless way, so the
/// cgroup the user may not make fails create (runc alike); a value that is
/// neither true, false nor auto is refused. Nothing is left either way.
#[test]
fn rootless_flag_false_and_bad_values() {
    let user = TestUser::new("flag", false);
    let b = user.bundle("rl-flag", &["true"]);
    b.write();
    let bundle = b.dir.to_str().unwrap();
    let out = user.run(&["--rootless", "false", "run", "--bundle", bundle, &b.id]);
    assert!(
        !out.status.success(),
        "--rootless false ran without a cgroup"
    );
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
    assert_no_state(&user, &b.id);
    let out = user.run(&["--rootless", "maybe", "run", "--bundle", bundle, &b.id]);
    assert!(!out.status.success(), "--rootless maybe accepted");
    if is_ozz() {
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("--rootless"), "{}", stderr(&out));
    }
    assert_no_state(&user, &b.id);
    let out = user.run(&["--rootless", "true", "run", "--bundle", bundle, &b.id]);
    assert!(out.status.success(), "--rootless true: {}", stderr(&out));
}
