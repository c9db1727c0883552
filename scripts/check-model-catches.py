#!/usr/bin/env python3
"""Opt-in check that the model-based test (tests/model.rs) fails when any one safety rule is
removed: applies each mutation to the source in turn, runs the model test, restores the file, and
prints a table. Run from the repository root: python3 scripts/check-model-catches.py"""
import os, re, shutil, subprocess
muts = {
 "rule1 classify ignored": ("src/core/plan.rs", "            Err(reason) => result.kept.push(keep(reason)),\n            Ok(_) if settings", "            Err(_) => candidates.push(PlannedDeletion { digest: image.digest.clone(), size_bytes: image.size_bytes, pushed_at: image.pushed_at, reason: DeleteReason::UntaggedUnreferencedCache, classified_by: ClassifiedBy::Manifest }),\n            Ok(_) if settings"),
 "rule2 recheck skipped": ("src/app/prune.rs", "let checked = plan::recheck(pending, &current);", "let _ = &current; let checked = plan::Rechecked { delete: pending, ..Default::default() };"),
 "rule3 references ignored": ("src/core/plan.rs", "        if let Some(index) = referenced.get(&image.digest) {", "        if let Some(index) = referenced.get(&image.digest).filter(|_| false) {"),
 "rule8 status ignored": ("src/core/plan.rs", "        if image.status != ImageStatus::Active {\n            result.kept", "        if false {\n            result.kept"),
 "rule5 unreadable index ignored": ("src/app/prune.rs", "        if let Some(ManifestKind::Unreadable { reason }) = manifests.get(&image.digest) {", "        if let Some(ManifestKind::Unreadable { reason }) = manifests.get(&image.digest).filter(|_| false) {"),
 "rule4 tag of non-cache removed": ("src/app/branch_cleanup.rs", "    if let Err(reason) = classify(&image, manifest.as_ref()) {", "    if let Err(reason) = classify(&image, manifest.as_ref()).and(Err::<(), _>(KeepReason::TriggerDigest)).or(Ok::<(), KeepReason>(())) {"),
 "rule3 last tag of referenced image": ("src/app/branch_cleanup.rs", "        if let Some(index) = index {", "        if let Some(index) = index.filter(|_| false) {"),
 "rule8 tag of archived image": ("src/app/branch_cleanup.rs", "    if image.status != ImageStatus::Active {", "    if false {"),
 "rule2 delete retried without re-check": ("src/app/prune.rs", "            Err(RegistryError::Transient { .. }) if attempt < retry::ATTEMPTS => {\n", "            Err(RegistryError::Transient { .. }) if attempt < retry::ATTEMPTS => {\n                let _ = registry.delete_digests(repository, &digests).await;\n"),
 "rule9 KEEP_TAGS ignored by the sweep": ("src/app/sweep.rs", "    candidates.retain(|c| !any_matches(&settings.keep_tags, &c.tag));", "    candidates.retain(|_| true);"),
 "rule9 KEEP_TAGS ignored on branch deletion": ("src/core/trigger.rs", "    if any_matches(config.keep_tags, &tag) {", "    if false {"),
 "rule9 protected branch": ("src/core/trigger.rs", "    if config.protected_branches.is_protected(&branch) {", "    if false {"),
 "rule9 protected branch and colliding tags": ("src/core/trigger.rs", "    if config.protected_branches.is_protected(&branch) {\n        return Ok(ignore(format!(\"branch {branch} is protected\")));\n    }\n    if config\n        .protected_branches\n        .protects_tag(config.cache_tag_prefix, &tag)\n    {", "    if false {\n        return Ok(ignore(String::new()));\n    }\n    if false\n    {"),
}
print("| mutation | model test |")
print("| --- | --- |")
for name, (path, old, new) in muts.items():
    src = open(path).read()
    if old not in src:
        print(f"| {name} | MUTATION NOT APPLIED |"); continue
    shutil.copy(path, path + ".orig")
    open(path, "w").write(src.replace(old, new, 1))
    try:
        r = subprocess.run(["cargo", "test", "-q", "--test", "model"], capture_output=True, text=True, timeout=900)
        out = r.stdout + r.stderr
        if "error[" in out and "could not compile" in out:
            verdict = "COMPILE ERROR: " + out[out.index("error["):][:300]
        else:

            m = re.findall(r'(rule \d[^"(]*|left[^"]*|failed without[^"]*|deleted with[^"]*)', out)
            verdict = ("caught: " + (m[0] if m else "?")) if r.returncode != 0 else "NOT CAUGHT"
        print(f"| {name} | {verdict.strip()} |", flush=True)
    finally:
        shutil.move(path + ".orig", path)
        # The copy's mtime predates the mutated build: touch it so cargo rebuilds.
        os.utime(path)
