#!/usr/bin/env bash
# Builds Circus's one image, for every role, from Debian packages and PyPI only:
#
#   bash etc/dev.sh image [--output DIR] [--rootfs-only]     # DIR: build/image
#   bash etc/image/build.sh [--output DIR] [--rootfs-only]
#
# 1. `debootstrap` a Debian 12 (bookworm, minbase) root file system into DIR/rootfs from
#    the mirror this machine's apt uses, then apt-get (inside it) python3, python3-venv,
#    nix-bin, git, openssh-client, ca-certificates and bubblewrap (sr.ht jobs run in it).
# 2. A venv in /opt/circus holding the Circus wheel, built inside the root file system
#    from this checkout (`pip wheel --no-deps`), and its dependencies from PyPI.
# 3. Single-user Nix as root (/etc/nix/nix.conf inside the root file system), `circus` on
#    PATH, the defaults in /etc/circus/image.env.
# 4. With buildah (installed when missing), the root file system committed as the OCI
#    image `circus:latest`: entrypoint `circus`, command `run`, port 3000, volume
#    /var/lib/circus. `podman run circus run --roles=runner` picks the roles.
#
# DIR/rootfs stays, to run where the kernel refuses containers (etc/image/run-rootfs.sh;
# what such runs leave in it, /var/lib/circus, /nix and caches, stays out of the image).
# A second run reuses the root file system and its packages (and the package caches in
# DIR/cache) and rebuilds only the venv and the image. Every mount happens in a private
# mount namespace of its own (`unshare --mount`), so nothing stays mounted on this
# machine, even when a step fails. Nothing outside DIR is written but the image store
# and, when missing, the Debian packages debootstrap, buildah, podman, runc. Needs root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUITE=bookworm
IMAGE=circus:latest
# Debian packages inside the image (with --no-install-recommends).
PACKAGES=(python3 python3-venv nix-bin git openssh-client ca-certificates bubblewrap)
# Debian packages this script needs on the machine that builds, as "command:package".
HOST_TOOLS=(debootstrap:debootstrap unshare:util-linux chroot:coreutils)

usage() {
  echo "usage: bash etc/image/build.sh [--output DIR] [--rootfs-only]" >&2
  exit 2
}

OUTPUT="$ROOT/build/image"
WITH_IMAGE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || usage; OUTPUT="$2"; shift 2 ;;
    --output=*) OUTPUT="${1#--output=}"; shift ;;
    --rootfs-only) WITH_IMAGE=0; shift ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done

say() { echo "image: $*"; }
die() { echo "image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and buildah run as root)"

mkdir -p "$OUTPUT"
OUTPUT="$(cd "$OUTPUT" && pwd)"
ROOTFS="$OUTPUT/rootfs"
CACHE="$OUTPUT/cache"
mkdir -p "$CACHE/debs" "$CACHE/pip"

started=$SECONDS
step_started=$SECONDS
step() {
  say "$* (+$((SECONDS - step_started))s, $((SECONDS - started))s in all)"
  step_started=$SECONDS
}

# --- What this machine needs -------------------------------------------------------

missing=()
# podman and runc run the image (tests/test_image.py): crun 1.8 refuses a kernel that
# mounts cgroup v1 beside a cgroup v2 hierarchy with controllers, runc does not.
[ "$WITH_IMAGE" -eq 1 ] && HOST_TOOLS+=(buildah:buildah podman:podman runc:runc)
for entry in "${HOST_TOOLS[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} on this machine"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The mirrors this machine's apt uses (from its configured index targets); an explicit
# CIRCUS_IMAGE_MIRROR wins.
mirror_for() {
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null \
    | awk -v suite="$1" '$1 == suite { print $2; exit }'
}
MIRROR="${CIRCUS_IMAGE_MIRROR:-$(mirror_for "$SUITE")}"
MIRROR="${MIRROR:-http://deb.debian.org/debian/}"
SECURITY_MIRROR="${CIRCUS_IMAGE_SECURITY_MIRROR:-$(mirror_for "$SUITE-security")}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security/}"
ARCH="$(dpkg --print-architecture)"

# No step may leave a mount behind, and nothing is deleted under a mount point.
assert_nothing_mounted() {
  if awk -v root="$ROOTFS" '$5 == root || index($5, root "/") == 1 { found = 1 }
                            END { exit !found }' /proc/self/mountinfo; then
    die "something is mounted under $ROOTFS on this machine; unmount it first"
  fi
}

# Runs a command inside the root file system: /proc, /dev, /sys and the package caches
# are mounted in a private mount namespace with its own PID namespace, so the mounts and
# any process a package script leaves behind end with the command. Plain chroot is
# enough for apt and pip; what runs Nix goes through run-rootfs.sh (pivot_root).
in_rootfs() {
  unshare --mount --propagation private --pid --fork --kill-child \
    /bin/bash -euo pipefail -c '
      rootfs=$1; cache=$2; ca=$3; shift 3
      mount -t proc proc "$rootfs/proc"
      mount --rbind /dev "$rootfs/dev"
      mount -t sysfs -o ro sysfs "$rootfs/sys"
      mount -t tmpfs -o mode=1777 tmpfs "$rootfs/tmp"
      mkdir -p "$rootfs/root/.cache/pip" "$rootfs/var/cache/apt/archives"
      mount --bind "$cache/pip" "$rootfs/root/.cache/pip"
      mount --bind "$cache/debs" "$rootfs/var/cache/apt/archives"
      # The build talks to the registries through this machine'"'"'s trust store (a
      # machine behind a TLS-inspecting proxy has its own CA): lent for the build only,
      # the image keeps Debian'"'"'s.
      touch "$rootfs/tmp/host-ca.crt"
      mount --bind -o ro "$ca" "$rootfs/tmp/host-ca.crt"
      exec chroot "$rootfs" /usr/bin/env -i \
        PATH=/opt/circus/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
        "$@"
    ' in_rootfs "$ROOTFS" "$CACHE" "$HOST_CA" "$@"
}

HOST_CA="${PIP_CERT:-${SSL_CERT_FILE:-${REQUESTS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}}}"
[ -f "$HOST_CA" ] || die "no CA bundle at $HOST_CA (set PIP_CERT)"
# An index mirror given in the environment is passed on; local (file:) ones are not
# reachable from inside.
case "${PIP_INDEX_URL:-}" in http://*|https://*) ;; *) unset PIP_INDEX_URL ;; esac

say "output $OUTPUT (mirror $MIRROR, $SUITE/$ARCH)"
assert_nothing_mounted

# --- 1. The root file system ------------------------------------------------------

BASE_STAMP="$SUITE $ARCH minbase $MIRROR"
if [ "$(cat "$ROOTFS/.circus-base" 2>/dev/null)" != "$BASE_STAMP" ]; then
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"
  say "debootstrap $SUITE (minbase) into $ROOTFS"
  # In a mount namespace of its own: debootstrap mounts /proc and /sys in the target and
  # would leave them mounted if it failed half-way.
  unshare --mount --propagation private \
    debootstrap --variant=minbase --arch="$ARCH" --cache-dir="$CACHE/debs" \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$SUITE" "$ROOTFS" "$MIRROR" > "$OUTPUT/debootstrap.log" 2>&1 \
    || { tail -20 "$OUTPUT/debootstrap.log" >&2
         die "debootstrap failed (log: $OUTPUT/debootstrap.log)"; }
  echo "$BASE_STAMP" > "$ROOTFS/.circus-base"
  rm -f "$ROOTFS/.circus-packages"
  step "debootstrap done"
