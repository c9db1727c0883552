#!/usr/bin/env python3
"""Mutation check: every safety rule and every time-and-state guard has a test that fails when
the guard is removed. First runs every target involved unmutated (each must pass: a failing
baseline would make every mutation look caught). Then applies each mutation to the source in
turn, runs its target, restores the file, and prints a table. A mutation is caught only when the
test it names fails. Exits 1 when the baseline fails, or a mutation is not caught by its test or
no longer applies (the source moved: update the mutation with it).

Run from the repository root with a moto server (MOTO_ENDPOINT) for the moto targets; CI runs it
from .ci/run. `--only SUBSTRING` runs the mutations whose name contains it."""
import os, re, shutil, subprocess, sys, time

# name: (file, original text, mutated text, test target, the test that must fail)
# A target is an integration test name, or "lib" for the unit tests. A mutation counts as caught
# only when its named test is among the failures: a build error, an emulator outage or another
# test failing proves nothing about the guard.
MUTATIONS = {
    # DESIGN.md section 3, against the model-based test.
    "rule1 classify ignored": ("src/core/plan.rs", "            Err(reason) => result.kept.push(keep(reason)),\n            Ok(_) if settings", "            Err(_) => candidates.push(PlannedDeletion { digest: image.digest.clone(), size_bytes: image.size_bytes, pushed_at: image.pushed_at, reason: DeleteReason::UntaggedUnreferencedCache, classified_by: ClassifiedBy::Manifest, subject: None }),\n            Ok(_) if settings", "model", "no_rule_is_ever_broken"),
    "rule2 recheck skipped": ("src/app/prune.rs", "let checked = plan::recheck(pending, &current, &asked);", "let checked = { let all = pending.clone(); plan::Rechecked { delete: all, ..plan::recheck(pending, &current, &asked) } };", "model", "no_rule_is_ever_broken"),
    "rule3 references ignored": ("src/core/plan.rs", "        if let Some(index) = referenced.get(&image.digest) {", "        if let Some(index) = referenced.get(&image.digest).filter(|_| false) {", "model", "no_rule_is_ever_broken"),
    "rule8 status ignored": ("src/core/plan.rs", "        if image.status != ImageStatus::Active {\n            result.kept", "        if false {\n            result.kept", "lib", "core::plan::tests::rule8_only_active_images_are_deleted"),
    "rule5 unreadable index ignored": ("src/app/prune.rs", "        if let Some(ManifestKind::Unreadable { reason }) = manifests.get(&image.digest) {", "        if let Some(ManifestKind::Unreadable { reason }) = manifests.get(&image.digest).filter(|_| false) {", "model", "no_rule_is_ever_broken"),
    "rule4 tag of non-cache removed": ("src/app/branch_cleanup.rs", "    if let Err(reason) = classify(&image, manifest.as_ref()) {", "    if let Err(reason) = classify(&image, manifest.as_ref()).and(Err::<(), _>(KeepReason::TriggerDigest)).or(Ok::<(), KeepReason>(())) {", "model", "no_rule_is_ever_broken"),
    "rule3 last tag of referenced image": ("src/app/branch_cleanup.rs", "        if let Some(index) = index {", "        if let Some(index) = index.filter(|_| false) {", "model", "no_rule_is_ever_broken"),
    "rule8 tag of archived image": ("src/app/branch_cleanup.rs", "    if image.status != ImageStatus::Active {\n        return Some(KeepReason::NotActive", "    if false {\n        return Some(KeepReason::NotActive", "model", "no_rule_is_ever_broken"),
    "rule2 delete retried without re-check": ("src/app/prune.rs", "                in_flight.extend(checked.delete.iter().map(|d| (d.digest.clone(), d.clone())));\n", "                in_flight.extend(checked.delete.iter().map(|d| (d.digest.clone(), d.clone())));\n                let _ = writer.delete_digests(repository, &digests).await;\n", "model", "no_rule_is_ever_broken"),
    "rule9 KEEP_TAGS ignored by the sweep": ("src/app/sweep.rs", "    candidates.retain(|c| !any_matches(&settings.keep_tags, &c.tag));", "    candidates.retain(|_| true);", "model", "no_rule_is_ever_broken"),
    "rule9 KEEP_TAGS ignored on branch deletion": ("src/core/trigger.rs", "        } else if any_matches(config.keep_tags, &tag) {", "        } else if false {", "model", "no_rule_is_ever_broken"),
    "rule9 protected branch and colliding tags": ("src/core/trigger.rs", "fn protected_owner(config: &TriggerRules, branch: &str, tag: &str) -> Option<String> {\n", "fn protected_owner(config: &TriggerRules, branch: &str, tag: &str) -> Option<String> {\n    #[allow(unreachable_code)]\n    return None;\n", "model", "no_rule_is_ever_broken"),
    # Issue 17: time and state. Each names the test that catches it.
    "1 event time ignored (branch created again)": ("src/app/branch_cleanup.rs", "pushed_at.is_none_or(|p| p > event_at)", "pushed_at.is_none_or(|p| p > event_at) && false", "model", "no_rule_is_ever_broken"),
    "1 the deleted branch's own name skipped": ("src/core/cache_tags.rs", "            .find(|b| cache_tag_for_branch(\"\", b) == part)", "            .find(|b| cache_tag_for_branch(\"\", b) == part && b.contains('#'))", "model", "no_rule_is_ever_broken"),
    "2 dry run continues": ("src/inbound/pruner/sweeping.rs", "        if unfinished && !dry_run {", "        if unfinished {", "model", "no_rule_is_ever_broken"),
    "2 dry run continues when out of time": ("src/inbound/pruner/sweeping.rs", "                if settings.dry_run =>", "                if false =>", "time_and_state", "a_dry_run_sweep_out_of_time_does_not_continue"),
    "2 a sweep record started after the stop": ("src/inbound/pruner/sqs.rs", "            if !stop.time_left() {\n                info!(%repository, \"out of time before this repository's sweep", "            if false {\n                info!(%repository, \"out of time before this repository's sweep", "time_and_state", "records_that_cannot_start_before_the_stop_are_handed_back_untouched"),
    "2 no progress bound": ("src/core/trigger.rs", "        if !progressed && !shrank {", "        if false {", "time_and_state", "a_continuation_without_progress_gives_up"),
    "2 a redelivered sweep never continues": ("src/inbound/pruner/sweeping.rs", "            NextStep::Continue(continuation) => {\n                queue.continue_sweep", "            NextStep::Continue(_) if request.redelivered => {}\n            NextStep::Continue(continuation) => {\n                queue.continue_sweep", "model", "continuation_chains_survive_failed_and_lost_sends_and_redeliveries"),
    "2 a redelivered sweep never continues (direct)": ("src/inbound/pruner/sweeping.rs", "            NextStep::Continue(continuation) => {\n                queue.continue_sweep", "            NextStep::Continue(_) if request.redelivered => {}\n            NextStep::Continue(continuation) => {\n                queue.continue_sweep", "time_and_state", "a_redelivered_sweep_message_continues_when_its_first_send_failed"),
    "3 audit only at the end": ("src/app/prune.rs", "                record(&done, &[]);\n", "", "time_and_state", "every_deletion_has_its_audit_record_when_a_later_batch_fails"),
    "3 a lost answer's deletions unaudited": ("src/app/prune.rs", "        if sent.is_empty() {\n            return;", "        if true {\n            return;", "time_and_state", "a_lost_answer_without_time_to_retry_is_still_audited"),
    "3 a lost answer's unreadable outcome unaudited": ("src/app/prune.rs", "                delete_unconfirmed: sent,", "                delete_unconfirmed: { drop(sent); vec![] },", "time_and_state", "a_lost_answer_whose_recheck_fails_leaves_unconfirmed_lines"),
    "3 a batch's deletions unaudited (model: audit == deleted)": ("src/app/prune.rs", "                record(&done, &[]);\n", "", "model", "no_rule_is_ever_broken"),
    "3 a lost answer's deletions unaudited (model: audit == deleted)": ("src/app/prune.rs", "        if sent.is_empty() {\n            return;", "        if true {\n            return;", "model", "no_rule_is_ever_broken"),
    "3 a lost tag removal's unreadable outcome unaudited": ("src/app/branch_cleanup.rs", "            audit.tags(&[run(TagOutcome::RemoveUnconfirmed { image_deleted })]);", "", "time_and_state", "a_lost_tag_removal_that_cannot_be_settled_leaves_an_unconfirmed_line"),
    "3 an unconfirmed tag line without its reason": ("src/app/audit.rs", "                None => t.clone().because(self.why),", "                None => t.clone(),", "time_and_state", "a_lost_tag_removal_that_cannot_be_settled_leaves_an_unconfirmed_line"),
    "3 an unconfirmed tag line without its reason (model: only a budget may evict)": ("src/app/audit.rs", "                None => t.clone().because(self.why),", "                None => t.clone(),", "model", "no_rule_is_ever_broken"),
    "4 archived index retried": ("src/app/prune.rs", "            PruneError::UnreadableIndex { archived, .. } => *archived,", "            PruneError::UnreadableIndex { .. } => false,", "time_and_state", "an_archived_index_skips_the_repository_without_retries"),
    "4 an active index's failed read taken as lasting": ("src/app/prune.rs", "            PruneError::UnreadableIndex { archived, .. } => *archived,", "            PruneError::UnreadableIndex { .. } => true,", "time_and_state", "an_active_index_whose_read_fails_once_is_retried_not_skipped"),
    "4 AccessDenied taken for an API error": ("src/adapters/ecr/errors.rs", "    if is_access_denied(&err) {", "    if false {", "pruner_mocks", "access_denied_is_a_lasting_refusal_not_a_transient_fault"),
    "5 re-check ignores status": ("src/core/plan.rs", "            Some(now) if now.status != ImageStatus::Active => result.kept.push(KeptImage {", "            Some(now) if now.status != ImageStatus::Active && false => result.kept.push(KeptImage {", "time_and_state", "an_image_archived_after_the_snapshot_is_not_deleted"),
    "5 last tag look-up ignores status": ("src/app/branch_cleanup.rs", "            if let Some(reason) = refusal(&current, pushed_before, used_before) {", "            if let Some(reason) = refusal(&current, pushed_before, used_before).filter(|_| false) {", "time_and_state", "a_tag_whose_image_was_archived_before_the_last_look_up_stays"),
    "6 no deadline between read batches": ("src/app/reads.rs", "        if !deadline.time_left() {\n            return Ok(None);", "        if false {\n            return Ok(None);", "time_and_state", "time_is_asked_before_every_manifest_read_batch"),
    "6 branch-tag removal ignores the deadline": ("src/inbound/pruner/mod.rs", "            if !stop.time_left() {\n                return Err(out_of_time(repository));", "            if false {\n                return Err(out_of_time(repository));", "time_and_state", "a_branch_deletion_after_the_stop_removes_nothing_and_is_retried"),
    "6 GitHub asked after the stop": ("src/app/sweep.rs", "    // Time is asked before the first call, GitHub's included.\n    if !run.deadline.time_left() {", "    // Time is asked before the first call, GitHub's included.\n    if false {", "time_and_state", "a_sweep_after_the_stop_does_not_ask_github"),
    "7 refused token not read again": ("src/adapters/github.rs", "                if fresh == token {", "                if true {", "time_and_state", "a_rotated_github_token_is_read_again_when_refused"),
    "7 missing previous secret read on every request": ("src/adapters/secrets.rs", "if !age.is_zero() && last.is_some_and", "if false && last.is_some_and", "webhook_moto", "forged_deliveries_do_not_read_the_secret_each_time"),
    "7 previous webhook secret refused": ("src/inbound/webhook.rs", "                if fresh.is_ok() || self.signed_with_previous(body, signature).await {", "                if fresh.is_ok() {", "webhook_moto", "a_rotated_secret_is_read_again_on_a_signature_mismatch"),
    "8 GitHub failure stops the manifests": ("src/app/sweep.rs", "            Err(err) => (None, Some(err)),", "            Err(err) => return Err(SweepError::Branches(err)),", "time_and_state", "a_transient_github_failure_in_a_sweep_still_prunes_manifests"),
    # Issue 23: the guards the first list missed.
    "moved tag at the last look-up": ("src/app/branch_cleanup.rs", "            if current.digest != judged {", "            if false {", "registry_races", "a_tag_pushed_again_before_the_last_look_up_is_kept_as_tag_moved"),
    "moved tag since the sweep's listing": ("src/app/branch_cleanup.rs", "        if expected != judged {", "        if false {", "sweep_moto", "a_stale_tag_pushed_again_is_not_removed"),
    "24 stack rules ignored": ("src/inbound/cli/session.rs", "        RulesChoice::Stack(stack) => stack_rules(&sdk, stack).await?,\n        RulesChoice::Shell | RulesChoice::Unchosen => {", "        RulesChoice::Stack(_) | RulesChoice::Shell | RulesChoice::Unchosen => {", "cli_moto", "sweep_judges_with_the_stack_rules_not_the_shell"),
    "24 sweep without a rules choice": ("src/inbound/cli/session.rs", "        RulesChoice::Unchosen => Err(Failure::new(", "        RulesChoice::Unchosen if false => Err(Failure::new(", "cli_moto", "sweep_judges_with_the_stack_rules_not_the_shell"),
    "24 stack scope ignored": ("src/inbound/cli/session.rs", "    if session.rules.function.is_some() && !session.rules.config.in_scope(repository) {", "    if false {", "cli_moto", "a_stack_out_of_scope_or_missing_is_refused"),
    "24 redelivery stamped with the forwarding time": ("src/inbound/webhook.rs", "            .set_time(created.map(aws_smithy_types::DateTime::from_secs))", "            .set_time(None)", "webhook_moto", "a_redelivered_deletion_is_judged_as_of_the_original_event"),
    "24 refused requests not counted": ("src/inbound/webhook.rs", "        if (400..500).contains(&status) {", "        if (400..401).contains(&status) {", "lambda_binaries", "a_flood_of_unsigned_requests_is_refused_cheaply_and_counted"),
    "25 referrer kept with its subject deleted anyway": ("src/core/plan.rs", "        .partition(|d| d.subject.as_ref().is_none_or(|s| going.contains(s)));", "        .partition(|_| true);", "lib", "core::plan::tests::a_referrer_goes_only_with_its_subject_at_the_last_look_up"),
    "25 unconfirmed referrer deleted": ("src/core/plan.rs", "                .is_none_or(|only| only.contains(&image.digest))\n        {", "                .is_none_or(|_| true)\n        {", "lib", "core::plan::tests::a_deleted_cache_manifest_takes_its_referrers_and_nothing_else"),
    "25 batch splits a subject from its referrers": ("src/core/plan.rs", "            (Some(subject), Some(group)) if group.first().map(|d| &d.digest) == Some(subject) => {", "            (Some(subject), Some(group)) if group.first().map(|d| &d.digest) == Some(subject) && false => {", "lib", "core::plan::tests::batches_never_separate_a_cache_manifest_from_its_referrers"),
    "25 overlapping templates accepted": ("src/core/cache_tags.rs", "                if let Some(example) = shared_tag(first, second) {", "                if let Some(example) = shared_tag(first, second).filter(|_| false) {", "lib", "core::cache_tags::tests::templates_that_can_make_one_tag_for_two_refs_are_refused"),
    "25 gone-branch judges pull-request tags": ("src/core/stale.rs", "        cache_tags.branch_part(tag).is_some()\n    })", "        let _ = tag; true\n    })", "lib", "core::stale::tests::a_pull_request_cache_is_not_a_gone_branch_but_ages_like_any_cache"),
    "25 re-opened pull request not asked": ("src/inbound/pruner/mod.rs", "                            open.then_some(KeepReason::PullRequestOpen { number: *number })", "                            { let _ = open; None }", "cache_kinds_moto", "with_a_token_an_open_pull_request_keeps_its_cache"),
    "25 cache pushed after the close removed": ("src/inbound/pruner/mod.rs", "        let pushed_before = Some(ended_at.unwrap_or_else(sweeping::now_secs));", "        let pushed_before = None;", "cache_kinds_moto", "a_closed_pull_request_loses_its_cache_unless_pushed_since"),
    "25 promotion over a newer base cache": ("src/app/branch_cleanup.rs", "        if !matches!((base.pushed_at, group.pushed_at), (Some(b), Some(g)) if g > b) {", "        if false {", "cache_kinds_moto", "a_merged_group_cache_becomes_the_base_cache_only_when_newer"),
    "25 promotion of an unmerged group": ("src/core/trigger.rs", "if config.promote_merged_groups && payload.reason.as_deref() == Some(\"merged\")", "if config.promote_merged_groups", "lib", "core::trigger::tests::a_merged_group_promotes_its_caches_only_when_asked"),
    "25 referrers of anything deleted (model)": ("src/core/plan.rs", "        let with = referrers\n            .remove(candidate.digest.as_str())\n            .unwrap_or_default();", "        let with: Vec<&ImageRecord> = std::mem::take(&mut referrers).into_values().flatten().collect();", "model", "no_rule_is_ever_broken"),
    "25 tag removal leaves its image's signatures (model)": ("src/app/branch_cleanup.rs", "    if riders.is_empty() {\n        return Ok(run);\n    }", "    if riders.is_empty() || true {\n        return Ok(run);\n    }", "model", "no_rule_is_ever_broken"),
    "25 referrer of a subject still there deleted after a tag removal": ("src/core/plan.rs", "        .filter(|s| !in_batch.contains(s) && asked.contains(*s) && !current.contains_key(*s))", "        .filter(|s| !in_batch.contains(s))", "lib", "core::plan::tests::a_referrer_of_an_image_a_tag_removal_took_goes_only_once_it_is_gone"),
    "25 tag removal's signatures not deleted": ("src/app/branch_cleanup.rs", "        run.referrers = Some(delete_referrers(registry, writer, repository, riders, audit).await);", "        let _ = riders;", "cache_kinds_moto", "a_closed_pull_requests_signed_cache_takes_its_signatures_along"),
    "25 promotion's last look-up ignored": ("src/app/branch_cleanup.rs", "    if moved {", "    if false {", "registry_races", "a_base_cache_pushed_before_the_last_look_up_is_not_replaced"),
    "25 promotion unaudited": ("src/app/branch_cleanup.rs", "    audit.tags(std::slice::from_ref(&run));", "    let _ = audit;", "registry_races", "a_promotion_is_audited_as_it_is_made"),
    "25 lost promotion not settled": ("src/app/branch_cleanup.rs", "                    Ok(Some(now)) if now.digest == group.digest => {}", "                    Ok(Some(now)) if now.digest == group.digest && false => {}", "registry_races", "a_promotion_whose_answer_was_lost_is_settled_by_one_look_up"),
    "25 sweep expires an open pull request's cache (model)": ("src/app/sweep.rs", "        candidates.retain(|c| !live.alive(&c.tag));", "        candidates.retain(|c| !live.branches.contains(&c.tag));", "model", "no_rule_is_ever_broken"),
    "25 sweep misses closed pull requests (model)": ("src/app/sweep.rs", "        if let Some(open) = &live.pull_requests {", "        if let Some(open) = None::<&HashSet<String>> {", "model", "a_sweep_takes_the_cache_of_a_pull_request_closed_without_its_event"),
    "25 closed-pull-request rule ignores open ones": ("src/core/stale.rs", "                    && !self.listed.contains(tag)", "", "lib", "core::stale::tests::a_pull_request_not_open_loses_its_cache_once_old_enough"),
    "25 confirmed sweep deletes unshown signatures": ("src/app/branch_cleanup.rs", "                    if riders.iter().any(|r| !shown.contains(&r.digest)) {", "                    if false {", "registry_races", "a_confirmed_sweep_never_deletes_a_signature_it_did_not_show"),
    "25 closed pull request not asked again": ("src/app/sweep.rs", "        if unlisted_pull_request {", "        if false {", "sweep_moto", "a_sweep_removes_the_caches_of_pull_requests_no_longer_open"),
    "25 only pull requests judged closed asked again (model)": ("src/app/sweep.rs", "        let unlisted_pull_request = existing_tags.is_some_and(|live| {\n            cache_tags.pr_part(&tag.tag).is_some() && live.gone(cache_tags, &tag.tag)\n        });", "        let unlisted_pull_request = tag.why == TagExpiry::PullRequestNotOpen;", "model", "no_rule_is_ever_broken"),
    "sweep: a tag the first branch listing left ownerless not listed again": ("src/app/sweep.rs", "        if let Some((live, github)) = unlisted_branch {", "        if let Some((live, github)) = unlisted_branch.filter(|_| false) {", "sweep_moto", "a_branch_a_shifted_listing_missed_keeps_its_cache"),
    "sweep: a tag the first branch listing left ownerless not listed again (model)": ("src/app/sweep.rs", "        if let Some((live, github)) = unlisted_branch {", "        if let Some((live, github)) = unlisted_branch.filter(|_| false) {", "model", "no_rule_is_ever_broken"),
    "branch deletion: one listing without an owner believed": ("src/app/branch_cleanup.rs", "            if i > 0 && listing_complete(&self.listings[i - 1], &self.listings[i]) {", "            if listing_complete(&[], &[]) {", "sweep_moto", "branch_deletion_keeps_a_tag_whose_live_owner_a_shifted_listing_missed"),
    "a listing believed complete though a branch it read was deleted": ("src/app/branch_cleanup.rs", "            if i > 0 && listing_complete(&self.listings[i - 1], &self.listings[i]) {", "            if i > 0 {", "sweep_moto", "a_branch_a_shifted_listing_missed_keeps_its_cache"),
    "a listing repeating a name believed complete": ("src/core/branch.rs", "    let repeats = !earlier.iter().all(|b| seen.insert(b.as_str()));", "    let repeats = !earlier.iter().all(|b| seen.insert(b.as_str()) || true);", "lib", "core::branch::tests::a_listing_is_complete_when_the_next_still_holds_all_it_read"),
    "25 a 404 keeps a closed pull request's cache": ("src/app/sweep.rs", "            Err(BranchListError::Refused { status: 404, .. }) => {}", "", "sweep_moto", "a_sweep_removes_the_caches_of_pull_requests_no_longer_open"),
    "25 close event time ignored (model)": ("src/inbound/pruner/mod.rs", "        let pushed_before = Some(ended_at.unwrap_or_else(sweeping::now_secs));", "        let pushed_before = None;", "model", "no_rule_is_ever_broken"),
    "25 promotion moves a non-cache image's tag (model)": ("src/app/branch_cleanup.rs", "            if let Err(reason) = cache_or_why(registry, repository, base).await? {", "            if let Err(reason) = cache_or_why(registry, repository, base).await?.and(Err::<(), _>(KeepReason::AlreadyPromoted)).or(Ok::<(), KeepReason>(())) {", "model", "no_rule_is_ever_broken"),
    "confirmed tags ignored": ("src/app/sweep.rs", "        candidates.retain(|c| confirmed.tags.contains(&(c.tag.clone(), c.digest.clone())));", "        candidates.retain(|_| true);", "cli_moto", "sweep_deletes_only_what_it_showed"),
    "confirmed digests ignored": ("src/core/plan.rs", "                    .is_some_and(|only| !only.contains(&image.digest)) =>", "                    .is_some_and(|_| false) =>", "lib", "core::plan::tests::a_confirmed_plan_bounds_what_is_deleted"),
    "live branches' tags expired": ("src/app/sweep.rs", "        candidates.retain(|c| !live.alive(&c.tag));", "        candidates.retain(|_| true);", "sweep_moto", "github_check_removes_gone_branches_and_never_existing_ones"),
    "scope ignored on branch deletion": ("src/inbound/pruner/mod.rs", "            if !self.config.in_scope(repository) {", "            if false {", "branch_moto", "repositories_outside_the_deployment_scope_are_left_alone"),
    "no deadline between delete batches": ("src/app/prune.rs", "    for (n, batch) in batches.iter().enumerate() {\n        if !run.deadline.time_left() {", "    for (n, batch) in batches.iter().enumerate() {\n        if false {", "registry_races", "the_sweep_stops_inside_a_repository_when_time_runs_out"),
    "MAX_CONTINUATIONS ignored": ("src/core/trigger.rs", "    if attempt > MAX_CONTINUATIONS {", "    if false {", "lib", "core::trigger::tests::continuations_must_make_progress_and_stop_at_the_bound"),
    "8 a transient GitHub failure counted as skipped": ("src/adapters/metrics.rs", "report.tag_expiry_skipped.is_some() && report.tag_expiry_skipped_lasting", "report.tag_expiry_skipped.is_some()", "lib", "adapters::metrics::tests::only_a_lasting_github_failure_counts_as_a_skipped_repository"),
    # Issue 26: the cache budget.
    "26 budget never evicts (model)": ("src/core/budget.rs", "        if now_footprint <= input.budget_bytes {\n            break;", "        if true {\n            break;", "model", "no_rule_is_ever_broken"),
    "26 protected cache evicted (model)": ("src/core/budget.rs", "        .any(|t| input.cache_tags.protected_by(input.protected, t))", "        .any(|t| input.cache_tags.protected_by(input.protected, t) && false)", "model", "no_rule_is_ever_broken"),
    "26 KEEP_TAGS cache evicted (model)": ("src/core/budget.rs", "    if cache_tags.iter().any(|t| any_matches(input.keep_tags, t)) {", "    if false {", "model", "no_rule_is_ever_broken"),
    "26 evictions unaudited (model)": ("src/app/budget.rs", "            run.audit.tags(std::slice::from_ref(&report));\n", "", "model", "no_rule_is_ever_broken"),
    "26 grace period ignored": ("src/core/budget.rs", "        Some(pushed) if input.now_secs - pushed >= input.min_age_secs => None,", "        Some(_) => None,", "budget", "a_cache_younger_than_the_grace_period_is_never_evicted"),
    "26 most recently used evicted first": ("src/core/budget.rs", "        used(a)\n            .cmp(&used(b))", "        used(b)\n            .cmp(&used(a))", "budget", "the_least_recently_used_caches_go_until_the_footprint_fits"),
    "26 a pull since the plan ignored": ("src/app/branch_cleanup.rs", "        if image.last_used_at().is_none_or(|used| used > judged) {", "        if image.last_used_at().is_none_or(|used| used > judged) && false {", "budget", "a_cache_pulled_after_the_plan_is_kept_at_the_last_look_up"),
    "26 eviction cap ignored": ("src/core/budget.rs", "        if tags_chosen + tags.len() > input.cap {", "        if false {", "budget", "the_cap_bounds_evictions_with_the_other_removals"),
    "26 a shared blob counted as freed": ("src/core/budget.rs", "            *refs -= 1;\n            if *refs == 0 {\n                footprint_freed", "            *refs -= 1;\n            if true {\n                footprint_freed", "lib", "core::budget::tests::shared_layers_free_only_when_their_last_cache_goes"),
    "26 this run's deletions left in the footprint": ("src/core/budget.rs", "        .filter(|i| !going.contains(&i.digest))\n        .collect();", "        .collect();", "lib", "core::budget::tests::what_this_run_deletes_anyway_is_not_in_the_footprint"),
    "26 unconfirmed eviction made": ("src/app/budget.rs", "            if !shown {\n                continue;", "            if false {\n                continue;", "cli_moto", "plan_shows_budget_evictions_and_sweep_evicts_only_those"),
    "26 savings priced by summed sizes": ("src/core/savings.rs", "        i64::try_from(t.stale_unique_bytes).unwrap_or(i64::MAX),", "        t.stale_bytes,", "lib", "core::savings::tests::totals_add_up_and_the_largest_saving_comes_first"),
    # Issue 18: the savings report only reads. Since issue 23 that is a matter of types (the
    # report and `plan` are built over a RegistryReader and hold no writer: a deletion from them
    # does not compile), so no mutation can express it; what is left is the plan-only shortcut.
    "plan_only skips a deletion's re-check": ("src/app/prune.rs", "    if settings.dry_run && settings.plan_only {", "    if settings.plan_only {", "report", "plan_only_never_skips_the_look_up_before_a_deletion"),
    "9 typed manifests read": ("src/core/plan.rs", "            && image.artifact_media_type.is_none()\n", "", "time_and_state", "manifests_that_describe_images_classifies_are_never_read"),
}


