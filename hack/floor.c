/*
 * The kernel's floor for `run /bin/true` of hack/bench's bundle: the system
 * calls that bundle makes any runtime do, and nothing a runtime does for
 * itself (no state files, no exec fifo, no sealed re-exec, no validation).
 * hack/bench times it beside the runtimes, so the share of their time that
 * no runtime can save is measured, not estimated.
 *
 * It is called as a runtime is, `floor --root R run --bundle B ID`, and
 * does, as ozz does on the same host:
 *   - the cgroup's directory in every v1 hierarchy, the cgroup2 one (pure
 *     v2, or the hybrid host's twin, joined by CLONE_INTO_CGROUP);
 *   - clone3 with the bundle's five namespaces; the child joins its v1
 *     cgroups, binds the rootfs, makes the bundle's seven mounts (on v1 the
 *     cgroup tmpfs with each hierarchy bound read-only), the default
 *     devices and /dev links, pivot_root, the masked and read-only paths,
 *     the read-only root, the user, rlimit, capabilities and
 *     no_new_privs, then execs the process;
 *   - waits for it, and removes the cgroup's directories.
 * It knows the bench's bundle only: it reads cgroupsPath and the first
 * argument from config.json and nothing else. Any failure is one line on
 * stderr and exit status 1; it is a measuring tool, not a runtime.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HIER 32

/* With OZZ_TRACE=1, marks in ozz's trace format (runtime/src/trace.rs), so
 * hack/bench --phases sets the floor's steps beside ozz's: the labels are
 * ozz's for the same work. The child inherits the start time. */
static int tracing;
static struct timespec trace_start, trace_prev;

static long long since(const struct timespec *from, const struct timespec *to)
{
	return (to->tv_sec - from->tv_sec) * 1000000LL + (to->tv_nsec - from->tv_nsec) / 1000;
}

static void mark(const char *step)
{
	if (!tracing)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char line[256];
	int n = snprintf(line, sizeof line, "ozz-trace %d %lld +%lld %s\n", getpid(),
			 since(&trace_start, &now), since(&trace_prev, &now), step);
	trace_prev = now;
	if (write(2, line, n) < 0)
		return;
}

static void die(const char *what)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void must(int rc, const char *what)
{
	if (rc < 0)
		die(what);
}

/* The string value that follows `"key": "` in the config (json.dump's
 * separators), copied into out. */
static void json_string(const char *config, const char *key, char *out, size_t size)
{
	const char *at = strstr(config, key);
	if (!at || !(at = strchr(at + strlen(key), '"'))) {
		fprintf(stderr, "floor: config.json has no %s\n", key);
		exit(1);
	}
	at++;
	size_t n = strcspn(at, "\"");
	if (n >= size) {
		fprintf(stderr, "floor: %s too long\n", key);
		exit(1);
	}
	memcpy(out, at, n);
	out[n] = 0;
}

static char v1_dirs[MAX_HIER][256];	/* mount points of the v1 hierarchies */
static int v1_count;
static char v2_dir[256];		/* the cgroup2 mount, if any */

static void find_hierarchies(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	if (!f)
		die("mountinfo");
	while (fgets(line, sizeof line, f)) {
		char point[256], fstype[64];
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", point) != 1 ||
		    sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (!strcmp(fstype, "cgroup") && v1_count < MAX_HIER)
			strcpy(v1_dirs[v1_count++], point);
		else if (!strcmp(fstype, "cgroup2"))
			strcpy(v2_dir, point);
	}
	fclose(f);
}

/* A new v1 cpuset has no cpus and mems, and no task may join it until
 * they are copied down from its parent. */
static void seed_cpuset(const char *parent, const char *dir)
{
	static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
	for (int i = 0; i < 2; i++) {
		char path[1024], value[256];
		snprintf(path, sizeof path, "%s/%s", parent, files[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, value, sizeof value);
		if (n < 0)
			die(path);
		close(fd);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, value, n) != n)
			die(path);
		close(fd);
	}
}

