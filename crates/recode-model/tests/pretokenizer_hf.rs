//! The pre-tokenizers recode builds for GGUF `tokenizer.ggml.pre` names, against Hugging Face
//! `tokenizers` applying the real ones (python/reference/pretokenize_ref.py: Qwen2's from its
//! tokenizer.json, Llama 3's and GPT-2's from their published regexes, SmolLM's from llama.cpp's),
//! on code, prose, Unicode, digits, whitespace and contractions; and the full Qwen encoding of a
//! GGUF tokenizer built from the real Qwen vocabulary against that vocabulary's tokenizer.json.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use recode_model::Tokenizer;
use serde_json::json;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

const SAMPLES: &[&str] = &[
    "def add(a, b):\n    return a + b\n",
    "    if x:\n\t\tpass  # comment\r\n",
    "import numpy as np\nnp.array([1, 2, 3]).reshape(-1, 1)  # shape (3, 1)\n",
    "x = {'key': \"value\", \"n\": [1.5e3, -2, 0x1F]}\n\n\nprint(f\"{x!r:>10}\")",
    "class Foo(Base):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self) -> None:\n        ...\n",
    "Hello, world! How's it going? I'll be there; you've seen it, they'd say. We're done, I'm here.",
    "DON'T SHOUT'S 'S 'T 'Re 'vE 'M 'LL 'D it's o'clock rock'n'roll ''quoted''",
    // Upper-case contractions followed by letters: only a case-insensitive match splits them.
    "'STOP 'Twas 'LLAMA 'DAta 'Mmm 'REady 'VEry I'MPOSSIBLE WE'RE'NT",
    "12345678901234567890 and 3.14159, 1e-10, 1,000,000 v2.0.1 2024-05-01",
    "   leading spaces and trailing   ",
    "multiple\n\n\nnewlines\r\n\r\nand tabs\t\t\tend\n",
    "x  \n  y \n\n z\t\n",
    "日本語のテキストと中文字符，混合English123テスト。",
    "emoji 😀👍🏽 family 👨\u{200d}👩\u{200d}👧 flag 🇫🇷!",
    "accents: café naïve résumé Ångström; decomposed: cafe\u{301} n\u{303}o",
    "Ελληνικά и русский текст, عربي ١٢٣ हिन्दी",
    "punctuation!!! ??? ... --- === <<>> {}[]() @#$%^&* ~`|\\",
    "\u{a0}non-breaking\u{2003}em space\u{3000}ideographic\u{feff}bom",
    "٣٤٥ Arabic-Indic digits, ½ ⅓ ² superscripts, Ⅻ roman, ①②",
    "a\u{301} combining alone \u{301}",
    "",
];

/// Only in the full-encoding comparison: special and added tokens of the Qwen vocabulary.
const CHAT: &str = "<|im_start|>user\nhi 123<|im_end|>\n<|im_start|>assistant\n<think>\nok</think>";

/// The pre-names recode accepts, each with the reference whose splitting it must reproduce.
const PRE_NAMES: [(&str, &str); 9] = [
    ("qwen2", "qwen2"),
    ("deepseek-r1-qwen", "qwen2"),
    ("llama-bpe", "llama-bpe"),
    ("llama3", "llama-bpe"),
    ("smaug-bpe", "llama-bpe"),
    ("gpt-2", "gpt-2"),
    ("smollm", "smollm"),
    ("starcoder", "smollm"),
    ("refact", "smollm"),
];

/// Llama 3 BPE case: `abc` and `Ġabc` are vocabulary entries the merges cannot reach.
fn merges_case() -> (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>) {
    let vocab = vec!["a", "b", "c", "Ġ", "ab", "abc", "Ġa", "Ġabc"];
    let merges = vec!["a b", "Ġ a"];
    let strings = vec!["abc", " abc", "ab c abc", "cab"];
    (vocab, merges, strings)
}

fn qwen_tokenizer_json() -> PathBuf {
    let dir = std::env::var("RECODE_QWEN_TOKENIZER_DIR")
        .unwrap_or_else(|_| "/root/.cache/recode/models/qwen3-tokenizer".into());
    let p = PathBuf::from(dir).join("tokenizer.json");
    assert!(
        p.exists(),
        "{} not found: run scripts/setup.sh (or set RECODE_QWEN_TOKENIZER_DIR)",
        p.display()
    );
    p
}

