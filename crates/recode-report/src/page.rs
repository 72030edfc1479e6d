//! The HTML pages (minijinja templates under `templates/`, auto-escaped, no scripts and no
//! external assets; charts are inline SVG):
//! - [`render_eval_report`]: evaluation summaries side by side (first = baseline);
//! - [`render_training_report`]: a run's (or several runs') curves with a first-vs-last table.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{context, Environment};
use recode_eval::run::{GroupScores, Summary};
use serde::Serialize;

use crate::bar::BarChart;
use crate::error::ReportError;
use crate::format::{css_color, fmt_value};
use crate::line::LineChart;

/// A summary with the label shown in the report (e.g. `base`, `trained`).
#[derive(Debug, Clone)]
pub struct SummaryWithLabel {
    /// Legend label.
    pub label: String,
    /// The run's `summary.json`.
    pub summary: Summary,
}

/// The curves of one training run (or an overlay of runs), for [`render_training_report`].
#[derive(Debug, Clone, Default)]
pub struct TrainingReport {
    /// Page heading, e.g. `recode training report: runs/grpo`.
    pub title: String,
    /// `(key, value)` facts listed under the heading (kind of run, steps, source files).
    pub facts: Vec<(String, String)>,
    /// Chart sections in page order as `(heading, charts)`; empty charts are left out.
    pub sections: Vec<(String, Vec<LineChart>)>,
}

/// One rendered chart of a page.
#[derive(Serialize)]
struct ChartView {
    title: String,
    svg: String,
}

/// A heading and its rendered charts.
#[derive(Serialize)]
struct SectionView {
    heading: String,
    charts: Vec<ChartView>,
}

/// The page templates, auto-escaping HTML (names end in `.html`).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("sections.html", include_str!("../templates/sections.html")),
        ("eval.html", include_str!("../templates/eval.html")),
        ("training.html", include_str!("../templates/training.html")),
    ] {
        env.add_template(name, source)
            .expect("the bundled templates parse (checked by the tests)");
    }
    env
}

/// minijinja's formatter, except that HTML escaping leaves `/` alone: the five characters that
/// matter (`& < > " '`) are escaped, so page text such as "GRPO/DAPO" stays greppable.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if !matches!(state.auto_escape(), minijinja::AutoEscape::Html) || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// Renders the page template `name` with `ctx`.
fn render(name: &'static str, ctx: minijinja::Value) -> Result<String, ReportError> {
    let env = environment();
    let template = env.get_template(name);
    template
        .and_then(|t| t.render(ctx))
        .map(|mut html| {
            html.push('\n');
            html
        })
        .map_err(|source| ReportError::Template {
            template: name,
            source,
        })
}

const EVAL_TITLE: &str = "recode evaluation";

/// One cell of the evaluation table: the value and its difference to the baseline.
#[derive(Serialize)]
struct Cell {
    value: String,
    delta: Option<String>,
    class: &'static str,
}

impl Cell {
    /// `v` and, unless `first`, its difference to the baseline's `b`.
    fn new(v: Option<f64>, b: Option<f64>, first: bool) -> Self {
        let value = v.map_or_else(|| "–".to_string(), |x| format!("{x:.1}"));
        match (v, b) {
            (Some(v), Some(b)) if !first => {
                let d = v - b;
                let class = if d >= 0.0 { "up" } else { "down" };
                Cell {
                    value,
                    delta: Some(format!("{d:+.1}")),
                    class,
                }
            }
            _ => Cell {
                value,
                delta: None,
                class: "",
            },
        }
    }
}

/// One row of the evaluation table.
#[derive(Serialize)]
struct EvalRow {
    label: String,
    color: String,
    bench: String,
    model: String,
    n: usize,
    problems: usize,
    cells: Vec<Cell>,
}

/// Picks one grouping of a summary (per package, per update type).
type Pick = fn(&Summary) -> &BTreeMap<String, GroupScores>;

