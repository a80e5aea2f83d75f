# hack/cri-driver/setup.sh — sourced by hack/e2e-cri and hack/cri-bench:
# installs what is missing (containerd, CNI plugins, protoc, python3-grpcio),
# generates the CRI v1 Python messages, starts a private containerd 1.6 with
# its CRI plugin (handlers `ozz` and `runc`) in a network and mount namespace
# of its own, builds and imports the pause and busybox images, and sets an
# EXIT trap that removes all of it (pods through CRI, containerd by PID, the
# netns, mounts, cgroups and temp dir).
#
# The caller sets: ME (prefix of messages), here (hack/cri-driver's parent,
# i.e. hack/), top (the checkout), OZZ, RUNC (absolute paths). After it:
# T (temp dir), NETNS, CG (the pods' cgroup parent), SOCK, PY, and
# cri_env (a function printing the CRI_* variables for the Python client).
# --- Debian packages (idempotent) -----------------------------------------
# containerd (CRI plugin built in), the CNI plugins, and for the client
# python3-grpcio + protoc (the CRI messages are generated from the proto)
# and python3-websocket (the streaming server's client).
PY=/usr/bin/python3
need=()
command -v containerd >/dev/null || need+=(containerd)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v protoc >/dev/null || need+=(protobuf-compiler)
$PY -c 'import grpc, google.protobuf' 2>/dev/null || need+=(python3-grpcio python3-protobuf)
# The streaming checks' WebSocket client (hack/cri-driver/ws_stream.py).
$PY -c 'import websocket' 2>/dev/null || need+=(python3-websocket)
if [ ${#need[@]} -gt 0 ]; then
    echo "$ME: installing ${need[*]}"
    { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 ||
        { echo "$ME: SKIP: cannot install ${need[*]} on this host"; exit 0; }
fi

# The CRI proto, as the k8s-cri crate (0.11) ships it; cargo fetches the
# crate on a fresh machine.
proto() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/k8s-cri-0.11.0/proto 2>/dev/null | head -1; }
PROTO=$(proto)
if [ -z "$PROTO" ]; then
    d=$(mktemp -d /tmp/ozz-cri-fetch.XXXXXX)
    mkdir -p "$d/src" && : >"$d/src/lib.rs"
    printf '[package]\nname = "f"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nk8s-cri = "=0.11.0"\n' >"$d/Cargo.toml"
    (cd "$d" && cargo fetch -q) >/dev/null 2>&1
    rm -rf "$d"
    PROTO=$(proto)
fi
[ -n "$PROTO" ] || { echo "$ME: the CRI proto (k8s-cri 0.11 crate) cannot be fetched" >&2; exit 2; }
# --install-only (hack/e2e-cri's): the packages and the proto now, on the
# host, for a later run in the v2 guest, whose root is the host's read-only.
[ -n "${INSTALL_ONLY:-}" ] && exit 0

# --- private containerd in a private network namespace ---------------------
T=$(mktemp -d /tmp/ozz-e2e-cri.XXXXXX)
RUN=${T##*.}
NETNS=ozz-cri-$RUN
CG=/ozz-cri-$RUN
SOCK=$T/containerd.sock
CTRD_PID=
made_run_dir=
[ -e /run/containerd ] || made_run_dir=1
made_netns_dir=
[ -e /run/netns ] || made_netns_dir=1
mkdir -p "$T/cni" "$T/py" "$T/rootfs" "$T/ozz-root" "$T/runc-root"
netns_before=$(ls /run/netns 2>/dev/null)
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

cleanup() {
    local n c
    if [ -n "$CTRD_PID" ]; then
        # Whatever a failed check left: the driver removes every pod.
        CRI_SOCK=$SOCK CRI_PY=$T/py $PY "$here/cri-driver/cri_driver.py" --cleanup >/dev/null 2>&1
        ctr_ images rm --sync localhost/ozz-cri-pause:latest localhost/ozz-cri-busybox:latest >/dev/null 2>&1
        kill "$CTRD_PID" 2>/dev/null
        wait "$CTRD_PID" 2>/dev/null
    fi
    findmnt -rn -o TARGET | grep "^$T/" | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    # Pod network namespaces containerd made and did not remove.
    for n in $(ls /run/netns 2>/dev/null); do
        grep -qx "$n" <<<"$netns_before" && continue
        [[ $n == cni-* ]] && { umount "/run/netns/$n" 2>/dev/null; rm -f "/run/netns/$n"; }
    done
    ip netns del "$NETNS" 2>/dev/null
    [ -n "$made_netns_dir" ] && rmdir /run/netns 2>/dev/null
    rm -rf "$T"
    if [ -n "$made_run_dir" ]; then
        rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null
    fi
    for c in /sys/fs/cgroup/*/"${CG#/}" /sys/fs/cgroup/"${CG#/}"; do
        [ -d "$c" ] || continue
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM

ip netns add "$NETNS" || { echo "$ME: cannot make a network namespace" >&2; exit 1; }
ip -n "$NETNS" link set lo up
sed -e "s|@T@|$T|g" -e "s|@OZZ@|$OZZ|g" -e "s|@RUNC@|$RUNC|g" \
    "$here/cri-driver/containerd-config.toml.in" >"$T/config.toml"
sed -e "s|@T@|$T|g" "$here/cri-driver/cni.conflist.in" >"$T/cni/10-ozz-cri.conflist"
protoc -I "$PROTO" --python_out="$T/py" "$PROTO/v1.proto" ||
    { echo "$ME: protoc failed on $PROTO/v1.proto" >&2; exit 1; }

# Its own mount namespace too: libcni caches results in /var/lib/cni (no
# config option in containerd 1.6), which gets a tmpfs there, so nothing is
# written to the host's /var/lib (read-only in the v2 guest). nsenter,
# unshare and sh exec: the PID is containerd's.
nsenter --net="/run/netns/$NETNS" unshare -m --propagation private sh -c '
    if [ -d /var/lib/cni ]; then mount -t tmpfs -o mode=700 cni-cache /var/lib/cni
    else mount -t tmpfs -o mode=755 var-lib /var/lib && mkdir -m 700 /var/lib/cni; fi &&
    exec containerd --config "$1"' sh "$T/config.toml" >"$T/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do
    ctr --address "$SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
done
ctr --address "$SOCK" version >/dev/null 2>&1 || {
    echo "$ME: containerd did not start:" >&2
    tail -5 "$T/containerd.log" >&2
    exit 1
}

# --- images, without a registry --------------------------------------------
# One busybox-static rootfs (hack/mkrootfs) is both images: the pause image
# runs /pause (a shell that waits, reaps, and exits on SIGTERM), the
# container image has no command of its own (each check gives one).
"$top/hack/mkrootfs" "$T/rootfs" >/dev/null
cat >"$T/rootfs/pause" <<'PAUSE'
#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
PAUSE
chmod 755 "$T/rootfs/pause"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
for img in pause busybox; do
    entry=()
    [ $img = pause ] && entry=('["/pause"]')
    { "$here/cri-driver/mkimage" "$T/rootfs.tar" "$T/$img.tar" "localhost/ozz-cri-$img:latest" "${entry[@]}" &&
        ctr_ images import "$T/$img.tar"; } >"$T/image.log" 2>&1 ||
        { echo "$ME: building or importing the $img image failed:" >&2; tail -5 "$T/image.log" >&2; exit 1; }
done


cri_env() {
    echo CRI_SOCK="$SOCK" CRI_PY="$T/py" CRI_T="$T" CRI_CG="$CG" CRI_NETNS="/run/netns/$NETNS" \
        CRI_OZZ="$OZZ" CRI_RUNC="$RUNC"
}
