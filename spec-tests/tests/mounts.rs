//! Mounts: what config.json asks for, checked from inside the container
//! (/proc/self/mountinfo, stat, writes that must fail) and on the host.
//!
//! The shared rootfs is read-only by convention: new mount points go under
//! a tmpfs mounted on /tmp first, or into a private copy of the rootfs.

use serde_json::json;
use spec_tests::*;

fn add_mount(b: &mut Bundle, dest: &str, typ: &str, source: &str, options: &[&str]) {
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": dest,
        "type": typ,
        "source": source,
        "options": options,
    }));
}

/// A tmpfs on /tmp, so later mounts can create their mount points in it.
fn tmp_tmpfs(b: &mut Bundle) {
    add_mount(b, "/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev"]);
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Output lines that start with `key`, the rest of the line.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{out}"))
}

fn entry<'a>(mounts: &'a [MountEntry], mp: &str) -> &'a MountEntry {
    mount_at(mounts, mp).unwrap_or_else(|| panic!("no mount at {mp}: {mounts:#?}"))
}

const MOUNTINFO: &str = "echo ==mountinfo; cat /proc/self/mountinfo";

fn mountinfo_of(out: &str) -> Vec<MountEntry> {
    parse_mountinfo(out.split_once("==mountinfo\n").expect("mountinfo marker").1)
}

/// A host directory bind-mounted on itself and made shared, with a `sub`
/// directory for mounts made later.
fn shared_host_dir(tag: &str) -> HostDir {
    let mut h = HostDir::new(tag);
    std::fs::create_dir(h.path.join("sub")).unwrap();
    let p = h.path.clone();
    h.mount(&["--bind", path(&p)], &p);
    let out = std::process::Command::new("mount")
        .arg("--make-shared")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    h
}

#[test]
fn readonly_root_refuses_writes() {
    let b = bundle(
        "ro-root",
        &[
            "sh",
            "-c",
            &format!("touch /probe; echo rc=$?; {MOUNTINFO}"),
        ],
    );
    assert_eq!(b.config["root"]["readonly"], true);
    let out = b.run_ok();
    assert_eq!(value(&out, "rc="), "1", "{out}");
    assert!(entry(&mountinfo_of(&out), "/").has_option("ro"), "{out}");

    // readonly: false (in a private copy): the same write lands in the rootfs.
    let copy = HostDir::rootfs_copy("rw-root");
    let mut b = bundle(
        "rw-root",
        &[
            "sh",
            "-c",
            &format!("touch /probe; echo rc=$?; {MOUNTINFO}"),
        ],
    );
    b.config["root"] = json!({"path": copy.path, "readonly": false});
    let out = b.run_ok();
    assert_eq!(value(&out, "rc="), "0", "{out}");
    assert!(entry(&mountinfo_of(&out), "/").has_option("rw"), "{out}");
    assert!(copy.path.join("probe").exists());
}

