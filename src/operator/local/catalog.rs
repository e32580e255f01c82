//! The set of resources local mode runs, built from every file's contents. Like a cluster, an
//! edit that fails validation is not applied: the last valid version of that resource keeps
//! running (an API server would have rejected the edit), and so does everything in a file that
//! stopped being valid YAML. Only a resource that is no longer declared at all is removed.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::manifest::{Declared, FileContents, QueueDecl, ResourceRef, ScheduleDecl};
use crate::operator::runtime::ObjectId;

/// The resources to run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    pub queues: BTreeMap<ObjectId, QueueDecl>,
    pub schedules: BTreeMap<ObjectId, ScheduleDecl>,
}

/// What a person should read after the files changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Findings {
    /// Errors: bad fields, unreadable files, duplicates, schedules without their queue.
    pub errors: Vec<String>,
    /// Notes: ignored documents, last valid versions kept.
    pub notes: Vec<String>,
}

/// Builds the catalog from every file (in path order) given the one running now.
pub fn build(files: &BTreeMap<PathBuf, FileContents>, previous: &Catalog) -> (Catalog, Findings) {
    let mut next = Catalog::default();
    let mut findings = Findings::default();
    let mut origin: BTreeMap<ResourceRef, PathBuf> = BTreeMap::new();
    let mut keep: Vec<ResourceRef> = Vec::new();

    for (path, contents) in files {
        if let Some(why) = &contents.unreadable {
            findings.errors.push(format!("{}: {why}", path.display()));
            keep.extend(declared_in(previous, path));
            continue;
        }
        for ignored in &contents.ignored {
            findings.notes.push(format!(
                "{}: ignored {ignored} (local mode runs only JobQueue and Schedule)",
                path.display()
            ));
        }
        for rejected in &contents.rejected {
            findings.errors.extend(rejected.lines());
            if let Some(r) = &rejected.resource {
                keep.push(r.clone());
            }
        }
        for declared in &contents.declared {
            let r = reference(declared);
            if let Some(first) = origin.get(&r) {
                findings.errors.push(format!(
                    "{}: {r}: already declared in {}; this copy is ignored",
                    path.display(),
                    first.display()
                ));
                continue;
            }
            origin.insert(r.clone(), path.clone());
            match declared {
                Declared::Queue(q) => {
                    next.queues.insert(r.id, (**q).clone());
                }
                Declared::Schedule(s) => {
                    next.schedules.insert(r.id, (**s).clone());
                }
            }
        }
    }
    keep_last_valid(keep, &origin, previous, &mut next, &mut findings);
    drop_orphans(&mut next, &mut findings);
    (next, findings)
}

/// Resources whose current version is not valid (or whose file is unreadable) keep running
/// their last valid version, unless a valid copy is declared elsewhere.
fn keep_last_valid(
    keep: Vec<ResourceRef>,
    origin: &BTreeMap<ResourceRef, PathBuf>,
    previous: &Catalog,
    next: &mut Catalog,
    findings: &mut Findings,
) {
    for r in keep {
        if origin.contains_key(&r) {
            continue;
        }
        let kept = match r.kind.as_str() {
            "JobQueue" => previous
                .queues
                .get(&r.id)
                .map(|q| next.queues.insert(r.id.clone(), q.clone()))
                .is_some(),
            _ => previous
                .schedules
                .get(&r.id)
                .map(|s| next.schedules.insert(r.id.clone(), s.clone()))
                .is_some(),
        };
        if kept {
            findings
                .notes
                .push(format!("{r}: keeps running its last valid version"));
        }
    }
}

/// Schedules whose queue is not declared (validly), or is another system's (adopted), are not
/// run.
fn drop_orphans(next: &mut Catalog, findings: &mut Findings) {
    let orphans: Vec<(ObjectId, bool)> = next
        .schedules
        .iter()
        .filter_map(|(id, s)| match next.queues.get(&s.queue) {
            None => Some((id.clone(), false)),
            Some(q) if q.config.is_adopted() => Some((id.clone(), true)),
            Some(_) => None,
        })
        .collect();
    for (id, adopted) in orphans {
        if let Some(s) = next.schedules.remove(&id) {
            findings.errors.push(if adopted {
                format!(
                    "{}: Schedule {id}: spec.queueRef.name: Invalid: {:?}: JobQueue {} adopts another system's queue (spec.source), which the operator never writes; a Schedule needs a native JobQueue",
                    s.file.display(),
                    s.queue.name,
                    s.queue
                )
            } else {
                format!(
                    "{}: Schedule {id}: spec.queueRef.name: Not found: {:?}: no valid JobQueue {} is declared",
                    s.file.display(),
                    s.queue.name,
                    s.queue
                )
            });
        }
    }
}

fn reference(d: &Declared) -> ResourceRef {
    match d {
        Declared::Queue(q) => ResourceRef {
            kind: "JobQueue".into(),
            id: id_of(&q.resource.metadata),
        },
        Declared::Schedule(s) => ResourceRef {
            kind: "Schedule".into(),
            id: id_of(&s.resource.metadata),
        },
    }
}

