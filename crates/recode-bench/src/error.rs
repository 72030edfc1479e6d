//! The errors of the benchmarks: one variant per cause, with the file, option, peer or command
//! it is about.

use std::path::PathBuf;
use std::process::ExitStatus;

/// What can stop a benchmark; peers that die are errors too (except in `bench generate`, whose
/// report records a dead peer's error instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The dev interpreter (light peers) is absent.
    #[error("{} not found: run scripts/setup.sh (dev venv), pass --python, or --no-peer", python.display())]
    NoDevPython {
        /// Interpreter looked for.
        python: PathBuf,
    },
    /// The peer virtualenv (PyTorch, transformers, TRL) is absent.
    #[error(
        "no peer environment at {}: run scripts/setup-bench.sh (PyTorch, transformers, TRL), \
         pass --peer-python, or --no-peer for recode alone",
        venv.display()
    )]
    NoPeerVenv {
        /// Virtualenv looked for.
        venv: PathBuf,
    },
    /// A file or directory could not be created, read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done (`writing`, `reading`, `temp dir for`).
        what: &'static str,
        /// File or directory concerned.
        path: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A process (peer interpreter, pair generator, the recode binary) could not be started.
    #[error("starting {}", program.display())]
    Spawn {
        /// Program that failed to start.
        program: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A peer script exited unsuccessfully; `hint` explains a signal (SIGILL: a build for other
    /// CPU features).
    #[error("peer {name} failed ({status}){hint}")]
    PeerFailed {
        /// Script name.
        name: String,
        /// Its exit status.
        status: ExitStatus,
        /// Why, when a signal killed it (empty otherwise).
        hint: &'static str,
    },
    /// A peer script's last stdout line is not JSON.
    #[error("peer {name} printed no JSON: {output:.300}")]
    PeerOutput {
        /// Script name.
        name: String,
        /// What it printed.
        output: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A peer's JSON lacks a figure the report needs.
    #[error("peer {name} output has no {key}: {output}")]
    PeerField {
        /// Script name.
        name: String,
        /// Missing key.
        key: &'static str,
        /// What it printed.
        output: serde_json::Value,
    },
    /// The data peer counted differently from recode on the same file (the comparison would be
    /// void).
    #[error(
        "peer and recode disagree: {peer} vs rows={rows} dups={exact_duplicates} \
         new_code_syntax_errors={new_code_syntax_errors}"
    )]
    PeerDisagrees {
        /// The peer's figures.
        peer: serde_json::Value,
        /// Rows recode read.
        rows: usize,
        /// Exact duplicates recode found.
        exact_duplicates: usize,
        /// `new_code` syntax errors recode found.
        new_code_syntax_errors: usize,
    },
    /// A helper command (pair generator, `recode data export`, `recode train`) failed.
    #[error("{what} failed ({status})")]
    CommandFailed {
        /// The command.
        what: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// An option is out of range.
    #[error("{option}: {reason}")]
    Option {
        /// The option (flag name).
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input file has no rows.
    #[error("{}: no rows", path.display())]
    NoRows {
        /// File concerned.
        path: PathBuf,
    },
    /// A line of a JSON lines file (generated pairs, metrics.jsonl) is not the expected JSON.
    #[error("{}:{line}: not the expected JSON", path.display())]
    JsonLine {
        /// File concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The data file has fewer prompts of the benchmark's length than the batch needs.
    #[error("{data}: {found} ReCode prompts of 250-500 tokens, the batch needs {wanted}")]
    TooFewPrompts {
        /// The data file.
        data: PathBuf,
        /// Prompts wanted (the batch).
        wanted: usize,
        /// Prompts found.
        found: usize,
    },
    /// The model has no chat template to render the benchmark's prompts with.
    #[error("{model}: the model has no chat template")]
    NoChatTemplate {
        /// Model spec.
        model: String,
    },
    /// The HTTP part of `bench reward` got no successful answer.
    #[error("HTTP benchmark: no successful request ({errors} errors; first: {first_error})")]
    NoHttpSuccess {
        /// Failed requests.
        errors: usize,
        /// The first failure.
        first_error: String,
    },
    /// Loading, checking or writing data failed.
    #[error(transparent)]
    Data(Box<recode_data::DataError>),
    /// Scoring failed.
    #[error(transparent)]
    Reward(#[from] recode_reward::batch::BatchError),
    /// The model failed to tokenise or generate.
    #[error(transparent)]
    Model(Box<recode_model::ModelError>),
    /// The model failed to load.
    #[error(transparent)]
    Rl(Box<recode_rl::RlError>),
    /// The CodeUpdateArena file could not be loaded.
    #[error(transparent)]
    Arena(#[from] recode_eval::arena::LoadError),
    /// The executor pool failed to start.
    #[error(transparent)]
    Executor(#[from] recode_eval::executor::ExecError),
    /// The in-process reward server failed.
    #[error(transparent)]
    Server(#[from] recode_server::ServerError),
    /// JSON could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `?` on the library errors that are boxed in [`BenchError`] (they are large; boxing keeps
/// every `Result` of this crate small).
macro_rules! from_boxed {
    ($($variant:ident: $error:ty),*) => {$(
        impl From<$error> for BenchError {
            fn from(e: $error) -> Self {
                BenchError::$variant(Box::new(e))
            }
        }
    )*};
}
from_boxed!(
    Data: recode_data::DataError,
    Model: recode_model::ModelError,
    Rl: recode_rl::RlError
);

/// Result of this crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
