#!/usr/bin/env python3
"""Deploys template.yaml twice, under two stack names, into a local LocalStack, routes sample events
through the deployed rules, and deletes both stacks. Run by scripts/deploy-test.sh.

What it asserts:
- both stacks reach CREATE_COMPLETE (no name collides between two stacks in one account);
- on each stack's queue, after the grace delay (not before), exactly the events its rules should
  let through: cache-tag pushes for its own repositories, and branch deletions on its own GitHub
  bus; never a tag deletion, a DELETE action, a failed push, an app-tag push, a push with
  `deleted: false`, a deleted git tag, or another stack's repository;
- both stacks delete cleanly;
- one stack name deploys in two regions, with distinct account-global names (the dashboard).
The functions are created but never run (LocalStack here has no Docker).
"""

import copy
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
GRACE = 3
CLIENT = dict(endpoint_url=ENDPOINT, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
STACKS = {"ecp-deploy-a": "team-a/*", "ecp-deploy-b": "team-b/*"}


def client(service, region="us-east-1"):
    return boto3.client(service, **{**CLIENT, "region_name": region})


def sample(name):
    return json.load(open(os.path.join(ROOT, "events", name)))


def fail(message):
    print(f"FAIL {message}")
    sys.exit(1)


def wait_for(stack, done, region="us-east-1"):
    cfn = client("cloudformation", region)
    while True:
        try:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        except cfn.exceptions.ClientError:
            return "DELETE_COMPLETE", {}
        if not status["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    if status["StackStatus"] != done:
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                   for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
                   if "FAILED" in e["ResourceStatus"]]
        fail(f"{stack} ended {status['StackStatus']}: {reasons[:5]}")
    return status["StackStatus"], {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}


def uploaded_template():
    """The template as `sam deploy` leaves it: the code uploaded, the rest as is."""
    s3 = client("s3")
    if not any(b["Name"] == "ecp-deploy-code" for b in s3.list_buckets().get("Buckets", [])):
        s3.create_bucket(Bucket="ecp-deploy-code")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
        s3.put_object(Bucket="ecp-deploy-code", Key="code.zip", Body=archive.getvalue())
    template = open(os.environ.get("DEPLOY_TEST_TEMPLATE", os.path.join(ROOT, "template.yaml"))).read()
    return template.replace("    CodeUri: .\n", "    CodeUri: s3://ecp-deploy-code/code.zip\n")


def deploy():
    template = uploaded_template()
    cfn = client("cloudformation")
    outputs = {}
    for stack, pattern in STACKS.items():
        started = time.time()
        if not stack.endswith("-a"):
            # The other stack brings its own secret by ARN (as a moved 0.2.0 secret is).
            arn = client("secretsmanager").create_secret(
                Name=f"{stack}/github-webhook-secret", SecretString=f"{stack}-secret")["ARN"]
        cfn.create_stack(
            StackName=stack, TemplateBody=template,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {
                "RepositoryNamePattern": pattern, "GracePeriodSeconds": str(GRACE),
                # One stack opts in as the docs say (a generated secret); the other with a
                # secret of its own by ARN.
                **({"GitHubWebhook": "true"} if stack.endswith("-a") else {"GitHubWebhookSecretArn": arn}),
                }.items()])
        _, outputs[stack] = wait_for(stack, "CREATE_COMPLETE")
        print(f"ok   {stack} CREATE_COMPLETE in {time.time() - started:.1f} s")
    return outputs


def queue_url(arn):
    return client("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]


def stop_consumers(outputs):
    """The functions cannot run here: keep the queue for the test's own reads."""
    lam = client("lambda")
    queues = {outputs[stack]["PruneQueueArn"] for stack in STACKS}
    mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                if m["EventSourceArn"] in queues]
    if len(mappings) != len(STACKS):
        fail(f"expected one queue mapping per stack, found {len(mappings)}")
    # Deleted, not disabled: LocalStack's poller keeps consuming a disabled mapping.
    for mapping in mappings:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
    deadline = time.time() + 30
    while any(m["EventSourceArn"] in queues
              for m in lam.list_event_source_mappings()["EventSourceMappings"]):
        if time.time() > deadline:
            fail("event source mappings did not stop")
        time.sleep(0.5)


def ecr_push(repository, tag, **detail):
    event = copy.deepcopy(sample("ecr-push-cache.json"))
    event["detail"].update({"repository-name": repository, "image-tag": tag, **detail})
    return event


