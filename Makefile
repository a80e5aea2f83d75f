# ozz — build, test, demo and benchmark. `make test` is what CI runs.
CARGO ?= cargo
# ozz ships as a static, non-PIE executable: no dynamic loader, no shared
# libc pages, no relocations to touch at start (peak RSS about a third
# lower than the dynamic build; see docs/design.md). RUSTFLAGS with an
# explicit --target leave build scripts and proc-macros alone.
TARGET := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static
# The functions `run` executes are linked together (hack/link-ordered, from
# the list hack/hot-functions.txt; v0 mangling keeps generic instances apart
# in it): the kernel maps text in 64 KB windows, and scattered hot code put
# nearly the whole binary in RSS. `make hot-functions` remakes the list.
ORDER_RUSTFLAGS := -C symbol-mangling-version=v0 -C linker=$(CURDIR)/hack/link-ordered
OZZ := $(CURDIR)/target/$(TARGET)/release/ozz
DEMO_DIR := $(CURDIR)/target/demo

.PHONY: all build hot-functions deps test unit spec faults e2e-podman-rootless test-v2 test-checkpoint-v2 e2e-checkpoint-v2 lint demo bench bench-v2 migrate-v2 clean e2e-podman e2e-containerd e2e-podman-v2 e2e-containerd-v2 e2e-cri e2e-cri-v2 e2e-docker e2e-docker-v2

all: build

build:
	RUSTFLAGS="$(STATIC_RUSTFLAGS) $(ORDER_RUSTFLAGS)" $(CARGO) build --release -p ozz --target $(TARGET)
	install -D -m 755 $(OZZ) target/release/ozz
	@# How much of the list still names functions of this build.
	@cat $$(ls -t target/$(TARGET)/release/deps/ozz-*.hot-order.stats | head -1) 2>/dev/null || true

# Traces which functions `ozz run` executes (an unstripped build of the same
# code, under ptrace) and rewrites hack/hot-functions.txt. Needs root. Not
# part of `make test`: run it when the hot path changed much.
hot-functions:
	RUSTFLAGS="$(STATIC_RUSTFLAGS) $(ORDER_RUSTFLAGS) -C strip=none" CARGO_TARGET_DIR=$(CURDIR)/target/hot \
		$(CARGO) build --release -p ozz --target $(TARGET)
	hack/hot-functions --ozz target/hot/$(TARGET)/release/ozz --out hack/hot-functions.txt

deps:
	hack/deps

# Unit tests, the conformance suite against the release binary, podman,
# containerd (runc shim and CRI) and docker end to end, and the cgroup v2
# suites in a qemu guest: the conformance suites that touch cgroups,
# checkpoint, and the podman, containerd, CRI and docker end-to-end checks.
test: deps build lint unit spec faults e2e-podman e2e-podman-rootless e2e-containerd e2e-cri e2e-docker test-v2 test-checkpoint-v2 e2e-checkpoint-v2 e2e-podman-v2 e2e-containerd-v2 e2e-cri-v2 e2e-docker-v2

unit:
	$(CARGO) test -p ozz

spec: build
	OZZ_BIN=$(OZZ) $(CARGO) test -p spec-tests -- --test-threads=2; \
	rc=$$?; hack/clean-test-cgroups; exit $$rc

# ozz SIGKILLed at random moments of create/start/exec/delete/update, then
# `delete -f` must leave nothing and no command may hang (hack/faults; the
# full manual run is `hack/faults --runs 500`, see docs/testing.md).
faults: build
	hack/faults --runs 40 --ozz $(OZZ)

# The suites that touch cgroups, again inside a pure cgroup v2 guest (qemu TCG).
test-v2: build
	OZZ_BIN=$(OZZ) hack/test-v2

# checkpoint/restore with CRIU, which this host's kernel cannot run: in the
# v2 guest, once hack/criu-guest-setup has loaded the modules `criu check`
# needs (~4 minutes under TCG). The suite's scratch dir (bundles, logs,
# images) is on the guest's tmpfs, not the 9p share: a process CRIU interrupts
# in a 9p write can hang there with its readers. Exit 77: no guest.
test-checkpoint-v2: build
	bin=$$($(CARGO) test -p spec-tests --test checkpoint --no-run --message-format=json 2>/dev/null | \
		python3 -c 'import json,sys; [print(m["executable"]) for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact" and m.get("executable")]' | tail -n1); \
	[ -n "$$bin" ] || { echo "test-checkpoint-v2: no checkpoint test binary" >&2; exit 1; }; \
	OZZ_GUEST_TIMEOUT=1200 OZZ_BIN=$(OZZ) OZZ_SPEC_SCRATCH=/run/ozz-spec OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/criu-guest-setup "$$bin" --test-threads=2; \
	rc=$$?; [ $$rc = 77 ] && echo "test-checkpoint-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

# podman, containerd (ctr) and docker checkpoint and restore a counter
# through ozz and through runc (hack/e2e-checkpoint), in the v2 guest after
# hack/criu-guest-setup: CRIU cannot run on this host's kernel. The packages
# are installed on the host first (the guest's root is the host's,
# read-only); everything the checks write is on the guest's tmpfs. 10-13
# minutes under TCG (13 with another guest beside it). Exit 77: no guest.
e2e-checkpoint-v2: build
	hack/e2e-checkpoint --install-only
	OZZ_GUEST_TIMEOUT=1500 OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/criu-guest-setup hack/e2e-checkpoint --ozz $(OZZ); \
	rc=$$?; [ $$rc = 77 ] && echo "e2e-checkpoint-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

# podman (with conmon) runs its containers on ozz, each check compared with
# runc; part of `make test`. See docs/podman.md.
e2e-podman: build
	hack/e2e-podman --ozz $(OZZ)

