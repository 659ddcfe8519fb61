#!/usr/bin/env bash
# umount.sh NAME  -- unmount everything below the cached chroot NAME (trixie|sid), deepest first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || { echo "umount.sh: needs root" >&2; exit 2; }
lb_umount_under "$(lb_root "$1")"
