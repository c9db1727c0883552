#!/usr/bin/env bash
# The release `pruner` (as `cargo build --release` makes it) under a local Lambda Runtime API:
# the binary tests, including one audit line per deleted and would-be-deleted digest, run against
# it instead of the test build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --locked --bin pruner
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export MOTO_ENDPOINT PRUNER_BINARY="${CARGO_TARGET_DIR:-$PWD/target}/release/pruner"
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT
cargo test --test lambda_binaries -- pruner_binary
