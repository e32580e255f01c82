//! The crate's shape, checked on its source (docs/architecture.md#module-map):
//! - the library never imports its front end (`crate::cli`);
//! - the Redis engine, cron and scaling cores import no CRD and no Kubernetes type;
//! - the top-level modules import each other without a cycle;
//! - every `docs/architecture.md#anchor` the code and docs cite names a heading there;
//! - no source file over 600 lines, no function over 80 lines unless a comment just above it
//!   says why it must stay whole (containing "stays whole").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;
const TOP_LEVEL: &[&str] = &[
    "api", "cli", "operator", "plan", "queue", "scaling", "schedule",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`src/queue/keys.rs` → `queue`).
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The source with comments and the contents of string and char literals blanked out, so
/// that what remains is code: paths and braces can be read off it.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let next = b.get(i + 1).map(|&n| n as char);
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            out.extend(text[i..end].chars().filter(|&ch| ch == '\n'));
            i = end;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(b, i) {
            let hashes = text[i + 1..].chars().take_while(|&h| h == '#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 2 + hashes;
            let end = text[start..]
                .find(&close)
                .map_or(b.len(), |e| start + e + close.len());
            out.push_str("\"\"");
            out.extend(text[i..end].chars().filter(|&ch| ch == '\n'));
            i = end;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                } else if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == '\'' && char_literal_len(&b[i..]).is_some() {
            i += char_literal_len(&b[i..]).unwrap();
            out.push_str("' '");
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The length of a char literal at the start of `b` (`'x'`, `'\n'`, `'\u{1F600}'`), or
/// `None` for a lifetime.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let close = b[2..].iter().position(|&c| c == b'\'')?;
        return Some(close + 3);
    }
    let s = std::str::from_utf8(&b[1..b.len().min(6)])
        .unwrap_or_else(|e| std::str::from_utf8(&b[1..1 + e.valid_up_to()]).unwrap());
    let ch = s.chars().next()?;
    (b.get(1 + ch.len_utf8()) == Some(&b'\'')).then_some(2 + ch.len_utf8())
}

/// `crate::<module>` paths named in a file's code (not its comments), including grouped
/// imports such as `use crate::{api, queue::keys}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                refs.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.insert(name);
        }
    }
    refs
}

#[test]
fn the_library_never_imports_the_command_line_front_end() {
    let offenders: Vec<_> = rust_files(&src())
        .into_iter()
        .filter(|p| top_module(p).as_deref() != Some("cli"))
        .filter(|p| p.file_name().is_some_and(|f| f != "main.rs"))
        .filter(|p| crate_refs(&code_only(&std::fs::read_to_string(p).unwrap())).contains("cli"))
        .collect();
    assert!(
        offenders.is_empty(),
        "these library files import crate::cli: {offenders:?}"
    );
}

#[test]
fn the_engine_cron_and_scaling_cores_import_no_crd_or_kubernetes_type() {
    let mut offenders = Vec::new();
    for path in rust_files(&src()) {
        let module = top_module(&path).unwrap();
        if !["queue", "schedule", "scaling"].contains(&module.as_str()) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&path).unwrap());
        let refs = crate_refs(&code);
        for banned in ["api", "plan", "operator", "cli"] {
            if refs.contains(banned) {
                offenders.push(format!("{}: crate::{banned}", path.display()));
            }
        }
        for banned in ["k8s_openapi", "kube::", "kube_runtime"] {
            if code.contains(banned) {
                offenders.push(format!("{}: {banned}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&src()) {
        let Some(module) = top_module(&path) else {
            continue;
        };
        if !TOP_LEVEL.contains(&module.as_str()) {
            continue;
        }
        let refs = crate_refs(&code_only(&std::fs::read_to_string(&path).unwrap()));
        let deps = edges.entry(module.clone()).or_default();
        deps.extend(
            refs.into_iter()
                .filter(|r| r != &module && TOP_LEVEL.contains(&r.as_str())),
        );
    }
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}\nall edges: {edges:#?}", cycle.join(" → "));
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<_> = rust_files(&src())
        .into_iter()
        .map(|p| (std::fs::read_to_string(&p).unwrap().lines().count(), p))
        .filter(|(n, _)| *n > MAX_FILE_LINES)
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// Functions (with their bodies) longer than [`MAX_FN_LINES`], unless a comment in the
/// lines just above says why the function stays whole.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let code = code_only(text);
    let code_lines: Vec<&str> = code.lines().collect();
    let raw_lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in code_lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let Some(len) = body_lines(&code_lines[i..]) else {
            continue;
        };
        if len <= MAX_FN_LINES {
            continue;
        }
        let above = raw_lines[i.saturating_sub(6)..i].join("\n");
        if !above.contains("stays whole") {
            found.push((i + 1, name, len));
        }
    }
    found
}

fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let before_ok = words[..at].iter().all(|w| {
        w.starts_with("pub") || ["async", "const", "unsafe", "extern", "\"\""].contains(w)
    });
    let name: String = words
        .get(at + 1)?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (before_ok && !name.is_empty()).then_some(name)
}