/// Picks one score of a group (pass@1, UPass@1).
type Metric = fn(&GroupScores) -> Option<f64>;

/// pass@1 (and UPass@1 when any run has it) bar charts of one grouping; `None` when no run
/// has a group.
fn grouped_section(
    runs: &[SummaryWithLabel],
    title: &str,
    pick: Pick,
) -> Result<Option<SectionView>, ReportError> {
    let categories: Vec<String> = runs
        .iter()
        .flat_map(|r| pick(&r.summary).keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if categories.is_empty() {
        return Ok(None);
    }
    let has_upass = runs
        .iter()
        .any(|r| pick(&r.summary).values().any(|g| g.upass_at_1.is_some()));
    let metrics: [(&str, Metric); 2] = [("pass@1", |g| g.pass_at_1), ("UPass@1", |g| g.upass_at_1)];
    let mut charts = Vec::new();
    for (name, metric) in metrics.into_iter().take(if has_upass { 2 } else { 1 }) {
        let chart = BarChart {
            title: format!("{name} {title}"),
            categories: categories.clone(),
            series: runs
                .iter()
                .map(|r| {
                    let m = pick(&r.summary);
                    let values = categories.iter().map(|c| m.get(c).and_then(metric));
                    (r.label.clone(), values.collect())
                })
                .collect(),
        };
        charts.push(ChartView {
            svg: chart.render()?,
            title: chart.title,
        });
    }
    Ok(Some(SectionView {
        heading: title.to_string(),
        charts,
    }))
}

/// The evaluation table's rows: each run's overall scores and differences to the first.
fn eval_rows(results: &[SummaryWithLabel]) -> Vec<EvalRow> {
    let Some(base) = results.first().map(|r| &r.summary.overall) else {
        return Vec::new();
    };
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let o = &r.summary.overall;
            let first = i == 0;
            EvalRow {
                label: r.label.clone(),
                color: css_color(i),
                bench: r.summary.bench.clone(),
                model: r.summary.generator.clone(),
                n: r.summary.n,
                problems: o.examples,
                cells: vec![
                    Cell::new(o.pass_at_1, base.pass_at_1, first),
                    Cell::new(o.pass_at_5, base.pass_at_5, first),
                    Cell::new(o.upass_at_1, base.upass_at_1, first),
                ],
            }
        })
        .collect()
}

/// Renders a self-contained HTML page comparing `results` (first = baseline): overall table
/// with differences to the first run, and per-package / per-update-type bar charts.
pub fn render_eval_report(results: &[SummaryWithLabel]) -> Result<String, ReportError> {
    let mut sections = Vec::new();
    let groupings: [(&str, Pick); 2] = [
        ("per package", |s| &s.per_package),
        ("per update type", |s| &s.per_update_type),
    ];
    for (title, pick) in groupings {
        sections.extend(grouped_section(results, title, pick)?);
    }
    let ctx = context! {title => EVAL_TITLE, rows => eval_rows(results), sections => sections};
    render("eval.html", ctx)
}

/// Rows of the first-vs-last table: chart, series, first step and value, last step and
/// value, change, min and max of every plotted series.
fn first_last_rows(report: &TrainingReport) -> Vec<[String; 9]> {
    let charts = report.sections.iter().flat_map(|(_, c)| c.iter());
    let mut rows = Vec::new();
    for chart in charts.filter(|c| !c.is_empty()) {
        for series in &chart.series {
            let pts = series.finite();
            let (Some(&(x_first, first)), Some(&(x_last, last))) = (pts.first(), pts.last()) else {
                continue;
            };
            let min = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let d = last - first;
            let sign = if d > 0.0 { "+" } else { "" };
            rows.push([
                chart.title.clone(),
                series.name.clone(),
                fmt_value(x_first),
                fmt_value(first),
                fmt_value(x_last),
                fmt_value(last),
                format!("{sign}{}", fmt_value(d)),
                fmt_value(min),
                fmt_value(max),
            ]);
        }
    }
    rows
}

