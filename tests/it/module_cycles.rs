//! No circles in the house: no file of `src/` imports another that imports it back, directly or
//! through others.
//!
//! Every file's `use` trees and inline paths (`crate::`, `super::`, `self::`, a child module's
//! name and, in the binary, `hark::` into the library) are read into a file-level graph: a
//! `mod.rs` (or `a.rs` beside a folder `a/`) stands for its folder's module, and a path points at
//! the file of its longest module prefix. Not imports: a file's own `mod x;` declarations, paths
//! into the modules that hold it (its folder's `mod.rs`, the crate root: a child reaching up to
//! its parent is the module tree itself, not a circle between rooms), and `#[cfg(test)]` modules
//! (what a unit test borrows for its fixtures is no dependency of the code). Every strongly
//! connected component of more than one file is a circle; the test lists each with the lines that
//! tie it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles known today and still to be broken; each entry is one component, exactly (a circle that
/// grows is reported). To be removed once `eval/score.rs` and `eval/streams.rs` no longer import
/// each other.
const ALLOWED: &[&[&str]] = &[&["src/eval/score.rs", "src/eval/streams.rs"]];

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&src);
    let mut report = String::new();
    for component in graph.components() {
        let names: Vec<&str> = component
            .iter()
            .map(|&i| graph.files[i].name.as_str())
            .collect();
        if ALLOWED.contains(&names.as_slice()) {
            continue;
        }
        report.push_str(&graph.describe(&component));
    }
    assert!(
        report.is_empty(),
        "modules that import each other in a circle:\n{report}"
    );
}

