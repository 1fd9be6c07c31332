#!/bin/sh
# Build the release binary of another revision, for side-by-side runs
# (UNFARM_BASE=... bench/cuda.sh), in a throwaway worktree; prints the
# binary's path. Usage: bench/build-rev.sh REV [DIR=/tmp/unfarm-rev-REV]
set -eu
rev=$1
dir=${2:-/tmp/unfarm-rev-$rev}
if [ ! -d "$dir" ]; then
    git worktree add --detach -q "$dir" "$rev"
fi
(cd "$dir" && cargo build --release --quiet)
echo "$dir/target/release/unfarm"