fn id_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjectId {
    ObjectId::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn declared_in(previous: &Catalog, path: &PathBuf) -> Vec<ResourceRef> {
    let queues = previous
        .queues
        .iter()
        .filter(|(_, q)| &q.file == path)
        .map(|(id, _)| ResourceRef {
            kind: "JobQueue".into(),
            id: id.clone(),
        });
    let schedules = previous
        .schedules
        .iter()
        .filter(|(_, s)| &s.file == path)
        .map(|(id, _)| ResourceRef {
            kind: "Schedule".into(),
            id: id.clone(),
        });
    queues.chain(schedules).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::operator::local::manifest::parse_file;

    fn q(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata: {{name: {name}}}\nspec: {{{extra}}}\n---\n"
        )
    }

    fn s(name: &str, queue: &str) -> String {
        format!(
            "apiVersion: jobqueue.io/v1alpha1\nkind: Schedule\nmetadata: {{name: {name}}}\nspec: {{schedule: '@hourly', queueRef: {{name: {queue}}}}}\n---\n"
        )
    }

    fn files(list: &[(&str, String)]) -> BTreeMap<PathBuf, FileContents> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), parse_file(Path::new(p), t)))
            .collect()
    }

    fn names(c: &Catalog) -> (Vec<String>, Vec<String>) {
        (
            c.queues.keys().map(|i| i.name.clone()).collect(),
            c.schedules.keys().map(|i| i.name.clone()).collect(),
        )
    }

    #[test]
    fn every_file_contributes() {
        let (c, f) = build(
            &files(&[
                ("a.yaml", q("a", "")),
                ("b.yaml", q("b", "") + &s("tick", "a")),
            ]),
            &Catalog::default(),
        );
        assert_eq!(f, Findings::default());
        assert_eq!(
            names(&c),
            (vec!["a".into(), "b".into()], vec!["tick".into()])
        );
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_valid_version_and_others_run() {
        let good = files(&[("a.yaml", q("a", "consumerGroup: g1") + &q("b", ""))]);
        let (first, _) = build(&good, &Catalog::default());
        let bad = files(&[(
            "a.yaml",
            q("a", "consumerGroup: ''") + &q("b", "consumerGroup: g2"),
        )]);
        let (second, f) = build(&bad, &first);
        assert_eq!(
            second.queues[&ObjectId::new("default", "a")].config.group,
            "g1"
        );
        assert_eq!(
            second.queues[&ObjectId::new("default", "b")].config.group,
            "g2"
        );
        assert!(
            f.errors[0].starts_with("a.yaml: JobQueue default/a: spec.consumerGroup"),
            "{f:?}"
        );
        assert_eq!(
            f.notes,
            vec!["JobQueue default/a: keeps running its last valid version"]
        );
    }

    #[test]
    fn a_new_invalid_resource_is_not_started() {
        let (c, f) = build(
            &files(&[("a.yaml", q("a", "consumerGroup: ''"))]),
            &Catalog::default(),
        );
        assert!(c.queues.is_empty());
        assert_eq!(f.errors.len(), 1);
        assert!(f.notes.is_empty());
    }

    #[test]
    fn an_unreadable_file_keeps_what_it_declared() {
        let (first, _) = build(
            &files(&[("a.yaml", q("a", "") + &s("t", "a"))]),
            &Catalog::default(),
        );
        let (second, f) = build(&files(&[("a.yaml", "kind: [".to_string())]), &first);
        assert_eq!(second, first);
        assert!(f.errors[0].starts_with("a.yaml: not valid YAML"), "{f:?}");
    }

    #[test]
    fn removed_resources_go_away() {
        let (first, _) = build(
            &files(&[("a.yaml", q("a", "") + &s("t", "a"))]),
            &Catalog::default(),
        );
        let (second, f) = build(&files(&[("a.yaml", q("a", ""))]), &first);
        assert_eq!(names(&second), (vec!["a".into()], vec![]));
        assert_eq!(f, Findings::default());
        let (third, _) = build(&BTreeMap::new(), &second);
        assert_eq!(third, Catalog::default());
    }

    #[test]
    fn duplicates_first_file_wins() {
        let (c, f) = build(
            &files(&[
                ("a.yaml", q("x", "consumerGroup: one")),
                ("b.yaml", q("x", "consumerGroup: two")),
            ]),
            &Catalog::default(),
        );
        assert_eq!(c.queues[&ObjectId::new("default", "x")].config.group, "one");
        assert_eq!(
            f.errors,
            vec!["b.yaml: JobQueue default/x: already declared in a.yaml; this copy is ignored"]
        );
    }

    #[test]
    fn a_schedule_needs_its_queue() {
        let (c, f) = build(
            &files(&[("a.yaml", s("t", "missing"))]),
            &Catalog::default(),
        );
        assert!(c.schedules.is_empty());
        assert!(
            f.errors[0].starts_with(
                "a.yaml: Schedule default/t: spec.queueRef.name: Not found: \"missing\""
            ),
            "{f:?}"
        );
    }

    #[test]
    fn other_kinds_are_noted() {
        let (_, f) = build(
            &files(&[(
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".into(),
            )]),
            &Catalog::default(),
        );
        assert_eq!(
            f.notes,
            vec![
                "a.yaml: ignored ConfigMap default/c (local mode runs only JobQueue and Schedule)"
            ]
        );
    }
}
