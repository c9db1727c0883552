#!/usr/bin/env bash
# Offline checks of the release plumbing: the GitHub workflows against GitHub's schema
# (check-jsonschema's vendored copy) and zizmor's security audits (pinned actions, no template
# injection, least-privilege tokens), and the release consistency check (versions, LICENSE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --workflows >/dev/null
.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
.venv/bin/zizmor --offline --no-progress .github/workflows/
.venv/bin/python scripts/check-release.py --self-test
.venv/bin/python scripts/check-release.py
echo "workflow checks passed"