def entry(event, bus="default"):
    return {"Source": event["source"], "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]), "EventBusName": bus}


def route(outputs):
    events = client("events")
    cases = []  # (label, entry, stacks whose queue must get it)
    for stack, pattern in STACKS.items():
        team = pattern.split("/")[0]
        cases += [
            (f"{team} cache push", ecr_push(f"{team}/app", "cache-main"), {stack}),
            (f"{team} app tag push", ecr_push(f"{team}/app", "v1.2.3"), set()),
            (f"{team} failed push", ecr_push(f"{team}/app", "cache-x", result="FAILURE"), set()),
            (f"{team} DELETE action", ecr_push(f"{team}/app", "cache-x", **{"action-type": "DELETE"}), set()),
            (f"{team} push by digest", ecr_push(f"{team}/app", ""), set()),
        ]
    cases.append(("out-of-scope repository push", ecr_push("other/app", "cache-main"), set()))
    github = []
    for stack in STACKS:
        bus = outputs[stack]["WebhookEventBusName"]
        push_deleted = sample("github-push-deleted.json")
        not_deleted = copy.deepcopy(push_deleted)
        not_deleted["detail"]["deleted"] = False
        tag_deleted = copy.deepcopy(push_deleted)
        tag_deleted["detail"]["ref"] = "refs/tags/v1.0.0"
        github += [
            (f"{stack} branch delete", sample("github-delete-branch.json"), bus, {stack}),
            (f"{stack} push deleting a branch", push_deleted, bus, {stack}),
            (f"{stack} tag delete", sample("github-delete-tag.json"), bus, set()),
            (f"{stack} push not deleting", not_deleted, bus, set()),
            (f"{stack} push deleting a git tag", tag_deleted, bus, set()),
            (f"{stack} ping", sample("github-ping.json"), bus, set()),
        ]
    labelled = [(label, entry(e), want) for label, e, want in cases]
    labelled += [(label, entry(e, bus), want) for label, e, bus, want in github]
    for label, e, _ in labelled:
        # A marker in the detail tells the deliveries apart on the queue.
        detail = json.loads(e["Detail"])
        detail["deploy-test-case"] = label
        e["Detail"] = json.dumps(detail)
        answer = events.put_events(Entries=[e])
        if answer["FailedEntryCount"]:
            fail(f"PutEvents refused {label}: {answer['Entries']}")
    sent_at = time.time()

    sqs = client("sqs")
    queues = {stack: queue_url(outputs[stack]["PruneQueueArn"]) for stack in STACKS}
    early = {stack: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
             .get("Messages", []) for stack, url in queues.items()}
    if time.time() - sent_at < GRACE and any(early.values()):
        fail(f"events arrived before the {GRACE} s grace period: {early}")
    print(f"ok   nothing on the queues before the {GRACE} s grace period")

    received = {stack: set() for stack in STACKS}
    deadline = time.time() + GRACE + 15
    while time.time() < deadline:
        for stack, url in queues.items():
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=1).get("Messages", []):
                received[stack].add(json.loads(m["Body"])["detail"]["deploy-test-case"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    for stack in STACKS:
        want = {label for label, _, stacks in labelled if stack in stacks}
        if received[stack] != want:
            fail(f"{stack} queue got {sorted(received[stack])}, expected {sorted(want)}")
        print(f"ok   {stack} queue got exactly {sorted(want)}")


def delete():
    cfn = client("cloudformation")
    for stack in STACKS:
        cfn.delete_stack(StackName=stack)
    for stack in STACKS:
        wait_for(stack, "DELETE_COMPLETE")
        print(f"ok   {stack} deleted")


REGIONS = ["us-east-1", "eu-west-1"]
SAME_NAME = "ecp-deploy-regions"


def deployed_dashboard_name(region):
    """The dashboard name the stack in `region` asks for. LocalStack does not create dashboards
    (their Ref answers "unknown"), so the name is resolved from the template the stack was
    deployed with, with that stack's own name and region."""
    cfn = client("cloudformation", region)
    body = cfn.get_template(StackName=SAME_NAME, TemplateStage="Original")["TemplateBody"]
    text = body if isinstance(body, str) else json.dumps(body)
    match = re.search(r"DashboardName: !Sub (\S+)", text)
    if not match:
        fail(f"no DashboardName in the template deployed in {region}")
    stack = cfn.describe_stacks(StackName=SAME_NAME)["Stacks"][0]
    region_of_stack = stack["StackId"].split(":")[3]
    return (match.group(1).replace("${AWS::StackName}", SAME_NAME)
            .replace("${AWS::Region}", region_of_stack))


def two_regions():
    """docs/deploy.md: one stack per region, under the same stack name. Names global to the
    account (the dashboard) must differ between the two; regional ones may repeat."""
    template = uploaded_template()
    dashboards = {}
    try:
        for region in REGIONS:
            client("cloudformation", region).create_stack(
                StackName=SAME_NAME, TemplateBody=template,
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
        for region in REGIONS:
            wait_for(SAME_NAME, "CREATE_COMPLETE", region)
            dashboards[region] = deployed_dashboard_name(region)
            print(f"ok   {SAME_NAME} in {region} CREATE_COMPLETE, dashboard {dashboards[region]}")
        if len(set(dashboards.values())) != len(REGIONS):
            fail(f"the same stack name in {REGIONS} builds one account-global dashboard name: {dashboards}")
        print("ok   one stack name in two regions: every account-global name differs")
    finally:
        for region in REGIONS:
            client("cloudformation", region).delete_stack(StackName=SAME_NAME)
        for region in REGIONS:
            wait_for(SAME_NAME, "DELETE_COMPLETE", region)


def main():
    try:
        outputs = deploy()
        stop_consumers(outputs)
        route(outputs)
    finally:
        delete()
    two_regions()
    print("deploy test passed")


if __name__ == "__main__":
    main()
