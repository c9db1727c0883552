//! The savings report for people: a terminal table, and one self-contained HTML page (inline CSS
//! and SVG, nothing loaded from the network) with a chart of stale and live cache per repository.

use std::fmt::Write;

use crate::core::savings::{RepositorySavings, SavingsReport};

use super::human_bytes;

/// Repositories drawn in the HTML chart (all of them are in its table).
const CHART_ROWS: usize = 40;

/// The table, largest saving first, and the totals. Sizes are unique bytes (a shared layer
/// counted once, as ECR stores it); with a budget, its columns too.
pub fn render_table(report: &SavingsReport) -> String {
    let mut out = String::new();
    let t = &report.totals;
    let budgets = report.repositories.iter().any(|r| r.budget.is_some());
    if report.repositories.is_empty() {
        let _ = writeln!(out, "no repository in scope");
    } else {
        let _ = write!(
            out,
            "{:<40} {:>5} {:>11} {:>6} {:>11} {:>5} {:>6} {:>8}",
            "REPOSITORY", "TAGS", "CACHE", "STALE", "STALE FREES", "GONE", "UNUSED", "ARCHIVED"
        );
        if budgets {
            let _ = write!(
                out,
                " {:>11} {:>6} {:>11}",
                "BUDGET", "EVICT", "EVICT FREES"
            );
        }
        let _ = writeln!(out, "  NOTE");
        for r in &report.repositories {
            let _ = write!(
                out,
                "{:<40} {:>5} {:>11} {:>6} {:>11} {:>5} {:>6} {:>8}",
                r.repository,
                r.cache_tags,
                unique(r.cache_unique_bytes),
                r.stale_manifests,
                unique(r.stale_unique_bytes),
                r.gone_branch_tags.len(),
                r.unused_tags.len(),
                r.archived_images,
            );
            if budgets {
                match &r.budget {
                    Some(b) => {
                        let _ = write!(
                            out,
                            " {:>11} {:>6} {:>11}",
                            unique(b.budget_bytes),
                            b.would_evict.len(),
                            unique(b.evict_frees_bytes)
                        );
                    }
                    None => {
                        let _ = write!(out, " {:>11} {:>6} {:>11}", "-", "-", "-");
                    }
                }
            }
            let _ = writeln!(out, "  {}", note(r));
        }
    }
    let _ = writeln!(
        out,
        "total: {} repositories ({} not read), {} cache tags, {} of cache ({} by summed image \
         sizes); {} stale manifest(s) freeing {} — ${:.2}/month at ${:.2}/GB-month; {} gone-branch \
         and {} unused tag(s)",
        t.repositories,
        t.repositories_failed,
        t.cache_tags,
        unique(t.cache_unique_bytes),
        human_bytes(t.cache_bytes),
        t.stale_manifests,
        unique(t.stale_unique_bytes),
        t.monthly_savings_usd,
        t.price_per_gb_month,
        t.gone_branch_tags,
        t.unused_tags,
    );
    if budgets {
        let _ = writeln!(
            out,
            "budget: {} repositor(ies) over budget; evicting {} cache tag(s) frees {}",
            t.repositories_over_budget,
            t.budget_evictions,
            unique(t.budget_frees_bytes)
        );
    }
    out
}

fn unique(bytes: u64) -> String {
    crate::core::budget::human_bytes(bytes)
}

fn note(r: &RepositorySavings) -> String {
    let mut note = match (&r.error, &r.tag_expiry_skipped) {
        (Some(error), _) => format!("ERROR: {error}"),
        (None, Some(skipped)) => format!("tags not judged: {skipped}"),
        (None, None) => String::new(),
    };
    if let Some(b) = r.budget.as_ref().filter(|b| b.unreachable) {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "over budget even after evicting: {} > {} (protected, kept or young caches)",
            unique(b.footprint_after),
            unique(b.budget_bytes)
        ));
    }
    // Signed repositories: what goes with the stale cache, and what is left from before.
    let referrers = [
        (r.stale_referrers, "signature(s) go with the stale cache"),
        (r.orphaned_referrers, "orphaned signature(s), kept"),
    ];
    for (count, what) in referrers.iter().filter(|(n, _)| *n > 0) {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!("{count} {what}"));
    }
    note
}

/// Text safe inside HTML and SVG elements and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn truncate(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        let head: String = name.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

