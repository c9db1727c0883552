#!/usr/bin/env bash
# The test command: installs what the tests need, starts one local moto server for the
# integration tests, and runs every test (unit, property, mock, integration, binaries). Every
# test binary runs even when an earlier one fails, and the closing line always comes: passed,
# failed and skipped counts, then each failed and each skipped test by name (tests over the
# shared real-manifest corpus skip themselves where it is absent, as in a user's clone).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

PORT="${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export MOTO_ENDPOINT
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT

LOG=.venv/test-output.log
export TEST_SKIPS_FILE="$PWD/.venv/test-skips.txt"
: > "$TEST_SKIPS_FILE"
status=0
# Arguments replace the default selection (e.g. `--test model`).
[ $# -gt 0 ] || set -- --lib --bins --tests
cargo test --no-fail-fast "$@" 2>&1 | tee "$LOG" || status=$?
python3 scripts/test_summary.py "$LOG" "$TEST_SKIPS_FILE" "$status" | tee .venv/test-summary.txt
exit "$status"
