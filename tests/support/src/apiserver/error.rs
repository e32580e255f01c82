//! Errors the server answers with, rendered as a Kubernetes `Status` so kube-rs and kubectl
//! read them exactly as they read a real API server's.

use serde_json::{Value, json};

/// A failed request. Each variant maps to the HTTP code and `reason` the real server uses.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404: the object (or resource type) does not exist.
    #[error("{message}")]
    NotFound { message: String, details: Value },
    /// 409 AlreadyExists: create of a name that is taken.
    #[error("{message}")]
    AlreadyExists { message: String, details: Value },
    /// 409 Conflict: stale resourceVersion, failed precondition or server-side apply conflict.
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// 410 Gone: the resourceVersion asked for is older than the kept history.
    #[error("{message}")]
    Gone { message: String },
    /// 400: a request the server cannot decode or that contradicts itself.
    #[error("{message}")]
    BadRequest { message: String },
    /// 403: refused regardless of the object (e.g. creating in a terminating namespace).
    #[error("{message}")]
    Forbidden { message: String },
    /// 405: a verb the resource does not support.
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// 415: a patch content type the server does not know, or a protobuf body it cannot read.
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// 422: the object failed validation; `causes` name each bad field.
    #[error("{message}")]
    Invalid { message: String, details: Value },
}

impl ApiError {
    /// `<plural>.<group> "<name>" not found`, as the real server words it.
    pub fn not_found(group: &str, plural: &str, kind: &str, name: &str) -> Self {
        ApiError::NotFound {
            message: format!("{} \"{name}\" not found", qualified(plural, group)),
            details: json!({"name": name, "group": group, "kind": plural_or_kind(plural, kind)}),
        }
    }

    /// `<plural>.<group> "<name>" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::AlreadyExists {
            message: format!("{} \"{name}\" already exists", qualified(plural, group)),
            details: json!({"name": name, "group": group, "kind": plural}),
        }
    }

    /// The optimistic-concurrency failure every controller retries on.
    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(plural, group)
            ),
            details: json!({"name": name, "group": group, "kind": plural}),
        }
    }

    /// A 400 with the given message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Gone { .. } => 410,
            ApiError::BadRequest { .. } => 400,
            ApiError::Forbidden { .. } => 403,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Invalid { .. } => 422,
        }
    }

    /// The metav1 `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Gone { .. } => "Expired",
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
        }
    }

    /// The error as a `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        match self {
            ApiError::NotFound { details, .. }
            | ApiError::AlreadyExists { details, .. }
            | ApiError::Conflict { details, .. }
            | ApiError::Invalid { details, .. } => status["details"] = details.clone(),
            _ => {}
        }
        status
    }
}

/// `jobqueues.jobqueue.io`, or just `secrets` for the core group.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn plural_or_kind<'a>(plural: &'a str, kind: &'a str) -> &'a str {
    if plural.is_empty() { kind } else { plural }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_code_reason_and_details() {
        let e = ApiError::stale("jobqueue.io", "jobqueues", "q");
        let s = e.status();
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(s["details"]["name"], "q");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .starts_with("Operation cannot be fulfilled on jobqueues.jobqueue.io \"q\"")
        );
        let nf = ApiError::not_found("", "secrets", "Secret", "s").status();
        assert_eq!(nf["message"], "secrets \"s\" not found");
        assert_eq!(nf["code"], 404);
    }
}
