#!/usr/bin/env bash
# The release's Lambda bundle from `sam build`'s output (.aws-sam/build): the built template, both
# arm64 bootstraps, samconfig.toml, the README and docs/ (every relative link resolves inside the
# bundle: scripts/check-bundle.sh) and the sample events/ the runbook sends to the function, as DIR/ecr-cache-pruner-TAG-sam-arm64.tar.gz
# with its .sha256. It deploys with `sam deploy` alone: no Rust toolchain, no build step
# (scripts/deploy_test/bundle_deploy_test.py proves it in CI).
# Usage: scripts/bundle.sh TAG DIR   (after scripts/sam-build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:?usage: scripts/bundle.sh TAG DIR}"
DIR="${2:?usage: scripts/bundle.sh TAG DIR}"
[ -f .aws-sam/build/template.yaml ] || { echo "bundle: run scripts/sam-build.sh first" >&2; exit 1; }
for f in PrunerFunction/bootstrap WebhookFunction/bootstrap; do
  [ -x ".aws-sam/build/$f" ] || { echo "bundle: .aws-sam/build/$f missing" >&2; exit 1; }
done
mkdir -p "$DIR"
cp LICENSE README.md CHANGELOG.md BENCHMARKS.md .aws-sam/build/
rm -rf .aws-sam/build/docs .aws-sam/build/events
cp -R docs events .aws-sam/build/
# The bundle's samconfig.toml deploys the built template in place (`sam deploy` in the unpacked
# folder): the source tree's `sam build` settings do not apply there.
cp samconfig.toml .aws-sam/build/samconfig.toml
name="ecr-cache-pruner-${TAG}-sam-arm64"
tar -C .aws-sam -czf "$DIR/${name}.tar.gz" build
(cd "$DIR" && sha256sum -- "${name}.tar.gz" > "${name}.sha256")
echo "$DIR/${name}.tar.gz"
