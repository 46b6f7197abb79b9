#!/usr/bin/env bash
# Sets up this checkout on a Debian 12 machine and starts the demo or runs the tests:
#
#   bash etc/dev.sh demo [--port N] [--state-dir DIR]   # the demo on http://127.0.0.1:3000/
#   bash etc/dev.sh test [PYTEST ARGS...]               # the whole test suite
#   bash etc/dev.sh bench NAME [ARGS...]                # bench/NAME.py, by hand
#   bash etc/dev.sh image [--output DIR]                # the container image (etc/image)
#
# Installs what is missing: Debian packages (as root; otherwise it names them and stops),
# a virtualenv in .venv with the package and its test dependencies.
#
# Nix runs single-user: as root, with `build-users-group =` (Debian's nix-bin creates no
# nixbld group and no /etc/nix), set through NIX_CONFIG below; nothing is written to /etc.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
  echo "usage: bash etc/dev.sh demo|test|bench|image [args...]" >&2
  exit 2
}

# Debian packages each command needs, as "command:package".
DEMO_TOOLS=(nix:nix-bin nix-store:nix-bin git:git curl:curl jq:jq bwrap:bubblewrap)
TEST_TOOLS=("${DEMO_TOOLS[@]}" chromium:chromium slapd:slapd ldapadd:ldap-utils npm:npm
            sshd:openssh-server ssh:openssh-client ip:iproute2 nsenter:util-linux)

have() {
  # sshd lives in /usr/sbin, which a non-root PATH may lack.
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

install_debian_packages() {
  local missing=() entry
  for entry in "$@"; do
    have "${entry%%:*}" || missing+=("${entry#*:}")
  done
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && [ ! -x .venv/bin/python ]; then
    missing+=(python3-venv)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "etc/dev.sh: missing Debian packages: ${missing[*]}" >&2
    echo "  install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "etc/dev.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_python_packages() {
  if [ ! -x .venv/bin/python ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
      echo "etc/dev.sh: Circus needs Python 3.11 or newer; python3 is $(python3 --version)" >&2
      exit 1
    }
    python3 -m venv .venv
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  if [ ! -f .venv/.circus-installed ] || [ pyproject.toml -nt .venv/.circus-installed ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
    touch .venv/.circus-installed
  fi
}

# This machine has no network but the package registries: without an empty
# `substituters`, every Nix call would try cache.nixos.org and wait for it to time out.
# Debian's nix-bin has a sandbox with no /bin/sh, which the demo's and tests' builders use.
# No build users: builds run as the calling user (root here), as `circus doctor` checks.
export NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG
}experimental-features = nix-command flakes
substituters =
sandbox = false
build-users-group ="

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  demo)
    install_debian_packages "${DEMO_TOOLS[@]}"
    install_python_packages
    exec .venv/bin/circus demo "$@"
    ;;
  test)
    install_debian_packages "${TEST_TOOLS[@]}"
    install_python_packages
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
    ;;
  bench)
    [ $# -gt 0 ] && [ -f "bench/$1.py" ] || {
      echo "usage: bash etc/dev.sh bench NAME [ARGS...]; NAME one of: $(cd bench && ls ./*.py | sed 's|^\./||; s|\.py$||' | tr '\n' ' ')" >&2
      exit 2
    }
    install_debian_packages "${DEMO_TOOLS[@]}"
    install_python_packages
    name="$1"
    shift
    exec .venv/bin/python "bench/$name.py" "$@"
    ;;
  image)
    exec bash etc/image/build.sh "$@"
    ;;
  *)
    usage
    ;;
esac
