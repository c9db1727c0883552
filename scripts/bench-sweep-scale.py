#!/usr/bin/env python3
"""Scale benchmark of the fanned-out sweep: a registry of many repositories on moto, swept by real
`pruner` processes the way the template runs them.

The scheduled event goes to one pruner, which lists the repositories in scope and sends one
`Repository Sweep` message per repository to an SQS queue (moto). This script then plays the event
source mapping: it receives up to ten messages at a time and hands them, as SQS events, to
``--workers`` pruner processes under a local Lambda Runtime API (the template's
`PrunerMaxConcurrency` default is 2), until the queue is empty. A counting proxy in front of moto
tallies every AWS call by operation. Prints a markdown table row.

    cargo build --release --bin pruner
    .venv/bin/python scripts/bench-sweep-scale.py --binary target/release/pruner --repositories 1000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import Proxy, RuntimeApi, app_manifest, cache_manifest, start_moto  # noqa: E402

SCHEDULED = {"version": "0", "id": "scale", "detail-type": "Scheduled Event", "source": "aws.scheduler",
             "account": "123456789012", "time": "2026-11-29T03:00:00Z", "region": "us-east-1",
             "resources": [], "detail": {}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--stale", type=int, default=3, help="superseded cache manifests per repository")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv")

    moto, port = start_moto(venv)
    client = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
    ecr, sqs = boto3.client("ecr", **client), boto3.client("sqs", **client)
    started = time.time()
    for r in range(args.repositories):
        name = f"scale-{r:05d}"
        ecr.create_repository(repositoryName=name)
        put = lambda m, tag=None: ecr.put_image(  # noqa: E731
            repositoryName=name, imageManifest=m.body, imageManifestMediaType=m.media_type,
            imageDigest=m.digest, **({"imageTag": tag} if tag else {}))
        for i in range(args.stale):
            put(cache_manifest(f"{name}-stale-{i}"))
        put(cache_manifest(f"{name}-main"), "cache-main")
        put(app_manifest(f"{name}-app"), "v1")
    print(f"seeded {args.repositories} repositories in {time.time() - started:.0f} s", file=sys.stderr)
    queue_url = sqs.create_queue(QueueName="prune")["QueueUrl"]

    proxy = Proxy(port, 0.0, 1)
    api = RuntimeApi()
    logs = tempfile.mkdtemp(prefix="scale-")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_LAMBDA_FUNCTION_NAME="pruner", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/pruner",
               AWS_LAMBDA_LOG_STREAM_NAME="scale", AWS_LAMBDA_LOG_FORMAT="JSON",
               SWEEP_REPOSITORIES="scale-*", SWEEP_QUEUE_URL=queue_url)
    workers = [subprocess.Popen([args.binary], env=env, stdout=open(os.path.join(logs, f"w{i}.log"), "w"),
                                stderr=subprocess.STDOUT) for i in range(args.workers)]

    started = time.time()
    api.put(SCHEDULED)
    while not api.idle():
        time.sleep(0.05)
    enqueued_at = time.time() - started
    batches = 0
    while True:
        out = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = out.get("Messages", [])
        if not messages:
            if api.idle():
                # Continuations arrive while invocations run: look once more after they finish.
                if not sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1,
                                           VisibilityTimeout=0).get("Messages"):
                    break
            time.sleep(0.05)
            continue
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:prune", "awsRegion": "us-east-1"}
                   for m in messages]
        # Like the event source mapping with MaximumConcurrency: at most `workers` batches in flight.
        while api.outstanding >= args.workers:
            time.sleep(0.01)
        api.put({"Records": records})
        batches += 1
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    wall = time.time() - started
    for w in workers:
        w.terminate()

    failures = sum(len(json.loads(body).get("batchItemFailures", []))
                   for kind, body in api.bodies if kind == "response" and body.startswith(b"{\"batch"))
    stale_left = 0
    for r in range(args.repositories):
        images = ecr.describe_images(repositoryName=f"scale-{r:05d}")["imageDetails"]
        stale_left += sum(1 for i in images if not i.get("imageTags"))
    ecr_calls = {k.split(".")[-1]: v for k, v in proxy.operations.items() if "ContainerRegistry" in k}
    sqs_calls = {k.split(".")[-1]: v for k, v in proxy.operations.items() if "SQS" in k}
    total = sum(ecr_calls.values())
    print(json.dumps({"ecr": ecr_calls, "sqs": sqs_calls, "invocations": api.answers, "batches": batches,
                      "record_failures": failures}), file=sys.stderr)
    print("| repositories | workers | invocations | ECR calls | per repository | SQS calls | wall | per 100 repositories | enqueue | stale left |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.repositories} | {args.workers} | {sum(api.answers.values())} | {total} | "
          f"{total / args.repositories:.1f} | {sum(sqs_calls.values())} | {wall:.1f} s | "
          f"{wall / args.repositories * 100:.2f} s | {enqueued_at:.2f} s | {stale_left} |")
    proxy.stop()
    api.stop()
    moto.terminate()


if __name__ == "__main__":
    main()
