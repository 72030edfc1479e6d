//! GitChameleon 2.0 (arXiv 2507.12367): 328 problems, each pinned to a real library version and
//! scored by a hidden pytest file in an environment built for that version. recode follows the
//! benchmark's harness (`mrcabbage972/GitChameleonBenchmark` at 630daf9) as restated in
//! `shared/docs/gitchameleon-harness.md`:
//!
//! - [`data`]: records, solution files and hidden tests, with errors naming file/line/field.
//! - [`envs`]: the environment key, the row that defines each environment, the pip calls that
//!   build it, and `--library NAME[==VERSION],...` problem selection.
//! - [`plan`]: the hidden run (the score: pytest exit status 0) and the visible run (a
//!   diagnostic), as files and arguments; resources a run lacked (`env_incomplete`).
//! - [`prompt`]: the prompt recode asks models with (the harness has none) and the harness's
//!   code extraction.
//! - [`setup`]: building the environments through `recode-venv` (cached, locked, parallel).
//! - [`exec`]: runs as sandboxed exec jobs of the environments' interpreters; outcomes.
//! - [`check`]: scoring solutions, and `check-refs` (the ground truth, counted per library).
//! - [`run`]: model evaluation: generation (cached), scoring, `results.jsonl`, `summary.json`.

pub mod check;
pub mod data;
pub mod envs;
pub mod exec;
pub mod plan;
pub mod prompt;
pub mod run;
pub mod setup;

pub use data::{load_solutions, DataError, Dataset, Problem, Solution};
pub use envs::{env_key, env_specs, EnvSpec, LibrarySelection};
