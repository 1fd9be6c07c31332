#!/bin/sh
# `unfarm` on a CUDA-sized package: 43 shared libraries, 842 MiB, every
# RUNPATH through a farm of 12 lib outputs (bench/gen-cuda.sh), so every
# file grows when fixed. Compared in one run, interleaved (round r runs
# every method once, each on a freshly restored, synced, page-cache-warm
# copy of the outputs):
#   unfarm fix                           (default: every farm dir, grows)
#   unfarm fix --shrink --dlopen ...     (needs + declared dlopen names)
#   patchelf --set-rpath loop            (nixpkgs style, one process a file)
#   patchelf --shrink-rpath loop
#   readelf -d, one process over all files (the floor: reading the
#                                        dynamic sections, writing nothing)
#   unfarm check, unfarm fix --dry-run   (read only)
# Prints the median wall time of ROUNDS runs, the ratio to `unfarm fix`,
# and the peak RSS (/usr/bin/time -v, the largest process of the command),
# with `uptime` before and after (2 cores shared with other work).
# Usage: bench/cuda.sh [ROUNDS=3]   (from the repo root; BENCH_DIR picks
# the filesystem, default /tmp; bench/loopfs.sh makes ext4/xfs/btrfs;
# UNFARM_BASE=BINARY adds fix, fix --shrink, check and fix --dry-run of
# another build to the same interleaved rounds: bench/build-rev.sh REV
# builds one)
# Needs: gcc, patchelf, readelf, time (GNU /usr/bin/time), bc, python3.
set -eu
files() { for o in $outs; do find "$o" -type f -name '*.so'; done; }
# One method, run under /usr/bin/time by the loop below (environment: S,
# outs, new, dlopen, unfarm).
if [ "${1:-}" = --method ]; then
    # shellcheck disable=SC2086
    case $2 in
    m_fix) "$unfarm" --store-dir "$S" fix --system $outs ;;
    m_shrink) "$unfarm" --store-dir "$S" fix --system --shrink $dlopen $outs ;;
    m_set) files | while read -r f; do patchelf --set-rpath "$new" "$f"; done ;;
    m_pshrink) files | while read -r f; do patchelf --shrink-rpath "$f"; done ;;
    # shellcheck disable=SC2046
    m_readelf) readelf -d $(files) ;;
    # Exits 1 on findings (the unfixed farm references): not a failure here.
    m_check) "$unfarm" --store-dir "$S" check --system $outs || [ $? = 1 ] ;;
    m_dry) "$unfarm" --store-dir "$S" fix --system --dry-run $outs ;;
    # The same four with UNFARM_BASE (another build, for side-by-side runs).
    m_fix_base) "$UNFARM_BASE" --store-dir "$S" fix --system $outs ;;
    m_shrink_base) "$UNFARM_BASE" --store-dir "$S" fix --system --shrink $dlopen $outs ;;
    m_check_base) "$UNFARM_BASE" --store-dir "$S" check --system $outs || [ $? = 1 ] ;;
    m_dry_base) "$UNFARM_BASE" --store-dir "$S" fix --system --dry-run $outs ;;
    esac
    exit
fi
rounds=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet
unfarm=$CARGO_TARGET_DIR/release/unfarm
for t in gcc patchelf readelf bc python3 /usr/bin/time; do
    command -v $t >/dev/null || { echo "cuda.sh: $t is required (apt: time for /usr/bin/time)" >&2; exit 1; }
done
T=$(mktemp -d "${BENCH_DIR:-/tmp}/unfarm-cudabench.XXXXXX")
trap 'rm -rf "$T"' EXIT
S=$T/store
bench/gen-cuda.sh "$T"
outs=$(cat "$T/outputs")
new=$(cat "$T/new-rpath")
dlopen=$(cat "$T/dlopen-args")
n=$(files | wc -l)
bytes=$(files | xargs du -cb | tail -1 | cut -f1)
echo "machine: $(nproc) cores, $(uname -sr), $(patchelf --version), fs $(stat -f -c %T "$T")"
echo "package: $n shared libraries, $bytes bytes, in $(echo "$outs" | wc -l) outputs"
mkdir -p "$T/pristine"
for o in $outs; do cp -a "$o" "$T/pristine/"; done
# A restored copy is synced (so no method pays for writing it back) and
# read once (warm, like a freshly built output).
restore() {
    for o in $outs; do rm -rf "$o"; cp -a --reflink=never "$T/pristine/$(basename "$o")" "$o"; done
    sync
    files | xargs cat >/dev/null
}
methods="m_fix m_shrink m_set m_pshrink m_readelf m_check m_dry"
if [ -n "${UNFARM_BASE:-}" ]; then
    methods="$methods m_fix_base m_shrink_base m_check_base m_dry_base"
    echo "base: $UNFARM_BASE ($("$UNFARM_BASE" --version))"
