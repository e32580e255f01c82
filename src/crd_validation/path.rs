//! Field paths in the API server's notation (`spec.workers.template.spec.containers[0].name`),
//! so every error names the field the way `kubectl` users read it.

/// The path of property `name` below `parent`.
pub(super) fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// The path of item `i` of the list at `parent`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The value at `path` (as built by [`child`] and [`index`]) inside `root`, if present.
pub(super) fn lookup<'a>(root: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut cur = root;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.strip_suffix(']')?;
            cur = match idx.parse::<usize>() {
                Ok(i) => cur.get(i)?,
                // `['key']` style from CEL field paths.
                Err(_) => cur.get(idx.trim_matches('\''))?,
            };
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_kubernetes_style_paths() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "scaling"), "spec.scaling");
        let containers = child("spec.template.spec", "containers");
        assert_eq!(
            child(&index(&containers, 0), "name"),
            "spec.template.spec.containers[0].name"
        );
    }

    #[test]
    fn looks_up_values_by_path() {
        let v = json!({"spec": {"c": [{"name": "a"}, {"name": "b"}], "m": {"k": 1}}});
        assert_eq!(lookup(&v, "spec.c[1].name"), Some(&json!("b")));
        assert_eq!(lookup(&v, "spec.m['k']"), Some(&json!(1)));
        assert_eq!(lookup(&v, ""), Some(&v));
        assert_eq!(lookup(&v, "spec.c[2]"), None);
        assert_eq!(lookup(&v, "spec.nope"), None);
    }
}
