#!/usr/bin/env python3
"""Release consistency: Cargo.toml's version, the template's `EcrCachePruner: Version` and the
newest CHANGELOG.md entry agree (and match --tag vX.Y.Z when given); LICENSE matches Cargo.toml's
license; every GitHub-hosted runner label the workflows use is on a dated allow-list and not past
its announced retirement (a job on a retired image never starts, so the release would never reach
users); warns 90 days before a retirement. With --notes, prints that CHANGELOG entry
(the GitHub release notes)."""

import argparse
import datetime
import os
import re
import sys
import tomllib

# The GitHub-hosted runner labels the workflows may use: an allow-list, because a hand-kept list
# of what GitHub has retired goes stale silently (macos-14 was retired on 2026-11-02,
# actions/runner-images#13518, while such a list said nothing). Each label carries the retirement
# date GitHub announced (None: none announced when checked) and where that was read. The check
# fails on a label not listed here or past its date and warns WARN_DAYS before. Before adding a
# label, read its announcement at github.com/actions/runner-images (label "Announcement").
ALLOWED_RUNNERS = {
    # label: (retires on, source, checked)
    "ubuntu-24.04": (None, "actions/runner-images README (Ubuntu 24.04, GA)", "2026-12-05"),
    "ubuntu-24.04-arm": (None, "actions/partner-runner-images (Ubuntu 24.04 arm64, GA)", "2026-12-05"),
    "macos-15": (None, "actions/runner-images README (macOS 15 arm64, GA)", "2026-12-05"),
    "macos-15-intel": ("2027-08-01", "actions/runner-images#13045: available until August 2027, "
                       "the last x86_64 macOS image", "2026-12-05"),
}
WARN_DAYS = 90

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read(name):
    return open(os.path.join(ROOT, name), encoding="utf-8").read()


def runner_labels(text):
    """Every runner label a workflow names literally: `runs-on:` values and matrix `os:` values."""
    return re.findall(r"(?:runs-on|\bos):\s*\[?\s*([A-Za-z0-9._-]+)", text)


def runner_findings(workflows, today, allowed=None):
    """(problems, warnings) for {file name: text} on the date `today`."""
    allowed = ALLOWED_RUNNERS if allowed is None else allowed
    problems, warnings = [], []
    for name, text in sorted(workflows.items()):
        for label in runner_labels(text):
            if label not in allowed:
                problems.append(f"{name} asks for the runner image {label}, which is not in the allow-list "
                                "(scripts/check-release.py ALLOWED_RUNNERS: add it with its announced "
                                "retirement date, or use a listed label)")
                continue
            retires, source, _ = allowed[label]
            if retires is None:
                continue
            until = (datetime.date.fromisoformat(retires) - today).days
            if until <= 0:
                problems.append(f"{name} asks for {label}, retired on {retires} ({source})")
            elif until <= WARN_DAYS:
                warnings.append(f"{name} asks for {label}, which GitHub retires on {retires}, in {until} days ({source})")
    return problems, warnings


def workflow_texts():
    folder = os.path.join(ROOT, ".github", "workflows")
    return {name: open(os.path.join(folder, name), encoding="utf-8").read()
            for name in sorted(os.listdir(folder)) if name.endswith((".yml", ".yaml"))}


def self_test():
    """The runner check itself: a retired label fails, an unknown one fails, one near its date warns."""
    day = datetime.date(2026, 12, 5)
    def check(label, today=day):
        return runner_findings({"w.yml": f"jobs:\n  a:\n    runs-on: {label}\n"}, today)
    assert check("macos-14")[0], "macos-14 (retired 2026-11-02) must fail"
    assert check("macos-13")[0] and check("ubuntu-20.04")[0], "retired labels must fail"
    assert check("no-such-runner")[0], "a label not in the allow-list must fail"
    assert check("ubuntu-24.04") == ([], []), check("ubuntu-24.04")
    assert check("macos-15-intel") == ([], [])
    assert check("macos-15-intel", datetime.date(2027, 6, 1))[1], "must warn 90 days before"
    assert check("macos-15-intel", datetime.date(2027, 8, 2))[0], "must fail after the date"
    matrix = "    matrix:\n      include:\n        - { os: macos-14, target: aarch64-apple-darwin }\n"
    assert runner_findings({"r.yml": matrix}, day)[0], "a matrix os: must be checked too"
    print("release check: runner allow-list self-test passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag")
    parser.add_argument("--notes", action="store_true")
    parser.add_argument("--self-test", action="store_true", help="check the runner check itself")
    parser.add_argument("--today", help="YYYY-MM-DD, for the runner dates (default: today)")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    today = datetime.date.fromisoformat(args.today) if args.today else datetime.date.today()

    cargo = tomllib.loads(read("Cargo.toml"))["package"]
    template = re.search(r"^  EcrCachePruner:\n    Version:\s*([0-9][^\s]*)\s*$", read("template.yaml"), re.M)
    changelog = read("CHANGELOG.md")
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    problems = []
    if not template:
        problems.append("template.yaml has no Metadata EcrCachePruner: Version")
    elif template.group(1) != cargo["version"]:
        problems.append(f"template Version {template.group(1)} != Cargo.toml {cargo['version']}")
    runner_problems, runner_warnings = runner_findings(workflow_texts(), today)
    problems.extend(runner_problems)
    for w in runner_warnings:
        print(f"release check: warning: {w}", file=sys.stderr)
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