/* mkdir -p of `path` below `base`, as a runtime makes the cgroup. */
static void make_cgroup(const char *base, const char *path)
{
	char dir[512], parent[512];
	int cpuset = strstr(strrchr(base, '/'), "cpuset") != NULL;
	snprintf(parent, sizeof parent, "%s", base);
	for (const char *slash = path + 1;; slash++) {
		if (*slash == '/' || !*slash) {
			snprintf(dir, sizeof dir, "%s%.*s", base, (int)(slash - path), path);
			if (mkdir(dir, 0755) == 0) {
				if (cpuset)
					seed_cpuset(parent, dir);
			} else if (errno != EEXIST) {
				die(dir);
			}
			strcpy(parent, dir);
		}
		if (!*slash)
			break;
	}
}

/* A single-threaded process moving itself through `tasks` skips the
 * threadgroup lock's RCU grace period (runtime/src/spawn/cgroup_join.rs). */
static void join_cgroup(const char *dir)
{
	char file[512];
	snprintf(file, sizeof file, "%s/tasks", dir);
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		die(file);
	close(fd);
}

/* A detached clone of `source`, made read-only, moved onto `target`. */
static void bind_read_only(int source_dir, const char *source, int target_dir, const char *target)
{
	int tree = syscall(SYS_open_tree, source_dir, source,
			   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (tree < 0)
		die(source);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
	must(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr),
	     "mount_setattr");
	must(syscall(SYS_move_mount, tree, "", target_dir, target, MOVE_MOUNT_F_EMPTY_PATH),
	     target);
	close(tree);
}

static void mount_cgroups(const char *cgroup_path)
{
	char host[512];
	if (v1_count == 0) {
		snprintf(host, sizeof host, "%s%s", v2_dir, cgroup_path);
		bind_read_only(AT_FDCWD, host, AT_FDCWD, "sys/fs/cgroup");
		return;
	}
	must(mount("tmpfs", "sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755"),
	     "cgroup tmpfs");
	int tmpfs = open("sys/fs/cgroup", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (tmpfs < 0)
		die("cgroup tmpfs");
	for (int i = 0; i < v1_count; i++) {
		const char *name = strrchr(v1_dirs[i], '/') + 1;
		snprintf(host, sizeof host, "%s%s", v1_dirs[i], cgroup_path);
		must(mkdirat(tmpfs, name, 0755), name);
		bind_read_only(AT_FDCWD, host, tmpfs, name);
	}
	close(tmpfs);
	must(mount(NULL, "sys/fs/cgroup", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		   "mode=755"), "cgroup tmpfs read-only");
}

static const char *masked[] = {"proc/acpi", "proc/asound", "proc/kcore", "proc/keys",
			       "proc/latency_stats", "proc/timer_list", "proc/timer_stats",
			       "proc/sched_debug", "sys/firmware", "proc/scsi"};
static const char *read_only[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys",
				  "proc/sysrq-trigger"};

static int child(const char *rootfs, const char *cgroup_path, const char *command)
{
	char dir[512];
	for (int i = 0; i < v1_count; i++) {
		snprintf(dir, sizeof dir, "%s%s", v1_dirs[i], cgroup_path);
		join_cgroup(dir);
	}
	mark("child: cgroup joined");
	must(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), "make / slave");
	must(mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL), "bind rootfs");
	must(chdir(rootfs), "chdir rootfs");
	mark("child: rootfs prepared");
	must(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "proc");
	must(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"), "dev");
	must(mkdir("dev/pts", 0755), "dev/pts");
	must(mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		   "newinstance,ptmxmode=0666,mode=0620,gid=5"), "devpts");
	must(mkdir("dev/shm", 0755), "dev/shm");
	must(mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"),
	     "shm");
	must(mkdir("dev/mqueue", 0755), "dev/mqueue");
	must(mount("mqueue", "dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mqueue");
	must(mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "sysfs");
	mark("child: mount /sys");
	mount_cgroups(cgroup_path);
	mark("child: mount /sys/fs/cgroup");
	static const struct {
		const char *name;
		unsigned major, minor;
	} devices[] = {{"dev/null", 1, 3}, {"dev/zero", 1, 5}, {"dev/full", 1, 7},
		       {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0}};
	for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
		must(mknod(devices[i].name, S_IFCHR | 0666, makedev(devices[i].major, devices[i].minor)),
		     devices[i].name);
	static const char *links[][2] = {{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"},
					 {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"},
					 {"pts/ptmx", "dev/ptmx"}};
	for (size_t i = 0; i < sizeof links / sizeof *links; i++)
		must(symlink(links[i][0], links[i][1]), links[i][1]);
	mark("child: default devices");
	must(syscall(SYS_pivot_root, ".", "."), "pivot_root");
	must(mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL), "old root slave");
	must(umount2(".", MNT_DETACH), "detach old root");
	must(chdir("/"), "chdir /");
	mark("child: pivot_root");
	struct stat st;
	for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
		snprintf(dir, sizeof dir, "/%s", masked[i]);
		if (stat(dir, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			must(mount("tmpfs", dir, "tmpfs", MS_RDONLY, NULL), dir);
		else
			must(mount("/dev/null", dir, NULL, MS_BIND, NULL), dir);
	}
	for (size_t i = 0; i < sizeof read_only / sizeof *read_only; i++) {
		snprintf(dir, sizeof dir, "/%s", read_only[i]);
		if (stat(dir, &st) == 0)
			bind_read_only(AT_FDCWD, dir, AT_FDCWD, dir);
	}
	must(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), "root read-only");
	mark("child: masked/readonly paths, sysctls");
	must(setgroups(0, NULL), "setgroups");
	must(setresgid(0, 0, 0), "setgid");
	must(setresuid(0, 0, 0), "setuid");
	struct rlimit nofile = {1024, 1024};
	must(setrlimit(RLIMIT_NOFILE, &nofile), "rlimit");
	const uint64_t keep = (1ULL << CAP_AUDIT_WRITE) | (1ULL << CAP_KILL) |
			      (1ULL << CAP_NET_BIND_SERVICE);
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap) >= 0; cap++)
		if (!(keep & (1ULL << cap)))
			must(prctl(PR_CAPBSET_DROP, cap), "drop bounding cap");
	struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{(uint32_t)keep, (uint32_t)keep, (uint32_t)keep}};
	must(syscall(SYS_capset, &header, data), "capset");
	must(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
	mark("child: last mark (seccomp load, execve)");
	char *const argv[] = {(char *)command, NULL};
	char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			      "HOME=/root", NULL};
	execve(command, argv, envp);
	die(command);
	return 1;
}

