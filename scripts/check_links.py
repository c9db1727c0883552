#!/usr/bin/env python3
"""Every relative link in the Markdown files under ROOT resolves under ROOT: the file exists and,
for a link to a heading (`file.md#anchor`), the heading does (GitHub's anchor rule). Used on the
source tree and on the unpacked release bundle. Usage: check_links.py ROOT [FILE.md ...]"""
import os
import re
import sys

LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)[^)]*\)|!\[[^\]]*\]\(([^)\s]+)[^)]*\)|^\[[^\]]+\]:\s*(\S+)", re.M)
# GitHub resolves these against the repository's web pages (compare views, releases), not files.
GITHUB_PAGES = ("../../compare/", "../../releases/")


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered."""
    seen, found = {}, set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def broken_links(root, files):
    problems = []
    for md in files:
        text = open(md, encoding="utf-8").read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for match in LINK.finditer(text):
            target = (match.group(1) or match.group(2) or match.group(3)).strip("<>")
            if re.match(r"[a-z]+:", target) or target.startswith("//") or target.startswith(GITHUB_PAGES):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
            rel = os.path.relpath(md, root)
            if not os.path.abspath(resolved).startswith(os.path.abspath(root) + os.sep) and resolved != md:
                problems.append(f"{rel}: {target} points outside {root}")
            elif not os.path.exists(resolved):
                problems.append(f"{rel}: {target} does not exist")
            elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                problems.append(f"{rel}: {target}: no heading #{anchor} in {os.path.relpath(resolved, root)}")
    return problems


def main():
    root = sys.argv[1]
    files = sys.argv[2:] or [os.path.join(d, f) for d, _, fs in os.walk(root)
                             for f in fs if f.endswith(".md")
                             and not any(part.startswith(".") or part in ("target", "node_modules")
                                         for part in os.path.relpath(d, root).split(os.sep) if part != ".")]
    problems = broken_links(root, sorted(files))
    for p in problems:
        print(f"links: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"links: every relative link in {len(files)} Markdown files resolves under {root}")


if __name__ == "__main__":
    main()