#[test]
fn bind_mounts_of_a_host_dir_rw_and_ro() {
    let h = HostDir::new("bind");
    std::fs::write(h.path.join("f"), "hello\n").unwrap();
    let mut b = bundle(
        "bind",
        &[
            "sh",
            "-c",
            &format!(
                "echo rw-read $(cat /tmp/rw/f); echo ro-read $(cat /tmp/ro/f); \
                 echo w > /tmp/rw/new; echo rw-write=$?; echo w > /tmp/ro/new2; echo ro-write=$?; \
                 {MOUNTINFO}"
            ),
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/rw", "bind", path(&h.path), &["bind"]);
    add_mount(&mut b, "/tmp/ro", "bind", path(&h.path), &["rbind", "ro"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "rw-read"), "hello");
    assert_eq!(value(&out, "ro-read"), "hello");
    assert_eq!(value(&out, "rw-write="), "0", "{out}");
    assert_ne!(value(&out, "ro-write="), "0", "{out}");
    assert_eq!(std::fs::read_to_string(h.path.join("new")).unwrap(), "w\n");
    assert!(!h.path.join("new2").exists());
    let mounts = mountinfo_of(&out);
    // mountinfo's root is the path within the source's filesystem: the
    // whole host path on the host, but relative to the shared directory in
    // the v2 guest (9p). Its last two components name our directory alike.
    let tail: std::path::PathBuf = h.path.iter().skip(h.path.iter().count() - 2).collect();
    let rw = entry(&mounts, "/tmp/rw");
    assert!(
        rw.has_option("rw") && std::path::Path::new(&rw.root).ends_with(&tail),
        "{rw:?}"
    );
    let ro = entry(&mounts, "/tmp/ro");
    assert!(
        ro.has_option("ro") && std::path::Path::new(&ro.root).ends_with(&tail),
        "{ro:?}"
    );
}

#[test]
fn file_bind_mount() {
    let h = HostDir::new("filebind");
    let file = h.path.join("hostname");
    std::fs::write(&file, "from-the-host\n").unwrap();
    let b = {
        let mut b = bundle(
            "filebind",
            &[
                "sh",
                "-c",
                &format!("echo got $(cat /etc/hostname); {MOUNTINFO}"),
            ],
        );
        add_mount(
            &mut b,
            "/etc/hostname",
            "bind",
            path(&file),
            &["bind", "ro"],
        );
        b
    };
    let out = b.run_ok();
    assert_eq!(value(&out, "got"), "from-the-host");
    let mounts = mountinfo_of(&out);
    let m = entry(&mounts, "/etc/hostname");
    assert!(m.root.ends_with("/hostname") && m.has_option("ro"), "{m:?}");
    // The rootfs's own file is untouched.
    assert_eq!(
        std::fs::read_to_string(shared_rootfs().join("etc/hostname")).unwrap(),
        "ozz\n"
    );
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let mut h = HostDir::new("rbind");
    let sub = h.path.join("sub");
    std::fs::create_dir(&sub).unwrap();
    h.mount(&["-t", "tmpfs", "tmpfs"], &sub);
    std::fs::write(sub.join("marker"), "in-submount\n").unwrap();
    let mut b = bundle(
        "rbind",
        &[
            "sh",
            "-c",
            &format!(
                "echo r $(cat /tmp/r/sub/marker); echo b $(ls -A /tmp/b/sub | wc -l); {MOUNTINFO}"
            ),
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/r", "bind", path(&h.path), &["rbind"]);
    add_mount(&mut b, "/tmp/b", "bind", path(&h.path), &["bind"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "r "), "in-submount", "{out}");
    assert_eq!(value(&out, "b "), "0", "{out}");
    let mounts = mountinfo_of(&out);
    assert_eq!(entry(&mounts, "/tmp/r/sub").fstype, "tmpfs");
    assert!(mount_at(&mounts, "/tmp/b/sub").is_none(), "{out}");
}

#[test]
fn tmpfs_options_and_mount_flags() {
    let mut b = bundle(
        "tmpfs",
        &[
            "sh",
            "-c",
            &format!(
                "echo mode $(stat -c %a /tmp/t); \
                 cp /bin/busybox /tmp/t/true; /tmp/t/true; echo noexec=$?; \
                 cp /bin/busybox /tmp/true; /tmp/true; echo exec=$?; \
                 touch /tmp/r/x; echo ro=$?; {MOUNTINFO}"
            ),
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(
        &mut b,
        "/tmp/t",
        "tmpfs",
        "tmpfs",
        &[
            "nosuid",
            "nodev",
            "noexec",
            "noatime",
            "size=2m",
            "mode=1750",
        ],
    );
    add_mount(&mut b, "/tmp/s", "tmpfs", "tmpfs", &["strictatime"]);
    add_mount(
        &mut b,
        "/tmp/n",
        "tmpfs",
        "tmpfs",
        &["relatime", "nodiratime"],
    );
    add_mount(&mut b, "/tmp/r", "tmpfs", "tmpfs", &["ro"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "mode"), "1750");
    assert_ne!(value(&out, "noexec="), "0", "{out}");
    assert_eq!(value(&out, "exec="), "0", "{out}");
    assert_ne!(value(&out, "ro="), "0", "{out}");
    let mounts = mountinfo_of(&out);
    let t = entry(&mounts, "/tmp/t");
    for opt in ["rw", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(t.has_option(opt), "{opt} missing: {t:?}");
    }
    assert!(
        t.has_super_option("size=2048k") && t.has_super_option("mode=1750"),
        "{t:?}"
    );
    let s = entry(&mounts, "/tmp/s");
    assert!(
        !s.has_option("relatime") && !s.has_option("noatime") && !s.has_option("nosuid"),
        "{s:?}"
    );
    let n = entry(&mounts, "/tmp/n");
    assert!(
        n.has_option("relatime") && n.has_option("nodiratime"),
        "{n:?}"
    );
    assert!(entry(&mounts, "/tmp/r").has_option("ro"));
}

#[test]
fn bind_remount_applies_flags() {
    let h = HostDir::new("bindflags");
    let mut b = bundle("bindflags", &["sh", "-c", MOUNTINFO]);
    tmp_tmpfs(&mut b);
    add_mount(
        &mut b,
        "/tmp/f",
        "bind",
        path(&h.path),
        &["rbind", "nosuid", "nodev", "noexec", "ro", "noatime"],
    );
    let out = b.run_ok();
    let mounts = mountinfo_of(&out);
    let f = entry(&mounts, "/tmp/f");
    for opt in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(f.has_option(opt), "{opt} missing: {f:?}");
    }
}

#[test]
fn proc_sysfs_devpts_mqueue_shm() {
    let b = bundle(
        "pseudo",
        &[
            "sh",
            "-c",
            &format!(
                "echo init $(cat /proc/1/cmdline | tr '\\0' ' '); echo ptmx $(readlink /dev/ptmx); \
                 echo ptmxmode $(stat -c %a /dev/pts/ptmx); {MOUNTINFO}"
            ),
        ],
    );
    let out = b.run_ok();
    // /proc is the container's pid namespace: pid 1 is this shell.
    assert!(value(&out, "init").contains("echo init"), "{out}");
    assert_eq!(value(&out, "ptmx"), "pts/ptmx");
    assert_eq!(value(&out, "ptmxmode"), "666");
    let mounts = mountinfo_of(&out);
    assert_eq!(entry(&mounts, "/proc").fstype, "proc");
    let sys = entry(&mounts, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has_option(opt), "{sys:?}");
    }
    let pts = entry(&mounts, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for opt in ["gid=5", "mode=620", "ptmxmode=666"] {
        assert!(pts.has_super_option(opt), "{opt}: {pts:?}");
    }
    assert!(
        pts.has_option("nosuid") && pts.has_option("noexec"),
        "{pts:?}"
    );
    // newinstance: not the host's devpts superblock.
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    for h in host.iter().filter(|m| m.fstype == "devpts") {
        assert_ne!(h.dev, pts.dev, "the host's devpts is shared");
    }
    let mq = entry(&mounts, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(mq.has_option(opt), "{mq:?}");
    }
    let shm = entry(&mounts, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.has_super_option("size=65536k"), "{shm:?}");
    let dev = entry(&mounts, "/dev");
    assert!(
        dev.fstype == "tmpfs" && dev.has_super_option("mode=755"),
        "{dev:?}"
    );
    // strictatime: neither relatime nor noatime.
    assert!(
        dev.has_option("nosuid") && !dev.has_option("relatime") && !dev.has_option("noatime"),
        "{dev:?}"
    );
}

#[test]
fn cgroup_v1_mount_shows_the_containers_cgroups_read_only() {
    if is_cgroup_v2() {
        eprintln!("skip: unified cgroup v2 host; this test covers the v1 layout");
        return;
    }
    let mut b = bundle(
        "cgmount",
        &[
            "sh",
            "-c",
            &format!(
                "echo procs $(cat /sys/fs/cgroup/pids/cgroup.procs); \
                 echo 5 > /sys/fs/cgroup/pids/pids.max; echo write=$?; {MOUNTINFO}"
            ),
        ],
    );
    // `ozz spec` leaves the cgroup namespace out on a v1 host, as runc does.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let out = b.run_ok();
    // pid 1 (and the cat that printed the list) are in the root cgroup.
    assert!(value(&out, "procs").split(' ').any(|p| p == "1"), "{out}");
    assert_ne!(value(&out, "write="), "0", "{out}");
    let mounts = mountinfo_of(&out);
    let top = entry(&mounts, "/sys/fs/cgroup");
    assert!(top.has_option("ro"), "{top:?}");
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let mut seen = 0;
    for ctrl in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    ] {
        let host_mp = format!("/sys/fs/cgroup/{ctrl}");
        if mount_at(&host, &host_mp).is_none_or(|m| m.fstype != "cgroup") {
            continue;
        }
        seen += 1;
        let m = entry(&mounts, &host_mp);
        assert_eq!(m.fstype, "cgroup", "{m:?}");
        assert!(m.has_option("ro"), "{ctrl} writable: {m:?}");
        // With a cgroup namespace the container's own cgroup is the root.
        assert_eq!(m.root, "/", "{ctrl}: {m:?}");
    }
    assert!(seen > 0, "no v1 controllers on this host");

    // Without a cgroup namespace the mounts' roots are the container's
    // cgroup as the host names it.
    let mut b = bundle("cgmount-nons", &["cat", "/proc/self/mountinfo"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    let mounts = parse_mountinfo(&b.run_ok());
    let m = entry(&mounts, "/sys/fs/cgroup/pids");
    assert_eq!(m.root, format!("/{}/{}", cgroup_parent(), b.id), "{m:?}");
    assert!(m.has_option("ro"), "{m:?}");
}

#[test]
fn propagation_flags_and_host_mounts_made_after_start() {
    let mut h = shared_host_dir("prop");
    let mut b = bundle("prop", &["sleep", "100"]);
    tmp_tmpfs(&mut b);
    for (name, flag) in [
        ("sh", "rshared"),
        ("sl", "rslave"),
        ("pr", "rprivate"),
        ("ub", "runbindable"),
    ] {
        add_mount(
            &mut b,
            &format!("/tmp/{name}"),
            "bind",
            path(&h.path),
            &["rbind", flag],
        );
    }
    b.create_and_start();
    let sub = h.path.join("sub");
    h.mount(&["-t", "tmpfs", "tmpfs"], &sub);
    std::fs::write(sub.join("marker"), "late\n").unwrap();
    let out = ozz(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        &format!(
            "for d in sh sl pr ub; do echo $d: $(cat /tmp/$d/sub/marker 2>/dev/null); done; {MOUNTINFO}"
        ),
    ]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let out = stdout(&out);
    let mounts = mountinfo_of(&out);
    let sh = entry(&mounts, "/tmp/sh");
    assert!(sh.has_optional("shared:"), "{sh:?}");
    let sl = entry(&mounts, "/tmp/sl");
    assert!(
        sl.has_optional("master:") && !sl.has_optional("shared:"),
        "{sl:?}"
    );
    let pr = entry(&mounts, "/tmp/pr");
    assert!(pr.optional.is_empty(), "{pr:?}");
    let ub = entry(&mounts, "/tmp/ub");
    assert!(ub.has_optional("unbindable"), "{ub:?}");
    // The host's new mount reaches the shared and slave mounts only.
    assert_eq!(value(&out, "sh:"), "late", "{out}");
    assert_eq!(value(&out, "sl:"), "late", "{out}");
    assert_eq!(value(&out, "pr:"), "", "{out}");
    assert_eq!(value(&out, "ub:"), "", "{out}");
}

#[test]
fn rootfs_propagation() {
    let mut h = shared_host_dir("rootprop");
    let mut containers = Vec::new();
    for prop in [None, Some("rprivate"), Some("rshared")] {
        let mut b = bundle("rootprop", &["sleep", "100"]);
        tmp_tmpfs(&mut b);
        add_mount(&mut b, "/tmp/h", "bind", path(&h.path), &["rbind"]);
        if let Some(p) = prop {
            b.config["linux"]["rootfsPropagation"] = json!(p);
        }
        b.create_and_start();
        containers.push((prop, b));
    }
    let sub = h.path.join("sub");
    h.mount(&["-t", "tmpfs", "tmpfs"], &sub);
    std::fs::write(sub.join("marker"), "late\n").unwrap();
    for (prop, b) in &containers {
        let out = ozz(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            &format!("echo seen: $(cat /tmp/h/sub/marker 2>/dev/null); {MOUNTINFO}"),
        ]);
        assert!(out.status.success(), "exec: {}", stderr(&out));
        let out = stdout(&out);
        let root = entry(&mountinfo_of(&out), "/").clone();
        match prop {
            // Default rslave: the host's mounts arrive.
            None => assert_eq!(value(&out, "seen:"), "late", "{out}"),
            Some("rprivate") => {
                assert_eq!(value(&out, "seen:"), "", "{out}");
                assert!(root.optional.is_empty(), "{root:?}");
            }
            _ => {
                assert_eq!(value(&out, "seen:"), "late", "{out}");
                assert!(root.has_optional("shared:"), "{root:?}");
            }
        }
    }
}

#[test]
fn recursive_mount_attributes() {
    let mut h = HostDir::new("rattr");
    let sub = h.path.join("sub");
    std::fs::create_dir(&sub).unwrap();
    h.mount(&["-t", "tmpfs", "tmpfs"], &sub);
    let mut b = bundle(
        "rattr",
        &[
            "sh",
            "-c",
            &format!(
                "echo x > /tmp/rro/sub/a; echo rro=$?; echo x > /tmp/ro/sub/b; echo ro=$?; {MOUNTINFO}"
            ),
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/rro", "bind", path(&h.path), &["rbind", "rro"]);
    add_mount(&mut b, "/tmp/ro", "bind", path(&h.path), &["rbind", "ro"]);
    add_mount(
        &mut b,
        "/tmp/rn",
        "bind",
        path(&h.path),
        &["rbind", "rnosuid", "rnodev", "rnoexec", "rnoatime"],
    );
    let out = b.run_ok();
    assert_ne!(
        value(&out, "rro="),
        "0",
        "submount of rro is writable: {out}"
    );
    // Plain ro only covers the top mount.
    assert_eq!(value(&out, "ro="), "0", "{out}");
    let mounts = mountinfo_of(&out);
    assert!(entry(&mounts, "/tmp/rro").has_option("ro"));
    assert!(entry(&mounts, "/tmp/rro/sub").has_option("ro"));
    assert!(entry(&mounts, "/tmp/ro/sub").has_option("rw"));
    for mp in ["/tmp/rn", "/tmp/rn/sub"] {
        let m = entry(&mounts, mp);
        for opt in ["nosuid", "nodev", "noexec", "noatime"] {
            assert!(m.has_option(opt), "{opt}: {m:?}");
        }
    }
    assert!(sub.join("b").exists() && !sub.join("a").exists());
}

#[test]
fn default_dev() {
    check_default_dev(false);
}

/// In a user namespace mknod is refused: the host's nodes are bound in.
#[test]
fn default_dev_in_a_user_namespace() {
    check_default_dev(true);
}

fn check_default_dev(userns: bool) {
    let mut b = bundle(
        "dev",
        &[
            "sh",
            "-c",
            "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
             for l in fd stdin stdout stderr ptmx; do echo /dev/$l '->' $(readlink /dev/$l); done; \
             stat -c '%n %F %a' /dev/shm; echo x > /dev/full; echo full=$?; \
             echo zero $(head -c 3 /dev/zero | od -An -tx1); echo x > /dev/null; echo null=$?",
        ],
    );
    if userns {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        b.config["linux"]["uidMappings"] = map.clone();
        b.config["linux"]["gidMappings"] = map;
    }
    let out = b.run_ok();
    assert_eq!(value(&out, "null="), "0", "{out}");
    for (dev, majmin) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        assert_eq!(
            value(&out, &format!("/dev/{dev} ")),
            format!("character special file {majmin} 666"),
            "{out}"
        );
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        assert_eq!(value(&out, &format!("/dev/{link} ->")), target, "{out}");
    }
    assert_eq!(value(&out, "/dev/shm"), "directory 1777");
    assert_ne!(value(&out, "full="), "0");
    assert_eq!(value(&out, "zero"), "00 00 00");
}

#[test]
fn linux_devices_are_created() {
    let mut b = bundle(
        "devices",
        &[
            "sh",
            "-c",
            "stat -c '%n|%F|%t:%T|%a|%u|%g' /dev/mychar /dev/myblk /dev/myfifo /dev/sub/dir/null2",
        ],
    );
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/mychar", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600, "uid": 0, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 1000, "gid": 0},
        {"path": "/dev/sub/dir/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
    ]);
    let out = b.run_ok();
    let want = [
        "/dev/mychar|character special file|1:3|640|1000|1000",
        "/dev/myblk|block special file|7:0|600|0|6",
        "/dev/myfifo|fifo|0:0|620|1000|0",
        "/dev/sub/dir/null2|character special file|1:3|666|0|0",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = bundle(
        "masked",
        &[
            "sh",
            "-c",
            &format!(
                "stat -c '%n %F %t:%T' /proc/keys /etc/hostname; echo len $(cat /etc/hostname | wc -c); \
                 echo entries $(ls -A /home | wc -l); \
                 echo x > /var/tmp/f; echo rop=$?; echo x > /tmp/f; echo rw=$?; {MOUNTINFO}"
            ),
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/var/tmp", "tmpfs", "tmpfs", &[]);
    let linux = &mut b.config["linux"];
    linux["maskedPaths"].as_array_mut().unwrap().extend([
        json!("/etc/hostname"),
        json!("/home"),
        json!("/no/such/path"),
    ]);
    linux["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .extend([json!("/var/tmp"), json!("/no/such/ro")]);
    let out = b.run_ok();
    assert_eq!(
        value(&out, "/proc/keys"),
        "character special file 1:3",
        "{out}"
    );
    assert_eq!(
        value(&out, "/etc/hostname"),
        "character special file 1:3",
        "{out}"
    );
    assert_eq!(value(&out, "len"), "0");
    assert_eq!(value(&out, "entries"), "0");
    assert_ne!(value(&out, "rop="), "0", "{out}");
    assert_eq!(value(&out, "rw="), "0", "{out}");
    let mounts = mountinfo_of(&out);
    let home = entry(&mounts, "/home");
    assert!(home.fstype == "tmpfs" && home.has_option("ro"), "{home:?}");
    let fw = entry(&mounts, "/sys/firmware");
    assert!(fw.fstype == "tmpfs" && fw.has_option("ro"), "{fw:?}");
    for ro in ["/var/tmp", "/proc/sys", "/proc/bus"] {
        assert!(entry(&mounts, ro).has_option("ro"), "{ro} writable");
    }
    assert!(entry(&mounts, "/tmp").has_option("rw"));
}

#[test]
fn hostname_and_domainname() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let mut b = bundle(
        "uts",
        &[
            "sh",
            "-c",
            "echo h $(hostname); echo d $(cat /proc/sys/kernel/domainname)",
        ],
    );
    b.config["hostname"] = json!("ozz-uts-test");
    b.config["domainname"] = json!("ozz.example");
    let out = b.run_ok();
    assert_eq!(value(&out, "h "), "ozz-uts-test");
    assert_eq!(value(&out, "d "), "ozz.example");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
}

#[test]
fn sysctl_in_private_namespaces() {
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let mut b = bundle(
        "sysctl",
        &[
            "sh",
            "-c",
            "echo shmmax $(cat /proc/sys/kernel/shmmax); echo fwd $(cat /proc/sys/net/ipv4/ip_forward)",
        ],
    );
    b.config["linux"]["sysctl"] = json!({
        "kernel.shmmax": "12345678",
        "net.ipv4.ip_forward": want_fwd,
    });
    let out = b.run_ok();
    assert_eq!(value(&out, "shmmax"), "12345678");
    assert_eq!(value(&out, "fwd"), want_fwd);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
}

#[test]
fn sysctl_without_its_namespace_is_refused() {
    for (key, value, drop_ns) in [
        ("kernel.shmmax", "12345678", Some("ipc")),
        ("net.ipv4.ip_forward", "1", Some("network")),
        ("kernel.randomize_va_space", "0", None),
    ] {
        let before =
            std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap();
        let mut b = bundle("sysctl-refused", &["true"]);
        if let Some(ns) = drop_ns {
            let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
            nss.retain(|n| n["type"] != ns);
        }
        b.config["linux"]["sysctl"] = json!({ key: value });
        let out = b.create(&[]);
        assert!(!out.status.success(), "{key} accepted");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(key), "{err}");
        assert!(!state_root().join(&b.id).exists(), "state dir left");
        assert!(!b.cgroup_dir("pids").exists(), "cgroup left");
        let after =
            std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap();
        assert_eq!(before, after, "{key} changed on the host");
    }
}

#[test]
fn no_pivot() {
    let b = bundle(
        "nopivot",
        &[
            "sh",
            "-c",
            "echo busybox $(test -x /bin/busybox && echo yes); echo hostpath $(test -e /work && echo yes); \
             touch /probe; echo rc=$?",
        ],
    );
    b.write();
    let out = ozz(&["run", "--no-pivot", "--bundle", path(&b.dir), &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stdout(&out);
    assert_eq!(value(&out, "busybox"), "yes");
    assert_eq!(value(&out, "hostpath"), "", "host's / visible: {out}");
    assert_eq!(value(&out, "rc="), "1", "root not read-only: {out}");
}

#[test]
fn missing_destinations_are_created_in_the_rootfs() {
    let copy = HostDir::rootfs_copy("mkdest");
    let h = HostDir::new("mkdest-src");
    let file = h.path.join("file");
    std::fs::write(&file, "content\n").unwrap();
    let mut b = bundle(
        "mkdest",
        &[
            "sh",
            "-c",
            "stat -c '%n %F' /new/deep/dir /new/file.txt; echo got $(cat /new/file.txt)",
        ],
    );
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/new/deep/dir", "tmpfs", "tmpfs", &[]);
    add_mount(&mut b, "/new/file.txt", "bind", path(&file), &["bind"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "/new/deep/dir"), "directory");
    assert_eq!(value(&out, "/new/file.txt"), "regular file");
    assert_eq!(value(&out, "got"), "content");
    assert!(copy.path.join("new/deep/dir").is_dir());
    let mp = std::fs::metadata(copy.path.join("new/file.txt")).unwrap();
    assert!(mp.is_file() && mp.len() == 0);
}

#[test]
fn mount_over_a_symlink_stays_inside_the_rootfs() {
    let copy = HostDir::rootfs_copy("symlink");
    let outside = HostDir::new("symlink-outside");
    let out_path = outside.path.clone();
    // The same path exists inside the rootfs, so the links resolve there.
    let inside = copy.path.join(out_path.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::os::unix::fs::symlink(&out_path, copy.path.join("abs")).unwrap();
    let up = "../".repeat(20);
    std::os::unix::fs::symlink(
        format!(
            "{up}{}",
            out_path.display().to_string().trim_start_matches('/')
        ),
        copy.path.join("rel"),
    )
    .unwrap();
    let mut b = bundle("symlink", &["sh", "-c", MOUNTINFO]);
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/abs/a", "tmpfs", "tmpfs", &[]);
    add_mount(&mut b, "/rel/r", "tmpfs", "tmpfs", &["size=1m"]);
    let out = b.run_ok();
    // Nothing was created outside the rootfs …
    let leaked: Vec<_> = std::fs::read_dir(&out_path).unwrap().collect();
    assert!(leaked.is_empty(), "created on the host: {leaked:?}");
    // … the symlinks were resolved inside it.
    assert!(inside.join("a").is_dir() && inside.join("r").is_dir());
    let mounts = mountinfo_of(&out);
    assert_eq!(entry(&mounts, path(&out_path.join("a"))).fstype, "tmpfs");
    assert!(entry(&mounts, path(&out_path.join("r"))).has_super_option("size=1024k"));
}

#[test]
fn mount_over_a_dangling_symlink_never_reaches_the_host() {
    let copy = HostDir::rootfs_copy("dangling");
    let outside = HostDir::new("dangling-outside");
    std::os::unix::fs::symlink(&outside.path, copy.path.join("abs")).unwrap();
    let mut b = bundle("dangling", &["sh", "-c", MOUNTINFO]);
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/abs/a", "tmpfs", "tmpfs", &[]);
    let out = b.run();
    // Refusing is fine; creating anything on the host is not.
    let leaked: Vec<_> = std::fs::read_dir(&outside.path).unwrap().collect();
    assert!(leaked.is_empty(), "created on the host: {leaked:?}");
    if out.status.success() {
        let mounts = mountinfo_of(&stdout(&out));
        assert!(mount_at(&mounts, path(&outside.path.join("a"))).is_some());
    } else {
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }

    // A file bind mount onto a dangling link to a host path.
    let src = HostDir::new("dangling-src");
    std::fs::write(src.path.join("f"), "x").unwrap();
    let target = outside.path.join("planted");
    std::os::unix::fs::symlink(&target, copy.path.join("etc/planted")).unwrap();
    let mut b = bundle("dangling-file", &["true"]);
    b.config["root"]["path"] = json!(copy.path);
    add_mount(
        &mut b,
        "/etc/planted",
        "bind",
        path(&src.path.join("f")),
        &["bind"],
    );
    let out = b.run();
    assert!(!target.exists(), "created {} on the host", target.display());
    if !out.status.success() {
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
}

#[test]
fn missing_bind_source_fails_cleanly() {
    let mut b = bundle("nosrc", &["true"]);
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/x", "bind", "/no/such/source/dir", &["rbind"]);
    let out = b.create(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/source/dir"), "{err}");
    assert!(!state_root().join(&b.id).exists(), "state dir left");
    assert!(!b.cgroup_dir("pids").exists(), "cgroup left");
}

#[test]
fn container_mounts_do_not_reach_the_host() {
    let h = shared_host_dir("noleak");
    let mut b = bundle(
        "noleak",
        &[
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /tmp/sh/sub && touch /tmp/sh/sub/from-container; sleep 100",
        ],
    );
    tmp_tmpfs(&mut b);
    add_mount(
        &mut b,
        "/tmp/sh",
        "bind",
        path(&h.path),
        &["rbind", "rshared"],
    );
    b.add_caps(&["CAP_SYS_ADMIN"]);
    b.create_and_start();
    let mut mounted = false;
    for _ in 0..200 {
        let out = ozz(&["exec", &b.id, "cat", "/proc/self/mountinfo"]);
        let mounts = parse_mountinfo(&stdout(&out));
        if mount_at(&mounts, "/tmp/sh/sub").is_some_and(|m| m.fstype == "tmpfs") {
            mounted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(mounted, "the container never made its mount");
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let sub = h.path.join("sub");
    assert!(
        mount_at(&host, path(&sub)).is_none(),
        "the container's mount propagated to the host"
    );
    assert!(!sub.join("from-container").exists());
}

/// rootfsPropagation "rshared" with an rshared bind is Kubernetes'
/// Bidirectional propagation: the container's mounts reach the host (runc).
#[test]
fn rshared_rootfs_propagation_is_bidirectional() {
    let h = shared_host_dir("bidir");
    let mut b = bundle(
        "bidir",
        &[
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /tmp/sh/sub && touch /tmp/sh/sub/from-container; sleep 100",
        ],
    );
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    tmp_tmpfs(&mut b);
    add_mount(
        &mut b,
        "/tmp/sh",
        "bind",
        path(&h.path),
        &["rbind", "rshared"],
    );
    b.add_caps(&["CAP_SYS_ADMIN"]);
    b.create_and_start();
    let marker = h.path.join("sub/from-container");
    for _ in 0..200 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let sub = h.path.join("sub");
    let m = mount_at(&host, path(&sub));
    // Unmount it here too (HostDir's lazy unmount of the bind also would).
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&sub)
        .status();
    assert!(
        m.is_some_and(|m| m.fstype == "tmpfs"),
        "the container's mount did not reach the host"
    );
}

/// Mounts over /proc or inside it could hide what procfs enforces
/// (CVE-2019-16884, CVE-2019-19921): refused, except the files lxcfs
/// emulates.
#[test]
fn mounts_into_proc_are_restricted() {
    let h = HostDir::new("procmnt");
    let file = h.path.join("uptime");
    std::fs::write(&file, "12345.00 0.00\n").unwrap();
    // Allowed: a file over /proc/uptime, as lxcfs does.
    let mut b = bundle("procmnt-ok", &["cat", "/proc/uptime"]);
    add_mount(&mut b, "/proc/uptime", "bind", path(&file), &["bind", "ro"]);
    assert_eq!(b.run_ok(), "12345.00 0.00\n");
    // Refused: a tmpfs over /proc/sys, a file over /proc/self/attr/current
    // (through "..") and a tmpfs as /proc.
    for (dest, typ, source, options) in [
        ("/proc/sys", "tmpfs", "tmpfs", &[][..]),
        (
            "/proc/x/../self/attr/current",
            "bind",
            path(&file),
            &["bind"][..],
        ),
        ("/proc", "tmpfs", "tmpfs", &[][..]),
    ] {
        let mut b = bundle("procmnt", &["true"]);
        if dest == "/proc" {
            b.config["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["destination"] != "/proc");
        }
        add_mount(&mut b, dest, typ, source, options);
        let out = b.create(&[]);
        assert!(!out.status.success(), "{dest} accepted");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("cannot be mounted because"), "{dest}: {err}");
        assert!(!state_root().join(&b.id).exists(), "state dir left");
        assert!(!b.cgroup_dir("pids").exists(), "cgroup left");
    }
    // Refused too when a symlink in the image leads there.
    let copy = HostDir::rootfs_copy("procmnt-link");
    std::os::unix::fs::symlink("/proc", copy.path.join("etc/p")).unwrap();
    let mut b = bundle("procmnt-link", &["true"]);
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/etc/p/sys", "tmpfs", "tmpfs", &[]);
    let out = b.create(&[]);
    assert!(!out.status.success(), "/etc/p/sys (-> /proc/sys) accepted");
    assert!(
        stderr(&out).contains("cannot be mounted because it is inside /proc"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_rootfs_propagation_and_mount_type_fail_cleanly() {
    let mut bad_prop = bundle("badprop", &["true"]);
    bad_prop.config["linux"]["rootfsPropagation"] = json!("bogus");
    let mut bad_type = bundle("badtype", &["true"]);
    tmp_tmpfs(&mut bad_type);
    add_mount(&mut bad_type, "/tmp/x", "no-such-fs", "none", &[]);
    for (b, what) in [(&bad_prop, "bogus"), (&bad_type, "no-such-fs")] {
        let out = b.create(&[]);
        assert!(!out.status.success(), "{what} accepted");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(what), "{err}");
        assert!(!state_root().join(&b.id).exists(), "state dir left");
        assert!(!b.cgroup_dir("pids").exists(), "cgroup left");
    }
}

// ---- idmapped mounts (runtime-spec 1.1+: idmap, ridmap, uidMappings) ----

/// The host id of the container's root: 300000 with `with_userns`, 0
/// without a user namespace.
fn root_host_id(userns: bool) -> u32 {
    if userns {
        300000
    } else {
        0
    }
}

/// The on-disk id the tests' mount mapping ties to the container's root.
const DISK_ID: u32 = 1000;

/// uidMappings/gidMappings that show on-disk id 1000 as the container's
/// root (host id `root`), and the other way round for what it creates.
fn disk_1000_is_root(root: u32) -> serde_json::Value {
    json!([{"containerID": DISK_ID, "hostID": root, "size": 1}])
}

fn chown(p: &std::path::Path, id: u32) {
    std::os::unix::fs::chown(p, Some(id), Some(id)).unwrap();
}

fn owner(p: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    format!("{}:{}", m.uid(), m.gid())
}

/// A host directory for an idmapped bind: on the host's filesystem (ext4
/// here) or a tmpfs mounted on it, owned by the on-disk id 1000 (the
/// kernel refuses writes to an inode whose owner the idmapping leaves
/// unmapped, whatever its mode). Holds `hostfile`, owned by 1000 too.
fn idmap_source(tag: &str, tmpfs: bool) -> HostDir {
    let mut h = HostDir::new(tag);
    if tmpfs {
        let at = h.path.clone();
        h.mount(&["-t", "tmpfs", "tmpfs"], &at);
    }
    chown(&h.path, DISK_ID);
    let f = h.path.join("hostfile");
    std::fs::write(&f, "x").unwrap();
    chown(&f, DISK_ID);
    h
}

/// A container (in a user namespace or not) with `source` bound at
/// /tmp/idm with `options` and the mount mapping `map`: creates
/// /tmp/idm/new as its root and prints the owner of every path in `show` as it sees it.
fn idmap_run(
    tag: &str,
    userns: bool,
    source: &std::path::Path,
    options: &[&str],
    map: Option<serde_json::Value>,
    show: &str,
) -> String {
    let script = format!(
        "touch /tmp/idm/new && for p in {show}; do echo \"$p=$(stat -c %u:%g /tmp/idm/$p)\"; done"
    );
    let mut b = bundle(tag, &["sh", "-c", &script]);
    if userns {
        with_userns(&mut b);
    }
    tmp_tmpfs(&mut b);
    let mut m = json!({"destination": "/tmp/idm", "type": "bind", "source": path(source),
        "options": options});
    if let Some(map) = map {
        m["uidMappings"] = map.clone();
        m["gidMappings"] = map;
    }
    b.config["mounts"].as_array_mut().unwrap().push(m);
    b.run_ok()
}

/// `ozz features` says so, and the idmapping works both ways: a file the
/// container's root creates lands on disk with the mapped id (1000), and a
/// host file owned by 1000 is the container root's: with and without a
/// user namespace, on the host's ext4 and on a tmpfs.
#[test]
fn idmapped_bind_maps_owners_both_ways() {
    let features = ozz(&["features"]);
    let features: serde_json::Value = serde_json::from_slice(&features.stdout).unwrap();
    assert_eq!(
        features["linux"]["mountExtensions"]["idmap"]["enabled"],
        json!(true)
    );
    for userns in [false, true] {
        for tmpfs in [false, true] {
            let what = format!("userns={userns} tmpfs={tmpfs}");
            let h = idmap_source("idmap", tmpfs);
            let map = disk_1000_is_root(root_host_id(userns));
            let out = idmap_run(
                "idmap",
                userns,
                &h.path,
                &["bind", "idmap"],
                Some(map),
                "hostfile",
            );
            assert_eq!(value(&out, "hostfile="), "0:0", "{what}: {out}");
            assert_eq!(owner(&h.path.join("new")), "1000:1000", "{what}");
        }
    }
}

/// idmap without mappings takes the container's user namespace's: what
/// the host's root owns is the container root's, and what the container's
/// root creates is the host root's on disk (not 300000's).
#[test]
fn idmap_without_mappings_uses_the_containers_user_namespace() {
    for tmpfs in [false, true] {
        let h = idmap_source("idmap-ns", tmpfs);
        chown(&h.path, 0);
        chown(&h.path.join("hostfile"), 0);
        let out = idmap_run(
            "idmap-ns",
            true,
            &h.path,
            &["rbind", "ridmap"],
            None,
            "hostfile",
        );
        assert_eq!(value(&out, "hostfile="), "0:0", "tmpfs={tmpfs}: {out}");
        assert_eq!(owner(&h.path.join("new")), "0:0", "tmpfs={tmpfs}");
    }
}

/// ridmap maps a submount of the source too; idmap maps only the top
/// mount of an rbind, the submount keeps the plain owners.
#[test]
fn ridmap_maps_submounts_and_idmap_does_not() {
    for userns in [false, true] {
        let mut h = idmap_source("ridmap", false);
        let sub = h.path.join("sub");
        std::fs::create_dir(&sub).unwrap();
        h.mount(&["-t", "tmpfs", "tmpfs"], &sub);
        let f = sub.join("f");
        std::fs::write(&f, "x").unwrap();
        chown(&f, DISK_ID);
        let map = disk_1000_is_root(root_host_id(userns));
        let out = idmap_run(
            "ridmap",
            userns,
            &h.path,
            &["rbind", "ridmap"],
            Some(map.clone()),
            "hostfile sub/f",
        );
        assert_eq!(
            value(&out, "sub/f="),
            "0:0",
            "ridmap userns={userns}: {out}"
        );
        // Without the idmapping, 1000 is 1000 on the host's side, and
        // unmapped (the overflow id) in the user namespace.
        let plain = if userns { "65534:65534" } else { "1000:1000" };
        std::fs::remove_file(h.path.join("new")).unwrap();
        let out = idmap_run(
            "idmap-rbind",
            userns,
            &h.path,
            &["rbind", "idmap"],
            Some(map),
            "hostfile sub/f",
        );
        assert_eq!(
            value(&out, "hostfile="),
            "0:0",
            "idmap userns={userns}: {out}"
        );
        assert_eq!(value(&out, "sub/f="), plain, "idmap userns={userns}: {out}");
    }
}

/// What cannot be honoured is refused in one line naming the mount, and
/// create leaves nothing behind: maps without the option, only one of the
/// two maps, idmap on a non-bind mount, idmap without maps outside a user
/// namespace, and a filesystem the kernel cannot idmap (sysfs).
#[test]
fn bad_idmapped_mounts_are_refused_cleanly() {
    let h = HostDir::new("idmap-bad");
    let map = disk_1000_is_root(0);
    let src = path(&h.path);
    let cases = [
        (
            json!({"destination": "/tmp/idm", "type": "bind", "source": src,
            "options": ["rbind"], "uidMappings": map, "gidMappings": map}),
            "need the idmap or ridmap option",
        ),
        (
            json!({"destination": "/tmp/idm", "type": "bind", "source": src,
            "options": ["rbind", "idmap"], "uidMappings": map}),
            "must be given together",
        ),
        (
            json!({"destination": "/tmp/idm", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"], "uidMappings": map, "gidMappings": map}),
            "bind mounts only",
        ),
        (
            json!({"destination": "/tmp/idm", "type": "bind", "source": src,
            "options": ["rbind", "idmap"]}),
            "needs the container in a user namespace",
        ),
        (
            json!({"destination": "/tmp/idm", "type": "bind", "source": "/sys/kernel",
            "options": ["bind", "idmap"], "uidMappings": map, "gidMappings": map}),
            "/sys/kernel cannot be idmapped",
        ),
    ];
    for (m, want) in cases {
        let mut b = bundle("idmap-bad", &["true"]);
        tmp_tmpfs(&mut b);
        b.config["mounts"].as_array_mut().unwrap().push(m);
        let out = b.create(&[]);
        assert!(!out.status.success(), "{want}: accepted");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "want {want:?}: {err}");
        assert!(err.contains("/tmp/idm"), "the mount is not named: {err}");
        assert!(!state_root().join(&b.id).exists(), "state dir left");
        assert!(!b.cgroup_dir("pids").exists(), "cgroup left");
    }
    let left = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!left.contains("/tmp/idm"), "a mount was left on the host");
}

/// A user namespace, pid namespace of its own, a uid/gid map.
fn with_userns(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
}

/// Security: in a user namespace without its own network namespace sysfs
/// cannot be mounted; what stands in for it (the host's /sys bound) must
/// carry the flags asked, on every mount under it, or the host's cgroup
/// trees would be writable in the container.
#[test]
fn sysfs_in_a_user_namespace_without_netns_is_never_writable() {
    let mut b = bundle("sysfs-userns", &["sh", "-c", MOUNTINFO]);
    with_userns(&mut b);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    let sys = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .cloned()
        .unwrap();
    assert_eq!(sys["options"], json!(["nosuid", "noexec", "nodev", "ro"]));
    let out = b.run();
    if !out.status.success() {
        // Refusing the config, as runc does, is safe too.
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
        return;
    }
    let out = stdout(&out);
    let mounts = mountinfo_of(&out);
    let under_sys: Vec<_> = mounts
        .iter()
        .filter(|m| m.mount_point == "/sys" || m.mount_point.starts_with("/sys/"))
        .collect();
    assert!(
        under_sys.iter().any(|m| m.mount_point == "/sys/fs/cgroup"),
        "{out}"
    );
    let masked = b.config["linux"]["maskedPaths"].clone();
    for m in under_sys {
        assert!(m.has_option("ro"), "{} is writable: {m:?}", m.mount_point);
        // Masked paths are the runtime's own read-only tmpfs.
        if masked.as_array().unwrap().contains(&json!(m.mount_point)) {
            continue;
        }
        for opt in ["nosuid", "nodev", "noexec"] {
            assert!(m.has_option(opt), "{} lacks {opt}: {m:?}", m.mount_point);
        }
    }
}

/// A bind source the container's user namespace cannot reach (a 000
/// directory on the way) is opened by the runtime before that namespace
/// exists, as runc and crun do.
#[test]
fn bind_source_behind_a_locked_directory_in_a_user_namespace() {
    let h = HostDir::new("locked-src");
    let src = h.path.join("locked/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "reached\n").unwrap();
    std::fs::set_permissions(
        h.path.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let mut b = bundle("locked-src", &["sh", "-c", "echo got $(cat /tmp/x/f)"]);
    with_userns(&mut b);
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/x", "bind", path(&src), &["rbind", "ro"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "got"), "reached", "{out}");
}

/// A mount on / placed first replaces the rootfs: later mounts land in
/// the new root and the container runs in it.
#[test]
fn a_mount_on_root_replaces_the_rootfs() {
    let copy = HostDir::rootfs_copy("root-mount");
    std::fs::write(copy.path.join("marker"), "new-root\n").unwrap();
    let mut b = bundle(
        "root-mount",
        &[
            "sh",
            "-c",
            &format!("echo marker $(cat /marker); {MOUNTINFO}"),
        ],
    );
    b.config["mounts"].as_array_mut().unwrap().insert(
        0,
        json!({"destination": "/", "type": "bind", "source": copy.path, "options": ["rbind"]}),
    );
    let out = b.run_ok();
    assert_eq!(value(&out, "marker"), "new-root", "{out}");
    assert_eq!(entry(&mountinfo_of(&out), "/proc").fstype, "proc", "{out}");
}

/// A destination that is a dangling symlink is followed inside the rootfs
/// (runc): the mount point is created where the link points, in the rootfs.
#[test]
fn a_dangling_symlink_destination_is_followed_inside_the_rootfs() {
    let copy = HostDir::rootfs_copy("dangling-in");
    std::os::unix::fs::symlink("../foo/bar/not/here", copy.path.join("etc/x")).unwrap();
    let mut b = bundle("dangling-in", &["sh", "-c", MOUNTINFO]);
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/etc/x", "tmpfs", "tmpfs", &["size=1m"]);
    let out = b.run_ok();
    assert!(copy.path.join("foo/bar/not/here").is_dir());
    let mounts = mountinfo_of(&out);
    assert_eq!(entry(&mounts, "/foo/bar/not/here").fstype, "tmpfs", "{out}");
}

/// A tmpfs without mode= keeps the mode of the directory it covers (runc).
#[test]
fn tmpfs_without_mode_keeps_the_mountpoints_mode() {
    let copy = HostDir::rootfs_copy("tmpfs-mode");
    let mp = copy.path.join("mp");
    std::fs::create_dir(&mp).unwrap();
    std::fs::set_permissions(&mp, std::os::unix::fs::PermissionsExt::from_mode(0o712)).unwrap();
    let mut b = bundle(
        "tmpfs-mode",
        &[
            "sh",
            "-c",
            "echo mode $(stat -c %a /mp); echo new $(stat -c %a /made/here)",
        ],
    );
    b.config["root"]["path"] = json!(copy.path);
    add_mount(&mut b, "/mp", "tmpfs", "tmpfs", &["nosuid"]);
    add_mount(&mut b, "/made/here", "tmpfs", "tmpfs", &["nosuid"]);
    let out = b.run_ok();
    assert_eq!(value(&out, "mode"), "712", "{out}");
    // A mount point made for the mount: the kernel's default, as in runc.
    assert_eq!(value(&out, "new"), "1777", "{out}");
}

/// A container without any /proc mount starts: nothing of the runtime's
/// may need the container's /proc.
#[test]
fn a_container_without_proc_starts() {
    let mut b = bundle(
        "no-proc",
        &["sh", "-c", "echo procfiles $(ls /proc | wc -l)"],
    );
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    let out = b.run_ok();
    assert_eq!(value(&out, "procfiles"), "0", "{out}");
}

/// linux.devices paths with a trailing slash name the device (runc).
#[test]
fn device_path_with_a_trailing_slash() {
    let mut b = bundle(
        "dev-slash",
        &["sh", "-c", "stat -c '%n %F %t:%T %a' /dev/fuse"],
    );
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/fuse/", "type": "c", "major": 10, "minor": 229, "fileMode": 384}
    ]);
    let out = b.run_ok();
    assert_eq!(
        value(&out, "/dev/fuse"),
        "character special file a:e5 600",
        "{out}"
    );
}

/// A /proc that is a symlink in the rootfs is refused (CVE-2023-28642):
/// following it would leave the container's /proc elsewhere.
#[test]
fn proc_symlinked_in_the_rootfs_is_refused() {
    let copy = HostDir::rootfs_copy("proc-link");
    std::fs::remove_dir(copy.path.join("proc")).unwrap();
    std::fs::create_dir(copy.path.join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("/fakeproc", copy.path.join("proc")).unwrap();
    let mut b = bundle("proc-link", &["true"]);
    b.config["root"]["path"] = json!(copy.path);
    let out = b.create(&[]);
    assert!(!out.status.success(), "a symlinked /proc was followed");
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/proc"), "{err}");
    assert!(!state_root().join(&b.id).exists(), "state dir left");
}

/// With --no-pivot the host's root stays under the container's in its
/// mount namespace, with the host's full procfs and sysfs on it. Those are
/// what let the kernel allow a fresh, unmasked procfs in a user namespace
/// made inside the container (the container's own /proc is masked). They
/// are detached first, as runc does.
#[test]
fn no_pivot_leaves_no_host_proc_to_allow_a_fresh_one() {
    // busybox mounts the procfs before exec, while it holds the new user
    // namespace's capabilities (and makes /tmp/p private first: a mount).
    let script = "unshare -U -m -p -f --mount-proc=/tmp/p true && echo fresh=yes || echo fresh=no";
    let mut b = bundle("nopivot-proc", &["sh", "-c", script]);
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/p", "tmpfs", "tmpfs", &[]);
    b.write();
    let out = ozz(&["run", "--no-pivot", "--bundle", path(&b.dir), &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(value(&text, "fresh="), "no", "{text}{}", stderr(&out));

    // The same container pivoted: the baseline the check stands on.
    let b = {
        let mut b = bundle("pivot-proc", &["sh", "-c", script]);
        tmp_tmpfs(&mut b);
        add_mount(&mut b, "/tmp/p", "tmpfs", "tmpfs", &[]);
        b
    };
    let text = b.run_ok();
    assert_eq!(value(&text, "fresh="), "no", "{text}");
}

/// A bind does not keep the source mount's ro/nosuid/nodev/noexec unless
/// the config asks for them.
#[test]
fn binds_do_not_inherit_the_sources_flags() {
    let mut h = HostDir::new("src-flags");
    let p = h.path.clone();
    h.mount(&["--bind", path(&p)], &p);
    h.mount(&["-o", "remount,bind,ro,nosuid,nodev,noexec"], &p);
    let mut b = bundle("src-flags", &["sh", "-c", MOUNTINFO]);
    tmp_tmpfs(&mut b);
    add_mount(&mut b, "/tmp/plain", "bind", path(&p), &["bind"]);
    add_mount(&mut b, "/tmp/ro", "bind", path(&p), &["bind", "ro"]);
    let out = b.run_ok();
    let mounts = mountinfo_of(&out);
    let plain = entry(&mounts, "/tmp/plain");
    assert!(plain.has_option("rw"), "{plain:?}");
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(!plain.has_option(flag), "{flag} inherited: {plain:?}");
    }
    let ro = entry(&mounts, "/tmp/ro");
    assert!(ro.has_option("ro") && !ro.has_option("noexec"), "{ro:?}");
}

/// A read-only /dev with devpts, shm and mqueue under it, and the device
/// nodes made in it (runc remounts /dev read-only last).
#[test]
fn read_only_dev_with_devpts_under_it() {
    let mut b = bundle(
        "ro-dev",
        &[
            "sh",
            "-c",
            &format!(
                "echo x > /dev/null; echo null=$?; touch /dev/probe; echo touch=$?; {MOUNTINFO}"
            ),
        ],
    );
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let out = b.run_ok();
    assert_eq!(value(&out, "null="), "0", "{out}");
    assert_ne!(value(&out, "touch="), "0", "{out}");
    let mounts = mountinfo_of(&out);
    assert!(entry(&mounts, "/dev").has_option("ro"), "{out}");
    assert_eq!(entry(&mounts, "/dev/pts").fstype, "devpts", "{out}");
}

/// rootfsPropagation "unbindable" (runc fails with EINVAL binding the
/// rootfs out of an unbindable /): the container's root ends unbindable.
#[test]
fn unbindable_rootfs_propagation() {
    for prop in ["unbindable", "runbindable"] {
        let mut b = bundle("unbindable", &["sh", "-c", MOUNTINFO]);
        b.config["linux"]["rootfsPropagation"] = json!(prop);
        let out = b.run_ok();
        let root = entry(&mountinfo_of(&out), "/").clone();
        assert!(root.has_optional("unbindable"), "{prop}: {root:?}");
    }
}

/// A bind whose source lies in the rootfs, under an earlier mount of the
/// config, binds what that mount put there (config order), also in a user
/// namespace, where sources outside the rootfs are opened by the runtime
/// first (runc fails here: it opens this one too early).
#[test]
fn bind_source_inside_the_rootfs_sees_earlier_mounts() {
    for userns in [false, true] {
        let copy = HostDir::rootfs_copy("src-in-rootfs");
        let mut b = bundle("src-in-rootfs", &["sh", "-c", MOUNTINFO]);
        b.config["root"]["path"] = json!(copy.path);
        if userns {
            with_userns(&mut b);
        }
        tmp_tmpfs(&mut b);
        add_mount(&mut b, "/tmp/a", "tmpfs", "tmpfs", &["size=1m"]);
        add_mount(
            &mut b,
            "/tmp/b",
            "bind",
            path(&copy.path.join("tmp/a")),
            &["bind"],
        );
        let out = b.run_ok();
        let mounts = mountinfo_of(&out);
        let a = entry(&mounts, "/tmp/a");
        let bb = entry(&mounts, "/tmp/b");
        assert_eq!(bb.fstype, "tmpfs", "userns {userns}: {out}");
        assert_eq!(a.dev, bb.dev, "userns {userns}: {out}");
    }
}
