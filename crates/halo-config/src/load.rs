//! Stage 1 driver: TOML text → [`RawConfig`], reporting as many problems as it
//! can in one pass.
//!
//! serde stops at the first error, which would make a user fix a file one typo
//! at a time. So on an error that names a key (unknown key, wrong type, unknown
//! value), the problem is recorded, that `key = value` (or `[table]` section) is
//! overwritten with spaces in a working copy, and deserialisation runs again.
//! Blanking keeps every byte offset, so later spans still point into the
//! original text. A missing required key cannot be recovered from and ends stage 1.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Report;
use crate::raw::RawConfig;

/// More problems than this in one file is noise; the user fixes and re-runs.
const MAX_RECOVERIES: usize = 64;

pub(crate) fn deserialize(report: &mut Report<'_>, text: &str) -> Option<RawConfig> {
    let (_, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            report.error(span, format!("TOML syntax: {}", e.message().trim_end()));
        }
        return None;
    }
    let mut work = text.to_owned();
    let mut blanked_keys: Vec<String> = Vec::new();
    for _ in 0..MAX_RECOVERIES {
        let err = match toml::from_str::<RawConfig>(&work) {
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim_end().to_owned();
        // Only reached with a syntactically valid working copy: blanking never
        // breaks syntax except in corner cases, which end recovery below.
        let Ok(tree) = DeTable::parse(&work) else {
            return None;
        };
        if let Some(field) = between_backticks(&message, "missing field ") {
            // A key we blanked for a bad value is "missing" now: already reported.
            if !blanked_keys.iter().any(|k| k == field) {
                // The span is the table that lacks the key.
                let context = find_entry(tree.get_ref(), &span, &mut Vec::new())
                    .map(|e| e.table())
                    .unwrap_or_default();
                report.error_hint(
                    span,
                    format!("missing key `{field}`{}", in_context(&context)),
                    format!("add `{field} = ...`"),
                );
            }
            return None;
        }
        let Some(entry) = find_entry(tree.get_ref(), &span, &mut Vec::new()) else {
            report.error(span, message);
            return None;
        };
        describe(report, &entry, &span, &message);
        blanked_keys.push(entry.key.clone());
        blank(&mut work, &entry);
    }
    None
}

/// A `key = value` (or `[key]` header) found by span in the parsed tree.
#[derive(Debug)]
struct Entry {
    /// Table keys from the root down to the table holding `key` (no indices).
    path: Vec<String>,
    key: String,
    /// `key`, marked `[]` when its value is an array (of tables).
    segment: String,
    key_span: Range<usize>,
    value_span: Range<usize>,
}

impl Entry {
    /// `[pool]`-style name of the table holding the key; `[[pool.server]]` when
    /// it is an element of an array of tables.
    fn context(&self) -> String {
        table_name(&self.path)
    }

    /// The name of the table that is this entry's value.
    fn table(&self) -> String {
        let mut path = self.path.clone();
        path.push(self.segment.clone());
        table_name(&path)
    }
}

fn table_name(path: &[String]) -> String {
    let names: Vec<&str> = path.iter().map(|p| p.trim_end_matches("[]")).collect();
    match path.last() {
        None => String::new(),
        Some(last) if last.ends_with("[]") => format!("[[{}]]", names.join(".")),
        Some(_) => format!("[{}]", names.join(".")),
    }
}

fn in_context(context: &str) -> String {
    if context.is_empty() {
        " at the top level".to_owned()
    } else {
        format!(" in {context}")
    }
}

/// The innermost entry whose key or value span covers `span`.
fn find_entry(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<String>) -> Option<Entry> {
    for (key, value) in table {
        let key_span = key.span();
        let value_span = value.span();
        let covers = |r: &Range<usize>| r.start <= span.start && span.end <= r.end;
        if key_span == *span || covers(&value_span) || covers(&key_span) {
            path.push(segment(key, value));
            let inner = find_in_value(value, span, path);
            path.pop();
            return inner.or_else(|| {
                Some(Entry {
                    path: path.clone(),
                    key: key.get_ref().to_string(),
                    segment: segment(key, value),
                    key_span,
                    value_span,
                })
            });
        }
    }
    // Tables given as `[header]` have a value span covering only the header, so
    // a key inside their body is not "covered": search every sub-table too.
    for (key, value) in table {
        path.push(segment(key, value));
        let inner = find_in_value(value, span, path);
        path.pop();
        if inner.is_some() {
            return inner;
        }
    }
    None
}

