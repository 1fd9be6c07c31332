#!/bin/sh
# Make and mount a scratch filesystem for bench/fix.sh on a 4 GiB image file
# (a loop device with direct I/O, so the image's own page cache does not
# count twice). Root only.
#   bench/loopfs.sh ext4|xfs|btrfs MOUNTPOINT [IMAGE]
# then: BENCH_DIR=MOUNTPOINT bench/fix.sh
# Undo: umount MOUNTPOINT && losetup -d <the device printed>.
# Needs: e2fsprogs / xfsprogs / btrfs-progs for the chosen filesystem.
set -eu
fs=$1
mnt=$2
img=${3:-/var/tmp/unfarm-bench-$fs.img}
case $fs in
ext4 | xfs | btrfs) ;;
*) echo "loopfs.sh: ext4, xfs or btrfs" >&2; exit 2 ;;
esac
command -v "mkfs.$fs" >/dev/null || { echo "loopfs.sh: mkfs.$fs is required" >&2; exit 1; }
rm -f "$img"
truncate -s 4G "$img"
# Defaults of each mkfs: ext4 with its journal, xfs with reflink, btrfs.
case $fs in
ext4) mkfs.ext4 -q -F "$img" ;;
xfs) mkfs.xfs -q -f "$img" ;;
btrfs) mkfs.btrfs -q -f "$img" >/dev/null ;;
esac
dev=$(losetup -f --show --direct-io=on "$img")
mkdir -p "$mnt"
mount "$dev" "$mnt"
echo "$fs on $dev at $mnt (image $img)"
