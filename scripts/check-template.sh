#!/usr/bin/env bash
# Offline checks of the SAM template: cfn-lint and `sam validate --lint` (each catches errors the
# other misses). No AWS account or credentials needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --sam >/dev/null
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
cfn-lint template.yaml
sam validate --lint --region us-east-1
echo "template checks passed"
