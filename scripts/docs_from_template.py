#!/usr/bin/env python3
"""Docs true to the template by construction: the alarm table (docs/operations.md), the outputs
table and the queue table (docs/deploy.md) are generated from template.yaml, and every
`parameter_overrides = ...` line the docs show parses the way SAM reads samconfig.toml and names
only the template's parameters with values they allow. `--check` (CI, scripts/check-template.sh)
fails on a block that differs or a line that does not hold; `--write` rewrites the blocks.

What the template cannot say (what to do when an alarm fires, what a queue holds) lives here,
keyed by logical ID: a resource added to the template without its entry fails the check.

usage: docs_from_template.py --check | --write
"""

import os
import re
import shlex
import sys
import tomllib

from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

ALARM_ACTIONS = {
    "DeadLetterQueueAlarm": "triage the dead-letter queue ([below](#dead-letter-queues-triage-and-redrive))",
    "FailedSweepAlarm": "run the sweep again or wait for tomorrow's ([below](#dead-letter-queues-triage-and-redrive))",
    "OverBudgetAlarm": "`ecr-cache-pruner report --budget SIZE --stack <stack>` shows each repository's footprint and what is held (protected, `KeepTags`, younger than `CacheBudgetMinAgeMinutes`): raise that repository's budget or protect less; a capped sweep continues tomorrow",
    "PrunerErrorsAlarm": "run the `failures` query; transient errors (throttling, 5xx) retry on their own",
    "RepositoriesSkippedAlarm": "the `failures` query names the repository and why; restore or delete the index, fix the policy or `REPOSITORY_MAP`",
    "SweepsGivenUpAlarm": "the `failures` query; the next daily sweep tries again; a repository that never finishes needs a higher `MaxDeletionsPerInvocation` or a look",
    "WebhookErrorsAlarm": "its log group; GitHub shows the failed delivery: redeliver it from \"Recent deliveries\"",
    "WebhookRejectionsAlarm": "GitHub's \"Recent deliveries\": refused ones mean the secret no longer matches (set the same value on both sides); none there means a flood at the URL: stop it with `aws lambda put-function-concurrency --function-name <webhook> --reserved-concurrent-executions 0` (operations.md, \"A flood at the webhook URL\")",
}
QUEUE_ROLES = {
    "PruneQueue": ("ECR pushes of cache tags and GitHub branch deletions (from the rules), and "
                   "`Repository Sweep` messages (one per repository, from the schedule)",
                   "the pruner, in batches (`PrunerMaxConcurrency` at a time)"),
    "PruneDeadLetterQueue": ("prune-queue records that failed every receive, and events EventBridge could "
                             "not deliver to the prune queue", "you: inspect, then redrive to the prune queue"),
    "FailedSweepQueue": ("Lambda's on-failure records of scheduled sweeps that failed after its retries "
                         "(the event in `requestPayload`)", "you: invoke the pruner again"),
}
CONDITIONS = {
    None: "always",
    "HasWebhook": "with the webhook",
    "PooledMetrics": "with pooled metrics (`MetricsPerRepository=false`, the default)",
    "WatchesPooledBudget": "with `CacheBudget` and pooled metrics",
}


def load_template():
    return yaml_parse(open(os.path.join(ROOT, "template.yaml"), encoding="utf-8").read())


