"""A straightforward boto3 pruner, for side-by-side benchmarks only (scripts/bench-vs-boto3.py): the
Lambda a team would write in an afternoon. Under the Lambda Runtime API it takes a push event, lists
the repository, reads the untagged manifests to keep only BuildKit cache, and deletes them in
batches of 100. No index check, no re-check before deleting: it is the floor for ECR calls, not a
safe pruner."""

import json
import os
import urllib.request

import boto3

CACHE = "application/vnd.buildkit.cacheconfig.v0"
API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
ecr = boto3.client("ecr")


def prune(repository):
    untagged = []
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository, maxResults=1000):
        untagged += [i["imageDigest"] for i in page["imageDetails"] if not i.get("imageTags")]
    cache = []
    for start in range(0, len(untagged), 100):
        ids = [{"imageDigest": d} for d in untagged[start:start + 100]]
        for image in ecr.batch_get_image(repositoryName=repository, imageIds=ids)["images"]:
            manifest = json.loads(image["imageManifest"])
            if manifest.get("config", {}).get("mediaType") == CACHE:
                cache.append(image["imageId"]["imageDigest"])
    for start in range(0, len(cache), 100):
        ids = [{"imageDigest": d} for d in cache[start:start + 100]]
        ecr.batch_delete_image(repositoryName=repository, imageIds=ids)
    return {"deleted": len(cache)}


while True:
    with urllib.request.urlopen(f"{API}/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    result = prune(event["detail"]["repository-name"])
    urllib.request.urlopen(urllib.request.Request(
        f"{API}/{request_id}/response", data=json.dumps(result).encode(), method="POST")).read()
