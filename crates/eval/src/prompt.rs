//! Turning task text into token ids: a plain completion prompt (BOS when the tokenizer adds one,
//! then the text) or one user turn in the model's chat format ending with the assistant header.

use llama31_chat::{ChatFormatter, Message, PromptOptions};
use llama31_tokenizer::Tokenizer;

use crate::error::{EvalError, Result};

/// The `Today Date` written into Llama 3.1 system prompts (the official template's default), so
/// chat prompts do not depend on the day of the run.
pub const FIXED_DATE: &str = "26 Jul 2024";

/// Builds prompts for one model.
pub struct Prompter<'a> {
    tokenizer: &'a Tokenizer,
    chat: Option<&'a ChatFormatter>,
    options: PromptOptions,
}

impl std::fmt::Debug for Prompter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompter")
            .field("chat", &self.chat)
            .finish_non_exhaustive()
    }
}

impl<'a> Prompter<'a> {
    /// Plain completion prompts.
    pub fn plain(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            chat: None,
            options: Self::chat_options(),
        }
    }

    /// Chat prompts in `format`.
    pub fn chat(tokenizer: &'a Tokenizer, format: &'a ChatFormatter) -> Self {
        Self {
            tokenizer,
            chat: Some(format),
            options: Self::chat_options(),
        }
    }

    fn chat_options() -> PromptOptions {
        PromptOptions {
            date: Some(FIXED_DATE.to_string()),
            ..PromptOptions::default()
        }
    }

    /// Whether prompts are chat turns.
    pub fn is_chat(&self) -> bool {
        self.chat.is_some()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &'a Tokenizer {
        self.tokenizer
    }

    /// `text` as the whole prompt: a completion prompt (BOS + text, special-token look-alikes
    /// kept as text), or in chat mode one user message followed by the assistant header and
    /// then `assistant_prefix` (tokenized on its own; may be empty).
    pub fn prompt(&self, text: &str, assistant_prefix: &str) -> Result<Vec<u32>> {
        let mut ids = match self.chat {
            None => {
                let mut ids = Vec::new();
                if self.tokenizer.add_bos() {
                    if let Some(b) = self.tokenizer.bos_id() {
                        ids.push(b);
                    }
                }
                ids.extend(self.tokenizer.encode(text, false));
                return Ok(ids);
            }
            Some(format) => {
                format
                    .render(
                        self.tokenizer,
                        &[Message::user(text)],
                        Some(&self.options),
                        true,
                    )
                    .map_err(|e| EvalError::Chat(e.to_string()))?
                    .ids
            }
        };
        ids.extend(self.tokenizer.encode(assistant_prefix, false));
        Ok(ids)
    }

    /// The id of `text` when it is exactly one token.
    pub fn single_token(&self, text: &str) -> Option<u32> {
        match self.tokenizer.encode(text, false)[..] {
            [id] => Some(id),
            _ => None,
        }
    }
}
