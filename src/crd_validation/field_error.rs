//! A validation error about one field, shaped like the Kubernetes API server's field errors so
//! that the schema layer, the semantic layer, the test API server and local mode all report bad
//! input the same way: `spec.schedule: Invalid value: "61 * * * *": minute field: 61 is out of range 0-59`.

use std::fmt;

/// What is wrong with the field (the Kubernetes `field.ErrorType` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The value is present but not allowed.
    Invalid,
    /// A required field is missing.
    Required,
    /// An enum value outside the allowed set.
    Unsupported,
    /// A field that must not be set (or an unknown field under strict validation).
    Forbidden,
    /// A string or list longer than allowed.
    TooLong,
    /// A list with more items than allowed.
    TooMany,
    /// A field that is not part of the schema.
    Unknown,
    /// A list entry that repeats another (list-type set, or the keys of a list-type map).
    Duplicate,
}

impl FieldErrorKind {
    /// The phrase the API server prints for this kind.
    pub fn phrase(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Unsupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Unknown => "Unknown field",
            FieldErrorKind::Duplicate => "Duplicate value",
        }
    }

    /// The `reason` of a `StatusCause` (metav1.CauseType) for this kind.
    pub fn cause_type(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Unsupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Unknown => "FieldValueUnknown",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One bad field: where, what kind of problem, the bad value (as JSON text, if any) and what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Path in Kubernetes style: `spec.scaling.maxReplicas`, `spec.workers.template.spec.containers[0]`.
    pub field: String,
    /// The kind of problem.
    pub kind: FieldErrorKind,
    /// The offending value rendered as JSON (`"Fast"`, `-1`), when there is one.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    /// A field error of any kind.
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind,
            value,
            message: message.into(),
        }
    }

    /// `Invalid value` with the offending value shown as a JSON string.
    pub fn invalid(field: impl Into<String>, value: &str, message: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(quote(value)), message)
    }

    /// `Required value`.
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, message)
    }
}

/// A string rendered the way the API server shows a bad string value.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.phrase())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Joins several field errors the way the API server does in a 422 message: `[a, b]` for
/// more than one.
pub fn join(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_api_server() {
        let e = FieldError::invalid(
            "spec.schedule",
            "61 * * * *",
            "minute field: 61 is out of range 0-59",
        );
        assert_eq!(
            e.to_string(),
            r#"spec.schedule: Invalid value: "61 * * * *": minute field: 61 is out of range 0-59"#
        );
        let r = FieldError::required("spec.queueRef", "");
        assert_eq!(r.to_string(), "spec.queueRef: Required value");
        assert_eq!(join(&[e.clone(), r.clone()]), format!("[{e}, {r}]"));
    }
}
