#!/usr/bin/env python3
"""Checks over the SAM-transformed template for faults that linters pass and a real account (or a
second stack) would reveal, and the EventBridge rule patterns against every sample event.

Run by scripts/check-template.sh with the project's .venv (samtranslator comes with aws-sam-cli,
the EventBridge matcher with moto). Offline; exits non-zero on the first failed check.
"""

import copy
import glob
import json
import os
import re
import sys

from moto.events.models import EventPattern
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FAILED = []


def resource_schema(resource_type):
    """The CloudFormation resource schema cfn-lint ships for `resource_type` (us-east-1)."""
    import cfnlint
    base = os.path.join(os.path.dirname(cfnlint.__file__), "data", "schemas")
    providers = json.load(open(os.path.join(base, "providers", "us-east-1.json")))
    if resource_type not in providers:
        return {}
    return json.load(open(os.path.join(base, "resources", providers[resource_type] + ".json")))


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        FAILED.append(name)


class ManagedPolicies:
    """What `sam` would look up in IAM: only the names SAM may attach here."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        }


def transformed(template):
    template = copy.deepcopy(template)
    # `sam build` replaces the local CodeUri with the built artifact; the transform wants an S3 URI.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(template, {}, ManagedPolicies())


def statements(role):
    """Every policy statement of a role, with conditional policies and statements taken as
    present."""
    out = []
    for policy in role["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            out.append(statement)
    return out


def as_list(value):
    return value if isinstance(value, list) else [value]


def sub_text(value):
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"]
    return json.dumps(value)


def resolve(node, parameters, conditions=None):
    """Replaces {"Ref": parameter} with the parameter's value, and decides each Fn::If whose
    condition `conditions` (the template's Conditions) can evaluate from the parameters."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in parameters:
            return parameters[node["Ref"]]
        if set(node) == {"Fn::If"} and conditions is not None:
            name, yes, no = node["Fn::If"]
            return resolve(yes if condition(name, conditions, parameters) else no, parameters, conditions)
        return {k: resolve(v, parameters, conditions) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, parameters, conditions) for v in node]
    return node


def condition_evaluator(conditions, parameters):
    """A function evaluating condition expressions (Fn::Equals, Not, And, Or, Select, Split, Join
    over Ref and Condition) for these parameter values; each named condition is decided once."""
    known = {}

    def ev(node):
        if isinstance(node, dict):
            (fn, arg), = node.items()
            if fn == "Ref":
                return str(parameters[arg])
            if fn == "Condition":
                if arg not in known:
                    known[arg] = ev(conditions[arg])
                return known[arg]
            if fn == "Fn::Equals":
                return ev(arg[0]) == ev(arg[1])
            if fn == "Fn::Select":
                return ev(arg[1])[int(arg[0])]
            if fn == "Fn::Split":
                return ev(arg[1]).split(arg[0])
            if fn == "Fn::Join":
                return arg[0].join(ev(a) for a in ev(arg[1]))
            if fn == "Fn::Not":
                return not ev(arg[0])
            if fn == "Fn::And":
                return all(ev(a) for a in arg)
            if fn == "Fn::Or":
                return any(ev(a) for a in arg)
            raise ValueError(f"cannot evaluate {fn}")
        if isinstance(node, list):
            return [ev(a) for a in node]
        return str(node)

    return ev


def condition(name, conditions, parameters):
    """A named condition's value."""
    return condition_evaluator(conditions, parameters)({"Condition": name})


def wildcard_values(pattern):
    if isinstance(pattern, dict):
        for k, v in pattern.items():
            if k == "wildcard":
                yield from as_list(v)
            else:
                yield from wildcard_values(v)
    elif isinstance(pattern, list):
        for v in pattern:
            yield from wildcard_values(v)


def eventbridge_accepts(pattern):
    """AWS's rule-creation limits that emulators do not enforce."""
    for value in wildcard_values(pattern):
        if "**" in value:
            return False, f"consecutive wildcards in {value!r}"
        if value.count("*") > 5:
            return False, f"more than five wildcards in {value!r}"
    return True, ""


