#!/usr/bin/env bash
# For people without invoke on their PATH: venv, install, local services, phase 1, health.
set -euo pipefail
cd "$(dirname "$0")/.."
make setup-dev INVENTORY="${1:-local}"
