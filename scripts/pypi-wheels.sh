#!/usr/bin/env bash
# The real PyPI binaries behind the computed-name recognisers' full-tier test
# (tests/full/pypi_computed.rs): downloaded once into a cache under target/,
# and only the shared objects the test reads are unpacked (about 600 MB).
#   jax-cuda12-plugin 0.10.2  (8 MB wheel)    TSL DsoLoader in the extensions
#     (x86_64, and aarch64 into x/aarch64: the call decoded on both)
#   jax-cuda12-pjrt 0.10.2    (174 MB wheel)  TSL DsoLoader in the PJRT plugin
#   nvidia-cudnn-cu12 9.28.0.42 (717 MB wheel) cuDNN 9 sub-libraries
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${UNFARM_PYPI_WHEELS:-target/pypi-wheels}
mkdir -p "$dir/x"
# get PLATFORM UNPACK_DIR PKG WHEEL_GLOB MEMBER...
get() {
  local platform=$1 into=$2 pkg=$3 pattern=$4
  shift 4
  local whl
  whl=$(compgen -G "$dir/$pattern" | head -n1 || true)
  if [ -z "$whl" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.12 --platform "$platform" -d "$dir" "$pkg"
    whl=$(compgen -G "$dir/$pattern" | head -n1)
  fi
  mkdir -p "$into"
  unzip -q -o "$whl" -d "$into" "$@"
}
x86=manylinux_2_27_x86_64
get $x86 "$dir/x" jax-cuda12-plugin==0.10.2 'jax_cuda12_plugin-0.10.2-*x86_64.whl' \
  'jax_cuda12_plugin/*.so'
get manylinux_2_27_aarch64 "$dir/x/aarch64" jax-cuda12-plugin==0.10.2 \
  'jax_cuda12_plugin-0.10.2-*aarch64.whl' 'jax_cuda12_plugin/*.so'
get $x86 "$dir/x" jax-cuda12-pjrt==0.10.2 'jax_cuda12_pjrt-0.10.2-*.whl' \
  'jax_plugins/xla_cuda12/xla_cuda_plugin.so'
get $x86 "$dir/x" nvidia-cudnn-cu12==9.28.0.42 'nvidia_cudnn_cu12-9.28.0.42-*.whl' \
  'nvidia/cudnn/lib/libcudnn.so.9' 'nvidia/cudnn/lib/libcudnn_graph.so.9'
