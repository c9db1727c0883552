"""Pieces shared by the bench scripts: a fault-injecting (or just counting) proxy in front of moto,
a Lambda Runtime API serving one event queue to several processes, moto itself, and manifests shaped
like BuildKit's. Loopback only."""

import hashlib
import http.client
import http.server
import json
import os
import queue
import random
import socket
import subprocess
import threading
import time
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
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
    def __init__(self, upstream_port, rate, seed, latency=0.0):
        self.upstream_port = upstream_port
        # Seconds added to every call (a region's round trip; moto on loopback has none).
        self.latency = latency
        self.rate = rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {kind: 0 for kind in FAULTS}
        self.calls = 0
        # Calls by operation (`X-Amz-Target`, e.g. AmazonEC2ContainerRegistry_V20150921.DescribeImages).
        self.operations = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                operation = self.headers.get("X-Amz-Target", "?")
                with proxy.lock:
                    proxy.operations[operation] = proxy.operations.get(operation, 0) + 1
                if proxy.latency:
                    time.sleep(proxy.latency)
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
        self.bodies = []
        # When a process first asked for an event: the end of its init.
        self.first_poll = None
        self.counter = 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with api.lock:
                    if api.first_poll is None:
                        api.first_poll = time.time()
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
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.path.rstrip("/").rsplit("/", 1)[-1]
                with api.lock:
                    if kind in api.answers:
                        api.answers[kind] += 1
                        api.outstanding -= 1
                        api.bodies.append((kind, body))
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


def push_event(repository, digest, tag):
    return {"version": "0", "id": "fault-run", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"result": "SUCCESS", "repository-name": repository,
                                        "image-digest": digest, "action-type": "PUSH",
                                        "image-tag": tag}}


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