def main():
    template = yaml_parse(open(os.path.join(ROOT, "template.yaml")).read())
    out = transformed(template)
    resources = out["Resources"]
    role = resources["PrunerFunctionRole"]
    role_statements = statements(role)

    # 1. DescribeRepositories (no names) is authorised against repository/*.
    describe = [s for s in role_statements if "ecr:DescribeRepositories" in as_list(s["Action"])]
    check("ecr:DescribeRepositories is granted on repository/*",
          bool(describe) and all(sub_text(s["Resource"]).endswith(":repository/*") for s in describe),
          json.dumps(describe))

    # 2. A second stack must not collide on the schedule's name.
    schedules = [r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    check("schedules carry no fixed Name (two stacks can coexist)",
          bool(schedules) and all("Name" not in r["Properties"] for r in schedules))

    # 3. RepositoryNamePattern refuses what EventBridge refuses.
    parameter = template["Parameters"]["RepositoryNamePattern"]
    regex = re.compile(parameter["AllowedPattern"])

    class Allowed:
        @staticmethod
        def fullmatch(value):
            return len(value) >= int(parameter.get("MinLength", 0)) and regex.fullmatch(value)

    allowed = Allowed()
    good = ["*", "team-a/*", "my-app", "team-*/app-*", "a*b*c*d*e*"]
    bad = ["**", "team/**", "a**b", "*a*b*c*d*e*", "Team/*", ""]
    check("RepositoryNamePattern accepts usual patterns",
          all(allowed.fullmatch(v) for v in good), [v for v in good if not allowed.fullmatch(v)])
    check("RepositoryNamePattern refuses consecutive or more than five wildcards",
          not any(allowed.fullmatch(v) for v in bad), [v for v in bad if allowed.fullmatch(v)])

    # 4. No reserved concurrency unless asked (Lambda keeps 100 unreserved: accounts with a quota
    #    of 100 or less, new ones often 10, cannot reserve any).
    reserved = resources["WebhookFunction"]["Properties"].get("ReservedConcurrentExecutions")
    default_reserved = template["Parameters"]["WebhookReservedConcurrency"]["Default"]
    check("webhook reserves no concurrency by default",
          reserved is None or ("Fn::If" in reserved and default_reserved == 0), json.dumps(reserved))

    # 5. A failed scheduled (asynchronous) invocation is kept, not dropped.
    invoke_configs = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    check("asynchronous invocations have an on-failure destination",
          any(r["Properties"].get("DestinationConfig", {}).get("OnFailure") for r in invoke_configs))
    # The dead-letter queue holds only events (the prune queue's redrives and EventBridge delivery
    # failures), which `start-message-move-task --destination-arn <prune queue>` puts back; Lambda's
    # on-failure records wrap the event and go to a queue of their own.
    destinations = [json.dumps(r["Properties"]["DestinationConfig"]["OnFailure"]) for r in invoke_configs
                    if r["Properties"].get("DestinationConfig", {}).get("OnFailure")]
    check("on-failure records have their own queue, not the dead-letter queue",
          destinations and not any("PruneDeadLetterQueue" in d for d in destinations), str(destinations))

    # 6. SQS permissions on the function's own queue only.
    managed = role["Properties"].get("ManagedPolicyArns", [])
    check("no AWSLambdaSQSQueueExecutionRole (SQS on every queue)",
          not any("SQSQueueExecutionRole" in json.dumps(m) for m in managed), managed)
    sqs = [s for s in role_statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    check("SQS actions are scoped to the stack's queues",
          bool(sqs) and all("*" not in json.dumps(s["Resource"]) for s in sqs), json.dumps(sqs))
    mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    check("the queue's event source mapping reports batch item failures",
          any("ReportBatchItemFailures" in r["Properties"].get("FunctionResponseTypes", []) for r in mappings))

    # 7. The GitHub token: partial or full ARN, customer-managed KMS keys.
    token = [s for s in role_statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    check("GitHub token readable by full or partial ARN",
          any("-??????" in json.dumps(s["Resource"]) for s in token), json.dumps(token))
    kms = [s for s in role_statements if "kms:Decrypt" in as_list(s["Action"])]
    check("kms:Decrypt for the token, only via Secrets Manager",
          bool(kms) and all("kms:ViaService" in json.dumps(s.get("Condition", {})) for s in kms))

    # Function URL with AuthType NONE needs lambda:InvokeFunction too (since Oct 2025).
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    check("function URL has both InvokeFunctionUrl and InvokeFunction permissions",
          {p["Properties"]["Action"] for p in permissions} >= {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"})

    # Dashboard: a body of valid widgets, and its URL as an output.
    dashboards = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    check("a CloudWatch dashboard exists", bool(dashboards))
    for d in dashboards:
        body = d["Properties"]["DashboardBody"]
        text = body["Fn::Sub"] if isinstance(body, dict) else body
        if isinstance(text, list):  # Fn::Sub with a variable map
            text = text[0]
        try:
            parsed = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
            widgets = parsed["widgets"]
            ok = bool(widgets) and all(w["type"] in ("metric", "text", "log") and "properties" in w for w in widgets)
        except (ValueError, KeyError) as err:
            ok, widgets = False, str(err)
        check("dashboard body is JSON with widgets", ok, str(widgets)[:200])
        check("dashboard graphs what a dry run would delete",
              "ManifestsWouldDelete" in text and "TagsWouldRemove" in text)
    check("dashboard URL is an output", "DashboardUrl" in out.get("Outputs", {}))
    queries = [r for r in resources.values() if r["Type"] == "AWS::Logs::QueryDefinition"]
    check("Logs Insights queries over the audit trail: deleted, would delete, failures, by repository",
          len(queries) == 4 and all("PrunerLogGroup" in json.dumps(q["Properties"]["LogGroupNames"]) for q in queries)
          and sum("audit" in q["Properties"]["QueryString"] for q in queries) == 3)

    # Kill switch: Enabled=false stops every way in (both rules, the schedule, the queue mapping).
    def follows_switch(value, on, off):
        return value == {"Fn::If": ["IsEnabled", on, off]} or (
            isinstance(value, dict) and "Fn::If" in value and value["Fn::If"][0] == "SweepScheduled")
    switched = {name: r for name, r in resources.items()
                if r["Type"] in ("AWS::Events::Rule", "AWS::Scheduler::Schedule", "AWS::Lambda::EventSourceMapping")}
    unswitched = [name for name, r in switched.items()
                  if not (follows_switch(r["Properties"].get("State"), "ENABLED", "DISABLED")
                          or follows_switch(r["Properties"].get("Enabled"), True, False))]
    check("the Enabled kill switch stops both rules, the schedule and the queue mapping",
          len(switched) >= 4 and not unswitched, f"not switched: {unswitched}")
    check("the sweep schedule needs both Enabled and SweepEnabled",
          template["Conditions"]["SweepScheduled"] == {"Fn::And": [{"Condition": "IsEnabled"}, {"Condition": "SweepOn"}]})

    # Tags for cost allocation on every taggable resource the stack creates: every type whose
    # CloudFormation schema (cfn-lint's copy) has a Tags property, rules and the queue mapping too.
    taggable = [name for name, r in resources.items() if "Tags" in resource_schema(r["Type"]).get("properties", {})]
    untagged = [name for name in taggable
                if "project" not in json.dumps(resources[name]["Properties"].get("Tags", []))]
    check("every taggable resource carries the project tag (rules and the queue mapping included)",
          not untagged and {"EcrCachePushRule", "PruneQueueMapping"} <= set(taggable), f"untagged: {untagged}")

    # One queue policy per queue (SQS documents a policy as covering a single queue), and every
    # queue a rule sends to (as target or dead-letter target) has one naming that rule's service.
    policies = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::QueuePolicy"}
    covered = [q.get("Ref") for r in policies.values() for q in r["Properties"]["Queues"]]
    check("each queue policy covers exactly one queue",
          policies and all(len(r["Properties"]["Queues"]) == 1 for r in policies.values()),
          str({n: r["Properties"]["Queues"] for n, r in policies.items()}))
    rule_queues = set()
    for r in resources.values():
        if r["Type"] == "AWS::Events::Rule":
            for target in r["Properties"]["Targets"]:
                for arn in (target["Arn"], target.get("DeadLetterConfig", {}).get("Arn")):
                    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
                        rule_queues.add(arn["Fn::GetAtt"][0])
    check("every queue a rule sends to has its own policy", rule_queues and rule_queues <= set(covered),
          f"rule queues {sorted(rule_queues)}, policies cover {covered}")

    # Pull-time neutral: the pruner's role is an ECR pull-time update exclusion unless opted out.
    exclusions = [r for r in resources.values() if r["Type"] == "AWS::ECR::PullTimeUpdateExclusion"]
    pruner_exclusions = [r for r in exclusions
                         if r["Properties"]["PrincipalArn"] == {"Fn::GetAtt": ["PrunerFunctionRole", "Arn"]}]
    check("the pruner's role is a pull-time update exclusion, with an opt-out",
          len(pruner_exclusions) == 1
          and pruner_exclusions[0].get("Condition") == "IsPullTimeNeutral"
          and template["Parameters"]["PullTimeNeutral"]["Default"] == "true")
    # Operators' principals: one exclusion per slot the parameter's pattern allows, no more.
    principals = template["Parameters"]["PullTimeExcludedPrincipals"]
    pattern = re.compile(principals["AllowedPattern"])
    arn = "arn:aws:iam::123456789012:role/ops"
    good = ["", arn, ",".join([arn] * 5), "arn:aws:iam::123456789012:user/me",
            "arn:aws:iam::123456789012:role/team/path/reporting", "arn:aws-cn:iam::123456789012:role/ops"]
    bad = [",".join([arn] * 6), "arn:aws:sts::123456789012:assumed-role/ops/session", f"{arn}, {arn}",
           f"{arn},", "ops", "arn:aws:iam::12345:role/ops"]
    slots = [r for r in exclusions if r is not pruner_exclusions[0]] if pruner_exclusions else []
    check("PullTimeExcludedPrincipals takes up to 5 role or user ARNs and refuses the rest",
          all(pattern.fullmatch(v) for v in good) and not any(pattern.fullmatch(v) for v in bad),
          [v for v in good if not pattern.fullmatch(v)] + [v for v in bad if pattern.fullmatch(v)])
    check("each of the 5 slots registers its principal under its own condition",
          len(slots) == 5 and all(r["Properties"]["PrincipalArn"] == {"Fn::Select": [i, {"Fn::Split": [",", {"Ref": "PullTimeExcludedPrincipals"}]}]}
                                  and r.get("Condition") == f"ExcludesPrincipal{i + 1}"
                                  for i, r in enumerate(slots)), json.dumps(slots)[:300])

    # CacheBudget refuses at deploy what the pruner would refuse at start-up (the same lists are in
    # src/inbound/config.rs's tests): a budget the function cannot read fails every invocation.
    budget = template["Parameters"]["CacheBudget"]
    pattern = re.compile(budget["AllowedPattern"])
    good = ["", "20GiB", "1.5 TiB", "512MiB", "team-a/*=50GiB,*=20GiB", "team-a/*=50GiB, *=20GiB"]
    bad = ["20GB", "20", "GiB", "lots", "team-a/*=50GiB,20GiB", "=5GiB", "20gib", "1..5GiB"]
    check("CacheBudget takes a binary size or glob=size rules and refuses the rest",
          budget["Default"] == "" and all(pattern.fullmatch(v) for v in good)
          and not any(pattern.fullmatch(v) for v in bad),
          [v for v in good if not pattern.fullmatch(v)] + [v for v in bad if pattern.fullmatch(v)])
    env = resources["PrunerFunction"]["Properties"]["Environment"]["Variables"]
    rule = template.get("Rules", {}).get("CacheBudgetNeedsPullTimeNeutral", {})
    check("a budget is refused without PullTimeNeutral (its reads must not refresh pull times)",
          rule.get("RuleCondition") == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CacheBudget"}, ""]}]}
          and rule.get("Assertions", [{}])[0].get("Assert")
          == {"Fn::Equals": [{"Ref": "PullTimeNeutral"}, "true"]}, json.dumps(rule)[:200])
    check("the budget reaches the pruner",
          env.get("CACHE_BUDGET") == {"Ref": "CacheBudget"}
          and env.get("CACHE_BUDGET_MIN_AGE_MINUTES") == {"Ref": "CacheBudgetMinAgeMinutes"}
          and template["Parameters"]["CacheBudgetMinAgeMinutes"]["Default"] == 60)

    # Names that fit anywhere: every name built from the stack name stays within its service's
    # limit for the longest stack name CloudFormation allows (128 characters; StackSets' instance
    # stacks are `StackSet-<name>-<36-character id>`). The one exception is the webhook function's
    # name kept for webhooks set up the 0.2.0 way (condition LegacyWebhookName): those stacks exist,
    # so their names fit.
    limits = {("AWS::Lambda::Function", "FunctionName"): 64, ("AWS::Logs::LogGroup", "LogGroupName"): 512,
              ("AWS::Events::EventBus", "Name"): 256, ("AWS::Events::Rule", "Name"): 64,
              ("AWS::Scheduler::Schedule", "Name"): 64, ("AWS::Logs::QueryDefinition", "Name"): 255,
              ("AWS::CloudWatch::Dashboard", "DashboardName"): 255, ("AWS::SQS::Queue", "QueueName"): 80,
              ("AWS::SecretsManager::Secret", "Name"): 512, ("AWS::IAM::Role", "RoleName"): 64}
    longest_stack = "S" * 128

    def worst_length(value):
        if isinstance(value, dict) and "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            text = text.replace("${AWS::StackName}", longest_stack)
            return len(re.sub(r"\$\{[^}]+\}", "x" * 20, text))
        return len(value) if isinstance(value, str) else 0

    too_long, legacy = [], []
    for name, r in resources.items():
        for (kind, prop), limit in limits.items():
            value = r["Properties"].get(prop) if r["Type"] == kind else None
            if value is None:
                continue
            if isinstance(value, dict) and "Fn::If" in value:
                condition, kept, generated = value["Fn::If"]
                legacy.append((name, condition, generated))
                value = generated
                if condition != "LegacyWebhookName" or generated != {"Ref": "AWS::NoValue"}:
                    too_long.append(f"{name}.{prop}: only LegacyWebhookName may keep a stack-named name")
                continue
            if "AWS::StackName" in json.dumps(value) and worst_length(value) > limit:
                too_long.append(f"{name}.{prop}: {worst_length(value)} > {limit}")
    check("every name from the stack name fits its limit for a 128-character stack name",
          not too_long, "; ".join(too_long))
    check("no function is named from the stack name (but a 0.2.0 webhook's, kept for its URL)",
          not any(r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
                  and not (isinstance(r["Properties"]["FunctionName"], dict) and "Fn::If" in r["Properties"]["FunctionName"])
                  for r in resources.values()), str(legacy))

    # Names unique where the resource lives: a name that is global to the account (CloudWatch
    # dashboards: "All dashboards in your account are global"; IAM roles) repeats in every region
    # a stack of the same name is deployed to, so it must carry AWS::Region. Every explicit name
    # the template builds is listed with its scope.
    name_props = {("AWS::CloudWatch::Dashboard", "DashboardName"): "account-global",
                  ("AWS::IAM::Role", "RoleName"): "account-global",
                  ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"): "account-global",
                  ("AWS::S3::Bucket", "BucketName"): "global (all accounts)"}
    name_props.update({key: "regional" for key in limits if key not in name_props})
    named, unscoped = [], []
    for name, r in sorted(resources.items()):
        for (kind, prop), scope in name_props.items():
            value = r["Properties"].get(prop) if r["Type"] == kind else None
            if value is None:
                continue
            if isinstance(value, dict) and "Fn::If" in value:
                value = value["Fn::If"][1]
            text = value if isinstance(value, str) else json.dumps(value)
            named.append(f"{name}.{prop} [{scope}] = {sub_text(value) if isinstance(value, dict) else text}")
            if scope != "regional" and "AWS::Region" not in text:
                unscoped.append(f"{name}.{prop} is {scope} but its name has no AWS::Region")
    print("named resources and their scope:\n  " + "\n  ".join(named))
    check("every account-global name carries AWS::Region (same stack name in two regions)",
          not unscoped, "; ".join(unscoped))

    # The rare metrics have alarms (pooled series: an alarm cannot SEARCH per-repository ones).
    rare = {r["Properties"]["MetricName"]: r for r in resources.values()
            if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") in ("RepositoriesSkipped", "SweepsGivenUp")}
    check("RepositoriesSkipped and SweepsGivenUp have alarms on the pooled series",
          set(rare) == {"RepositoriesSkipped", "SweepsGivenUp"}
          and all(r.get("Condition") == "PooledMetrics"
                  and r["Properties"]["Dimensions"] == [{"Name": "Repository", "Value": "(all)"}] for r in rare.values()),
          str(sorted(rare)))

    # Organisations that require a permissions boundary: every role takes it.
    roles = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    unbounded = [name for name, r in roles.items()
                 if "PermissionsBoundary" not in json.dumps(r["Properties"].get("PermissionsBoundary", ""))]
    check("every IAM role takes the PermissionsBoundary parameter", roles and not unbounded, f"{unbounded}")

    # Outputs other stacks and runbooks need, exported.
    outputs = out.get("Outputs", {})
    wanted = ["PruneQueueUrl", "DeadLetterQueueUrl", "PrunerLogGroupName", "WebhookSecretArn"]
    check("queue, dead-letter queue, log group and secret outputs are exported",
          all("Export" in outputs.get(k, {}) for k in wanted), str([k for k in wanted if "Export" not in outputs.get(k, {})]))

    # The webhook secret can be an existing secret, by ARN, instead of a plaintext parameter.
    webhook_env = resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    check("the webhook can use an existing secret by ARN",
          "GitHubWebhookSecretArn" in json.dumps(webhook_env["GITHUB_WEBHOOK_SECRET_ARN"]))

    # 8. Rule patterns, with AWS's matching semantics, against every sample event.
    defaults = {k: v.get("Default") for k, v in template["Parameters"].items()}
    rules = {name: r for name, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    conds = template.get("Conditions", {})
    patterns = {name: resolve(r["Properties"]["EventPattern"], defaults, conds) for name, r in rules.items()}
    for name, pattern in patterns.items():
        ok, why = eventbridge_accepts(pattern)
        check(f"{name}: pattern within EventBridge's limits", ok, why)
    samples = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "events", "*.json"))):
        event = json.load(open(path))
        name = os.path.basename(path)
        if "Records" in event:  # SQS batches carry EventBridge events as bodies
            for i, record in enumerate(event["Records"]):
                samples[f"{name}#{i}"] = json.loads(record["body"])
        elif "detail-type" in event:
            samples[name] = event
    # Shapes DESIGN.md §5 describes that have no sample file of their own.
    push = json.load(open(os.path.join(ROOT, "events", "ecr-push-cache.json")))
    by_digest = copy.deepcopy(push)
    by_digest["detail"]["image-tag"] = ""
    samples["(ecr push by digest, image-tag \"\")"] = by_digest
    no_tag = copy.deepcopy(push)
    del no_tag["detail"]["image-tag"]
    samples["(ecr push without image-tag)"] = no_tag
    github_push = json.load(open(os.path.join(ROOT, "events", "github-push-deleted.json")))
    not_deleted = copy.deepcopy(github_push)
    not_deleted["detail"]["deleted"] = False
    samples["(github push, deleted false)"] = not_deleted
    tag_deleted = copy.deepcopy(github_push)
    tag_deleted["detail"]["ref"] = "refs/tags/v1.0.0"
    samples["(github push deleting a tag)"] = tag_deleted
    pull_request = json.load(open(os.path.join(ROOT, "events", "github-pull-request-closed.json")))
    for action in ("opened", "reopened", "synchronize"):
        other = copy.deepcopy(pull_request)
        other["detail"]["action"] = action
        samples[f"(github pull_request {action})"] = other
    merge_group = json.load(open(os.path.join(ROOT, "events", "github-merge-group-destroyed.json")))
    requested = copy.deepcopy(merge_group)
    requested["detail"]["action"] = "checks_requested"
    samples["(github merge_group checks_requested)"] = requested

    expected = {
        "EcrCachePushRule": {"ecr-push-cache.json", "sqs-batch-pushes.json#0", "sqs-batch-pushes.json#1"},
        "GitHubBranchDeleteRule": {"github-delete-branch.json", "github-push-deleted.json",
                                   "sqs-batch-branch-delete.json#0", "github-pull-request-closed.json",
                                   "github-merge-group-destroyed.json"},
    }
    # With templates, every tagged push reaches the pruner, which keeps only cache tags.
    templated = dict(defaults, CacheTagTemplates="api-cache-{branch},cache-pr-{pr}")
    push_rule = resolve(rules["EcrCachePushRule"]["Properties"]["EventPattern"], templated, conds)
    matcher = EventPattern.load(json.dumps(push_rule))
    tagged_pushes = {"ecr-push-cache.json", "ecr-push-app.json", "sqs-batch-pushes.json#0",
                     "sqs-batch-pushes.json#1"}
    matched = {name for name, event in samples.items() if matcher.matches_event(event)}
    check("with CacheTagTemplates the push rule forwards every tagged successful push",
          matched == tagged_pushes, f"{sorted(matched ^ tagged_pushes)}")
    for rule, pattern in patterns.items():
        matcher = EventPattern.load(json.dumps(pattern))
        matched = {name for name, event in samples.items() if matcher.matches_event(event)}
        want = expected.get(rule, set())
        check(f"{rule} matches exactly the events it should", matched == want,
              f"unexpected {sorted(matched - want)}, missed {sorted(want - matched)}")

    if FAILED:
        print(f"{len(FAILED)} template check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("template rules: all checks passed")


if __name__ == "__main__":
    main()
