//! recode-eval: CodeUpdateArena evaluation with sandboxed execution.
//!
//! - [`arena`]: loader (errors name file/line/field), test splitting and naming, the
//!   taxonomy filter, INSTALL rules and the six-section test program, paper-exact
//!   (`shared/docs/codeupdatearena-harness.md`), with an optional fix for fragmented tests.
//! - [`executor`]: a pool of Python fork servers (pre-imported numpy/pandas/torch/sympy/scipy,
//!   seeded with 42) forking one isolated child per program, with the benchmark's guard and
//!   verdict rules.
//! - [`checkrefs`]: runs every reference with and without its update.
//! - [`passk`]: the unbiased pass@k estimator and the per-example scores (UPass, …).
//! - [`paired`]: paired comparisons of two evaluations (bootstrap interval, McNemar test).
//! - [`setup`]: the managed virtualenv with the benchmark's pinned packages.
//! - [`gitchameleon`]: GitChameleon 2.0: records, per-problem environments, pytest runs.

pub mod arena;
pub mod checkrefs;
/// The sandboxed executor pool (the `recode-sandbox` crate; re-exported under its old path).
pub mod executor {
    pub use recode_sandbox::*;
}
pub mod generate;
pub mod gitchameleon;
pub mod humaneval;
pub mod paired;
pub mod passk;
pub mod prompt;
mod pyname;
pub mod run;
pub mod setup;

pub use pyname::test_name;
