"""Seeds a local (moto) ECR registry with a dozen repositories the way months of buildx builds with
`--cache-to type=registry,mode=max` leave them: a cache tag per branch, the superseded cache
manifests of every push untagged, an application image or two. For the report's screenshot and
its browser check.

usage: seed_report_demo.py PREFIX
Endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL, ...).

moto reports a manifest's `config.size` as its imageSizeInBytes, where ECR reports the size of
its layers: the seeded cache configs carry the size ECR would report, so the page shows the
numbers a real registry would.
"""
import hashlib
import json
import os
import random
import sys

import boto3

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
MB = 1024 * 1024


def sha(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def cache_manifest(seed, size):
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(f"{seed}-layer-{i}"),
               "size": size // 3} for i in range(3)]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CACHE_CONFIG, "digest": sha(seed + "-config"), "size": size},
                       "layers": layers}, separators=(",", ":"))
    return body, sha(body)


def main():
    prefix = sys.argv[1]
    # boto3 reads AWS_DEFAULT_REGION only; the README's commands set AWS_REGION (the SDKs' name).
    ecr = boto3.client("ecr", region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    rng = random.Random(7)
    services = ["checkout-api", "payments", "search-indexer", "web-frontend", "auth", "notifications",
                "billing-worker", "catalog", "mobile-bff", "ml-features", "docs-site", "infra-tools"]
    branches = ["main", "develop", "feature-login", "feature-search-v2", "fix-timeouts", "renovate-deps"]
    for n, service in enumerate(services):
        name = f"{prefix}/{service}"
        ecr.create_repository(repositoryName=name)
        size = rng.choice([180, 320, 540, 860, 1200]) * MB
        for branch in branches[: 2 + n % 5]:
            # Every build of the branch pushed a cache manifest; only the last keeps the tag.
            builds = rng.randint(0, 14 if n % 3 else 40)
            for build in range(builds + 1):
                body, digest = cache_manifest(f"{name}-{branch}-{build}", size + rng.randint(0, 80) * MB)
                tag = f"cache-{branch}" if build == builds else None
                kwargs = {"imageTag": tag} if tag else {}
                ecr.put_image(repositoryName=name, imageManifest=body, imageManifestMediaType=OCI_MANIFEST,
                              imageDigest=digest, **kwargs)


if __name__ == "__main__":
    main()
