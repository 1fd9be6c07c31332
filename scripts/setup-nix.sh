#!/bin/sh
# Make Debian's nix-bin usable as root on a fresh machine, single-user, no
# daemon, no sandbox, no network. Idempotent. Used by scripts/test.sh and tests/common/nix.rs.
set -eu
if [ "$(id -u)" != 0 ]; then
    echo "setup-nix.sh: must run as root" >&2
    exit 1
fi
command -v nix-build >/dev/null || {
    echo "setup-nix.sh: nix-build not found (apt-get install nix-bin)" >&2
    exit 1
}
mkdir -p /nix/store /nix/var/nix/db /nix/var/nix/gcroots /nix/var/nix/profiles /nix/var/nix/temproots /etc/nix
chmod 1775 /nix/store 2>/dev/null || true
conf=/etc/nix/nix.conf
touch "$conf"
setopt() {
    # Replace or append "key = value".
    if grep -q "^[[:space:]]*$1[[:space:]]*=" "$conf"; then
        sed -i "s|^[[:space:]]*$1[[:space:]]*=.*|$1 = $2|" "$conf"
    else
        printf '%s = %s\n' "$1" "$2" >>"$conf"
    fi
}
setopt build-users-group ""
setopt sandbox false
setopt experimental-features nix-command
# No binary cache: tests build everything locally and must not need the network.
setopt substituters ""
