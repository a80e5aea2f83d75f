//! Namespaces: created when listed, shared when not, joined by path; user
//! namespace id maps, time namespace offsets, cgroup namespace root — each
//! checked from inside the container against the host's /proc.

use serde_json::{json, Value};
use spec_tests::*;

const ALL: [(&str, &str); 8] = [
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("mount", "mnt"),
    ("cgroup", "cgroup"),
    ("user", "user"),
    ("time", "time"),
];

fn set_namespaces(b: &mut Bundle, types: &[&str]) {
    b.config["linux"]["namespaces"] =
        Value::Array(types.iter().map(|t| json!({"type": t})).collect());
}

fn map_users(b: &mut Bundle, host: u32) {
    let map = json!([{"containerID": 0, "hostID": host, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
}

/// Prints "name link" for every namespace type, as seen inside.
const PRINT_NS: &str =
    "for n in pid net ipc uts mnt cgroup user time; do echo $n $(readlink /proc/self/ns/$n); done";

fn parse_ns(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn time_ns_supported() -> bool {
    std::path::Path::new("/proc/self/ns/time").exists()
}

#[test]
fn each_namespace_is_new_when_listed_and_shared_when_not() {
    for (typ, name) in ALL {
        if typ == "time" && !time_ns_supported() {
            eprintln!("skip time: kernel has no time namespaces");
            continue;
        }
        // Listed: every default namespace plus this one.
        let mut b = bundle(&format!("ns-new-{name}"), &["sh", "-c", PRINT_NS]);
        let mut types = vec!["pid", "network", "ipc", "uts", "mount", "cgroup"];
        if !types.contains(&typ) {
            types.push(typ);
        }
        set_namespaces(&mut b, &types);
        if typ == "user" {
            map_users(&mut b, 0);
        }
        let inside = parse_ns(&b.run_ok());
        let host = ns_link("self", name);
        assert!(!host.is_empty());
        assert_ne!(inside[name], host, "{typ} listed but shared with the host");

        // Not listed: shared with the host (mount: see
        // without_a_mount_namespace_the_hosts_is_shared).
        if typ == "mount" {
            continue;
        }
        let mut b = bundle(&format!("ns-shared-{name}"), &["sh", "-c", PRINT_NS]);
        let types: Vec<&str> = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
            .into_iter()
            .filter(|t| *t != typ)
            .collect();
        set_namespaces(&mut b, &types);
        if typ == "uts" {
            b.config["hostname"] = json!("");
        }
        let inside = parse_ns(&b.run_ok());
        assert_eq!(inside[name], host, "{typ} not listed but not the host's");
    }
}

#[test]
fn joining_namespaces_by_path() {
    let mut a = bundle("ns-join-a", &["sleep", "100"]);
    a.config["hostname"] = json!("ozz-a");
    a.create_and_start();
    let pid = a.state()["pid"].as_i64().unwrap().to_string();

    let mut b = bundle(
        "ns-join-b",
        &[
            "sh",
            "-c",
            &format!("{PRINT_NS}; echo host $(hostname); echo ps $(cat /proc/[0-9]*/comm | sort | tr '\\n' ' ')"),
        ],
    );
    b.config["hostname"] = json!("");
    let mut nss = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    for typ in ["network", "ipc", "uts", "pid"] {
        let name = ALL.iter().find(|(t, _)| *t == typ).unwrap().1;
        nss.push(json!({"type": typ, "path": format!("/proc/{pid}/ns/{name}")}));
    }
    b.config["linux"]["namespaces"] = Value::Array(nss);
    let out = b.run_ok();
    let inside = parse_ns(&out);
    for name in ["net", "ipc", "uts", "pid"] {
        assert_eq!(inside[name], ns_link(&pid, name), "{name} not joined");
        assert_ne!(inside[name], ns_link("self", name), "{name} is the host's");
    }
    assert_ne!(
        inside["mnt"],
        ns_link(&pid, "mnt"),
        "mount namespace must be B's own"
    );
    assert_eq!(inside["host"], "ozz-a", "{out}");
    // B's /proc shows A's processes: A's sleep is in the pid namespace.
    assert!(inside["ps"].split(' ').any(|c| c == "sleep"), "{out}");
    // A was not disturbed.
    assert_eq!(a.status(), "running");
}

#[test]
fn user_namespace_maps_ids() {
    const BASE: u32 = 200000;
    let host = HostDir::new("userns");
    let file = host.path.join("owned");
    std::fs::write(&file, "x").unwrap();
    let chown = |uid: u32, path: &std::path::Path| {
        assert!(std::process::Command::new("chown")
            .arg(format!("{uid}:{uid}"))
            .arg(path)
            .status()
            .unwrap()
            .success());
    };
    chown(BASE + 1000, &file);
    let other = host.path.join("unmapped");
    std::fs::write(&other, "y").unwrap();
    chown(1000, &other);
    // Let the mapped root reach the files.
    chown(BASE, &host.path);

    let mut b = bundle(
        "userns",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; echo id $(id -u) $(id -g); \
             stat -c '%n %u %g' /root/owned /root/unmapped",
        ],
    );
    set_namespaces(
        &mut b,
        &["pid", "network", "ipc", "uts", "mount", "cgroup", "user"],
    );
    map_users(&mut b, BASE);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/root", "type": "bind", "source": host.path, "options": ["rbind"]}),
    );
    let out = b.run_ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", &BASE.to_string(), "65536"], "{out}");
    assert_eq!(lines[1], ["0", &BASE.to_string(), "65536"], "{out}");
    assert_eq!(lines[2], ["id", "0", "0"], "{out}");
    assert_eq!(lines[3], ["/root/owned", "1000", "1000"], "{out}");
    // A host id outside the map shows as the overflow id.
    assert_eq!(lines[4], ["/root/unmapped", "65534", "65534"], "{out}");
}

#[test]
fn time_namespace_offsets() {
    if !time_ns_supported() {
        eprintln!("skip: kernel has no time namespaces");
        return;
    }
    const MONO: i64 = 86400;
    const BOOT: i64 = 3 * 86400;
    let mut b = bundle(
        "timens",
        &[
            "sh",
            "-c",
            "cat /proc/self/timens_offsets; cat /proc/uptime",
        ],
    );
    set_namespaces(
        &mut b,
        &["pid", "network", "ipc", "uts", "mount", "cgroup", "time"],
    );
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": MONO, "nanosecs": 0},
        "boottime": {"secs": BOOT, "nanosecs": 0},
    });
    let host_before: f64 = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let out = b.run_ok();
    let host_after: f64 = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    assert!(
        out.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == ["monotonic", &MONO.to_string(), "0"]
        }),
        "{out}"
    );
    assert!(
        out.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == ["boottime", &BOOT.to_string(), "0"]
        }),
        "{out}"
    );
    let inside = uptime(out.lines().last().unwrap());
    assert!(
        inside - host_after <= BOOT as f64 + 1.0 && inside - host_before >= BOOT as f64 - 1.0,
        "uptime inside {inside}, host {host_before}..{host_after}, offset {BOOT}"
    );
}

