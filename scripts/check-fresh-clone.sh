#!/usr/bin/env bash
# The README's test command as a user meets it: in a copy of the repository (what `git clone`
# gives, plus uncommitted work) placed in a folder of its own, so no `../shared` sits beside it
# and no `.venv` is inherited. It must pass, and the only tests it may skip are those over the
# shared real-manifest corpus (named in its closing line). The build is reused through
# CARGO_TARGET_DIR, so this costs the project's own crate, not the dependencies.
# Then the corpus tests run here, where CI has the corpus: together the two runs cover every test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CLONE="$WORK/ecr-cache-pruner"
mkdir "$CLONE"
# Tracked and untracked-but-not-ignored files that exist: a clone of this working tree.
git ls-files -z --cached --others --exclude-standard \
  | python3 -c 'import os, sys; sys.stdout.write("".join(p + "\0" for p in sys.stdin.read().split("\0") if p and os.path.isfile(p)))' \
  | tar --null -T - -cf - | tar -C "$CLONE" -xf -
[ ! -e "$WORK/shared" ] || { echo "fresh-clone: $WORK/shared exists" >&2; exit 1; }

echo "fresh-clone: scripts/test.sh in a clone with nothing beside it"
status=0
(cd "$CLONE" && env -u REAL_MANIFESTS_DIR -u MOTO_PORT scripts/test.sh) || status=$?
mkdir -p .venv
cp "$CLONE/.venv/test-summary.txt" .venv/fresh-clone-summary.txt 2>/dev/null || true
cp "$CLONE/.venv/test-output.log" .venv/fresh-clone-test-output.log 2>/dev/null || true
[ "$status" = 0 ] || {
  echo "fresh-clone: the README's test command failed in a fresh clone (exit $status; output kept in .venv/fresh-clone-test-output.log)" >&2
  exit 1; }

# What it skipped must be exactly the corpus tests: every test that asks for the corpus, nothing else.
expected="$(grep -ho '= corpus_or_skip() else' tests/*.rs | wc -l)"
skips="$CLONE/.venv/test-skips.txt"
unexpected="$(grep -v ': no real-manifest corpus$' "$skips" || true)"
[ -z "$unexpected" ] || { echo "fresh-clone: skipped for another reason:" >&2; echo "$unexpected" >&2; exit 1; }
skipped="$(sort -u "$skips" | grep -c . || true)"
[ "$skipped" -eq "$expected" ] || {
  echo "fresh-clone: $skipped tests skipped, expected the $expected corpus tests" >&2; exit 1; }
echo "fresh-clone: passed, skipping only the $skipped corpus tests"

# The corpus tests themselves, here (they must run, not skip, where the corpus is).
if [ -n "${REAL_MANIFESTS_DIR:-}" ] || [ -f ../shared/real-manifests/SOURCES.md ]; then
  scripts/test.sh --test real_manifests
  if grep -q . .venv/test-skips.txt; then
    echo "fresh-clone: the corpus is here, yet tests skipped:" >&2; cat .venv/test-skips.txt >&2; exit 1
  fi
else
  echo "fresh-clone: no real-manifest corpus beside this checkout either: its $expected tests did not run"
fi
