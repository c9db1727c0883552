#!/usr/bin/env bash
# The test command: installs what the tests need, starts one local moto server for the
# integration tests, and runs every test (unit, property, mock, integration, binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

PORT="${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export MOTO_ENDPOINT
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT

LOG=.venv/test-output.log
cargo test --lib --bins --tests "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
# One closing line over all test binaries.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG" | tee .venv/test-summary.txt
exit "$status"
