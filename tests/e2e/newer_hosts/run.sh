#!/usr/bin/env bash
# End-to-end tests of latentbrush in hosts Debian 12 does not ship, each in a cached debootstrap
# chroot (installers/chroots): Krita 6 (sid + experimental: PyQt6, Python 3.14), GIMP 3.2 (sid)
# and GIMP 3.0 (trixie). The backend runs on this machine on the built-in tiny model; the chroots
# share its network namespace, so the plug-ins reach it on 127.0.0.1.
#
# usage: run.sh [gimp30] [gimp32] [krita6]        (default: all three)
# env:   LB_E2E_OUT     outputs (logs, reports, PNGs; default /tmp/latentbrush-newer-hosts)
#        LB_PYTHON      Python with latentbrush + backend installed (default: the repo's .venv)
#        LB_CHROOT_BASE chroot cache (default /var/cache/latentbrush/chroots); LB_FRESH=1 rebuilds
#        LB_E2E_STEPS   denoising steps per job (default 4)
#        LATENTBRUSH_UPDATE_SCREENSHOTS=1  copy the screenshots to docs/images/{krita6,gimp3}.png
# Needs root and a reachable Debian mirror the first time (about 2-3 min to build the chroots).
# Exit 0 only when every target passed; a failure prints "FAIL: <host>: <step>" and the log tail.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
. "$ROOT/installers/chroots/common.sh"
export LB_T0=$(date +%s)
OUT=${LB_E2E_OUT:-/tmp/latentbrush-newer-hosts}
PY=${LB_PYTHON:-$ROOT/.venv/bin/python}
STEPS=${LB_E2E_STEPS:-4}
TARGETS=" ${*:-gimp30 gimp32 krita6} "
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (chroot, mount)" >&2; exit 2; }

