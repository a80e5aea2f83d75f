#!/usr/bin/python3
"""Pod start benchmark for hack/cri-bench: through containerd's CRI, start N
pods (a sandbox and one container each) with handler `ozz` and N with
`runc`, interleaved (ozz, runc, then runc, ozz, ...) so that both see the same
machine; a pod's start is RunPodSandbox + CreateContainer + StartContainer,
timed from the client as the kubelet would see it. Every pod stays up until
all are started, then all are removed. Prints p50/p99 per handler and the
ozz/runc ratio of the p50s.

Uses cri_driver's CRI client and pod/container helpers (same environment:
CRI_SOCK, CRI_PY, CRI_T, CRI_CG)."""
import math
import statistics
import sys
import time

import cri_driver as d

HANDLERS = ("ozz", "runc")


def pct(xs, p):
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def start_pod(h, i):
    t0 = time.monotonic()
    sid, pcfg = d.pod(h, "bench%d" % i)
    d.container(sid, pcfg, "main", ["sleep", "3600"])
    return time.monotonic() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    # One pod each first, not counted: the image's snapshot, the CNI bridge
    # and the page cache warm for both.
    for h in HANDLERS:
        start_pod(h, 0)
    d.cleanup()
    times = {h: [] for h in HANDLERS}
    for i in range(1, n + 1):
        for h in (HANDLERS if i % 2 else HANDLERS[::-1]):
            times[h].append(start_pod(h, i))
    t0 = time.monotonic()
    d.cleanup()
    removal = time.monotonic() - t0
    print("%-8s %6s %9s %9s %9s %9s" % ("handler", "pods", "p50 ms", "p99 ms", "mean ms", "min ms"))
    for h in HANDLERS:
        xs = times[h]
        print("%-8s %6d %9.1f %9.1f %9.1f %9.1f" % (
            h, len(xs), 1000 * pct(xs, 50), 1000 * pct(xs, 99), 1000 * statistics.mean(xs), 1000 * min(xs)))
    r50 = pct(times["ozz"], 50) / pct(times["runc"], 50)
    r99 = pct(times["ozz"], 99) / pct(times["runc"], 99)
    print("ozz/runc: p50 %.2f, p99 %.2f (%d pods removed in %.1f s)" % (r50, r99, 2 * n, removal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
