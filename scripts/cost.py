#!/usr/bin/env python3
"""The monthly cost of a stack, computed from template.yaml and AWS list prices: which resources
the template's defaults (or given parameters) create, how many custom metric series the pruner
publishes, and a workload (repositories x cache pushes a day). Prints the table docs/operations.md
shows; `--check` fails when the table there, or the README's figure, differs from what this
computes (CI runs it, so the documented cost follows the template).

usage: cost.py [--repositories N] [--pushes-per-day N] [--param Key=Value ...] [--check]
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_upgrade import stack  # noqa: E402  (the transformed template with conditions decided)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DOC = os.path.join(ROOT, "docs", "operations.md")
BEGIN, END = "<!-- cost table: scripts/cost.py -->", "<!-- end of cost table -->"

# AWS list prices, us-east-1, checked 2026-11-30 on the services' pricing pages; free tiers are
# not counted.
PRICES_DATE = "2026-11-30"
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6
CUSTOM_METRIC_MONTH = 0.30
ALARM_MONTH = 0.10          # standard resolution, one metric
DASHBOARD_MONTH = 3.00      # beyond the account's first three
LOGS_INGEST_GB = 0.50
SECRET_MONTH = 0.40
EVENTBRIDGE_CUSTOM_EVENT = 1.00 / 1e6

# The workload model. Measured figures from this repository's tests and benchmarks: an
# invocation takes well under a second; each writes about 2 KB of log (summary, audit lines, EMF).
SECONDS_PER_INVOCATION = 1.0
LOG_BYTES_PER_INVOCATION = 2048
# Lambda polls an SQS queue with 5 long-polling connections (20 s waits) while the mapping is on.
SQS_POLLS_PER_MONTH = 5 * 3 * 60 * 24 * 30
METRICS_PER_SERIES_SET = 3  # (would-)deleted manifests, (would-)removed tags, failures
DAYS = 30


def compute(repositories, pushes_per_day, parameters):
    resources = stack(open(os.path.join(ROOT, "template.yaml")).read(), parameters)
    by_type = {}
    for r in resources.values():
        by_type.setdefault(r["Type"], []).append(r)
    pruner = resources["PrunerFunction"]["Properties"]
    memory_gb = pruner.get("MemorySize", 128) / 1024
    per_repository = parameters.get("MetricsPerRepository", template_default("MetricsPerRepository")) == "true"
    sweep = "AWS::Scheduler::Schedule" in by_type and \
        parameters.get("SweepEnabled", template_default("SweepEnabled")) == "true"

    pushes = repositories * pushes_per_day * DAYS
    sweeps = (1 + repositories) * DAYS if sweep else 0  # the schedule, then one message per repository
    invocations = pushes + sweeps
    webhook = "AWS::Lambda::Url" in by_type
    rows = []
    rows.append(("Lambda (arm64, %d MB)" % pruner.get("MemorySize", 128),
                 f"{pushes:,} push and {sweeps:,} sweep invocations, about {SECONDS_PER_INVOCATION:g} s each",
                 invocations * (SECONDS_PER_INVOCATION * memory_gb * LAMBDA_ARM_GB_SECOND + LAMBDA_REQUEST)))
    sqs_requests = SQS_POLLS_PER_MONTH + 3 * invocations  # send, receive and delete per message
    rows.append(("SQS", f"the queue mapping's long polling and each message's send, receive and delete "
                 f"(~{sqs_requests / 1e6:.2f} M requests)", sqs_requests * SQS_REQUEST))
    secrets = len(by_type.get("AWS::SecretsManager::Secret", [])) + (1 if parameters.get("GitHubTokenSecretArn") else 0)
    rows.append(("Secrets Manager", f"{secrets} secret(s)" + (" (the webhook's, the GitHub token's)" if secrets else
                 " (no webhook, no GitHub token)"), secrets * SECRET_MONTH))
    series = METRICS_PER_SERIES_SET * (repositories if per_repository else 1)
    rows.append(("CloudWatch custom metrics",
                 f"{series} series ({METRICS_PER_SERIES_SET} {'per repository' if per_repository else 'for all repositories'}; "
                 "RepositoriesSkipped and SweepsGivenUp only in the hours they occur, prorated)",
                 series * CUSTOM_METRIC_MONTH))
    alarms = len(by_type.get("AWS::CloudWatch::Alarm", []))
    dashboards = len(by_type.get("AWS::CloudWatch::Dashboard", []))
    rows.append(("CloudWatch alarms, dashboard",
                 f"{alarms} alarms; {dashboards} dashboard (counted, though an account's first three are free)",
                 alarms * ALARM_MONTH + dashboards * DASHBOARD_MONTH))
    log_gb = invocations * LOG_BYTES_PER_INVOCATION / 1024 ** 3
    rows.append(("CloudWatch Logs", f"~{log_gb * 1024:.0f} MB of summaries, audit lines and metrics", log_gb * LOGS_INGEST_GB))
    github_events = repositories * 2 * DAYS if webhook else 0
    rows.append(("EventBridge", "ECR events on the default bus are free" +
                 (f"; ~{github_events:,} GitHub events on the stack's bus" if webhook else ""),
                 github_events * EVENTBRIDGE_CUSTOM_EVENT))
    return rows


def template_default(name):
    text = open(os.path.join(ROOT, "template.yaml")).read()
    match = re.search(rf"^  {name}:\n(?:    .*\n)*?    Default: \"?([^\"\n]*)\"?\n", text, re.M)
    return match.group(1) if match else None


def table(repositories, pushes_per_day, parameters):
    rows = compute(repositories, pushes_per_day, parameters)
    total = sum(cost for _, _, cost in rows)
    given = ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())) or "the template's defaults"
    lines = [f"{repositories} repositories, {pushes_per_day} cache pushes a day each, {given}; "
             f"us-east-1 list prices of {PRICES_DATE}, free tiers not counted:", "",
             "| item | how much | a month |", "| --- | --- | --- |"]
    lines += [f"| {item} | {what} | ${cost:.2f} |" for item, what, cost in rows]
    lines.append(f"| **total** | | **${total:.2f}** |")
    return "\n".join(lines) + "\n", total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=40)
    parser.add_argument("--pushes-per-day", type=int, default=10)
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    parameters = dict(p.split("=", 1) for p in args.param)
    text, total = table(args.repositories, args.pushes_per_day, parameters)
    if not args.check:
        print(text, end="")
        return
    doc = open(DOC).read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"cost check: {DOC} has no {BEGIN} ... {END} block")
    shown = doc.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    if shown != text:
        sys.exit("cost check: docs/operations.md's cost table differs from scripts/cost.py's; "
                 "paste its output between the markers:\n" + text)
    readme = open(os.path.join(ROOT, "README.md")).read()
    quoted = re.findall(r"about \$(\d+\.\d\d) a month for 40\s+repositories", readme)
    if quoted != [f"{total:.2f}"]:
        sys.exit(f"cost check: README.md must say 'about ${total:.2f} a month for 40 repositories' "
                 f"(scripts/cost.py's total), it says {quoted}")
    if total > 5.0:
        sys.exit(f"cost check: the default stack costs ${total:.2f} a month for 40 repositories (> $5)")
    print(f"cost check: the documented table matches the template (${total:.2f} a month by default)")


if __name__ == "__main__":
    main()
