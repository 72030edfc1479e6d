//! Small, dependency-free inline-SVG charts shared by the HTML reports: a line chart with
//! nice axis ticks, axis labels, a legend and optional ± bands ([`LineChart`]), and a
//! grouped 0–100 bar chart ([`bar_chart`]). Output has no scripts and no external assets.

use std::fmt::Write;

/// The report palette (Tableau 10); series `i` uses `PALETTE[i % PALETTE.len()]`.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of series number `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes `s` for HTML/SVG text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of a [`LineChart`]: `(x, y)` points in x order, optionally with a ± band.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points; non-finite ones are dropped when rendering.
    pub points: Vec<(f64, f64)>,
    /// Half-width of a shaded band around each point (same length as `points`), e.g. a std.
    pub band: Option<Vec<f64>>,
}

impl Series {
    /// A series without a band.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            band: None,
        }
    }

    fn finite_points(&self) -> impl Iterator<Item = (usize, (f64, f64))> + '_ {
        self.points
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
    }

    fn band_at(&self, i: usize) -> Option<f64> {
        self.band
            .as_ref()
            .and_then(|b| b.get(i).copied())
            .filter(|w| w.is_finite())
    }
}

/// A line chart with one polyline per non-empty series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    /// Heading drawn in the chart (also its `aria-label`).
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range (e.g. `(0, 1)` for rates); data outside widens it.
    pub y_range: Option<(f64, f64)>,
}

const W: f64 = 440.0;
const PLOT_H: f64 = 170.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const CHAR_W: f64 = 6.2;
/// Series with at most this many points also get point markers (with hover values).
const MARKER_LIMIT: usize = 40;

/// About `n` round tick values (steps of 1, 2 or 5 × 10^k) covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    axis(lo, hi, n, false).0
}