#[test]
fn the_reader_sees_use_trees_inline_paths_and_inline_modules() {
    let text = "use super::{a::{self, B}, c::*};\n// use crate::x;\nfn f() { crate::d::e(); }\n\
                mod tests { use super::*; fn g() { super::super::h::i(); } }\nmod j;\n\
                #[cfg(test)]\nmod more { use crate::k; fn l() { super::m::n(); } }\n";
    let read = read_file(text);
    let paths: Vec<(Vec<String>, Vec<String>)> = read
        .paths
        .iter()
        .map(|p| (p.scope.clone(), p.segments.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        paths,
        vec![
            (s(&[]), s(&["super", "a"])),
            (s(&[]), s(&["super", "a", "B"])),
            (s(&[]), s(&["super", "c"])),
            (s(&[]), s(&["crate", "d", "e"])),
            (s(&["tests"]), s(&["super"])),
            (s(&["tests"]), s(&["super", "super", "h", "i"])),
        ]
    );
    assert_eq!(read.children, BTreeSet::from([vec!["j".to_string()]]));
}

/// One file of `src/`: its name (`src/a/b.rs`), its crate and its module path in that crate.
struct File {
    name: String,
    bin: bool,
    module: Vec<String>,
}

/// The files and, for each, the files it imports with the first line that does.
struct Graph {
    files: Vec<File>,
    edges: Vec<BTreeMap<usize, usize>>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let mut paths = Vec::new();
        rust_files(src, &mut paths);
        paths.sort();
        let main = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
        let bin_roots: BTreeSet<String> = read_file(&main)
            .children
            .into_iter()
            .filter_map(|c| c.into_iter().next())
            .collect();
        let files: Vec<File> = paths.iter().map(|p| file_of(src, p, &bin_roots)).collect();
        let mut edges = vec![BTreeMap::new(); files.len()];
        for (i, path) in paths.iter().enumerate() {
            let text = std::fs::read_to_string(path).expect("a readable source file");
            let read = read_file(&text);
            for found in &read.paths {
                let Some(target) = resolve(&files, &files[i], found, &read.children) else {
                    continue;
                };
                if !contains(&files[target], &files[i]) {
                    edges[i].entry(target).or_insert(found.line);
                }
            }
        }
        Graph { files, edges }
    }

    /// The strongly connected components of more than one file (Tarjan), each sorted by name.
    fn components(&self) -> Vec<Vec<usize>> {
        let mut tarjan = Tarjan {
            edges: &self.edges,
            index: vec![None; self.files.len()],
            low: vec![0; self.files.len()],
            stack: Vec::new(),
            on_stack: vec![false; self.files.len()],
            next: 0,
            found: Vec::new(),
        };
        for v in 0..self.files.len() {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        let mut found: Vec<Vec<usize>> = tarjan.found.into_iter().filter(|c| c.len() > 1).collect();
        for component in &mut found {
            component.sort_by(|&a, &b| self.files[a].name.cmp(&self.files[b].name));
        }
        found.sort_by(|a, b| self.files[a[0]].name.cmp(&self.files[b[0]].name));
        found
    }

    /// One component: its files, then every import between two of them.
    fn describe(&self, component: &[usize]) -> String {
        let names: Vec<&str> = component
            .iter()
            .map(|&i| self.files[i].name.as_str())
            .collect();
        let mut out = format!("- {} files: {}\n", names.len(), names.join(", "));
        for &from in component {
            for (&to, &line) in &self.edges[from] {
                if component.contains(&to) {
                    let (a, b) = (&self.files[from].name, &self.files[to].name);
                    out.push_str(&format!("    {a}:{line} imports {b}\n"));
                }
            }
        }
        out
    }
}

struct Tarjan<'a> {
    edges: &'a [BTreeMap<usize, usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    stack: Vec<usize>,
    on_stack: Vec<bool>,
    next: usize,
    found: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in self.edges[v].keys() {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.found.push(component);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` is module `a::b`, `src/a/mod.rs` is `a`; `lib.rs` and `main.rs` are the roots.
/// A file belongs to the binary when its first module is one that `main.rs` declares.
fn file_of(src: &Path, path: &Path, bin_roots: &BTreeSet<String>) -> File {
    let relative = path.strip_prefix(src).expect("a file under src/");
    let mut module: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = module.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    let root = module.is_empty() && (stem == "lib" || stem == "main");
    if !root && stem != "mod" {
        module.push(stem.to_string());
    }
    let bin = if root {
        stem == "main"
    } else {
        bin_roots.contains(&module[0])
    };
    let name = format!("src/{}", relative.to_string_lossy().replace('\\', "/"));
    File { name, bin, module }
}

/// Whether `outer` is `inner` or a module that holds it (its folder's `mod.rs`, the crate root).
fn contains(outer: &File, inner: &File) -> bool {
    outer.bin == inner.bin && inner.module.starts_with(&outer.module)
}

/// The file a path found in `from` points at: the file of its longest module prefix, in the
/// crate it names. Paths into other crates (std, dependencies) point at nothing.
fn resolve(
    files: &[File],
    from: &File,
    found: &Found,
    children: &BTreeSet<Vec<String>>,
) -> Option<usize> {
    let mut here: Vec<String> = from.module.iter().chain(&found.scope).cloned().collect();
    let mut bin = from.bin;
    let mut segments = found.segments.iter().peekable();
    match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            here.clear();
            segments.next();
        }
        Some("hark") if from.bin => {
            here.clear();
            bin = false;
            segments.next();
        }
        Some("super") => {
            while segments.peek().is_some_and(|s| *s == "super") {
                here.pop()?;
                segments.next();
            }
        }
        Some("self") => {
            segments.next();
        }
        Some(first) => {
            let mut child = found.scope.clone();
            child.push(first.to_string());
            if !children.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    here.extend(segments.cloned());
    (0..=here.len()).rev().find_map(|n| {
        files
            .iter()
            .position(|f| f.bin == bin && f.module[..] == here[..n])
    })
}

/// A path as written, the inline modules (`mod tests { ... }`) it sits in, and its line.
struct Found {
    scope: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

/// What one file says: the paths it names and the child modules it declares (`mod x;`), each
/// under the inline modules it sits in.
#[derive(Default)]
struct Read {
    paths: Vec<Found>,
    children: BTreeSet<Vec<String>>,
}

fn read_file(text: &str) -> Read {
    let tokens = tokens(&strip(text));
    let mut read = Read::default();
    let mut scope: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let names: Vec<String> = scope.iter().map(|(name, ..)| name.clone()).collect();
        let testing = scope.last().is_some_and(|(.., test)| *test);
        let (tok, line) = (tokens[i].0.as_str(), tokens[i].1);
        let next = |k: usize| tokens.get(i + k).map(|t| t.0.as_str()).unwrap_or("");
        match tok {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if scope.last().is_some_and(|(_, d, _)| *d == depth) {
                    scope.pop();
                }
            }
            "mod" if is_ident(next(1)) && next(2) == "{" => {
                let test = testing || after_cfg_test(&tokens, i);
                scope.push((next(1).to_string(), depth, test));
                depth += 1;
                i += 3;
                continue;
            }
            "mod" if is_ident(next(1)) && next(2) == ";" => {
                let mut child = names.clone();
                child.push(next(1).to_string());
                read.children.insert(child);
            }
            "use" => {
                let (leaves, end) = use_statement(&tokens, i);
                if !testing {
                    read.paths.extend(leaves.into_iter().map(|segments| Found {
                        scope: names.clone(),
                        segments,
                        line,
                    }));
                }
                i = end;
                continue;
            }
            word if is_ident(word) && next(1) == "::" && !after_path(&tokens, i) => {
                let (segments, end) = path_at(&tokens, i);
                if !testing {
                    read.paths.push(Found {
                        scope: names.clone(),
                        segments,
                        line,
                    });
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    read
}

/// The leaves of the `use` statement at `i`, and the index of its `;`.
fn use_statement(tokens: &[(String, usize)], i: usize) -> (Vec<Vec<String>>, usize) {
    let end = (i..tokens.len())
        .find(|&k| tokens[k].0 == ";")
        .unwrap_or(tokens.len());
    let mut leaves = Vec::new();
    use_tree(&tokens[i + 1..end], &[], &mut leaves);
    (leaves, end)
}

/// The segments of the path `a::b::c` that starts at `i`, and the index just past it.
fn path_at(tokens: &[(String, usize)], i: usize) -> (Vec<String>, usize) {
    let mut segments = vec![tokens[i].0.clone()];
    let mut k = i + 1;
    while tokens.get(k).is_some_and(|t| t.0 == "::")
        && tokens.get(k + 1).is_some_and(|t| is_ident(&t.0))
    {
        segments.push(tokens[k + 1].0.clone());
        k += 2;
    }
    (segments, k)
}

/// Whether the `mod` at `i` follows `#[cfg(test)]` (after an optional `pub`).
fn after_cfg_test(tokens: &[(String, usize)], i: usize) -> bool {
    let start = if i > 0 && tokens[i - 1].0 == "pub" {
        i - 1
    } else {
        i
    };
    let before: Vec<&str> = tokens[start.saturating_sub(7)..start]
        .iter()
        .map(|t| t.0.as_str())
        .collect();
    before == ["#", "[", "cfg", "(", "test", ")", "]"]
}

/// Whether the token before `i` continues a path (`x::super`), so `i` does not start one.
fn after_path(tokens: &[(String, usize)], i: usize) -> bool {
    i > 0 && tokens[i - 1].0 == "::"
}

/// The leaves of a use tree: `a::{b, c::{self, D}}` gives `a::b`, `a::c` and `a::c::D`; a glob
/// `a::*` gives `a`; `x as y` gives `x`.
fn use_tree(tokens: &[(String, usize)], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].0.as_str() {
            "::" => {}
            "{" => {
                let end = matching(tokens, i);
                for part in split_top(&tokens[i + 1..end]) {
                    use_tree(part, &path, out);
                }
                return;
            }
            "*" => break,
            "as" => break,
            "self" if !path.is_empty() => {}
            word if is_ident(word) => path.push(word.to_string()),
            _ => {}
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// The index of the brace that closes the one at `open`.
fn matching(tokens: &[(String, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (k, token) in tokens.iter().enumerate().skip(open) {
        match token.0.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// A list split at its top-level commas.
fn split_top(tokens: &[(String, usize)]) -> Vec<&[(String, usize)]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, token) in tokens.iter().enumerate() {
        match token.0.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts.retain(|part| !part.is_empty());
    parts
}

fn is_ident(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::` and single punctuation, each with its line.
fn tokens(text: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), line));
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(("::".to_string(), line));
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            out.push((c.to_string(), line));
        }
        i += 1;
    }
    out
}

/// The text with comments, strings and character literals blanked (newlines kept).
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_end(&chars, i);
        if end > i {
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where a comment or literal starting at `i` ends, or `i` when none starts there.
fn literal_end(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let word_before = i > 0 && (at(i - 1).is_alphanumeric() || at(i - 1) == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..chars.len())
            .find(|&k| chars[k] == '\n')
            .unwrap_or(chars.len()),
        ('/', '*') => block_comment_end(chars, i),
        ('"', _) => quoted_end(chars, i + 1, '"'),
        ('r', '"' | '#') if !word_before => raw_end(chars, i + 1).unwrap_or(i),
        ('b', '"') if !word_before => quoted_end(chars, i + 2, '"'),
        ('b', 'r') if !word_before && matches!(at(i + 2), '"' | '#') => {
            raw_end(chars, i + 2).unwrap_or(i)
        }
        ('\'', '\\') => quoted_end(chars, i + 1, '\''),
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut k) = (0, start);
    while k + 1 < chars.len() {
        match (chars[k], chars[k + 1]) {
            ('/', '*') => {
                depth += 1;
                k += 2;
            }
            ('*', '/') => {
                depth -= 1;
                k += 2;
                if depth == 0 {
                    return k;
                }
            }
            _ => k += 1,
        }
    }
    chars.len()
}

/// The end of a quoted literal whose body starts at `k`, escapes skipped.
fn quoted_end(chars: &[char], mut k: usize, quote: char) -> usize {
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            c if c == quote => return k + 1,
            _ => k += 1,
        }
    }
    chars.len()
}

/// The end of a raw string `#*"..."#*` whose hashes start at `k`; `None` when it is not one.
fn raw_end(chars: &[char], k: usize) -> Option<usize> {
    let hashes = chars[k..].iter().take_while(|&&c| c == '#').count();
    if chars.get(k + hashes) != Some(&'"') {
        return None;
    }
    let mut j = k + hashes + 1;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}
