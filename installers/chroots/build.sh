#!/usr/bin/env bash
# Build (or reuse) the newer-Debian chroots: build.sh [trixie] [sid]   (default: both, in parallel)
#   trixie: GIMP 3.0        sid: Krita 6 (experimental, PyQt6, Python 3.14) + GIMP 3.2
# Env: LB_CHROOT_BASE (default /var/cache/latentbrush/chroots), LB_MIRROR, LB_FRESH=1 (rebuild;
# the .deb cache is kept). Needs root and a reachable Debian mirror. Exit 0 when all are ready.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
export LB_T0=${LB_T0:-$(date +%s)}
[ "$(id -u)" = 0 ] || { echo "build.sh: needs root (debootstrap, mount, chroot)" >&2; exit 2; }
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(trixie sid)
mkdir -p "$LB_CHROOT_BASE"
exec 9>"$LB_CHROOT_BASE/.build.lock"
flock -w 1800 9 || { echo "build.sh: another build holds $LB_CHROOT_BASE/.build.lock" >&2; exit 1; }
lb_ensure_debootstrap
if [ "${LB_FRESH:-0}" = 1 ]; then
  for n in "${names[@]}"; do lb_umount_under "$(lb_root "$n")"; rm -f "$(lb_root "$n")/.latentbrush-ready"; done
fi
# The two builds are independent (own root, own .deb cache), and each is mostly waiting on the
# network or dpkg, so running them side by side saves about a minute.
pids=()
for n in "${names[@]}"; do lb_build "$n" & pids+=($!); done
rc=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { lb_log "${names[$i]}: build failed"; rc=1; }; done
exit $rc
