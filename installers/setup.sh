#!/usr/bin/env bash
# Quick start, command 1: set everything up in .venv/ and run the demo job end to end
# (backend on the built-in tiny model, inpaint + img2img + generate through the real socket).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/apt.sh"
. "$HERE/bootstrap.sh"
cd "$ROOT"
HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} latentbrush demo --out "$ROOT/demo-output"
