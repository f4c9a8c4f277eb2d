#!/usr/bin/env bash
# Kept for habit: the old per-folder deploy.sh. It runs the deployer on this folder.
# Set DEPLOYER to the deployer command if it is not on PATH (e.g. ../../.venv/bin/deployer).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${DEPLOYER:-deployer}" deploy "$here" "$@"
