//! The error type of the grammar crate.

/// Why a JSON Schema cannot be compiled into a [`Grammar`](crate::Grammar).
///
/// Every variant that concerns a place in the schema carries that place as a JSON Pointer
/// (RFC 6901) into the schema document, e.g. `/properties/location`; the schema root is
/// shown as `the schema root`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// A keyword this crate does not implement (and that is not a pure annotation).
    ///
    /// Such keywords are rejected rather than ignored: ignoring an assertion would let the
    /// model produce output that violates the schema.
    #[error("unsupported JSON Schema keyword `{keyword}` at {}", show(pointer))]
    UnsupportedKeyword {
        /// The keyword as written in the schema.
        keyword: String,
        /// Where the schema object holding the keyword is.
        pointer: String,
    },
    /// A supported keyword used in a way this crate does not implement, e.g. `allOf` with
    /// several members or `anyOf` next to `type`.
    #[error("unsupported JSON Schema construct at {}: {message}", show(pointer))]
    Unsupported {
        /// Where the schema object is.
        pointer: String,
        /// What is not supported.
        message: String,
    },
    /// `type` names something other than the seven JSON Schema types.
    #[error("unknown JSON Schema type `{name}` at {}", show(pointer))]
    UnknownType {
        /// The type name as written.
        name: String,
        /// Where the schema object is.
        pointer: String,
    },
    /// A keyword has a value of the wrong shape (e.g. `required` is not an array of strings).
    #[error("invalid JSON Schema at {}: {message}", show(pointer))]
    InvalidSchema {
        /// Where the offending schema object is.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// A `$ref` that is not a local reference or points nowhere.
    #[error("cannot resolve `$ref` `{reference}` at {}: {message}", show(pointer))]
    BadRef {
        /// The reference as written.
        reference: String,
        /// Where the schema object holding the `$ref` is.
        pointer: String,
        /// Why it cannot be resolved.
        message: String,
    },
    /// Subschemas (or `enum`/`const` values) nested deeper than the compile-time limit.
    #[error("JSON Schema nested deeper than {limit} levels at {}", show(pointer))]
    TooDeep {
        /// Where the limit was exceeded.
        pointer: String,
        /// The limit.
        limit: usize,
    },
    /// The schema is larger than the compile-time limits allow.
    #[error("JSON Schema too large: {message}")]
    TooLarge {
        /// Which limit was exceeded.
        message: String,
    },
    /// No JSON document satisfies the schema within the nesting limit (e.g. `false`, an
    /// empty `enum`, `{"$ref": "#"}`, or a property that requires itself).
    #[error("the JSON Schema accepts no document with at most {max_depth} levels of nesting")]
    Unsatisfiable {
        /// The nesting limit the grammar was compiled with.
        max_depth: u32,
    },
}

fn show(pointer: &str) -> &str {
    if pointer.is_empty() {
        "the schema root"
    } else {
        pointer
    }
}
