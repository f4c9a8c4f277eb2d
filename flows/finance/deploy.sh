#!/usr/bin/env bash
# Kept for habit: the old per-folder deploy.sh. It runs the deployer on this folder, from any
# folder: the deployer is $DEPLOYER, else `deployer` on PATH, else the nearest .venv/bin/deployer
# above this folder; it reads the nearest local.settings.json above this folder.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deployer="${DEPLOYER:-}"
if [ -z "$deployer" ] && command -v deployer >/dev/null 2>&1; then
  deployer=deployer
fi
dir="$here"
while [ -z "$deployer" ] && [ "$dir" != "/" ]; do
  if [ -x "$dir/.venv/bin/deployer" ]; then deployer="$dir/.venv/bin/deployer"; fi
  dir="$(dirname "$dir")"
done
if [ -z "$deployer" ]; then
  echo "deploy.sh: no deployer found: set DEPLOYER, put deployer on PATH, or run make setup" >&2
  exit 1
fi
cd "$here"
exec "$deployer" deploy "$here" "$@"
