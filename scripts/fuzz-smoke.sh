#!/usr/bin/env bash
# Fuzz smoke test: build the libFuzzer targets in fuzz/ and run each for a
# fixed number of executions (with a fixed seed, so a run is repeatable, not
# at the mercy of machine speed) from the committed seeds; fail on any crash.
# FUZZ_SCALE multiplies the counts (default 1); FUZZ_SECONDS caps each run.
#
# cargo-fuzz wants nightly for -Zsanitizer=address; on the stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks it (the stable rust-std ships the ASan runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.1
secs=${FUZZ_SECONDS:-240}
scale=${FUZZ_SCALE:-1}
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
have() { command -v "$1" >/dev/null 2>&1; }
if ! have c++; then
  # libfuzzer-sys compiles libFuzzer (C++).
  if [ "$(id -u)" -ne 0 ]; then echo "fuzz-smoke: need a C++ compiler (g++)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
cd fuzz
cargo fuzz build -O
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
status=0
for t in facts plan edit; do
  seeds=seeds/elf
  [ "$t" = plan ] && seeds=seeds/plan
  work=$(mktemp -d)
  mkdir -p "$work/corpus" "$work/artifacts"
  extra=()
  [ -d "seeds/$t" ] && [ "$t" != plan ] && extra+=("seeds/$t")
  case $t in
    facts) runs=$((300000 * scale)) ;;
    edit) runs=$((100000 * scale)) ;;
    plan) runs=$((5000 * scale)) ;;
  esac
  echo "fuzz-smoke: $t for $runs runs (at most ${secs}s)"
  if ! "$bin/$t" -runs="$runs" -max_total_time="$secs" -max_len=131072 -rss_limit_mb=2048 -seed=1 \
      -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
      "$work/corpus" "$seeds" "${extra[@]}" >"$work/log" 2>&1; then
    echo "fuzz-smoke: $t FAILED; crash input(s) in $work/artifacts:" >&2
    ls "$work/artifacts" >&2
    grep -E "panicked|ERROR|SUMMARY" -A3 "$work/log" | head -20 >&2
    status=1
    continue
  fi
  grep -E "stat::number_of_executed_units|cov:" "$work/log" | tail -2
  rm -rf "$work"
done
exit $status
