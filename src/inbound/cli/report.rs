//! The savings report for people: a terminal table, and one self-contained HTML page (inline CSS
//! and SVG, nothing loaded from the network) with a chart of stale and live cache per repository.

use std::fmt::Write;

use crate::core::savings::{RepositorySavings, SavingsReport};

use super::human_bytes;

/// Repositories drawn in the HTML chart (all of them are in its table).
const CHART_ROWS: usize = 40;

/// The table, largest saving first, and the totals.
pub fn render_table(report: &SavingsReport) -> String {
    let mut out = String::new();
    let t = &report.totals;
    if report.repositories.is_empty() {
        let _ = writeln!(out, "no repository in scope");
    } else {
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>11} {:>6} {:>11} {:>5} {:>6} {:>8}  NOTE",
            "REPOSITORY", "TAGS", "CACHE", "STALE", "STALE SIZE", "GONE", "UNUSED", "ARCHIVED"
        );
        for r in &report.repositories {
            let _ = writeln!(
                out,
                "{:<40} {:>5} {:>11} {:>6} {:>11} {:>5} {:>6} {:>8}  {}",
                r.repository,
                r.cache_tags,
                human_bytes(r.cache_bytes),
                r.stale_manifests,
                human_bytes(r.stale_bytes),
                r.gone_branch_tags.len(),
                r.unused_tags.len(),
                r.archived_images,
                note(r)
            );
        }
    }
    let _ = writeln!(
        out,
        "total: {} repositories ({} not read), {} cache tags, {} of cache; {} stale manifest(s), {} \
         — ${:.2}/month at ${:.2}/GB-month; {} gone-branch and {} unused tag(s)",
        t.repositories,
        t.repositories_failed,
        t.cache_tags,
        human_bytes(t.cache_bytes),
        t.stale_manifests,
        human_bytes(t.stale_bytes),
        t.monthly_savings_usd,
        t.price_per_gb_month,
        t.gone_branch_tags,
        t.unused_tags,
    );
    out
}

fn note(r: &RepositorySavings) -> String {
    let mut note = match (&r.error, &r.tag_expiry_skipped) {
        (Some(error), _) => format!("ERROR: {error}"),
        (None, Some(skipped)) => format!("tags not judged: {skipped}"),
        (None, None) => String::new(),
    };
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

/// Stale (would be deleted now) and live cache per repository, as horizontal stacked bars.
fn chart(report: &SavingsReport) -> String {
    let mut rows: Vec<&RepositorySavings> = report
        .repositories
        .iter()
        .filter(|r| r.cache_bytes > 0)
        .collect();
    rows.truncate(CHART_ROWS);
    if rows.is_empty() {
        return "<p class=\"empty\">No BuildKit cache found in these repositories.</p>".into();
    }
    let (label_w, bar_w, value_w, row_h) = (280.0, 520.0, 200.0, 26.0);
    let width = label_w + bar_w + value_w;
    let height = row_h * rows.len() as f64 + 40.0;
    let max = rows.iter().map(|r| r.cache_bytes).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Stale and live BuildKit cache by repository\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">"
    );
    let _ = write!(
        svg,
        "<rect x=\"{label_w}\" y=\"4\" width=\"14\" height=\"14\" class=\"stale\"/>\
         <text x=\"{}\" y=\"16\">stale (a sweep deletes it now)</text>\
         <rect x=\"{}\" y=\"4\" width=\"14\" height=\"14\" class=\"live\"/>\
         <text x=\"{}\" y=\"16\">live cache (tagged)</text>",
        label_w + 20.0,
        label_w + 260.0,
        label_w + 280.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let stale_w = r.stale_bytes.max(0) as f64 / max * bar_w;
        let live_w = (r.cache_bytes - r.stale_bytes).max(0) as f64 / max * bar_w;
        let name = escape(&r.repository);
        let _ = write!(
            svg,
            "<g><title>{name}: {} stale of {} cache</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{stale_w:.1}\" height=\"{}\" class=\"stale\"/>\
             <rect x=\"{:.1}\" y=\"{y}\" width=\"{live_w:.1}\" height=\"{}\" class=\"live\"/>\
             <text x=\"{:.1}\" y=\"{}\" class=\"value\">{} stale / {}</text></g>",
            human_bytes(r.stale_bytes),
            human_bytes(r.cache_bytes),
            label_w - 8.0,
            y + 15.0,
            escape(&truncate(&r.repository, 38)),
            row_h - 6.0,
            label_w + stale_w,
            row_h - 6.0,
            label_w + stale_w + live_w + 6.0,
            y + 15.0,
            human_bytes(r.stale_bytes),
            human_bytes(r.cache_bytes),
        );
    }
    svg.push_str("</svg>");
    if report
        .repositories
        .iter()
        .filter(|r| r.cache_bytes > 0)
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
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.error.is_some() { " class=\"failed\"" } else { "" },
            escape(&r.repository),
            r.cache_tags,
            human_bytes(r.cache_bytes),
            r.stale_manifests,
            human_bytes(r.stale_bytes),
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
table {{ border-collapse: collapse; margin-top: 18px; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #e3e7ec; padding: 5px 10px; text-align: left; vertical-align: top; }}
td:nth-child(n+2):nth-child(-n+5), td:nth-child(8) {{ text-align: right; }}
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
<div class="card">Stale cache<b>{stale}</b>{stale_manifests} manifests</div>
<div class="card saving">Monthly savings<b>${savings:.2}</b>at ${price:.2}/GB-month</div>
<div class="card">Tags a sweep removes<b>{expiring}</b>{gone} gone branch, {unused} unused</div>
</div>
{chart}
<table>
<thead><tr><th>Repository</th><th>Cache tags</th><th>Cache</th><th>Stale manifests</th><th>Stale size</th><th>Gone-branch tags</th><th>Unused tags</th><th>Archived</th><th>Note</th></tr></thead>
<tbody>{rows}</tbody>
</table>
<p class="note">Sizes are ECR's imageSizeInBytes per image. Cache manifests share layers and ECR stores a shared layer once, so the storage freed can be less than the stale size.</p>
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
        cache = human_bytes(t.cache_bytes),
        tags = t.cache_tags,
        stale = human_bytes(t.stale_bytes),
        stale_manifests = t.stale_manifests,
        savings = t.monthly_savings_usd,
        price = t.price_per_gb_month,
        expiring = t.gone_branch_tags + t.unused_tags,
        gone = t.gone_branch_tags,
        unused = t.unused_tags,
        chart = chart(report),
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
            unused_tags: vec!["cache-old".into()],
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
        assert!(table.contains("$0.20/month"), "{table}");
        assert!(table.contains("2 repositories (1 not read)"), "{table}");
    }

    #[test]
    fn the_page_is_escaped_and_loads_nothing() {
        let page = render_html(&sample(), "2026-11-30T19:00:00Z");
        assert!(page.contains("team/&lt;app&gt;"));
        assert!(!page.contains("team/<app>"));
        assert!(page.contains("<svg"));
        assert!(page.contains("$0.20"));
        for remote in ["http://", "https://", "src=", "@import", "url("] {
            let outside_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(remote), "{remote} in the page");
        }
    }
}
