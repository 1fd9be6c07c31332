#!/bin/sh
# Generate a store shaped like jaxlib + its CUDA plugin in DIR:
#   DIR/store/<hash>-cuda-dep-<name>-12.4-lib/lib/lib<name>.so.12   12 lib outputs
#   DIR/store/<hash>-cuda-merged/lib/...          a symlinkJoin of all twelve
#   DIR/store/<hash>-python3.12-jaxlib-0.4.30/...                25 libraries
#   DIR/store/<hash>-python3.12-jax-cuda12-plugin-0.4.30/...     18 libraries
# 43 shared libraries, 1 to 150 MiB each (842 MiB in all: a gcc-built
# object whose .rodata holds `.incbin` of random bytes), each NEEDing three
# of the twelve and with RUNPATH = the farm's lib: every file grows when
# fixed, in the default mode (twelve dirs) and with --shrink (its three
# plus the declared dlopen names).
# The largest library of each package dlopen()s libcupti and libnvrtc by
# name (as xla_extension and the CUDA plugin do).
# Writes DIR/outputs (the two package outputs), DIR/new-rpath (the twelve
# real dirs, for the patchelf loop) and DIR/dlopen-args.
# Usage: bench/gen-cuda.sh DIR
set -eu
dir=$1
store=$dir/store
src=$dir/src
mkdir -p "$store" "$src"
# 32 chars of Nix base32 (no e, o, u, t) derived from a name.
h() { printf %s "$1" | sha256sum | cut -c1-32 | tr e g; }
sp() { echo "$store/$(h "$1")-$1"; }

deps="cublas cublasLt cufft curand cusolver cusparse cudnn nccl cupti nvrtc nvjitlink cudart"
farm=$(sp cuda-merged)
mkdir -p "$farm/lib"
: >"$dir/new-rpath.tmp"
for d in $deps; do
    out=$(sp "cuda-dep-$d-12.4-lib")
    mkdir -p "$out/lib"
    echo "int dep_$d(void) { return 1; }" >"$src/$d.c"
    gcc -shared -fPIC -Wl,-soname,"lib$d.so.12" -o "$out/lib/lib$d.so.12" "$src/$d.c"
    ln -s "$out/lib/lib$d.so.12" "$farm/lib/lib$d.so.12"
    printf '%s:' "$out/lib" >>"$dir/new-rpath.tmp"
done
sed 's/:$//' "$dir/new-rpath.tmp" >"$dir/new-rpath"
rm "$dir/new-rpath.tmp"
echo "--dlopen libcupti.so.12 --dlopen libnvrtc.so.12" >"$dir/dlopen-args"

# One random payload; each library includes a prefix of it.
head -c 150M /dev/urandom >"$src/pad.bin"
jax=$(sp python3.12-jaxlib-0.4.30)
plugin=$(sp python3.12-jax-cuda12-plugin-0.4.30)
jaxdir=$jax/lib/python3.12/site-packages/jaxlib
plugdir=$plugin/lib/python3.12/site-packages/jax_plugins/xla_cuda12
mkdir -p "$jaxdir" "$plugdir"
printf '%s\n%s\n' "$jax" "$plugin" >"$dir/outputs"
sizes="150 110 80 60 50 40 35 30 28 25 22 20 18 16 15 14 12 12 10 10 9 8 8 7 6 6 5 5 4 4 3 3 3 2 2 2 2 1 1 1 1 1 1"
i=0
for mib in $sizes; do
    # Three deps per library, round robin over the twelve.
    a=$(echo "$deps" | cut -d' ' -f$((i % 12 + 1)))
    b=$(echo "$deps" | cut -d' ' -f$(((i + 4) % 12 + 1)))
    c=$(echo "$deps" | cut -d' ' -f$(((i + 8) % 12 + 1)))
    if [ "$i" -lt 25 ]; then dest=$jaxdir; else dest=$plugdir; fi
    name=$(printf '_mod%02d' "$i")
    cat >"$src/$name.c" <<EOF
extern const unsigned char blob_$i[];
int dep_$a(void); int dep_$b(void); int dep_$c(void);
int ${name}_init(void) { return blob_$i[0] + dep_$a() + dep_$b() + dep_$c(); }
EOF
    # The largest library of each package loads two CUDA libraries with
    # dlopen() by name, as xla_extension and the CUDA plugin do: their
    # .rodata is scanned for soname literals (the others import no dlopen,
    # so no lookup by name searches their RUNPATH).
    dl=""
    if [ "$i" = 0 ] || [ "$i" = 25 ]; then
        cat >>"$src/$name.c" <<EOF
#include <dlfcn.h>
int ${name}_load(void) { return !dlopen("libcupti.so.12", RTLD_LAZY) + !dlopen("libnvrtc.so.12", RTLD_LAZY); }
EOF
        dl=-ldl
    fi
    cat >"$src/$name.S" <<EOF
    .section .rodata
    .globl blob_$i
    .type blob_$i, @object
blob_$i:
    .incbin "$src/pad.bin", 0, $((mib << 20))
    .size blob_$i, . - blob_$i
    .section .note.GNU-stack,"",@progbits
EOF
    libs=""
    for d in $a $b $c; do libs="$libs -l:lib$d.so.12"; done
    # shellcheck disable=SC2086
    gcc -shared -fPIC -o "$dest/$name.so" "$src/$name.c" "$src/$name.S" \
        -L"$farm/lib" -Wl,--no-as-needed $libs $dl -Wl,--enable-new-dtags -Wl,-rpath,"$farm/lib"
    i=$((i + 1))
done
rm -rf "$src"
