/* A probe for hack/e2e-podman, built static into the test image: calls each
 * syscall named on the command line once and prints NAME=ok, or NAME= and
 * the error, one line each. None of them needs a capability, so without a
 * seccomp filter all succeed for root with podman's default capabilities;
 * podman's default profile refuses all but personality-query. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name)
{
    /* Not in the profile's allow list: its defaultErrnoRet (ENOSYS). A user
     * key in the session keyring the runtime made for the container (-3). */
    if (strcmp(name, "add_key") == 0)
        return syscall(SYS_add_key, "user", "ozz-e2e-key", "x", 1L, -3L);
    /* An explicit ERRNO rule (EPERM). sysfs(3): number of filesystem types. */
    if (strcmp(name, "sysfs") == 0)
        return syscall(SYS_sysfs, 3L);
    /* personality is allowed for listed argument values only: 0xffffffff
     * (query) is listed, ADDR_NO_RANDOMIZE (0x0040000) is not. */
    if (strcmp(name, "personality-query") == 0)
        return syscall(SYS_personality, 0xffffffffL);
    if (strcmp(name, "personality-norandom") == 0)
        return syscall(SYS_personality, 0x0040000L);
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        long r = call(argv[i]);
        printf("%s=%s\n", argv[i], r < 0 ? strerror(errno) : "ok");
    }
    return 0;
}