fi

# No documentation, manual pages or translations from here on.
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d" "$ROOTFS/etc/apt/apt.conf.d"
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/01-circus-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
cat > "$ROOTFS/etc/apt/apt.conf.d/01-circus" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
# The rootfs resolves names as this machine does (only while building).
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

PACKAGES_STAMP="${PACKAGES[*]} $MIRROR $SECURITY_MIRROR"
if [ "$(cat "$ROOTFS/.circus-packages" 2>/dev/null)" != "$PACKAGES_STAMP" ]; then
  say "apt-get install ${PACKAGES[*]} (inside)"
  # No service starts inside the root file system while packages install.
  printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
  chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  in_rootfs /bin/sh -c "apt-get update -q && apt-get -y -q dist-upgrade \
    && apt-get install -y -q ${PACKAGES[*]}" > "$OUTPUT/apt.log" 2>&1 \
    || { tail -20 "$OUTPUT/apt.log" >&2; die "apt-get failed inside (log: $OUTPUT/apt.log)"; }
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  echo "$PACKAGES_STAMP" > "$ROOTFS/.circus-packages"
  step "packages installed"
fi

# --- 2. Nix, the PostgreSQL user, the defaults ---------------------------------------

# Single-user Nix as root: no build users, no nixbld group (this file exists only in
# the image, never on the machine that builds it).
mkdir -p "$ROOTFS/etc/nix"
cat > "$ROOTFS/etc/nix/nix.conf" <<'EOF'
# Circus image: single-user Nix, run by root.
build-users-group =
experimental-features = nix-command flakes
sandbox = false
EOF
mkdir -p "$ROOTFS/nix/store" "$ROOTFS/nix/var/nix/gcroots" "$ROOTFS/nix/var/nix/profiles"

# The embedded PostgreSQL refuses root and runs as this user (circus/db/embedded.py):
# made here so its uid is fixed in the image, not chosen at the first start.
chroot "$ROOTFS" /usr/bin/getent passwd circus-postgres >/dev/null \
  || chroot "$ROOTFS" /usr/sbin/useradd --system --no-create-home \
       --shell /usr/sbin/nologin circus-postgres

# The defaults, one KEY=VALUE a line: the OCI image's environment, and the environment
# etc/image/run-rootfs.sh gives a command it runs in the root file system.
mkdir -p "$ROOTFS/etc/circus" "$ROOTFS/var/lib/circus"
cat > "$ROOTFS/etc/circus/image.env" <<'EOF'
PATH=/opt/circus/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LANG=C.UTF-8
PYTHONUNBUFFERED=1
CIRCUS_STATE_DIR=/var/lib/circus
CIRCUS_SERVER__HOST=0.0.0.0
CIRCUS_EVALUATOR__WORK_DIR=/var/lib/circus/evaluator
CIRCUS_QUEUE_RUNNER__WORK_DIR=/var/lib/circus/runner
EOF

