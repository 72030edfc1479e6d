//! [`BarChart`]: grouped bars on a 0–100 scale (one group per category, one bar per run),
//! drawn with plotters' SVG backend.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{draw_title, font, svg_chart, Area, DrawResult, AXIS_COLOR, GRID_COLOR};
use crate::error::ReportError;
use crate::format::color;

/// A grouped bar chart on a 0–100 scale: one group per category, one bar per series
/// (`None` = no bar), category labels vertical under the axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarChart {
    /// Heading drawn in the chart (also its `aria-label` in the page).
    pub title: String,
    /// The groups, left to right.
    pub categories: Vec<String>,
    /// `(label, value per category)` per run, in legend order.
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

const BAR_W: f64 = 16.0;
const GAP: f64 = 14.0;
const LEFT: u32 = 44;
const TOP: u32 = 30;
const PLOT_H: u32 = 200;
/// Rough width of one category label character at 10 px.
const CHAR_W: f64 = 5.6;

impl BarChart {
    /// Width of one category's group of bars, in pixels.
    fn group_w(&self) -> f64 {
        BAR_W * self.series.len().max(1) as f64 + GAP
    }

    /// Room under the axis for the longest (vertical) category label.
    fn labels_h(&self) -> u32 {
        let longest = self.categories.iter().map(|c| c.chars().count()).max();
        (CHAR_W * longest.unwrap_or(0) as f64) as u32 + 16
    }

    /// Renders the chart as one `<svg>` element.
    pub fn render(&self) -> Result<String, ReportError> {
        let width = LEFT + (self.group_w() * self.categories.len() as f64) as u32 + 20;
        let height = TOP + PLOT_H + self.labels_h();
        svg_chart(&self.title, (width, height), |root| self.draw(root))
    }

    /// Title, the 0–100 grid, the bars and the category labels.
    fn draw(&self, root: &Area<'_>) -> DrawResult {
        draw_title(root, &self.title)?;
        // x in pixels from the plot's left edge; y in percent.
        let plot_w = self.group_w() * self.categories.len() as f64 + 10.0;
        let mut chart = ChartBuilder::on(root)
            .margin_top(TOP)
            .x_label_area_size(self.labels_h())
            .y_label_area_size(LEFT)
            .build_cartesian_2d(0.0..plot_w, 0.0..100.0)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID_COLOR)
            .axis_style(AXIS_COLOR)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(font(10.0))
            .draw()?;
        for (ci, category) in self.categories.iter().enumerate() {
            let gx = GAP / 2.0 + ci as f64 * self.group_w();
            for (si, (_, values)) in self.series.iter().enumerate() {
                let Some(v) = values.get(ci).copied().flatten() else {
                    continue;
                };
                let x = gx + si as f64 * BAR_W;
                let bar = [(x, 0.0), (x + BAR_W, v.clamp(0.0, 100.0))];
                chart.draw_series(std::iter::once(Rectangle::new(bar, color(si).filled())))?;
            }
            let center = gx + BAR_W * self.series.len() as f64 / 2.0;
            let (lx, ly) = chart.backend_coord(&(center, 0.0));
            let label = font(10.0)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(category.as_str(), (lx, ly + 6), label))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_value() {
        let chart = BarChart {
            title: "pass@1 <per package>".into(),
            categories: vec!["math".into(), "numpy".into()],
            series: vec![
                ("a".into(), vec![Some(50.0), None]),
                ("b".into(), vec![Some(60.0), Some(120.0)]),
            ],
        };
        let svg = chart.render().unwrap();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("&lt;per package&gt;"));
        assert!(svg.contains("numpy"));
    }
}
