//! Label and field selectors (pure): parsing the query-string forms and matching objects.
//!
//! Label selectors support the whole set-based grammar (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`). Field selectors support `=`, `==` and `!=` on any dotted path
//! of the object (the real server allows only a few fields per resource; this one is more
//! lenient, so a selector the real server rejects can pass here).

use std::collections::BTreeMap;

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

/// A selector the server cannot parse; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn key(k: &str, whole: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    if valid_key(k) {
        Ok(k.to_string())
    } else {
        Err(SelectorError(format!("{whole:?}: invalid label key {k:?}")))
    }
}

fn set_values(s: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("{whole:?}: expected a (value, ...) set")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn requirement(r: &str) -> Result<Requirement, SelectorError> {
    let t = r.trim();
    if let Some(k) = t.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(k, r)?));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k, r)?, v.trim().into()));
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return Ok(Requirement::Equals(key(k, r)?, v.trim().into()));
    }
    if let Some((k, rest)) = t.split_once(char::is_whitespace) {
        let rest = rest.trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(key(k, r)?, set_values(set, r)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(Requirement::In(key(k, r)?, set_values(set, r)?));
        }
        return Err(SelectorError(format!(
            "{r:?}: expected one of =, ==, !=, in, notin"
        )));
    }
    Ok(Requirement::Exists(key(t, r)?))
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        split_top(s)
            .into_iter()
            .map(requirement)
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// The labels of an object (`metadata.labels`), non-strings ignored.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A parsed field selector: `(path, value, equal?)` terms, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(pub Vec<(String, String, bool)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        s.split(',')
            .map(|term| {
                let (path, value, eq) = if let Some((p, v)) = term.split_once("!=") {
                    (p, v, false)
                } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('='))
                {
                    (p, v, true)
                } else {
                    return Err(SelectorError(format!(
                        "{term:?}: a field selector term is <field>=<value> or <field>!=<value>"
                    )));
                };
                let path = path.trim();
                if path.is_empty() {
                    return Err(SelectorError(format!("{term:?}: empty field name")));
                }
                Ok((path.to_string(), value.trim().to_string(), eq))
            })
            .collect::<Result<_, _>>()
            .map(FieldSelector)
    }

    /// Whether the object's fields satisfy every term (a missing field reads as "").
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, value, eq)| {
            let actual = path
                .split('.')
                .try_fold(obj, |v, k| v.get(k))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_requirement_form() {
        let s = LabelSelector::parse("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g").unwrap();
        assert_eq!(
            s.0,
            vec![
                Requirement::Equals("a".into(), "1".into()),
                Requirement::Equals("b".into(), "2".into()),
                Requirement::NotEquals("c".into(), "3".into()),
                Requirement::In("d".into(), vec!["x".into(), "y".into()]),
                Requirement::NotIn("e".into(), vec!["z".into()]),
                Requirement::Exists("f".into()),
                Requirement::NotExists("g".into()),
            ]
        );
    }

    #[test]
    fn matching_follows_kubernetes_semantics() {
        let l = labels(&[("app", "w"), ("tier", "back")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m(""));
        assert!(m("app=w"));
        assert!(!m("app=x"));
        assert!(m("app!=x"));
        assert!(m("missing!=x"), "!= matches objects without the key");
        assert!(m("tier in (front,back)"));
        assert!(!m("tier notin (back)"));
        assert!(
            m("missing notin (back)"),
            "notin matches objects without the key"
        );
        assert!(!m("missing in (back)"));
        assert!(m("app,!missing"));
        assert!(!m("app=w,tier=front"));
        assert!(m("app.kubernetes.io/name!=x"));
    }

    #[test]
    fn bad_label_selectors_are_errors_naming_the_term() {
        let e = LabelSelector::parse("a b c").unwrap_err();
        assert!(e.0.contains("a b c"), "{e}");
        assert!(LabelSelector::parse("x in y").is_err());
        assert!(LabelSelector::parse("=v").is_err());
    }

    #[test]
    fn field_selectors_match_dotted_paths() {
        let ev = json!({"metadata": {"name": "e", "namespace": "d"},
                        "involvedObject": {"kind": "JobQueue", "name": "q"}, "count": 2});
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&ev);
        assert!(m("involvedObject.kind=JobQueue,involvedObject.name=q"));
        assert!(m("metadata.name==e"));
        assert!(!m("metadata.name!=e"));
        assert!(m("count=2"));
        assert!(m("spec.nodeName="), "missing fields read as empty");
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
            proptest::collection::btree_map("[a-c]", "[x-z]", 0..3)
        }

        proptest! {
            /// Each operator means what its set-based equivalent means, and negations negate.
            #[test]
            fn operators_agree_with_their_definitions(
                labels in label_set(), k in "[a-c]", v in "[x-z]", w in "[x-z]"
            ) {
                let m = |s: String| LabelSelector::parse(&s).unwrap().matches(&labels);
                let value = labels.get(&k);
                prop_assert_eq!(m(format!("{k}={v}")), value == Some(&v));
                prop_assert_eq!(m(format!("{k}=={v}")), m(format!("{k}={v}")));
                prop_assert_eq!(m(format!("{k}!={v}")), !m(format!("{k}={v}")));
                prop_assert_eq!(m(format!("{k} in ({v})")), m(format!("{k}={v}")));
                prop_assert_eq!(m(format!("{k} notin ({v},{w})")), !m(format!("{k} in ({v},{w})")));
                prop_assert_eq!(m(format!("!{k}")), !m(k.clone()));
                prop_assert_eq!(m(k.clone()), value.is_some());
                prop_assert_eq!(
                    m(format!("{k}={v},!{k}")),
                    false,
                    "a key cannot be both present with a value and absent"
                );
            }
        }
    }
}