# The property tests draw their cases from this seed here, so a mutation caught once is caught
# on every run of the same code (with a fresh seed each run, a rare scenario a guard needs is
# drawn only most of the time; the ordinary test runs keep their random seeds and explore).
PROPTEST_SEED = "20261205"


def run(target):
    args = ["cargo", "test", "-q"] + (["--lib"] if target == "lib" else ["--test", target])
    env = dict(os.environ, PROPTEST_RNG_SEED=PROPTEST_SEED)
    return subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env)


def failed_tests(output):
    """The failing tests libtest lists at the end of its output ("failures:" then indented names)."""
    return re.findall(r"^    ([\w:]+)$", output, re.M)


def main():
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
    selected = {name: m for name, m in MUTATIONS.items() if only in name}
    for target in sorted({m[3] for m in selected.values()}):
        r = run(target)
        if r.returncode != 0:
            out = r.stdout + r.stderr
            print(f"check-model-catches: baseline: `{target}` fails unmutated "
                  f"({', '.join(failed_tests(out)[:3]) or 'build or setup error'}); fix it first:\n"
                  f"{out[-2000:]}", file=sys.stderr)
            sys.exit(1)
        print(f"baseline: {target} passes unmutated", file=sys.stderr, flush=True)
    failed = 0
    print("| mutation | test | verdict |")
    print("| --- | --- | --- |")
    for name, (path, old, new, target, must_fail) in selected.items():
        src = open(path).read()
        if old not in src:
            print(f"| {name} | {target} | MUTATION NOT APPLIED |", flush=True)
            failed += 1
            continue
        shutil.copy(path, path + ".orig")
        open(path, "w").write(src.replace(old, new, 1))
        started = time.time()
        try:
            r = run(target)
            out = r.stdout + r.stderr
            if "could not compile" in out:
                verdict = "COMPILE ERROR: " + out[out.find("error"):][:300].replace("\n", " ")
                failed += 1
            elif r.returncode == 0:
                verdict = "NOT CAUGHT"
                failed += 1
            elif must_fail not in failed_tests(out):
                verdict = f"NOT CAUGHT BY {must_fail} (failed: {', '.join(failed_tests(out)[:3]) or 'no test'})"
                failed += 1
            else:
                verdict = f"caught by {must_fail}"
        finally:
            shutil.move(path + ".orig", path)
            # The copy's mtime predates the mutated build: touch it so cargo rebuilds.
            os.utime(path)
        print(f"| {name} | `{target}` | {verdict} ({time.time() - started:.0f} s) |", flush=True)
    if failed:
        print(f"check-model-catches: {failed} mutation(s) not caught", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
