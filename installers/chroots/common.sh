#!/usr/bin/env bash
# Shared functions for the newer-Debian chroots (sourced, not run).
#
# The chroots hold hosts that Debian 12 does not ship: GIMP 3.0 (trixie), GIMP 3.2 and
# Krita 6 with PyQt6 / Python 3.14 (sid + experimental). They are cached under
# $LB_CHROOT_BASE so a later run on the same machine reuses them (about 1 min instead of 5).
# Everything here needs root. Notes and measurements: shared/research/newer_hosts.md.

LB_CHROOT_BASE=${LB_CHROOT_BASE:-/var/cache/latentbrush/chroots}
LB_MIRROR=${LB_MIRROR:-http://deb.debian.org/debian}
# Bumped when the way a chroot is set up changes, so cached chroots of an older layout are rebuilt.
LB_CHROOT_LAYOUT=1

# Packages per chroot. Changing a list rebuilds that chroot (the list is part of its ready marker).
# python3-websockets is deliberately absent: the plug-ins must work with the websockets they bundle.
lb_packages() {
  case "$1" in
    trixie) echo "gimp xvfb xauth xdotool" ;;
    sid) echo "krita python3-pyqt6 qt6-svg-plugins gimp xvfb xauth x11-apps xdotool" ;;
    *) echo "lb_packages: unknown chroot '$1' (trixie|sid)" >&2; return 2 ;;
  esac
}

lb_log() { printf '[chroots +%ss] %s\n' "$(( $(date +%s) - ${LB_T0:-$(date +%s)} ))" "$*" >&2; }

lb_root() { echo "$LB_CHROOT_BASE/$1"; }

lb_base_marker() { echo "layout=$LB_CHROOT_LAYOUT suite=$1 mirror=$LB_MIRROR"; }

lb_marker() {  # the text a ready chroot's marker must hold: line 1 the base, line 2 the packages
  lb_base_marker "$1"; echo "packages=$(lb_packages "$1")"
}

lb_is_ready() { [ -f "$(lb_root "$1")/.latentbrush-ready" ] && [ "$(cat "$(lb_root "$1")/.latentbrush-ready")" = "$(lb_marker "$1")" ]; }

lb_has_base() { [ -f "$(lb_root "$1")/.latentbrush-ready" ] && [ "$(head -1 "$(lb_root "$1")/.latentbrush-ready")" = "$(lb_base_marker "$1")" ]; }

lb_apt_install() {  # $1 = chroot root, $2 = log, rest = packages; apt-get update + install, bounded in time
  local R=$1 log=$2; shift 2
  { timeout -k 10 300 chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      apt-get update -qq &&
    timeout -k 10 1200 chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; } >>"$log" 2>&1
}

