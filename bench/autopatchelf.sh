#!/bin/sh
# unfarm fix --libs side by side with nixpkgs' own autoPatchelf engine
# (auto-patchelf.py, kept unchanged in ../shared/peers; called, never copied),
# on the same trees, in one run:
#
# (a) the CUDA-sized tree (bench/gen-cuda.sh: 43 libraries, 842 MiB) with its
#     12 `-lib` dirs as --libs;
# (b) N small ELF files (bench/gen-fix-corpus.sh, default 2000) with the
#     `lib` dirs of the corpus's four inputs as --libs (foo's lib output,
#     bar's, foo's -dev output, the CUDA stubs), as autoPatchelfHook gathers
#     `$dep/lib` of every build input.
# (c) when scripts/pypi-wheels.sh has unpacked them: the real jaxlib,
#     jax-cuda12-plugin and jax-cuda12-pjrt 0.10.2 shared objects with
#     stand-in CUDA `-lib` dirs; how many files each tool gives a CUDA dir.
#
# Fair starting point: both trees are generated with RUNPATHs through a
# symlink farm; before any run every RUNPATH is removed (patchelf
# --remove-rpath), so both tools start from a prebuilt tree with no useful
# RUNPATH, the case autoPatchelfHook exists for (auto-patchelf.py keeps a
# file's old RUNPATH where it finds nothing, so a farm left in place would
# make its results depend on that farm). Both get the same interpreter
# (NIX_BINTOOLS stand-in: this host's loader) and `--ignore-missing '*'`
# (missing needs are counted by the diff instead).
#
# Fresh copies: each run works on a new copy of the stripped tree, and the
# copy of the run before is moved aside (deleted when the script ends), not
# deleted. On ext4 without a journal (this benchmark's VM) the allocator
# skips inodes freed in the last 60 s (360 s while their inode table block is dirty) (find_inode_bit -> recently_deleted,
# reading inode table blocks for each), so deleting 2000 files just before a
# run that creates 2000 (unfarm's copies of small files) made that run 2-3x
# slower, a cost of the benchmark, not of either tool (auto-patchelf.py's
# patchelf rewrites files in place and creates none). The freed inodes of
# the run itself (unfarm's renames) still count.
#
# Each timing is the median of RUNS (default 5; 3 for the CUDA tree) on a
# fresh copy of the stripped tree, page cache warm; peak RSS is
# /usr/bin/time -v's "Maximum resident set size" (for auto-patchelf.py, the
# largest of python and its patchelf children).
#
# Then, per file and need (DT_NEEDED and the names unfarm's ldd says the
# file builds at run time, from `unfarm ldd --json` on each result, plus
# the soname literals a file dlopen()s, resolved through its RUNPATH), the
# file each result loads; "same", or both answers with the reason.
#
# Usage: bench/autopatchelf.sh [N=2000]   (from the repo root)
#   UNFARM_FLAGS=flags for unfarm fix (default --no-sync, as the hook runs
#   it; UNFARM_FLAGS= for the syncing run a user's `fix` makes).
#   AUTO_PATCHELF=path/to/auto-patchelf.py (default /work/shared/peers/...)
#   AP_VENV=dir: a venv with pyelftools (created there if missing; default
#   /tmp/ap). RUNS=k. SKIP_CUDA=1 skips (a). UNFARM=binary: that build.
# Needs: gcc, patchelf, python3 (venv), bc, /usr/bin/time.
set -eu
n=${1:-2000}
# As the hook runs it (inside a build); UNFARM_FLAGS= measures the syncing run.
unfarm_flags=${UNFARM_FLAGS---no-sync}
runs=${RUNS:-5}
peer=${AUTO_PATCHELF:-/work/shared/peers/auto-patchelf.py}
venv=${AP_VENV:-/tmp/ap}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [ -n "${UNFARM-}" ]; then
    unfarm=$UNFARM
else
    cargo build --release --quiet
    unfarm=$CARGO_TARGET_DIR/release/unfarm
