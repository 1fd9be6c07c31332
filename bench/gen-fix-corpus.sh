#!/bin/sh
# Generate the `unfarm fix` benchmark corpus in DIR (a temp store dir):
#   DIR/store/<hash>-foo-1.0-lib/lib/libfoo.so.1     real lib outputs
#   DIR/store/<hash>-bar-1.0-lib/lib/libbar.so.1
#   DIR/store/<hash>-foo-1.0-dev/lib/libfoo.so       linker name (dev output)
#   DIR/store/<hash>-cuda-stubs/lib/stubs/libcuda.so  stub
#   DIR/store/<hash>-joined-farm/lib/...             symlinkJoin of all four
#   DIR/store/<hash>-pkgNN-1.0/{bin,lib}/...         N ELF files in 20 outputs
# Every generated ELF (executables and shared libraries from 4 C templates,
# linked with 4 different RUNPATHs through the farm) is a byte copy of one of
# 16 gcc-built files. Prints the output paths (one per line) to DIR/outputs.
# Usage: bench/gen-fix-corpus.sh DIR [N=2000]
set -eu
dir=$1
n=${2:-2000}
store=$dir/store
src=$dir/src
mkdir -p "$store" "$src"
# 32 chars of Nix base32 (no e, o, u, t) derived from a name.
h() { printf %s "$1" | sha256sum | cut -c1-32 | tr e g; }
sp() { echo "$store/$(h "$1")-$1"; }

foo=$(sp foo-1.0-lib); bar=$(sp bar-1.0-lib); dev=$(sp foo-1.0-dev)
stubs=$(sp cuda-stubs); farm=$(sp joined-farm)
mkdir -p "$foo/lib" "$bar/lib" "$dev/lib" "$stubs/lib/stubs" "$farm/lib/stubs"
echo 'int foo(void) { return 40; }' >"$src/foo.c"
echo 'int bar(void) { return 2; }' >"$src/bar.c"
echo 'int cuInit(int x) { return x; }' >"$src/cuda.c"
gcc -shared -fPIC -Wl,-soname,libfoo.so.1 -o "$foo/lib/libfoo.so.1" "$src/foo.c"
gcc -shared -fPIC -Wl,-soname,libbar.so.1 -o "$bar/lib/libbar.so.1" "$src/bar.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/lib/stubs/libcuda.so" "$src/cuda.c"
ln -s "$foo/lib/libfoo.so.1" "$dev/lib/libfoo.so"
for f in "$foo/lib/libfoo.so.1" "$bar/lib/libbar.so.1" "$dev/lib/libfoo.so"; do
    ln -s "$f" "$farm/lib/$(basename "$f")"
done
ln -s "$bar/lib/libbar.so.1" "$farm/lib/libbar.so"
ln -s "$stubs/lib/stubs/libcuda.so" "$farm/lib/stubs/libcuda.so"

cat >"$src/t0.c" <<'EOF'
int foo(void);
int main(void) { return foo() == 40 ? 0 : 1; }
EOF
cat >"$src/t1.c" <<'EOF'
int foo(void); int bar(void);
int main(void) { return foo() + bar() == 42 ? 0 : 1; }
EOF
cat >"$src/t2.c" <<'EOF'
int bar(void);
int t2(void) { return bar() + 1; }
EOF
cat >"$src/t3.c" <<'EOF'
int foo(void); int bar(void);
int t3(void) { return foo() * bar(); }
EOF
# RUNPATH variants, all through the farm: shorter after the fix (farm +
# stubs + build dir), the farm alone (expands to two real dirs: grows),
# $ORIGIN kept, and a /build dir dropped.
v0="$farm/lib:$farm/lib/stubs:/build/source/build/lib"
v1="$farm/lib"
v2="\$ORIGIN/../lib:$farm/lib:$farm/lib/stubs"
v3="/build/pkg-1.0/_build/src/lib:$farm/lib"
tpl=$dir/templates
mkdir -p "$tpl"
for t in 0 1 2 3; do
    for v in 0 1 2 3; do
        eval "rp=\$v$v"
        case $t in
        0 | 1) gcc -o "$tpl/t$t-v$v" "$src/t$t.c" -L"$farm/lib" -lfoo -lbar \
            -Wl,--no-as-needed -Wl,--enable-new-dtags -Wl,-rpath,"$rp" ;;
        *) gcc -shared -fPIC -o "$tpl/t$t-v$v" "$src/t$t.c" -L"$farm/lib" -lfoo -lbar \
            -Wl,--enable-new-dtags -Wl,-rpath,"$rp" ;;
        esac
    done
done
: >"$dir/outputs"
per=$(((n + 19) / 20))
i=0
while [ "$i" -lt "$n" ]; do
    o=$((i / per))
    out=$(sp "pkg$o-1.0")
    if [ ! -d "$out" ]; then
        mkdir -p "$out/bin" "$out/lib"
        echo "$out" >>"$dir/outputs"
    fi
    t=$((i % 4)); v=$(((i / 4) % 4))
    case $t in
    0 | 1) cp "$tpl/t$t-v$v" "$out/bin/prog$i" ;;
    *) cp "$tpl/t$t-v$v" "$out/lib/libt$i.so" ;;
    esac
    i=$((i + 1))
done
echo "$n files in $(wc -l <"$dir/outputs") outputs under $store" >&2