/// Stale (freed by a sweep now) and live cache per repository in unique bytes, as horizontal
/// stacked bars, with each repository's budget (when planned) as a mark across its bar.
fn chart(report: &SavingsReport) -> String {
    let mut rows: Vec<&RepositorySavings> = report
        .repositories
        .iter()
        .filter(|r| r.cache_unique_bytes > 0)
        .collect();
    rows.truncate(CHART_ROWS);
    if rows.is_empty() {
        return "<p class=\"empty\">No BuildKit cache found in these repositories.</p>".into();
    }
    let (label_w, bar_w, value_w, row_h) = (280.0, 520.0, 260.0, 26.0);
    let width = label_w + bar_w + value_w;
    let height = row_h * rows.len() as f64 + 40.0;
    let max = rows
        .iter()
        .map(|r| {
            r.cache_unique_bytes
                .max(r.budget.as_ref().map_or(0, |b| b.budget_bytes))
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Stale and live BuildKit cache by repository, against its budget\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">"
    );
    let _ = write!(
        svg,
        "<rect x=\"{label_w}\" y=\"4\" width=\"14\" height=\"14\" class=\"stale\"/>\
         <text x=\"{}\" y=\"16\">stale (a sweep frees it now)</text>\
         <rect x=\"{}\" y=\"4\" width=\"14\" height=\"14\" class=\"live\"/>\
         <text x=\"{}\" y=\"16\">live cache</text>\
         <rect x=\"{}\" y=\"2\" width=\"3\" height=\"18\" class=\"budget\"/>\
         <text x=\"{}\" y=\"16\">budget</text>",
        label_w + 20.0,
        label_w + 230.0,
        label_w + 250.0,
        label_w + 360.0,
        label_w + 370.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let stale_w = r.stale_unique_bytes as f64 / max * bar_w;
        let live_w = r.cache_unique_bytes.saturating_sub(r.stale_unique_bytes) as f64 / max * bar_w;
        let name = escape(&r.repository);
        let budget_mark = match &r.budget {
            Some(b) => format!(
                "<rect x=\"{:.1}\" y=\"{}\" width=\"3\" height=\"{}\" class=\"budget\"/>",
                label_w + b.budget_bytes as f64 / max * bar_w - 1.5,
                y - 2.0,
                row_h - 2.0
            ),
            None => String::new(),
        };
        let budget_words = match &r.budget {
            Some(b) => format!(" (budget {})", unique(b.budget_bytes)),
            None => String::new(),
        };
        let _ = write!(
            svg,
            "<g><title>{name}: {} stale of {} cache{budget_words}</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{stale_w:.1}\" height=\"{}\" class=\"stale\"/>\
             <rect x=\"{:.1}\" y=\"{y}\" width=\"{live_w:.1}\" height=\"{}\" class=\"live\"/>{budget_mark}\
             <text x=\"{:.1}\" y=\"{}\" class=\"value\">{} stale / {}{budget_words}</text></g>",
            unique(r.stale_unique_bytes),
            unique(r.cache_unique_bytes),
            label_w - 8.0,
            y + 15.0,
            escape(&truncate(&r.repository, 38)),
            row_h - 6.0,
            label_w + stale_w,
            row_h - 6.0,
            label_w + (stale_w + live_w).max(
                r.budget
                    .as_ref()
                    .map_or(0.0, |b| b.budget_bytes as f64 / max * bar_w)
            ) + 6.0,
            y + 15.0,
            unique(r.stale_unique_bytes),
            unique(r.cache_unique_bytes),
        );
    }
    svg.push_str("</svg>");
    if report
        .repositories
        .iter()
        .filter(|r| r.cache_unique_bytes > 0)
        .count()
        > CHART_ROWS
    {
        let _ = write!(
            svg,
            "<p class=\"note\">The chart shows the {CHART_ROWS} repositories with the most stale \
             cache; the table lists every one.</p>"
        );
    }
    svg
}

/// One self-contained page: totals, the chart and the table. `generated_at` is an RFC 3339 time.
pub fn render_html(report: &SavingsReport, generated_at: &str) -> String {
    let t = &report.totals;
    let mut rows = String::new();
    for r in &report.repositories {
        let _ = write!(
            rows,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.error.is_some() { " class=\"failed\"" } else { "" },
            escape(&r.repository),
            r.cache_tags,
            unique(r.cache_unique_bytes),
            r.stale_manifests,
            unique(r.stale_unique_bytes),
            match &r.budget {
                Some(b) => format!(
                    "{} of {}; evicts {} ({})",
                    unique(b.footprint_bytes),
                    unique(b.budget_bytes),
                    b.would_evict.len(),
                    unique(b.evict_frees_bytes)
                ),
                None => "-".to_owned(),
            },
            escape(&r.gone_branch_tags.join(", ")),
            escape(&r.unused_tags.join(", ")),
            r.archived_images,
            escape(&note(r)),
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>BuildKit cache in ECR: savings report</title>
<style>
body {{ font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #1d2430; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
.sub {{ color: #5b6575; margin: 0 0 18px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 20px; }}
.card {{ border: 1px solid #d7dce3; border-radius: 8px; padding: 10px 16px; min-width: 150px; background: #f7f9fb; }}
.card b {{ display: block; font-size: 22px; }}
.card.saving {{ background: #fff3ec; border-color: #f3b391; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #1d2430; }}
svg .stale {{ fill: #e4572e; }}
svg .live {{ fill: #4c78a8; }}
svg .value {{ fill: #5b6575; }}
svg .budget {{ fill: #1d2430; }}
table {{ border-collapse: collapse; margin-top: 18px; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #e3e7ec; padding: 5px 10px; text-align: left; vertical-align: top; }}
td:nth-child(n+2):nth-child(-n+5), td:nth-child(9) {{ text-align: right; }}
th {{ background: #eef1f5; }}
tr.failed td {{ color: #a12a10; }}
.note, .empty {{ color: #5b6575; }}
</style></head>
<body>
<h1>BuildKit cache in Amazon ECR</h1>
<p class="sub">Read-only report generated {generated} by ecr-cache-pruner {version}. Stale = untagged cache manifests a sweep would delete now.</p>
<div class="cards">
<div class="card">Repositories<b>{repositories}</b>{failed}</div>
<div class="card">Cache stored<b>{cache}</b>{tags} cache tags</div>
<div class="card">Stale cache frees<b>{stale}</b>{stale_manifests} manifests</div>{budget_card}
<div class="card saving">Monthly savings<b>${savings:.2}</b>at ${price:.2}/GB-month</div>
<div class="card">Tags a sweep removes<b>{expiring}</b>{gone} gone branch, {unused} unused</div>
</div>
{chart}
<table>
<thead><tr><th>Repository</th><th>Cache tags</th><th>Cache</th><th>Stale manifests</th><th>Stale frees</th><th>Budget</th><th>Gone-branch tags</th><th>Unused tags</th><th>Archived</th><th>Note</th></tr></thead>
<tbody>{rows}</tbody>
</table>
<p class="note">Sizes are unique bytes: ECR stores a layer once per repository, so each blob is counted once, and a stale manifest frees only the blobs no other manifest references. ECR's imageSizeInBytes summed per image: {summed} of cache, {summed_stale} stale (in the JSON as cache_bytes and stale_bytes).</p>
</body></html>
"#,
        generated = escape(generated_at),
        version = env!("CARGO_PKG_VERSION"),
        repositories = t.repositories,
        failed = if t.repositories_failed > 0 {
            format!("{} could not be read", t.repositories_failed)
        } else {
            "all read".to_owned()
        },
        cache = unique(t.cache_unique_bytes),
        summed = human_bytes(t.cache_bytes),
        summed_stale = human_bytes(t.stale_bytes),
        tags = t.cache_tags,
        stale = unique(t.stale_unique_bytes),
        stale_manifests = t.stale_manifests,
        savings = t.monthly_savings_usd,
        price = t.price_per_gb_month,
        expiring = t.gone_branch_tags + t.unused_tags,
        gone = t.gone_branch_tags,
        unused = t.unused_tags,
        chart = chart(report),
        budget_card = if report.repositories.iter().any(|r| r.budget.is_some()) {
            format!(
                "\n<div class=\"card\">Over budget<b>{}</b>evicting {} tag(s) frees {}</div>",
                t.repositories_over_budget,
                t.budget_evictions,
                unique(t.budget_frees_bytes)
            )
        } else {
            String::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::savings::{savings_report, unreadable};

    fn sample() -> SavingsReport {
        let app = RepositorySavings {
            repository: "team/<app>".into(),
            cache_tags: 2,
            cache_bytes: 3 << 30,
            stale_manifests: 4,
            stale_bytes: 2 << 30,
            cache_unique_bytes: 2 << 30,
            stale_unique_bytes: 1 << 30,
            unused_tags: vec!["cache-old".into()],
            budget: Some(crate::core::savings::BudgetView {
                budget_bytes: 512 << 20,
                footprint_bytes: 1 << 30,
                footprint_after: 768 << 20,
                would_evict: vec!["cache-old-feature".into()],
                evict_frees_bytes: 256 << 20,
                unreachable: true,
            }),
            ..RepositorySavings::default()
        };
        savings_report(
            vec![app, unreadable("locked", "access denied".into())],
            0.10,
        )
    }

    #[test]
    fn the_table_has_every_repository_and_the_totals() {
        let table = render_table(&sample());
        assert!(table.contains("team/<app>"), "{table}");
        assert!(table.contains("ERROR: access denied"), "{table}");
        // Priced by the unique bytes a sweep frees (1 GiB), not the summed sizes (2 GiB).
        assert!(table.contains("$0.10/month"), "{table}");
        assert!(table.contains("2 repositories (1 not read)"), "{table}");
        assert!(
            table.contains("2.0 GiB of cache (3.0 GiB by summed image sizes)"),
            "{table}"
        );
        assert!(table.contains("BUDGET"), "{table}");
        assert!(table.contains("512.0 MiB"), "{table}");
        assert!(
            table.contains("over budget even after evicting: 768.0 MiB > 512.0 MiB"),
            "{table}"
        );
        assert!(
            table.contains("evicting 1 cache tag(s) frees 256.0 MiB"),
            "{table}"
        );
    }

    #[test]
    fn the_page_is_escaped_and_loads_nothing() {
        let page = render_html(&sample(), "2026-11-30T19:00:00Z");
        assert!(page.contains("team/&lt;app&gt;"));
        assert!(!page.contains("team/<app>"));
        assert!(page.contains("<svg"));
        assert!(page.contains("$0.10"));
        // The budget is drawn across the repository's bar, and named.
        assert!(page.contains("class=\"budget\""));
        assert!(page.contains("(budget 512.0 MiB)"));
        for remote in ["http://", "https://", "src=", "@import", "url("] {
            let outside_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(remote), "{remote} in the page");
        }
    }
}