fi
for t in gcc patchelf python3 bc /usr/bin/time; do
    command -v $t >/dev/null || { echo "autopatchelf.sh: $t is required" >&2; exit 1; }
done
[ -f "$peer" ] || { echo "autopatchelf.sh: $peer: no auto-patchelf.py (set AUTO_PATCHELF)" >&2; exit 1; }
if ! "$venv/bin/python" -c 'import elftools' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pyelftools
fi
py=$venv/bin/python
T=$(mktemp -d "${BENCH_DIR:-/tmp}/unfarm-apbench.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/trash"
# NIX_BINTOOLS stand-in, as ../shared/peers/README.md sets it up.
mkdir -p "$T/bt/nix-support" "$T/libc"
ln -sfn /usr/lib/x86_64-linux-gnu "$T/libc/lib"
interp=/lib64/ld-linux-x86-64.so.2
echo "$interp" >"$T/bt/nix-support/dynamic-linker"
echo "$T/libc" >"$T/bt/nix-support/orig-libc"
export NIX_BINTOOLS=$T/bt
echo "machine: $(nproc) cores, $(uname -sr), $(patchelf --version), $("$py" --version), pyelftools $("$py" -c 'import elftools; print(elftools.__version__)'), load:$(cut -d' ' -f1-3 /proc/loadavg)"
echo "unfarm fix flags: ${unfarm_flags:-(none)}"

elfs() { # the ELF files under DIR...
    find "$@" -type f -exec sh -c 'for f; do head -c4 "$f" | grep -q ELF && echo "$f"; done' sh {} +
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one CASE RUNS LIBS... : OUTS are in $T/CASE.outputs, stripped copies
# in $T/CASE.pristine; prints the summary lines and writes CASE-TOOL.json.
one() {
    c=$1; k=$2; shift 2
    outs=$(cat "$T/$c.outputs")
    for tool in unfarm auto-patchelf.py; do
        : >"$T/times"; : >"$T/rss"
        i=0
        while [ "$i" -lt "$k" ]; do
            i=$((i + 1))
            # The last run's copy is moved aside, not deleted: see "Fresh
            # copies" above.
            for o in $outs; do
                [ -e "$o" ] && mv "$o" "$T/trash/$(date +%s%N)"
                cp -a "$T/$c.pristine/${o##*/}" "$o"
            done
            sync
            s=$(date +%s.%N)
            # shellcheck disable=SC2086 # outputs are words
            if [ "$tool" = unfarm ]; then
                # shellcheck disable=SC2086 # flags are words
                NIX_STORE=$S /usr/bin/time -v -o "$T/tv" "$unfarm" fix -q $unfarm_flags \
                    --interpreter "$interp" --ignore-missing '*' --libs "$@" -- $outs \
                    >"$T/log" 2>&1 || { cat "$T/log" "$T/tv" >&2; exit 1; }
            else
                /usr/bin/time -v -o "$T/tv" "$py" "$peer" --ignore-missing '*' \
                    --paths $outs --libs "$@" >"$T/log" 2>&1 ||
                    { cat "$T/log" "$T/tv" >&2; exit 1; }
            fi
            e=$(date +%s.%N)
            echo "$e - $s" | bc >>"$T/times"
            awk -F': ' '/Maximum resident/ {print $2}' "$T/tv" >>"$T/rss"
        done
        t=$(median <"$T/times")
        r=$(median <"$T/rss")
        echo "$c $tool median_s=$t runs=$k peak_rss_kib=$r" | tee -a "$T/summary"
        # shellcheck disable=SC2086
        # Exit 1: some need is not found (the diff says which).
        NIX_STORE=$S "$unfarm" ldd --json $outs >"$T/$c-$tool.json" || [ $? = 1 ]
        python3 - "$T/$c-$tool.json" "$T/$c-$tool.lit" $outs <<'EOF'
import json, os, re, sys
# The soname literals each file holds that name a library (dlopen by
# name), resolved as its dlopen() would search: RUNPATH ($ORIGIN
# expanded), then the host's default dirs are left out (not a Nix path).
j = json.load(open(sys.argv[1]))
out = {}
for f in j["files"]:
    data = open(f["path"], "rb").read()
    names = sorted(set(m.decode() for m in re.findall(rb"lib[A-Za-z0-9_+-]+\.so\.[0-9]+", data)))
    rp = (f["runpath"] or f["rpath"] or "")
    dirs = [d.replace("$ORIGIN", os.path.dirname(f["path"])) for d in rp.split(":") if d]
    declared = {n["name"] for n in f["needs"]} | {n["name"] for n in f["computed"]}
    lits = {}
    for name in names:
        if name in declared or name == f["soname"]:
            continue
        hit = next((os.path.realpath(os.path.join(d, name)) for d in dirs if os.path.exists(os.path.join(d, name))), None)
        lits[name] = hit
    out[f["path"]] = lits
json.dump(out, open(sys.argv[2], "w"))
EOF
    done
    python3 - "$T" "$c" "$S" >>"$T/diff-$c.md" <<'EOF'
import json, sys
T, c, S = sys.argv[1:4]
def load(tool):
    j = json.load(open(f"{T}/{c}-{tool}.json"))
    lit = json.load(open(f"{T}/{c}-{tool}.lit"))
    res = {}
    for f in j["files"]:
        m = {}
        for kind in ("needs", "computed"):
            for n in f[kind]:
                m[n["name"]] = (n["real"] if n["status"] == "found" else n["status"], kind)
        for name, hit in lit.get(f["path"], {}).items():
            m.setdefault(name, (hit or "not-found", "literal"))
        res[f["path"]] = (m, f["runpath"] or f["rpath"] or "")
    return res
u, a = load("unfarm"), load("auto-patchelf.py")
same = diff = 0
rows = []
def short(p):
    return p.replace(S + "/", "") if isinstance(p, str) else p
def why(nu, na, kind):
    if na == "not-found" and nu != "not-found":
        return {"computed": "a name built at run time: auto-patchelf.py reads DT_NEEDED and .note.dlopen only",
                "literal": "a dlopen() by a literal name: auto-patchelf.py reads no soname literals"}.get(kind, "auto-patchelf.py found no provider")
    if nu == "not-found" and na != "not-found":
        if "stub" in na:
            return "auto-patchelf.py used a stub dir; unfarm never does"
        if "-dev/" in na:
            return "auto-patchelf.py used a -dev output; unfarm never does"
        return "unfarm found no provider"
    if "stub" in str(na):
        return "auto-patchelf.py resolved to a stub"
    return "different providers"
files = sorted(set(u) | set(a))
for p in files:
    mu, _ = u.get(p, ({}, ""))
    ma, _ = a.get(p, ({}, ""))
    for name in sorted(set(mu) | set(ma)):
        nu, ku = mu.get(name, ("-", ""))
        na, ka = ma.get(name, ("-", ""))
        if nu == na:
            same += 1
        else:
            diff += 1
            rows.append((short(p), name, ku or ka, short(nu), short(na), why(nu, na, ku or ka)))
print(f"### {c}: {same} needs resolve to the same file, {diff} differ\n")
if rows:
    # Many files share a layout: group identical (need, answers, reason).
    groups = {}
    for p, name, kind, nu, na, w in rows:
        groups.setdefault((name, kind, nu, na, w), []).append(p)
    print("| need | kind | unfarm | auto-patchelf.py | why | files |")
    print("|---|---|---|---|---|---|")
    for (name, kind, nu, na, w), ps in sorted(groups.items(), key=lambda g: -len(g[1])):
        ex = "/".join(ps[0].split("/")[-2:]) + (f" (+{len(ps) - 1} more)" if len(ps) > 1 else "")
        print(f"| `{name}` | {kind} | `{nu}` | `{na}` | {w} | {len(ps)}: `{ex}` |")
    print()
EOF
}

# prepare CASE: stripped copies of $T/CASE.outputs in $T/CASE.pristine.
prepare() {
    c=$1
    mkdir -p "$T/$c.pristine"
    for o in $(cat "$T/$c.outputs"); do
        for f in $(elfs "$o"); do
            patchelf --remove-rpath "$f"
        done
        cp -a "$o" "$T/$c.pristine/"
    done
}

# ---- (b) N small files ------------------------------------------------------
S=$T/small/store
bench/gen-fix-corpus.sh "$T/small" "$n" >/dev/null
cp "$T/small/outputs" "$T/small.outputs"
prepare small
small_libs=$(for d in "$S"/*-foo-1.0-lib "$S"/*-bar-1.0-lib "$S"/*-foo-1.0-dev "$S"/*-cuda-stubs; do echo "$d/lib"; done)
# shellcheck disable=SC2086
one small "$runs" $small_libs

# ---- (a) the CUDA-sized tree ------------------------------------------------
if [ -z "${SKIP_CUDA-}" ]; then
    S=$T/cuda/store
    bench/gen-cuda.sh "$T/cuda" >/dev/null
    cp "$T/cuda/outputs" "$T/cuda.outputs"
    prepare cuda
    cuda_libs=$(tr ':' ' ' <"$T/cuda/new-rpath")
    # shellcheck disable=SC2086
    one cuda "${RUNS:-3}" $cuda_libs
fi

# ---- (c) the real jax-cuda12-plugin + jax-cuda12-pjrt shared objects -------
# Unpacked by scripts/pypi-wheels.sh (WHEELS=DIR, default its x86_64 dir);
# skipped when absent. The CUDA libraries are stand-ins: one `-lib` output per
# CUDA soname the files need or build at run time (unfarm ldd's not-found
# names lib{cu,nv,nccl}*, the driver's libcuda.so.1 excepted), each an empty gcc-built
# library with that SONAME.
wheels=${WHEELS:-target/pypi-wheels/x}
if [ -d "$wheels/jax_cuda12_plugin" ] && [ -z "${SKIP_WHEELS-}" ]; then
    S=$T/wheels/store
    out=$S/$(printf %s jax-cuda12-0.10.2 | sha256sum | cut -c1-32 | tr e g)-python3.12-jax-cuda12-0.10.2
    mkdir -p "$out"
    for d in jaxlib jax_cuda12_plugin jax_plugins; do
        [ -d "$wheels/$d" ] && cp -a "$wheels/$d" "$out/"
    done
    echo "$out" >"$T/wheels.outputs"
    echo 'int cuda_stand_in(void) { return 0; }' >"$T/stand-in.c"
    wheel_libs=
    for so in $(NIX_STORE=$S "$unfarm" ldd --json "$out" | python3 -c '
import json, re, sys
names = set()
for f in json.load(sys.stdin)["files"]:
    for n in f["needs"] + f["computed"]:
        if n["status"] == "not-found":
            names.add(n["name"])
for n in sorted(names):
    # CUDA only: libstdc++ and the like come with the toolchain.
    if re.match(r"lib(cu|nv|nccl)", n) and n != "libcuda.so.1":
        print(n)'); do
        base=${so%%.so*}
        d=$S/$(printf %s "$base" | sha256sum | cut -c1-32 | tr e g)-cuda-${base#lib}-12-lib/lib
        mkdir -p "$d"
        gcc -shared -fPIC -Wl,-soname,"$so" -o "$d/$so" "$T/stand-in.c"
        wheel_libs="$wheel_libs $d"
    done
    echo "wheels: $(elfs "$out" | wc -l) ELF files, $(echo $wheel_libs | wc -w) CUDA stand-in -lib dirs"
    prepare wheels
    # shellcheck disable=SC2086
    one wheels "${RUNS:-3}" $wheel_libs
    for tool in unfarm auto-patchelf.py; do
        python3 - "$T/wheels-$tool.json" "$tool" <<'EOF2' | tee -a "$T/summary"
import json, sys
j = json.load(open(sys.argv[1]))
n = sum(1 for f in j["files"] if "-12-lib/lib" in (f["runpath"] or f["rpath"] or ""))
print(f"wheels {sys.argv[2]}: {n} of {len(j['files'])} files get a CUDA dir")
EOF2
    done
fi

echo
cat "$T/summary"
echo
cat "$T"/diff-*.md
