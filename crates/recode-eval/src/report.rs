//! HTML report of one or more evaluation summaries (e.g. base vs trained): an overall table
//! and per-package / per-update-type grouped bar charts as inline SVG (no scripts, no external
//! assets), so `recode report compare A B` can write one self-contained file.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::run::{GroupScores, Summary};

/// A summary with the label shown in the report (e.g. `base`, `trained`).
#[derive(Debug, Clone)]
pub struct SummaryWithLabel {
    /// Legend label.
    pub label: String,
    /// The run's `summary.json`.
    pub summary: Summary,
}

const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |x| format!("{x:.1}"))
}

/// A grouped bar chart: one group per category, one bar per run (`None` = no bar), 0–100.
fn bar_chart(title: &str, categories: &[String], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (bar_w, gap, left, top, plot_h) = (16.0, 14.0, 44.0, 30.0, 200.0);
    let group_w = bar_w * series.len().max(1) as f64 + gap;
    let width = left + group_w * categories.len() as f64 + 20.0;
    let height = top + plot_h + 90.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" role="img" aria-label="{t}"><text x="4" y="16" font-size="13" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
    for tick in [0, 25, 50, 75, 100] {
        let y = top + plot_h * (1.0 - tick as f64 / 100.0);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2:.0}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" font-size="10" text-anchor="end">{tick}</text>"##,
            x2 = width - 10.0,
            tx = left - 4.0,
            ty = y + 3.0
        );
    }
    for (ci, cat) in categories.iter().enumerate() {
        let gx = left + gap / 2.0 + ci as f64 * group_w;
        for (si, (label, values)) in series.iter().enumerate() {
            let Some(v) = values.get(ci).copied().flatten() else {
                continue;
            };
            let h = plot_h * v.clamp(0.0, 100.0) / 100.0;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w}" height="{h:.1}" fill="{c}"><title>{l} · {cat}: {v:.1}</title></rect>"#,
                x = gx + si as f64 * bar_w,
                y = top + plot_h - h,
                c = COLORS[si % COLORS.len()],
                l = esc(label),
                cat = esc(cat),
            );
        }
        let lx = gx + bar_w * series.len() as f64 / 2.0;
        let ly = top + plot_h + 12.0;
        let _ = write!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" font-size="10" text-anchor="end" transform="rotate(-40 {lx:.1} {ly:.1})">{}</text>"#,
            esc(cat)
        );
    }
    s.push_str("</svg>");
    s
}

fn legend(runs: &[SummaryWithLabel]) -> String {
    let mut s = String::from("<p>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            s,
            r#"<span style="display:inline-block;width:12px;height:12px;background:{};margin:0 4px 0 12px"></span>{}"#,
            COLORS[i % COLORS.len()],
            esc(&r.label)
        );
    }
    s.push_str("</p>");
    s
}

type Pick = fn(&Summary) -> &std::collections::BTreeMap<String, GroupScores>;

fn grouped_section(runs: &[SummaryWithLabel], title: &str, pick: Pick) -> String {
    let cats: Vec<String> = runs
        .iter()
        .flat_map(|r| pick(&r.summary).keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if cats.is_empty() {
        return String::new();
    }
    let series = |metric: fn(&GroupScores) -> Option<f64>| -> Vec<(String, Vec<Option<f64>>)> {
        runs.iter()
            .map(|r| {
                let m = pick(&r.summary);
                (
                    r.label.clone(),
                    cats.iter().map(|c| m.get(c).and_then(metric)).collect(),
                )
            })
            .collect()
    };
    let mut s = format!("<h2>{}</h2>", esc(title));
    s.push_str(&bar_chart(
        &format!("pass@1 {title}"),
        &cats,
        &series(|g| g.pass_at_1),
    ));
    if runs
        .iter()
        .any(|r| pick(&r.summary).values().any(|g| g.upass_at_1.is_some()))
    {
        s.push_str(&bar_chart(
            &format!("UPass@1 {title}"),
            &cats,
            &series(|g| g.upass_at_1),
        ));
    }
    s
}

/// Renders a self-contained HTML page comparing `results` (first = baseline): overall table
/// with differences to the first run, and per-package / per-update-type bar charts.
pub fn render_html_report(results: &[SummaryWithLabel]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>recode evaluation</title>\
         <style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,\
         td:first-child{text-align:left}.up{color:#2a7d2a}.down{color:#b22}</style></head><body>\
         <h1>recode evaluation</h1>",
    );
    if results.is_empty() {
        s.push_str("<p>No results.</p></body></html>");
        return s;
    }
    s.push_str(&legend(results));
    s.push_str(
        "<table><tr><th>run</th><th>bench</th><th>model</th><th>n</th><th>problems</th>\
         <th>pass@1</th><th>pass@5</th><th>UPass@1</th></tr>",
    );
    let base = &results[0].summary.overall;
    for r in results {
        let o = &r.summary.overall;
        let cell = |v: Option<f64>, b: Option<f64>, first: bool| match (v, b) {
            (Some(v), Some(b)) if !first => {
                let d = v - b;
                let class = if d >= 0.0 { "up" } else { "down" };
                format!("{v:.1} <span class=\"{class}\">({d:+.1})</span>")
            }
            _ => fmt_opt(v),
        };
        let first = std::ptr::eq(r, &results[0]);
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.label),
            esc(&r.summary.bench),
            esc(&r.summary.generator),
            r.summary.n,
            o.examples,
            cell(o.pass_at_1, base.pass_at_1, first),
            cell(o.pass_at_5, base.pass_at_5, first),
            cell(o.upass_at_1, base.upass_at_1, first),
        );
    }
    s.push_str("</table>");
    s.push_str(&grouped_section(results, "per package", |x| &x.per_package));
    s.push_str(&grouped_section(results, "per update type", |x| {
        &x.per_update_type
    }));
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(p1: f64, pkg: &[(&str, f64)]) -> Summary {
        let g = |v: f64| GroupScores {
            examples: 2,
            pass_at_1: Some(v),
            pass_at_5: None,
            upass_at_1: Some(v / 2.0),
            pass_old_at_1: Some(0.0),
        };
        Summary {
            bench: "codeupdatearena".into(),
            generator: "m<1>".into(),
            n: 1,
            overall: g(p1),
            candidates: 4,
            per_package: pkg.iter().map(|(k, v)| (k.to_string(), g(*v))).collect(),
            per_update_type: BTreeMap::new(),
            error_classes: BTreeMap::new(),
            extraction: BTreeMap::new(),
            settings: serde_json::Value::Null,
            exec_secs: 0.0,
        }
    }

    #[test]
    fn compares_two_runs() {
        let runs = [
            SummaryWithLabel {
                label: "base".into(),
                summary: summary(40.0, &[("math", 50.0), ("numpy", 30.0)]),
            },
            SummaryWithLabel {
                label: "trained".into(),
                summary: summary(55.0, &[("math", 60.0), ("torch", 100.0)]),
            },
        ];
        let html = render_html_report(&runs);
        assert!(html.contains("55.0 <span class=\"up\">(+15.0)</span>"));
        assert!(html.contains("m&lt;1&gt;"), "names are escaped");
        // per package: 3 categories, bars only where a run has the package: 4 bars in the
        // pass@1 chart and 4 in the UPass@1 chart.
        assert_eq!(html.matches("<rect").count(), 8);
        assert!(html.contains("trained · torch: 100.0"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(render_html_report(&[]).contains("No results"));
    }
}
