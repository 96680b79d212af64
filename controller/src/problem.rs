//! What is wrong with a piece of declared input, and what to do about it. Pure.

use std::fmt;

/// A problem found by a validator: what is wrong and, where one helps, a hint. A
/// `manifest::Diagnostic` places it in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

/// Separates message and hint in the text a serde error carries. Manifest text cannot put it
/// there: validators quote values with `{:?}`, which escapes control characters.
const HINT_SEPARATOR: char = '\u{1f}';

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The problem as the text of a serde error. Validators inside a deserializer (where
    /// serde_yaml still knows the value's position) can only return text; `from_serde`
    /// reads it back.
    pub(crate) fn to_serde(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{}{HINT_SEPARATOR}{hint}", self.message),
            None => self.message.clone(),
        }
    }

    /// The inverse of `to_serde`, for a serde error's text (which may have a prefix, such as
    /// the path of the field, before the message).
    pub(crate) fn from_serde(text: &str) -> Self {
        match text.split_once(HINT_SEPARATOR) {
            Some((message, hint)) => Problem::new(message).hint(hint),
            None => Problem::new(text),
        }
    }

    /// As a serde error, to return from a visitor.
    pub(crate) fn into_serde<E: serde::de::Error>(self) -> E {
        E::custom(self.to_serde())
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem::new(message)
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        Problem::new(message)
    }
}

/// The message, then the hint on its own line.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_crosses_serde_with_its_hint() {
        let p = Problem::new("invalid mode \"9\"").hint("e.g. mode: \"0644\"");
        assert_eq!(Problem::from_serde(&p.to_serde()), p);
        let prefixed = format!("files./etc/a.mode: {}", p.to_serde());
        let back = Problem::from_serde(&prefixed);
        assert_eq!(back.message, "files./etc/a.mode: invalid mode \"9\"");
        assert_eq!(back.hint.as_deref(), Some("e.g. mode: \"0644\""));
        let plain = Problem::new("no hint");
        assert_eq!(Problem::from_serde(&plain.to_serde()), plain);
    }

    #[test]
    fn a_quoted_value_cannot_forge_a_hint() {
        let value = "x\u{1f}run this";
        let p = Problem::new(format!("invalid mode {value:?}"));
        assert_eq!(Problem::from_serde(&p.to_serde()).hint, None);
    }
}