/// Renders a training run as a self-contained HTML page: the facts, a table with the first
/// and last value (and min/max) of every plotted series, then one SVG per non-empty chart.
pub fn render_training_report(report: &TrainingReport) -> Result<String, ReportError> {
    let mut sections = Vec::new();
    for (heading, charts) in &report.sections {
        let charts = charts
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| {
                Ok(ChartView {
                    title: c.title.clone(),
                    svg: c.render()?,
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        if !charts.is_empty() {
            sections.push(SectionView {
                heading: heading.clone(),
                charts,
            });
        }
    }
    let ctx = context! {
        title => report.title,
        facts => report.facts,
        rows => first_last_rows(report),
        sections => sections,
    };
    render("training.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Series;

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

    fn labelled(label: &str, summary: Summary) -> SummaryWithLabel {
        SummaryWithLabel {
            label: label.into(),
            summary,
        }
    }

    #[test]
    fn compares_two_runs() {
        let runs = [
            labelled("base", summary(40.0, &[("math", 50.0), ("numpy", 30.0)])),
            labelled(
                "trained",
                summary(55.0, &[("math", 60.0), ("torch", 100.0)]),
            ),
        ];
        let html = render_eval_report(&runs).unwrap();
        assert!(html.contains("55.0 <span class=\"up\">(+15.0)</span>"));
        assert!(html.contains("m&lt;1&gt;"), "names are escaped");
        // per package: 3 categories, bars only where a run has the package: 4 bars in the
        // pass@1 chart and 4 in the UPass@1 chart.
        assert_eq!(html.matches("<rect").count(), 8);
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("aria-label=\"UPass@1 per package\""));
        assert!(!html.contains("<script"));
        assert!(render_eval_report(&[]).unwrap().contains("No results"));
    }

    fn training(name: &str) -> TrainingReport {
        let pts: Vec<(f64, f64)> = (1..=4).map(|i| (i as f64, 0.5 * i as f64)).collect();
        TrainingReport {
            title: format!("run {name}"),
            facts: vec![("steps".into(), "4".into()), (name.into(), name.into())],
            sections: vec![
                (
                    "reward".into(),
                    vec![
                        LineChart::new("reward", "step", "r").with(Series::new(name, pts)),
                        LineChart::new("never", "step", "r"),
                    ],
                ),
                ("empty".into(), vec![LineChart::new("kl", "step", "kl")]),
            ],
        }
    }

    #[test]
    fn training_report_tables_first_and_last() {
        let html = render_training_report(&training("mean")).unwrap();
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("<title>run mean</title>"));
        assert!(!html.contains("<h2>empty</h2>"));
        assert!(html.contains(
            "<td>reward</td><td>mean</td><td>1</td><td>0.5000</td><td>4</td><td>2</td>\
             <td>+1.500</td><td>0.5000</td><td>2</td>"
        ));
    }

    /// Run names and labels with every HTML-special character are escaped everywhere: page
    /// title, facts, table cells, legends, chart titles and SVG text.
    #[test]
    fn escapes_quotes_angle_brackets_and_ampersands() {
        let nasty = "a'b\"c<d>e&f";
        let raw_parts = ["a'b", "b\"c", "c<d", "d>e", "e&f"];
        let pages = [
            render_training_report(&training(nasty)).unwrap(),
            render_eval_report(&[labelled(nasty, summary(40.0, &[(nasty, 50.0)]))]).unwrap(),
        ];
        for html in &pages {
            for raw in raw_parts {
                assert!(!html.contains(raw), "unescaped {raw:?} in {html}");
            }
            // minijinja in HTML, plotters in SVG text.
            assert!(html.contains("a&#x27;b&quot;c&lt;d&gt;e&amp;f"), "{html}");
            // A slash is no HTML special: page text keeps it.
            assert!(!html.contains("&#x2f;"), "{html}");
            assert!(html.contains("a&apos;b&quot;c&lt;d&gt;e&amp;f"), "{html}");
        }
    }
}
