#!/usr/bin/env bash
# Starts a moto server on 127.0.0.1:PORT in the background (default 5000) and waits until it answers.
# Prints the endpoint. Stop it with: kill "$(cat .venv/moto-PORT.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-5000}"
PIDFILE=".venv/moto-$PORT.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "http://127.0.0.1:$PORT"; exit 0
fi
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" > ".venv/moto-$PORT.log" 2>&1 &
echo $! > "$PIDFILE"
for _ in $(seq 1 100); do
  if .venv/bin/python - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
  then echo "http://127.0.0.1:$PORT"; exit 0; fi
  sleep 0.2
done
echo "moto did not start; see .venv/moto-$PORT.log" >&2
exit 1
