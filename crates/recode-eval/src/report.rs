//! Self-contained HTML reports (inline SVG from [`crate::svg`], no scripts, no external
//! assets):
//! - [`render_html_report`]: one or more evaluation summaries (e.g. base vs trained), an
//!   overall table and per-package / per-update-type grouped bar charts
//!   (`recode report eval` / `recode report compare A B`);
//! - [`render_training_report`]: a training run's curves with a first-vs-last summary table
//!   (`recode report train RUN_DIR`).

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::run::{GroupScores, Summary};
use crate::svg::{bar_chart, color, esc, fmt_value, LineChart};

/// A summary with the label shown in the report (e.g. `base`, `trained`).
#[derive(Debug, Clone)]
pub struct SummaryWithLabel {
    /// Legend label.
    pub label: String,
    /// The run's `summary.json`.
    pub summary: Summary,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |x| format!("{x:.1}"))
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}\
     td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,\
     td:first-child{text-align:left}.up{color:#2a7d2a}.down{color:#b22}\
     .charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee}\
     dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}";

/// A complete self-contained HTML document with the reports' shared style.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style>\
         </head><body><h1>{t}</h1>{body}</body></html>\n",
        t = esc(title)
    )
}

fn legend(runs: &[SummaryWithLabel]) -> String {
    let mut s = String::from("<p>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            s,
            r#"<span style="display:inline-block;width:12px;height:12px;background:{};margin:0 4px 0 12px"></span>{}"#,
            color(i),
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
    let mut s = String::new();
    if results.is_empty() {
        return page(TITLE, "<p>No results.</p>");
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
    page(TITLE, &s)
}

const TITLE: &str = "recode evaluation";

/// The curves of one training run, for [`render_training_report`].
#[derive(Debug, Clone, Default)]
pub struct TrainingReport {
    /// Page heading, e.g. `training run runs/grpo`.
    pub title: String,
    /// `(key, value)` facts listed under the heading (kind of run, steps, source files).
    pub facts: Vec<(String, String)>,
    /// Chart sections in page order as `(heading, charts)`; empty charts are left out.
    pub sections: Vec<(String, Vec<LineChart>)>,
}

/// Renders a training run as a self-contained HTML page: the facts, a table with the first
/// and last value (and min/max) of every plotted series, then one SVG per non-empty chart.
pub fn render_training_report(report: &TrainingReport) -> String {
    let mut s = String::from("<dl>");
    for (k, v) in &report.facts {
        let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    }
    s.push_str("</dl><h2>summary: first vs last</h2>");
    s.push_str(
        "<table><tr><th>chart</th><th>series</th><th>first step</th><th>first</th>\
         <th>last step</th><th>last</th><th>change</th><th>min</th><th>max</th></tr>",
    );
    let charts = || {
        report
            .sections
            .iter()
            .flat_map(|(_, c)| c.iter())
            .filter(|c| !c.is_empty())
    };
    for chart in charts() {
        for series in &chart.series {
            let pts: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let (Some(&(x_first, first)), Some(&(x_last, last))) = (pts.first(), pts.last()) else {
                continue;
            };
            let min = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let d = last - first;
            let sign = if d > 0.0 { "+" } else { "" };
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{sign}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&chart.title),
                esc(&series.name),
                fmt_value(x_first),
                fmt_value(first),
                fmt_value(x_last),
                fmt_value(last),
                fmt_value(d),
                fmt_value(min),
                fmt_value(max),
            );
        }
    }
    s.push_str("</table>");
    for (heading, section) in &report.sections {
        if section.iter().all(LineChart::is_empty) {
            continue;
        }
        let _ = write!(s, "<h2>{}</h2><div class=\"charts\">", esc(heading));
        for chart in section.iter().filter(|c| !c.is_empty()) {
            s.push_str(&chart.render());
        }
        s.push_str("</div>");
    }
    page(&report.title, &s)
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

    #[test]
    fn training_report_tables_first_and_last() {
        use crate::svg::Series;
        let pts: Vec<(f64, f64)> = (1..=4).map(|i| (i as f64, 0.5 * i as f64)).collect();
        let report = TrainingReport {
            title: "run <x>".into(),
            facts: vec![("steps".into(), "4".into())],
            sections: vec![
                (
                    "reward".into(),
                    vec![
                        LineChart::new("reward", "step", "r").with(Series::new("mean", pts)),
                        LineChart::new("never", "step", "r"),
                    ],
                ),
                ("empty".into(), vec![LineChart::new("kl", "step", "kl")]),
            ],
        };
        let html = render_training_report(&report);
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("<title>run &lt;x&gt;</title>"));
        assert!(!html.contains("<h2>empty</h2>"));
        assert!(html.contains(
            "<td>reward</td><td>mean</td><td>1</td><td>0.5000</td><td>4</td><td>2</td>\
             <td>+1.500</td><td>0.5000</td><td>2</td>"
        ));
    }
}