lb_umount_under() {  # unmount everything at or below $1, deepest first (also leftovers of a killed run)
  local r m
  r=$(readlink -f "$1") || return 0
  for m in $(awk -v r="$r" '$2==r || index($2, r"/")==1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}

lb_mount_system() {  # $1 = chroot root: proc, sys, dev, devpts, shm, and the shared .deb cache
  local R=$1 name
  name=$(basename "$R")
  mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
  mountpoint -q "$R/sys" || mount -t sysfs sysfs "$R/sys"
  if ! mountpoint -q "$R/dev"; then
    mount --bind /dev "$R/dev"
    mount --make-private "$R/dev"  # so the devpts/shm mounts below never propagate onto the host's /dev
  fi
  mountpoint -q "$R/dev/pts" || mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
  mountpoint -q "$R/dev/shm" || mount -t tmpfs -o mode=1777 shm "$R/dev/shm"  # Qt shared memory
  mkdir -p "$LB_CHROOT_BASE/debcache/$name/partial" "$R/var/cache/apt/archives"
  mountpoint -q "$R/var/cache/apt/archives" || mount --bind "$LB_CHROOT_BASE/debcache/$name" "$R/var/cache/apt/archives"
  cp -L /etc/resolv.conf "$R/etc/resolv.conf"
}

lb_bind() {  # $1 = host dir, $2 = chroot root, $3 = path inside, $4 = "ro" for read-only
  mkdir -p "$2$3"
  mount --bind "$1" "$2$3"
  mount --make-private "$2$3"
  if [ "${4:-}" = ro ]; then mount -o remount,bind,ro "$2$3"; fi
}

lb_in_chroot() {  # $1 = chroot root, rest = VAR=value... command...; always a clean environment
  local R=$1; shift
  chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

lb_free_display() {  # an X display number no X server on this machine uses (chroot or host)
  # Xvfb listens on the abstract socket @/tmp/.X11-unix/X<n>, which a chroot shares with the host
  # (same network namespace), so xvfb-run -a inside a chroot cannot see a host Xvfb's lock file.
  local n
  for n in $(seq "${1:-200}" 999); do
    grep -q "/tmp/.X11-unix/X$n\$" /proc/net/unix || [ -e "/tmp/.X$n-lock" ] || { echo "$n"; return 0; }
  done
  return 1
}

lb_ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  lb_log "installing debootstrap on the host"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

lb_build() {  # $1 = trixie|sid: reuse the cached chroot if its marker matches, else build it from nothing
  local name=$1 R suite pkgs log
  R=$(lb_root "$name"); suite=$name; pkgs=$(lb_packages "$name") || return 2
  log=$LB_CHROOT_BASE/build-$name.log
  lb_umount_under "$R"
  if lb_is_ready "$name"; then lb_log "$name: reusing $R"; return 0; fi
  if lb_has_base "$name"; then  # same chroot, only the package list grew: install the difference
    lb_log "$name: adding packages to $R: $pkgs"
    lb_mount_system "$R"
    # shellcheck disable=SC2086
    if ! lb_apt_install "$R" "$log" $pkgs; then
      tail -30 "$log" >&2; lb_umount_under "$R"; lb_log "$name: FAILED at step apt-get install"; return 1
    fi
    lb_umount_under "$R"; lb_marker "$name" >"$R/.latentbrush-ready"; lb_log "$name: ready"; return 0
  fi
  lb_log "$name: building $R (debootstrap $suite, then: $pkgs); log: $log"
  rm -rf --one-file-system "$R"
  mkdir -p "$LB_CHROOT_BASE/debcache/$name"
  if ! timeout -k 10 900 debootstrap --variant=minbase --cache-dir="$LB_CHROOT_BASE/debcache/$name" \
      "$suite" "$R" "$LB_MIRROR" >"$log" 2>&1; then
    tail -20 "$log" >&2; lb_log "$name: FAILED at step debootstrap"; return 1
  fi
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"  # no daemons
  # The mirror may serve a frozen snapshot whose Release files are past Valid-Until; debootstrap
  # does not check that but apt does ("Release file ... is expired"), so switch the check off.
  echo 'Acquire::Check-Valid-Until "false";' >"$R/etc/apt/apt.conf.d/99latentbrush-no-valid-until"
  echo 'Acquire::Retries "3";' >"$R/etc/apt/apt.conf.d/99latentbrush-retries"
  if [ "$suite" = sid ]; then
    # Krita 6 is only in experimental; pin just krita there, so the rest stays plain sid
    # (apt -t experimental would also pull experimental harfbuzz, libpq, sdl3, ...).
    echo "deb $LB_MIRROR experimental main" >"$R/etc/apt/sources.list.d/experimental.list"
    printf 'Package: krita krita-data krita-l10n\nPin: release a=experimental\nPin-Priority: 990\n' \
      >"$R/etc/apt/preferences.d/krita-experimental"
  fi
  lb_mount_system "$R"
  # shellcheck disable=SC2086
  if ! lb_apt_install "$R" "$log" $pkgs; then
    tail -30 "$log" >&2; lb_umount_under "$R"; lb_log "$name: FAILED at step apt-get install"; return 1
  fi
  # shellcheck disable=SC2086
  lb_in_chroot "$R" dpkg-query -W -f '  ${Package} ${Version}\n' $pkgs python3 >&2 || true
  if [ "$suite" = sid ]; then
    case "$(lb_in_chroot "$R" dpkg-query -W -f '${Version}' krita)" in
      1:6.*) ;;
      *) lb_umount_under "$R"; lb_log "sid: FAILED: krita is not 6.x (did experimental move on?)"; return 1 ;;
    esac
  fi
  lb_umount_under "$R"
  lb_marker "$name" >"$R/.latentbrush-ready"
  lb_log "$name: ready ($(du -sxh "$R" | cut -f1))"
}
