//! recode-report: self-contained HTML reports with inline SVG charts (no scripts, no
//! external assets), behind `recode report`:
//! - [`train_report_html`]: one training run's curves from `metrics.jsonl` (RL and SFT
//!   lines) with step-0 validation from `validation_start.json`;
//! - [`runs_report`]: several runs overlaid, with a paired comparison of their last
//!   validations;
//! - [`eval_report`] / [`compare_report`]: `recode eval run` summaries side by side;
//! - [`results_markdown`]: the learning run's results page (`docs/results.md`) from its
//!   committed artifacts.
//!
//! Charts are drawn with plotters' SVG backend ([`LineChart`], [`BarChart`]); pages are
//! minijinja templates with HTML auto-escaping ([`render_training_report`],
//! [`render_eval_report`]).

#![warn(missing_docs)]

mod bar;
mod chart;
mod error;
mod eval;
mod format;
mod line;
pub mod metrics;
mod page;
pub mod results;
mod runs;
mod training;

pub use bar::BarChart;
pub use error::ReportError;
pub use eval::{compare_report, eval_report, path_labels, run_labels, EvalPage, LoadedSummary};
pub use format::{color, css_color, fmt_tick, fmt_value, ticks, PALETTE};
pub use line::{LineChart, Series};
pub use page::{render_eval_report, render_training_report, SummaryWithLabel, TrainingReport};
pub use results::results_markdown;
pub use runs::{runs_report, LastValidation, RunsReport};
pub use training::{chart, train_report_html, training_report, training_sections, Section};
