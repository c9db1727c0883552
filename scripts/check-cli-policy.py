#!/usr/bin/env python3
"""The operator's IAM policy in docs/deploy.md holds exactly the actions `report --stack` and
`plan --stack` call: none missing, none extra.

The built CLI runs both against a moto server of its own through a loopback proxy that records
every AWS call it makes (the signing service from the credential scope, the operation from
`X-Amz-Target`, the query `Action` or, for Lambda's REST paths, the path): a deployed stack whose
pruner has a GitHub token (a loopback fake of GitHub's branch listing), and an ECR repository with
a stale cache manifest and a gone branch's cache, so that every kind of call happens (the stack's
rules, its token, every listing and manifest read). The recorded actions must equal the policy's.
(moto's own IAM enforcement was tried first: it refuses every signed Lambda GET with
SignatureDoesNotMatch, boto3's included, so it cannot judge `lambda:GetFunctionConfiguration`.)

Usage: .venv/bin/python scripts/check-cli-policy.py [CLI_BINARY]
(default: $CARGO_TARGET_DIR or target, then debug/ecr-cache-pruner)
"""
import hashlib
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import boto3  # the project's .venv (scripts/setup.sh) has it, with moto

REGION = "us-east-1"
REPOSITORY = "team-a/web"
STACK = "policy-check"
TOKEN = "ghp_policycheck0123456789"


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def documented_policy():
    text = open(os.path.join(ROOT, "docs", "deploy.md")).read()
    start = text.index("The report's IAM policy (read-only):")
    block = re.search(r"```json\n(.*?)```", text[start:], re.S)
    if not block:
        fail("docs/deploy.md: no JSON policy after \"The report's IAM policy\"")
    policy = json.loads(block.group(1))
    for statement in policy["Statement"]:
        statement["Resource"] = "*"
    return policy


def actions_of(policy):
    found = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        found.extend([actions] if isinstance(actions, str) else actions)
    return found


# Lambda's REST operations the CLI may call, by method and path.
LAMBDA_PATHS = [("GET", re.compile(r"^/2015-03-31/functions/[^/]+/configuration/?$"),
                 "GetFunctionConfiguration")]


def action_of(method, path, headers, body):
    """The IAM action of one signed AWS request, or a description of what could not be mapped."""
    scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request",
                      headers.get("Authorization", ""))
    if not scope:
        return f"unsigned {method} {path}"
    service = scope.group(1)
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.split('.')[-1]}"
    query = urllib.parse.parse_qs(body.decode(errors="replace"))
    if "Action" in query:
        return f"{service}:{query['Action'][0]}"
    for verb, pattern, operation in LAMBDA_PATHS if service == "lambda" else []:
        if method == verb and pattern.match(path.split("?")[0]):
            return f"lambda:{operation}"
    return f"unmapped {service} {method} {path}"


def recording_proxy(upstream, calls):
    """A loopback HTTP proxy to moto that records the action of every request it forwards."""
    target = urllib.parse.urlparse(upstream)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append(action_of(self.command, self.path, self.headers, body))
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    log = open(os.path.join(ROOT, ".venv", "moto-policy-check.log"), "w")
    server = subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    server.kill()
    fail("moto did not start")


class FakeGithub(http.server.BaseHTTPRequestHandler):
    """GitHub's branch listing for acme/web: main only."""

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        if self.path.split("?")[0] == "/repos/acme/web/branches":
            body = json.dumps([{"name": "main", "protected": False,
                                "commit": {"sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                                           "url": "http://localhost/commit"}}]).encode()
            self.send_response(200)
        else:
            body = b'{"message": "Not Found"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def cache_manifest(seed):
    def digest(text):
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.buildkit.cacheconfig.v0",
                   "digest": digest(f"{seed}-config"), "size": 1000},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(f"{seed}-layer"), "size": 52428800}]})


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "ecr-cache-pruner")
    if not os.path.exists(cli):
        fail(f"no CLI binary at {cli} (cargo build --bin ecr-cache-pruner)")
    policy = documented_policy()
    actions = actions_of(policy)
    server, endpoint = start_moto()
    github = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGithub)
    threading.Thread(target=github.serve_forever, daemon=True).start()
    github_url = f"http://127.0.0.1:{github.server_address[1]}"
    try:
        admin = dict(region_name=REGION, endpoint_url=endpoint,
                     aws_access_key_id="test", aws_secret_access_key="test")
        ecr = boto3.client("ecr", **admin)
        ecr.create_repository(repositoryName=REPOSITORY)
        for seed, tag in [("stale", None), ("main", "cache-main"), ("gone", "cache-gone")]:
            put = dict(repositoryName=REPOSITORY, imageManifest=cache_manifest(seed),
                       imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")
            if tag:
                put["imageTag"] = tag
            ecr.put_image(**put)
        secret = boto3.client("secretsmanager", **admin).create_secret(
            Name="policy-check-token", SecretString=TOKEN)["ARN"]
        variables = {"GITHUB_TOKEN_SECRET_ARN": secret, "GITHUB_API_URL": github_url,
                     "GITHUB_OWNER": "acme", "GONE_BRANCH_MIN_AGE_HOURS": "0",
                     "SWEEP_REPOSITORIES": "team-a/*"}
        template = {"Resources": {
            "PrunerFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]}}},
            "PrunerFunction": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "provided.al2023", "Handler": "bootstrap",
                "Role": {"Fn::GetAtt": ["PrunerFunctionRole", "Arn"]},
                "Code": {"ZipFile": "not run here"},
                "Environment": {"Variables": variables}}}}}
        boto3.client("cloudformation", **admin).create_stack(
            StackName=STACK, TemplateBody=json.dumps(template))
        calls = []
        proxy, proxied = recording_proxy(endpoint, calls)
        operator = {"AWS_ENDPOINT_URL": proxied, "AWS_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": "operator", "AWS_SECRET_ACCESS_KEY": "operator",
                    "PATH": os.environ.get("PATH", "")}
        try:
            for args in (["--json", "--stack", STACK, "report"],
                         ["--json", "--stack", STACK, "plan", "--repository", REPOSITORY]):
                out = subprocess.run([cli, *args], env=operator, capture_output=True, text=True,
                                     timeout=120, stdin=subprocess.DEVNULL)
                if out.returncode != 0:
                    fail(f"`{' '.join(args)}` exited {out.returncode}: "
                         f"{(out.stdout + out.stderr).strip()[:1500]}")
                if args[3] == "plan":
                    judged = json.loads(out.stdout)
                    # The whole job: the stale manifest and the gone branch's tag (the stack's
                    # token listed the branches) are in the plan.
                    if len(judged.get("would_delete", [])) != 1 or not any(
                            t.get("tag") == "cache-gone" for t in judged.get("tags", [])):
                        fail(f"the plan is not the whole plan: {out.stdout[:800]}")
        finally:
            proxy.shutdown()
        used = sorted(set(calls))
        documented = sorted(set(actions))
        print(f"     the CLI called: {', '.join(used)}")
        strange = [c for c in used if not re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", c)]
        if strange:
            fail(f"calls this check cannot map to an IAM action: {strange}")
        missing = [a for a in used if a not in documented]
        extra = [a for a in documented if a not in used]
        if missing:
            fail(f"docs/deploy.md's policy lacks {', '.join(missing)}")
        if extra:
            fail(f"docs/deploy.md's policy grants what `report --stack` and `plan --stack` "
                 f"never call: {', '.join(extra)}")
        print(f"ok   docs/deploy.md's operator policy is exactly the {len(used)} actions "
              f"`report --stack` and `plan --stack` call")
    finally:
        github.shutdown()
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
