#!/usr/bin/env bash
# Converge an inventory to a phase and check its health: deploy-dev.sh [PHASE] [INVENTORY]
set -euo pipefail
cd "$(dirname "$0")/.."
make venv
args=(--inventory "${2:-local}")
[ -n "${1:-}" ] && args+=(--phase "$1")
.venv/bin/invoke deploy-dev "${args[@]}"
