#!/usr/bin/env bash
# Creates or reuses .venv/ in the repository root and installs latentbrush with its backend.
# Sourced by setup.sh and test.sh; idempotent (a second run only checks what is there).
#
# LATENTBRUSH_TORCH overrides the torch requirement, e.g. for ROCm or a CPU-only wheel:
#   LATENTBRUSH_TORCH="torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
TORCH_SPEC=${LATENTBRUSH_TORCH:-"torch==2.14.1 torchvision==0.29.1"}

log() { printf '[latentbrush] %s\n' "$*" >&2; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  log "Python 3.10 or newer is needed (found: $("$PY" --version 2>&1 || echo none))"; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    log "python3 -m venv failed; installing python3-venv"
    apt_install python3-venv
    "$PY" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp="$VENV/.latentbrush-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" | sha256sum | cut -c1-16) $TORCH_SPEC ${1:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "reusing $VENV"
else
  log "installing into $VENV (torch: $TORCH_SPEC)"
  "${PIP[@]}" install --upgrade pip
  # torch first and pinned: an unpinned requirement would pull a multi-GB build of another version
  # shellcheck disable=SC2086
  "${PIP[@]}" install $TORCH_SPEC
  "${PIP[@]}" install -e "$ROOT[backend${1:+,$1}]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
