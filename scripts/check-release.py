#!/usr/bin/env python3
"""Release consistency: Cargo.toml's version, the template's `EcrCachePruner: Version` and the
newest CHANGELOG.md entry agree (and match --tag vX.Y.Z when given); LICENSE matches Cargo.toml's
license; no workflow asks for a GitHub-hosted runner image that GitHub has retired (a job on one
never starts, so the release would never reach users). With --notes, prints that CHANGELOG entry
(the GitHub release notes)."""

import argparse
import os
import re
import sys
import tomllib

# GitHub-hosted runner labels GitHub has retired: a job asking for one waits, then fails.
# Source: github.com/actions/runner-images announcements (issues #13046 macOS 13, retired
# 2025-12-04; #12045 Windows 2019, 2025-06-30; #11101 Ubuntu 20.04, 2025-04-15; #10721 macOS 12,
# 2024-12-03), checked 2026-11-30. Add a label when GitHub announces its retirement.
RETIRED_RUNNERS = {
    "ubuntu-18.04", "ubuntu-20.04",
    "macos-10.15", "macos-11", "macos-12", "macos-12-large", "macos-12-xl",
    "macos-13", "macos-13-large", "macos-13-xlarge",
    "windows-2016", "windows-2019",
}

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read(name):
    return open(os.path.join(ROOT, name), encoding="utf-8").read()


def retired_runners():
    """Every runner label a workflow names (`runs-on:` and matrix `os:` values) that is retired."""
    problems = []
    folder = os.path.join(ROOT, ".github", "workflows")
    for name in sorted(os.listdir(folder)):
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        labels = re.findall(r"(?:runs-on|\bos):\s*\[?\s*([A-Za-z0-9._-]+)", text)
        if not labels:
            continue
        for label in labels:
            if label in RETIRED_RUNNERS:
                problems.append(f"{name} asks for the retired runner image {label}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag")
    parser.add_argument("--notes", action="store_true")
    args = parser.parse_args()

    cargo = tomllib.loads(read("Cargo.toml"))["package"]
    template = re.search(r"^  EcrCachePruner:\n    Version:\s*([0-9][^\s]*)\s*$", read("template.yaml"), re.M)
    changelog = read("CHANGELOG.md")
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    problems = []
    if not template:
        problems.append("template.yaml has no Metadata EcrCachePruner: Version")
    elif template.group(1) != cargo["version"]:
        problems.append(f"template Version {template.group(1)} != Cargo.toml {cargo['version']}")
    problems.extend(retired_runners())
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
