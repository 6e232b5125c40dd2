#!/usr/bin/env bash
# Tear the dev environment down in reverse: cleanup-dev.sh [INVENTORY] [--destroy-data]
set -euo pipefail
cd "$(dirname "$0")/.."
make venv
inventory="${1:-local}"
shift || true
.venv/bin/invoke cleanup-dev --inventory "$inventory" "$@"
