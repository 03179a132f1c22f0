//! An error and its causes on one line, each cause once.

/// `err` and its causes joined by ": ", as `{:#}` prints them, except that a cause whose text
/// the line already holds is left out: library errors often print their source themselves
/// (`cannot read PATH: No such file or directory`), and the chain would repeat it.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;
    use anyhow::Context;

    #[test]
    fn causes_already_in_the_text_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        #[derive(Debug)]
        struct ReadError {
            source: std::io::Error,
        }
        impl std::fmt::Display for ReadError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot read x.json: {}", self.source)
            }
        }
        impl std::error::Error for ReadError {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let err = Err::<(), _>(ReadError { source: io })
            .context("loading the tokenizer")
            .unwrap_err();
        assert_eq!(
            error_line(&err),
            "loading the tokenizer: cannot read x.json: No such file or directory"
        );
        let plain = Err::<(), _>(anyhow::anyhow!("inner"))
            .context("outer")
            .unwrap_err();
        assert_eq!(error_line(&plain), "outer: inner");
    }
}