/// Lines from a `fn` line to its closing brace; `None` for a declaration without a body.
fn body_lines(lines: &[&str]) -> Option<usize> {
    let mut depth = 0i32;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate() {
        for ch in line.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                ';' if !opened && depth == 0 => return None,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return Some(n + 1);
        }
    }
    None
}

#[test]
fn no_function_is_over_80_lines_unless_it_says_why() {
    let mut long = Vec::new();
    for path in rust_files(&src()) {
        for (line, name, len) in long_functions(&std::fs::read_to_string(&path).unwrap()) {
            long.push(format!("{}:{line} fn {name}: {len} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "split these functions: {long:#?}");
}

#[test]
fn the_checks_themselves_see_what_they_look_for() {
    let text =
        "fn short() {\n}\n// a comment naming crate::cli\nfn s() { let x = \"crate::api {\"; }\n";
    let code = code_only(text);
    assert!(crate_refs(&code).is_empty(), "{code}");
    assert_eq!(
        crate_refs("use crate::{api, queue::keys};"),
        ["api", "queue"].map(String::from).into()
    );
    let body = "{\n".to_string() + &"    x();\n".repeat(MAX_FN_LINES) + "}\n";
    let long = format!("pub async fn big() {body}");
    assert_eq!(
        long_functions(&long),
        vec![(1, "big".to_string(), MAX_FN_LINES + 2)]
    );
    let excused =
        format!("// A state machine read top to bottom: it stays whole.\nfn big() {body}");
    assert!(long_functions(&excused).is_empty());
    let with_chars = "fn f() {\n    let open = '{';\n    let l: &'static str = \"}\";\n}\n";
    assert!(long_functions(with_chars).is_empty());
    assert_eq!(
        body_lines(&code_only(with_chars).lines().collect::<Vec<_>>()),
        Some(4)
    );
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to dashes, other punctuation
/// dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_architecture_reference_names_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let anchors: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let mut files = rust_files(&src());
    files.extend(rust_files(&root.join("tests")));
    files.extend(rust_files(&root.join("benches")));
    files.extend(["README.md", "BENCHMARKS.md", "docs/architecture.md"].map(|f| root.join(f)));
    let mut broken = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("architecture.md#") {
            let name: String = text[at + "architecture.md#".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            // `architecture.md#<anchor>` where the docs describe the convention itself.
            let placeholder = name.is_empty() || file.ends_with("tests/structure.rs");
            if !placeholder && !anchors.contains(&name) {
                broken.push(format!("{}: #{name}", file.display()));
            }
        }
        if file.ends_with("docs/architecture.md") {
            for (at, _) in text.match_indices("](#") {
                let name: String = text[at + 3..].chars().take_while(|c| *c != ')').collect();
                if !anchors.contains(&name) {
                    broken.push(format!("docs/architecture.md: #{name}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "references to missing headings: {broken:#?}"
    );
    assert!(anchors.contains("redis-data-model") && anchors.contains("module-map"));
}
