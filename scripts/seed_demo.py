"""Seeds a local (moto) ECR repository the way a few CI builds with buildx leave it, prints it,
or prints what the pruner reported: every figure and reason in `report` comes from the pruner's
own JSON report and audit lines, none from this script.

usage: seed_demo.py seed REPOSITORY | show REPOSITORY | report REPORT.json FUNCTION.log
Endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL, AWS_REGION or
AWS_DEFAULT_REGION, ...).
"""
import hashlib
import json
import os
import sys

import boto3

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"


def sha(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def manifest(body, media_type):
    text = json.dumps(body, separators=(",", ":"))
    return {"body": text, "media_type": media_type, "digest": sha(text)}


def cache_manifest(seed):
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(f"{seed}-layer-{i}"),
               "size": 150_000_000 + i} for i in range(3)]
    return manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": CACHE_CONFIG, "digest": sha(seed + "-config"), "size": 1832},
                     "layers": layers}, OCI_MANIFEST)


def app_manifest(seed, arch):
    return manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": sha(f"{seed}-{arch}-config"), "size": 1469},
                     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "digest": sha(f"{seed}-{arch}-layer"), "size": 3_623_807}]}, OCI_MANIFEST)


def attestation(seed, subject):
    return manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": sha(seed + "-att-config"), "size": 167},
                     "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": sha(seed + "-att"),
                                 "size": 1340,
                                 "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]},
                    OCI_MANIFEST)


def index(entries):
    return manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict({"mediaType": m["media_type"], "digest": m["digest"], "size": len(m["body"])}, **extra)
        for m, extra in entries]}, OCI_INDEX)


def ecr_client():
    # boto3 reads AWS_DEFAULT_REGION only; the README's commands set AWS_REGION (the SDKs' name).
    return boto3.client("ecr", region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


def push(ecr, repo, m, tag=None):
    args = dict(repositoryName=repo, imageManifest=m["body"], imageManifestMediaType=m["media_type"],
                imageDigest=m["digest"])
    if tag:
        args["imageTag"] = tag
    ecr.put_image(**args)


def seed(ecr, repo):
    try:
        ecr.create_repository(repositoryName=repo)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    # Three builds of main: each cache push leaves the previous cache manifest untagged.
    for build in range(1, 4):
        push(ecr, repo, cache_manifest(f"{repo}-main-build-{build}"))
    push(ecr, repo, cache_manifest(f"{repo}-main-build-4"), "cache-main")
    push(ecr, repo, cache_manifest(f"{repo}-feature-login"), "cache-feature-login")
    # A multi-arch release with provenance: children and attestation are untagged.
    amd64, arm64 = app_manifest(repo, "amd64"), app_manifest(repo, "arm64")
    prov = attestation(repo, amd64["digest"])
    for m in (amd64, arm64, prov):
        push(ecr, repo, m)
    push(ecr, repo, index([(amd64, {"platform": {"architecture": "amd64", "os": "linux"}}),
                           (arm64, {"platform": {"architecture": "arm64", "os": "linux"}}),
                           (prov, {"platform": {"architecture": "unknown", "os": "unknown"},
                                   "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                                   "vnd.docker.reference.digest": amd64["digest"]}})]), "v1.0.0")
    # An untagged application image someone pushed by digest.
    push(ecr, repo, app_manifest(repo + "-hotfix", "amd64"))


def show(ecr, repo):
    images = ecr.describe_images(repositoryName=repo)["imageDetails"]
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": i["imageDigest"]} for i in images],
                              acceptedMediaTypes=[OCI_MANIFEST, OCI_INDEX])["images"]
    bodies = {g["imageId"]["imageDigest"]: json.loads(g["imageManifest"]) for g in got}
    print(f"  {'DIGEST':<22} {'TAGS':<22} KIND")
    for i in sorted(images, key=lambda i: i["imagePushedAt"]):
        body = bodies.get(i["imageDigest"], {})
        if "manifests" in body:
            kind = "index (multi-arch)"
        elif body.get("config", {}).get("mediaType") == CACHE_CONFIG:
            kind = "BuildKit cache"
        else:
            kind = "image manifest"
        tags = ",".join(i.get("imageTags", [])) or "<untagged>"
        print(f"  {i['imageDigest'][:19]}... {tags:<22} {kind}")
    print(f"  ({len(images)} images)")


def human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


# The pruner's keep reasons (docs/reference.md), in words.
KEEP_WORDS = {
    "referenced_by_index": "referenced by an index (a multi-arch child or its attestation)",
    "not_cache_manifest": "not BuildKit cache (an application image or an index)",
    "unknown_type": "type unknown, so never deleted",
    "trigger_digest": "the cache this push just made",
    "not_active": "archived, never deleted",
}


def report(path, function_log):
    r = json.load(open(path))
    dry = r["dry_run"]
    print(f"  outcome: {r['outcome']}, dry run: {'yes (nothing deleted)' if dry else 'no (deleted)'}")
    for result in r["repositories"]:
        rows = result["would_delete" if dry else "deleted"]
        verb = "would delete" if dry else "deleted"
        for d in rows:
            print(f"  {verb}: {d['digest'][:19]}... {d['reason']}")
        freed = result.get("reclaimed_bytes_estimate")
        line = f"  {len(rows)} cache manifest(s) {verb}"
        if freed is not None:
            line += (f"; storage {'it would free' if dry else 'freed'}: about {human(freed)} (the pruner's "
                     "estimate: layers no remaining manifest references)")
        print(line)
        for k in result["kept"]:
            why = KEEP_WORDS.get(k["reason"], k["reason"].replace("_", " "))
            print(f"  kept: {k['digest'][:19]}... {why}")
        print(f"  kept: {result['tagged_images']} tagged image(s): a push prunes only untagged cache; a cache "
              "tag goes when its branch is deleted (or, with STALE_CACHE_DAYS, when unused)")
    for t in r.get("tags", []):
        print(f"  tag {t.get('tag')}: {t.get('outcome', t)}")
    audit = [json.loads(line) for line in open(function_log, errors="replace")
             if line.startswith("{") and '"audit"' in line]
    print(f"  the function's audit lines ({len(audit)}):")
    for a in audit:
        what = a.get("tag") or f"{(a.get('digest') or '')[:19]}..."
        print(f"    {a['audit']}: {a['repository']} {what} {a.get('reason', '')}")
    reported = {d["digest"] for result in r["repositories"] for d in result["would_delete" if dry else "deleted"]}
    audited = {a.get("digest") for a in audit if a["audit"].startswith("manifest_")}
    if reported != audited:
        sys.exit(f"demo: the report and the audit lines disagree: {sorted(reported ^ audited)}")


if __name__ == "__main__":
    action, arg = sys.argv[1], sys.argv[2]
    if action == "report":
        report(arg, sys.argv[3])
    else:
        {"seed": seed, "show": show}[action](ecr_client(), arg)
