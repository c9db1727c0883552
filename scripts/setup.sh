#!/usr/bin/env bash
# Installs the project's local tooling into ./.venv, idempotently:
#   moto (the local AWS emulator) always; cargo-lambda with --lambda; SAM, cfn-lint and pexpect
#   (drives `sam deploy` at its prompts in the deploy test) with --sam;
#   the GitHub workflow linters (check-jsonschema, zizmor) with --workflows; Debian's chromium
#   (headless, for the report page's check; apt as root or through sudo) and Pillow with --browser;
#   Debian's qemu-user-static and libc6-arm64-cross (runs the arm64 release bootstrap in the
#   release-binary test) with --qemu.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
MOTO="moto[server]==5.2.1"
CARGO_LAMBDA="cargo-lambda==1.9.2"
SAM="aws-sam-cli==1.170.0"
CFN_LINT="cfn-lint==1.58.0"
CHECK_JSONSCHEMA="check-jsonschema==0.39.0"
ZIZMOR="zizmor==1.32.0"
PILLOW="pillow==11.3.0"
PEXPECT="pexpect==4.9.0"

want_lambda=false
want_sam=false
want_workflows=false
want_browser=false
want_qemu=false
for arg in "$@"; do
  case "$arg" in
    --lambda) want_lambda=true ;;
    --sam) want_sam=true; want_lambda=true ;;
    --workflows) want_workflows=true ;;
    --browser) want_browser=true ;;
    --qemu) want_qemu=true ;;
    *) echo "usage: $0 [--lambda] [--sam] [--workflows] [--browser] [--qemu]" >&2; exit 2 ;;
  esac
done

# Debian packages, as root or through passwordless sudo (CI runners); fails when neither works.
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || return 1
    sudo="sudo -n"
  fi
  command -v apt-get >/dev/null || return 1
  echo "setup: installing $* (Debian packages)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

for tool in cargo rustfmt; do
  command -v "$tool" >/dev/null || { echo "setup: $tool not found; install Rust with rustup first" >&2; exit 1; }
done
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy rustfmt

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi

missing=()
"$VENV/bin/python" -c "import moto.server, flask" 2>/dev/null && [ -x "$VENV/bin/moto_server" ] || missing+=("$MOTO")
if $want_lambda; then
  [ -x "$VENV/bin/cargo-lambda" ] || missing+=("$CARGO_LAMBDA")
fi
if $want_sam; then
  [ -x "$VENV/bin/sam" ] || missing+=("$SAM")
  [ -x "$VENV/bin/cfn-lint" ] || missing+=("$CFN_LINT")
  "$VENV/bin/python" -c "import pexpect" 2>/dev/null || missing+=("$PEXPECT")
fi
if $want_workflows; then
  [ -x "$VENV/bin/check-jsonschema" ] || missing+=("$CHECK_JSONSCHEMA")
  [ -x "$VENV/bin/zizmor" ] || missing+=("$ZIZMOR")
fi
if $want_browser; then
  "$VENV/bin/python" -c "import PIL" 2>/dev/null || missing+=("$PILLOW")
  if ! command -v chromium >/dev/null; then
    apt_install chromium || { echo "setup: chromium not found; install it (Debian: apt-get install chromium)" >&2; exit 1; }
  fi
fi

if $want_qemu && { ! command -v qemu-aarch64-static >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; }; then
  apt_install qemu-user-static libc6-arm64-cross || {
    echo "setup: qemu-aarch64-static not found; install it (Debian: apt-get install qemu-user-static libc6-arm64-cross)" >&2; exit 1; }
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
fi
echo "setup: tools ready in $VENV/bin"
