#!/usr/bin/env bash
# The release `pruner` under a local Lambda Runtime API: the binary tests, including one audit
# line per deleted and would-be-deleted digest, run against it instead of the test build.
#
# --arm64 (as .ci/run runs it, after scripts/sam-build.sh): the arm64 `bootstrap` SAM built, the
# very file the release bundle deploys, under qemu's user-mode emulator (Debian's
# qemu-user-static and libc6-arm64-cross; `scripts/setup.sh --qemu` installs them), so CI needs no
# second release build; it fails when that cannot be done. Without --arm64 it does the same when
# SAM's output and qemu are there, and otherwise builds and tests the host's release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bootstrap=.aws-sam/build/PrunerFunction/bootstrap
require_arm64=false
[ "${1:-}" = "--arm64" ] && require_arm64=true
arm64=false
if [ -x "$bootstrap" ]; then
  # sam-build.sh stamps the bootstrap after building: a source edited since means a stale build.
  stale="$(find src Cargo.toml Cargo.lock -newer "$bootstrap" -print -quit)"
  if [ -n "$stale" ]; then
    echo "release-binary-test: $stale is newer than $bootstrap: run scripts/sam-build.sh" >&2
    $require_arm64 && exit 1
  elif scripts/setup.sh --qemu >/dev/null; then
    arm64=true
  fi
fi
if $arm64; then
  export PRUNER_BINARY="$PWD/$bootstrap"
  # Absolute: the tests start the binary with a cleared environment (no PATH).
  PRUNER_BINARY_RUNNER="$(command -v qemu-aarch64-static) -L /usr/aarch64-linux-gnu"
  export PRUNER_BINARY_RUNNER
  echo "release-binary-test: the arm64 bootstrap from sam build, under qemu-aarch64"
elif $require_arm64; then
  echo "release-binary-test: --arm64 needs scripts/sam-build.sh's output and qemu (scripts/setup.sh --qemu)" >&2
  exit 1
else
  unset PRUNER_BINARY_RUNNER
  scripts/setup.sh >/dev/null
  cargo build --release --locked --bin pruner
  export PRUNER_BINARY="${CARGO_TARGET_DIR:-$PWD/target}/release/pruner"
  echo "release-binary-test: the host's release build"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export MOTO_ENDPOINT
MOTO_ENDPOINT="$(scripts/moto.sh "$PORT")"
trap 'kill "$(cat .venv/moto-'"$PORT"'.pid)" 2>/dev/null || true' EXIT
cargo test --test lambda_binaries -- pruner_binary
