//! Bad input: every error names the file, the line and (where one is to blame) the field.

use std::io::Write;

use proptest::prelude::*;
use recode_data::{load_file, LoadOptions};

const GOOD: &str = r#"{"dependency":"numpy","new_version":"==2.0","description":"d","update_info":"u","old_code":"x = 1","new_code":"x = 2"}"#;

fn file_with(bytes: &[u8], ext: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn err_of(bytes: &[u8]) -> (String, String) {
    let f = file_with(bytes, ".jsonl");
    let e = load_file(f.path(), LoadOptions::default()).unwrap_err();
    (e.to_string(), f.path().display().to_string())
}

#[test]
fn malformed_json_names_file_and_line() {
    let (msg, path) = err_of(format!("{GOOD}\n{{\"dependency\": \n").as_bytes());
    assert!(
        msg.starts_with(&format!("{path}:2: malformed JSON")),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_field() {
    let bad = GOOD.replace(r#""old_code":"x = 1""#, r#""old_code":17"#);
    let (msg, path) = err_of(format!("{GOOD}\n\n{bad}\n").as_bytes());
    assert_eq!(
        msg,
        format!("{path}:3: field `old_code`: expected a string or null, found a number")
    );
}

#[test]
fn missing_field_names_field() {
    let bad = GOOD.replace(r#""new_code":"x = 2""#, r#""other":"x""#);
    let (msg, _) = err_of(bad.as_bytes());
    assert!(msg.contains(":1: field `new_code`: missing"), "{msg}");
}

#[test]
fn invalid_utf8_names_line() {
    let mut bytes = format!("{GOOD}\n").into_bytes();
    bytes.extend_from_slice(b"{\"dependency\":\"\xff\"}\n");
    let (msg, _) = err_of(&bytes);
    assert!(msg.contains(":2: invalid UTF-8"), "{msg}");
}

#[test]
fn not_an_object() {
    let (msg, _) = err_of(b"[1,2]\n");
    assert!(
        msg.contains(":1: expected a JSON object, found an array"),
        "{msg}"
    );
}

#[test]
fn empty_and_missing_files() {
    let f = file_with(b"\n  \n", ".jsonl");
    let msg = load_file(f.path(), LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("file is empty"), "{msg}");
    let msg = recode_data::load("/nonexistent/dir/x.jsonl", LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("/nonexistent/dir/x.jsonl: "), "{msg}");
}

#[test]
fn keep_going_collects_every_bad_line() {
    let bad_type = GOOD.replace(r#""dependency":"numpy""#, r#""dependency":true"#);
    let text = format!("{GOOD}\nnot json\n{GOOD}\n{bad_type}\n");
    let f = file_with(text.as_bytes(), ".jsonl");
    let ds = load_file(f.path(), LoadOptions { keep_going: true }).unwrap();
    assert_eq!(ds.rows.len(), 2);
    assert_eq!(ds.rows[1].line, 3);
    let msgs: Vec<String> = ds.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].contains(":2: malformed JSON"));
    assert!(msgs[1].contains(":4: field `dependency`: expected a string or null, found a boolean"));
}

#[test]
fn parquet_round_trip_and_bad_parquet() {
    let f = file_with(format!("{GOOD}\n{GOOD}\n").as_bytes(), ".jsonl");
    let ds = load_file(f.path(), LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    recode_data::parquet_io::write_examples(&out, ds.examples()).unwrap();
    let back = load_file(&out, LoadOptions::default()).unwrap();
    assert_eq!(back.rows, ds.rows);
    let junk = file_with(b"PAR1 not really", ".parquet");
    let msg = load_file(junk.path(), LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a readable Parquet file"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn loader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = recode_data::load::parse_jsonl(std::path::Path::new("fuzz.jsonl"), &bytes, LoadOptions { keep_going: true });
        let _ = recode_data::load::parse_jsonl(std::path::Path::new("fuzz.jsonl"), &bytes, LoadOptions::default());
    }

    #[test]
    fn loader_never_panics_on_near_valid_rows(s in "\\{(\"[a-z_]{1,12}\":(null|[0-9]+|\"[^\"\\\\]{0,8}\"|\\[\\]),?){0,8}\\}") {
        let _ = recode_data::load::parse_jsonl(std::path::Path::new("fuzz.jsonl"), s.as_bytes(), LoadOptions::default());
    }
}
