#!/bin/sh
# Scanner throughput on page-cached data, against `nix-store --dump` (what
# Nix's own scanner has to read) and a plain `cat` of the same bytes.
# Usage: bench/scan.sh [DIR]   (default: /usr/lib/x86_64-linux-gnu, real ELFs)
# Needs: nix-store (nix-bin), cargo. Run from the repo root.
set -eu
dir=${1:-/usr/lib/x86_64-linux-gnu}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --example scanbench
bin=$CARGO_TARGET_DIR/release/examples/scanbench
echo "data: $dir ($(du -sh --apparent-size "$dir" | cut -f1)), $(nproc) cores"
# Warm the page cache.
find "$dir" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true
t() { # best of 3 wall seconds of "$@"
    best=
    for _ in 1 2 3; do
        s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
        d=$(echo "$e - $s" | bc)
        if [ -z "$best" ] || [ "$(echo "$d < $best" | bc)" = 1 ]; then best=$d; fi
    done
    echo "$best"
}
bytes=$(find "$dir" -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
cat_s=$(t sh -c "find '$dir' -type f -print0 | xargs -0 cat")
dump_s=$(t sh -c "nix-store --dump '$dir' >/dev/null")
echo "cat (single process, to /dev/null): $cat_s s, $(echo "scale=2; $bytes / $cat_s / 1000000000" | bc) GB/s"
echo "nix-store --dump >/dev/null:        $dump_s s, $(echo "scale=2; $bytes / $dump_s / 1000000000" | bc) GB/s"
"$bin" "$dir"
RAYON_NUM_THREADS=1 "$bin" "$dir"
