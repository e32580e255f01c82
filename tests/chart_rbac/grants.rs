//! The chart's RBAC resolved for the operator's ServiceAccount, and what each request the
//! operator made needs from it.

use std::collections::BTreeSet;

use jobqueue_test_support::apiserver::RequestRecord;
use jobqueue_test_support::helm;
use serde_json::Value;

/// One permission a request needs: verb, API group, resource (`plural` or `plural/sub`),
/// namespace (`None`: all namespaces or cluster-scoped) and object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// What RBAC checks for a request. A server-side apply that creates its object is authorized
/// as `create` as well as `patch` by Kubernetes (the test server does no authorization, but
/// answers 201 in that case, as the real one does).
pub fn needs(r: &RequestRecord) -> Vec<Need> {
    let need = |verb: &str| Need {
        verb: verb.to_string(),
        group: r.group.clone(),
        resource: full_resource(&r.resource, &r.subresource),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    let mut out = vec![need(&r.verb)];
    if r.verb == "patch" && r.patch_type.as_deref() == Some("apply") && r.code == 201 {
        out.push(need("create"));
    }
    out
}

/// A rule granted to the operator's ServiceAccount, where it applies (`None`: every namespace
/// and cluster-scoped requests), and the role it came from.
pub struct Grant {
    namespace: Option<String>,
    role: String,
    rule: Value,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule bound to the ServiceAccount `sa` in `sa_ns`, resolved through the bindings.
pub fn grants(r: &helm::Rendered, sa: &str, sa_ns: &str) -> Vec<Grant> {
    let binds_us = |b: &Value| {
        b["subjects"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            })
        })
    };
    let mut out = Vec::new();
    for b in r
        .of_kind("ClusterRoleBinding")
        .chain(r.of_kind("RoleBinding"))
    {
        if !binds_us(b) {
            continue;
        }
        let namespace = b["metadata"]["namespace"].as_str().map(str::to_string);
        let role_kind = b["roleRef"]["kind"].as_str().unwrap();
        let role_name = b["roleRef"]["name"].as_str().unwrap();
        let role = r
            .of_kind(role_kind)
            .find(|o| {
                o["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || o["metadata"]["namespace"] == b["metadata"]["namespace"])
            })
            .unwrap_or_else(|| panic!("{role_kind} {role_name} is bound but not rendered"));
        for rule in role["rules"].as_array().unwrap() {
            out.push(Grant {
                namespace: namespace.clone(),
                role: format!("{role_kind}/{role_name}"),
                rule: rule.clone(),
            });
        }
    }
    out
}

/// Whether `rule` allows `verb` on `group`/`resource[/sub]` (named `name`), as RBAC decides.
fn allows(rule: &Value, verb: &str, group: &str, resource: &str, name: Option<&str>) -> bool {
    let has = |field: &str, want: &str| strings(&rule[field]).iter().any(|v| v == want || v == "*");
    let sub_wildcard = resource
        .split_once('/')
        .is_some_and(|(_, sub)| strings(&rule["resources"]).contains(&format!("*/{sub}")));
    let names = strings(&rule["resourceNames"]);
    has("verbs", verb)
        && has("apiGroups", group)
        && (has("resources", resource) || sub_wildcard)
        && (names.is_empty() || name.is_some_and(|n| names.iter().any(|x| x == n)))
}

fn full_resource(resource: &str, sub: &Option<String>) -> String {
    match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    }
}

/// Every request the operator made is granted; what it needed is printed.
pub fn assert_granted(needed: &BTreeSet<Need>, grants: &[Grant]) {
    println!("the operator needed (verb group resource[/sub] namespace):");
    let mut printed = BTreeSet::new();
    let mut missing = Vec::new();
    for n in needed {
        let namespace = n.namespace.as_deref().unwrap_or("(all namespaces)");
        let line = format!("{} {:?} {} in {namespace}", n.verb, n.group, n.resource);
        let granted = grants.iter().any(|g| {
            (g.namespace.is_none() || g.namespace == n.namespace)
                && allows(&g.rule, &n.verb, &n.group, &n.resource, n.name.as_deref())
        });
        if !granted {
            missing.push(line.clone());
        }
        if printed.insert(line.clone()) {
            println!("  {line}");
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "the chart's RBAC does not grant what the operator does:\n  {}",
        missing.join("\n  ")
    );
}

/// Everything granted that the operator never did: candidates for removal (or paths the
/// scenario does not reach, such as scaleTargetRef kinds other than Deployment).
pub fn print_unused(grants: &[Grant], needed: &BTreeSet<Need>) {
    println!("granted but never used by the operator in this scenario:");
    let mut unused = 0;
    for g in grants {
        for group in strings(&g.rule["apiGroups"]) {
            for res in strings(&g.rule["resources"]) {
                for verb in strings(&g.rule["verbs"]) {
                    let used = needed.iter().any(|n| {
                        (g.namespace.is_none() || g.namespace == n.namespace)
                            && n.verb == verb
                            && n.group == group
                            && n.resource == res
                    });
                    if !used {
                        unused += 1;
                        println!(
                            "  {verb} {group:?} {res} ({}{})",
                            g.role,
                            g.namespace
                                .as_deref()
                                .map(|n| format!(" in {n}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    if unused == 0 {
        println!("  (none)");
    }
}
