//! Constrained decoding: a language the output must stay a prefix of (a JSON schema, a forced
//! tool call), seen by the engine through two small traits.

/// A language over bytes (immutable, shared between requests).
pub trait Constraint: Send + Sync + std::fmt::Debug {
    /// A matcher at the start of the output.
    fn matcher(&self) -> Box<dyn ConstraintMatcher>;
}

/// The state of one output within a [`Constraint`].
pub trait ConstraintMatcher: Send {
    /// Whether appending `bytes` keeps the output a valid prefix (the state is unchanged).
    fn accepts(&self, bytes: &[u8]) -> bool;
    /// Appends `bytes`; `false` (and the state unchanged) if they do not fit.
    fn accept(&mut self, bytes: &[u8]) -> bool;
    /// The output so far is a complete document.
    fn is_complete(&self) -> bool;
    /// Some non-empty continuation exists.
    fn can_continue(&self) -> bool;
    /// `allowed[id]` = whether token `id` (by its bytes) keeps the output a valid prefix; special
    /// tokens and ids without bytes are never allowed.
    fn allowed(&self, allowed: &mut [bool]);
}
