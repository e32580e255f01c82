//! The request log tests read to check what a client did (which verb on which resource, with
//! which field manager and patch type), without a proxy in between.

/// One request to a resource endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status` or `scale`.
    pub subresource: Option<String>,
    /// The `fieldManager` query parameter, when given.
    pub field_manager: Option<String>,
    /// For patches: `merge`, `json`, `strategic` or `apply`.
    pub patch_type: Option<String>,
    /// The HTTP status code of the answer (for watches: of the response head).
    pub code: u16,
}

impl std::fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        write!(
            f,
            "{} {} {}{} ns={} name={} sub={} manager={} patch={} -> {}",
            self.verb,
            if self.group.is_empty() {
                "core"
            } else {
                &self.group
            },
            self.version,
            format_args!("/{}", self.resource),
            opt(&self.namespace),
            opt(&self.name),
            opt(&self.subresource),
            opt(&self.field_manager),
            opt(&self.patch_type),
            self.code
        )
    }
}

impl RequestRecord {
    /// Whether this is `verb` on `resource` (plural), ignoring the rest.
    pub fn is(&self, verb: &str, resource: &str) -> bool {
        self.verb == verb && self.resource == resource
    }
}
