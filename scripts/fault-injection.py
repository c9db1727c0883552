#!/usr/bin/env python3
"""Fault-injection run: real `pruner` processes against moto through a proxy that breaks ECR calls,
while a CI stand-in keeps pushing. Prints a markdown table of what was lost.

Per binary under test (``--binary LABEL=PATH``, repeatable, run one after another on a fresh moto):
- a proxy in front of moto answers a share of ECR calls (``--fault-rate``) with one of four faults,
  evenly: HTTP 500, a throttle (400 ThrottlingException), a dropped connection (no answer), or
  "applied, then 500" (moto did it, the caller is told it failed);
- ``--workers`` pruner processes run under a local Lambda Runtime API and take push events from one
  queue, so up to that many prune the same repository at once;
- ``--backlog`` superseded cache manifests are there from the start (a team adopting the tool);
- a CI stand-in (straight to moto, no faults) keeps pushing new untagged cache manifests, new
  branch caches, and byte-identical re-pushes of old untagged cache manifests under a new tag, each
  push followed by its push event.
After ``--duration`` seconds the CI stops, the queue drains, faults are switched off, one last event
prunes what is left, and the registry is judged:
- protected images lost: seeded images that must never go (a tagged multi-arch index and its
  untagged children and attestation, an old untagged multi-arch index and its children, an untagged
  index's cache manifest, a tagged app image, the protected branch's cache);
- tags lost: re-pushed or branch cache tags that no longer exist (their digest was deleted after it
  had been tagged);
- stale left: untagged cache manifests no index references, still there after the final prune;
- crashes: pruner processes that exited by themselves.

Loopback only; bounded in time. Needs the project's .venv (scripts/setup.sh) and built binaries:
    cargo build --bin pruner
    .venv/bin/python scripts/fault-injection.py --binary now=target/debug/pruner
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (  # noqa: E402
    Proxy, RuntimeApi, app_manifest, cache_manifest, index, push_event, start_moto,
)

REPO = "fault-app"

# ---- one run -------------------------------------------------------------------------------------

def run(label, binary, args, venv):
    moto, moto_port = start_moto(venv)
    proxy = Proxy(moto_port, args.fault_rate, args.seed)
    api = RuntimeApi()
    ecr = boto3.client("ecr", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    ecr.create_repository(repositoryName=REPO)

    def put(manifest, tag=None):
        kwargs = dict(repositoryName=REPO, imageManifest=manifest.body,
                      imageManifestMediaType=manifest.media_type, imageDigest=manifest.digest)
        if tag:
            kwargs["imageTag"] = tag
        ecr.put_image(**kwargs)

    # Protected content.
    protected = []
    amd, arm = app_manifest("amd64"), app_manifest("arm64")
    attestation = app_manifest("attestation")
    for m in (amd, arm, attestation):
        put(m)
    multi = index([amd, arm, attestation])
    put(multi, "v1")
    old_amd, old_arm = app_manifest("old-amd64"), app_manifest("old-arm64")
    put(old_amd), put(old_arm)
    old_multi = index([old_amd, old_arm])
    put(old_multi)
    referenced_cache = cache_manifest("referenced")
    put(referenced_cache)
    holder = index([referenced_cache])
    put(holder)
    latest = app_manifest("latest")
    put(latest, "latest")
    main = cache_manifest("main")
    put(main, "cache-main")
    protected = [amd, arm, attestation, multi, old_amd, old_arm, old_multi, referenced_cache,
                 holder, latest, main]
    # A backlog of superseded caches, so that prunes span several delete batches.
    backlog = [cache_manifest(f"backlog-{i}") for i in range(args.backlog)]
    for m in backlog:
        put(m)

    logs = tempfile.mkdtemp(prefix=f"fault-{label}-")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_LAMBDA_FUNCTION_NAME="pruner", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/pruner",
               AWS_LAMBDA_LOG_STREAM_NAME="fault-run", AWS_LAMBDA_LOG_FORMAT="JSON")
    workers = [subprocess.Popen([binary], env=env, stdout=open(os.path.join(logs, f"w{i}.log"), "w"),
                                stderr=subprocess.STDOUT) for i in range(args.workers)]

    # The CI stand-in.
    rng = random.Random(args.seed + 1)
    untagged_cache, retags, branch_tags = list(backlog), [], []
    stop_at = time.time() + args.duration
    n = 0
    while time.time() < stop_at:
        n += 1
        roll = rng.random()
        if roll < 0.4 or not untagged_cache:
            m = cache_manifest(f"stale-{n}")
            put(m)
            untagged_cache.append(m)
        elif roll < 0.75:
            m = rng.choice(untagged_cache)
            tag = f"cache-re-{n}"
            put(m, tag)  # byte-identical re-push under a new tag
            retags.append(tag)
            api.put(push_event(REPO, m.digest, tag))
        else:
            m = cache_manifest(f"branch-{n}")
            tag = f"cache-b-{n}"
            put(m, tag)
            branch_tags.append(tag)
            api.put(push_event(REPO, m.digest, tag))
        time.sleep(args.ci_interval)

    # Drain, then one fault-free prune.
    drain_until = time.time() + args.drain
    while not api.idle() and time.time() < drain_until:
        time.sleep(0.5)
    proxy.rate = 0.0
    api.put(push_event(REPO, main.digest, "cache-main"))
    final_until = time.time() + 60
    while not api.idle() and time.time() < final_until:
        time.sleep(0.2)
    crashes = sum(1 for w in workers if w.poll() is not None)
    for w in workers:
        if w.poll() is None:
            w.terminate()
    for w in workers:
        w.wait(timeout=10)

    images = []
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=REPO):
        images.extend(page["imageDetails"])
    present = {i["imageDigest"]: set(i.get("imageTags", [])) for i in images}
    all_tags = set().union(*present.values()) if present else set()
    referenced = {referenced_cache.digest}
    result = {
        "label": label,
        "ecr_calls": proxy.calls,
        "faults": sum(proxy.counts.values()),
        "fault_counts": dict(proxy.counts),
        "invocations": dict(api.answers),
        "undrained": api.outstanding,
        "protected_lost": sum(1 for m in protected if m.digest not in present),
        "retags": len(retags),
        "retags_lost": sum(1 for t in retags if t not in all_tags),
        "branch_tags": len(branch_tags),
        "branch_tags_lost": sum(1 for t in branch_tags if t not in all_tags),
        "stale_left": sum(1 for m in untagged_cache
                          if m.digest in present and not present[m.digest] and m.digest not in referenced),
        "crashes": crashes,
    }
    proxy.stop()
    api.stop()
    moto.terminate()
    moto.wait(timeout=10)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", action="append", required=True, help="LABEL=PATH of a pruner binary")
    parser.add_argument("--duration", type=float, default=60, help="seconds of pushing (default 60)")
    parser.add_argument("--drain", type=float, default=120, help="seconds allowed to drain the queue")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--ci-interval", type=float, default=0.1, help="seconds between CI pushes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backlog", type=int, default=0,
                        help="untagged cache manifests in the repository before the run")
    args = parser.parse_args()
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv")
    rows = []
    for spec in args.binary:
        label, _, path = spec.partition("=")
        result = run(label, path, args, venv)
        print(json.dumps(result), file=sys.stderr, flush=True)
        rows.append(result)
    print(f"| binary | ECR calls | faults injected | invocations ok / failed | protected lost "
          f"| re-pushed tags lost | branch tags lost | stale left | crashes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['label']} | {r['ecr_calls']} | {r['faults']} | {r['invocations']['response']} / "
              f"{r['invocations']['error']} | {r['protected_lost']} | {r['retags_lost']} of {r['retags']} "
              f"| {r['branch_tags_lost']} of {r['branch_tags']} | {r['stale_left']} | {r['crashes']} |")


if __name__ == "__main__":
    main()