/// A path segment; arrays are marked `[]` so messages can say `[[name]]`.
fn segment(key: &Spanned<std::borrow::Cow<'_, str>>, value: &Spanned<DeValue<'_>>) -> String {
    match value.get_ref() {
        DeValue::Array(_) => format!("{}[]", key.get_ref()),
        _ => key.get_ref().to_string(),
    }
}

fn find_in_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<Entry> {
    match value.get_ref() {
        DeValue::Table(t) => find_entry(t, span, path),
        DeValue::Array(items) => items
            .iter()
            .find_map(|item| find_in_value(item, span, path)),
        _ => None,
    }
}

fn describe(report: &mut Report<'_>, entry: &Entry, span: &Range<usize>, message: &str) {
    let context = entry.context();
    let key = &entry.key;
    if let Some(unknown) = between_backticks(message, "unknown field ") {
        let expected = expected_names(message);
        let hint = match closest(unknown, &expected) {
            Some(best) => format!("did you mean `{best}`?"),
            None if expected.is_empty() => "remove it".to_owned(),
            None => format!("expected one of: {}", expected.join(", ")),
        };
        report.error_hint(
            span.clone(),
            format!("unknown key `{unknown}`{}", in_context(&context)),
            hint,
        );
    } else if let Some(value) = between_backticks(message, "unknown variant ") {
        let expected = expected_names(message);
        let hint = match closest(value, &expected) {
            Some(best) => format!("did you mean \"{best}\"?"),
            None => format!("write one of: {}", quoted(&expected)),
        };
        report.error_hint(
            span.clone(),
            format!("`{key}`: unknown value \"{value}\""),
            hint,
        );
    } else {
        report.error(span.clone(), format!("`{key}`: {message}"));
    }
}

/// Overwrites the entry with spaces (newlines kept) so the next pass skips it.
fn blank(work: &mut String, entry: &Entry) {
    let bytes = work.as_bytes();
    let line_start = bytes[..entry.key_span.start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let header = work[line_start..].trim_start().starts_with('[');
    let range = if header {
        // `[a.unknown]` or `[[a.unknown]]`: the section runs to the next header.
        let mut end = work.len();
        let mut pos = work[line_start..]
            .find('\n')
            .map_or(work.len(), |i| line_start + i + 1);
        while pos < work.len() {
            let next = work[pos..].find('\n').map_or(work.len(), |i| pos + i + 1);
            if work[pos..next].trim_start().starts_with('[') {
                end = pos;
                break;
            }
            pos = next;
        }
        line_start..end
    } else {
        // `key = value`, widened back over a dotted key prefix and forward over
        // the comma that separates it from the next inline-table entry.
        let mut start = entry.key_span.start;
        while start > 0 && is_key_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = entry.value_span.end.max(entry.key_span.end);
        let rest = &bytes[end..];
        if let Some(i) = rest.iter().position(|b| !matches!(b, b' ' | b'\t')) {
            if rest[i] == b',' {
                end += i + 1;
            }
        }
        start..end
    };
    // Byte-wise replacement keeps the length; spaces are valid UTF-8 wherever
    // they land, even inside what was a multi-byte character.
    let blanked: Vec<u8> = work.as_bytes()[range.clone()]
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b } else { b' ' })
        .collect();
    let mut all = std::mem::take(work).into_bytes();
    all[range].copy_from_slice(&blanked);
    *work = String::from_utf8(all).unwrap_or_default();
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'"' | b'\'')
}

/// `unknown field `x`, expected ...` → `x`.
fn between_backticks<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

/// The backticked names after "expected" in a serde message.
fn expected_names(message: &str) -> Vec<String> {
    let Some((_, tail)) = message.split_once("expected") else {
        return Vec::new();
    };
    tail.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub(crate) fn closest<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.as_str())
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
