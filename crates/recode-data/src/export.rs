//! Export for distributed RL engines: verl's Parquet RL dataset and TRL's conversational JSONL.
//!
//! verl reads `data_source`, `prompt` (chat messages, rendered by verl with
//! `add_generation_prompt=True`), `ability`, `reward_model{style, ground_truth}` and
//! `extra_info`. verl cannot continue an assistant turn, so the assistant prefix
//! `Let me solve this step by step.\n<think>` is stored in `extra_info.assistant_prefix`;
//! the format reward prepends `<think>` itself, so scoring is unaffected.
//! TRL's GRPOTrainer continues a final assistant message, so its rows carry all three turns.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};

use crate::error::{DataError, Result};
use crate::load::Row;
use crate::prompt::{prompt_messages, training_messages, ASSISTANT_PREFIX};
use crate::template::ChatMessage;

/// Target format of `recode data export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// verl RL dataset (Parquet).
    Verl,
    /// TRL GRPOTrainer rows (`prompt` messages + `target`), JSON lines.
    TrlJsonl,
}

/// Options shared by both formats.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// `data_source` column (verl picks the reward function by it).
    pub data_source: String,
    /// `extra_info.split`.
    pub split: String,
    /// `ability` column.
    pub ability: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            data_source: "recode/api_update".into(),
            split: "train".into(),
            ability: "code".into(),
        }
    }
}

/// The parts of a row every export needs; a null one is an error naming the line.
struct Ready<'a> {
    line: usize,
    dependency: &'a str,
    version: &'a str,
    target: &'a str,
}

fn ready<'a>(path: &Path, row: &'a Row) -> Result<Ready<'a>> {
    for f in crate::clean::REQUIRED_FIELDS {
        if row.example.field(f).is_none() {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                line: row.line,
                field: Some(f.into()),
                message: "null; run `recode data clean` first".into(),
            });
        }
    }
    let ex = &row.example;
    Ok(Ready {
        line: row.line,
        dependency: ex.dependency.as_deref().unwrap_or_default(),
        version: ex.version().unwrap_or_default(),
        target: ex.new_code.as_deref().unwrap_or_default(),
    })
}

/// Writes `rows` (from `input`) to `out` in `format`, atomically; returns the row count.
pub fn export(
    input: &Path,
    rows: &[Row],
    out: &Path,
    format: ExportFormat,
    opts: &ExportOptions,
) -> Result<usize> {
    let ready_rows = rows
        .iter()
        .map(|r| ready(input, r))
        .collect::<Result<Vec<_>>>()?;
    match format {
        ExportFormat::Verl => write_verl(out, rows, &ready_rows, opts)?,
        ExportFormat::TrlJsonl => crate::atomic::write_with(out, |w| {
            use std::io::Write;
            for (row, r) in rows.iter().zip(&ready_rows) {
                let obj = serde_json::json!({
                    "prompt": training_messages(&row.example),
                    "target": r.target,
                    "dependency": r.dependency,
                    "version": r.version,
                    "line": r.line,
                });
                serde_json::to_writer(&mut *w, &obj).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?,
    }
    Ok(rows.len())
}

fn message_fields() -> Fields {
    Fields::from(vec![
        Field::new("content", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
    ])
}

fn write_verl(
    out: &Path,
    rows: &[Row],
    ready_rows: &[Ready<'_>],
    opts: &ExportOptions,
) -> Result<()> {
    let n = rows.len();
    let constant = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let strings = |f: &dyn Fn(&Ready<'_>) -> String| {
        Arc::new(StringArray::from_iter_values(ready_rows.iter().map(f))) as ArrayRef
    };

    let mut prompts =
        ListBuilder::new(StructBuilder::from_fields(message_fields(), n * 2)).with_field(Arc::new(
            Field::new("item", DataType::Struct(message_fields()), false),
        ));
    for row in rows {
        let messages: Vec<ChatMessage> = prompt_messages(&row.example);
        let b = prompts.values();
        for m in &messages {
            b.field_builder::<StringBuilder>(0)
                .expect("content")
                .append_value(&m.content);
            b.field_builder::<StringBuilder>(1)
                .expect("role")
                .append_value(&m.role);
            b.append(true);
        }
        prompts.append(true);
    }
    let prompt = Arc::new(prompts.finish()) as ArrayRef;

    let reward_model = StructArray::from(vec![
        (
            Arc::new(Field::new("ground_truth", DataType::Utf8, false)),
            strings(&|r| r.target.to_string()),
        ),
        (
            Arc::new(Field::new("style", DataType::Utf8, false)),
            constant("rule"),
        ),
    ]);
    let extra_info = StructArray::from(vec![
        (
            Arc::new(Field::new("index", DataType::Int64, false)),
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        (
            Arc::new(Field::new("split", DataType::Utf8, false)),
            constant(&opts.split),
        ),
        (
            Arc::new(Field::new("dependency", DataType::Utf8, false)),
            strings(&|r| r.dependency.to_string()),
        ),
        (
            Arc::new(Field::new("version", DataType::Utf8, false)),
            strings(&|r| r.version.to_string()),
        ),
        (
            Arc::new(Field::new("assistant_prefix", DataType::Utf8, false)),
            constant(ASSISTANT_PREFIX),
        ),
        (
            Arc::new(Field::new("line", DataType::Int64, false)),
            Arc::new(Int64Array::from_iter_values(
                ready_rows.iter().map(|r| r.line as i64),
            )) as ArrayRef,
        ),
    ]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("data_source", constant(&opts.data_source)),
        ("prompt", prompt),
        ("ability", constant(&opts.ability)),
        ("reward_model", Arc::new(reward_model) as ArrayRef),
        ("extra_info", Arc::new(extra_info) as ArrayRef),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|source| DataError::Arrow {
        path: out.to_path_buf(),
        context: "building the verl table",
        source,
    })?;
    crate::parquet_io::write_batch(out, &batch)
}
