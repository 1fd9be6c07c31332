#!/usr/bin/env bash
# The real PyPI binaries behind the computed-name recognisers' full-tier test
# (tests/full/pypi_computed.rs): downloaded once into a cache under target/,
# and only the shared objects the test reads are unpacked (about 1.9 GB).
#   jaxlib 0.10.2             (85 MB wheel)   $ORIGIN lists, no CUDA
#   jax-cuda12-plugin 0.10.2  (8 MB wheel)    TSL DsoLoader in the extensions
#     (x86_64, and aarch64 into x/aarch64: the call decoded on both)
#   jax-cuda12-pjrt 0.10.2    (174 MB wheel)  TSL DsoLoader in the PJRT plugin
# and, read from the wheel by HTTP range requests (scripts/wheel-members.py:
# the zip's central directory, then only these members, CRC-checked):
#   nvidia-cudnn-cu12 9.28.0.42 (717 MB wheel; 45 MB read) cuDNN 9
#     sub-libraries, NVRTC by snprintf("libnvrtc.so.%d", 12)
#   torch 2.9.1 (900 MB wheel; 672 MB read) libtorch_cuda.so's lazy NVRTC
#     ("libnvrtc.so." + the CUDA major), and the small torch/lib objects
#   nvidia-cuda-nvrtc-cu12 12.8.93 (88 MB wheel; 44 MB read) libnvrtc.so.12
#     loading libnvrtc-builtins.so.12.8 by a literal
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
# jaxlib 0.10.2 (85 MB wheel): the CPU half, whose extensions reach
# libjax_common.so through $ORIGIN lists (tests/full/pypi_libs.rs).
get $x86 "$dir/x" jaxlib==0.10.2 'jaxlib-0.10.2-*x86_64.whl' 'jaxlib/*.so'
get $x86 "$dir/x" jax-cuda12-plugin==0.10.2 'jax_cuda12_plugin-0.10.2-*x86_64.whl' \
  'jax_cuda12_plugin/*.so'
get manylinux_2_27_aarch64 "$dir/x/aarch64" jax-cuda12-plugin==0.10.2 \
  'jax_cuda12_plugin-0.10.2-*aarch64.whl' 'jax_cuda12_plugin/*.so'
get $x86 "$dir/x" jax-cuda12-pjrt==0.10.2 'jax_cuda12_pjrt-0.10.2-*.whl' \
  'jax_plugins/xla_cuda12/xla_cuda_plugin.so'
# member URL UNPACK_DIR MEMBER...: just these members of the wheel at URL,
# unless every one is unpacked already.
member() {
  local url=$1 into=$2 m
  shift 2
  for m in "$@"; do
    if [ ! -e "$into/$m" ]; then
      python3 scripts/wheel-members.py "$url" "$into" "$@"
      return
    fi
  done
}
pypi=https://files.pythonhosted.org/packages
member "$pypi/ce/64/56ce3cad192cc75b50da3be44e36741ba963c84d3d2ca10aaa5ec16c49c3/nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl" \
  "$dir/x" nvidia/cudnn/lib/libcudnn.so.9 nvidia/cudnn/lib/libcudnn_graph.so.9
member "$pypi/19/17/e377a460603132b00760511299fceba4102bd95db1a0ee788da21298ccff/torch-2.9.1-cp312-cp312-manylinux_2_28_x86_64.whl" \
  "$dir/x" torch/lib/libtorch_cuda.so torch/lib/libcaffe2_nvrtc.so \
  torch/lib/libc10_cuda.so torch/lib/libc10.so torch/lib/libtorch_global_deps.so
member "$pypi/05/6b/32f747947df2da6994e999492ab306a903659555dddc0fbdeb9d71f75e52/nvidia_cuda_nvrtc_cu12-12.8.93-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl" \
  "$dir/x" nvidia/cuda_nvrtc/lib/libnvrtc.so.12 nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.8
