#!/bin/sh
# `unfarm fix` speed and write volume.
#
# (a) 2000 small ELF files (bench/gen-fix-corpus.sh: 20 outputs, RUNPATHs
#     through a symlink farm): `unfarm fix` (release build) against the
#     nixpkgs-style loops `find | while read f; do patchelf --set-rpath NEW
#     "$f"; done` and `patchelf --shrink-rpath` per file.
# (b) one >= 500 MB shared library (.rodata holding 512 MiB of random
#     bytes via .incbin) with a RUNPATH through a farm: in-place fix time and
#     bytes written (`--json` bytes_written, cross-checked with strace); also
#     the same library importing dlopen, whose .rodata is then scanned for
#     soname literals.
# (c) the same library once its farm offers 40 more lib outputs (long
#     names): the RUNPATH grows by about 4 KiB and the file grows in place.
#
# Each timing is the best of 5 on a freshly restored copy, page cache warm
# (this VM's timings vary by 10-30% run to run).
# Usage: bench/fix.sh [N=2000] [BIG_MIB=512]   (from the repo root; N=0
# skips (a), BIG_MIB=0 skips (b) and (c); UNFARM_BASE=BINARY adds another
# build's fix to (a): bench/build-rev.sh REV builds one)
# Needs: gcc, patchelf, strace, bc, python3 (JSON).
set -eu
n=${1:-2000}
big_mib=${2:-512}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet
unfarm=$CARGO_TARGET_DIR/release/unfarm
for t in gcc patchelf strace bc python3; do
    command -v $t >/dev/null || { echo "fix.sh: $t is required" >&2; exit 1; }
