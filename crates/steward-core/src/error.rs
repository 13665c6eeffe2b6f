//! The one validation error type of the domain: which input field was wrong, and how to fix it.

/// A rejected input value. `param` names the field as the user wrote it (`model.name`,
/// `metadata.team`), `message` says what was wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ValidationError {
    pub param: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: param.into(), message: message.into() }
    }
}
