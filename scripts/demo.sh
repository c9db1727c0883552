#!/usr/bin/env bash
# Local demo, no AWS account needed: starts moto (local AWS), seeds an ECR repository the way CI
# leaves it, runs the real `pruner` Lambda under `cargo lambda watch`, invokes it with
# events/ecr-push-cache.json and shows the repository before and after, with what the pruner
# reported: what it deleted and why, what it kept and why, the storage it freed, its audit lines.
# It deletes the stale cache manifests (the product's job); DRY_RUN=true only reports.
#
# `scripts/demo.sh cli`: the operator CLI instead. Seeds a dozen repositories, then runs
# `ecr-cache-pruner plan`, `report` and `report --html` against them and shows their output.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-lambda}"
case "$mode" in
  lambda) scripts/setup.sh --lambda ;;
  cli) scripts/setup.sh ;;
  *) echo "usage: scripts/demo.sh [cli]" >&2; exit 2 ;;
esac
export PATH="$PWD/.venv/bin:$PATH"

MOTO_PORT="${MOTO_PORT:-5055}"
RUNTIME_PORT="${RUNTIME_PORT:-9055}"
export AWS_ENDPOINT_URL="$(scripts/moto.sh "$MOTO_PORT")"
# AWS_REGION alone, as the README's by-hand section sets it: the SDK and the seed scripts read it.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
unset AWS_DEFAULT_REGION AWS_PROFILE
export DRY_RUN="${DRY_RUN:-false}" ESTIMATE_RECLAIMED_BYTES=true
WATCH_LOG=.venv/cargo-lambda-watch.log

cleanup() {
  [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null || true
  # Wait for moto to be gone: the next demo on the same port must start its own, not find this
  # one still exiting.
  local pid
  pid="$(cat ".venv/moto-$MOTO_PORT.pid" 2>/dev/null)" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f ".venv/moto-$MOTO_PORT.pid"
}
trap cleanup EXIT

curl -fsS -X POST "$AWS_ENDPOINT_URL/moto-api/reset" >/dev/null
python_bin=.venv/bin/python

if [ "$mode" = cli ]; then
  echo "== building the ecr-cache-pruner CLI"
  cargo build --quiet --locked --bin ecr-cache-pruner
  cli="${CARGO_TARGET_DIR:-target}/debug/ecr-cache-pruner"
  echo "== seeding a dozen repositories acme/* the way CI leaves them"
  $python_bin scripts/seed_report_demo.py acme
  run() { echo; echo "\$ ecr-cache-pruner $*"; "$cli" "$@"; }
  # The rules the CLI judges by are this shell's (docs/reference.md#cli).
  run plan --repository acme/checkout-api
  run report --repositories 'acme/*'
  run report --repositories 'acme/*' --html .venv/report.html
  [ -s .venv/report.html ] || { echo "demo: no report page written" >&2; exit 1; }
  echo
  echo "(the page: .venv/report.html, one self-contained file; nothing was deleted: plan and report only read)"
  exit 0
fi
$python_bin scripts/seed_demo.py seed my-app
echo "== my-app before: what three builds of main, a feature branch and a release left behind"
$python_bin scripts/seed_demo.py show my-app

echo "== starting the pruner under cargo lambda watch (first build takes a few minutes)"
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$RUNTIME_PORT" > "$WATCH_LOG" 2>&1 &
WATCH_PID=$!
# Ready when the runtime's port accepts a connection (an HTTP request to it would be logged as
# an invocation error).
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$RUNTIME_PORT") 2>/dev/null && break
  kill -0 "$WATCH_PID" 2>/dev/null || { cat "$WATCH_LOG"; exit 1; }
  sleep 1
done

echo "== invoking pruner with events/ecr-push-cache.json (a push of cache-main)"
cargo lambda invoke pruner --invoke-address 127.0.0.1 --invoke-port "$RUNTIME_PORT" \
  --data-file events/ecr-push-cache.json --output-format json > .venv/demo-report.json
$python_bin scripts/seed_demo.py report .venv/demo-report.json "$WATCH_LOG"
echo "== my-app after"
$python_bin scripts/seed_demo.py show my-app
echo "(full report: .venv/demo-report.json, function logs: $WATCH_LOG)"
# The demo is also CI's check that the README's first command works: the function must not have
# logged an error doing it.
if grep -q " ERROR " "$WATCH_LOG"; then
  echo "demo: the function logged errors:" >&2; grep " ERROR " "$WATCH_LOG" >&2; exit 1
fi