def ref_name(value):
    """The logical ID a Ref / GetAtt points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return (att.split(".")[0] if isinstance(att, str) else att[0])
    return str(value)


def condition(resource, problems, name):
    cond = resource.get("Condition")
    if cond not in CONDITIONS:
        problems.append(f"{name}: condition {cond} has no wording in scripts/docs_from_template.py CONDITIONS")
    return CONDITIONS.get(cond, cond)


def alarms_block(template, problems):
    rows = ["| alarm | watches | created | means | do |", "| --- | --- | --- | --- | --- |"]
    for name, r in template["Resources"].items():
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        p = r["Properties"]
        dims = {d["Name"]: ref_name(d["Value"]) for d in p.get("Dimensions", [])}
        metric = p["MetricName"]
        if "QueueName" in dims:
            what = f"`{metric}` of `{dims['QueueName']}`"
        elif "FunctionName" in dims:
            what = f"`{metric}` of `{dims['FunctionName']}`"
        else:
            what = f"`{metric}` ({', '.join(f'{k}={v}' for k, v in dims.items())})"
        op = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=",
              "LessThanThreshold": "<"}[p["ComparisonOperator"]]
        period = int(p["Period"]) * int(p["EvaluationPeriods"]) // 60
        watches = f"{what}: {p['Statistic'].lower()} {op} {p['Threshold']} over {period} min"
        means = " ".join(str(p.get("AlarmDescription", "")).split()).replace("<", "&lt;").replace("|", "\\|")
        if name not in ALARM_ACTIONS:
            problems.append(f"alarm {name} has no entry in scripts/docs_from_template.py ALARM_ACTIONS")
        rows.append(f"| `{name}` | {watches} | {condition(r, problems, name)} | {means} | {ALARM_ACTIONS.get(name, '?')} |")
    problems.extend(f"ALARM_ACTIONS names {n}, which the template lacks" for n in ALARM_ACTIONS
                    if n not in template["Resources"])
    return "\n".join(rows) + "\n"


def days(seconds):
    return f"{int(seconds) // 86400} days"


def queues_block(template, problems):
    rows = ["| queue | holds | read by | delivery delay | kept for | after |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, r in template["Resources"].items():
        if r["Type"] != "AWS::SQS::Queue":
            continue
        p = r.get("Properties", {})
        if name not in QUEUE_ROLES:
            problems.append(f"queue {name} has no entry in scripts/docs_from_template.py QUEUE_ROLES")
        holds, reader = QUEUE_ROLES.get(name, ("?", "?"))
        delay = p.get("DelaySeconds", 0)
        delay = f"`{delay['Ref']}` (the grace period)" if isinstance(delay, dict) else f"{delay} s"
        kept = days(p.get("MessageRetentionPeriod", 345600))
        redrive = p.get("RedrivePolicy")
        after = (f"{redrive['maxReceiveCount']} receives: `{ref_name(redrive['deadLetterTargetArn'])}`"
                 if redrive else "dropped")
        rows.append(f"| `{name}` | {holds} | {reader} | {delay} | {kept} | {after} |")
    return "\n".join(rows) + "\n"


def outputs_block(template, problems):
    rows = ["| output | what | exported as | created |", "| --- | --- | --- | --- |"]
    for name, o in template["Outputs"].items():
        description = " ".join(str(o.get("Description", "")).split())
        if not description:
            problems.append(f"output {name} has no Description")
        export = o.get("Export", {}).get("Name")
        exported = f"`<stack>-{name}`" if export else "not exported"
        if export and sub_text(export) != "${AWS::StackName}-" + name:
            problems.append(f"output {name} is exported as {sub_text(export)}, not <stack>-{name}")
        description = description.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| `{name}` | {description} | {exported} | {condition(o, problems, name)} |")
    return "\n".join(rows) + "\n"


def sub_text(value):
    return value.get("Fn::Sub") if isinstance(value, dict) else value


BLOCKS = {
    "alarms": ("docs/operations.md", alarms_block),
    "outputs": ("docs/deploy.md", outputs_block),
    "queues": ("docs/deploy.md", queues_block),
}


def markers(name):
    return (f"<!-- generated from template.yaml by scripts/docs_from_template.py: {name} -->",
            f"<!-- end of generated {name} -->")


def documented_overrides(template, problems):
    """Every `parameter_overrides = "..."` line in the docs and samconfig.toml: TOML, then SAM's
    `Key="value" ...` form, then the template's parameters and allowed values."""
    parameters = template["Parameters"]
    files = ["samconfig.toml", "README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs")))
                                               if f.endswith(".md")]
    seen = 0
    for rel in files:
        for line in open(os.path.join(ROOT, rel), encoding="utf-8"):
            if not line.startswith("parameter_overrides"):
                continue
            seen += 1
            try:
                value = tomllib.loads(line)["parameter_overrides"]
                pairs = [item.split("=", 1) for item in shlex.split(value)]
            except (tomllib.TOMLDecodeError, ValueError) as err:
                problems.append(f"{rel}: {line.strip()}: not what SAM reads ({err})")
                continue
            for pair in pairs:
                if len(pair) != 2 or pair[0] not in parameters:
                    problems.append(f"{rel}: {line.strip()}: {pair[0]} is not a template parameter")
                    continue
                allowed = parameters[pair[0]].get("AllowedValues")
                if allowed and pair[1] not in [str(a) for a in allowed]:
                    problems.append(f"{rel}: {line.strip()}: {pair[0]}={pair[1]} not in {allowed}")
    doc = open(os.path.join(ROOT, "docs", "deploy.md"), encoding="utf-8").read()
    shipped = next((l for l in doc.split("The line as shipped:", 1)[-1].splitlines()
                    if l.startswith("parameter_overrides")), None)
    config = [l for l in open(os.path.join(ROOT, "samconfig.toml"), encoding="utf-8").read().splitlines()
              if l.startswith("parameter_overrides")]
    if shipped is None or config != [shipped]:
        problems.append(f"docs/deploy.md's 'line as shipped' {shipped!r} is not samconfig.toml's {config}")
    if seen < 4:
        problems.append(f"only {seen} parameter_overrides lines found (samconfig.toml and the documented edits)")
    return seen


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "--check"
    template = load_template()
    problems, stale = [], []
    texts = {}
    for name, (rel, make) in BLOCKS.items():
        path = os.path.join(ROOT, rel)
        text = texts.setdefault(path, open(path, encoding="utf-8").read())
        begin, end = markers(name)
        if begin not in text or end not in text:
            problems.append(f"{rel} has no {begin} ... {end} block")
            continue
        wanted = make(template, problems)
        before, rest = text.split(begin, 1)
        shown, after = rest.split(end, 1)
        if shown.strip("\n") + "\n" != wanted:
            stale.append(f"{rel}: {name}")
            texts[path] = f"{before}{begin}\n{wanted}{end}{after}"
    lines = documented_overrides(template, problems)
    if mode == "--write":
        for path, text in texts.items():
            open(path, "w", encoding="utf-8").write(text)
        stale = []
    for p in problems:
        print(f"docs check: {p}", file=sys.stderr)
    for s in stale:
        print(f"docs check: {s} differs from the template; run .venv/bin/python scripts/docs_from_template.py --write", file=sys.stderr)
    if problems or stale:
        sys.exit(1)
    print(f"docs check: {len(BLOCKS)} generated tables match template.yaml; {lines} parameter_overrides lines hold")


if __name__ == "__main__":
    main()
