#!/usr/bin/env python3
"""Side by side, in one run: this project's `pruner` and a straightforward boto3 pruner
(scripts/peer/boto3_pruner.py), each a real process under a local Lambda Runtime API, pruning the
same kind of repository on the same moto behind a counting proxy. Measures, per process: init
(spawn to first `/next` poll), CPU time of the init and of the invocation (/proc), peak RSS
(VmHWM), ECR calls by operation, and what was deleted. Prints a markdown table with ratios.

    cargo build --release --bin pruner
    .venv/bin/python scripts/bench-vs-boto3.py --binary target/release/pruner
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import Proxy, RuntimeApi, app_manifest, cache_manifest, push_event, start_moto  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of every live thread, in nanoseconds from /proc/<pid>/task/*/schedstat (the 10 ms
    ticks of /proc/<pid>/stat are too coarse for a 20 ms invocation), plus the ticks of threads
    that already exited (stat counts them, schedstat cannot)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / TICK
    live_ticks, live_ns = 0.0, 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            live_ns += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
            t = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
            live_ticks += (int(t[11]) + int(t[12])) / TICK
        except (FileNotFoundError, ProcessLookupError):
            pass
    return live_ns / 1e9 + max(0.0, ticks - live_ticks)


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(label, command, moto_port, repository, args):
    client = dict(endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
    ecr = boto3.client("ecr", **client)
    ecr.create_repository(repositoryName=repository)

    def put(m, tag=None):
        ecr.put_image(repositoryName=repository, imageManifest=m.body, imageManifestMediaType=m.media_type,
                      imageDigest=m.digest, **({"imageTag": tag} if tag else {}))

    for i in range(args.stale):
        put(cache_manifest(f"{repository}-stale-{i}"))
    for i in range(args.apps):
        put(app_manifest(f"{repository}-app-{i}"), f"v{i}")
    current = cache_manifest(f"{repository}-main")
    put(current, "cache-main")

    proxy = Proxy(moto_port, 0.0, 1)
    api = RuntimeApi()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_LAMBDA_FUNCTION_NAME="pruner", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/pruner",
               AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_FORMAT="JSON",
               # Like the peer, no cap on deletions for this comparison.
               MAX_DELETIONS_PER_INVOCATION="100000")
    spawned = time.time()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while api.first_poll is None:
        time.sleep(0.001)
    init = api.first_poll - spawned
    init_cpu = cpu_seconds(process.pid)
    api.put(push_event(repository, current.digest, "cache-main"))
    while not api.idle():
        time.sleep(0.005)
    time.sleep(0.05)  # let the process settle back into its next poll
    total_cpu = cpu_seconds(process.pid)
    rss = peak_rss_mib(process.pid)
    process.terminate()
    process.wait()
    left = sum(1 for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository)
               for i in page["imageDetails"] if not i.get("imageTags"))
    calls = {k.split(".")[-1]: v for k, v in proxy.operations.items() if "ContainerRegistry" in k}
    proxy.stop()
    api.stop()
    return {"label": label, "init_ms": init * 1000, "init_cpu_ms": init_cpu * 1000,
            "invocation_cpu_ms": (total_cpu - init_cpu) * 1000, "rss_mib": rss,
            "ecr_calls": sum(calls.values()), "calls": calls, "untagged_left": left}


def median_run(runs):
    """Each measure's median over the runs; calls and what was left come from the last run (they
    do not vary)."""
    out = dict(runs[-1])
    for key in ("init_ms", "init_cpu_ms", "invocation_cpu_ms", "rss_mib"):
        out[key] = statistics.median(r[key] for r in runs)
    out["untagged_left"] = max(r["untagged_left"] for r in runs)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--stale", type=int, default=1500)
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--baseline", help="another build of the pruner to measure in the same rounds (before/after)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternate the two this many times and report medians (the machine is noisy)")
    args = parser.parse_args()
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv")
    moto, port = start_moto(venv)
    peer = [os.path.join(venv, "bin", "python"),
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer", "boto3_pruner.py")]
    rounds = {"ours": [], "theirs": [], "baseline": []}
    for i in range(args.rounds):
        rounds["ours"].append(run("ecr-cache-pruner", [args.binary], port, f"bench-ours-{i}", args))
        if args.baseline:
            rounds["baseline"].append(run("baseline build", [args.baseline], port, f"bench-base-{i}", args))
        rounds["theirs"].append(run("boto3 peer", peer, port, f"bench-peer-{i}", args))
    moto.terminate()
    ours, theirs = median_run(rounds["ours"]), median_run(rounds["theirs"])
    baseline = median_run(rounds["baseline"]) if args.baseline else None
    print(f"Medians of {args.rounds} alternating rounds.")
    print(f"Repository: {args.stale} superseded cache manifests, {args.apps} tagged app images, cache-main.")
    print("| | init (spawn → /next) | init CPU | CPU per push | peak RSS | ECR calls | untagged left |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in (ours, baseline, theirs):
        if r is None:
            continue
        detail = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
        print(f"| {r['label']} | {r['init_ms']:.0f} ms | {r['init_cpu_ms']:.0f} ms | {r['invocation_cpu_ms']:.0f} ms "
              f"| {r['rss_mib']:.1f} MiB | {r['ecr_calls']} ({detail}) | {r['untagged_left']} |")
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
    print(f"| ours / peer | {ratio(ours['init_ms'], theirs['init_ms'])} | {ratio(ours['init_cpu_ms'], theirs['init_cpu_ms'])} "
          f"| {ratio(ours['invocation_cpu_ms'], theirs['invocation_cpu_ms'])} | {ratio(ours['rss_mib'], theirs['rss_mib'])} "
          f"| {ratio(ours['ecr_calls'], theirs['ecr_calls'])} | |")
    if baseline:
        print(f"| baseline / peer | {ratio(baseline['init_ms'], theirs['init_ms'])} | {ratio(baseline['init_cpu_ms'], theirs['init_cpu_ms'])} "
              f"| {ratio(baseline['invocation_cpu_ms'], theirs['invocation_cpu_ms'])} | {ratio(baseline['rss_mib'], theirs['rss_mib'])} "
              f"| {ratio(baseline['ecr_calls'], theirs['ecr_calls'])} | |")


if __name__ == "__main__":
    main()