fn uptime(text: &str) -> f64 {
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn cgroup_namespace_root_is_the_container_cgroup() {
    let mut b = bundle("cgns", &["cat", "/proc/self/cgroup"]);
    // `spec` lists the cgroup namespace only on a pure v2 host (as runc's).
    set_namespaces(&mut b, &["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    let out = b.run_ok();
    for line in out.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(
            path, "/",
            "cgroup namespace root is not the container's cgroup:\n{out}"
        );
    }
    // Without a cgroup namespace the host's path shows.
    let mut b = bundle("cgns-shared", &["cat", "/proc/self/cgroup"]);
    set_namespaces(&mut b, &["pid", "network", "ipc", "uts", "mount"]);
    let out = b.run_ok();
    let want = format!("/{}/{}", cgroup_parent(), b.id);
    assert!(
        out.lines()
            .any(|l| l.ends_with(&format!(":pids:{want}")) || l == format!("0::{want}")),
        "{out}"
    );
}

fn assert_nothing_left(b: &Bundle, out: &std::process::Output) {
    assert!(!out.status.success());
    let err = stderr(out);
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(!state_root().join(&b.id).exists(), "state dir left behind");
    assert!(!b.cgroup_dir("pids").exists(), "cgroup left behind");
    assert!(!b.cgroup_dir("").join("cgroup.procs").exists() || !is_cgroup_v2());
}

#[test]
fn bad_namespace_paths_fail_cleanly() {
    let host = HostDir::new("nspath");
    let not_ns = host.path.join("not-a-namespace");
    std::fs::write(&not_ns, "").unwrap();
    for (typ, path) in [
        ("network", "/proc/999999999/ns/net".to_string()),
        ("ipc", not_ns.to_string_lossy().into_owned()),
        ("user", not_ns.to_string_lossy().into_owned()),
    ] {
        let mut b = bundle("nspath", &["true"]);
        let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        nss.retain(|n| n["type"] != typ);
        nss.push(json!({"type": typ, "path": path}));
        let out = b.create(&[]);
        assert_nothing_left(&b, &out);
        assert!(stderr(&out).contains(&path), "{typ}: {}", stderr(&out));
    }
}

#[test]
fn network_namespace_has_only_lo() {
    let b = bundle(
        "netns-lo",
        &[
            "sh",
            "-c",
            "tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys/class/net",
        ],
    );
    let out = b.run_ok();
    let names: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(names, ["lo", "lo"], "{out}");
}

#[test]
fn exec_joins_the_containers_time_and_cgroup_namespaces() {
    if !time_ns_supported() {
        eprintln!("skip: kernel has no time namespaces");
        return;
    }
    let mut b = bundle("ns-exec", &["sleep", "100"]);
    set_namespaces(
        &mut b,
        &["pid", "network", "ipc", "uts", "mount", "cgroup", "time"],
    );
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 7200, "nanosecs": 0}});
    b.create_and_start();
    let pid = b.state()["pid"].as_i64().unwrap().to_string();
    let out = ozz(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        &format!("{PRINT_NS}; cat /proc/self/cgroup; cat /proc/self/timens_offsets"),
    ]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let text = stdout(&out);
    let inside = parse_ns(&text);
    for name in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "time"] {
        assert_eq!(
            inside[name],
            ns_link(&pid, name),
            "exec is not in the container's {name}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["boottime", "7200", "0"]),
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains(":/")) {
        assert!(
            line.ends_with(":/"),
            "exec outside the cgroup namespace root: {text}"
        );
    }
}

