//! The training prompt through ChatML is byte-identical to the reference construction,
//! written out here by hand from the method description (not through minijinja).

use recode_data::prompt::{render_training_prompt, ASSISTANT_PREFIX, SYSTEM_PROMPT};
use recode_data::{ChatMessage, ChatTemplate, Ending, UpdateExample};

fn example(version: &str) -> UpdateExample {
    UpdateExample {
        dependency: Some("JAX".into()),
        new_version: Some(version.into()),
        description: Some("d".into()),
        update_info: Some("jax.numpy.unstack has been added.".into()),
        old_code: Some("import jax.numpy as jnp\nx = 1".into()),
        new_code: Some("y".into()),
    }
}

fn reference(version_text: &str) -> String {
    let user = format!(
        "\nJAX performed an API update in version {version_text}, and the update content includes:\n\
<doc>\njax.numpy.unstack has been added.\n</doc>\nThe old version of the code is:\n\
```python\nimport jax.numpy as jnp\nx = 1\n```\n\n\
Show your work in <think> </think> tags. And return the final code in <answer> </answer>, \
the code within <answer></answer> should be enclosed in ```python ``` tags.\n"
    );
    format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{ASSISTANT_PREFIX}"
    )
}

#[test]
fn chatml_prompt_is_byte_identical() {
    let t = ChatTemplate::chatml();
    assert_eq!(
        render_training_prompt(&example("==0.4.38"), &t).unwrap(),
        reference("0.4.38")
    );
}

#[test]
fn version_without_prefix_is_kept_whole() {
    // The published code would write "4.38" here; recode keeps the version intact.
    let t = ChatTemplate::chatml();
    assert_eq!(
        render_training_prompt(&example("0.4.38"), &t).unwrap(),
        reference("0.4.38")
    );
}

#[test]
fn generation_prompt_and_closed_endings() {
    let t = ChatTemplate::chatml();
    let msgs = [ChatMessage::new("user", "hi")];
    assert_eq!(
        t.render(&msgs, Ending::GenerationPrompt).unwrap(),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&msgs, Ending::Closed).unwrap(),
        "<|im_start|>user\nhi<|im_end|>\n"
    );
}

#[test]
fn template_errors_are_reported() {
    assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", "", "").unwrap();
    let msg = t
        .render(&[ChatMessage::new("user", "x")], Ending::Closed)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("only user turns"), "{msg}");
    let t = ChatTemplate::new(
        "{% for m in messages %}{{ m.content | upper }}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let err = t.render(
        &[ChatMessage::new("assistant", "abc")],
        Ending::ContinueFinal,
    );
    assert!(err.is_err(), "rewritten content cannot be continued");
}

#[test]
fn tokenizer_config_template_with_python_methods() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tokenizer_config.json");
    let tmpl = "{{ bos_token }}{% for m in messages %}{{ m['role'].upper() }}: {{ m['content'].strip() }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
    std::fs::write(&cfg, serde_json::json!({"chat_template": tmpl, "bos_token": "<s>", "eos_token": {"content": "</s>"}}).to_string()).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap();
    let out = t
        .render(
            &[
                ChatMessage::new("user", " hi "),
                ChatMessage::new("assistant", "Let me"),
            ],
            Ending::ContinueFinal,
        )
        .unwrap();
    assert_eq!(out, "<s>USER: hi\nASSISTANT: Let me");
    std::fs::write(&cfg, "{\"bos_token\": \"x\"}").unwrap();
    let msg = ChatTemplate::from_tokenizer_config(&cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("field `chat_template`: missing"), "{msg}");
}