# Rootless podman (a user made for the run, with a subuid range) on ozz and
# on runc: run, exec, ps, stop, rm, --userns keep-id (~20 s). Its cgroup v2
# checks (a delegated subtree) run in the guest: see e2e-podman-v2.
e2e-podman-rootless: build
	hack/e2e-podman-rootless --ozz $(OZZ)

# The guest's /tmp is a fresh tmpfs: the checkout (wherever it is) is shared
# read-write at its own path, so its scripts and binary are there.
GUEST_RWDIRS := $(CURDIR) /tmp/ozz-guest

# The podman checks that touch cgroups, again in the cgroup v2 guest (the
# whole script takes ~15 minutes under TCG; these ~5), then in the same guest
# rootless podman's checks with a cgroup subtree delegated to its user
# (--memory, --pids-limit, pause; E2E_RL_V2_ONLY, ~3 minutes). The exit
# status is the first failure's. Exit 77: no guest.
E2E_V2_ONLY := cgroup|stats|update|pause|pids|beancounter
E2E_RL_V2_ONLY := ^v2:
e2e-podman-v2: build
	OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest bash -c \
	    'E2E_ONLY="$$1" hack/e2e-podman --ozz "$$3"; a=$$?; E2E_ONLY="$$2" hack/e2e-podman-rootless --ozz "$$3"; b=$$?; [ $$a = 0 ] && exit $$b; exit $$a' \
	    e2e-podman-v2 '$(E2E_V2_ONLY)' '$(E2E_RL_V2_ONLY)' '$(OZZ)'; \
	rc=$$?; [ $$rc = 77 ] && echo "e2e-podman-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

# containerd (ctr, runc v2 shim) runs its tasks on ozz, each check compared
# with runc; part of `make test`. See docs/containerd.md.
e2e-containerd: build
	hack/e2e-containerd --ozz $(OZZ)

# All of them again in the cgroup v2 guest (~2 minutes). Exit 77: no guest.
e2e-containerd-v2: build
	OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/e2e-containerd --ozz $(OZZ); \
	rc=$$?; [ $$rc = 77 ] && echo "e2e-containerd-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

# Pods through containerd's CRI (handlers ozz and runc, a CRI gRPC client as
# the kubelet's), each check compared with runc; part of `make test`. See
# docs/kubernetes.md.
e2e-cri: build
	hack/e2e-cri --ozz $(OZZ)

# The same in the cgroup v2 guest (~10 minutes; 19 with another guest
# running beside it, hence the timeout). The packages (and the CRI proto)
# are installed on the host first: the guest's root is the host's,
# read-only. Exit 77: no guest.
e2e-cri-v2: build
	hack/e2e-cri --install-only
	OZZ_GUEST_TIMEOUT=2400 OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/e2e-cri --ozz $(OZZ); \
	rc=$$?; [ $$rc = 77 ] && echo "e2e-cri-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

# docker (Debian's docker.io 20.10, a private dockerd and containerd) runs
# its containers with --runtime ozz, each check compared with --runtime runc;
# part of `make test`. See docs/docker.md.
e2e-docker: build
	hack/e2e-docker --ozz $(OZZ)

# The checks that touch cgroups (and the runtime proof and the clean-up ones)
# again in the cgroup v2 guest: all 23 take ~17 minutes under TCG, these
# ~6. docker.io is installed on the host first: the guest's root is the
# host's, read-only. Exit 77: no guest.
E2E_DOCKER_V2_ONLY := run:|stats|update|pause|top|--memory|OOM|rm -f|daemon
e2e-docker-v2: build
	hack/e2e-docker --install-only
	E2E_ONLY='$(E2E_DOCKER_V2_ONLY)' OZZ_GUEST_TIMEOUT=1500 OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/e2e-docker --ozz $(OZZ); \
	rc=$$?; [ $$rc = 77 ] && echo "e2e-docker-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

demo: deps build
	rm -rf $(DEMO_DIR)
	OZZ=$(OZZ) hack/mkbundle $(DEMO_DIR) sh -c 'echo "hello from $$(hostname), pid $$$$"; sleep 2'
	cd $(DEMO_DIR) && $(OZZ) create --bundle . ozz-demo
	$(OZZ) state ozz-demo
	$(OZZ) start ozz-demo
	$(OZZ) list
	sleep 3
	$(OZZ) state ozz-demo
	$(OZZ) delete ozz-demo

bench: deps build
	hack/bench --ozz $(OZZ)

# hack/bench inside the cgroup v2 guest, where crun runs beside runc (Debian's
# crun 1.8 needs cgroup v2). Not part of `make test`: timings under TCG. The
# checkout is shared as for the e2e targets (GUEST_RWDIRS): from a clone under
# /tmp, hack/bench and the binary would otherwise be missing in the guest.
bench-v2: deps build
	command -v crun >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends crun
	OZZ_GUEST_RWDIRS="$(GUEST_RWDIRS)" hack/v2-guest hack/bench --ozz $(OZZ) $(BENCH_ARGS)

# Live migration (issue 10): a container with a TCP stream and a memory
# writer, iterative pre-dumps, final dump, restore, ozz against runc, within
# one v2 guest and across two guests booted one after the other (three
# boots). Not part of `make test`. See docs/checkpoint.md. Exit 77: no guest.
migrate-v2: build
	hack/migrate --ozz $(OZZ) $(MIGRATE_ARGS); \
	rc=$$?; [ $$rc = 77 ] && echo "migrate-v2: SKIPPED: no cgroup v2 guest on this machine"; \
	[ $$rc = 0 ] || [ $$rc = 77 ]

clean:
	$(CARGO) clean
