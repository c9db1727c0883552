#!/usr/bin/env bash
# The report page in a real browser: seeds a dozen repositories in a fresh moto, writes
# `ecr-cache-pruner report --html`, renders it in headless Chromium (Debian's package) and fails
# unless the screenshot shows the page: text, the chart's stale and live bars, not a blank or
# error page. With --update-docs the screenshot becomes docs/report.png (shown in the README).
set -euo pipefail
cd "$(dirname "$0")/.."
update_docs=false
[ "${1:-}" = "--update-docs" ] && update_docs=true
scripts/setup.sh --browser

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d)"
cleanup() { kill "$(cat ".venv/moto-$PORT.pid")" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export AWS_ENDPOINT_URL="$(scripts/moto.sh "$PORT")"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=report AWS_SECRET_ACCESS_KEY=report

.venv/bin/python scripts/seed_report_demo.py acme
cargo build --quiet --bin ecr-cache-pruner
"${CARGO_TARGET_DIR:-target}/debug/ecr-cache-pruner" report --repositories 'acme/*' --html "$WORK/report.html" > "$WORK/table.txt"
cat "$WORK/table.txt"

# No network from the page: Chromium runs with networking features off, and the page must not
# need any (the check below fails on a page that lacks its chart or text).
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$WORK/profile" --hide-scrollbars --window-size=1280,1100 \
  --screenshot="$WORK/report.png" "file://$WORK/report.html" >"$WORK/chromium.log" 2>&1 \
  || { cat "$WORK/chromium.log"; exit 1; }

.venv/bin/python - "$WORK/report.png" <<'PY'
import sys
from PIL import Image

image = Image.open(sys.argv[1]).convert("RGB")
width, height = image.size
pixels = list(image.getdata())

def near(colour, rgb, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, rgb))

stale = sum(near(p, (0xE4, 0x57, 0x2E)) for p in pixels)
live = sum(near(p, (0x4C, 0x78, 0xA8)) for p in pixels)
dark = sum(max(p) < 90 for p in pixels)
painted = sum(p != (255, 255, 255) for p in pixels)
print(f"screenshot {width}x{height}: {painted} painted pixels, {dark} text-dark, "
      f"{stale} stale-bar, {live} live-bar")
problems = []
if painted < 0.05 * width * height:
    problems.append("the page is (nearly) blank")
if dark < 2000:
    problems.append("no text to speak of")
if stale < 5000:
    problems.append("no stale bars in the chart")
if live < 500:
    problems.append("no live-cache bars in the chart")
if problems:
    sys.exit("report page check failed: " + "; ".join(problems))
print("report page check: ok")
PY

if $update_docs; then
  cp "$WORK/report.png" docs/report.png
  echo "docs/report.png updated"
fi
