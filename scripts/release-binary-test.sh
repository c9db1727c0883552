#!/usr/bin/env bash
# The release `pruner` under a local Lambda Runtime API: the binary tests, including one audit
# line per deleted and would-be-deleted digest, run against it instead of the test build.
#
# After scripts/sam-build.sh (as in .ci/run) it tests the arm64 `bootstrap` SAM built, the very
# file the release bundle deploys, under qemu's user-mode emulator (Debian's qemu-user-static and
# libc6-arm64-cross; `scripts/setup.sh --qemu` installs them): no second release build. Without
# SAM's output, without qemu, or with --host, it builds and tests the host's release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bootstrap=.aws-sam/build/PrunerFunction/bootstrap
host=false
[ "${1:-}" = "--host" ] || [ ! -x "$bootstrap" ] && host=true
if ! $host; then
  stale="$(find src Cargo.toml Cargo.lock template.yaml -newer "$bootstrap" -print -quit)"
  [ -z "$stale" ] || {
    echo "release-binary-test: $stale is newer than $bootstrap: run scripts/sam-build.sh (or use --host)" >&2; exit 1; }
  scripts/setup.sh --qemu >/dev/null || {
    echo "release-binary-test: qemu unavailable, testing the host's release build instead"; host=true; }
fi
if $host; then
  scripts/setup.sh >/dev/null
  cargo build --release --locked --bin pruner
  export PRUNER_BINARY="${CARGO_TARGET_DIR:-$PWD/target}/release/pruner"
  echo "release-binary-test: the host's release build"
else
  export PRUNER_BINARY="$PWD/$bootstrap"
  export PRUNER_BINARY_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
  echo "release-binary-test: the arm64 bootstrap from sam build, under qemu-aarch64"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export MOTO_ENDPOINT
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT
cargo test --test lambda_binaries -- pruner_binary