#[test]
fn joining_a_user_namespace_by_path() {
    let mut a = bundle("userns-join-a", &["sleep", "100"]);
    set_namespaces(
        &mut a,
        &["pid", "network", "ipc", "uts", "mount", "cgroup", "user"],
    );
    map_users(&mut a, 400000);
    a.create_and_start();
    let pid = a.state()["pid"].as_i64().unwrap().to_string();

    let mut b = bundle(
        "userns-join-b",
        &[
            "sh",
            "-c",
            &format!("{PRINT_NS}; cat /proc/self/uid_map; echo id $(id -u)"),
        ],
    );
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
        {"type": "mount"}, {"type": "cgroup"},
        {"type": "user", "path": format!("/proc/{pid}/ns/user")},
    ]);
    let out = b.run_ok();
    let inside = parse_ns(&out);
    assert_eq!(inside["user"], ns_link(&pid, "user"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "400000", "65536"]),
        "{out}"
    );
    assert_eq!(inside["id"], "0", "{out}");
    // B's other namespaces are its own, not A's.
    for name in ["mnt", "net", "pid"] {
        assert_ne!(inside[name], ns_link(&pid, name), "{name} is A's");
    }
}

/// In a new network namespace `lo` is up, as runc and crun leave it
/// (IFF_UP in the kernel's flags, and 127.0.0.1 answers); joining the
/// host's network namespace leaves its devices alone.
#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    let b = bundle(
        "netns-lo",
        &[
            "sh",
            "-c",
            "cat /sys/class/net/lo/flags; nc -l -p 4321 >/dev/null & \
             for i in $(seq 50); do \
               echo x | nc -w 1 127.0.0.1 4321 2>/dev/null && { echo connected; break; }; \
               sleep 0.1; \
             done; kill $! 2>/dev/null; true",
        ],
    );
    let out = b.run_ok();
    let mut lines = out.lines();
    let flags = lines.next().expect("flags line");
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).expect("hex flags");
    assert_eq!(flags & 0x1, 0x1, "IFF_UP not set: {out}");
    assert_eq!(lines.next(), Some("connected"), "{out}");
}

