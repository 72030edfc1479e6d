//! Colours and number formats shared by the charts and tables.

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::style::RGBColor;

/// The report palette (Tableau 10); series `i` uses `PALETTE[i % PALETTE.len()]`.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

/// The colour of series number `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The colour of series number `i` as CSS hex (`#4e79a7`), for HTML legends.
pub fn css_color(i: usize) -> String {
    let RGBColor(r, g, b) = color(i);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// At most `n` round tick values (plotters' steps of 1, 2 or 5 × 10^k) inside `[lo, hi]`
/// and their spacing (1 when there is a single tick).
pub fn ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return (vec![lo], 1.0);
    }
    let ticks = RangedCoordf64::from(lo..hi).key_points(n);
    let step = match ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    (ticks, step)
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
        (-(step * (1.0 + 1e-9)).log10().floor()) as usize
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (t, step) = ticks(0.0, 1.0, 6);
        let labels: Vec<String> = t.iter().map(|&v| fmt_tick(v, step)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(ticks(3.0, 97.0, 5).0, vec![20.0, 40.0, 60.0, 80.0]);
        // At most n ticks; integer axes ask for at most span + 1 and get whole steps.
        assert_eq!(ticks(0.0, 1.0, 5).0, vec![0.0, 0.5, 1.0]);
        assert_eq!(ticks(1.0, 5.0, 5).0, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(fmt_tick(1e-16, 5e-6), "0");
        assert_eq!(fmt_tick(0.0, 5e-6), "0");
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(5e-5, 1e-5), "5.0e-5");
        assert_eq!(fmt_tick(40.0, 20.0), "40");
        assert_eq!(fmt_value(0.123456), "0.1235");
        assert_eq!(fmt_value(1234.56), "1235");
        assert_eq!(fmt_value(7.0), "7");
        assert_eq!(fmt_value(5e-5), "5.000e-5");
        assert_eq!(css_color(0), "#4e79a7");
        assert_eq!(
            ticks(0.0, 100.0, 6).0,
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
    }
}
