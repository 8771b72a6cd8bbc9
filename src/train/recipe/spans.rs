//! Where a key of a recipe is: its line, from the spans of the TOML document, for errors that
//! name the file, the line and the key.

use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// A TOML or serde error as one line: `origin:line: key 'table.key': message` (the key when the
/// error's place is in one).
pub fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> String {
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace("unknown field", "unknown key");
    let Some(span) = e.span() else {
        return format!("{origin}: {message}");
    };
    let line = line_of(text, span.start);
    match DeTable::parse(text)
        .ok()
        .and_then(|t| key_at(t.get_ref(), span.start))
    {
        Some(key) => format!("{origin}:{line}: key '{}': {message}", key.join(".")),
        None => format!("{origin}:{line}: {message}"),
    }
}

/// `origin:line` of the dotted key `key` in `text` (`origin` alone if it is not there).
pub fn place(origin: &str, text: &str, key: &str) -> String {
    let path: Vec<&str> = key.split('.').collect();
    let span = DeTable::parse(text)
        .ok()
        .and_then(|t| span_of(t.get_ref(), &path));
    match span {
        Some(span) => format!("{origin}:{}", line_of(text, span.start)),
        None => origin.to_string(),
    }
}

/// The line (from 1) of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The path of the deepest key whose name or value holds byte `at`.
fn key_at(table: &DeTable, at: usize) -> Option<Vec<String>> {
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        if let DeValue::Table(inner) = value.get_ref() {
            if let Some(mut path) = key_at(inner, at) {
                path.insert(0, name);
                return Some(path);
            }
        }
        if key.span().contains(&at) || value.span().contains(&at) {
            return Some(vec![name]);
        }
    }
    None
}

/// The span of the key at `path` (its name's).
fn span_of(table: &DeTable, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    match (rest.is_empty(), value.get_ref()) {
        (true, _) => Some(key.span()),
        (false, DeValue::Table(inner)) => span_of(inner, rest),
        (false, _) => None,
    }
}