done
# BENCH_DIR chooses the filesystem measured (default /tmp).
T=$(mktemp -d "${BENCH_DIR:-/tmp}/unfarm-fixbench.XXXXXX")
trap 'rm -rf "$T"' EXIT
S=$T/store
now() { date +%s.%N; }
best() { # best of 5 wall seconds: best RESTORE CMD...
    restore=$1; shift
    b=
    for _ in 1 2 3 4 5; do
        $restore
        s=$(now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(now)
        d=$(echo "$e - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$d < $b" | bc)" = 1 ]; then b=$d; fi
    done
    echo "$b"
}
echo "machine: $(nproc) cores, $(uname -sr), $(patchelf --version)"

# ---- (a) 2000 files -------------------------------------------------------
if [ "$n" = 0 ]; then
    # Only what (b) and (c) need: the foo lib output.
    foo=$S/$(printf %s foo-1.0-lib | sha256sum | cut -c1-32 | tr e g)-foo-1.0-lib
    mkdir -p "$foo/lib" "$T/src"
    echo 'int foo(void) { return 40; }' >"$T/src/foo.c"
    gcc -shared -fPIC -Wl,-soname,libfoo.so.1 -o "$foo/lib/libfoo.so.1" "$T/src/foo.c"
else
bench/gen-fix-corpus.sh "$T" "$n"
outs=$(cat "$T/outputs")
mkdir -p "$T/pristine"
for o in $outs; do cp -a "$o" "$T/pristine/"; done
# --reflink=never: a reflinked copy (xfs, btrfs) shares extents and starts
# with a cold page cache; a freshly built output is warm.
restore() { for o in $outs; do rm -rf "$o"; cp -a --reflink=never "$T/pristine/$(basename "$o")" "$o"; done; sync; }
foo=$(ls -d "$S"/*-foo-1.0-lib); bar=$(ls -d "$S"/*-bar-1.0-lib)
new="$foo/lib:$bar/lib"
files=$(for o in $outs; do find "$o" -type f; done | wc -l)
bytes=$(for o in $outs; do find "$o" -type f; done | xargs du -cb | tail -1 | cut -f1)
echo "corpus: $files ELF files, $bytes bytes, in $(echo "$outs" | wc -l) outputs"

loop_set() { for o in $outs; do find "$o" -type f; done | while read -r f; do patchelf --set-rpath "$new" "$f"; done; }
loop_shrink() { for o in $outs; do find "$o" -type f; done | while read -r f; do patchelf --shrink-rpath "$f"; done; }
# shellcheck disable=SC2086
t_unfarm=$(best restore "$unfarm" --store-dir "$S" fix --system $outs)
# shellcheck disable=SC2086
t_unfarm_nh=$(best restore "$unfarm" --store-dir "$S" fix --system --no-dlopen-hints $outs)
t_unfarm_1=$(best restore env RAYON_NUM_THREADS=1 "$unfarm" --store-dir "$S" fix --system $outs)
if [ -n "${UNFARM_BASE:-}" ]; then
    # shellcheck disable=SC2086
    t_base=$(best restore "$UNFARM_BASE" --store-dir "$S" fix --system $outs)
fi
t_set=$(best restore loop_set)
t_shrink=$(best restore loop_shrink)
# The unfarm result is right: check passes, programs run, a re-run is a no-op.
restore
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" fix --system --json $outs >"$T/fix.json"
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" check --system $outs >/dev/null
python3 - "$T/fix.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
w = [x["bytes_written"] for x in r["results"]]
print(f"unfarm fix: {r['changed']} changed, {r['failed']} failed; bytes written: {sum(w)} total")
EOF
ran=0
for p in $(for o in $outs; do find "$o/bin" -type f; done | head -50); do "$p"; ran=$((ran + 1)); done
echo "after fix: check passes, $ran programs run"
# shellcheck disable=SC2086
"$unfarm" --store-dir "$S" fix --system --json $outs | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["changed"]==0, r["changed"]; print("re-run: 0 changed")'
ratio() { echo "scale=1; $1 / $2" | bc; }
echo
echo "| method ($files files) | wall s | vs unfarm |"
echo "|---|---|---|"
echo "| unfarm fix (default: dlopen hints) | $t_unfarm | 1.0 |"
echo "| unfarm fix --no-dlopen-hints | $t_unfarm_nh | $(ratio "$t_unfarm_nh" "$t_unfarm") |"
echo "| unfarm fix, RAYON_NUM_THREADS=1 | $t_unfarm_1 | $(ratio "$t_unfarm_1" "$t_unfarm") |"
if [ -n "${UNFARM_BASE:-}" ]; then
    echo "| base: unfarm fix ($UNFARM_BASE) | $t_base | $(ratio "$t_base" "$t_unfarm") |"
fi
echo "| patchelf --set-rpath loop | $t_set | $(ratio "$t_set" "$t_unfarm") |"
echo "| patchelf --shrink-rpath loop | $t_shrink | $(ratio "$t_shrink" "$t_unfarm") |"
restore
for o in $outs; do rm -rf "$o"; done
rm -rf "$T/pristine"
fi

# ---- (b) one big library --------------------------------------------------
[ "$big_mib" = 0 ] && exit 0
echo
B=$T/big
mkdir -p "$B"
h() { printf %s "$1" | sha256sum | cut -c1-32 | tr e g; }
bigout=$S/$(h big-1.0)-big-1.0
bigfarm=$S/$(h big-deps-joined-farm)-big-deps-joined-farm
mkdir -p "$bigout/lib" "$bigfarm/lib"
head -c "${big_mib}M" /dev/urandom >"$B/pad.bin"
cat >"$B/big.S" <<EOF
    .section .rodata
    .globl big_blob
    .type big_blob, @object
big_blob:
    .incbin "$B/pad.bin"
    .size big_blob, . - big_blob
    .section .note.GNU-stack,"",@progbits
EOF
cat >"$B/big.c" <<'EOF'
extern const unsigned char big_blob[];
int foo(void);
int big_first(void) { return big_blob[0] + foo(); }
EOF
ln -s "$foo/lib/libfoo.so.1" "$bigfarm/lib/libfoo.so.1"
gcc -shared -fPIC -o "$bigout/lib/libbig.so" "$B/big.c" "$B/big.S" -L"$foo/lib" -l:libfoo.so.1 \
    -Wl,--enable-new-dtags -Wl,-rpath,"$bigfarm/lib"
# The same library importing dlopen (a lookup by name may search its
# RUNPATH): its .rodata is scanned for soname literals, the worst case.
cat >>"$B/big.c" <<'EOF'
#include <dlfcn.h>
int big_load(void) { return dlopen("libextra1.so.1", RTLD_LAZY) != 0; }
EOF
gcc -shared -fPIC -o "$B/libbigdl.pristine" "$B/big.c" "$B/big.S" -L"$foo/lib" -l:libfoo.so.1 -ldl \
    -Wl,--enable-new-dtags -Wl,-rpath,"$bigfarm/lib"
rm "$B/pad.bin"
size=$(stat -c %s "$bigout/lib/libbig.so")
cp "$bigout/lib/libbig.so" "$B/libbig.pristine"
restore_big() { cp --reflink=never "$B/libbig.pristine" "$bigout/lib/libbig.so"; cat "$bigout/lib/libbig.so" >/dev/null; sync; }
restore_bigdl() { cp --reflink=never "$B/libbigdl.pristine" "$bigout/lib/libbig.so"; cat "$bigout/lib/libbig.so" >/dev/null; sync; }
echo "big library: $size bytes, RUNPATH $(readelf -dW "$bigout/lib/libbig.so" | grep RUNPATH | sed 's/.*\[//; s/\]//')"
t_big=$(best restore_big "$unfarm" --store-dir "$S" fix --system "$bigout")
t_big_nh=$(best restore_big "$unfarm" --store-dir "$S" fix --system --no-dlopen-hints "$bigout")
t_big_dl=$(best restore_bigdl "$unfarm" --store-dir "$S" fix --system "$bigout")
restore_big
strace -f -qq -e trace=write,pwrite64,pwritev,pwritev2,copy_file_range,sendfile,splice \
    -o "$B/strace" "$unfarm" --store-dir "$S" fix --system --json "$bigout" >"$B/fix.json"
python3 - "$B/fix.json" "$B/strace" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
assert r["changed"] == 1, r
print("json bytes_written:", r["results"][0]["bytes_written"], "|", r["results"][0]["detail"])
file_writes = 0
for line in open(sys.argv[2]):
    m = re.search(r"(pwrite64|pwritev2?|copy_file_range|sendfile|splice|write)\((\d+),.*= (\d+)$", line.strip())
    # fd 1 is the JSON on stdout, not the file.
    if m and m.group(2) not in ("1", "2"):
        file_writes += int(m.group(3))
print("strace: bytes written to files (not stdout/stderr):", file_writes)
EOF
readelf -dW "$bigout/lib/libbig.so" | grep RUNPATH
echo
echo "| big library ($size bytes) | wall s |"
echo "|---|---|"
echo "| unfarm fix (default; it imports no dlopen: no literal scan) | $t_big |"
echo "| unfarm fix --no-dlopen-hints | $t_big_nh |"
echo "| unfarm fix, the library importing dlopen (512 MiB .rodata scanned) | $t_big_dl |"

# ---- (c) the big library grown in place -------------------------------------
echo
for i in $(seq 40); do
    x=$S/$(h "extra$i")-extra-library-number-$i-with-a-long-output-name-1.0-lib
    mkdir -p "$x/lib"
    echo "int extra$i(void) { return $i; }" >"$B/extra.c"
    gcc -shared -fPIC -Wl,-soname,"libextra$i.so.1" -o "$x/lib/libextra$i.so.1" "$B/extra.c"
    ln -s "$x/lib/libextra$i.so.1" "$bigfarm/lib/libextra$i.so.1"
done
t_grow=$(best restore_big "$unfarm" --store-dir "$S" fix --system "$bigout")
t_grow_nh=$(best restore_big "$unfarm" --store-dir "$S" fix --system --no-dlopen-hints "$bigout")
t_grow_dl=$(best restore_bigdl "$unfarm" --store-dir "$S" fix --system "$bigout")
restore_big
ino=$(stat -c %i "$bigout/lib/libbig.so")
blocks=$(stat -c %b "$bigout/lib/libbig.so")
strace -f -qq -e trace=write,pwrite64,pwritev,pwritev2,copy_file_range,sendfile,splice \
    -o "$B/strace" "$unfarm" --store-dir "$S" fix --system --json "$bigout" >"$B/fix.json"
python3 - "$B/fix.json" "$B/strace" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
assert r["changed"] == 1, r
print("json bytes_written:", r["results"][0]["bytes_written"])
file_writes = 0
for line in open(sys.argv[2]):
    m = re.search(r"(pwrite64|pwritev2?|copy_file_range|sendfile|splice|write)\((\d+),.*= (\d+)$", line.strip())
    if m and m.group(2) not in ("1", "2"):
        file_writes += int(m.group(3))
print("strace: bytes written to files (not stdout/stderr):", file_writes)
EOF
after=$(stat -c %s "$bigout/lib/libbig.so")
rplen=$(readelf -dW "$bigout/lib/libbig.so" | sed -n 's/.*runpath: \[\(.*\)\]/\1/p' | wc -c)
echo "grown in place: inode $ino -> $(stat -c %i "$bigout/lib/libbig.so"), $size -> $after bytes," \
    "blocks $blocks -> $(stat -c %b "$bigout/lib/libbig.so"), new RUNPATH $rplen bytes"
"$unfarm" --store-dir "$S" check --system "$bigout" >/dev/null && echo "check after fix: passes"
echo
echo "| big library grown ($size bytes) | wall s |"
echo "|---|---|"
echo "| unfarm fix (default; it imports no dlopen: no literal scan) | $t_grow |"
echo "| unfarm fix --no-dlopen-hints | $t_grow_nh |"
echo "| unfarm fix, the library importing dlopen (512 MiB .rodata scanned) | $t_grow_dl |"
