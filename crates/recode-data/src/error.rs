//! Errors of the data stage: every one names the file, and where it applies the line and field.

use std::path::PathBuf;

/// An error while reading, validating or writing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying OS error.
        source: std::io::Error,
    },
    /// The file exists but holds no rows.
    #[error("{path}: file is empty (no rows)")]
    Empty {
        /// File concerned.
        path: PathBuf,
    },
    /// One row is malformed: bad JSON, bad UTF-8, wrong field type, missing field.
    #[error("{path}:{line}: {}{message}", field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Row {
        /// File concerned.
        path: PathBuf,
        /// 1-based line (JSONL) or row (Parquet) number.
        line: usize,
        /// Offending field, when one is to blame.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The file is not Parquet (or its footer/schema is unreadable).
    #[error("{}: not a readable Parquet file: {source}", path.display())]
    NotParquet {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Reading, building or converting Arrow data failed.
    #[error("{}: {context}: {source}", path.display())]
    Arrow {
        /// File concerned.
        path: PathBuf,
        /// What was being done (`reading Parquet`, `building the verl table`, …).
        context: &'static str,
        /// Underlying error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A Parquet file lacks one of the six ReCode columns.
    #[error("{}: missing column `{column}` (ReCode rows need {})", path.display(), crate::example::FIELDS.join(", "))]
    MissingColumn {
        /// File concerned.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
    },
    /// A ReCode column is not a string column.
    #[error("{}: field `{column}`: column type is {found}, expected a string column", path.display())]
    ColumnType {
        /// File concerned.
        path: PathBuf,
        /// The column.
        column: &'static str,
        /// Its Arrow type.
        found: String,
    },
    /// A `tokenizer.json` does not load.
    #[error("{}: not a usable tokenizer.json: {source}", path.display())]
    Tokenizer {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A chat template does not compile.
    #[error("chat template: does not compile: {source:#}")]
    TemplateCompile {
        /// The template engine's error (names the line).
        #[source]
        source: minijinja::Error,
    },
    /// A chat template fails while rendering.
    #[error("chat template: render failed: {source:#}")]
    TemplateRender {
        /// The template engine's error (names the line).
        #[source]
        source: minijinja::Error,
    },
    /// `continue_final_message` rendering was asked for with no messages.
    #[error("chat template: continue_final_message with no messages")]
    NoFinalMessage,
    /// The rendered text does not contain the final message verbatim, so it cannot be continued.
    #[error(
        "chat template: continue_final_message: the final message's content does not appear in \
         the rendered text (the template rewrites it)"
    )]
    FinalMessageRewritten,
    /// `HF_HUB_OFFLINE` is set and the dataset is not cached.
    #[error("hub: {spec}: HF_HUB_OFFLINE is set and {} holds no cached data files", cache_dir.display())]
    HubOffline {
        /// The dataset id.
        spec: String,
        /// Its cache directory.
        cache_dir: PathBuf,
    },
    /// The hub client could not be set up.
    #[error("hub: {spec}: {source}")]
    HubClient {
        /// The dataset id.
        spec: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The dataset's files could not be listed and none are cached.
    #[error("hub: {spec}: listing files: {source} (and no cached copy in {})", cache_dir.display())]
    HubListing {
        /// The dataset id.
        spec: String,
        /// Its cache directory.
        cache_dir: PathBuf,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The dataset has no data file recode reads.
    #[error("hub: {spec}: no .jsonl, .parquet or .json data file in the dataset")]
    HubNoDataFile {
        /// The dataset id.
        spec: String,
    },
    /// A file of the dataset could not be fetched.
    #[error("hub: {spec}/{file}: {source}")]
    HubFetch {
        /// The dataset id.
        spec: String,
        /// The file.
        file: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The build has no hub support.
    #[error("hub: {spec}: this build has no hub support (feature `hub`); pass a local path")]
    HubUnsupported {
        /// The dataset id.
        spec: String,
    },
    /// A default data set could not be fetched from the hub.
    #[error(
        "hub: {what}: {}; set {var} to a local file (README, section Data)",
        hub_detail(source)
    )]
    DefaultUnreachable {
        /// The data set.
        what: &'static str,
        /// The variable that names a local copy.
        var: &'static str,
        /// Why the hub failed.
        #[source]
        source: Box<DataError>,
    },
    /// The hub resolved a default data set to no file.
    #[error("hub: {what}: {spec} holds no data file")]
    DefaultEmpty {
        /// The data set.
        what: &'static str,
        /// The dataset id.
        spec: String,
    },
    /// A variable names a data file that does not exist.
    #[error("{var}={}: no such file ({what})", path.display())]
    MissingDataFile {
        /// The variable.
        var: &'static str,
        /// The path it names.
        path: PathBuf,
        /// The data set.
        what: &'static str,
    },
    /// A split fraction outside [0, 1).
    #[error("--val must be a fraction in [0, 1), got {value}")]
    SplitFraction {
        /// The fraction given.
        value: f64,
    },
    /// Validation and test fractions that leave no training rows.
    #[error("--val {val} + --test {test} must be below 1")]
    SplitFractions {
        /// The validation fraction.
        val: f64,
        /// The test fraction.
        test: f64,
    },
    /// A split file already exists with different content (a split is written once).
    #[error(
        "{}: a split file with different content exists (a split is written once; \
         remove the old split or choose another directory)",
        path.display()
    )]
    SplitExists {
        /// The existing file.
        path: PathBuf,
    },
}

/// A hub error's message without its `hub: ` prefix (for messages that wrap one).
fn hub_detail(e: &DataError) -> String {
    let text = e.to_string();
    text.strip_prefix("hub: ")
        .map(str::to_string)
        .unwrap_or(text)
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
