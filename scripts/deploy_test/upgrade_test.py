#!/usr/bin/env python3
"""Upgrade test in LocalStack, in the two steps LocalStack can run. First the move out of the retired
parameter: a 0.2.0 stack whose webhook secret came from `GitHubWebhookSecret` (as 0.2.0 stacks were
set up), and `ecr-cache-pruner move-webhook-secret --stack` (the binary in $ECR_CACHE_PRUNER_BIN)
must copy the value CloudFormation stored into a secret of its own and print the two overrides.
Then the upgrade of a 0.2.0 webhook stack reading that secret by ARN (what the move leaves): a
message on its queue and on its dead-letter queue, the stack updated to this template keeping every
parameter (what `sam deploy` does); it fails if a queue, the secret, a log group or the event bus
got a new physical resource, a message was lost, or the secret's value or the webhook URL changed.

The single deploy that retires the parameter (both overrides at once) is not run here: it changes
the webhook function's environment (the secret's ARN), and LocalStack's engine then replaces the
function, because it compares create-only properties by their expression (0.2.0 wrote FunctionName
as a plain !Sub, this template behind a condition), not their value; the new function's name is
taken by the old one, and the update fails. (For the same reason this release leaves the webhook
function's configuration as 0.2.0 has it.) scripts/check_upgrade.py checks that deploy on resolved
values: the name and URL kept, only the moved secret removed, and the unprepared deploy refused by
the template's rule, which LocalStack does not evaluate. Run by scripts/deploy-test.sh.
"""

import io
import json
import os
import subprocess
import sys
import time
import zipfile

from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_test import client, fail, wait_for  # noqa: E402  (the two-stack test's LocalStack helpers)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
STACK = "ecp-upgrade"
STATEFUL = {"AWS::SQS::Queue", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup", "AWS::Events::EventBus"}


def wait(done):
    return wait_for(STACK, done)[1]


def template(path):
    text = open(path).read()
    return text.replace("    CodeUri: .\n", "    CodeUri: s3://ecp-upgrade-code/code.zip\n")


def stateful():
    resources = client("cloudformation").describe_stack_resources(StackName=STACK)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r["ResourceType"] in STATEFUL}


