#!/usr/bin/env python3
"""`ecr-cache-pruner report` at scale, side by side in one run: 1,000 repositories x 50 images on
moto behind a proxy that adds 50 ms to every call (a region's round trip), the report with its
default concurrency (8) beside the same report one repository at a time (--concurrency 1).
Measures, per run: ECR calls by operation, wall time, CPU time (wait4's rusage) and peak RSS
(VmHWM), and checks both runs report the same totals. Prints a markdown table.

    cargo build --release --bin ecr-cache-pruner
    .venv/bin/python scripts/bench-report.py --binary target/release/ecr-cache-pruner

Each repository holds what a month of buildx builds leaves: 4 branch cache tags, 40 superseded
(untagged) cache manifests, 3 tagged application images and one multi-arch index with its 2
untagged children (never stale).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import Proxy, app_manifest, cache_manifest, index, start_moto  # noqa: E402


def seed(moto_port, repositories):
    client = dict(endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")

    def one(n):
        ecr = boto3.client("ecr", **client)
        name = f"bench/service-{n:04d}"
        ecr.create_repository(repositoryName=name)

        def put(m, tag=None):
            ecr.put_image(repositoryName=name, imageManifest=m.body, imageManifestMediaType=m.media_type,
                          imageDigest=m.digest, **({"imageTag": tag} if tag else {}))
        for b in range(40):
            put(cache_manifest(f"{name}-old-{b}"))
        for branch in ("main", "develop", "feature-a", "feature-b"):
            put(cache_manifest(f"{name}-{branch}"), f"cache-{branch}")
        for v in range(3):
            put(app_manifest(f"{name}-v{v}"), f"v{v}")
        amd, arm = app_manifest(f"{name}-amd64"), app_manifest(f"{name}-arm64")
        put(amd)
        put(arm)
        put(index([amd, arm]), "latest")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(repositories)))


def run(binary, proxy, concurrency):
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    for key in ("SWEEP_REPOSITORIES", "GITHUB_TOKEN", "AWS_PROFILE"):
        env.pop(key, None)
    before = dict(proxy.operations)
    start = time.monotonic()
    process = subprocess.Popen([binary, "report", "--repositories", "bench/*", "--json",
                                "--concurrency", str(concurrency)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # VmHWM of the process's own memory (wait4's ru_maxrss would count the Python process it
    # was forked from, before exec), sampled until it exits.
    peak = [0]

    def sample():
        # Never waits for the process (the main thread's wait4 reaps it): stops at the zombie.
        while True:
            try:
                status = open(f"/proc/{process.pid}/status").read()
            except (FileNotFoundError, ProcessLookupError):
                return
            if "\nState:\tZ" in status:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
            time.sleep(0.02)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    sampler.join()
    wall = time.monotonic() - start
    if status != 0:
        raise SystemExit(f"report failed ({status}): {err.decode()[-2000:]}")
    calls = {k.split(".")[-1]: v - before.get(k, 0) for k, v in proxy.operations.items()
             if "ContainerRegistry" in k and v - before.get(k, 0)}
    return {"totals": json.loads(out)["totals"], "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": peak[0] / 1024, "calls": calls}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/ecr-cache-pruner")
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv")
    moto, moto_port = start_moto(venv)
    try:
        started = time.monotonic()
        seed(moto_port, args.repositories)
        print(f"seeded {args.repositories} repositories x 50 images in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        proxy = Proxy(moto_port, 0.0, 1, latency=args.latency_ms / 1000)
        runs = [(8, run(args.binary, proxy, 8)), (1, run(args.binary, proxy, 1))]
        proxy.stop()
    finally:
        moto.terminate()
    (_, fast), (_, slow) = runs
    if fast["totals"] != slow["totals"]:
        raise SystemExit(f"the two runs disagree: {fast['totals']} vs {slow['totals']}")
    t = fast["totals"]
    print(f"{t['repositories']} repositories, {t['stale_manifests']} stale manifests, "
          f"{t['cache_tags']} cache tags: both runs agree\n")
    print(f"| report, {args.repositories} repos x 50 images, +{args.latency_ms:.0f} ms/call "
          "| ECR calls | wall s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for concurrency, r in runs:
        calls = sum(r["calls"].values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
        print(f"| --concurrency {concurrency} | {calls} ({detail}) | {r['wall']:.1f} | {r['cpu']:.2f} "
              f"| {r['rss_mib']:.1f} |")
    print(f"| ratio 1 / 8 | | {slow['wall'] / fast['wall']:.1f}x | {slow['cpu'] / max(fast['cpu'], 1e-9):.2f}x "
          f"| {slow['rss_mib'] / fast['rss_mib']:.2f}x |")


if __name__ == "__main__":
    main()
