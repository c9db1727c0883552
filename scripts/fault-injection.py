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
import hashlib
import http.client
import http.server
import json
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
REPO = "fault-app"
FAULTS = ["http_500", "throttle", "dropped", "applied_then_500"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    def __init__(self, value, media_type):
        self.body = json.dumps(value)
        self.media_type = media_type
        self.digest = sha(self.body)


def cache_manifest(seed):
    return Manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": CACHE_CONFIG, "digest": sha(seed + "-cfg"), "size": 1000},
                     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "digest": sha(seed + "-layer"), "size": 50_000_000}]}, OCI_MANIFEST)


def app_manifest(seed):
    return Manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": IMAGE_CONFIG, "digest": sha(seed + "-cfg"), "size": 1400},
                     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "digest": sha(seed + "-layer"), "size": 3_000_000}]}, OCI_MANIFEST)


def index(children):
    return Manifest({"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": [{"mediaType": c.media_type, "digest": c.digest, "size": len(c.body)}
                                   for c in children]}, OCI_INDEX)


# ---- the fault-injecting proxy -------------------------------------------------------------------

class Proxy:
    def __init__(self, upstream_port, rate, seed):
        self.upstream_port = upstream_port
        self.rate = rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {kind: 0 for kind in FAULTS}
        self.calls = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy.draw()
                if fault == "dropped":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in ("http_500", "throttle"):
                    return self.answer(*proxy.fault_answer(fault))
                status, headers, answer = proxy.forward(self.command, self.path, self.headers, body)
                if fault == "applied_then_500":
                    return self.answer(*proxy.fault_answer("http_500"))
                self.answer(status, headers, answer)

            do_GET = do_POST

            def answer(self, status, headers, body):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def draw(self):
        with self.lock:
            self.calls += 1
            if self.random.random() >= self.rate:
                return None
            kind = self.random.choice(FAULTS)
            self.counts[kind] += 1
            return kind

    def fault_answer(self, kind):
        if kind == "throttle":
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            return 400, [("Content-Type", "application/x-amz-json-1.1"),
                         ("x-amzn-ErrorType", "ThrottlingException")], body
        body = json.dumps({"__type": "ServerException", "message": "injected"}).encode()
        return 500, [("Content-Type", "application/x-amz-json-1.1")], body

    def forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        conn.request(method, path, body=body, headers={k: v for k, v in headers.items()})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, response.getheaders(), data

    def stop(self):
        self.server.shutdown()


# ---- a Lambda Runtime API serving one event queue to several processes ---------------------------

class RuntimeApi:
    def __init__(self):
        self.events = queue.Queue()
        self.lock = threading.Lock()
        self.outstanding = 0
        self.answers = {"response": 0, "error": 0}
        self.counter = 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                event = api.events.get()
                with api.lock:
                    api.counter += 1
                    request_id = f"req-{api.counter}"
                payload = json.dumps(event).encode()
                deadline = int(time.time() * 1000) + 120_000
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:pruner")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.path.rstrip("/").rsplit("/", 1)[-1]
                with api.lock:
                    if kind in api.answers:
                        api.answers[kind] += 1
                        api.outstanding -= 1
                body = b'{"status":"OK"}'
                self.send_response(202)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, event):
        with self.lock:
            self.outstanding += 1
        self.events.put(event)

    def idle(self):
        with self.lock:
            return self.outstanding == 0

    def stop(self):
        self.server.shutdown()


def push_event(digest, tag):
    return {"version": "0", "id": "fault-run", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"result": "SUCCESS", "repository-name": REPO,
                                        "image-digest": digest, "action-type": "PUSH",
                                        "image-tag": tag}}


# ---- one run -------------------------------------------------------------------------------------

def start_moto(venv):
    port = free_port()
    process = subprocess.Popen([os.path.join(venv, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process, port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("moto did not start")


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
            api.put(push_event(m.digest, tag))
        else:
            m = cache_manifest(f"branch-{n}")
            tag = f"cache-b-{n}"
            put(m, tag)
            branch_tags.append(tag)
            api.put(push_event(m.digest, tag))
        time.sleep(args.ci_interval)

    # Drain, then one fault-free prune.
    drain_until = time.time() + args.drain
    while not api.idle() and time.time() < drain_until:
        time.sleep(0.5)
    proxy.rate = 0.0
    api.put(push_event(main.digest, "cache-main"))
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
