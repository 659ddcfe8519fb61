#!/usr/bin/env bash
# Quick start, command 2: run the whole test suite (unit, integration over loopback, real Krita e2e).
# Installs what it needs from nothing: .venv/ with the pinned torch, and krita + xvfb from Debian.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/apt.sh"
apt_install krita python3-pyqt5 xvfb xauth
. "$HERE/bootstrap.sh" dev
cd "$ROOT"
export HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
exec python -m pytest "$@"