def main():
    s3 = client("s3")
    s3.create_bucket(Bucket="ecp-upgrade-code")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket="ecp-upgrade-code", Key="code.zip", Body=archive.getvalue())
    cfn = client("cloudformation")
    legacy = f"{STACK}-legacy"
    try:
        # 1. The move out of the retired parameter.
        cfn.create_stack(StackName=legacy, TemplateBody=template(os.path.join(ROOT, "scripts", "deploy_test", "template-0.2.0.yaml")),
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                         Parameters=[{"ParameterKey": "GitHubWebhookSecret", "ParameterValue": "kept-secret"},
                                     {"ParameterKey": "RepositoryNamePattern", "ParameterValue": "legacy/*"}])
        wait_for(legacy, "CREATE_COMPLETE")
        binary = os.environ["ECR_CACHE_PRUNER_BIN"]
        env = {**os.environ, "AWS_ENDPOINT_URL": os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"),
               "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        moved = subprocess.run([binary, "--json", "move-webhook-secret", "--stack", legacy],
                               env=env, capture_output=True, text=True)
        if moved.returncode != 0:
            fail(f"move-webhook-secret exited {moved.returncode}: {moved.stdout} {moved.stderr}")
        moved = json.loads(moved.stdout)
        overrides = dict(part.split("=", 1) for part in moved["parameter_overrides"].split(" "))
        overrides = {k: v.strip('"') for k, v in overrides.items()}
        if overrides != {"GitHubWebhookSecret": "", "GitHubWebhookSecretArn": moved["to"]}:
            fail(f"unexpected overrides {moved['parameter_overrides']}")
        value = client("secretsmanager").get_secret_value(SecretId=moved["to"])["SecretString"]
        if value != "kept-secret":
            fail("the moved secret does not hold the stack's value")
        again = json.loads(subprocess.run([binary, "--json", "move-webhook-secret", "--stack", legacy],
                                          env=env, capture_output=True, text=True).stdout)
        if again.get("to") != moved["to"] or again.get("reused") is not True:
            fail(f"a second move did not reuse the first: {again}")
        print(f"ok   move-webhook-secret copied the 0.2.0 stack's secret (from its parameter) to {moved['to']}, "
              "and reused it when run again")

        # 2. A 0.2.0 webhook stack reading that secret by ARN, upgraded in place.
        cfn.create_stack(StackName=STACK, TemplateBody=template(os.path.join(ROOT, "scripts", "deploy_test", "template-0.2.0.yaml")),
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                         Parameters=[{"ParameterKey": "GitHubWebhookSecretArn", "ParameterValue": moved["to"]},
                                     {"ParameterKey": "RepositoryNamePattern", "ParameterValue": "upgrade/*"}])
        outputs = wait("CREATE_COMPLETE")
        before = stateful()
        url_before = outputs["WebhookUrl"]
        # The functions cannot run here: stop the queue's consumer so the message stays.
        lam = client("lambda")
        for m in lam.list_event_source_mappings()["EventSourceMappings"]:
            if m["EventSourceArn"] == outputs["PruneQueueArn"]:
                lam.delete_event_source_mapping(UUID=m["UUID"])
        sqs = client("sqs")
        for key in ("PruneQueueUrl", "DeadLetterQueueUrl"):
            # No delay: the prune queue delays by the grace period otherwise.
            sqs.send_message(QueueUrl=outputs[key], MessageBody=json.dumps({"kept": key}), DelaySeconds=0)
        print(f"ok   0.2.0 stack CREATE_COMPLETE with {len(before)} stateful resources; a message on each queue")

        parameters = [{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                      for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]]
        new_template = template(os.path.join(ROOT, "template.yaml"))
        # Parameters the new template no longer has are not passed; new ones take their defaults.
        known = set(yaml_parse(new_template).get("Parameters", {}))
        cfn.update_stack(StackName=STACK, TemplateBody=new_template,
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                         Parameters=[p for p in parameters if p["ParameterKey"] in known])
        outputs = wait("UPDATE_COMPLETE")
        after = stateful()
        replaced = {k: (before[k], after.get(k)) for k in before if after.get(k) != before[k]}
        if replaced:
            fail(f"stateful resources replaced or gone by the upgrade: {replaced}")
        for key in ("PruneQueueUrl", "DeadLetterQueueUrl"):
            # Counted, not received: the updated queue mapping may already hold it in flight.
            attributes = sqs.get_queue_attributes(QueueUrl=outputs[key], AttributeNames=["All"])["Attributes"]
            held = sum(int(attributes.get(a, 0)) for a in (
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"))
            if held < 1:
                fail(f"the message on {key} did not survive the upgrade ({attributes})")
        if outputs["WebhookUrl"] != url_before:
            fail(f"the webhook URL changed ({url_before} -> {outputs['WebhookUrl']}): GitHub would deliver to the old one")
        if outputs["WebhookSecretArn"] != moved["to"]:
            fail(f"the webhook reads {outputs['WebhookSecretArn']}, not the moved secret {moved['to']}")
        function = client("lambda").get_function_configuration(
            FunctionName=f"{STACK}-github-webhook")["Environment"]["Variables"]
        if function["GITHUB_WEBHOOK_SECRET_ARN"] != moved["to"]:
            fail(f"the webhook function reads {function['GITHUB_WEBHOOK_SECRET_ARN']}")
        secret = client("secretsmanager").get_secret_value(SecretId=outputs["WebhookSecretArn"])["SecretString"]
        if secret != "kept-secret":
            fail("the webhook secret's value changed in the upgrade: GitHub's deliveries would fail")
        print(f"ok   upgraded to this template: UPDATE_COMPLETE; all {len(before)} stateful resources kept "
              f"({len(after)} now), both messages, the moved webhook secret and the webhook URL kept")
    finally:
        for name in (STACK, legacy):
            cfn.delete_stack(StackName=name)
        for name in (STACK, legacy):
            for _ in range(240):
                try:
                    if cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE":
                        break
                except cfn.exceptions.ClientError:
                    break
                time.sleep(0.5)
    print("upgrade test passed")


if __name__ == "__main__":
    main()
