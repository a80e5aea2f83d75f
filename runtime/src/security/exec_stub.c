/*
 * ozz's exec stub: the last exec of a container's init when ozz was not
 * re-executed from a sealed view of its own binary (CVE-2019-5736; see
 * exec_stub.rs and docs/security.md).
 *
 * The init executes this stub from a sealed memfd, and the stub executes
 * the container's program. While the kernel resolves that program (its
 * path, its #! interpreter, its ELF interpreter), /proc/self/exe is the
 * sealed stub and never the host's ozz: a program that is, or is run by,
 * /proc/self/exe runs this stub, and nothing can write it.
 *
 * argv: STUB_MAGIC, the exec fifo's descriptor (decimal), the failure
 * prefix, the program's path, then the program's own argv. The stub marks
 * the fifo close-on-exec, executes the program with the environment it
 * got, and if that fails writes "<prefix>\0<errno>" to the fifo (`ozz
 * start` words the errno) and exits 127. Run any other way (by hand, as an
 * interpreter) it refuses, also with 127.
 *
 * No libc: raw system calls only, no allocation, nothing but fcntl, execve,
 * write and exit_group, all under the container's seccomp filter.
 */

#define STUB_MAGIC "ozz-exec-stub"
#define F_SETFD 2
#define FD_CLOEXEC 1

#if defined(__x86_64__)
#define NR_WRITE 1
#define NR_FCNTL 72
#define NR_EXECVE 59
#define NR_EXIT_GROUP 231

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The kernel starts us with argc, argv and envp on the stack. */
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call stub_main\n"
	"	hlt\n");
#elif defined(__aarch64__)
#define NR_WRITE 64
#define NR_FCNTL 25
#define NR_EXECVE 221
#define NR_EXIT_GROUP 94

static long sys3(long nr, long a, long b, long c)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x0, sp\n"
	"	bl stub_main\n"
	"	brk #0\n");
#else
#error "the exec stub knows the system calls of x86_64 and aarch64 only"
#endif

static __attribute__((noreturn)) void exit_127(void)
{
	for (;;)
		sys3(NR_EXIT_GROUP, 127, 0, 0);
}

static long length(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(int fd, const char *s, long n)
{
	while (n > 0) {
		long done = sys3(NR_WRITE, fd, (long)s, n);
		if (done <= 0)
			return;
		s += done;
		n -= done;
	}
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* A descriptor number, or -1 for anything that is not one. */
static int descriptor(const char *s)
{
	long fd = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || fd > 100000000)
			return -1;
		fd = fd * 10 + (*s - '0');
	}
	return (int)fd;
}

/* "<prefix>\0<errno>" on the fifo, then the end. */
static __attribute__((noreturn)) void fail(int fifo, const char *prefix, long errno_value)
{
	char digits[24];
	int at = sizeof(digits);
	do {
		digits[--at] = (char)('0' + errno_value % 10);
		errno_value /= 10;
	} while (errno_value > 0 && at > 0);
	say(fifo, prefix, length(prefix) + 1); /* with its NUL */
	say(fifo, digits + at, (long)sizeof(digits) - at);
	exit_127();
}

__attribute__((noreturn, used)) void stub_main(long *stack)
{
	long argc = stack[0];
	char **argv = (char **)(stack + 1);
	char **envp = argv + argc + 1;
	int fifo;
	long ret;

	if (argc < 5 || !same(argv[0], STUB_MAGIC) || (fifo = descriptor(argv[1])) < 0) {
		static const char refusal[] = "ozz exec stub: only ozz's init runs this\n";
		say(2, refusal, sizeof(refusal) - 1);
		exit_127();
	}
	/* The fifo's EOF at execve is how `ozz start` sees the program run. */
	ret = sys3(NR_FCNTL, fifo, F_SETFD, FD_CLOEXEC);
	if (ret < 0)
		fail(fifo, "ozz exec stub: close-on-exec of exec.fifo: ", -ret);
	ret = sys3(NR_EXECVE, (long)argv[3], (long)(argv + 4), (long)envp);
	fail(fifo, argv[2], -ret);
}