/// The Hugging Face reference for SAMPLES (+ CHAT) and the merges case, computed once.
fn reference() -> &'static serde_json::Value {
    static REF: OnceLock<serde_json::Value> = OnceLock::new();
    REF.get_or_init(|| {
        let (vocab, merges, strings) = merges_case();
        let vocab: HashMap<&str, usize> = vocab.iter().enumerate().map(|(i, t)| (*t, i)).collect();
        let mut all: Vec<&str> = SAMPLES.to_vec();
        all.push(CHAT);
        let request = json!({
            "strings": all,
            "qwen_tokenizer": qwen_tokenizer_json(),
            "merges_case": {"vocab": vocab, "merges": merges, "strings": strings},
        });
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../python/reference/pretokenize_ref.py");
        let stdout = common::python_stdin(&script, &request.to_string());
        serde_json::from_str(&stdout).unwrap()
    })
}

/// A GGUF tokenizer (`gpt2` BPE) of the given vocabulary, merges, token types and pre-name.
fn gguf_tokenizer(tokens: &[String], merges: &[String], types: &[i32], pre: &str) -> Tokenizer {
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let metadata = [
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String(pre.into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.merges", strings(merges)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
    ];
    let content = Content {
        magic: VersionedMagic::GgufV3,
        metadata: metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    };
    Tokenizer::from_gguf(&content).unwrap()
}

/// The pieces recode's pre-tokenizer cuts `s` into (byte-level form, like pre_tokenize_str).
fn splits(tok: &Tokenizer, s: &str) -> Vec<String> {
    let pre = tok.inner().get_pre_tokenizer().expect("a pre-tokenizer");
    let mut p = PreTokenizedString::from(s);
    pre.pre_tokenize(&mut p).unwrap();
    p.get_splits(OffsetReferential::Original, OffsetType::Char)
        .into_iter()
        .map(|(piece, _, _)| piece.to_string())
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pre_tokenizers_split_like_hugging_face() {
    let want = &reference()["splits"];
    let tokens = strings(&["a", "b"]);
    let mut bad = Vec::new();
    for (pre, reference_name) in PRE_NAMES {
        let tok = gguf_tokenizer(&tokens, &[], &[1, 1], pre);
        for (i, s) in SAMPLES.iter().enumerate() {
            let want: Vec<String> =
                serde_json::from_value(want[reference_name][i].clone()).unwrap();
            let got = splits(&tok, s);
            if got != want {
                bad.push(format!(
                    "{pre} {s:?}\n  recode: {got:?}\n  HF:     {want:?}"
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} (pre-name, sample) pairs differ:\n{}",
        bad.len(),
        PRE_NAMES.len() * SAMPLES.len(),
        bad.join("\n")
    );
}

#[test]
fn qwen2_gguf_tokenizer_encodes_like_its_tokenizer_json() {
    // The GGUF form of the real Qwen vocabulary, as llama.cpp's converter writes it: tokens by id,
    // merges as "a b", special added tokens as control (3), other added tokens user-defined (4).
    let text = std::fs::read_to_string(qwen_tokenizer_json()).unwrap();
    let tj: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut by_id: Vec<(u64, String, i32)> = tj["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, id)| (id.as_u64().unwrap(), t.clone(), 1))
        .collect();
    for a in tj["added_tokens"].as_array().unwrap() {
        let kind = if a["special"].as_bool().unwrap() {
            3
        } else {
            4
        };
        by_id.push((
            a["id"].as_u64().unwrap(),
            a["content"].as_str().unwrap().into(),
            kind,
        ));
    }
    by_id.sort();
    assert!(
        by_id
            .iter()
            .enumerate()
            .all(|(i, (id, _, _))| *id == i as u64),
        "ids have gaps"
    );
    let tokens: Vec<String> = by_id.iter().map(|(_, t, _)| t.clone()).collect();
    let types: Vec<i32> = by_id.iter().map(|(_, _, k)| *k).collect();
    let merges: Vec<String> = tj["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            pair => format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ),
        })
        .collect();
    let tok = gguf_tokenizer(&tokens, &merges, &types, "qwen2");
    let want = &reference()["qwen_ids"];
    let mut all: Vec<&str> = SAMPLES.to_vec();
    all.push(CHAT);
    let mut bad = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let want: Vec<u32> = serde_json::from_value(want[i].clone()).unwrap();
        let got = tok.encode(s).unwrap();
        if got != want {
            bad.push(format!("{s:?}\n  recode: {got:?}\n  HF:     {want:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} strings encode differently:\n{}",
        bad.len(),
        all.len(),
        bad.join("\n")
    );
}

#[test]
fn llama3_whole_word_vocabulary_hits_skip_the_merges() {
    let (vocab, merges, strings_) = merges_case();
    let tok = gguf_tokenizer(
        &strings(&vocab),
        &strings(&merges),
        &vec![1; vocab.len()],
        "llama-bpe",
    );
    let want: Vec<Vec<u32>> =
        serde_json::from_value(reference()["merges_case_ids"].clone()).unwrap();
    for (s, want) in strings_.iter().zip(&want) {
        assert_eq!(&tok.encode(s).unwrap(), want, "{s:?}");
    }
}
