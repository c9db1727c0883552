#!/usr/bin/env python3
"""Upgrade check: moving a 0.2.0 stack to this template with a plain `sam deploy` keeps every
stateful resource. For each way a 0.2.0 stack can be configured (defaults; the webhook from the
secret parameter, from a secret ARN; a GitHub token), both templates go through SAM's transform
and their conditions are evaluated; then every queue, secret, log group, saved query and event bus
the old stack has must still be there under the same logical ID and type, with the same value for
every property whose change CloudFormation performs by replacement (the createOnlyProperties of
the resource's schema, from cfn-lint's copy), and the webhook secret must keep its value source (a
secret given as a parameter must not become a generated one: GitHub would stop matching).
A replaced queue loses its messages, a replaced log group its audit trail, a replaced secret
GitHub's deliveries. Exits 1 on any.

usage: check_upgrade.py [OLD_TEMPLATE]   (default scripts/deploy_test/template-0.2.0.yaml)
"""

import copy
import json
import os
import sys

from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_template_rules import condition_evaluator, resource_schema, transformed  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
STATEFUL = {"AWS::SQS::Queue", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup",
            "AWS::Logs::QueryDefinition", "AWS::Events::EventBus"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-webhook-AbCdEf"
CONFIGURATIONS = {
    "defaults": {},
    "webhook from the secret parameter": {"GitHubWebhookSecret": "s3cret"},
    "webhook from a secret ARN": {"GitHubWebhookSecretArn": SECRET_ARN},
    "GitHub token and stale expiry": {"GitHubTokenSecretArn": SECRET_ARN, "StaleCacheDays": "30"},
    "operators excluded from pull-time updates": {
        "PullTimeExcludedPrincipals": "arn:aws:iam::123456789012:role/ops,arn:aws:iam::123456789012:user/me"},
    "disabled, no sweep": {"Enabled": "false", "SweepEnabled": "false"},
}


# A configuration the new template's Rules refuse is not upgraded (CloudFormation changes
# nothing); the refusal must name the prepared way, which is checked here like any upgrade, except
# for the stateful resources whose value that way moves out first.
MIGRATIONS = {
    "webhook from the secret parameter": (
        {"GitHubWebhookSecret": "", "GitHubWebhookSecretArn": SECRET_ARN},
        {"WebhookSecret"},  # `ecr-cache-pruner move-webhook-secret` copies its value
        "move-webhook-secret",
    ),
}


def refusals(template, parameters):
    """The AssertDescription of every Rules assertion these parameter values fail."""
    truth_of = conditions(template, parameters, evaluator=True)
    out = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not truth_of(rule["RuleCondition"]):
            continue
        out += [a.get("AssertDescription", "refused") for a in rule["Assertions"] if not truth_of(a["Assert"])]
    return out


def conditions(template, parameters, evaluator=False):
    """Each condition's value for these parameter values (the template's defaults otherwise);
    with `evaluator`, the function that evaluates any condition expression instead."""
    values = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
    values.update(parameters)
    ev = condition_evaluator(template.get("Conditions", {}), values)
    if evaluator:
        return ev
    return {name: ev({"Condition": name}) for name in template.get("Conditions", {})}


def resolve_ifs(node, truth):
    """The node with every Fn::If decided (AWS::NoValue dropped)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolve_ifs(yes if truth[name] else no, truth)
        out = {k: resolve_ifs(v, truth) for k, v in node.items()}
        return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [resolve_ifs(v, truth) for v in node if resolve_ifs(v, truth) != {"Ref": "AWS::NoValue"}]
    return node


def stack(template_text, parameters):
    """Logical ID -> resource of the stack these parameters make (conditions decided)."""
    template = yaml_parse(template_text)
    out = transformed(copy.deepcopy(template))
    truth = conditions(out, parameters)
    return {name: resolve_ifs(r, truth) for name, r in out["Resources"].items()
            if "Condition" not in r or truth[r["Condition"]]}


def url_functions(resources):
    """Logical IDs of the functions that have a function URL (SAM's AWS::Lambda::Url)."""
    return {r["Properties"]["TargetFunctionArn"]["Ref"] for r in resources.values()
            if r["Type"] == "AWS::Lambda::Url" and "Ref" in r["Properties"].get("TargetFunctionArn", {})}


def create_only(resource_type):
    return [p.split("/")[-1] for p in resource_schema(resource_type).get("createOnlyProperties", [])]


def main():
    old_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "scripts", "deploy_test", "template-0.2.0.yaml")
    old_text = open(old_path).read()
    new_text = open(os.path.join(ROOT, "template.yaml")).read()
    problems = []
    new_template = yaml_parse(new_text)
    for label, parameters in CONFIGURATIONS.items():
        old = stack(old_text, parameters)
        moved = set()
        refused = refusals(new_template, parameters)
        if refused:
            if label not in MIGRATIONS:
                problems.append(f"{label}: the new template refuses it ({refused}) and no prepared way is checked")
                continue
            migrated, moved, named = MIGRATIONS[label]
            if not all(named in r for r in refused):
                problems.append(f"{label}: the refusal does not name the way ({named}): {refused}")
            if refusals(new_template, migrated):
                problems.append(f"{label}: the prepared way is refused too ({refusals(new_template, migrated)})")
            print(f"ok   {label}: refused as it stands (nothing changes), the refusal names `{named}`")
            label = f"{label}, after `{named}`"
            parameters = migrated
        new = stack(new_text, parameters)
        kept = 0
        for name, before in old.items():
            if name in moved:
                if name in new:
                    problems.append(f"{label}: {name} stays although its value moved out")
                continue
            if name in url_functions(old) and name in new:
                # A function URL belongs to its function: a new name is a new URL for GitHub.
                was = before.get("Properties", {}).get("FunctionName")
                now = new[name].get("Properties", {}).get("FunctionName")
                if json.dumps(was, sort_keys=True) != json.dumps(now, sort_keys=True):
                    problems.append(f"{label}: {name} is renamed ({was} -> {now}): its URL changes")
            if before["Type"] not in STATEFUL:
                continue
            after = new.get(name)
            if after is None or after["Type"] != before["Type"]:
                problems.append(f"{label}: {before['Type']} {name} would be deleted (no longer in the template)")
                continue
            for prop in create_only(before["Type"]):
                was = before.get("Properties", {}).get(prop)
                now = after.get("Properties", {}).get(prop)
                if json.dumps(was, sort_keys=True) != json.dumps(now, sort_keys=True):
                    problems.append(f"{label}: {name}.{prop} changes ({was} -> {now}): "
                                    "CloudFormation replaces the resource")
            if before["Type"] == "AWS::SecretsManager::Secret":
                source = ("SecretString", "GenerateSecretString")
                was = {k: before["Properties"].get(k) for k in source}
                now = {k: after["Properties"].get(k) for k in source}
                if was != now:
                    problems.append(f"{label}: {name}'s value source changes ({was} -> {now}): "
                                    "a new value would no longer match GitHub's")
            kept += 1
        print(f"ok   {label}: {kept} stateful resource(s) of the 0.2.0 stack kept in place" if not
              [p for p in problems if p.startswith(label)] else f"FAIL {label}")
    if problems:
        for p in problems:
            print(f"upgrade check: {p}", file=sys.stderr)
        sys.exit(1)
    print("upgrade check: a 0.2.0 stack upgrades in place")


if __name__ == "__main__":
    main()
