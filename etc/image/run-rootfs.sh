#!/usr/bin/env bash
# Runs a command in the image's root file system where the kernel refuses containers:
#
#   bash etc/image/run-rootfs.sh ROOTFS [COMMAND [ARGS...]]     # default: circus run
#
# e.g. bash etc/image/run-rootfs.sh build/image/rootfs circus run --roles=runner
#
# The command gets the image's environment (ROOTFS/etc/circus/image.env) and nothing of
# the caller's but NIX_CONFIG and CIRCUS_* variables. It runs in a private mount namespace
# and a PID namespace of its own, whose first process it is: when it exits, the kernel
# ends every process left inside, and /proc, /dev, /sys and /tmp are unmounted with the
# namespace, also after a kill -9. Needs root.
#
# The root file system becomes the namespace's root with pivot_root, not chroot(2):
# Debian 12's Nix (2.8) re-enters its own mount namespace (setns) before it starts git,
# which resets the root directory to the namespace's, so under a plain chroot Nix's git
# would run on this machine's file system instead of the image's.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: bash etc/image/run-rootfs.sh ROOTFS [COMMAND...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run-rootfs: needs root" >&2; exit 1; }
ROOTFS="$(cd "$1" && pwd)"
shift
[ -f "$ROOTFS/etc/circus/image.env" ] || {
  echo "run-rootfs: $ROOTFS is not a Circus root file system (no etc/circus/image.env)" >&2
  exit 1
}
[ $# -gt 0 ] || set -- circus run

env_args=()
while IFS= read -r line; do
  [ -n "$line" ] && env_args+=("$line")
done < "$ROOTFS/etc/circus/image.env"
env_args+=(HOME=/root)
while IFS= read -r -d '' var; do
  case "$var" in NIX_CONFIG=*|CIRCUS_*) env_args+=("$var") ;; esac
done < /proc/self/environ

exec unshare --mount --propagation private --pid --fork --kill-child \
  /bin/sh -c '
    set -eu
    root=$1; shift
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t sysfs -o ro sysfs "$root/sys"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    cd "$root"
    pivot_root . mnt
    umount -l /mnt
    cd /var/lib/circus
    exec "$@"
  ' run-rootfs "$ROOTFS" /usr/bin/env -i "${env_args[@]}" "$@"
