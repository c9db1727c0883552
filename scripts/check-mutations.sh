#!/usr/bin/env bash
# Runs scripts/check-model-catches.py with its own moto server: every mutation (a safety rule or a
# time-and-state guard removed) must make a test fail. About 6 minutes on 2 cores, incremental.
# Arguments go to the script (`--only SUBSTRING`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export MOTO_ENDPOINT
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT
python3 scripts/check-model-catches.py "$@" | tee .venv/mutations.md
