#!/usr/bin/env python3
"""The release bundle, deployed the way the docs say, by a person who presses Enter at every
prompt, with no Rust toolchain: unpacks the bundle scripts/bundle.sh made, runs `sam deploy` in it
through a pseudo-terminal (pexpect) against LocalStack with a PATH that has no cargo, answers every
prompt with Enter, and checks the stack: CREATE_COMPLETE, the defaults (dry run, no webhook), the
real arm64 bootstraps uploaded. Then `sam deploy --guided` (what SAM's `sam build` tells everyone
to run), Enter at every prompt except SAM's consent question for the URL without IAM
authentication (y), to CREATE_COMPLETE. Then the documented webhook opt-in (`GitHubWebhook="true"` added
to samconfig.toml): Secrets Manager generates the secret, and the outputs give the URL and the
secret's ARN. LocalStack's CloudFormation engine refuses an update that adds resources existing
only under a condition (it resolves their references against the stack before the update), so the
opt-in is deployed as a second stack; the in-place update is real CloudFormation's ordinary
conditional-resource update and is not exercised here. Run by scripts/deploy-test.sh with the
bundle's path.

usage: bundle_deploy_test.py BUNDLE.tar.gz
"""

import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile

import boto3
import pexpect

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
CLIENT = dict(endpoint_url=ENDPOINT, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
STACK = "ecr-cache-pruner"  # the bundle's samconfig.toml names it
WEBHOOK_STACK = "ecr-cache-pruner-webhook"
GUIDED_STACK = "ecr-cache-pruner-guided"
# SAM's consent question for a function URL without IAM authentication: the one answer that is
# not Enter (docs/deploy.md says why y is safe).
CONSENT = re.compile(r"Function Url has no authentication\. Is this okay\?")
# What SAM asks, in any deploy mode: a question ending in a bracketed default or a colon.
PROMPT = re.compile(rb"(\[[^\]\r\n]*\]\s*:?\s*$|\?\s*$|:\s$)")


def documented_lines(folder):
    """(the shipped parameter_overrides line, the webhook opt-in line) as docs/deploy.md shows them."""
    doc = open(os.path.join(folder, "docs", "deploy.md")).read()
    shipped = doc.split("The line as shipped:", 1)[1]
    connect = doc.split("### Connect GitHub", 1)[1]
    first = lambda text: next(l for l in text.splitlines() if l.startswith("parameter_overrides"))
    return first(shipped), first(connect)


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def client(service):
    return boto3.client(service, **CLIENT)


def toolchain_free_path(venv_bin):
    """PATH for the deploy: SAM's folder and the system's, no cargo, rustc or cargo-lambda."""
    folders = [venv_bin] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                            if p and ".cargo" not in p and "rustup" not in p]
    path = os.pathsep.join(dict.fromkeys(folders))
    for tool in ("cargo", "rustc"):
        if shutil.which(tool, path=path):
            fail(f"{tool} is still on the deploy's PATH: {shutil.which(tool, path=path)}")
    return path


def sam_deploy(folder, env, extra=(), limit=20):
    """`sam deploy` in `folder` in a pseudo-terminal, Enter at every prompt (y to SAM's consent
    question about a URL without IAM authentication); returns its output and the prompt count."""
    child = pexpect.spawn("sam", ["deploy", *extra], cwd=folder, env=env, timeout=900)
    transcript = io.BytesIO()
    child.logfile_read = transcript
    prompts = 0
    asked = []
    while True:
        index = child.expect([PROMPT, pexpect.EOF])
        if index == 1:
            break
        prompts += 1
        question = (child.before + child.after).decode(errors="replace").strip().splitlines()[-1:]
        asked += question
        if prompts > limit:
            fail(f"sam deploy keeps asking:\n{transcript.getvalue().decode(errors='replace')[-3000:]}")
        if question and asked.count(question[0]) > 2:
            fail(f"sam deploy asks the same question again and again: {question[0]}")
        child.sendline("y" if question and CONSENT.search(question[0]) else "")
    child.close()
    text = transcript.getvalue().decode(errors="replace")
    if child.exitstatus != 0:
        fail(f"sam deploy {' '.join(extra)} exited {child.exitstatus}:\n{text[-4000:]}")
    return text, prompts


def stack(name=STACK):
    return client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]