/// Tick values and their spacing; `integer` keeps the spacing at 1 or more.
fn axis(lo: f64, hi: f64, n: usize, integer: bool) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return (vec![lo], 1.0);
    }
    let mut step = nice_step((hi - lo) / n as f64);
    if integer {
        step = step.max(1.0);
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    ((first..=last).map(|k| k as f64 * step).collect(), step)
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Formats a tick value for an axis whose ticks are `step` apart.
pub fn fmt_tick(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-9 {
        return "0".into();
    }
    let big = v.abs().max(step);
    if big >= 1e5 || step < 1e-3 {
        return format!("{v:.1e}");
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Formats a data value compactly: integers as such, otherwise 4 significant digits
/// (scientific when tiny or huge).
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e15 {
        format!("{v:.0}")
    } else if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let decimals = if a == 0.0 {
            0
        } else {
            (3 - a.log10().floor() as i64).clamp(0, 6) as usize
        };
        format!("{v:.decimals$}")
    }
}

/// `[lo, hi]` widened so it is never empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

impl LineChart {
    /// A chart with the given title and axis labels and no series yet.
    pub fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Default::default()
        }
    }

    /// Adds a series (builder style).
    pub fn with(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }

    /// Whether no series has a finite point (such charts are usually left out).
    pub fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.finite_points().next().is_none())
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = self.y_range.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
        for s in &self.series {
            for (i, (x, y)) in s.finite_points() {
                let w = s.band_at(i).unwrap_or(0.0).abs();
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y - w);
                y1 = y1.max(y + w);
            }
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        (padded(x0, x1), padded(y0, y1))
    }

    /// Legend entries laid out in rows: `(row, x, series index)`.
    fn legend_layout(&self) -> Vec<(usize, f64, usize)> {
        let mut out = Vec::new();
        let (mut row, mut x) = (0, LEFT);
        for (i, s) in self.series.iter().enumerate() {
            let w = 18.0 + CHAR_W * s.name.chars().count() as f64 + 14.0;
            if x + w > W - RIGHT && x > LEFT {
                row += 1;
                x = LEFT;
            }
            out.push((row, x, i));
            x += w;
        }
        out
    }

    /// Renders the chart as one `<svg>` element. Each series is one `<polyline>` with a
    /// `data-series` attribute and one point per finite data point.
    pub fn render(&self) -> String {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let legend = self.legend_layout();
        let legend_rows = legend.last().map_or(0, |l| l.0 + 1);
        let top = 26.0 + 16.0 * legend_rows as f64 + 6.0;
        let height = top + PLOT_H + 42.0;
        let plot_w = W - LEFT - RIGHT;
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * PLOT_H;
        let mut s = String::new();
        let t = esc(&self.title);
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W:.0}" height="{height:.0}" viewBox="0 0 {W:.0} {height:.0}" role="img" aria-label="{t}" font-family="sans-serif"><text x="4" y="16" font-size="13" font-weight="bold">{t}</text>"#
        );
        for (row, x, i) in &legend {
            let y = 26.0 + 16.0 * *row as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{ry:.1}" width="14" height="4" fill="{c}"/><text x="{tx:.1}" y="{y:.1}" font-size="11">{n}</text>"#,
                ry = y - 5.0,
                c = color(*i),
                tx = x + 18.0,
                n = esc(&self.series[*i].name),
            );
        }
        // Axes, grid and ticks.
        let (yticks, ystep) = axis(y0, y1, 5, false);
        for v in &yticks {
            let y = py(*v);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{x2:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{tx}" y="{ty:.1}" font-size="10" text-anchor="end">{l}</text>"##,
                x2 = W - RIGHT,
                tx = LEFT - 4.0,
                ty = y + 3.0,
                l = fmt_tick(*v, ystep),
            );
        }
        let integer_x = self
            .series
            .iter()
            .all(|s| s.finite_points().all(|(_, (x, _))| x.fract() == 0.0));
        let (xticks, xstep) = axis(x0, x1, 6, integer_x);
        let bottom = top + PLOT_H;
        for v in &xticks {
            let x = px(*v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{bottom:.1}" y2="{b2:.1}" stroke="#666"/><text x="{x:.1}" y="{ty:.1}" font-size="10" text-anchor="middle">{l}</text>"##,
                b2 = bottom + 4.0,
                ty = bottom + 15.0,
                l = fmt_tick(*v, xstep),
            );
        }
        let _ = write!(
            s,
            r##"<path d="M{LEFT} {top:.1}V{bottom:.1}H{x2:.1}" fill="none" stroke="#666"/><text x="{cx:.1}" y="{ly:.1}" font-size="11" text-anchor="middle">{xl}</text><text x="12" y="{cy:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {cy:.1})">{yl}</text>"##,
            x2 = W - RIGHT,
            cx = LEFT + plot_w / 2.0,
            ly = bottom + 32.0,
            xl = esc(&self.x_label),
            cy = top + PLOT_H / 2.0,
            yl = esc(&self.y_label),
        );
        for (i, series) in self.series.iter().enumerate() {
            self.render_series(&mut s, series, color(i), &px, &py);
        }
        s.push_str("</svg>");
        s
    }

    fn render_series(
        &self,
        s: &mut String,
        series: &Series,
        c: &str,
        px: &dyn Fn(f64) -> f64,
        py: &dyn Fn(f64) -> f64,
    ) {
        let pts: Vec<(usize, (f64, f64))> = series.finite_points().collect();
        if pts.is_empty() {
            return;
        }
        if series.band.is_some() {
            let banded: Vec<(f64, f64, f64)> = pts
                .iter()
                .filter_map(|&(i, (x, y))| series.band_at(i).map(|w| (x, y, w.abs())))
                .collect();
            if !banded.is_empty() {
                let upper = banded.iter().map(|&(x, y, w)| (x, y + w));
                let lower = banded.iter().rev().map(|&(x, y, w)| (x, y - w));
                let poly: Vec<String> = upper
                    .chain(lower)
                    .map(|(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                let _ = write!(
                    s,
                    r#"<polygon points="{}" fill="{c}" fill-opacity="0.18" stroke="none"/>"#,
                    poly.join(" ")
                );
            }
        }
        let line: Vec<String> = pts
            .iter()
            .map(|&(_, (x, y))| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let name = esc(&series.name);
        let _ = write!(
            s,
            r#"<polyline data-series="{name}" points="{}" fill="none" stroke="{c}" stroke-width="1.6"><title>{name}</title></polyline>"#,
            line.join(" ")
        );
        if pts.len() <= MARKER_LIMIT {
            for &(_, (x, y)) in &pts {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.4" fill="{c}"><title>{name} @ {}: {}</title></circle>"#,
                    px(x),
                    py(y),
                    fmt_value(x),
                    fmt_value(y)
                );
            }
        }
    }
}

/// A grouped bar chart on a 0–100 scale: one group per category, one bar per series
/// (`None` = no bar), category labels rotated under the axis.
pub fn bar_chart(
    title: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let (bar_w, gap, left, top, plot_h) = (16.0, 14.0, 44.0, 30.0, 200.0);
    let group_w = bar_w * series.len().max(1) as f64 + gap;
    let width = left + group_w * categories.len() as f64 + 20.0;
    let height = top + plot_h + 90.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0}" height="{height:.0}" role="img" aria-label="{t}" font-family="sans-serif"><text x="4" y="16" font-size="13" font-weight="bold">{t}</text>"#,
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
                c = color(si),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels: Vec<String> = nice_ticks(0.0, 1.0, 5)
            .iter()
            .map(|&v| fmt_tick(v, 0.2))
            .collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(fmt_tick(1e-16, 5e-6), "0");
        assert_eq!(fmt_tick(0.0, 5e-6), "0");
        let t = nice_ticks(3.0, 97.0, 5);
        assert_eq!(t, vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(5e-5, 1e-5), "5.0e-5");
        assert_eq!(fmt_tick(40.0, 20.0), "40");
        assert_eq!(fmt_value(0.123456), "0.1235");
        assert_eq!(fmt_value(1234.56), "1235");
        assert_eq!(fmt_value(7.0), "7");
        assert_eq!(fmt_value(5e-5), "5.000e-5");
    }

    #[test]
    fn line_chart_draws_one_polyline_per_series() {
        let pts: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64, (i as f64).sqrt())).collect();
        let band = Some(vec![0.1; pts.len()]);
        let chart = LineChart::new("r<1>", "step", "reward")
            .with(Series {
                name: "mean".into(),
                points: pts.clone(),
                band,
            })
            .with(Series::new("empty", vec![(1.0, f64::NAN)]))
            .with(Series::new("one", vec![(3.0, 2.0)]));
        let svg = chart.render();
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains("aria-label=\"r&lt;1&gt;\""));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "the empty series draws nothing"
        );
        assert_eq!(svg.matches("<polygon").count(), 1);
        let mean = svg.split("data-series=\"mean\" points=\"").nth(1).unwrap();
        let points = mean.split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 50);
        // 50 points: no markers for "mean"; one marker for "one".
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!chart.is_empty());
        assert!(LineChart::new("x", "", "").is_empty());
        // A constant series still gets a non-degenerate range.
        let flat = LineChart::new("flat", "step", "v")
            .with(Series::new("c", vec![(1.0, 0.0), (2.0, 0.0)]));
        assert!(!flat.render().contains("NaN"));
    }
}