fi
# Every method but the readelf floor starts from the unfixed package: check
# and dry-run on a fixed one would find no farm and price nothing.
needs_pristine() { [ "$1" != m_readelf ]; }
UNFARM_BASE=${UNFARM_BASE:-}
export S outs new dlopen unfarm UNFARM_BASE
now() { date +%s.%N; }

echo "load before: $(uptime)"
for r in $(seq "$rounds"); do
    for m in $methods; do
        if needs_pristine "$m"; then restore; fi
        s=$(now)
        /usr/bin/time -v -o "$T/time" "$0" --method "$m" >/dev/null 2>"$T/err" ||
            { cat "$T/err" "$T/time" >&2; exit 1; }
        e=$(now)
        rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/time")
        echo "$m $(echo "$e - $s" | bc) $rss" >>"$T/times"
    done
done
echo "load after: $(uptime)"

# The unfarm results are right: every file grew, the re-run is a no-op,
# check passes, and the patchelf loop gives the same RUNPATHs as default fix.
restore
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" fix --system --json $outs >"$T/fix.json"
python3 - "$T/fix.json" "$bytes" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
w = [x["bytes_written"] for x in r["results"] if x["status"] == "changed"]
assert r["failed"] == 0, r
print(f"unfarm fix: {r['changed']} changed, {r['failed']} failed; bytes written: "
      f"{sum(w)} in all, {max(w)} at most per file (the files: {sys.argv[2]} bytes)")
EOF
after=$(files | xargs -n1 stat -c %s | paste -sd+ | bc)
loads() { while read -r f; do readelf -lW "$f" | grep -c ' LOAD '; done | sort | uniq -c | awk '{printf "%s files with %s PT_LOADs ", $1, $2}'; }
echo "sizes: $bytes -> $after bytes; before: $(for o in $outs; do find "$T/pristine/$(basename "$o")" -type f -name '*.so'; done | loads); after: $(files | loads)"
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" fix --system --json $outs | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["changed"]==0, r["changed"]; print("re-run: 0 changed")'
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" check --system $outs >/dev/null && echo "check after fix: passes"
files | head -1 | while read -r f; do echo "RUNPATH after fix: $(readelf -dW "$f" | sed -n 's/.*runpath: \[\(.*\)\]/\1/p')"; done

python3 - "$T/times" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m, t, rss = line.split()
    rows.setdefault(m, []).append((float(t), int(rss)))
names = {
    "m_fix": "unfarm fix (default)",
    "m_shrink": "unfarm fix --shrink --dlopen libcupti.so.12 --dlopen libnvrtc.so.12",
    "m_set": "patchelf --set-rpath loop",
    "m_pshrink": "patchelf --shrink-rpath loop",
    "m_readelf": "readelf -d, one process (floor)",
    "m_check": "unfarm check",
    "m_dry": "unfarm fix --dry-run",
    "m_fix_base": "base: unfarm fix (default)",
    "m_shrink_base": "base: unfarm fix --shrink --dlopen ...",
    "m_check_base": "base: unfarm check",
    "m_dry_base": "base: unfarm fix --dry-run",
}
base = statistics.median(t for t, _ in rows["m_fix"])
print(f"\n| method | median wall s | runs (s) | vs unfarm fix | peak RSS MiB |")
print("|---|---|---|---|---|")
for m, name in names.items():
    if m not in rows:
        continue
    ts = [t for t, _ in rows[m]]
    med = statistics.median(ts)
    rss = max(r for _, r in rows[m]) / 1024
    print(f"| {name} | {med:.3f} | {' '.join(f'{t:.3f}' for t in ts)} | {med / base:.1f}x | {rss:.0f} |")
EOF
