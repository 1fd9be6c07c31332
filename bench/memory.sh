#!/bin/sh
# Peak memory of `unfarm check`, `fix --dry-run` and `fix` on the CUDA-sized
# package (bench/gen-cuda.sh: 43 libraries, 842 MiB) per worker thread count
# (RAYON_NUM_THREADS), beside another build's (UNFARM_BASE=BINARY;
# bench/build-rev.sh REV builds one). Each cell: the largest peak RSS
# (/usr/bin/time -v) and the median wall time of ROUNDS runs; `fix` runs on
# a freshly restored, synced, page-cache-warm copy of the outputs.
# Usage: bench/memory.sh [ROUNDS=5] [THREADS="1 2 4 16 64"]  (from the repo
# root; CUDA_PKG=DIR reuses a package bench/gen-cuda.sh made in DIR)
# Needs: gcc, python3, time (GNU /usr/bin/time).
set -eu
rounds=${1:-5}
threads=${2:-"1 2 4 16 64"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet
unfarm=$CARGO_TARGET_DIR/release/unfarm
for t in gcc python3 /usr/bin/time; do
    command -v $t >/dev/null || { echo "memory.sh: $t is required (apt: time for /usr/bin/time)" >&2; exit 1; }
done
T=$(mktemp -d "${BENCH_DIR:-/tmp}/unfarm-membench.XXXXXX")
trap 'rm -rf "$T"' EXIT
pkg=${CUDA_PKG:-$T/pkg}
[ -f "$pkg/outputs" ] || bench/gen-cuda.sh "$pkg"
S=$pkg/store
outs=$(cat "$pkg/outputs")
mkdir -p "$T/pristine"
for o in $outs; do cp -a "$o" "$T/pristine/"; done
restore() {
    for o in $outs; do rm -rf "$o"; cp -a --reflink=never "$T/pristine/$(basename "$o")" "$o"; done
    sync
    for o in $outs; do find "$o" -type f -exec cat {} + >/dev/null; done
}
builds="new"
[ -n "${UNFARM_BASE:-}" ] && builds="new base"
echo "machine: $(nproc) cores, $(uname -sr); rounds: $rounds"
[ -n "${UNFARM_BASE:-}" ] && echo "base: $UNFARM_BASE"
echo "load before: $(uptime)"
for r in $(seq "$rounds"); do
    for n in $threads; do
        for b in $builds; do
            bin=$unfarm
            [ "$b" = base ] && bin=$UNFARM_BASE
            for m in check dry fix; do
                # check and dry-run change nothing; fix starts from the
                # unfixed package (on a fixed one it would do nothing).
                [ "$m" = fix ] && restore
                set -- check --system
                [ "$m" = dry ] && set -- fix --system --dry-run
                [ "$m" = fix ] && set -- fix --system
                s=$(date +%s.%N)
                # check exits 1 on findings (the farm references): not a failure.
                rc=0
                # shellcheck disable=SC2086
                RAYON_NUM_THREADS=$n /usr/bin/time -v -o "$T/time" \
                    "$bin" --store-dir "$S" "$@" $outs >/dev/null 2>"$T/err" || rc=$?
                if [ "$rc" != 0 ] && { [ "$m" != check ] || [ "$rc" != 1 ]; }; then
                    cat "$T/err" "$T/time" >&2
                    exit 1
                fi
                e=$(date +%s.%N)
                rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/time")
                echo "$b $m $n $s $e $rss" >>"$T/rows"
            done
        done
    done
done
restore
echo "load after: $(uptime)"
python3 - "$T/rows" "$builds" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    b, m, n, s, e, rss = line.split()
    rows.setdefault((b, m, int(n)), []).append((float(e) - float(s), int(rss)))
builds = sys.argv[2].split()
names = {"check": "check", "dry": "fix --dry-run", "fix": "fix"}
head = " | ".join(f"{b} MiB | {b} s" for b in builds)
print(f"\n| command | threads | {head} |")
print("|---|---|" + "---|---|" * len(builds))
for m, name in names.items():
    for n in sorted({k[2] for k in rows}):
        cells = []
        for b in builds:
            runs = rows[(b, m, n)]
            cells.append(f"{max(r for _, r in runs) / 1024:.0f} | {statistics.median(t for t, _ in runs):.2f}")
        print(f"| {name} | {n} | {' | '.join(cells)} |")
EOF