# --- 3. The Circus venv ------------------------------------------------------------

# The checkout as git sees it (tracked and new files, without ignored ones such as
# .venv or build/), so the wheel holds what a clone would and no stale build output.
say "building the Circus wheel from $ROOT"
rm -rf "$ROOTFS/opt/circus-src" "$ROOTFS/opt/circus"
mkdir -p "$ROOTFS/opt/circus-src"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
     | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
     | tar --null -T - -cf -) | tar -C "$ROOTFS/opt/circus-src" -xf -
else
  tar -C "$ROOT" --exclude=./.venv --exclude=./build -cf - . | tar -C "$ROOTFS/opt/circus-src" -xf -
fi
in_rootfs /bin/sh -c '
  set -e
  python3 -m venv /opt/circus
  pip wheel -q --no-deps -w /tmp/wheel /opt/circus-src
  pip install -q /tmp/wheel/*.whl
  ls /tmp/wheel
' > "$OUTPUT/pip.log" 2>&1 \
  || { tail -30 "$OUTPUT/pip.log" >&2; die "pip failed inside (log: $OUTPUT/pip.log)"; }
rm -rf "$ROOTFS/opt/circus-src"
WHEEL="$(tail -1 "$OUTPUT/pip.log")"
ln -sfn /opt/circus/bin/circus "$ROOTFS/usr/local/bin/circus"
step "venv /opt/circus with $WHEEL"

# Does it start? (and does Nix run as root with this configuration?)
in_rootfs /bin/sh -c 'circus --help >/dev/null && nix --version && git --version' \
  > "$OUTPUT/check.log" 2>&1 \
  || { cat "$OUTPUT/check.log" >&2; die "circus, nix or git does not start inside"; }

# --- 4. Slimming ---------------------------------------------------------------------

rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
       "$ROOTFS"/var/log/apt/* "$ROOTFS"/var/log/dpkg.log "$ROOTFS"/var/log/bootstrap.log \
       "$ROOTFS"/root/.cache/pip/* "$ROOTFS"/tmp/* "$ROOTFS"/usr/share/man/* \
       "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete \
  2>/dev/null || true
# The image gets its resolver from the runtime; an empty file is what podman fills in.
: > "$ROOTFS/etc/resolv.conf"
assert_nothing_mounted
say "rootfs $ROOTFS ($(du -sh --one-file-system "$ROOTFS" | cut -f1))"

# --- 5. The OCI image ----------------------------------------------------------------

if [ "$WITH_IMAGE" -eq 1 ]; then
  old_id="$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)"
  buildah rm circus-image-build >/dev/null 2>&1 || true
  ctr="$(buildah from --name circus-image-build scratch)"
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  mnt="$(buildah mount "$ctr")"
  # tar keeps owners, modes, links and file capabilities as they are in the rootfs; the
  # state of runs of the rootfs (run-rootfs.sh) stays out.
  tar -C "$ROOTFS" --numeric-owner --xattrs --exclude=./.circus-base \
      --exclude=./.circus-packages --exclude='./var/lib/circus/*' --exclude='./nix/*' \
      --exclude=./root/.cache --exclude='./tmp/*' -cf - . \
    | tar -C "$mnt" --numeric-owner --xattrs -xpf -
  mkdir -p "$mnt/nix/store" "$mnt/nix/var/nix/gcroots" "$mnt/nix/var/nix/profiles"
  buildah umount "$ctr" >/dev/null
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  env_args=()
  while IFS= read -r line; do
    [ -n "$line" ] && env_args+=(--env "$line")
  done < "$ROOTFS/etc/circus/image.env"
  buildah config \
    --os linux --arch "$ARCH" \
    --entrypoint '["circus"]' --cmd '["run"]' \
    "${env_args[@]}" \
    --port 3000/tcp --volume /var/lib/circus --workingdir /var/lib/circus \
    --label org.opencontainers.image.title=circus \
    --label "org.opencontainers.image.description=Circus, CI for Nix projects" \
    --label "org.opencontainers.image.revision=$revision" \
    "$ctr"
  buildah commit --quiet --format oci --rm "$ctr" "$IMAGE" >/dev/null
  trap - EXIT
  new_id="$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE")"
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    buildah rmi "$old_id" >/dev/null 2>&1 || true   # the previous build, unless in use
  fi
  step "committed"
  store="$(buildah info --format '{{.store.GraphRoot}}' 2>/dev/null || echo containers-storage)"
  say "image $IMAGE (${new_id:0:12}) in $store"
  say "  podman run -p 3000:3000 -v circus-state:/var/lib/circus $IMAGE"
  say "  podman run $IMAGE run --roles=runner    # with CIRCUS_DATABASE__URL set"
fi
say "rootfs $ROOTFS"
say "  bash etc/image/run-rootfs.sh $ROOTFS circus run --roles=runner   # no container engine"
say "done in $((SECONDS - started))s"
