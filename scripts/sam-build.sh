#!/usr/bin/env bash
# `sam build` exactly as a user runs it before `sam deploy`, then checks that both functions were
# built as arm64 Lambda `bootstrap` executables. Needs no AWS account.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --sam >/dev/null
# SAM's rust-cargolambda build runs cargo-lambda, whose cross-compiler (zig) must be importable by
# the first python on PATH: the project's .venv has both.
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
sam build --beta-features
for fn in PrunerFunction WebhookFunction; do
  bootstrap=".aws-sam/build/$fn/bootstrap"
  [ -x "$bootstrap" ] || { echo "missing $bootstrap" >&2; exit 1; }
  # ELF header: e_machine at offset 18 is 0xB7 (183) for AArch64.
  machine=$(od -An -tu2 -j18 -N2 "$bootstrap" | tr -d ' ')
  [ "$machine" = "183" ] || { echo "$bootstrap is not an arm64 executable (e_machine=$machine)" >&2; exit 1; }
  echo "$fn: arm64 bootstrap, $(stat -c %s "$bootstrap") bytes"
  # SAM copies the file with its build time; stamp it now, so a later freshness check
  # (scripts/release-binary-test.sh) sees this build as newer than the sources it was made from.
  touch "$bootstrap"
done
