#!/usr/bin/env bash
# Deploy test (opt-in, offline): deploys template.yaml twice under two stack names into LocalStack
# (host mode, no Docker), routes sample events through the deployed rules, checks what reaches each
# stack's queue after the grace delay, and deletes both stacks; updates a 0.2.0 stack to this
# template and checks nothing stateful was replaced or lost; then deploys the release bundle
# built from `sam build`'s output with a plain `sam deploy`, Enter at every prompt and no cargo on
# PATH (scripts/deploy_test/bundle_deploy_test.py). See scripts/deploy_test/.
#
# Needs Python >= 3.13 (LocalStack 2026.3 uses 3.13-only stdlib) found as python3.13 or under
# pyenv; installs LocalStack into ./.venv-localstack once (about a minute, ~650 MB RSS running).
# Usage: scripts/deploy-test.sh [--if-available]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null

PYTHON="${LOCALSTACK_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.14 python3.13 "$HOME"/.pyenv/versions/3.1[3-9]*/bin/python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  # --if-available (CI): a machine without Python 3.13 skips the test, visibly.
  if [ "${1:-}" = "--if-available" ]; then
    echo "deploy-test: SKIPPED, no Python >= 3.13 on this machine"; exit 0
  fi
  echo "deploy-test: needs Python >= 3.13 (set LOCALSTACK_PYTHON)" >&2; exit 2
fi

VENV=.venv-localstack
# LocalStack's own pins, plus what its host mode imports that the wheel does not declare.
PACKAGES=("localstack-core[runtime]==2026.3.0" "cbor2<6" "pyopenssl<25" "cryptography<45"
          "joserfc<1.1" "service_identity==24.2.0")
if ! "$VENV/bin/python" -c 'import localstack, service_identity' 2>/dev/null; then
  echo "deploy-test: installing LocalStack into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
fi

PORT="${LOCALSTACK_PORT:-4566}"
DATA="$(mktemp -d)"
# DISABLE_EVENTS: no analytics (no network here; its shutdown hook would hang on it).
OVERRIDE_IN_DOCKER=0 GATEWAY_LISTEN="127.0.0.1:$PORT" LOCALSTACK_VOLUME_DIR="$DATA" DISABLE_EVENTS=1 \
SERVICES=cloudformation,lambda,sqs,events,scheduler,iam,logs,secretsmanager,cloudwatch,sts,s3,ssm,kms \
  "$VENV/bin/python" scripts/deploy_test/localstack_host.py > "$DATA/localstack.log" 2>&1 &
LOCALSTACK_PID=$!
stop() {
  kill "$LOCALSTACK_PID" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 "$LOCALSTACK_PID" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$LOCALSTACK_PID" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$PORT/_localstack/health" >/dev/null 2>&1; then break; fi
  kill -0 "$LOCALSTACK_PID" 2>/dev/null || { cat "$DATA/localstack.log" >&2; exit 1; }
  sleep 0.5
done
LOCALSTACK_ENDPOINT="http://127.0.0.1:$PORT" .venv/bin/python scripts/deploy_test/deploy_test.py
# A 0.2.0 stack updated to this template keeps its queues, messages, secret and log groups.
scripts/setup.sh --sam >/dev/null
# The CLI moves the webhook secret out of the retired parameter (built here if the tests did not).
cargo build --quiet --bin ecr-cache-pruner
ECR_CACHE_PRUNER_BIN="${CARGO_TARGET_DIR:-target}/debug/ecr-cache-pruner" \
LOCALSTACK_ENDPOINT="http://127.0.0.1:$PORT" .venv/bin/python scripts/deploy_test/upgrade_test.py

# The release bundle from `sam build`'s output, deployed by pressing Enter (no cargo on PATH).
if [ -f .aws-sam/build/template.yaml ]; then
  if [ template.yaml -nt .aws-sam/build/template.yaml ]; then
    echo "deploy-test: .aws-sam/build is older than template.yaml; run scripts/sam-build.sh" >&2; exit 1
  fi
  bundle="$(scripts/bundle.sh deploy-test "$DATA")"
  LOCALSTACK_ENDPOINT="http://127.0.0.1:$PORT" .venv/bin/python scripts/deploy_test/bundle_deploy_test.py "$bundle"
elif [ "${1:-}" = "--if-available" ]; then
  echo "deploy-test: bundle test SKIPPED, no sam build output (run scripts/sam-build.sh first)"
fi
