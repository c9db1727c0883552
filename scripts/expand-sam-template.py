#!/usr/bin/env python3
"""Expands the SAM transform of a packaged template (`sam package` output: code already in S3)
into a plain CloudFormation template, offline, with SAM's own translator. For CloudFormation
StackSets with service-managed permissions, which refuse templates that use transforms.

    .venv/bin/python scripts/expand-sam-template.py packaged.yaml > stackset.json

Only the AWS-managed policies SAM attaches by itself are resolved (AWSLambdaBasicExecutionRole;
the template names no other), in the partition given with --partition.
"""

import argparse
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class ManagedPolicies:
    def __init__(self, partition):
        self.partition = partition

    def load(self):
        return {"AWSLambdaBasicExecutionRole":
                f"arn:{self.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("template")
    parser.add_argument("--partition", default="aws")
    args = parser.parse_args()
    template = yaml_parse(open(args.template, encoding="utf-8").read())
    for name, resource in template.get("Resources", {}).items():
        code = resource.get("Properties", {}).get("CodeUri") or template.get("Globals", {}).get("Function", {}).get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and not str(code).startswith("s3://") and not isinstance(code, dict):
            sys.exit(f"{name}: CodeUri {code!r} is not in S3; run `sam package` first")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    expanded = transform(template, {}, ManagedPolicies(args.partition))
    json.dump(expanded, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