int main(int argc, char **argv)
{
	tracing = getenv("OZZ_TRACE") != NULL;
	clock_gettime(CLOCK_MONOTONIC, &trace_start);
	trace_prev = trace_start;
	mark("main");
	const char *bundle = NULL;
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--bundle"))
			bundle = argv[i + 1];
	if (!bundle) {
		fprintf(stderr, "usage: floor --root R run --bundle B ID\n");
		return 1;
	}
	char path[512], config[65536], cgroup_path[256], command[256], rootfs[512];
	snprintf(path, sizeof path, "%s/config.json", bundle);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, config, sizeof config - 1);
	if (n < 0)
		die(path);
	config[n] = 0;
	close(fd);
	json_string(config, "\"cgroupsPath\"", cgroup_path, sizeof cgroup_path);
	json_string(config, "\"args\": [", command, sizeof command);
	snprintf(rootfs, sizeof rootfs, "%s/rootfs", bundle);
	mark("bundle loaded and validated");

	find_hierarchies();
	char dir[512];
	for (int i = 0; i < v1_count; i++) {
		snprintf(dir, sizeof dir, "%s", v1_dirs[i]);
		make_cgroup(dir, cgroup_path);
	}
	int v2_fd = -1;
	if (v2_dir[0]) {
		make_cgroup(v2_dir, cgroup_path);
		snprintf(dir, sizeof dir, "%s%s", v2_dir, cgroup_path);
		v2_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (v2_fd < 0)
			die(dir);
	}
	mark("cgroup dirs created");
	struct clone_args args = {
		.flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET |
			 (v2_fd >= 0 ? CLONE_INTO_CGROUP : 0),
		.exit_signal = SIGCHLD,
		.cgroup = v2_fd >= 0 ? (uint64_t)v2_fd : 0,
	};
	pid_t pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0)
		die("clone3");
	if (pid == 0)
		_exit(child(rootfs, cgroup_path, command));
	int status;
	mark("clone3 (parent)");
	must(waitpid(pid, &status, 0), "waitpid");
	mark("run: container exited");
	for (int i = 0; i <= v1_count; i++) {
		const char *base = i < v1_count ? v1_dirs[i] : v2_dir;
		if (!base[0])
			continue;
		snprintf(dir, sizeof dir, "%s%s", base, cgroup_path);
		must(rmdir(dir), dir);
	}
	mark("delete: cgroup removed");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
