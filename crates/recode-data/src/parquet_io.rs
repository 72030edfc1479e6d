//! Parquet input and output of plain ReCode rows (the six string columns).

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::dataset::{Dataset, LoadOptions, Row};
use crate::error::{DataError, Result};
use crate::example::{UpdateExample, FIELDS};

/// Reads a Parquet file whose columns include the six ReCode fields as strings.
pub fn read_parquet(path: &Path, opts: LoadOptions) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|source| DataError::NotParquet {
            path: path.to_path_buf(),
            source,
        })?;
    let mut ds = Dataset::default();
    let mut row_base = 0usize;
    for batch in reader {
        let batch = batch.map_err(|source| DataError::Arrow {
            path: path.to_path_buf(),
            context: "reading Parquet",
            source,
        })?;
        let mut columns = Vec::with_capacity(FIELDS.len());
        for name in FIELDS {
            let col = batch
                .column_by_name(name)
                .ok_or_else(|| DataError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name,
                })?;
            columns.push(string_column(path, name, col)?);
        }
        for i in 0..batch.num_rows() {
            let mut example = UpdateExample::default();
            for (name, col) in FIELDS.iter().zip(&columns) {
                *example.field_mut(name).expect("known field") = col(i);
            }
            ds.rows.push(Row {
                line: row_base + i + 1,
                example,
            });
        }
        row_base += batch.num_rows();
    }
    let _ = opts; // every Parquet row is well typed once its column is
    Ok(ds)
}

type Getter<'a> = Box<dyn Fn(usize) -> Option<String> + 'a>;

fn string_column<'a>(path: &Path, name: &'static str, col: &'a ArrayRef) -> Result<Getter<'a>> {
    fn get<A: Array>(a: &A, i: usize, v: impl Fn(&A, usize) -> String) -> Option<String> {
        (!a.is_null(i)).then(|| v(a, i))
    }
    Ok(match col.data_type() {
        DataType::Utf8 => {
            let a = col.as_any().downcast_ref::<StringArray>().expect("utf8");
            Box::new(move |i| get(a, i, |a, i| a.value(i).to_string()))
        }
        DataType::LargeUtf8 => {
            let a = col
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .expect("large utf8");
            Box::new(move |i| get(a, i, |a, i| a.value(i).to_string()))
        }
        DataType::Utf8View => {
            let a = col
                .as_any()
                .downcast_ref::<StringViewArray>()
                .expect("utf8 view");
            Box::new(move |i| get(a, i, |a, i| a.value(i).to_string()))
        }
        other => {
            return Err(DataError::ColumnType {
                path: path.to_path_buf(),
                column: name,
                found: other.to_string(),
            })
        }
    })
}

/// Writes a record batch as one Parquet file, atomically.
pub fn write_batch(path: &Path, batch: &RecordBatch) -> Result<()> {
    crate::atomic::write_with(path, |w| {
        let mut writer =
            ArrowWriter::try_new(w, batch.schema(), None).map_err(std::io::Error::other)?;
        writer.write(batch).map_err(std::io::Error::other)?;
        writer.close().map_err(std::io::Error::other)?;
        Ok(())
    })
}

/// Writes plain ReCode rows (six nullable string columns) as Parquet.
pub fn write_examples<'a>(
    path: &Path,
    examples: impl IntoIterator<Item = &'a UpdateExample>,
) -> Result<()> {
    let examples: Vec<&UpdateExample> = examples.into_iter().collect();
    let fields: Vec<Field> = FIELDS
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect();
    let columns: Vec<ArrayRef> = FIELDS
        .iter()
        .map(|n| {
            Arc::new(StringArray::from_iter(
                examples.iter().map(|e| e.field(n).map(str::to_string)),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|source| {
        DataError::Arrow {
            path: path.to_path_buf(),
            context: "building the Parquet table",
            source,
        }
    })?;
    write_batch(path, &batch)
}
