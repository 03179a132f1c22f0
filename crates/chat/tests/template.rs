//! Jinja chat templates: transformers-compatible behaviour and hostile templates.

use llama31_chat::{ChatError, ChatTemplate, Message, TemplateLimits};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

fn render(src: &str, ctx: Value) -> Result<String, ChatError> {
    let t = ChatTemplate::new(src)?;
    let extra: Map<String, Value> = ctx.as_object().cloned().unwrap_or_default();
    t.render(&json!([]), None, false, "<s>", "</s>", &extra)
}

#[test]
fn chatml_like_smollm2() {
    let src = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let t = ChatTemplate::new(src).unwrap();
    let out = t
        .render_messages(&[Message::user("Hi")], true, "<|im_start|>", "<|im_end|>")
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn transformers_semantics() {
    // trim_blocks + lstrip_blocks
    assert_eq!(
        render("  {% if true %}\nx\n  {% endif %}\ny", json!({})).unwrap(),
        "x\ny"
    );
    // tojson like json.dumps(ensure_ascii=False)
    assert_eq!(
        render(
            "{{ v | tojson }}",
            json!({"v": {"b": [1, 2.5, "é"], "a": null}})
        )
        .unwrap(),
        r#"{"b": [1, 2.5, "é"], "a": null}"#
    );
    assert_eq!(
        render("{{ v | tojson(indent=2) }}", json!({"v": {"a": [1]}})).unwrap(),
        "{\n  \"a\": [\n    1\n  ]\n}"
    );
    assert_eq!(
        render(
            "{{ v | tojson(sort_keys=true) }}",
            json!({"v": {"b": 1, "a": 2}})
        )
        .unwrap(),
        r#"{"a": 2, "b": 1}"#
    );
    // Python string methods
    assert_eq!(
        render(
            "{{ s.strip() }}|{{ s.split(',') | join('+') }}|{{ s.startswith(' a') }}|{{ s.upper() }}|{{ s.replace('a', 'z') }}|{{ 'ab cd'.title() }}",
            json!({"s": " a,b "})
        )
        .unwrap(),
        "a,b| a+b |True| A,B | z,b |Ab Cd"
    );
    // loop controls
    assert_eq!(
        render(
            "{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
            json!({})
        )
        .unwrap(),
        "012"
    );
    // lenient undefined
    assert_eq!(
        render(
            "[{{ nothing }}]{% if nothing is defined %}x{% endif %}",
            json!({})
        )
        .unwrap(),
        "[]"
    );
    // strftime_now
    let year = render("{{ strftime_now('%Y') }}", json!({})).unwrap();
    assert_eq!(year.len(), 4);
    assert!(year.chars().all(|c| c.is_ascii_digit()));
}

#[test]
fn raise_exception_is_typed() {
    let err = render("{{ raise_exception('no system role!') }}", json!({})).unwrap_err();
    assert_eq!(err, ChatError::TemplateException("no system role!".into()));
    let err = render(
        "{% macro m() %}{{ raise_exception('deep') }}{% endmacro %}{{ m() }}",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err, ChatError::TemplateException("deep".into()));
}

#[test]
fn syntax_errors_are_typed() {
    assert!(matches!(
        ChatTemplate::new("{% for x in %}"),
        Err(ChatError::TemplateSyntax(_))
    ));
    assert!(matches!(
        ChatTemplate::new("{{ x "),
        Err(ChatError::TemplateSyntax(_))
    ));
    let nested = format!(
        "{}x{}",
        "{% if true %}".repeat(400),
        "{% endif %}".repeat(400)
    );
    assert!(matches!(
        ChatTemplate::new(&nested),
        Err(ChatError::TemplateSyntax(_))
    ));
}

fn hostile(src: &str) -> ChatError {
    let start = Instant::now();
    let err = render(src, json!({})).expect_err("hostile template must fail");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    err
}

#[test]
fn infinite_recursion_ends_in_recursion_error() {
    let err = hostile("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    assert_eq!(err, ChatError::TemplateRecursion);
    let err = hostile("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}");
    assert!(
        matches!(
            err,
            ChatError::TemplateRecursion | ChatError::TemplateOutOfFuel
        ),
        "{err:?}"
    );
}

#[test]
fn huge_ranges_end_in_errors() {
    let err = hostile("{% for x in range(10**9) %}{{ x }}{% endfor %}");
    assert!(matches!(err, ChatError::TemplateRender(_)), "{err:?}");
    let err =
        hostile("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert_eq!(err, ChatError::TemplateOutOfFuel);
}

#[test]
fn nested_macros_end_in_errors() {
    // Each level calls the next four times: exponential work, shallow depth.
    let mut src = String::from("{% macro m0() %}{% endmacro %}");
    for i in 1..14 {
        src.push_str(&format!(
            "{{% macro m{i}() %}}{{{{ m{p}() }}}}{{{{ m{p}() }}}}{{{{ m{p}() }}}}{{{{ m{p}() }}}}{{% endmacro %}}",
            p = i - 1
        ));
    }
    src.push_str("{{ m13() }}");
    let err = hostile(&src);
    assert_eq!(err, ChatError::TemplateOutOfFuel);
    // Deeply nested macro calls hit the recursion limit.
    let mut src = String::from("{% macro m0() %}x{% endmacro %}");
    for i in 1..200 {
        src.push_str(&format!(
            "{{% macro m{i}() %}}{{{{ m{p}() }}}}{{% endmacro %}}",
            p = i - 1
        ));
    }
    src.push_str("{{ m199() }}");
    assert_eq!(hostile(&src), ChatError::TemplateRecursion);
}

#[test]
fn string_blowup_ends_in_errors() {
    let err = hostile("{{ 'a' * 10**9 }}");
    assert!(
        matches!(err, ChatError::TemplateOutputTooLarge { .. }),
        "{err:?}"
    );
    let err = hostile("{% for i in range(100) %}{{ 'x' * 10**6 }}{% endfor %}");
    assert_eq!(
        err,
        ChatError::TemplateOutputTooLarge {
            limit: TemplateLimits::default().max_output
        }
    );
}

#[test]
fn custom_limits() {
    let limits = TemplateLimits {
        fuel: 100,
        recursion: 8,
        max_output: 10,
    };
    let t = ChatTemplate::with_limits(
        "{% for i in range(50) %}{% endfor %}{% for i in range(50) %}{{ i }}{% endfor %}",
        limits,
    )
    .unwrap();
    assert_eq!(
        t.render(&json!([]), None, false, "", "", &Map::new())
            .unwrap_err(),
        ChatError::TemplateOutOfFuel
    );
    let t = ChatTemplate::with_limits("{{ 'y' * 11 }}", limits).unwrap();
    assert_eq!(
        t.render(&json!([]), None, false, "", "", &Map::new())
            .unwrap_err(),
        ChatError::TemplateOutputTooLarge { limit: 10 }
    );
}
