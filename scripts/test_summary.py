#!/usr/bin/env python3
"""The closing lines of scripts/test.sh from cargo test's output and the skip records:
`tests: N passed, M failed, K skipped`, then every failed and every skipped test by name.
A skipped test ran and returned early, so libtest counted it as passed: it is moved over here.
Usage: test_summary.py LOG SKIPS_FILE CARGO_STATUS"""
import re
import sys

log, skips_file, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
passed = failed = ignored = 0
failures = []
binary = "?"
for line in open(log, encoding="utf-8", errors="replace"):
    running = re.match(r"\s+Running (?:unittests )?\S+ \((?:.*/)?([\w-]+?)-[0-9a-f]+\)", line)
    if running:
        binary = running.group(1)  # the test binary's name, as the skip records give it
        continue
    result = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if result:
        passed += int(result.group(1))
        failed += int(result.group(2))
        ignored += int(result.group(3))
        continue
    failure = re.match(r"test (\S+) \.\.\. FAILED", line)
    if failure:
        failures.append(f"{binary}::{failure.group(1)}")

skipped = sorted({line.strip() for line in open(skips_file, encoding="utf-8") if line.strip()})
passed -= len(skipped)
summary = f"tests: {passed} passed, {failed} failed, {len(skipped)} skipped"
if ignored:
    summary += f", {ignored} ignored"
print(summary)
for name in failures:
    print(f"  failed: {name}")
for line in skipped:
    print(f"  skipped: {line}")
if status != 0 and not failures:
    print(f"  cargo test exited {status} with no failed test: a build error or a crashed test binary (see {log})")