/// Unmounts (recursively, lazily) whatever a container left mounted under
/// `0` in the host's mount namespace, before the directory is removed.
struct UnmountAll(std::path::PathBuf);

impl Drop for UnmountAll {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn host_mounts_under(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|mp| std::path::Path::new(mp).starts_with(dir))
        .collect()
}

fn without_cgroup_mount(b: &mut Bundle) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "cgroup" && m["type"] != "cgroup2");
}

/// The mount namespace is optional (runtime-spec): without it the container
/// shares the runtime's, is chrooted into its rootfs (as runc does), and the
/// host's root keeps its propagation. Masked and read-only paths would
/// cover the host's own /proc and /sys there: refused with runc's phrase,
/// before anything is mounted.
#[test]
fn without_a_mount_namespace_the_hosts_is_shared() {
    let copy = HostDir::rootfs_copy("ns-nomnt");
    let _unmount = UnmountAll(copy.path.clone());
    let host_root = |text: &str| {
        let m = parse_mountinfo(text);
        mount_at(&m, "/").map(|e| (e.options.clone(), e.optional.clone()))
    };
    let before = host_root(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let mut b = bundle(
        "ns-nomnt",
        &[
            "sh",
            "-c",
            &format!("{PRINT_NS}; echo busybox $(test -x /bin/busybox && echo yes)"),
        ],
    );
    b.config["root"]["path"] = json!(copy.path);
    set_namespaces(&mut b, &["pid", "network", "ipc", "uts", "cgroup"]);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    // why: its mounts are the host's here; host cgroup binds under the
    // copy would be found by every cgroup lookup running beside this test.
    without_cgroup_mount(&mut b);
    let out = b.run_ok();
    let inside = parse_ns(&out);
    assert_eq!(inside["mnt"], ns_link("self", "mnt"), "{out}");
    assert_eq!(inside["busybox"], "yes", "not in its rootfs: {out}");
    let after = host_root(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert_eq!(before, after, "the host's root changed");
    drop(_unmount);

    let copy = HostDir::rootfs_copy("ns-nomnt-masked");
    let _unmount = UnmountAll(copy.path.clone());
    let mut b = bundle("ns-nomnt-masked", &["true"]);
    b.config["root"]["path"] = json!(copy.path);
    without_cgroup_mount(&mut b);
    set_namespaces(&mut b, &["pid", "network", "ipc", "uts", "cgroup"]);
    let out = b.run();
    assert_nothing_left(&b, &out);
    assert!(
        stderr(&out).contains("unable to restrict sys entries without a private MNT namespace"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host_mounts_under(&copy.path), Vec::<String>::new());
}

/// A process of ours in a mount namespace of its own; killed on drop.
struct MountNsHolder(std::process::Child);

impl Drop for MountNsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A mount namespace given by path is joined, and the container's rootfs
/// is set up in it.
#[test]
fn joining_a_mount_namespace_by_path() {
    let child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "100"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("unshare");
    let holder = MountNsHolder(child);
    let pid = holder.0.id().to_string();
    let own = ns_link("self", "mnt");
    for _ in 0..500 {
        if ns_link(&pid, "mnt") != own {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let target = ns_link(&pid, "mnt");
    assert_ne!(target, own, "unshare never entered its mount namespace");
    let mut b = bundle(
        "ns-join-mnt",
        &[
            "sh",
            "-c",
            &format!("{PRINT_NS}; echo busybox $(test -x /bin/busybox && echo yes)"),
        ],
    );
    let mut nss: Vec<Value> = ["pid", "network", "ipc", "uts", "cgroup"]
        .iter()
        .map(|t| json!({"type": t}))
        .collect();
    nss.push(json!({"type": "mount", "path": format!("/proc/{pid}/ns/mnt")}));
    b.config["linux"]["namespaces"] = Value::Array(nss);
    let out = b.run_ok();
    let inside = parse_ns(&out);
    assert_eq!(inside["mnt"], target, "{out}");
    assert_eq!(inside["busybox"], "yes", "{out}");
    drop(holder);
}
