//! The manifest files under `--local PATH`, re-read on every poll: a file edited, added or
//! removed shows up at the next poll (a few hundred milliseconds). Polling instead of a
//! filesystem watcher: it works the same on every platform, editor (atomic renames) and network
//! filesystem, and a directory of manifests is small.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::manifest::{self, FileContents};

/// Extensions read from a directory (a file named directly is read whatever its name).
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The files of `--local PATH` and their parsed contents, parsed again only when they change.
pub struct Files {
    root: PathBuf,
    texts: BTreeMap<PathBuf, Result<String, String>>,
    parsed: BTreeMap<PathBuf, FileContents>,
    /// The last listing error, so it is reported once.
    failed: Option<String>,
}

/// What a poll found.
pub enum Poll {
    Unchanged,
    Changed,
    /// The path cannot be listed (removed, permissions): nothing changes until it can.
    Failed(String),
}

impl Files {
    pub fn new(root: PathBuf) -> Self {
        Files {
            root,
            texts: BTreeMap::new(),
            parsed: BTreeMap::new(),
            failed: None,
        }
    }

    /// Every file's contents (after a poll).
    pub fn contents(&self) -> &BTreeMap<PathBuf, FileContents> {
        &self.parsed
    }

    /// Reads the files again; parses those whose text changed.
    pub fn poll(&mut self) -> Poll {
        let paths = match list(&self.root) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("{}: {e}", self.root.display());
                if self.failed.as_ref() == Some(&why) {
                    return Poll::Unchanged;
                }
                self.failed = Some(why.clone());
                return Poll::Failed(why);
            }
        };
        self.failed = None;
        let texts: BTreeMap<PathBuf, Result<String, String>> = paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|e| e.to_string());
                (p, text)
            })
            .collect();
        if texts == self.texts {
            return Poll::Unchanged;
        }
        self.parsed.retain(|p, _| texts.contains_key(p));
        for (path, text) in &texts {
            if self.texts.get(path) == Some(text) {
                continue;
            }
            let contents = match text {
                Ok(t) => manifest::parse_file(path, t),
                Err(e) => FileContents {
                    unreadable: Some(format!("cannot be read: {e}")),
                    ..Default::default()
                },
            };
            self.parsed.insert(path.clone(), contents);
        }
        self.texts = texts;
        Poll::Changed
    }
}

/// The manifest files of `root`: itself if it is a file, else its YAML and JSON files (not
/// recursive, hidden files skipped, in name order).
pub fn list(root: &Path) -> io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let wanted = !name.starts_with('.')
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e))
            && path.is_file();
        if wanted {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_manifests_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let q = "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata: {name: a}\nspec: {}\n";
        std::fs::write(dir.path().join("b.yaml"), q).unwrap();
        std::fs::write(dir.path().join("a.yml"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join(".b.yaml.swp"), "x").unwrap();
        let listed = list(dir.path()).unwrap();
        let names: Vec<_> = listed
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);

        let mut files = Files::new(dir.path().to_path_buf());
        assert!(matches!(files.poll(), Poll::Changed));
        assert_eq!(
            files.contents()[&dir.path().join("b.yaml")].declared.len(),
            1
        );
        assert!(matches!(files.poll(), Poll::Unchanged));
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert!(matches!(files.poll(), Poll::Changed));
        assert_eq!(files.contents().len(), 1);

        let single = dir.path().join("notes.txt");
        assert_eq!(list(&single).unwrap(), vec![single.clone()]);
        let missing = dir.path().join("nope");
        let mut gone = Files::new(missing);
        assert!(matches!(gone.poll(), Poll::Failed(_)));
        assert!(matches!(gone.poll(), Poll::Unchanged));
    }
}
