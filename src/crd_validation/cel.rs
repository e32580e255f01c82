//! `x-kubernetes-validations` (CEL rules), evaluated client-side by kube's CEL engine
//! (`kube::core::cel`, the kube-cel crate) and reported as the API server reports them:
//! `spec.scaling: Invalid value: "object": maxReplicas must be >= minReplicas`; and the checks
//! the API server makes of the rules themselves when a CRD is created (they compile, and use only
//! the variables it declares).

use std::collections::BTreeSet;

use kube::core::cel::{
    ErrorKind, ValidationError, Validator,
    cel::{
        Program,
        common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr},
    },
    compile_schema,
};
use serde_json::{Value, json};

use super::{FieldError, FieldErrorKind};
use super::{path, schema, validate};

thread_local! {
    // Registering every Kubernetes CEL function is not free; do it once per thread.
    static VALIDATOR: Validator = Validator::new();
}

/// One failed rule. `unevaluable` is set when the rule could not run at all (for example it read
/// a field that is absent or malformed), rather than evaluating to false.
pub(super) struct RuleError {
    pub error: FieldError,
    pub unevaluable: bool,
}

/// Evaluates every rule of `schema` against `object` (already pruned and defaulted). With `old`,
/// transition rules (`oldSelf`) run wherever the old object has a value at the same path.
pub(super) fn evaluate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<RuleError> {
    // No root context (`kind`, `apiVersion` as free variables): the API server declares only
    // `self` and `oldSelf`, so rules read `self.kind` there and here alike.
    let result = VALIDATOR.with(|v| v.validate(schema, object, old));
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| RuleError {
                error: to_field_error(e, object),
                unevaluable: e.kind != ErrorKind::ValidationFailure,
            })
            .collect(),
    }
}

fn to_field_error(e: &ValidationError, object: &Value) -> FieldError {
    let at = validate::field(&e.field_path);
    // The API server shows the type of the value the rule is about, not the value.
    let type_name = path::lookup(object, &e.field_path)
        .map(schema::json_type)
        .unwrap_or("object");
    let shown = Some(format!("\"{type_name}\""));
    if e.kind != ErrorKind::ValidationFailure {
        // Evaluation errors (no such key, unsupported function) reject the object too.
        return FieldError::new(at, FieldErrorKind::Invalid, shown, e.message.clone());
    }
    match e.reason.as_deref() {
        Some("FieldValueRequired") => FieldError::required(at, e.message.clone()),
        Some("FieldValueDuplicate") => {
            FieldError::new(at, FieldErrorKind::Duplicate, shown, e.message.clone())
        }
        Some("FieldValueForbidden") => {
            FieldError::new(at, FieldErrorKind::Forbidden, None, e.message.clone())
        }
        _ => FieldError::new(at, FieldErrorKind::Invalid, shown, e.message.clone()),
    }
}

/// Every CEL rule must compile, as the API server compiles them when the CRD is created.
pub(super) fn rule_problems(rules: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(list) = rules.as_array() else {
        problems.push(format!(
            "{at}.{}: Invalid value: must be a list of rules",
            schema::VALIDATIONS
        ));
        return;
    };
    for (i, rule) in list.iter().enumerate() {
        if rule
            .get("rule")
            .and_then(Value::as_str)
            .is_none_or(|r| r.trim().is_empty())
        {
            problems.push(format!(
                "{at}.{}[{i}].rule: Required value",
                schema::VALIDATIONS
            ));
            continue;
        }
        let compiled = compile_schema(&json!({ schema::VALIDATIONS: [rule] }));
        for e in compiled.compilation_errors() {
            problems.push(format!(
                "{at}.{}[{i}].rule: Invalid value: {e}",
                schema::VALIDATIONS
            ));
        }
        for var in
            undeclared_variables(rule.get("rule").and_then(Value::as_str).unwrap_or_default())
        {
            problems.push(format!(
                "{at}.{}[{i}].rule: Invalid value: undeclared reference to '{var}' (only self and oldSelf are declared)",
                schema::VALIDATIONS
            ));
        }
    }
}

/// The free variables of a rule other than `self` and `oldSelf`, the only ones the API server
/// declares for CRD rules. Comprehension variables (`self.all(x, ...)`) are bound by their macro,
/// and type names and function namespaces (`int`, `sets.contains`) are not variables.
fn undeclared_variables(rule: &str) -> Vec<String> {
    let Ok(program) = Program::compile(rule) else {
        return Vec::new();
    };
    let mut free = BTreeSet::new();
    free_identifiers(program.expression(), &mut Vec::new(), &mut free);
    free.into_iter()
        .filter(|v| !DECLARED.contains(&v.as_str()))
        .collect()
}

/// Identifiers a CRD rule may use without declaring them.
const DECLARED: &[&str] = &[
    "self",
    "oldSelf",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "type",
    "null_type",
    "dyn",
    "optional",
    "sets",
    "math",
    "strings",
    "base64",
];

fn free_identifiers(e: &IdedExpr, bound: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                out.insert(name.clone());
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_identifiers(target, bound, out);
            }
            for arg in &call.args {
                free_identifiers(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_identifiers(&c.iter_range, bound, out);
            free_identifiers(&c.accu_init, bound, out);
            let scope = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                free_identifiers(part, bound, out);
            }
            bound.truncate(scope);
        }
        Expr::List(list) => list
            .elements
            .iter()
            .for_each(|x| free_identifiers(x, bound, out)),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|x| entry_identifiers(x, bound, out)),
        Expr::Struct(st) => st
            .entries
            .iter()
            .for_each(|x| entry_identifiers(x, bound, out)),
        Expr::Select(sel) => free_identifiers(&sel.operand, bound, out),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entry_identifiers(e: &IdedEntryExpr, bound: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match &e.expr {
        EntryExpr::MapEntry(m) => {
            free_identifiers(&m.key, bound, out);
            free_identifiers(&m.value, bound, out);
        }
        EntryExpr::StructField(f) => free_identifiers(&f.value, bound, out),
    }
}
