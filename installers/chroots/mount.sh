#!/usr/bin/env bash
# mount.sh NAME [HOSTDIR:INSIDE[:ro]]...  -- mount proc/sys/dev/devpts/shm and the .deb cache into the
# cached chroot NAME (trixie|sid), plus bind mounts of host folders. Undo with umount.sh NAME.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || { echo "mount.sh: needs root" >&2; exit 2; }
R=$(lb_root "$1"); shift
lb_is_ready "$(basename "$R")" || { echo "mount.sh: $R is not built (run build.sh)" >&2; exit 1; }
lb_mount_system "$R"
for spec in "$@"; do
  IFS=: read -r src dst mode <<<"$spec"
  mountpoint -q "$R$dst" || lb_bind "$src" "$R" "$dst" "${mode:-rw}"
done
