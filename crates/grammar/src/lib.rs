//! llama31 grammar: constrained decoding of JSON that follows a JSON Schema.
//!
//! Used for OpenAI-style `response_format: {"type": "json_schema"}` and
//! `{"type": "json_object"}` and for forced tool calls: at each generation step only the
//! tokens that keep the output a valid prefix of the schema's language are allowed.
//!
//! - [`Grammar`]: a compiled schema (immutable, shared in an `Arc`).
//! - [`Matcher`]: the incremental state of one document; feed it the bytes of each sampled
//!   token with [`Matcher::accept_bytes`].
//! - [`TokenIndex`]: a vocabulary prepared once per tokenizer;
//!   [`TokenIndex::allowed`] computes the mask of tokens a matcher accepts next.
//!
//! ```
//! use std::sync::Arc;
//! use llama31_grammar::{Grammar, Matcher, TokenIndex};
//!
//! let schema = serde_json::json!({
//!     "type": "object",
//!     "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
//!     "required": ["city", "unit"],
//!     "additionalProperties": false
//! });
//! let grammar = Arc::new(Grammar::from_json_schema(&schema).unwrap());
//! let vocab: Vec<Option<Vec<u8>>> = ["{\"", "city", "\":\"", "Paris", "\",\"unit\":\"c\"}", "x"]
//!     .iter()
//!     .map(|t| Some(t.as_bytes().to_vec()))
//!     .collect();
//! let index = TokenIndex::new(&vocab);
//! let mut m = Matcher::new(grammar);
//! let mut allowed = vec![false; vocab.len()];
//! index.allowed(&m, &mut allowed);
//! assert_eq!(allowed, [true, false, false, false, false, false]);
//! for token in [0, 1, 2, 3, 4] {
//!     assert!(m.accept_bytes(vocab[token].as_deref().unwrap()));
//! }
//! assert!(m.is_complete() && !m.can_continue());
//! ```
//!
//! # The language
//!
//! Documents are JSON texts (RFC 8259) over bytes:
//!
//! - Strings: escapes `\" \\ \/ \b \f \n \r \t \uXXXX`; no raw byte below 0x20; the
//!   content is well-formed UTF-8 (a token may end inside a multi-byte character; overlong
//!   forms, encoded surrogates and code points above U+10FFFF are rejected). A `\u` escape
//!   of a high surrogate must be followed by a `\u` escape of a low surrogate, and a lone
//!   low surrogate is rejected, so every document parses with serde_json.
//! - Numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; `integer` has no fraction
//!   or exponent. So that every number parses as a finite `f64` (serde_json rejects
//!   `1e400`), at most 200 digits may precede the decimal point and the exponent's
//!   magnitude is at most 99 (leading zeros allowed).
//! - Whitespace (space, `\n`, `\t`, `\r`) may appear before the value and between tokens,
//!   at most [`GrammarOptions::max_whitespace`] bytes in a row (default 2), so a model
//!   cannot loop on whitespace. Nothing at all is accepted after the top-level value:
//!   right after the closing `}`/`]`/`"` of the top-level value [`Matcher::can_continue`]
//!   is false (a top-level number can still take more digits).
//! - At most [`GrammarOptions::max_depth`] nested objects/arrays (default 64); deeper
//!   input is rejected.
//!
//! # The JSON Schema subset
//!
//! - `type`: `string`, `number`, `integer`, `boolean`, `null`, `object`, `array`, or an
//!   array of these (each type uses the keywords that apply to it). Without `type`, the
//!   type is inferred from the keywords present (object, array and string keywords), and
//!   a schema with none of them accepts any value.
//! - Objects: `properties`, `required`, `additionalProperties` (`false`, `true` or a
//!   schema). Properties appear in the schema's declared order: required ones must appear,
//!   optional ones may be skipped, each at most once. Keys are matched as serde_json
//!   writes them (no alternative escapes). When `properties` is present and
//!   `additionalProperties` is absent, no other keys are allowed. Extra keys (when
//!   `additionalProperties` allows them) come after the declared properties and must
//!   differ from every declared key (compared as written). An object schema without
//!   `properties` accepts any keys with values of the `additionalProperties` schema (any
//!   value by default); such objects may repeat a key. A `required` name missing from
//!   `properties` is treated as a declared property (after the others) with the
//!   `additionalProperties` schema, or any value; it is an error when
//!   `additionalProperties` is `false`.
//! - Arrays: `items` (a schema, `true`, or `false`), `prefixItems`, `minItems`,
//!   `maxItems`; the older tuple form (`items` as an array, plus `additionalItems`) too.
//! - Strings: `minLength`, `maxLength` (in Unicode code points; an escape sequence or a
//!   surrogate pair counts as one). `format` is ignored. `pattern` is not supported and is
//!   an error.
//! - `enum` and `const` of any JSON values: exactly the compact serde_json serialization
//!   of each value is accepted (`"const": "get_weather"` accepts exactly
//!   `"get_weather"`), with no whitespace inside. Other keywords of the same schema object
//!   still apply: values they reject (e.g. an object const whose keys are not in declared
//!   order) are dropped.
//! - Numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` and
//!   `multipleOf` are accepted but not enforced.
//! - `anyOf`; `oneOf` (treated as `anyOf`: exclusivity is not enforced); `allOf` with a
//!   single member; `$ref` to any local JSON Pointer (`#`, `#/$defs/NAME`,
//!   `#/definitions/NAME`, ...), including recursive references. These keywords cannot be
//!   combined with each other or with the assertion keywords above in one schema object.
//! - `{}` and `true` accept any value; `false` accepts none.
//! - Ignored annotations: `title`, `description`, `default`, `examples`, `$schema`, `$id`,
//!   `$comment`, `format`, `strict`, `deprecated`, `readOnly`, `writeOnly`.
//! - Every other keyword is an error naming it and its JSON Pointer, e.g.
//!   ``unsupported JSON Schema keyword `pattern` at /properties/x``: silently ignoring an
//!   assertion would let the model produce output that violates the schema.
//!
//! A schema with no document within the nesting limit (e.g. `false`, `{"enum": []}`,
//! `{"$ref": "#"}`) is an error. Parts of a schema that cannot be satisfied (an optional
//! property whose schema accepts nothing, a branch too deep to complete) are never entered,
//! so the matcher never reaches a state with no completion.
//!
//! # Limits
//!
//! Schemas are untrusted input. Compilation bounds subschema nesting (64), the number of
//! grammar nodes (20,000), `enum`/`const` bytes (1 MiB) and nesting inside those values
//! (64). At run time a matcher keeps at most 64 alternative parses and each node at most
//! 256 alternatives; beyond these caps alternatives are dropped, which only narrows the
//! accepted language.

mod error;
mod grammar;
mod matcher;
mod schema;
mod token_index;

pub use error::GrammarError;
pub use grammar::{Grammar, GrammarOptions};
pub use matcher::Matcher;
pub use token_index::TokenIndex;

#[cfg(test)]
mod tests;
