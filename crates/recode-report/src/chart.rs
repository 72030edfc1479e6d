//! What the line and bar charts share: the SVG canvas, fonts and greys.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;

/// A drawing area of an SVG chart.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The result of plotters drawing calls.
pub(crate) type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Grid lines.
pub(crate) const GRID_COLOR: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
/// Axis lines and ticks.
pub(crate) const AXIS_COLOR: RGBColor = RGBColor(0x66, 0x66, 0x66);

/// A sans-serif font whose SVG `font-size` is `px`. The SVG backend writes text as `<text>`
/// elements (the browser picks the font); plotters only estimates text extents for layout,
/// so no font files are read (its `ttf` feature is off).
pub(crate) fn font(px: f64) -> TextStyle<'static> {
    // plotters writes `font-size` as size / 1.24.
    ("sans-serif", px * 1.24).into_font().color(&BLACK)
}

/// Draws `title` in bold at the top left of `area`.
pub(crate) fn draw_title(area: &Area<'_>, title: &str) -> DrawResult {
    let bold = ("sans-serif", 13.0 * 1.24, FontStyle::Bold)
        .into_font()
        .color(&BLACK);
    area.draw(&Text::new(title, (4, 4), bold))
}

/// Draws an SVG of `size` pixels with `draw` and returns its text.
pub(crate) fn svg_chart(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present())
            .map_err(|source| ReportError::Chart {
                title: title.to_string(),
                source,
            })?;
    }
    Ok(svg)
}