def main():
    bundle = sys.argv[1]
    venv_bin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".venv", "bin")
    work = tempfile.mkdtemp()
    try:
        with tarfile.open(bundle) as tar:
            tar.extractall(work, filter="data")
        folder = os.path.join(work, "build")
        for needed in ("template.yaml", "samconfig.toml", "PrunerFunction/bootstrap", "WebhookFunction/bootstrap"):
            if not os.path.exists(os.path.join(folder, needed)):
                fail(f"the bundle has no build/{needed}")
        env = {"PATH": toolchain_free_path(os.path.abspath(venv_bin)), "HOME": work,
               "AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "SAM_CLI_TELEMETRY": "0", "TERM": "dumb", "LANG": "C.UTF-8"}

        started = time.time()
        text, prompts = sam_deploy(folder, env)
        status = stack()
        if status["StackStatus"] != "CREATE_COMPLETE":
            fail(f"{STACK} is {status['StackStatus']} after the first deploy:\n{text[-3000:]}")
        parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in status.get("Parameters", [])}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
        if parameters.get("DryRun") != "true":
            fail(f"the first deploy is not a dry run: DryRun={parameters.get('DryRun')}")
        if "WebhookUrl" in outputs:
            fail("the webhook was deployed without being asked for")
        print(f"ok   plain `sam deploy` from the unpacked bundle, no cargo on PATH, Enter at {prompts} "
              f"prompt(s): CREATE_COMPLETE in {time.time() - started:.0f} s, DryRun=true, no webhook")

        # The bootstrap Lambda got is the bundle's arm64 executable, not a rebuild.
        function = client("lambda").get_function(FunctionName=outputs["PrunerFunctionName"])
        if function["Configuration"].get("Architectures") != ["arm64"]:
            fail(f"pruner architectures {function['Configuration'].get('Architectures')}")
        code = client("lambda").get_function(FunctionName=outputs["PrunerFunctionName"])["Code"]
        location = code.get("Location", "")
        if location.startswith("http"):
            import urllib.parse
            import urllib.request
            # LocalStack names its own host in the link; the same path answers on its endpoint.
            parts = urllib.parse.urlsplit(location)
            local = ENDPOINT.rstrip("/") + parts.path + ("?" + parts.query if parts.query else "")
            request = urllib.request.Request(local, headers={"Host": parts.netloc})
            archive = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(request).read()))
            deployed = archive.read("bootstrap")
            built = open(os.path.join(folder, "PrunerFunction", "bootstrap"), "rb").read()
            if deployed != built:
                fail("the deployed pruner bootstrap is not the bundle's")
            print("ok   the deployed pruner bootstrap is the bundle's arm64 executable")

        # `sam deploy --guided`, as SAM's own `sam build` output suggests: Enter at every prompt
        # except the URL consent. In a copy whose samconfig.toml names another stack (the
        # bundle's stack exists by now, and an unchanged stack is an error to SAM).
        guided = os.path.join(work, "guided")
        shutil.copytree(folder, guided)
        config = os.path.join(guided, "samconfig.toml")
        settings = open(config).read()
        if settings.count(f'stack_name = "{STACK}"') != 2:
            fail("samconfig.toml should name the stack for every command and for the guided deploy's default")
        open(config, "w").write(settings.replace(f'stack_name = "{STACK}"', f'stack_name = "{GUIDED_STACK}"'))
        started = time.time()
        text, prompts = sam_deploy(guided, env, ["--guided"], limit=80)
        try:
            status = stack(GUIDED_STACK)
        except client("cloudformation").exceptions.ClientError:
            fail(f"`sam deploy --guided` made no stack {GUIDED_STACK}:\n{text[-5000:]}")
        if status["StackStatus"] != "CREATE_COMPLETE":
            fail(f"{GUIDED_STACK} is {status['StackStatus']} after `sam deploy --guided`:\n{text[-3000:]}")
        parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in status.get("Parameters", [])}
        if parameters.get("DryRun") != "true":
            fail(f"`sam deploy --guided` with Enter everywhere is not a dry run: DryRun={parameters.get('DryRun')}")
        consented = len(CONSENT.findall(text))
        # One function URL (the webhook's) in the template: SAM asks once, and a second "y" would
        # be a prompt we did not mean to answer.
        if consented != 1:
            fail(f"`sam deploy --guided` asked the URL consent question {consented} time(s), expected once:\n{text[-3000:]}")
        print(f"ok   `sam deploy --guided`: CREATE_COMPLETE in {time.time() - started:.0f} s, Enter at "
              f"{prompts - consented} prompt(s), y at {consented} URL consent question(s)")

        # The documented webhook opt-in, with the exact lines the bundle's docs/deploy.md shows:
        # the shipped line replaced by the one under "Connect GitHub"; the secret generated.
        config = os.path.join(folder, "samconfig.toml")
        settings = open(config).read()
        line, opted_in = documented_lines(folder)
        if line not in settings:
            fail(f"the bundle's samconfig.toml has no `{line}` line to edit as docs/deploy.md says")
        open(config, "w").write(settings.replace(line, opted_in))
        text, prompts = sam_deploy(folder, env, ["--stack-name", WEBHOOK_STACK])
        status = stack(WEBHOOK_STACK)
        if status["StackStatus"] != "CREATE_COMPLETE":
            fail(f"{WEBHOOK_STACK} is {status['StackStatus']} with the webhook opted in:\n{text[-3000:]}")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
        for key in ("WebhookUrl", "WebhookSecretArn"):
            if key not in outputs:
                fail(f"no {key} output after GitHubWebhook=true: {sorted(outputs)}")
        secret = client("secretsmanager").get_secret_value(SecretId=outputs["WebhookSecretArn"])["SecretString"]
        if not re.fullmatch(r"[A-Za-z0-9]{40}", secret):
            fail(f"the generated webhook secret is not 40 letters and digits ({len(secret)} characters)")
        print(f"ok   GitHubWebhook=\"true\" in samconfig.toml: CREATE_COMPLETE, webhook URL and a generated 40-character "
              f"secret, Enter at {prompts} prompt(s)")
    finally:
        cfn = client("cloudformation")
        try:
            for name in (STACK, WEBHOOK_STACK, GUIDED_STACK):
                cfn.delete_stack(StackName=name)
            for name in (STACK, WEBHOOK_STACK, GUIDED_STACK):
                for _ in range(240):
                    try:
                        if stack(name)["StackStatus"] == "DELETE_COMPLETE":
                            break
                    except cfn.exceptions.ClientError:
                        break
                    time.sleep(0.5)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print("bundle deploy test passed")


if __name__ == "__main__":
    main()
