#!/usr/bin/env python3
"""Release consistency: Cargo.toml's version, the template's SAR SemanticVersion and the newest
CHANGELOG.md entry agree (and match --tag vX.Y.Z when given); LICENSE matches Cargo.toml's
license. With --notes, prints that CHANGELOG entry (the GitHub release notes)."""

import argparse
import os
import re
import sys
import tomllib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read(name):
    return open(os.path.join(ROOT, name), encoding="utf-8").read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag")
    parser.add_argument("--notes", action="store_true")
    args = parser.parse_args()

    cargo = tomllib.loads(read("Cargo.toml"))["package"]
    template = re.search(r"^\s+SemanticVersion:\s*([0-9][^\s]*)\s*$", read("template.yaml"), re.M)
    changelog = read("CHANGELOG.md")
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    problems = []
    if not template:
        problems.append("template.yaml has no AWS::ServerlessRepo::Application SemanticVersion")
    elif template.group(1) != cargo["version"]:
        problems.append(f"template SemanticVersion {template.group(1)} != Cargo.toml {cargo['version']}")
    if not entries or entries[0][0] != cargo["version"]:
        problems.append(f"newest CHANGELOG.md entry {entries[0][0] if entries else None} != Cargo.toml {cargo['version']}")
    if "## [Unreleased]" not in changelog:
        problems.append("CHANGELOG.md has no [Unreleased] section")
    if args.tag and args.tag != f"v{cargo['version']}":
        problems.append(f"tag {args.tag} != v{cargo['version']}")
    if cargo.get("license") == "Apache-2.0" and "Apache License" not in read("LICENSE")[:200]:
        problems.append("LICENSE is not the Apache-2.0 text Cargo.toml declares")
    if problems:
        for p in problems:
            print(f"release check: {p}", file=sys.stderr)
        sys.exit(1)
    if args.notes:
        body = changelog.split(f"## [{cargo['version']}]", 1)[1].split("\n", 1)[1]
        print(body.split("\n## [", 1)[0].strip())
    else:
        print(f"release check: version {cargo['version']} consistent")


if __name__ == "__main__":
    main()
