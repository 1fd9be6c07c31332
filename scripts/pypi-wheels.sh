#!/usr/bin/env bash
# The real PyPI binaries behind the computed-name recognisers' full-tier test
# (tests/full/pypi_computed.rs): downloaded once into a cache under target/,
# and only the shared objects the test reads are unpacked (about 600 MB).
#   jax-cuda12-plugin 0.10.2  (8 MB wheel)    TSL DsoLoader in the extensions
#   jax-cuda12-pjrt 0.10.2    (174 MB wheel)  TSL DsoLoader in the PJRT plugin
#   nvidia-cudnn-cu12 9.28.0.42 (717 MB wheel) cuDNN 9 sub-libraries
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${UNFARM_PYPI_WHEELS:-target/pypi-wheels}
mkdir -p "$dir/x"
get() {
  local pkg=$1 pattern=$2
  shift 2
  local whl
  whl=$(compgen -G "$dir/$pattern" | head -n1 || true)
  if [ -z "$whl" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.12 --platform manylinux_2_27_x86_64 -d "$dir" "$pkg"
    whl=$(compgen -G "$dir/$pattern" | head -n1)
  fi
  (cd "$dir/x" && unzip -q -o "../$(basename "$whl")" "$@")
}
get jax-cuda12-plugin==0.10.2 'jax_cuda12_plugin-0.10.2-*.whl' 'jax_cuda12_plugin/*.so'
get jax-cuda12-pjrt==0.10.2 'jax_cuda12_pjrt-0.10.2-*.whl' 'jax_plugins/xla_cuda12/xla_cuda_plugin.so'
get nvidia-cudnn-cu12==9.28.0.42 'nvidia_cudnn_cu12-9.28.0.42-*.whl' \
  'nvidia/cudnn/lib/libcudnn.so.9' 'nvidia/cudnn/lib/libcudnn_graph.so.9'
