//! No panic on arbitrary input; bounded time on megabyte completions and deep nesting.

use proptest::prelude::*;
use recode_reward::{is_valid_python, normalize_code, score, Mode};
use std::time::{Duration, Instant};

fn both_modes(completion: &str, target: &str) {
    for mode in [Mode::Paper, Mode::Fixed] {
        let r = score(completion, target, mode);
        assert!(r.total().is_finite());
        assert!((-3.0..=3.0).contains(&r.total()), "{r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn arbitrary_strings(c in any::<String>(), t in any::<String>()) {
        both_modes(&c, &t);
    }

    #[test]
    fn structured_fragments(
        parts in proptest::collection::vec(prop_oneof![
            Just("<think>"), Just("</think>"), Just("<answer>"), Just("</answer>"),
            Just("```python\n"), Just("\n```"), Just("'"), Just("\""), Just("'''"), Just("#"),
            Just("\n"), Just(" "), Just("STRING_PLACEHOLDER_"), Just("1"), Just("0"),
            Just("("), Just(")"), Just("x = 1"), Just("é"), Just("\u{1c}"), Just("\r\n"),
        ], 0..80),
        t in "[a-z'\"#() \n=1]{0,40}",
    ) {
        let c: String = parts.concat();
        both_modes(&c, &t);
    }
}

fn wrap(code: &str) -> String {
    format!("plan</think>\n<answer>\n```python\n{code}\n```\n</answer>")
}

fn timed(label: &str, limit: Duration, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let took = start.elapsed();
    eprintln!("{label}: {took:?}");
    assert!(took < limit, "{label} took {took:?} (limit {limit:?})");
}

#[test]
fn one_megabyte_completion_is_bounded() {
    let line = "result = new_api(value, axis=0)  # it's migrated\n";
    let code = line.repeat(1_000_000 / line.len());
    let target = line.repeat(20);
    for mode in [Mode::Paper, Mode::Fixed] {
        timed(&format!("1 MB {mode}"), Duration::from_secs(20), || {
            let r = score(&wrap(&code), &target, mode);
            assert!(r.has_code_block);
        });
    }
}

#[test]
fn ten_megabyte_inputs_do_not_panic() {
    let cases = [
        "(".repeat(10 << 20),
        "-".repeat(10 << 20) + "1",
        "'".repeat(10 << 20),
        "\"a\" ".repeat(10 << 18),
        "STRING_PLACEHOLDER_1'x'".repeat(10 << 15),
        "not ".repeat(10 << 18) + "x",
        "a if b else ".repeat(10 << 16) + "c",
        "x".repeat(10 << 20),
    ];
    for (i, code) in cases.iter().enumerate() {
        timed(&format!("10 MB case {i}"), Duration::from_secs(60), || {
            both_modes(&wrap(code), "x");
            let _ = normalize_code(code, Mode::Paper);
        });
    }
}

#[test]
fn deep_nesting_is_rejected_without_stack_overflow() {
    for n in [199usize, 201, 5_000, 100_000] {
        let code = format!("x = {}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(is_valid_python(&code), n <= 200, "depth {n}");
    }
    let indent: String = (0..150)
        .map(|d| format!("{}if x:\n", "  ".repeat(d)))
        .collect();
    assert!(!is_valid_python(&(indent + &"  ".repeat(150) + "pass\n")));
    let lambdas = format!("f = {}1", "lambda: ".repeat(4000));
    let _ = is_valid_python(&lambdas);
    let power = format!("y = 2{}", "**2".repeat(4000));
    let _ = is_valid_python(&power);
}

#[test]
fn placeholder_explosion_is_capped() {
    // Each literal mentions the next placeholder twice: the published restore would double
    // the text at every step (2^k); ours stays bounded.
    let code: String = (0..40)
        .map(|i| {
            format!(
                "v{i} = 'STRING_PLACEHOLDER_{} STRING_PLACEHOLDER_{}'\n",
                i + 1,
                i + 1
            )
        })
        .collect();
    timed("placeholder explosion", Duration::from_secs(10), || {
        let out = normalize_code(&code, Mode::Paper);
        assert!(out.len() < (code.len() * 8 + (1 << 20)) * 3);
    });
}