BACKEND_PID=
FAILED=()
cleanup() {
  if [ -n "$BACKEND_PID" ]; then kill "$BACKEND_PID" 2>/dev/null || true; wait "$BACKEND_PID" 2>/dev/null || true; fi
  for name in trixie sid; do lb_umount_under "$(lb_root "$name")"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {  # $1 = host, $2 = step, $3 = log file
  FAILED+=("$1")
  echo "FAIL: $1: $2 (log: $3)"
  [ -f "$3" ] && grep -vE 'Gtk-WARNING|^\s*$|Glycin|wire_read|Binding loop|QML' "$3" | tail -25 | sed 's/^/    /'
  return 0
}
wants() { [[ "$TARGETS" == *" $1 "* ]]; }

# ------------------------------------------------------------------------------------ backend
# started first: it loads torch while the chroots are built or checked
case "$OUT" in /*/*) ;; *) echo "run.sh: LB_E2E_OUT must be an absolute path below a folder, not '$OUT'" >&2; exit 2 ;; esac
rm -rf "$OUT"; mkdir -p "$OUT"
lb_log "== backend: $PY -m latentbrush.backend (tiny model)"
HF_HUB_OFFLINE=1 "$PY" -m latentbrush.backend --port 0 --token-file "$OUT/token" \
  >"$OUT/backend.stdout" 2>"$OUT/backend.log" &
BACKEND_PID=$!

# ------------------------------------------------------------------------------------ chroots
needed=()
wants gimp30 && needed+=(trixie)
{ wants gimp32 || wants krita6; } && needed+=(sid)
lb_log "== chroots: ${needed[*]} (cache $LB_CHROOT_BASE)"
if ! "$ROOT/installers/chroots/build.sh" "${needed[@]}"; then
  echo "FAIL: chroots: build (logs: $LB_CHROOT_BASE/build-*.log)"; exit 1
fi

URL=
for _ in $(seq 1 240); do
  URL=$(sed -n 's/^latentbrush-server listening on \(ws:\/\/.*\)$/\1/p' "$OUT/backend.stdout" | head -1)
  [ -n "$URL" ] && break
  kill -0 "$BACKEND_PID" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$URL" ]; then fail backend "start (no 'listening on' line within 120 s)" "$OUT/backend.log"; exit 1; fi
lb_log "backend listening on $URL"

mount_for_tests() {  # $1 = chroot name: system mounts, the repo (read-only) and the outputs at their own paths
  local R; R=$(lb_root "$1")
  lb_mount_system "$R"
  # a fresh /tmp per run: no X lock files, sockets or Krita lock files left over from an earlier run
  mountpoint -q "$R/tmp" || mount -t tmpfs -o mode=1777 lbtmp "$R/tmp"
  # same paths inside and out, so reports written in the chroot name files the host can open
  mountpoint -q "$R$ROOT" || lb_bind "$ROOT" "$R" "$ROOT" ro
  mountpoint -q "$R$OUT" || lb_bind "$OUT" "$R" "$OUT"
}

in_test_chroot() {  # $1 = chroot name, $2 = out subfolder (HOME and E2E_OUT), rest = command
  local name=$1 sub=$2; shift 2
  lb_in_chroot "$(lb_root "$name")" HOME="$OUT/$sub/home" E2E_OUT="$OUT/$sub" E2E_STEPS="$STEPS" E2E_TOOLS="$HERE" \
    LATENTBRUSH_SERVER="$URL" LATENTBRUSH_TOKEN_FILE="$OUT/token" "$@"
}

# ------------------------------------------------------------------------------------ GIMP
run_gimp() {  # $1 = target, $2 = chroot, $3 = GIMP version, $4 = gui|console, $5 = shot (screenshot too)
  local target=$1 chroot=$2 version=$3 mode=$4 shot=${5:-} log rc=0 t
  log="$OUT/$target/gimp.log"; t=$(date +%s)
  mkdir -p "$OUT/$target/home"
  lb_log "== $target: GIMP $version ($mode) in $chroot"
  if ! "$PY" "$ROOT/installers/gimp_install.py" --config-dir "$OUT/$target/home/.config/GIMP" --version "$version" \
      >"$OUT/$target/install.log" 2>&1; then
    fail "$target" "install (installers/gimp_install.py)" "$OUT/$target/install.log"; return
  fi
  # no "Welcome" dialog over the canvas (GUI runs take the screenshot)
  printf '(show-welcome-dialog no)\n' >"$OUT/$target/home/.config/GIMP/$version/gimprc"
  mount_for_tests "$chroot"
  local batch=(--batch-interpreter=python-fu-eval -b "exec(open('$HERE/gimp_scenario.py').read())")
  if [ "$mode" = gui ]; then
    # GUI under Xvfb: real displays, and Ctrl+Z sent with xdotool checks the undo steps
    in_test_chroot "$chroot" "$target" E2E_GUI=1 E2E_SCREENSHOT="$([ "$shot" = shot ] && echo 1)" timeout -k 10 300 \
      xvfb-run -n "$(lb_free_display)" -s "-screen 0 1440x900x24" "gimp-$version" --no-splash --quit "${batch[@]}" >"$log" 2>&1 || rc=$?
  else
    in_test_chroot "$chroot" "$target" timeout -k 10 300 \
      "gimp-console-$version" -i --quit "${batch[@]}" >"$log" 2>&1 || rc=$?
  fi
  lb_log "$target: GIMP exit $rc after $(( $(date +%s) - t ))s"
  grep -E '^\[gimp-e2e' "$log" | sed 's/^/    /' || true
  if [ "$rc" != 0 ] || ! grep -q 'ALL STEPS PASSED' "$log"; then
    local where
    where=$(grep -oE 'step [a-z0-9_]+: .*' "$log" | tail -1 || true)
    [ -n "$where" ] || where=$(grep -E '^[A-Za-z.]*(Error|Exception|Failed)\b' "$log" | tail -1 || true)
    fail "$target" "${where:-GIMP exited $rc before the scenario finished}" "$log"; return
  fi
  if ! "$PY" "$HERE/check_outputs.py" gimp "$OUT/$target" >>"$log" 2>&1; then
    fail "$target" "output check (check_outputs.py)" "$log"; return
  fi
  echo "PASS: $target (GIMP $version, $(( $(date +%s) - t ))s)"
}

wants gimp30 && run_gimp gimp30 trixie 3.0 gui
wants gimp32 && run_gimp gimp32 sid 3.2 gui ${LB_NOSHOT:-shot}

# ------------------------------------------------------------------------------------ Krita 6
run_krita6() {  # the Krita 5 e2e (tests/e2e/krita) with Krita 6 in the sid chroot: krita6_driver.py
  local log="$OUT/krita6/driver.log" rc=0 t version
  t=$(date +%s); mkdir -p "$OUT/krita6"
  version=$(lb_in_chroot "$(lb_root sid)" dpkg-query -W -f '${Version}' krita)
  lb_log "== krita6: Krita $version in sid"
  case "$version" in 1:6.*) ;; *) fail krita6 "version check: krita in the sid chroot is $version, not 6.x" ""; return ;; esac
  mount_for_tests sid
  LB_XVFB_DISPLAY=$(lb_free_display) timeout -k 10 900 \
    "$PY" "$HERE/krita6_driver.py" "$(lb_root sid)" "$OUT/krita6" "$URL" "$OUT/token" \
    >"$log" 2>&1 || rc=$?
  lb_log "krita6: driver exit $rc after $(( $(date +%s) - t ))s"
  grep -E '^\[krita6\]' "$log" | sed 's/^/    /' || true
  if [ "$rc" != 0 ]; then
    local where
    where=$(grep -E '^\[krita6\] .*FAILED' "$log" | head -1 || true)
    fail krita6 "${where:-krita6_driver.py exited $rc}" "$log"; return
  fi
  if ! "$PY" "$HERE/check_outputs.py" krita6 "$OUT/krita6" >>"$log" 2>&1; then
    fail krita6 "output check (check_outputs.py)" "$log"; return
  fi
  echo "PASS: krita6 (Krita $version, $(( $(date +%s) - t ))s)"
}
wants krita6 && run_krita6

if [ "${LATENTBRUSH_UPDATE_SCREENSHOTS:-0}" = 1 ]; then
  mkdir -p "$ROOT/docs/images"
  for pair in "krita6/screenshot.png:krita6.png" "gimp32/screenshot.png:gimp3.png" "gimp32/dialog.png:gimp3-dialog.png"; do
    [ -f "$OUT/${pair%%:*}" ] && cp "$OUT/${pair%%:*}" "$ROOT/docs/images/${pair##*:}" && lb_log "docs/images/${pair##*:} updated"
  done
fi

cleanup; BACKEND_PID=; trap - EXIT
lb_log "== total $(( $(date +%s) - LB_T0 ))s"
if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED: ${FAILED[*]}"; exit 1; fi
echo "ALL PASSED:$TARGETS"
