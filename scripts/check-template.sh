#!/usr/bin/env bash
# Offline checks of the SAM template: cfn-lint and `sam validate --lint` (each catches errors the
# other misses), then checks over the SAM-transformed template for faults both pass (IAM scopes,
# names that collide across stacks, patterns EventBridge refuses) and the rule patterns against
# every sample event. No AWS account or credentials needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --sam >/dev/null
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
cfn-lint template.yaml
sam validate --lint --region us-east-1
python scripts/check_template_rules.py
echo "template checks passed"
