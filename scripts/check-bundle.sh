#!/usr/bin/env bash
# The release bundle (scripts/bundle.sh, after scripts/sam-build.sh) carries what its README and
# docs send a user to: every relative link in the unpacked bundle's Markdown resolves inside it
# (docs/, events/ for the runbook's `fileb://events/...`), and its samconfig.toml takes the
# documented edits. Also checks the source tree's links.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check_links.py .
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
bundle="$(scripts/bundle.sh check "$WORK")"
mkdir "$WORK/unpacked"
tar -C "$WORK/unpacked" -xzf "$bundle"
python3 scripts/check_links.py "$WORK/unpacked/build"
for f in template.yaml samconfig.toml README.md docs/operations.md events/scheduled-event.json \
         PrunerFunction/bootstrap WebhookFunction/bootstrap; do
  [ -e "$WORK/unpacked/build/$f" ] || { echo "bundle: $f missing" >&2; exit 1; }
done
echo "bundle: $(basename "$bundle") carries the docs, the events and both functions"
