//! The error type of the chat crate.

/// Everything that can go wrong while parsing, preparing, encoding or templating a dialog.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// The messages (or tools) text is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A message has a role that is none of system, user, assistant, tool (ipython).
    #[error("unknown role {0:?} (expected system, user, assistant, tool or ipython)")]
    UnknownRole(String),
    /// A required field is missing.
    #[error("message {index}: missing field `{field}`")]
    MissingField { index: usize, field: &'static str },
    /// A message has no content where one is required.
    #[error("message {index} ({role}): missing content")]
    MissingContent { index: usize, role: String },
    /// A field has the wrong JSON type.
    #[error("{context}: field `{field}` must be {expected}")]
    WrongType {
        context: String,
        field: &'static str,
        expected: &'static str,
    },
    /// A content part that this crate cannot encode (e.g. an image).
    #[error("message {index}: unsupported content part {kind:?}")]
    UnsupportedContent { index: usize, kind: String },
    /// A tool call that cannot be written (e.g. a builtin call without `query`).
    #[error("invalid tool call: {0}")]
    InvalidToolCall(String),
    /// A tool definition that cannot be used.
    #[error("invalid tool definition: {0}")]
    InvalidTool(String),
    /// The tokenizer lacks a special token the format needs.
    #[error("tokenizer has no special token {0}")]
    MissingSpecialToken(String),
    /// Tools were to be put in the first user message but there is none.
    #[error("cannot put tools in the first user message when there is no first user message")]
    NoUserMessage,
    /// The dialog cannot be prepared as asked.
    #[error("invalid dialog: {0}")]
    InvalidDialog(String),
    /// A template failed to parse.
    #[error("template syntax error: {0}")]
    TemplateSyntax(String),
    /// A template failed while rendering.
    #[error("template render error: {0}")]
    TemplateRender(String),
    /// A template called `raise_exception(msg)`.
    #[error("template raised an exception: {0}")]
    TemplateException(String),
    /// A template used up its fuel (too many instructions).
    #[error("template ran out of fuel (too many steps)")]
    TemplateOutOfFuel,
    /// A template recursed too deeply.
    #[error("template recursion limit exceeded")]
    TemplateRecursion,
    /// The model's files (GGUF metadata, `tokenizer_config.json`, ...) could not be read.
    #[error("cannot read the model's chat template: {0}")]
    ModelFiles(String),
    /// The model (at the path given) has no chat template and is not a Llama 3 model.
    #[error("{0} has no chat template and is not a Llama 3 model")]
    NoChatFormat(String),
    /// A template's output (or a value it built) grew past the limit.
    #[error("template output exceeds {limit} bytes")]
    TemplateOutputTooLarge { limit: usize },
}

/// Result alias of this crate.
pub type Result<T, E = ChatError> = std::result::Result<T, E>;
