//! [`LineChart`]: step curves drawn with plotters' SVG backend: round axis ticks, axis
//! labels, a legend above the plot, optional ± bands and point markers on short series.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{draw_title, font, svg_chart, Area, DrawResult, AXIS_COLOR, GRID_COLOR};
use crate::error::ReportError;
use crate::format::{color, fmt_tick, ticks};

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

    /// The finite points with their index in `points`.
    fn finite_points(&self) -> impl Iterator<Item = (usize, (f64, f64))> + '_ {
        self.points
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
    }

    /// The finite points, in order.
    pub fn finite(&self) -> Vec<(f64, f64)> {
        self.finite_points().map(|(_, p)| p).collect()
    }

    /// The band's half-width at point `i`, when finite.
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
    /// Heading drawn in the chart (also its `aria-label` in the page).
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

const W: u32 = 440;
const PLOT_H: u32 = 170;
const LEFT: u32 = 62;
const RIGHT: u32 = 14;
/// Height of the x tick labels and the x axis label under the plot.
const BOTTOM: u32 = 42;
/// Rough width of one legend character at 11 px.
const CHAR_W: f64 = 6.2;
/// Series with at most this many points also get point markers.
const MARKER_LIMIT: usize = 40;
/// At most this many y ticks.
const Y_TICKS: usize = 6;

/// The plotting context of a line chart.
type LineContext<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

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

    /// The x and y ranges covering every finite point and band (and `y_range`).
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
    fn legend_layout(&self) -> Vec<(u32, i32, usize)> {
        let mut out = Vec::new();
        let (mut row, mut x) = (0, LEFT as f64);
        for (i, s) in self.series.iter().enumerate() {
            let w = 18.0 + CHAR_W * s.name.chars().count() as f64 + 14.0;
            if x + w > (W - RIGHT) as f64 && x > LEFT as f64 {
                row += 1;
                x = LEFT as f64;
            }
            out.push((row, x as i32, i));
            x += w;
        }
        out
    }

    /// Whether every x is a whole number (steps): the x ticks are then whole too.
    fn integer_x(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.finite_points().all(|(_, (x, _))| x.fract() == 0.0))
    }

    /// Renders the chart as one `<svg>` element: title and legend on top, then the plot.
    pub fn render(&self) -> Result<String, ReportError> {
        let legend = self.legend_layout();
        let legend_rows = legend.last().map_or(0, |l| l.0 + 1);
        let top = 26 + 16 * legend_rows + 6;
        svg_chart(&self.title, (W, top + PLOT_H + BOTTOM), |root| {
            let (head, body) = root.split_vertically(top);
            self.draw_head(&head, &legend)?;
            self.draw_plot(&body)
        })
    }

    /// The title and the legend rows.
    fn draw_head(&self, head: &Area<'_>, legend: &[(u32, i32, usize)]) -> DrawResult {
        draw_title(head, &self.title)?;
        for &(row, x, i) in legend {
            let y = 26 + 16 * row as i32;
            head.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y - 1)],
                color(i).filled(),
            ))?;
            let label = font(11.0).pos(Pos::new(HPos::Left, VPos::Center));
            head.draw(&Text::new(
                self.series[i].name.as_str(),
                (x + 18, y - 3),
                label,
            ))?;
        }
        Ok(())
    }

    /// Axes, grid, tick labels, axis labels and the series.
    fn draw_plot(&self, body: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let x_max_ticks = if self.integer_x() {
            6.min((x1 - x0).floor() as usize + 1)
        } else {
            6
        };
        // plotters places the ticks; `ticks` asks it the same question to learn their spacing.
        let (_, xstep) = ticks(x0, x1, x_max_ticks);
        let (_, ystep) = ticks(y0, y1, Y_TICKS);
        let mut chart = ChartBuilder::on(body)
            .margin_right(RIGHT)
            .x_label_area_size(BOTTOM)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(x_max_ticks)
            .y_labels(Y_TICKS)
            .bold_line_style(GRID_COLOR)
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS_COLOR)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&|v| fmt_tick(*v, xstep))
            .y_label_formatter(&|v| fmt_tick(*v, ystep))
            .label_style(font(10.0))
            .axis_desc_style(font(11.0))
            .draw()?;
        for (i, series) in self.series.iter().enumerate() {
            draw_series(&mut chart, series, color(i))?;
        }
        Ok(())
    }
}

/// One series: its band (a translucent polygon), its line and, when short, its markers.
fn draw_series(chart: &mut LineContext<'_, '_>, series: &Series, c: RGBColor) -> DrawResult {
    let pts: Vec<(usize, (f64, f64))> = series.finite_points().collect();
    if pts.is_empty() {
        return Ok(());
    }
    let banded: Vec<(f64, f64, f64)> = pts
        .iter()
        .filter_map(|&(i, (x, y))| series.band_at(i).map(|w| (x, y, w.abs())))
        .collect();
    if !banded.is_empty() {
        let upper = banded.iter().map(|&(x, y, w)| (x, y + w));
        let lower = banded.iter().rev().map(|&(x, y, w)| (x, y - w));
        let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))?;
    }
    chart.draw_series(LineSeries::new(
        pts.iter().map(|&(_, p)| p),
        c.stroke_width(2),
    ))?;
    if pts.len() <= MARKER_LIMIT {
        chart.draw_series(pts.iter().map(|&(_, p)| Circle::new(p, 2, c.filled())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_one_polyline_per_series() {
        let pts: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64, (i as f64).sqrt())).collect();
        let chart = LineChart::new("r<1>", "step", "reward")
            .with(Series {
                name: "mean".into(),
                points: pts.clone(),
                band: Some(vec![0.1; pts.len()]),
            })
            .with(Series::new("empty", vec![(1.0, f64::NAN)]))
            .with(Series::new("one", vec![(3.0, 2.0)]));
        let svg = chart.render().unwrap();
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains("r&lt;1&gt;"), "{svg}");
        // Data polylines are drawn 2 px wide in the series colour; axes and grid are 1 px.
        let lines: Vec<&str> = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| p.contains("stroke-width=\"2\""))
            .collect();
        assert_eq!(lines.len(), 2, "the empty series draws nothing");
        let mean = lines[0].split("points=\"").nth(1).unwrap();
        let mean = mean.split('"').next().unwrap();
        assert_eq!(mean.split_whitespace().count(), 50);
        assert_eq!(svg.matches("<polygon").count(), 1);
        // 50 points: no markers for "mean"; one marker for "one".
        assert_eq!(svg.matches("<circle").count(), 1);
        // Axis text is SVG text (no font files needed): tick labels and the axis labels.
        assert!(svg.contains(">\nstep\n</text>"), "{svg}");
        assert!(svg.contains(">\nreward\n</text>"), "{svg}");
        assert!(!chart.is_empty());
        assert!(LineChart::new("x", "", "").is_empty());
        // A constant series still gets a non-degenerate range.
        let flat = LineChart::new("flat", "step", "v")
            .with(Series::new("c", vec![(1.0, 0.0), (2.0, 0.0)]));
        assert!(!flat.render().unwrap().contains("NaN"));
    }
}
