//! One module per subcommand group; each exposes clap types and a `run` function.

pub mod bench_args;
pub mod common;
pub mod data;
pub mod eval;
pub mod eval_args;
pub mod generate;
pub mod gitchameleon;
pub mod report;
pub mod reward;
pub mod serve;
pub mod train;
