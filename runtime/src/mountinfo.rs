//! `/proc/self/mountinfo`, read once and walked line by line (proc(5)):
//! the cgroup hierarchies, the mount a rootfs sits on, the host's proc and
//! sysfs under a `--no-pivot` root, the procview mount.
//!
//! Fields are borrowed from the text; only a mount point is unescaped (the
//! kernel writes space, tab, newline and backslash as octal escapes).

use std::path::PathBuf;

/// One mount: the fields ozz reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount<'a> {
    /// Field 4: the directory of the filesystem that is mounted (`/` for the
    /// whole filesystem).
    pub root: &'a str,
    mount_point: &'a str,
    /// The optional fields (`shared:N`, `master:N`, ...), space-separated.
    tags: &'a str,
    pub fs_type: &'a str,
    pub source: &'a str,
    /// The superblock's options (for cgroup v1: its controllers, `name=`).
    super_options: &'a str,
}

impl Mount<'_> {
    /// Where it is mounted, unescaped.
    pub fn mount_point(&self) -> PathBuf {
        PathBuf::from(unescape(self.mount_point))
    }

    /// The superblock's options, one by one.
    pub fn super_options(&self) -> impl Iterator<Item = &str> {
        self.super_options.split(',')
    }

    pub fn is_shared(&self) -> bool {
        self.tags.split(' ').any(|t| t.starts_with("shared:"))
    }
}

/// This process's mountinfo (its mount namespace).
pub fn read() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
}

/// The mounts of a mountinfo text, in its order (later mounts on top, so
/// `.rev()` finds the one seen at a point first); malformed lines are
/// skipped.
pub fn mounts(text: &str) -> impl DoubleEndedIterator<Item = Mount<'_>> {
    text.lines().filter_map(parse_line)
}

fn parse_line(line: &str) -> Option<Mount<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.splitn(7, ' ');
    let (_id, _parent, _dev) = (pre.next()?, pre.next()?, pre.next()?);
    let (root, mount_point, _options) = (pre.next()?, pre.next()?, pre.next()?);
    let tags = pre.next().unwrap_or("");
    let mut post = post.splitn(3, ' ');
    Some(Mount {
        root,
        mount_point,
        tags,
        fs_type: post.next()?,
        source: post.next()?,
        super_options: post.next().unwrap_or(""),
    })
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct
36 22 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
40 22 0:40 /sub /mnt/with\\040space rw - tmpfs tmpfs
bad line
";

    #[test]
    fn fields_tags_and_escapes() {
        let all: Vec<_> = mounts(SAMPLE).collect();
        assert_eq!(all.len(), 4, "the malformed line is skipped");
        assert_eq!(all[0].fs_type, "ext4");
        assert!(all[0].is_shared());
        let cpu = all[1];
        assert_eq!(
            cpu.mount_point(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(cpu.tags, "shared:9 master:2");
        assert_eq!(
            cpu.super_options().collect::<Vec<_>>(),
            ["rw", "cpu", "cpuacct"]
        );
        assert!(!all[2].is_shared());
        assert_eq!(all[2].source, "cgroup2");
        assert_eq!(all[3].root, "/sub");
        assert_eq!(all[3].mount_point(), PathBuf::from("/mnt/with space"));
        assert_eq!(all[3].tags, "");
    }

    #[test]
    fn reads_this_process() {
        let text = read().unwrap();
        assert!(mounts(&text).any(|m| m.mount_point() == std::path::Path::new("/")));
    }
}
